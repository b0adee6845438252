"""JSON exports (contract.md "JSON exports"): the one numeric policy, the documents, the writer.

* :func:`to_jsonable` turns any row or value into plain JSON data (the one numeric policy of every
  export: ``Decimal`` -> float or int, numpy scalars -> python, NaN/inf -> null, dates ISO, timestamps
  ISO-8601 UTC with ``Z``, NamedTuples -> objects with their JSON-text fields parsed).
* :func:`best_bets_document` / :func:`admin_picks_document` build the per-date documents (pure; a date
  with no picks gets a complete document with ``picks: []``).
* :func:`write_json` writes a document through Beam's ``FileSystems`` (a local folder and ``gs://``
  behave the same; locally the file is written under a temporary name ``.{name}.{host}.{pid}.{uuid}.tmp``
  and renamed, so readers never see a partial file; a GCS object upload is atomic).
* :func:`write_latest` writes ``best-bets/latest.json`` only when it moves forward: the newest
  ``game_date`` wins, a run or backfill of an earlier date leaves it alone.
* :func:`remove_orphan_temp_files` deletes the temporary files a killed process left behind (called at
  every launch; only files of processes of this host that no longer exist).

The slate sink (``pipeline.io.slate_sink``) builds the documents of a date with :func:`export_documents`
from what the warehouse holds for it after the commit, so the exports equal the committed tables.
"""

from __future__ import annotations

import datetime as dt
import decimal
import importlib
import json
import math
import os
import re
import socket
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

from apache_beam.io.filesystems import FileSystems

from pipeline import schemas

LATEST_PATH = "best-bets/latest.json"
LATEST_CACHE_CONTROL = "public, max-age=60"
DATED_CACHE_CONTROL = "public, max-age=3600"

# Fields holding JSON documents as text (``schemas.Json``); parsed into objects in every export.
JSON_FIELDS: frozenset[str] = frozenset(
    name
    for row_type in list(schemas.INPUT_KINDS.values()) + [s.row_type for s in schemas.TABLES.values()]
    for name, annotation in getattr(row_type, "__annotations__", {}).items()
    if annotation == "Json"
) | {"signal_details", "filter_audit", "ultra_criteria", "family_edges", "rejected", "options", "counts"}

EDGE_BUCKETS: tuple[tuple[str, float, float], ...] = (
    ("0-2", 0.0, 2.0), ("2-3", 2.0, 3.0), ("3-5", 3.0, 5.0), ("5-7", 5.0, 7.0), ("7+", 7.0, math.inf),
)

# The public pick fields, in order (contract.md); ``ultra_tier`` only once the public gate holds.
PUBLIC_PICK_FIELDS: tuple[str, ...] = (
    "rank", "pick_id", "player", "player_lookup", "team", "opponent", "game_id", "game_time", "direction",
    "line", "edge", "prediction", "agreement", "n_models", "signals", "angles",
)
BEST_BETS_FIELDS: tuple[str, ...] = (
    "date", "generated_at", "policy_version", "total_picks", "picks", "filter_summary", "edge_distribution",
    "record",
)
ADMIN_FIELDS: tuple[str, ...] = (
    "date", "generated_at", "policy_version", "total_picks", "picks", "filter_summary", "gate_counts",
    "diagnostics_counts",
)


def _parse_json_text(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _timestamp(value: dt.datetime) -> str:
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    text = value.astimezone(dt.UTC).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def to_jsonable(obj: Any) -> Any:
    """Plain JSON data for any export value (see the module docstring for the policy)."""
    if obj is None or isinstance(obj, (bool, str, int)):
        return obj
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, decimal.Decimal):
        if not obj.is_finite():
            return None
        return int(obj) if obj == obj.to_integral_value() else float(obj)
    if isinstance(obj, dt.datetime):  # before date: datetime is a date; pandas Timestamp included
        if type(obj).__name__ == "NaTType":
            return None
        return _timestamp(obj)
    if isinstance(obj, dt.date):
        return obj.isoformat()
    if hasattr(obj, "_asdict") and isinstance(obj, tuple):
        return {k: to_jsonable(_parse_json_text(v) if k in JSON_FIELDS else v)
                for k, v in obj._asdict().items()}
    if isinstance(obj, Mapping):
        return {(k if isinstance(k, str) else str(to_jsonable(k))): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [to_jsonable(v) for v in obj]
    if type(obj).__name__ in ("NAType", "NaTType"):
        return None
    module = type(obj).__module__
    if module == "numpy" or module.startswith("numpy."):
        if hasattr(obj, "tolist"):  # scalars and arrays
            return to_jsonable(obj.tolist())
    if hasattr(obj, "as_py"):  # pyarrow scalars
        return to_jsonable(obj.as_py())
    raise TypeError(f"cannot export {type(obj).__name__} as JSON: {obj!r}")


def dumps(obj: Any) -> str:
    """JSON text of ``to_jsonable(obj)``; never emits NaN."""
    return json.dumps(to_jsonable(obj), allow_nan=False, ensure_ascii=False, separators=(",", ":"))


def _is_local(uri: str) -> bool:
    return "://" not in uri


_TEMP = re.compile(r"^\.(?P<name>.+)\.(?P<host>[^.]+)\.(?P<pid>\d+)\.[0-9a-f]{32}\.tmp$")


def _host() -> str:
    return socket.gethostname().replace(".", "_") or "host"


def temp_path(target: str) -> str:
    """The temporary name a local export is written under before its rename (host and pid inside)."""
    folder, name = os.path.split(os.path.abspath(target))
    return os.path.join(folder, f".{name}.{_host()}.{os.getpid()}.{uuid.uuid4().hex}.tmp")


def write_json(uri: str, obj: Any, *, cache_control: str | None = None) -> str:
    """Writes ``obj`` as JSON to ``uri`` (local path or ``gs://``); returns the uri.

    Locally the document is written to :func:`temp_path` in the same folder and renamed (atomic; a killed
    writer's temp file is removed by :func:`remove_orphan_temp_files`). On ``gs://`` the object is
    uploaded in one request by ``pipeline.io.gcs.write_object`` with its Cache-Control (atomic).
    """
    data = dumps(obj).encode("utf-8")
    if _is_local(uri):
        target = os.path.abspath(uri)
        tmp = temp_path(target)
        with FileSystems.create(tmp, mime_type="application/json") as f:
            f.write(data)
        try:
            FileSystems.rename([tmp], [target])
        except Exception:
            FileSystems.delete([tmp])
            raise
        return uri
    try:
        gcs = importlib.import_module("pipeline.io.gcs")  # optional module, added later (sets Cache-Control)
    except ModuleNotFoundError as e:
        if e.name != "pipeline.io.gcs":
            raise
        gcs = None
    if gcs is not None and hasattr(gcs, "write_object"):
        gcs.write_object(uri, data, mime_type="application/json", cache_control=cache_control)
        return uri
    with FileSystems.create(uri, mime_type="application/json") as f:
        f.write(data)
    return uri


def read_json(uri: str) -> Any | None:
    """A JSON document at ``uri`` (local or ``gs://``), or None when it does not exist or is unreadable."""
    try:
        if _is_local(uri) and not os.path.exists(uri):
            return None
        with FileSystems.open(uri) as f:
            return json.loads(f.read().decode("utf-8"))
    except Exception:  # noqa: BLE001 - any read failure means "no usable document"
        return None


def latest_moves_forward(current: Mapping | None, game_date: dt.date) -> bool:
    """Whether ``latest.json`` may be rewritten for ``game_date``: no usable current document, or its
    ``date`` is not after ``game_date`` (a re-run of the same date refreshes it)."""
    try:
        current_date = dt.date.fromisoformat(str((current or {}).get("date")))
    except ValueError:
        return True
    return game_date >= current_date


def write_latest(exports_uri: str, game_date: dt.date, doc: Any, *, cache_control: str | None = None
                 ) -> str | None:
    """Writes ``best-bets/latest.json`` when it moves forward (:func:`latest_moves_forward`); returns the
    uri written, or None when the current document is of a later date (left alone).

    Read-then-write: two concurrent runs of different dates could both pass the check; the later writer
    wins that race (runs of one deployment are launched one at a time by the scheduler).
    """
    uri = join_uri(exports_uri, LATEST_PATH)
    if not latest_moves_forward(read_json(uri), game_date):
        return None
    return write_json(uri, doc, cache_control=cache_control)


def remove_orphan_temp_files(exports_uri: str | None, *, alive=None) -> list[str]:
    """Deletes the temporary export files of processes of this host that no longer exist (a killed run);
    a live writer's temp files and other hosts' are kept. Returns the removed paths (``gs://``: none,
    object uploads leave no temp files)."""
    if not exports_uri or not _is_local(exports_uri) or not os.path.isdir(exports_uri):
        return []
    if alive is None:
        from pipeline.io.warehouse import pid_alive as alive
    host, removed = _host(), []
    for folder, _dirs, names in os.walk(exports_uri):
        for name in names:
            m = _TEMP.match(name)
            if m and m.group("host") == host and not alive(int(m.group("pid"))):
                path = os.path.join(folder, name)
                try:
                    os.remove(path)
                    removed.append(path)
                except FileNotFoundError:
                    pass
    return sorted(removed)


# ------------------------------------------------------------------------------------------------
# Documents (pure)
# ------------------------------------------------------------------------------------------------


def edge_distribution(consensus: Iterable[schemas.Consensus] | None) -> dict[str, int]:
    """Counts of |consensus_edge| per bucket over consensus rows with a line and an edge."""
    counts = {name: 0 for name, _, _ in EDGE_BUCKETS}
    for row in consensus or ():
        if row.line is None or row.consensus_edge is None or not math.isfinite(row.consensus_edge):
            continue
        edge = abs(row.consensus_edge)
        for name, low, high in EDGE_BUCKETS:
            if low <= edge < high:
                counts[name] += 1
                break
    return counts


def _filter_summary_json(summary: schemas.FilterSummary | None) -> dict | None:
    if summary is None:
        return None
    return {
        "total_candidates": summary.total_candidates,
        "passed": summary.passed,
        "rejected": to_jsonable(_parse_json_text(summary.rejected)),
    }


def _ordered(picks: Iterable[schemas.Pick]) -> list[schemas.Pick]:
    return sorted(picks, key=lambda p: (p.rank, p.player_lookup))


def public_pick(pick: schemas.Pick, *, ultra_public: bool) -> dict:
    """A pick as shown in ``best-bets/{date}.json``."""
    out = {
        "rank": pick.rank,
        "pick_id": pick.pick_id,
        "player": pick.player_name or pick.player_lookup,
        "player_lookup": pick.player_lookup,
        "team": pick.team_abbr,
        "opponent": pick.opponent_team_abbr,
        "game_id": pick.game_id,
        "game_time": pick.tipoff_utc,
        "direction": pick.direction,
        "line": pick.line,
        "edge": None if pick.consensus_edge is None else round(pick.consensus_edge, 2),
        "prediction": None if pick.predicted_points is None else round(pick.predicted_points, 2),
        "agreement": pick.agreement,
        "n_models": pick.n_models,
        "signals": list(pick.signals),
        # Until the ultra public gate holds, nothing public may reveal the tier, angles included.
        "angles": [a for a in pick.pick_angles if ultra_public or not a.lower().startswith("ultra")],
    }
    if ultra_public:
        out["ultra_tier"] = pick.ultra_tier
    return to_jsonable(out)


def best_bets_document(
    game_date: dt.date,
    picks: list[schemas.Pick],
    filter_summary: schemas.FilterSummary | None,
    *,
    generated_at: dt.datetime,
    policy_version: str,
    record: dict | None,
    ultra_public: bool,
    consensus: list[schemas.Consensus] | None,
) -> dict:
    """The public ``best-bets/{date}.json`` document; withdrawn picks are not shown."""
    shown = [p for p in _ordered(picks) if p.status != "withdrawn"]
    return to_jsonable({
        "date": game_date,
        "generated_at": generated_at,
        "policy_version": policy_version,
        "total_picks": len(shown),
        "picks": [public_pick(p, ultra_public=ultra_public) for p in shown],
        "filter_summary": _filter_summary_json(filter_summary),
        "edge_distribution": edge_distribution(consensus),
        "record": record,
    })


def admin_picks_document(
    game_date: dt.date,
    picks: list[schemas.Pick],
    filter_summary: schemas.FilterSummary | None,
    *,
    gate_counts: dict,
    diagnostics_counts: dict,
    generated_at: dt.datetime,
    policy_version: str,
) -> dict:
    """The ``admin/picks/{date}.json`` document: every pick field (withdrawn included), filter audit."""
    ordered = _ordered(picks)
    return to_jsonable({
        "date": game_date,
        "generated_at": generated_at,
        "policy_version": policy_version,
        "total_picks": len(ordered),
        "picks": ordered,
        "filter_summary": _filter_summary_json(filter_summary),
        "gate_counts": dict(gate_counts),
        "diagnostics_counts": dict(diagnostics_counts),
    })


def _sum_counts(values: Any) -> dict:
    """A counts dict from a dict, a list of dicts (summed) or a list of (key, count) pairs."""
    if values is None:
        return {}
    if isinstance(values, Mapping):
        return dict(values)
    out: dict = {}
    for v in values:
        items = v.items() if isinstance(v, Mapping) else [v]
        for key, n in items:
            out[key] = out.get(key, 0) + n
    return out


def bundle_of(grouped: Mapping[str, Any]) -> dict:
    """Normalises a per-date bundle (a plain dict or a CoGroupByKey result of lists).

    ``filter_summary``: a FilterSummary, None, or a list of at most one; ``gate_counts`` and
    ``diagnostics_counts``: a dict, a list of dicts or a list of (key, count) pairs (summed).
    """
    summary = grouped.get("filter_summary")
    if isinstance(summary, (list, tuple)) and not isinstance(summary, schemas.FilterSummary):
        if len(summary) > 1:
            raise ValueError(f"expected at most one filter summary per date, got {len(summary)}")
        summary = summary[0] if summary else None
    return {
        "picks": list(grouped.get("picks") or ()),
        "filter_summary": summary,
        "consensus": list(grouped.get("consensus") or ()),
        "gate_counts": _sum_counts(grouped.get("gate_counts")),
        "diagnostics_counts": _sum_counts(grouped.get("diagnostics_counts")),
    }


def export_documents(
    game_date: dt.date,
    grouped: Mapping[str, Any],
    *,
    generated_at: dt.datetime,
    policy_version: str,
    record: dict | None = None,
    ultra_public: bool = False,
    latest: bool = False,
) -> dict[str, tuple[dict, str]]:
    """Relative export path -> (document, cache control) for one date's bundle (pure)."""
    b = bundle_of(grouped)
    public = best_bets_document(
        game_date, b["picks"], b["filter_summary"], generated_at=generated_at,
        policy_version=policy_version, record=record, ultra_public=ultra_public, consensus=b["consensus"])
    admin = admin_picks_document(
        game_date, b["picks"], b["filter_summary"], gate_counts=b["gate_counts"],
        diagnostics_counts=b["diagnostics_counts"], generated_at=generated_at, policy_version=policy_version)
    docs = {
        f"best-bets/{game_date.isoformat()}.json": (public, DATED_CACHE_CONTROL),
        f"admin/picks/{game_date.isoformat()}.json": (admin, DATED_CACHE_CONTROL),
    }
    if latest:
        docs[LATEST_PATH] = (public, LATEST_CACHE_CONTROL)
    return docs


def join_uri(base: str, relative: str) -> str:
    """``base/relative`` for a local folder or a ``gs://`` prefix."""
    return FileSystems.join(base, *relative.split("/"))

"""JSON exports (contract.md "JSON exports"): the one numeric policy, the documents, the writer.

* :func:`to_jsonable` turns any row or value into plain JSON data (the one numeric policy of every
  export: ``Decimal`` -> float or int, numpy scalars -> python, NaN/inf -> null, dates ISO, timestamps
  ISO-8601 UTC with ``Z``, NamedTuples -> objects with their JSON-text fields parsed).
* :func:`best_bets_document` / :func:`admin_picks_document` build the per-date documents (pure; a date
  with no picks gets a complete document with ``picks: []``).
* :func:`write_json` writes a document through Beam's ``FileSystems`` (a local folder and ``gs://``
  behave the same; locally the file is written under a temporary name and renamed, so readers never see
  a partial file).
* :class:`WriteExports` writes ``best-bets/{date}.json``, ``admin/picks/{date}.json`` and
  ``best-bets/latest.json`` (latest date of the run) from per-date bundles.

Usage in a graph (every date gets a bundle, even with no picks)::

    bundles = (
        {"picks": picks_by_date, "filter_summary": summaries_by_date, "consensus": consensus_by_date,
         "gate_counts": gate_counts_by_date, "diagnostics_counts": diag_counts_by_date,
         "dates": p | beam.Create([(d, None) for d in dates])}
        | beam.CoGroupByKey())
    bundles | WriteExports(exports_uri, dates=dates, generated_at=now, policy_version=version)

Each input is keyed by ``game_date`` (a ``datetime.date``); ``bundle_of`` normalises the grouped lists.
"""

from __future__ import annotations

import datetime as dt
import decimal
import importlib
import json
import math
import os
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems

from pipeline import schemas

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


def write_json(uri: str, obj: Any, *, cache_control: str | None = None) -> str:
    """Writes ``obj`` as JSON to ``uri`` (local path or ``gs://``); returns the uri.

    Locally the document is written to a temporary name in the same folder and renamed (atomic). On
    remote filesystems ``cache_control`` is applied by ``pipeline.io.gcs.write_object`` when that module
    exists; through plain ``FileSystems`` it is not set (and ignored locally).
    """
    data = dumps(obj).encode("utf-8")
    if _is_local(uri):
        target = os.path.abspath(uri)
        tmp = os.path.join(os.path.dirname(target), f".{os.path.basename(target)}.{uuid.uuid4().hex}.tmp")
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
        docs["best-bets/latest.json"] = (public, LATEST_CACHE_CONTROL)
    return docs


def join_uri(base: str, relative: str) -> str:
    """``base/relative`` for a local folder or a ``gs://`` prefix."""
    return FileSystems.join(base, *relative.split("/"))


class WriteExportsFn(beam.DoFn):
    """Writes one date's export documents; emits (date, [written uris])."""

    def __init__(self, exports_uri: str, latest_date: dt.date, *, generated_at: dt.datetime | None,
                 policy_version: str, record: dict | None, ultra_public: bool):
        self.exports_uri = exports_uri
        self.latest_date = latest_date
        self.generated_at = generated_at
        self.policy_version = policy_version
        self.record = record
        self.ultra_public = ultra_public

    def process(self, element):
        game_date, grouped = element
        if isinstance(game_date, str):
            game_date = dt.date.fromisoformat(game_date)
        docs = export_documents(
            game_date, grouped, generated_at=self.generated_at or dt.datetime.now(dt.UTC),
            policy_version=self.policy_version, record=self.record, ultra_public=self.ultra_public,
            latest=game_date == self.latest_date)
        written = []
        # The dated files first, latest.json last: a reader following latest never sees a missing date.
        for rel in sorted(docs, key=lambda r: r.endswith("latest.json")):
            doc, cache = docs[rel]
            written.append(write_json(join_uri(self.exports_uri, rel), doc, cache_control=cache))
        yield game_date, written


class WriteExports(beam.PTransform):
    """Writes the per-date JSON exports.

    Args:
        exports_uri: a local folder or ``gs://BUCKET/PREFIX``.
        dates: the run's dates; ``best-bets/latest.json`` is written for the latest one.
        generated_at: the documents' timestamp (default: the time of writing).
        policy_version: the selection policy's version.
        record: the best-bets record summary (or None).
        ultra_public: whether the ultra public gate holds (shows ``ultra_tier``).

    Input: ``(date, bundle)`` pairs (date a ``datetime.date`` or ISO string), at most one per date,
    ``bundle`` as in :func:`bundle_of` (a CoGroupByKey result works). A run date without a bundle gets
    complete documents with ``picks: []``; a bundle of a date outside ``dates`` fails the step.
    Returns: ``(date, [written uris])`` per run date.
    """

    def __init__(self, exports_uri: str, *, dates: Iterable[dt.date], policy_version: str,
                 generated_at: dt.datetime | None = None, record: dict | None = None,
                 ultra_public: bool = False):
        super().__init__()
        self.dates = sorted(set(dates))
        if not self.dates:
            raise ValueError("WriteExports needs at least one date")
        self.fn = WriteExportsFn(exports_uri, self.dates[-1], generated_at=generated_at,
                                 policy_version=policy_version, record=record, ultra_public=ultra_public)

    def expand(self, bundles):
        # Every run date gets its documents, even when no bundle arrives for it (picks: []).
        keyed = bundles | "KeyByIsoDate" >> beam.Map(_iso_key)
        dates = bundles.pipeline | "RunDates" >> beam.Create([(d.isoformat(), True) for d in self.dates])
        return (
            {"bundle": keyed, "date": dates}
            | "GroupByDate" >> beam.CoGroupByKey()
            | "OneBundlePerDate" >> beam.Map(_one_bundle)
            | "WriteDocuments" >> beam.ParDo(self.fn)
        )


def _iso_key(element: tuple) -> tuple[str, Any]:
    game_date, bundle = element
    return (game_date if isinstance(game_date, str) else game_date.isoformat()), bundle


def _one_bundle(element: tuple) -> tuple[str, Mapping[str, Any]]:
    game_date, grouped = element
    if not grouped["date"]:
        raise ValueError(f"export bundle for {game_date}, which is not one of the run's dates")
    if len(grouped["bundle"]) > 1:
        raise ValueError(f"{len(grouped['bundle'])} export bundles for {game_date}; expected one")
    return game_date, (grouped["bundle"][0] if grouped["bundle"] else {})

"""The streaming job's sinks: best_bets upsert + best_bets_history, exports, picks-changes, dead letters.

* :func:`apply_changes` writes one ``DateChanges`` in one transaction: the latest version of every
  changed pick replaces its ``best_bets`` row (upsert on ``pick_id``) and each change is a
  ``best_bets_history`` row, idempotent on ``(pick_id, version)`` (a replayed or repeated change replaces
  its row, never duplicates it). DuckDB locally (its one-writer lock is held only for the transaction);
  BigQuery would be the same as a ``MERGE`` on the keys (not implemented in this module yet).
* :func:`write_exports` rewrites ``best-bets/{date}.json`` (and ``best-bets/latest.json`` for the
  latest served date) from the date's latest picks with ``pipeline.io.exports`` (withdrawn picks hidden).
* :func:`change_message` is the JSON published to the picks-changes topic for every change.
* :class:`WriteVersionsFn` writes the versioned rows of every re-scored player-game (gate decision, line
  diagnostics, predictions, consensus; ``version`` >= 1) with ``Warehouse.upsert_versions``: the same
  tables a batch run writes (version 0), idempotent on (game_date, game_id, player_lookup, version), so
  a replayed version replaces its rows and every pick change can be explained from the rows of the
  versions before it.
* :class:`WriteStreamOutputs` wires them: DateChanges -> warehouse + exports -> change messages
  (``WriteToPubSub``); versioned rows -> the four tables; dead letters are appended to ``dead_letters``.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Sequence
from typing import Any

import apache_beam as beam

from pipeline import schemas
from pipeline.domain.lifecycle import PickChange
from pipeline.io import exports as exports_lib
from pipeline.io.warehouse import open_warehouse


def apply_changes(warehouse, changes: Sequence[PickChange]) -> int:
    """Upserts the changed picks' latest versions and their history rows in one warehouse transaction
    (``Warehouse.upsert_picks``: DuckDB locally, BigQuery in production); idempotent on (pick_id, version)."""
    if not changes:
        return 0
    latest: dict[str, schemas.Pick] = {}
    for c in changes:
        if c.pick.pick_id not in latest or c.pick.version > latest[c.pick.pick_id].version:
            latest[c.pick.pick_id] = c.pick
    history = {(c.pick.pick_id, c.pick.version): c.history_row() for c in changes}
    return warehouse.upsert_picks(sorted(latest.values(), key=lambda p: p.pick_id), list(history.values()))


def published_picks(warehouse, dates: Iterable[dt.date]) -> dict[str, dict[str, schemas.Pick]]:
    """The latest stored pick versions of ``dates`` (date_iso -> pick_id -> Pick): the lifecycle's
    starting point after a restart, so versions continue and nothing is re-created."""
    dates = sorted(set(dates))
    if not dates:
        return {}
    marks = ", ".join("?" for _ in dates)
    rows = warehouse.query(f"SELECT * FROM {warehouse.table_sql('best_bets')} WHERE game_date IN ({marks})",
                           dates)
    out: dict[str, dict[str, schemas.Pick]] = {}
    for r in rows:
        pick = schemas.Pick(**{f: _py(r.get(f)) for f in schemas.Pick._fields})
        out.setdefault(pick.game_date.isoformat(), {})[pick.pick_id] = pick
    return out


def _py(v: Any) -> Any:
    if isinstance(v, list):
        return tuple(v)
    if isinstance(v, dt.datetime) and v.tzinfo is None:
        return v.replace(tzinfo=dt.UTC)
    if isinstance(v, dt.datetime):
        return v.astimezone(dt.UTC)
    return v


def write_exports(exports_uri: str, game_date: dt.date, picks: Sequence[schemas.Pick], filter_summary,
                  consensus: Sequence[schemas.Consensus], *, latest: bool, policy_version: str,
                  generated_at: dt.datetime, record: dict | None = None,
                  ultra_public: bool = False) -> list[str]:
    """Rewrites the date's public documents (and latest.json when ``latest``); returns the written uris."""
    doc = exports_lib.best_bets_document(
        game_date, list(picks), filter_summary, generated_at=generated_at, policy_version=policy_version,
        record=record, ultra_public=ultra_public, consensus=list(consensus))
    written = [exports_lib.write_json(
        exports_lib.join_uri(exports_uri, f"best-bets/{game_date.isoformat()}.json"), doc,
        cache_control=exports_lib.DATED_CACHE_CONTROL)]
    if latest:  # latest.json only moves forward (the one rule of batch and stream: exports.write_latest)
        uri = exports_lib.write_latest(exports_uri, game_date, doc,
                                       cache_control=exports_lib.LATEST_CACHE_CONTROL)
        if uri is not None:
            written.append(uri)
    return written


CHANGE_FIELDS: tuple[str, ...] = (
    "pick_id", "version", "status", "withdrawn_reason", "game_date", "game_id", "player_lookup",
    "player_name", "direction", "line", "line_book", "consensus_edge", "predicted_points", "rank",
    "agreement", "n_models",
    "signals", "pick_angles", "ultra_tier", "tipoff_utc", "policy_version", "run_id",
)


def change_message(change: PickChange, *, published_at: dt.datetime | None = None) -> bytes:
    """The picks-changes message of one change (JSON, plain numbers, ISO times)."""
    doc = {"change": change.change, "changed_at": change.changed_at}
    doc.update({f: getattr(change.pick, f) for f in CHANGE_FIELDS})
    if published_at is not None:
        doc["published_at"] = published_at
    return exports_lib.dumps(doc).encode("utf-8")


class ApplyChangesFn(beam.DoFn):
    """DateChanges -> warehouse + exports; emits one picks-changes message (bytes) per change."""

    def __init__(self, warehouse_uri: str | None, exports_uri: str | None, *, latest_date: dt.date | None,
                 policy_version: str, history: dict | None = None):
        self._warehouse_uri, self._exports_uri = warehouse_uri, exports_uri
        self._latest_date, self._policy_version = latest_date, policy_version
        self._record = (history or {}).get("record")
        self._ultra_public = bool((history or {}).get("ultra_public", False))
        self._warehouse = None

    def setup(self):
        # The local streaming runner re-creates DoFns per bundle (beam-notes): the warehouse is opened
        # lazily, only when there is something to write, so idle bundles never take DuckDB's file lock.
        self._written = beam.metrics.Metrics.counter("props", "stream_history_rows")

    def process(self, dc):
        if self._warehouse_uri:
            if self._warehouse is None:
                self._warehouse = open_warehouse(self._warehouse_uri)
            self._written.inc(apply_changes(self._warehouse, dc.changes))
        if self._exports_uri:
            latest = self._latest_date is None or dc.game_date >= self._latest_date
            write_exports(self._exports_uri, dc.game_date, dc.picks, dc.filter_summary, dc.consensus,
                          latest=latest, policy_version=self._policy_version,
                          generated_at=dt.datetime.now(dt.UTC), record=self._record,
                          ultra_public=self._ultra_public)
        now = dt.datetime.now(dt.UTC)
        for c in dc.changes:
            yield change_message(c, published_at=now)


class WriteVersionsFn(beam.DoFn):
    """``(table, row)`` versioned rows -> ``Warehouse.upsert_versions`` once per bundle (one transaction).

    Every row of one version of one table is emitted by one upstream call, so it lands in one bundle;
    the upsert replaces exactly the versions it carries."""

    def __init__(self, warehouse_uri: str):
        self._uri = warehouse_uri

    def setup(self):
        self._warehouse = None  # opened lazily (see ApplyChangesFn.setup)
        self._written = beam.metrics.Metrics.counter("props", "stream_versioned_rows")

    def start_bundle(self):
        self._rows: dict[str, list] = {}

    def process(self, element):
        table, row = element
        self._rows.setdefault(table, []).append(row)

    def finish_bundle(self):
        if self._rows:
            if self._warehouse is None:
                self._warehouse = open_warehouse(self._uri)
            counts = self._warehouse.upsert_versions(self._rows)
            self._written.inc(sum(counts.values()))
            self._rows = {}


class AppendDeadLettersFn(beam.DoFn):
    """Appends dead letters to the warehouse (one insert per bundle)."""

    def __init__(self, warehouse_uri: str, run_id: str | None):
        self._uri, self._run_id = warehouse_uri, run_id

    def setup(self):
        self._warehouse = None  # opened lazily (see ApplyChangesFn.setup)

    def start_bundle(self):
        self._rows: list[schemas.DeadLetter] = []

    def process(self, row: schemas.DeadLetter):
        self._rows.append(row._replace(run_id=self._run_id))

    def finish_bundle(self):
        if self._rows:
            if self._warehouse is None:
                self._warehouse = open_warehouse(self._uri)
            self._warehouse.append("dead_letters", self._rows)
            self._rows = []


class WriteStreamOutputs(beam.PTransform):
    """DateChanges + dead letters -> warehouse, exports and the picks-changes topic.

    Args:
      warehouse_uri / exports_uri: where to write (None: do not write).
      picks_changes_topic: full topic path for the change messages (None: do not publish).
      latest_date: the latest served date (gets ``best-bets/latest.json``).
      policy_version, history, run_id: stamped / shown in the documents.
    Input: a dict ``{"changes": PCollection[DateChanges], "dead_letters": PCollection[DeadLetter]}`` and
      optionally one PCollection of versioned rows per table of ``schemas.VERSIONED_TABLES``.
    Returns: the PCollection of change messages (bytes).
    """

    def __init__(self, *, warehouse_uri, exports_uri, picks_changes_topic, latest_date, policy_version,
                 history=None, run_id=None):
        super().__init__()
        self._warehouse_uri, self._exports_uri, self._topic = warehouse_uri, exports_uri, picks_changes_topic
        self._latest_date, self._policy_version, self._history = latest_date, policy_version, history
        self._run_id = run_id

    def expand(self, pcolls):
        messages = pcolls["changes"] | "ApplyChanges" >> beam.ParDo(ApplyChangesFn(
            self._warehouse_uri, self._exports_uri, latest_date=self._latest_date,
            policy_version=self._policy_version, history=self._history))
        if self._warehouse_uri:
            _ = pcolls["dead_letters"] | "AppendDeadLetters" >> beam.ParDo(
                AppendDeadLettersFn(self._warehouse_uri, self._run_id))
            tagged = [pcolls[t] | f"Tag_{t}" >> beam.Map(lambda r, t=t: (t, r))
                      for t in schemas.VERSIONED_TABLES if t in pcolls]
            if tagged:
                _ = (tagged | "VersionedRows" >> beam.Flatten()
                     | "WriteVersions" >> beam.ParDo(WriteVersionsFn(self._warehouse_uri)))
        if self._topic:
            from apache_beam.io.gcp.pubsub import WriteToPubSub

            _ = messages | "PublishChanges" >> WriteToPubSub(self._topic)
        return messages


def decode_change(data: bytes) -> dict:
    return json.loads(data.decode("utf-8"))

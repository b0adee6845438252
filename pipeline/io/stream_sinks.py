"""The streaming job's sinks: pick changes, versioned rows, dead letters, exports, picks-changes messages.

Two warehouse paths, chosen by the ``--warehouse`` URI (:func:`streams_history`):

* DuckDB (local default): :func:`apply_changes` writes one ``DateChanges`` in one short transaction (the
  latest version of every changed pick replaces its ``best_bets`` row, each change is a
  ``best_bets_history`` row, idempotent on ``(pick_id, version)``); :class:`WriteVersionsFn` and
  :class:`AppendDeadLettersFn` write once per bundle. Each write is its own transaction. Under ``props
  stream`` on the local runner (``keep_open_s`` > 0) the database stays open between the sinks' writes
  (:class:`KeepOpenDuckDBWarehouse`): opening and closing the file (with its checkpoint) per bundle was
  ~30-40 ms, a third of a line move's CPU; so DuckDB's one-writer file lock is held while the sinks are
  busy and released ``keep_open_s`` after their last write, and at least every ``KEEP_OPEN_MAX_HOLD_S``
  for ``KEEP_OPEN_GAP_S`` (other processes, e.g. a reader or ``props run``, get the file meanwhile).
* BigQuery (production, docs/bigquery-writes.md): a change batch is appended to ``best_bets_history``
  with ``insertAll`` and insert ids ``<pick_id>:<version>`` (``append_pick_history``): no load job, DDL or
  transaction per change, and never a transaction on ``best_bets`` (the batch jobs' table). A row
  BigQuery rejects for good becomes a dead letter. Versioned rows and dead letters are keyed by table and
  buffered by :class:`BufferWarehouseRowsFn` (processing time, ``windows.WAREHOUSE_BATCH_S``), then
  written once per batch by :class:`WriteWarehouseBatchFn` (``upsert_versions``: one staged
  transaction per table; ``append_dead_letters``: one load job).

Either way the exports (:func:`write_exports`: ``best-bets/{date}.json`` and ``latest.json``) and the
picks-changes message (:func:`change_message`) are written per change batch, never buffered, and with
``--legacy-exports`` the old website's four files are rewritten from the committed tables after each
applied change batch (:class:`WriteLegacyExportsFn`).

:func:`published_picks` is the lifecycle's starting point after a restart: ``best_bets`` of the dates,
on BigQuery overlaid by the latest streamed version of each pick (the ``best_bets_latest`` view).
:class:`WriteStreamOutputs` wires everything.
"""

from __future__ import annotations

import atexit
import contextlib
import datetime as dt
import json
import logging
import threading
import time
from collections.abc import Iterable, Sequence
from typing import Any

import apache_beam as beam
from apache_beam.transforms.timeutil import TimeDomain
from apache_beam.transforms.userstate import BagStateSpec, ReadModifyWriteStateSpec, TimerSpec, on_timer
from apache_beam.utils.timestamp import Timestamp

from pipeline import schemas
from pipeline.domain.lifecycle import PickChange
from pipeline.io import exports as exports_lib
from pipeline.io.warehouse import DuckDBWarehouse, open_warehouse, version_key
from pipeline.transforms import windows
from pipeline.transforms.streaming import StateCoder

_LOG = logging.getLogger(__name__)

DEAD = "dead_letters"  # tagged output of the sink DoFns: rows BigQuery rejected for good
APPLIED = "applied"  # tagged output of ApplyChangesFn: the game date of a committed change batch
LEGACY_TODAY = "best-bets/today.json"


def streams_history(warehouse) -> bool:
    """Whether the stream writes this warehouse the BigQuery way (history appended with ``insertAll``,
    versioned rows and dead letters batched); ``warehouse`` is a URI or a Warehouse. DuckDB: no."""
    uri = warehouse if isinstance(warehouse, str) else getattr(warehouse, "uri", "")
    return bool(uri) and uri.startswith("bigquery://")


def open_sink_warehouse(uri: str, *, keep_open_s: float = 0.0):
    """The warehouse a sink DoFn writes through. BigQuery: without ``ensure_tables`` (``props stream``
    created the tables and the view at launch), so a DoFn set up again costs no metadata calls. DuckDB
    with ``keep_open_s`` > 0: a :class:`KeepOpenDuckDBWarehouse` (the database stays open between writes)."""
    if streams_history(uri):
        return open_warehouse(uri, create=False)
    warehouse = open_warehouse(uri)
    if keep_open_s > 0 and isinstance(warehouse, DuckDBWarehouse):
        return KeepOpenDuckDBWarehouse(warehouse.path, keep_open_s=keep_open_s,
                                       lock_timeout_s=warehouse.lock_timeout_s)
    return warehouse


# DuckDB under ``props stream`` on the local runner: the file stays open until the sinks have not written
# for this many seconds (a line move's writes span its debounce, ~0.3 s).
LOCAL_KEEP_OPEN_S = 1.0
# The longest the sinks keep the database open without a break while they write continuously, and how
# long the break lasts (each write then opens and closes the file, as without keep-open, so another
# process retrying for the file's lock, e.g. DuckDBWarehouse's own back-off, gets it). A write in the
# break costs ~35 ms more: the break is kept to ~2.5 % of a busy stream's time, out of the p95 of a
# line move (bench/bench_stream_latency.py: 5 s holds put ~15 % of the moves in a break).
KEEP_OPEN_MAX_HOLD_S = 20.0
KEEP_OPEN_GAP_S = 0.5


class _DatabasePin:
    """Keeps one DuckDB database (file) open in this process while it is in use.

    DuckDB shares one database instance among the connections of a process to the same file, and
    closes it (checkpoint, file lock released) when its last connection closes. A pin is one extra
    connection held open: every ``DuckDBWarehouse`` connection to the file in this process then opens
    and closes in well under a millisecond (measured: ~0.4 ms against ~30-40 ms with the file closed in
    between). Nothing about a transaction changes: every write still commits on its own connection (a
    commit is in the WAL; a killed job's WAL is replayed on the next open). A daemon thread closes the
    pin ``keep_open_s`` after the last :meth:`touch`, or once it has been held ``max_hold_s``; after
    that, for ``gap_s``, :meth:`touch` does not pin again. Closing the pin while a write's own
    connection is open is safe: the database closes when that connection does."""

    def __init__(self, path: str, *, keep_open_s: float, max_hold_s: float, gap_s: float):
        self.path, self.keep_open_s, self.max_hold_s, self.gap_s = path, keep_open_s, max_hold_s, gap_s
        self._con = None
        self._opened = self._used = self._no_pin_until = 0.0
        self._lock = threading.Condition()
        self._thread: threading.Thread | None = None

    @property
    def held(self) -> bool:
        return self._con is not None

    def touch(self) -> None:
        """Called right after a write's connection opened (so the database is open in this process and
        this connection cannot wait for the file lock): pins the database, or extends the pin."""
        import duckdb

        now = time.monotonic()
        with self._lock:
            self._used = now
            if self._con is None and now >= self._no_pin_until:
                self._con = duckdb.connect(self.path)
                self._opened = now
                if self._thread is None:
                    self._thread = threading.Thread(target=self._run, name=f"duckdb-pin {self.path}",
                                                    daemon=True)
                    self._thread.start()
                self._lock.notify_all()

    def release(self, *, gap_s: float = 0.0) -> None:
        with self._lock:
            if self._con is not None:
                con, self._con = self._con, None
                self._no_pin_until = time.monotonic() + gap_s
                con.close()

    def _run(self) -> None:
        while True:
            with self._lock:
                while self._con is None:
                    self._lock.wait()
                now = time.monotonic()
                idle_at, hold_at = self._used + self.keep_open_s, self._opened + self.max_hold_s
                if now >= hold_at:
                    self.release(gap_s=self.gap_s)
                    continue
                if now >= idle_at:
                    self.release()
                    continue
                self._lock.wait(min(idle_at, hold_at) - now)


_PINS: dict[str, _DatabasePin] = {}
_PINS_LOCK = threading.Lock()


def database_pin(path: str, *, keep_open_s: float, max_hold_s: float = KEEP_OPEN_MAX_HOLD_S,
                 gap_s: float = KEEP_OPEN_GAP_S) -> _DatabasePin:
    """The process's one pin of a DuckDB file (created on first use; the longest ``keep_open_s`` asked
    for wins)."""
    with _PINS_LOCK:
        pin = _PINS.get(path)
        if pin is None:
            pin = _PINS[path] = _DatabasePin(path, keep_open_s=keep_open_s, max_hold_s=max_hold_s,
                                             gap_s=gap_s)
        pin.keep_open_s = max(pin.keep_open_s, keep_open_s)
        return pin


@atexit.register
def _release_pins() -> None:  # a clean exit checkpoints the file (a kill leaves the WAL to replay)
    for pin in list(_PINS.values()):
        pin.release()


class KeepOpenDuckDBWarehouse(DuckDBWarehouse):
    """A ``DuckDBWarehouse`` whose file stays open between operations while they come at least every
    ``keep_open_s`` (:class:`_DatabasePin`); each operation is unchanged (its own connection and
    transaction, the lock wait and timeout of ``DuckDBWarehouse``)."""

    def __init__(self, path: str, *, keep_open_s: float, **kwargs):
        self.keep_open_s = keep_open_s
        super().__init__(path, **kwargs)
        self.pin = database_pin(self.path, keep_open_s=keep_open_s)

    @contextlib.contextmanager
    def _connect(self):
        with super()._connect() as con:
            pin = getattr(self, "pin", None)  # None while __init__ creates the tables
            if pin is not None:
                pin.touch()
            yield con


def write_pick_changes(warehouse, changes: Sequence[PickChange]) -> int:
    """Writes one change batch: BigQuery appends history rows (``append_pick_history``, insert ids
    ``<pick_id>:<version>``); DuckDB upserts ``best_bets`` + history (:func:`apply_changes`)."""
    if not changes:
        return 0
    if streams_history(warehouse):
        history = {(c.pick.pick_id, c.pick.version): c.history_row() for c in changes}
        return warehouse.append_pick_history(list(history.values()))
    return apply_changes(warehouse, changes)


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
    starting point after a restart, so versions continue and nothing is re-created.

    ``best_bets`` of the dates (dataset-qualified: ``table_sql``); on BigQuery, where the stream appends
    to ``best_bets_history`` only, each pick's latest streamed version (``latest_picks``: the
    ``best_bets_latest`` view) replaces the batch's row when its version is higher."""
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
    if streams_history(warehouse):
        for h in warehouse.latest_picks(dates):
            pick = schemas.Pick(**{f: _py(getattr(h, f)) for f in schemas.Pick._fields})
            day = out.setdefault(pick.game_date.isoformat(), {})
            if pick.pick_id not in day or (pick.version or 0) > (day[pick.pick_id].version or 0):
                day[pick.pick_id] = pick
    return out


class PublishedPicksWarehouse:
    """A read view of a warehouse whose ``best_bets`` reads return :func:`published_picks` (the stream's
    latest versions on BigQuery); every other call goes to the warehouse. The legacy exports read through
    it, so the old website's files show what the stream published."""

    def __init__(self, warehouse):
        self._warehouse = warehouse

    def read_table(self, table: str, game_dates: Iterable[dt.date] | None = None):
        if table != "best_bets" or game_dates is None or not streams_history(self._warehouse):
            return self._warehouse.read_table(table, game_dates)
        import pandas as pd

        picks = [p for day in published_picks(self._warehouse, game_dates).values() for p in day.values()]
        return pd.DataFrame(picks, columns=list(schemas.Pick._fields))

    def read_rows(self, table: str, game_dates: Iterable[dt.date]):
        """As the warehouse's ``read_rows``; ``best_bets`` rows are the published picks (grading reads
        them through this, so a pick the stream created or moved on BigQuery is graded)."""
        if table != "best_bets" or not streams_history(self._warehouse):
            return self._warehouse.read_rows(table, game_dates)
        return [p for day in published_picks(self._warehouse, game_dates).values() for p in day.values()]

    def __getattr__(self, name: str):
        return getattr(self._warehouse, name)


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


def rejected_change_letters(changes: Sequence[PickChange], error: str, game_date: dt.date,
                            ) -> list[schemas.DeadLetter]:
    """One dead letter per change whose history row BigQuery rejected for good (payload: the row)."""
    return [schemas.DeadLetter(
        source="bigquery", step="stream_best_bets_history", error=schemas.clip_text(error),
        payload=schemas.clip_text(exports_lib.dumps(c.history_row()._asdict())), event_ts=c.changed_at,
        game_date=game_date) for c in changes]


class ApplyChangesFn(beam.DoFn):
    """DateChanges -> warehouse (:func:`write_pick_changes`) + exports; emits one picks-changes message
    (bytes) per change. Tagged outputs: ``dead_letters`` (BigQuery rejected the batch's history rows for
    good: one per change, the job goes on) and ``applied`` (the change batch's game date, once the
    warehouse write committed; the legacy exports follow it)."""

    def __init__(self, warehouse_uri: str | None, exports_uri: str | None, *, latest_date: dt.date | None,
                 policy_version: str, history: dict | None = None, keep_open_s: float = 0.0):
        self._warehouse_uri, self._exports_uri = warehouse_uri, exports_uri
        self._keep_open_s = keep_open_s
        self._latest_date, self._policy_version = latest_date, policy_version
        self._record = (history or {}).get("record")
        self._ultra_public = bool((history or {}).get("ultra_public", False))
        self._warehouse = None

    def setup(self):
        # The local streaming runner re-creates DoFns per bundle (beam-notes): the warehouse is opened
        # lazily, only when there is something to write, so idle bundles never take DuckDB's file lock.
        self._written = beam.metrics.Metrics.counter("props", "stream_history_rows")
        self._rejected = beam.metrics.Metrics.counter("props", "stream_history_rows_rejected")

    def process(self, dc):
        if self._warehouse_uri:
            if self._warehouse is None:
                self._warehouse = open_sink_warehouse(self._warehouse_uri, keep_open_s=self._keep_open_s)
            if streams_history(self._warehouse):
                try:
                    self._written.inc(write_pick_changes(self._warehouse, dc.changes))
                except RuntimeError as exc:  # insert_streaming: rows rejected for good (transient: raised)
                    self._rejected.inc(len(dc.changes))
                    for letter in rejected_change_letters(dc.changes, str(exc), dc.game_date):
                        yield beam.pvalue.TaggedOutput(DEAD, letter)
            else:
                self._written.inc(write_pick_changes(self._warehouse, dc.changes))
        if self._exports_uri:
            latest = self._latest_date is None or dc.game_date >= self._latest_date
            write_exports(self._exports_uri, dc.game_date, dc.picks, dc.filter_summary, dc.consensus,
                          latest=latest, policy_version=self._policy_version,
                          generated_at=dt.datetime.now(dt.UTC), record=self._record,
                          ultra_public=self._ultra_public)
        now = dt.datetime.now(dt.UTC)
        for c in dc.changes:
            yield change_message(c, published_at=now)
        if self._warehouse_uri and dc.changes:
            yield beam.pvalue.TaggedOutput(APPLIED, dc.game_date)


class WriteLegacyExportsFn(beam.DoFn):
    """A committed change batch's game date -> the old website's four files under ``--legacy-exports``
    (``legacy_exports.write_legacy_exports``), built from the committed tables as ``props run`` builds
    them, with the stream's latest pick versions (:class:`PublishedPicksWarehouse`). ``today.json`` only
    moves forward (the rule of ``latest.json``: ``exports.latest_moves_forward``): a change of an earlier
    date while a later one is served leaves the files alone."""

    def __init__(self, warehouse_uri: str, prefix: str, *, algorithm_version: str):
        self._uri, self._prefix, self._version = warehouse_uri, prefix, algorithm_version

    def setup(self):
        self._warehouse = None  # opened lazily (see ApplyChangesFn.setup)
        self._written = beam.metrics.Metrics.counter("props", "stream_legacy_exports_written")

    def process(self, game_date: dt.date):
        from pipeline.io import legacy_exports

        today_uri = exports_lib.join_uri(self._prefix, LEGACY_TODAY)
        if not exports_lib.latest_moves_forward(exports_lib.read_json(today_uri), game_date):
            return
        if self._warehouse is None:
            self._warehouse = open_sink_warehouse(self._uri)
        written = legacy_exports.write_legacy_exports(
            PublishedPicksWarehouse(self._warehouse), self._prefix, game_date,
            algorithm_version=self._version)
        self._written.inc(len(written))


def merge_version_batches(batches: Iterable[dict[str, Sequence[tuple]]]) -> dict[str, list]:
    """Several ``upsert_versions`` calls, in order, as one: per table and version key (``version_key``),
    the rows of the last call that carried the key. Writing the result once leaves exactly the rows the
    calls would leave one after another (each replaces the versions it carries), so a replayed version
    is never written twice."""
    merged: dict[str, dict[tuple, list]] = {}
    for batch in batches:
        for table, rows in batch.items():
            fresh: dict[tuple, list] = {}
            for r in rows:
                fresh.setdefault(version_key(r), []).append(r)
            merged.setdefault(table, {}).update(fresh)
    return {t: [r for rows in by_key.values() for r in rows] for t, by_key in merged.items() if by_key}


class VersionWriter:
    """Writes the local stream's versioned rows to one DuckDB file from a daemon thread of this process
    (``props stream`` on the local runner only: ``WriteVersionsFn`` with ``keep_open_s`` > 0).

    The local runner runs every step of the job on one worker thread; a versioned rows' transaction
    there (~9 ms for one table's rows of one player-game, ~4 per line move) held up every line move
    behind it. Here a bundle's rows are queued (:meth:`put`) and the thread writes whatever has queued
    since its last write in one ``upsert_versions`` transaction (:func:`merge_version_batches`: the same
    rows as one write per bundle), in the order the bundles finished. DuckDB runs the transaction
    without Python's lock, on the machine's other core.

    Nothing is dropped silently: a write that fails is retried (``RETRIES`` times, backing off), its rows
    staying first in the queue; after that the error is kept and the next :meth:`put` raises it, so the
    bundle fails and the job stops with it. The queue is written out before the process exits normally
    (``atexit``, before the database pin is released: Ctrl-C, the end of a bounded job). A hard kill
    loses what is queued (written within milliseconds under load), as it loses the messages the local
    runner has acknowledged but not processed (README, Streaming: delivery)."""

    RETRIES = 3
    EXIT_FLUSH_S = 30.0

    def __init__(self, uri: str, *, keep_open_s: float):
        self.uri, self.keep_open_s = uri, keep_open_s
        self.written = self.transactions = 0
        self.error: BaseException | None = None
        self._queue: list[dict[str, list]] = []
        self._busy = False
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._run, name=f"props-versions {uri}", daemon=True)
        self._thread.start()

    def put(self, rows_by_table: dict[str, list]) -> None:
        if self.error is not None:
            raise RuntimeError(f"versioned rows could not be written to {self.uri} "
                               f"({self.pending()} rows waiting): {self.error!r}") from self.error
        with self._cond:
            self._queue.append(rows_by_table)
            self._cond.notify_all()

    def pending(self) -> int:
        with self._cond:
            return sum(len(rows) for batch in self._queue for rows in batch.values())

    def flush(self, timeout: float | None = None) -> bool:
        """Waits until everything queued is written (True) or failed / ``timeout`` passed (False)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while (self._queue or self._busy) and self.error is None:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._cond.wait(left)
            return not self._queue and not self._busy

    def _run(self) -> None:
        warehouse, failures = None, 0
        while True:
            with self._cond:
                while not self._queue:
                    self._cond.wait()
                batches, self._queue, self._busy = self._queue, [], True
            try:
                if warehouse is None:
                    warehouse = open_sink_warehouse(self.uri, keep_open_s=self.keep_open_s)
                counts = warehouse.upsert_versions(merge_version_batches(batches))
            except Exception as exc:  # noqa: BLE001 - kept, retried, then raised by put()
                failures += 1
                _LOG.warning(
                    "versioned rows: write %d of %d to %s failed: %r", failures, self.RETRIES + 1,
                    self.uri, exc)
                with self._cond:
                    self._queue[:0] = batches  # first again, in order
                    self._busy = False
                    if failures > self.RETRIES:
                        self.error = exc
                        self._cond.notify_all()
                        return
                    self._cond.notify_all()
                time.sleep(0.5 * 2 ** (failures - 1))
                continue
            failures = 0
            with self._cond:
                self.written += sum(counts.values())
                self.transactions += 1
                self._busy = False
                self._cond.notify_all()


_WRITERS: dict[str, VersionWriter] = {}


def version_writer(uri: str, *, keep_open_s: float) -> VersionWriter:
    """The process's one :class:`VersionWriter` of a warehouse (created on first use)."""
    with _PINS_LOCK:
        writer = _WRITERS.get(uri)
        if writer is None:
            if not _WRITERS:
                atexit.register(_flush_writers)  # registered after _release_pins: runs before it
            writer = _WRITERS[uri] = VersionWriter(uri, keep_open_s=keep_open_s)
        return writer


def _flush_writers() -> None:
    for writer in list(_WRITERS.values()):
        if not writer.flush(VersionWriter.EXIT_FLUSH_S):
            _LOG.error(
                "versioned rows: %d rows not written to %s at exit (%r)", writer.pending(), writer.uri,
                writer.error)


class WriteVersionsFn(beam.DoFn):
    """``(table, row)`` versioned rows -> ``Warehouse.upsert_versions`` once per bundle (one transaction).

    Every row of one version of one table is emitted by one upstream call, so it lands in one bundle;
    the upsert replaces exactly the versions it carries. With ``keep_open_s`` > 0 (``props stream`` on
    the local runner) the bundle's rows go to the process's :class:`VersionWriter` instead, which writes
    them off the runner's worker thread."""

    def __init__(self, warehouse_uri: str, *, keep_open_s: float = 0.0):
        self._uri, self._keep_open_s = warehouse_uri, keep_open_s

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
            if self._keep_open_s > 0:
                version_writer(self._uri, keep_open_s=self._keep_open_s).put(self._rows)
                self._written.inc(sum(len(rows) for rows in self._rows.values()))
            else:
                if self._warehouse is None:
                    self._warehouse = open_sink_warehouse(self._uri, keep_open_s=self._keep_open_s)
                counts = self._warehouse.upsert_versions(self._rows)
                self._written.inc(sum(counts.values()))
            self._rows = {}


class AppendDeadLettersFn(beam.DoFn):
    """Appends dead letters to the warehouse (one insert per bundle)."""

    def __init__(self, warehouse_uri: str, run_id: str | None, *, keep_open_s: float = 0.0):
        self._uri, self._run_id, self._keep_open_s = warehouse_uri, run_id, keep_open_s

    def setup(self):
        self._warehouse = None  # opened lazily (see ApplyChangesFn.setup)

    def start_bundle(self):
        self._rows: list[schemas.DeadLetter] = []

    def process(self, row: schemas.DeadLetter):
        self._rows.append(row._replace(run_id=self._run_id))

    def finish_bundle(self):
        if self._rows:
            if self._warehouse is None:
                self._warehouse = open_sink_warehouse(self._uri, keep_open_s=self._keep_open_s)
            self._warehouse.append("dead_letters", self._rows)
            self._rows = []


_BATCH_ROWS = BagStateSpec("rows", StateCoder())
_BATCH_COUNT = ReadModifyWriteStateSpec("count", StateCoder())
_BATCH_FLUSH = TimerSpec("flush", TimeDomain.REAL_TIME)
_BATCH_END = TimerSpec("end", TimeDomain.WATERMARK)
_P_ROWS, _P_COUNT = beam.DoFn.StateParam(_BATCH_ROWS), beam.DoFn.StateParam(_BATCH_COUNT)
_P_FLUSH, _P_END = beam.DoFn.TimerParam(_BATCH_FLUSH), beam.DoFn.TimerParam(_BATCH_END)


class BufferWarehouseRowsFn(beam.DoFn):
    """``(table, row)`` -> ``(table, [rows])`` batches, keyed by table (BigQuery only; see windows.py).

    Timeline of one key: the first row of a batch sets a processing-time timer ``batch_s`` ahead; rows
    arriving before it fires join the batch; the timer emits the whole batch and the next row starts a new
    one. A batch reaching ``max_rows`` is emitted at once; the end of the global window (a drain) emits
    what is left. State is written with ``StateCoder`` (rows stored by field name), so an in-place update
    that adds a field reads the rows the old job buffered. One key per table: a table's batches are
    written one at a time, so the stream never runs two transactions on one table concurrently.
    """

    def __init__(self, *, batch_s: float, max_rows: int, clock=None):
        self._batch_s, self._max_rows, self._clock = float(batch_s), int(max_rows), clock or Timestamp.now

    def process(self, element, rows=_P_ROWS, count=_P_COUNT, flush=_P_FLUSH, end=_P_END,
                window=beam.DoFn.WindowParam):
        table, row = element
        rows.add(row)
        n = (count.read() or 0) + 1
        if n == 1:
            flush.set(self._clock() + self._batch_s)
            end.set(window.end)
        if n >= self._max_rows:
            yield from self._emit(table, rows, count, flush)
            return
        count.write(n)

    @on_timer(_BATCH_FLUSH)
    def on_flush(self, key=beam.DoFn.KeyParam, rows=_P_ROWS, count=_P_COUNT, flush=_P_FLUSH):
        yield from self._emit(key, rows, count, flush)

    @on_timer(_BATCH_END)
    def on_end(self, key=beam.DoFn.KeyParam, rows=_P_ROWS, count=_P_COUNT, flush=_P_FLUSH):
        yield from self._emit(key, rows, count, flush)

    @staticmethod
    def _emit(table, rows, count, flush):
        batch = list(rows.read())
        rows.clear()
        count.clear()
        flush.clear()
        if batch:
            yield table, batch


class WriteWarehouseBatchFn(beam.DoFn):
    """``(table, [rows])`` -> ONE warehouse write, exact duplicate rows once: ``append_dead_letters``
    (one load job) for dead letters (``run_id`` stamped), ``upsert_versions`` (one staged transaction) for
    a versioned table. A batch BigQuery rejects for good (``BadRequest``: a row that does not fit the
    table) becomes one dead letter per row (step ``stream_<table>``) in one load job; transient errors
    raise (Beam retries)."""

    def __init__(self, warehouse_uri: str, run_id: str | None):
        self._uri, self._run_id = warehouse_uri, run_id

    def setup(self):
        self._warehouse = None  # opened lazily (see ApplyChangesFn.setup)
        self._versioned = beam.metrics.Metrics.counter("props", "stream_versioned_rows")
        self._dead = beam.metrics.Metrics.counter("props", "stream_dead_letters_written")
        self._batches = beam.metrics.Metrics.counter("props", "stream_warehouse_batches")
        self._rejected = beam.metrics.Metrics.counter("props", "stream_warehouse_rows_rejected")

    def process(self, element):
        from google.api_core import exceptions as gexc

        table, rows = element
        rows = list({repr(r): r for r in rows}.values())  # a replayed version / redelivered row: once
        if self._warehouse is None:
            self._warehouse = open_sink_warehouse(self._uri)
        self._batches.inc()
        if table == "dead_letters":
            self._dead.inc(self._warehouse.append_dead_letters(
                [r._replace(run_id=self._run_id) for r in rows]))
            return
        try:
            self._versioned.inc(sum(self._warehouse.upsert_versions({table: rows}).values()))
        except gexc.BadRequest as exc:
            self._rejected.inc(len(rows))
            self._dead.inc(self._warehouse.append_dead_letters([schemas.DeadLetter(
                source="bigquery", step=f"stream_{table}", error=schemas.clip_text(str(exc)),
                payload=schemas.clip_text(exports_lib.dumps(r._asdict())),
                event_ts=getattr(r, "scored_at", None), game_date=r.game_date, run_id=self._run_id)
                for r in rows]))


class WriteStreamOutputs(beam.PTransform):
    """DateChanges + dead letters + versioned rows -> warehouse, exports and the picks-changes topic.

    Args:
      warehouse_uri / exports_uri: where to write (None: do not write).
      picks_changes_topic: full topic path for the change messages (None: do not publish).
      latest_date: the latest served date (gets ``best-bets/latest.json``).
      policy_version, history, run_id: stamped / shown in the documents.
      legacy_exports: ``--legacy-exports`` prefix (None: not written).
      batch_s / max_rows / clock: the BigQuery batches (default ``windows.WAREHOUSE_BATCH_S`` /
        ``WAREHOUSE_BATCH_MAX_ROWS``; ``clock``: processing clock of the batch timer, tests pass
        ``transforms.streaming.zero_clock``).
      keep_open_s: DuckDB only: > 0 keeps the database open between the sinks' writes until they pause
        this long (:class:`KeepOpenDuckDBWarehouse`; ``props stream`` on the local runner); 0: each write
        opens and closes the file.
    Input: a dict ``{"changes": PCollection[DateChanges], "dead_letters": PCollection[DeadLetter]}`` and
      optionally one PCollection of versioned rows per table of ``schemas.VERSIONED_TABLES``.
    Returns: the PCollection of change messages (bytes).
    """

    def __init__(self, *, warehouse_uri, exports_uri, picks_changes_topic, latest_date, policy_version,
                 history=None, run_id=None, legacy_exports: str | None = None, batch_s: float | None = None,
                 max_rows: int | None = None, clock=None, keep_open_s: float = 0.0):
        super().__init__()
        self._keep_open_s = keep_open_s
        self._warehouse_uri, self._exports_uri, self._topic = warehouse_uri, exports_uri, picks_changes_topic
        self._latest_date, self._policy_version, self._history = latest_date, policy_version, history
        self._run_id, self._legacy = run_id, legacy_exports
        self._batch_s = windows.WAREHOUSE_BATCH_S if batch_s is None else batch_s
        self._max_rows = windows.WAREHOUSE_BATCH_MAX_ROWS if max_rows is None else max_rows
        self._clock = clock

    def expand(self, pcolls):
        applied = pcolls["changes"] | "ApplyChanges" >> beam.ParDo(ApplyChangesFn(
            self._warehouse_uri, self._exports_uri, latest_date=self._latest_date,
            policy_version=self._policy_version, history=self._history,
            keep_open_s=self._keep_open_s)).with_outputs(
                DEAD, APPLIED, main="messages")
        messages = applied.messages
        if self._warehouse_uri:
            tagged = [pcolls[t] | f"Tag_{t}" >> beam.Map(lambda r, t=t: (t, r))
                      for t in schemas.VERSIONED_TABLES if t in pcolls]
            if streams_history(self._warehouse_uri):
                dead = ((pcolls["dead_letters"], applied[DEAD]) | "SinkDeadLetters" >> beam.Flatten()
                        | "KeyDeadLetters" >> beam.Map(lambda r: ("dead_letters", r)))
                _ = ((*tagged, dead) | "WarehouseRows" >> beam.Flatten()
                     | "BufferWarehouseRows" >> beam.ParDo(BufferWarehouseRowsFn(
                         batch_s=self._batch_s, max_rows=self._max_rows, clock=self._clock)
                         ).with_input_types(tuple[str, Any])
                     | "WriteWarehouseBatches" >> beam.ParDo(
                         WriteWarehouseBatchFn(self._warehouse_uri, self._run_id)))
            else:
                _ = pcolls["dead_letters"] | "AppendDeadLetters" >> beam.ParDo(
                    AppendDeadLettersFn(self._warehouse_uri, self._run_id, keep_open_s=self._keep_open_s))
                if tagged:
                    _ = (tagged | "VersionedRows" >> beam.Flatten()
                         | "WriteVersions" >> beam.ParDo(WriteVersionsFn(
                             self._warehouse_uri, keep_open_s=self._keep_open_s)))
            if self._legacy:
                _ = applied[APPLIED] | "WriteLegacyExports" >> beam.ParDo(WriteLegacyExportsFn(
                    self._warehouse_uri, self._legacy, algorithm_version=self._policy_version))
        if self._topic:
            from apache_beam.io.gcp.pubsub import WriteToPubSub

            _ = messages | "PublishChanges" >> WriteToPubSub(self._topic)
        return messages


def decode_change(data: bytes) -> dict:
    return json.loads(data.decode("utf-8"))

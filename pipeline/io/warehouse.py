"""The warehouse: every output table behind one small interface (DuckDB locally, BigQuery later).

``open_warehouse(uri)`` picks the implementation from the URI:

* ``duckdb:///abs/path/props.duckdb``, ``duckdb://relative.duckdb`` or a bare path
  -> :class:`DuckDBWarehouse`;
* ``bigquery://PROJECT.DATASET`` -> ``pipeline.io.bigquery.BigQueryWarehouse(project, dataset)``
  (imported lazily; NotImplementedError until that module exists).

The interface (:class:`Warehouse`) every implementation provides, with the same table schemas
(``schemas.TABLES``; columns from the row NamedTuples):

``replace_dates(dates, rows_by_table, *, protected_pick_game_ids=(), tables=None) -> dict[str, int]``
    Atomically, for every table in ``tables`` (default ``SLATE_TABLES``): delete the rows of ``dates``
    (in ``best_bets`` keep the rows whose ``game_id`` is in ``protected_pick_game_ids``: picks of games
    already started are never touched) and insert the given rows. New ``best_bets`` rows of a protected
    game are not inserted (the stored, locked version stands); their number is returned under
    ``"best_bets_protected_skipped"``. A table with no rows for a date still clears that date. Returns
    the inserted row count per table. Rows must be the table's row type (``schemas.TABLES[t].row_type``)
    and their ``game_date`` must be one of ``dates``.
``append(table, rows) -> int``
    Inserts rows (append-only tables such as ``best_bets_history``).
``upsert_versions(rows_by_table) -> dict[str, int]``
    Streaming: writes versioned rows of ``schemas.VERSIONED_TABLES`` (line diagnostics, gate decisions,
    predictions, consensus of one player-game version) in one transaction, replacing any stored rows of
    the same ``(game_date, game_id, player_lookup, version)`` in those tables, so a replayed version
    never duplicates. Rows of version 0 (a batch run's) are refused: only ``replace_dates`` writes them.
    :func:`latest_versions` keeps the current rows (highest version per player-game) for readers.
``insert_run(run)`` / ``finish_run(run_id, finished_at, status, counts_json)``
    The ``runs`` table: one row per run, completed at the end.
``query(sql, params=None) -> list[dict]``
    A read helper (SQL in the implementation's dialect; params positional ``?``).
``read_table(table, game_dates=None) -> pandas.DataFrame``
    A whole table or the given dates of a partitioned table.
``read_rows(table, game_dates=None) -> list[tuple]``
    The same as typed rows (the table's row type): what the exports are built from after a commit.

Runs that died: :func:`abandon_dead_runs` (called at every launch) finishes the ``running`` rows whose
process is gone as ``abandoned`` (same host: the recorded pid no longer exists; another host: started more
than ``STALE_RUN_HOURS`` ago); :func:`run_is_abandoned` is the rule.

The slate sink is ``pipeline.io.slate_sink.WriteSlateOutputs`` (one transaction per date through
``replace_dates``, then the exports); on BigQuery the rows go through Beam's ``WriteToBigQuery`` first
(``pipeline.io.bigquery.WriteToBigQueryWarehouse``).

DuckDB allows one writer per file: a connection is opened per operation (retrying with exponential
backoff while another process holds the lock, a clear ``WarehouseLockTimeout`` after ``lock_timeout_s``)
and closed right after, so two concurrent runs of the same date serialise and the last one's rows are
the final, consistent set. Tables are created from ``schemas.duckdb_ddl`` on open; columns added to a
row type later are added to an existing table (``ALTER TABLE ... ADD COLUMN``, the simple migration).
"""

from __future__ import annotations

import abc
import contextlib
import datetime as dt
import functools
import importlib
import json
import logging
import os
import random
import time
import typing
from collections.abc import Collection, Iterable, Iterator, Mapping
from typing import Any

import pyarrow as pa

from pipeline import schemas

log = logging.getLogger(__name__)

# The game_date-partitioned tables a slate run writes (replace_dates' default).
SLATE_TABLES: tuple[str, ...] = (
    "line_diagnostics", "gate_decisions", "predictions", "consensus", "best_bets", "filter_summary",
    "dead_letters",
)

_ARROW_TYPES: dict[object, pa.DataType] = {
    str: pa.string(),
    int: pa.int64(),
    float: pa.float64(),
    bool: pa.bool_(),
    dt.date: pa.date32(),
    dt.datetime: pa.timestamp("us", tz="UTC"),
}


@functools.cache
def arrow_schema(row_type: type) -> pa.Schema:
    """The Arrow schema of a row type (same column types as ``schemas.duckdb_ddl``); computed once per
    row type (it reads the type hints: ~0.5 ms, paid by every small streamed write before)."""
    fields = []
    for name, base, _nullable, repeated in schemas.columns(row_type):
        typ = _ARROW_TYPES[base]
        fields.append(pa.field(name, pa.list_(typ) if repeated else typ))
    return pa.schema(fields)


def rows_to_arrow(table: str, rows: Iterable[tuple]) -> pa.Table:
    """A pyarrow Table of rows of ``schemas.TABLES[table].row_type`` (columnar, no per-row inserts)."""
    spec = schemas.TABLES[table]
    schema = arrow_schema(spec.row_type)
    rows = list(rows)
    n_fields = len(spec.row_type._fields)
    for row in rows:
        if type(row) is not spec.row_type and getattr(row, "_fields", None) != spec.row_type._fields:
            raise TypeError(f"table {table!r} takes {spec.row_type.__name__} rows, got {type(row).__name__}")
    cols = list(zip(*rows, strict=True)) if rows else [()] * n_fields
    arrays = []
    for field, values in zip(schema, cols, strict=True):
        try:
            arrays.append(pa.array(values, type=field.type))
        except (pa.ArrowException, TypeError, ValueError) as e:
            raise TypeError(f"table {table!r} column {field.name!r}: {e}") from e
    return pa.Table.from_arrays(arrays, schema=schema)


class WarehouseLockTimeout(RuntimeError):
    """The warehouse file stayed locked by another process for longer than the timeout."""


class Warehouse(abc.ABC):
    """The warehouse interface; see the module docstring for each method's contract."""

    uri: str

    @contextlib.contextmanager
    def session(self) -> Iterator[Warehouse]:
        """A burst of calls from this thread (a launch's graded-history reads, its runs row) sharing
        what can be shared; here nothing (each call stands alone). Yields the warehouse."""
        yield self

    @abc.abstractmethod
    def replace_dates(
        self,
        dates: Iterable[dt.date],
        rows_by_table: Mapping[str, Iterable[tuple]],
        *,
        protected_pick_game_ids: Collection[str] = (),
        tables: Collection[str] | None = None,
    ) -> dict[str, int]: ...

    @abc.abstractmethod
    def append(self, table: str, rows: Iterable[tuple]) -> int: ...

    @abc.abstractmethod
    def upsert_picks(self, picks: Iterable[tuple], history: Iterable[tuple]) -> int:
        """Streaming: in one transaction, replaces the ``best_bets`` rows of these picks (by pick_id) with
        their latest versions and writes their ``best_bets_history`` rows, idempotent on
        (pick_id, version) so a redelivered change never duplicates. Returns the history rows written."""

    @abc.abstractmethod
    def upsert_versions(self, rows_by_table: Mapping[str, Iterable[tuple]]) -> dict[str, int]:
        """Streaming: versioned rows (see the module docstring); returns the rows written per table."""

    @abc.abstractmethod
    def append_pick_history(self, history: Iterable[tuple]) -> int:
        """Streaming: appends ``best_bets_history`` rows, idempotent on (pick_id, version) for readers
        (BigQuery: ``insertAll`` with insert ids, no load job, DDL or transaction; DuckDB: one short
        transaction). Returns the rows given (one per (pick_id, version))."""

    @abc.abstractmethod
    def latest_picks(self, game_dates: Iterable[dt.date]) -> list[tuple]:
        """Streaming: the latest version of each pick of ``game_dates`` in ``best_bets_history``
        (``BestBetHistory`` rows by pick_id; BigQuery reads the ``best_bets_latest`` view)."""

    @abc.abstractmethod
    def append_dead_letters(self, rows: Iterable[tuple]) -> int:
        """Streaming: one batch of dead letters in one write (:func:`dead_letter_batch`); rows written."""

    @abc.abstractmethod
    def insert_run(self, run: schemas.RunRecord) -> None: ...

    @abc.abstractmethod
    def finish_run(self, run_id: str, finished_at: dt.datetime, status: str, counts_json: str) -> None: ...

    @abc.abstractmethod
    def query(self, sql: str, params: Iterable[Any] | None = None) -> list[dict]: ...

    @abc.abstractmethod
    def read_table(self, table: str, game_dates: Iterable[dt.date] | None = None): ...

    @abc.abstractmethod
    def read_rows(self, table: str, game_dates: Iterable[dt.date] | None = None) -> list[tuple]: ...


def unique_picks(picks: Iterable[tuple], history: Iterable[tuple]) -> tuple[list, list]:
    """The rows an ``upsert_picks`` writes: one per pick_id (the last given), one per (pick_id, version)."""
    unique = sorted({p.pick_id: p for p in picks}.values(), key=lambda p: p.pick_id)
    return unique, list({(h.pick_id, h.version): h for h in history}.values())


def latest_versions(rows: Iterable[tuple]) -> list[tuple]:
    """The current rows of a versioned table: per player-game (game_date, game_id, player_lookup), only the
    rows of its highest ``version`` (a batch run's rows are version 0, the stream's 1, 2, ...). Readers
    that want one answer per player-game (grading, exports, reports) filter with this."""
    rows = list(rows)
    top: dict[tuple, int] = {}
    for r in rows:
        k = (r.game_date, r.game_id, r.player_lookup)
        top[k] = max(top.get(k, 0), r.version or 0)
    return [r for r in rows if (r.version or 0) == top[(r.game_date, r.game_id, r.player_lookup)]]


def latest_history(rows: Iterable[tuple]) -> list[tuple]:
    """Per pick_id, the history row of the highest (version, changed_at): what ``best_bets_latest`` shows."""
    top: dict[str, tuple] = {}
    for r in rows:
        have = top.get(r.pick_id)
        if have is None or (r.version, r.changed_at) > (have.version, have.changed_at):
            top[r.pick_id] = r
    return [top[k] for k in sorted(top)]


def dead_letter_batch(rows: Iterable[tuple]) -> list[tuple]:
    """The rows an ``append_dead_letters`` call writes: error and payload cut by ``schemas.clip_text``
    (the one truncation), exact duplicates (a redelivered element) once, order kept."""
    out: dict[tuple, tuple] = {}
    for r in rows:
        r = r._replace(error=schemas.clip_text(r.error), payload=schemas.clip_text(r.payload))
        out.setdefault(tuple(r), r)
    return list(out.values())


def version_key(row: tuple) -> tuple:
    """A versioned row's ``schemas.VERSION_KEY``: (game_date, game_id, player_lookup, version)."""
    return tuple(getattr(row, k) for k in schemas.VERSION_KEY)


def version_rows(rows_by_table: Mapping[str, Iterable[tuple]]) -> dict[str, tuple[list, list[tuple]]]:
    """Checks the rows of an ``upsert_versions`` call: per table (its rows, the distinct version keys
    ``(game_date, game_id, player_lookup, version)`` they cover). ValueError for a table that is not
    versioned or a row of version 0 / None."""
    out: dict[str, tuple[list, list[tuple]]] = {}
    for table, rows in rows_by_table.items():
        if table not in schemas.VERSIONED_TABLES:
            raise ValueError(f"table {table!r} is not versioned; expected one of {schemas.VERSIONED_TABLES}")
        rows = list(rows)
        keys: set[tuple] = set()
        for r in rows:
            if not r.version:
                raise ValueError(f"{table}: a streamed row needs a version >= 1, got {r.version!r}")
            keys.add(version_key(r))
        if rows:
            out[table] = (rows, sorted(keys, key=str))
    return out


def _check_replace_args(dates: list[dt.date], rows_by_table: Mapping[str, Iterable[tuple]],
                        tables: Collection[str]) -> None:
    for t in tables:
        spec = schemas.TABLES.get(t)
        if spec is None:
            raise ValueError(f"unknown table {t!r}")
        if spec.partition != "game_date":
            raise ValueError(f"table {t!r} is not partitioned by game_date; use append()")
    extra = set(rows_by_table) - set(tables)
    if extra:
        raise ValueError(
            f"rows given for tables not being replaced: {sorted(extra)} (tables={sorted(tables)})")
    if not dates:
        raise ValueError("replace_dates needs at least one date")


class DuckDBWarehouse(Warehouse):
    """The warehouse in one DuckDB file (the local default ``./warehouse/props.duckdb``)."""

    def __init__(self, path: str, *, lock_timeout_s: float = 60.0):
        self.path = os.path.abspath(path)
        self.uri = f"duckdb://{self.path}"
        self.lock_timeout_s = lock_timeout_s
        self._held: tuple[int, Any] | None = None  # (thread id, connection) of an open session
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        with self._connect() as con:
            self._create_tables(con)

    # -- connections ----------------------------------------------------------------------------

    @contextlib.contextmanager
    def session(self) -> Iterator[Warehouse]:
        """One connection for every call this thread makes inside the block (a launch's dozen
        graded-history reads and runs-table calls: ~20 ms per connection otherwise). The file stays
        locked against other processes while the block runs, so a launch holds a session only around
        its own short calls, never around the pipeline. Nested sessions share the outer one; calls
        from other threads open their own connections as usual."""
        import threading

        if self._held is not None:
            yield self
            return
        with self._connect() as con:
            self._held = (threading.get_ident(), con)
            try:
                yield self
            finally:
                self._held = None

    @contextlib.contextmanager
    def _connect(self) -> Iterator[Any]:
        held = self._held
        if held is not None:
            import threading

            if held[0] == threading.get_ident():
                yield held[1]
                return
        import duckdb

        deadline = time.monotonic() + self.lock_timeout_s
        delay = 0.05
        while True:
            try:
                con = duckdb.connect(self.path)
                break
            except duckdb.IOException as e:
                if "lock" not in str(e).lower():
                    raise
                if time.monotonic() >= deadline:
                    raise WarehouseLockTimeout(
                        f"warehouse {self.path} is locked by another process for more than "
                        f"{self.lock_timeout_s:.0f} s: {e}") from e
                time.sleep(min(delay * (1 + random.random()), max(0.0, deadline - time.monotonic())))
                delay = min(delay * 2, 2.0)
        try:
            con.execute("SET TimeZone = 'UTC'")
            yield con
        finally:
            con.close()

    @staticmethod
    def _create_tables(con: Any) -> None:
        """Creates missing tables and adds missing columns (a file from an older version). One catalog
        query when nothing is missing (every launch and every sink opens the file: a DDL statement and a
        query per table took ~60 ms)."""
        existing: dict[str, set[str]] = {}
        for table, column in con.execute(
                "SELECT table_name, column_name FROM information_schema.columns "
                "WHERE table_schema = current_schema()").fetchall():
            existing.setdefault(table, set()).add(column)
        for spec in schemas.TABLES.values():
            ddl = schemas.duckdb_ddl(spec)
            have = existing.get(spec.name)
            if have is None:
                con.execute(ddl)
                continue
            for col_def in ddl.split("(", 1)[1].rsplit(")", 1)[0].split(", "):
                name = col_def.split('"')[1]
                if name not in have:
                    con.execute(f'ALTER TABLE "{spec.name}" ADD COLUMN {col_def}')

    @staticmethod
    def _insert(con: Any, table: str, rows: list[tuple]) -> int:
        if not rows:
            return 0
        props_new_rows = rows_to_arrow(table, rows)
        cols = ", ".join(f'"{c}"' for c in props_new_rows.column_names)
        # DuckDB reads the Arrow table through its replacement scan of this frame's local variable: no
        # view registered and dropped per insert (~2 ms against ~5 ms for a streamed write of a few rows).
        con.execute(f'INSERT INTO "{table}" ({cols}) SELECT {cols} FROM props_new_rows')
        return len(rows)

    # -- the interface -------------------------------------------------------------------------

    def replace_dates(
        self,
        dates: Iterable[dt.date],
        rows_by_table: Mapping[str, Iterable[tuple]],
        *,
        protected_pick_game_ids: Collection[str] = (),
        tables: Collection[str] | None = None,
    ) -> dict[str, int]:
        dates = sorted(set(dates))
        tables = tuple(SLATE_TABLES if tables is None else tables)
        _check_replace_args(dates, rows_by_table, tables)
        date_set = set(dates)
        protected = set(protected_pick_game_ids)
        staged: dict[str, list[tuple]] = {}
        skipped = 0
        for t in tables:
            rows = list(rows_by_table.get(t, ()))
            for row in rows:
                if row.game_date not in date_set:
                    raise ValueError(f"{t} row for {row.game_date} outside the replaced dates {dates}")
            if t == "best_bets" and protected:
                kept = [r for r in rows if r.game_id not in protected]
                skipped += len(rows) - len(kept)
                rows = kept
            staged[t] = rows
        # Build the Arrow tables before taking the lock, so type errors never hold it.
        for t, rows in staged.items():
            rows_to_arrow(t, rows)
        counts: dict[str, int] = {}
        placeholders = ", ".join("?" for _ in dates)
        with self._connect() as con:
            con.execute("BEGIN TRANSACTION")
            try:
                for t in tables:
                    sql = f'DELETE FROM "{t}" WHERE game_date IN ({placeholders})'
                    params: list[Any] = list(dates)
                    if t == "best_bets" and protected:
                        sql += f" AND game_id NOT IN ({', '.join('?' for _ in protected)})"
                        params += sorted(protected)
                    con.execute(sql, params)
                    counts[t] = self._insert(con, t, staged[t])
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
        if skipped:
            counts["best_bets_protected_skipped"] = skipped
            log.info("kept %d stored picks of started games; skipped their new versions", skipped)
        return counts

    def append(self, table: str, rows: Iterable[tuple]) -> int:
        rows = list(rows)
        rows_to_arrow(table, rows)
        with self._connect() as con:
            return self._insert(con, table, rows)

    def insert_run(self, run: schemas.RunRecord) -> None:
        self.append("runs", [run])

    def finish_run(self, run_id: str, finished_at: dt.datetime, status: str, counts_json: str) -> None:
        with self._connect() as con:
            con.execute("UPDATE runs SET finished_at = ?, status = ?, counts = ? WHERE run_id = ?",
                        [finished_at, status, counts_json, run_id])

    def query(self, sql: str, params: Iterable[Any] | None = None) -> list[dict]:
        with self._connect() as con:
            cur = con.execute(sql, list(params) if params is not None else None)
            names = [d[0] for d in cur.description] if cur.description else []
            return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]

    @staticmethod
    def _select(table: str, columns: str, game_dates: Iterable[dt.date] | None) -> tuple[Any, str, list]:
        """(spec, SQL, params) reading ``columns`` of ``table``, restricted to ``game_dates`` when given."""
        spec = schemas.TABLES.get(table)
        if spec is None:
            raise ValueError(f"unknown table {table!r}")
        sql = f'SELECT {columns} FROM "{table}"'
        params: list[Any] = []
        if game_dates is not None:
            if spec.partition != "game_date":
                raise ValueError(f"table {table!r} has no game_date partition")
            params = sorted(set(game_dates))
            sql += f" WHERE game_date IN ({', '.join('?' for _ in params)})" if params else " WHERE false"
        return spec, sql, params

    def read_table(self, table: str, game_dates: Iterable[dt.date] | None = None):
        _spec, sql, params = self._select(table, "*", game_dates)
        with self._connect() as con:
            return con.sql(sql, params=params or None).to_arrow_table().to_pandas()

    def read_rows(self, table: str, game_dates: Iterable[dt.date] | None = None) -> list[tuple]:
        fields = schemas.TABLES[table].row_type._fields if table in schemas.TABLES else ()
        spec, sql, params = self._select(table, ", ".join(f'"{c}"' for c in fields) or "*", game_dates)
        with self._connect() as con:
            data = con.sql(sql, params=params or None).to_arrow_table()
        repeated = {name for name, _b, _n, rep in schemas.columns(spec.row_type) if rep}
        columns = []
        for name in spec.row_type._fields:
            values = data.column(name).to_pylist()
            if name in repeated:
                values = [tuple(v or ()) for v in values]
            columns.append(values)
        return [spec.row_type(*values) for values in zip(*columns, strict=True)] if columns else []

    def upsert_picks(self, picks: Iterable[tuple], history: Iterable[tuple]) -> int:
        picks, history = unique_picks(picks, history)
        if not picks and not history:
            return 0
        with self._connect() as con:  # one short transaction; DuckDB allows one writer process
            con.execute("BEGIN TRANSACTION")
            try:
                if picks:
                    ids = [p.pick_id for p in picks]
                    marks = ", ".join("?" for _ in ids)
                    con.execute(f"DELETE FROM best_bets WHERE pick_id IN ({marks})", ids)
                    self._insert(con, "best_bets", picks)
                for h in history:
                    con.execute("DELETE FROM best_bets_history WHERE pick_id = ? AND version = ?",
                                [h.pick_id, h.version])
                if history:
                    self._insert(con, "best_bets_history", history)
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
        return len(history)

    def append_pick_history(self, history: Iterable[tuple]) -> int:
        return self.upsert_picks((), history)

    def latest_picks(self, game_dates: Iterable[dt.date]) -> list[tuple]:
        dates = sorted(set(game_dates))
        if not dates:
            return []
        rows = [r for r in self.read_rows("best_bets_history") if r.game_date in set(dates)]
        return latest_history(rows)

    def append_dead_letters(self, rows: Iterable[tuple]) -> int:
        return self.append("dead_letters", dead_letter_batch(rows))

    def table_exists(self, table: str) -> bool:
        """Whether ``table`` exists (graded-history reads tell "none yet" from a failure)."""
        rows = self.query("SELECT count(*) AS n FROM information_schema.tables WHERE table_name = ?", [table])
        return rows[0]["n"] > 0

    def table_sql(self, table: str) -> str:
        """``table`` as written in this warehouse's SQL."""
        return f'"{table}"'


    def upsert_versions(self, rows_by_table: Mapping[str, Iterable[tuple]]) -> dict[str, int]:
        staged = version_rows(rows_by_table)
        if not staged:
            return {}
        for t, (rows, _keys) in staged.items():
            rows_to_arrow(t, rows)  # type errors before the lock
        key_schema = pa.schema([pa.field("game_date", pa.date32()), pa.field("game_id", pa.string()),
                                pa.field("player_lookup", pa.string()), pa.field("version", pa.int64())])
        match = " AND ".join(f't."{k}" = k."{k}"' for k in schemas.VERSION_KEY)
        counts: dict[str, int] = {}
        with self._connect() as con:
            con.execute("BEGIN TRANSACTION")
            try:
                for t, (rows, keys) in staged.items():
                    props_keys = pa.table(list(zip(*keys, strict=True)), schema=key_schema)  # noqa: F841
                    con.execute(f'DELETE FROM "{t}" t USING props_keys k WHERE {match}')  # (see _insert)
                    counts[t] = self._insert(con, t, rows)
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
        return counts


def open_warehouse(uri: str, **kwargs: Any) -> Warehouse:
    """The warehouse for a URI (see the module docstring); keyword arguments go to the implementation."""
    if uri.startswith("bigquery://"):
        target = uri[len("bigquery://"):]
        project, _, dataset = target.partition(".")
        if not project or not dataset:
            raise ValueError(f"expected bigquery://PROJECT.DATASET, got {uri!r}")
        try:
            bigquery = importlib.import_module("pipeline.io.bigquery")  # optional module, added later
        except ModuleNotFoundError as e:
            if e.name != "pipeline.io.bigquery":
                raise
            raise NotImplementedError(
                f"{uri}: the BigQuery warehouse (pipeline/io/bigquery.py) is not implemented yet; "
                "use duckdb:///path/props.duckdb") from None
        return bigquery.BigQueryWarehouse(project, dataset, **kwargs)
    if uri.startswith("duckdb://"):
        path = uri[len("duckdb://"):]
    elif "://" in uri:
        raise ValueError(f"unsupported warehouse URI {uri!r}: expected duckdb:///PATH, a path, "
                         "or bigquery://PROJECT.DATASET")
    else:
        path = uri
    if not path:
        raise ValueError(f"warehouse URI {uri!r} has no path")
    return DuckDBWarehouse(path, **kwargs)


# ------------------------------------------------------------------------------------------------
# Runs that died
# ------------------------------------------------------------------------------------------------

# A ``running`` row of another host (whose pid cannot be checked from here) is abandoned after this long.
STALE_RUN_HOURS = 24.0


def pid_alive(pid: int) -> bool:
    """Whether a process with this id exists on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def run_is_abandoned(run: schemas.RunRecord, *, host: str, now: dt.datetime,
                     alive: typing.Callable[[int], bool] = pid_alive,
                     stale_after: dt.timedelta = dt.timedelta(hours=STALE_RUN_HOURS)) -> bool:
    """Whether a ``running`` row belongs to a process that is gone: on this host, its pid no longer
    exists; elsewhere (or with no pid recorded), it started more than ``stale_after`` ago."""
    if run.status != "running":
        return False
    if run.host == host and run.pid is not None:
        return run.pid != os.getpid() and not alive(run.pid)
    started = run.started_at if run.started_at.tzinfo else run.started_at.replace(tzinfo=dt.UTC)
    return now - started > stale_after


def abandon_dead_runs(warehouse: Warehouse, *, host: str, now: dt.datetime | None = None) -> list[str]:
    """Finishes every ``running`` row whose process is gone (:func:`run_is_abandoned`) as ``abandoned``;
    returns their run ids (the launching command says so in its summary)."""
    now = now or dt.datetime.now(dt.UTC)
    gone = [r for r in warehouse.read_rows("runs") if run_is_abandoned(r, host=host, now=now)]
    for r in gone:
        note = {"abandoned": f"found running at {now.isoformat()} with its process gone "
                             f"(host {r.host}, pid {r.pid})", "counts": r.counts}
        warehouse.finish_run(r.run_id, now, "abandoned", json.dumps(note, default=str))
    return [r.run_id for r in gone]

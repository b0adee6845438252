"""BigQuery: the production warehouse (every contract table) and the production raw inputs.

Warehouse (``--warehouse bigquery://PROJECT.DATASET``): :class:`BigQueryWarehouse` implements the
``pipeline.io.warehouse.Warehouse`` interface with the google-cloud-bigquery client. Tables are created
from ``schemas.bigquery_schema`` (the typed rows), partitioned by day on ``game_date`` and clustered by
``TableSpec.cluster``; columns added to a row type later are added to the table (schema update).
``replace_dates`` stages the new rows with one load job per table into a per-call staging table, then runs
ONE multi-statement transaction::

    BEGIN TRANSACTION;
    DELETE FROM t WHERE game_date IN UNNEST(@dates) [AND game_id NOT IN UNNEST(@protected)];
    INSERT INTO t (cols) SELECT cols FROM staging_t;      -- for every table
    COMMIT TRANSACTION;

so a re-run replaces exactly the dates it covers, a zero-row re-run clears them, picks of started games are
kept, and two concurrent runs serialise (BigQuery aborts the later transaction on a conflict; it is retried)
leaving one consistent set. Partition decorators (``t$20260222``) are deliberately not used: DELETE+INSERT
runs on real BigQuery and on the emulator alike.

Streaming history: ``best_bets_history`` is append-only (``append``); the view ``best_bets_latest`` exposes
the latest version of each pick without duplicates (``QUALIFY ROW_NUMBER() ... = 1``).

The Beam sink: :class:`WriteToBigQueryWarehouse` takes the slate's ``(table, row)`` pairs (the input of
``slate_sink.WriteSlateOutputs``) and writes them with Beam's own ``WriteToBigQuery`` (explicit schemas,
STREAMING_INSERTS, ``RETRY_ON_TRANSIENT_ERROR``) into per-job staging tables created up front with a
one-day expiry; rows BigQuery rejects for good become ``dead_letters`` rows (``rejected_dead_letter``);
then ALL the job's dates (a backfill chunk of 14 dates too) are promoted from staging in ONE transaction
(the same SQL as ``replace_dates``), retried with bounded exponential backoff when a concurrent transaction
wins (``txn_backoff_caps``: up to 30 minutes). Why staging + promote rather than ``WRITE_TRUNCATE`` on a
partition: Beam's file loads to ``t$YYYYMMDD`` replace a partition but are not atomic across the seven
slate tables, and the emulator does not implement decorators; staging + one transaction gives the same
idempotence, keeps the protected-picks rule, and is tested here.

Streaming (``props stream``): :meth:`BigQueryWarehouse.append_pick_history` appends history rows with
``insertAll`` and insert ids (no load job, no DDL, no DML), readers take the latest version from the
``best_bets_latest`` view (:meth:`BigQueryWarehouse.latest_picks`), and
:meth:`BigQueryWarehouse.append_dead_letters` writes a batch of dead letters with one load job. The design
against BigQuery's quotas is in ``notes/h-bq.md``.

Inputs (``--inputs bigquery://PROJECT.DATASET``): one query per kind and run,
``SELECT * FROM DATASET.KIND WHERE game_date IN UNNEST(@dates)`` (a partition filter), each record parsed
by ``pipeline.io.parse.parse_record`` into the same typed rows as the file sources (NUMERIC -> Decimal ->
float at that boundary); bad records become dead letters. :func:`raw_table_schema` is the raw tables'
schema (the input fields; features as 55 named FLOAT64 columns; ``odds.line`` NUMERIC).

Every function takes the URI or project/dataset; the client comes from ``pipeline.io.cloud`` (ADC in
production, anonymous against the emulator after ``cloud.configure(options)``).
"""

from __future__ import annotations

import datetime as dt
import io
import json
import logging
import math
import random
import re
import time
import uuid
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from decimal import Decimal
from typing import Any

import apache_beam as beam

from pipeline import schemas
from pipeline.io import cloud
from pipeline.io.parse import ParseError, dead_letter, parse_record, raw_event_time, raw_game_date
from pipeline.io.warehouse import (
    SLATE_TABLES,
    Warehouse,
    _check_replace_args,
    dead_letter_batch,
    unique_picks,
    version_rows,
)

log = logging.getLogger(__name__)

LATEST_PICKS_VIEW = "best_bets_latest"
STAGING_PREFIX = "_staging_"
# Staging tables expire on their own a day after creation (a crashed job leaves nothing behind for long);
# a job drops them as soon as its transaction committed.
STAGING_TTL = dt.timedelta(days=1)
# Conflict retry of a replace / upsert transaction: BigQuery aborts a transaction that mutates a table
# another transaction is mutating ("Transaction is aborted due to concurrent update"). Bounded exponential
# backoff with full jitter: waits drawn from [0, min(MAX, FIRST * 2**n)], i.e. caps of 2, 4, 8, 16, 32, 64
# then 120 s, until TXN_RETRY_BUDGET_S of waiting has passed (about 20 attempts). A 14-date backfill
# transaction over the seven slate tables takes tens of seconds to a few minutes on BigQuery, so 30 minutes
# outlasts several other jobs' transactions queued ahead of it; past that the job fails loudly.
TXN_BACKOFF_FIRST_S = 2.0
# insertAll request size: BigQuery recommends at most 500 rows per request (10 MB hard limit).
STREAM_INSERT_CHUNK = 500
TXN_BACKOFF_MAX_S = 120.0
TXN_RETRY_BUDGET_S = 30 * 60.0


# ------------------------------------------------------------------------------------------------
# Schemas and row encoding
# ------------------------------------------------------------------------------------------------


def table_schema(table: str) -> list:
    """``SchemaField``s of a contract table, from its row type (``schemas.bigquery_schema``)."""
    from google.cloud import bigquery

    return [bigquery.SchemaField(f["name"], f["type"], mode=f["mode"])
            for f in schemas.bigquery_schema(schemas.TABLES[table].row_type)]


def beam_table_schema(table: str) -> dict:
    """The same schema in the dict form ``beam.io.WriteToBigQuery(schema=...)`` takes."""
    return {"fields": schemas.bigquery_schema(schemas.TABLES[table].row_type)}


def raw_table_schema(kind: str) -> list[dict]:
    """Schema of a raw input table: the input row's fields; features as 55 named columns."""
    fields = []
    for f in schemas.bigquery_schema(schemas.INPUT_KINDS[kind]):
        if kind == "features" and f["name"] == "features":
            fields += [{"name": n, "type": "FLOAT64", "mode": "NULLABLE"} for n in schemas.FEATURE_NAMES]
            continue
        if kind == "odds" and f["name"] == "line":
            f = {**f, "type": "NUMERIC"}  # books quote half points: exact decimals upstream
        fields.append(f)
    return fields


def _json_value(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC).isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, float):
        return None if math.isnan(value) or math.isinf(value) else value
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, (tuple, list)):
        return [_json_value(v) for v in value]
    if hasattr(value, "item"):  # numpy scalars
        return _json_value(value.item())
    return value


def row_to_json(row: tuple) -> dict:
    """A typed row as a BigQuery JSON row (DATE/TIMESTAMP as ISO strings, tuples as arrays, NaN -> NULL)."""
    return {name: _json_value(value) for name, value in zip(row._fields, row, strict=True)}


def json_to_row(table: str, record: Mapping[str, Any]) -> tuple:
    """A BigQuery result row back as the table's typed row (REPEATED -> tuple, NUMERIC -> float)."""
    spec = schemas.TABLES[table]
    values = []
    for name, base, _nullable, repeated in schemas.columns(spec.row_type):
        v = record.get(name)
        if repeated:
            v = tuple(v or ())
        elif isinstance(v, Decimal):
            v = float(v)
        elif base is float and isinstance(v, int) and not isinstance(v, bool):
            v = float(v)
        values.append(v)
    return spec.row_type(*values)


def _param(name: str | None, value: Any):
    from google.cloud import bigquery

    if isinstance(value, (list, tuple, set, frozenset)):
        items = sorted(value)
        return bigquery.ArrayQueryParameter(name, _bq_type(items[0] if items else ""), items)
    return bigquery.ScalarQueryParameter(name, _bq_type(value), value)


def _bq_type(value: Any) -> str:
    if isinstance(value, bool):
        return "BOOL"
    if isinstance(value, int):
        return "INT64"
    if isinstance(value, float):
        return "FLOAT64"
    if isinstance(value, Decimal):
        return "NUMERIC"
    if isinstance(value, dt.datetime):
        return "TIMESTAMP"
    if isinstance(value, dt.date):
        return "DATE"
    return "STRING"


# ------------------------------------------------------------------------------------------------
# The warehouse
# ------------------------------------------------------------------------------------------------


_SAFE_ID = re.compile(r"^[A-Za-z0-9_.:-]+$")


def _date_list(dates: Iterable[dt.date]) -> str:
    return ", ".join(f"DATE '{d.isoformat()}'" for d in sorted(set(dates)))


def _string_list(values: Iterable[str]) -> str:
    values = sorted(set(values))
    for v in values:
        if not _SAFE_ID.match(v):
            raise ValueError(f"unsafe identifier in a replace script: {v!r}")
    return ", ".join(f"'{v}'" for v in values)


def replace_script(project: str, dataset: str, tables: Iterable[str],
                   staging: Mapping[str, str | tuple[str, ...]], dates: Iterable[dt.date], *,
                   protected: Collection[str] = ()) -> str:
    """The one-transaction SQL script that replaces ``dates`` of ``tables`` from staging tables (one
    staging table per table, or several whose rows are inserted together).

    Dates and protected game ids are inlined as literals (dates are ``datetime.date``, ids are checked
    against ``[A-Za-z0-9_.:-]``): the emulator does not pass query parameters into script statements.
    """
    in_dates = f"game_date IN ({_date_list(dates)})"
    keep = f" AND game_id NOT IN ({_string_list(protected)})" if protected else ""
    lines = ["BEGIN TRANSACTION;"]
    for t in tables:
        target = f"`{project}.{dataset}.{t}`"
        where = in_dates + (keep if t == "best_bets" else "")
        lines.append(f"DELETE FROM {target} WHERE {where};")
        if t in staging:
            cols = ", ".join(f"`{c}`" for c in schemas.TABLES[t].row_type._fields)
            sources = (staging[t],) if isinstance(staging[t], str) else tuple(staging[t])
            src = f"`{project}.{dataset}.{sources[0]}`" if len(sources) == 1 else "(" + " UNION ALL ".join(
                f"SELECT {cols} FROM `{project}.{dataset}.{s}`" for s in sources) + ")"
            lines.append(f"INSERT INTO {target} ({cols}) SELECT {cols} FROM {src} WHERE {where};")
    lines.append("COMMIT TRANSACTION;")
    return "\n".join(lines)


def upsert_picks_script(project: str, dataset: str, staging: Mapping[str, str]) -> str:
    """The one-transaction script of :meth:`BigQueryWarehouse.upsert_picks` (keys come from staging)."""
    lines = ["BEGIN TRANSACTION;"]
    keys = {"best_bets": ("pick_id",), "best_bets_history": ("pick_id", "version")}
    for t in ("best_bets", "best_bets_history"):
        if t not in staging:
            continue
        target, src = f"`{project}.{dataset}.{t}`", f"`{project}.{dataset}.{staging[t]}`"
        match = " AND ".join(f"s.`{k}` = t.`{k}`" for k in keys[t])
        lines.append(f"DELETE FROM {target} t WHERE EXISTS (SELECT 1 FROM {src} s WHERE {match});")
        cols = ", ".join(f"`{c}`" for c in schemas.TABLES[t].row_type._fields)
        lines.append(f"INSERT INTO {target} ({cols}) SELECT {cols} FROM {src};")
    lines.append("COMMIT TRANSACTION;")
    return "\n".join(lines)


def upsert_versions_script(project: str, dataset: str, staging: Mapping[str, str]) -> str:
    """The one-transaction script of :meth:`BigQueryWarehouse.upsert_versions`: per table, the staged
    rows replace the stored rows of the same (game_date, game_id, player_lookup, version)."""
    lines = ["BEGIN TRANSACTION;"]
    match = " AND ".join(f"s.`{k}` = t.`{k}`" for k in schemas.VERSION_KEY)
    for t in schemas.VERSIONED_TABLES:
        if t not in staging:
            continue
        target, src = f"`{project}.{dataset}.{t}`", f"`{project}.{dataset}.{staging[t]}`"
        lines.append(f"DELETE FROM {target} t WHERE EXISTS (SELECT 1 FROM {src} s WHERE {match});")
        cols = ", ".join(f"`{c}`" for c in schemas.TABLES[t].row_type._fields)
        lines.append(f"INSERT INTO {target} ({cols}) SELECT {cols} FROM {src};")
    lines.append("COMMIT TRANSACTION;")
    return "\n".join(lines)


def txn_backoff_caps(first: float = TXN_BACKOFF_FIRST_S, cap: float = TXN_BACKOFF_MAX_S,
                     budget: float = TXN_RETRY_BUDGET_S) -> list[float]:
    """The upper bounds of the waits between conflict retries: ``first * 2**n`` capped at ``cap``, as many
    as fit in ``budget`` seconds in total. Each wait is drawn uniformly from ``[0, bound]`` (full jitter:
    two jobs that conflicted do not retry in lockstep)."""
    caps: list[float] = []
    bound, total = first, 0.0
    while total + bound <= budget:
        caps.append(bound)
        total += bound
        bound = min(cap, bound * 2)
    return caps


def _is_conflict(exc: Exception) -> bool:
    text = str(exc).lower()
    return "concurrent update" in text or "aborted due to concurrent" in text or "could not serialize" in text


class BigQueryWarehouse(Warehouse):
    """The warehouse in one BigQuery dataset (see the module docstring).

    Args:
      project, dataset: where the tables live (``bigquery://PROJECT.DATASET``).
      location: the dataset location used when creating it (default ``US``).
      create: create the dataset, the tables and the ``best_bets_latest`` view when missing.
    """

    def __init__(self, project: str, dataset: str, *, location: str = "US", create: bool = True):
        self.project, self.dataset, self.location = project, dataset, location
        self.uri = f"bigquery://{project}.{dataset}"
        self.client = cloud.bigquery_client(project)
        if create:
            self.ensure_tables()

    @classmethod
    def from_uri(cls, uri: str, **kwargs: Any) -> BigQueryWarehouse:
        project, dataset = cloud.parse_bigquery_uri(uri)
        return cls(project, dataset, **kwargs)

    def _ref(self, table: str) -> str:
        return f"{self.project}.{self.dataset}.{table}"

    # -- tables ---------------------------------------------------------------------------------

    def ensure_tables(self) -> None:
        """Creates the dataset, every contract table (partitioned, clustered) and the latest-picks view."""
        from google.api_core import exceptions as gexc
        from google.cloud import bigquery

        ds = bigquery.Dataset(f"{self.project}.{self.dataset}")
        ds.location = self.location
        self.client.create_dataset(ds, exists_ok=True)
        cloud.check_warehouse_tables(self.uri, self.client)  # never write into another system's table
        for name, spec in schemas.TABLES.items():
            schema = table_schema(name)
            try:
                existing = self.client.get_table(self._ref(name))
            except gexc.NotFound:
                table = bigquery.Table(self._ref(name), schema=schema)
                if spec.partition:
                    table.time_partitioning = bigquery.TimePartitioning(
                        type_=bigquery.TimePartitioningType.DAY, field=spec.partition)
                if spec.cluster:
                    table.clustering_fields = list(spec.cluster)
                self.client.create_table(table, exists_ok=True)
                continue
            have = {f.name for f in existing.schema}
            added = [f for f in schema if f.name not in have]
            if added:  # the simple migration: new row fields become NULLABLE columns
                existing.schema = list(existing.schema) + [
                    bigquery.SchemaField(f.name, f.field_type, mode="REPEATED" if f.mode == "REPEATED"
                                         else "NULLABLE") for f in added]
                self.client.update_table(existing, ["schema"])
                log.info("table %s: added columns %s", name, [f.name for f in added])
        view = bigquery.Table(self._ref(LATEST_PICKS_VIEW))
        view.view_query = latest_picks_sql(self.project, self.dataset)
        self.client.create_table(view, exists_ok=True)

    # -- staging --------------------------------------------------------------------------------

    def create_staging(self, table: str, tag: str | None = None, *, staging: str | None = None) -> str:
        """Creates an empty staging table shaped like ``table`` that expires after ``STAGING_TTL``;
        returns its table id (``staging`` or ``_staging_<table>_<tag>``). Idempotent (a retried bundle may
        call it twice)."""
        staging = staging or f"{STAGING_PREFIX}{table}_{tag or uuid.uuid4().hex[:12]}"
        self.client.create_table(self.staging_table(table, staging), exists_ok=True)
        return staging

    def staging_table(self, table: str, staging: str):
        """The ``bigquery.Table`` a staging table is created from: ``table``'s schema, ``expires`` set to
        now + ``STAGING_TTL`` (bqemulator accepts but does not keep ``expirationTime``)."""
        from google.cloud import bigquery

        dest = bigquery.Table(self._ref(staging), schema=table_schema(table))
        dest.expires = dt.datetime.now(dt.UTC) + STAGING_TTL
        return dest

    def load(self, table_id: str, table: str, rows: Iterable[tuple], *, truncate: bool = False) -> int:
        """Appends typed rows of ``table``'s type to ``table_id`` with ONE load job (NDJSON, WRITE_APPEND;
        WRITE_TRUNCATE with ``truncate``, so a retried call replaces instead of duplicating): no streaming
        buffer, so the rows are visible to DML at once."""
        from google.cloud import bigquery

        rows = list(rows)
        if not rows:
            return 0
        data = "\n".join(json.dumps(row_to_json(r), allow_nan=False) for r in rows).encode("utf-8")
        job_config = bigquery.LoadJobConfig(
            source_format=bigquery.SourceFormat.NEWLINE_DELIMITED_JSON, schema=table_schema(table),
            write_disposition=(bigquery.WriteDisposition.WRITE_TRUNCATE if truncate
                               else bigquery.WriteDisposition.WRITE_APPEND))
        self.client.load_table_from_file(io.BytesIO(data), self._ref(table_id),
                                         job_config=job_config).result()
        return len(rows)

    def stage(self, table: str, rows: list[tuple], *, tag: str | None = None) -> str:
        """Loads rows into a fresh staging table (one load job, NDJSON); returns its table id."""
        staging = self.create_staging(table, tag)
        self.load(staging, table, rows)
        return staging

    def drop(self, tables: Iterable[str]) -> None:
        for t in tables:
            self.client.delete_table(self._ref(t), not_found_ok=True)

    def promote(self, dates: list[dt.date], tables: Iterable[str], staging: Mapping[str, str], *,
                protected_pick_game_ids: Collection[str] = ()) -> None:
        """Runs the replace transaction (retrying when a concurrent transaction wins the conflict)."""

        sql = replace_script(self.project, self.dataset, tables, staging, dates,
                             protected=protected_pick_game_ids)
        self._run_transaction(sql, f"replace of {dates}")

    def _run_transaction(self, sql: str, what: str, *,
                         sleep: Callable[[float], None] = time.sleep) -> int:
        """Runs a multi-statement transaction, retrying when a concurrent transaction wins the conflict
        (bounded exponential backoff with jitter, :func:`txn_backoff_caps`). Returns the attempts used;
        raises the last conflict once the retry budget is spent, any other error at once."""
        caps = txn_backoff_caps()
        for attempt in range(1, len(caps) + 2):
            try:
                self.client.query(sql).result()
                return attempt
            except Exception as exc:
                if not _is_conflict(exc) or attempt > len(caps):
                    raise
                wait = random.uniform(0, caps[attempt - 1])  # noqa: S311 - jitter, not security
                log.warning("%s conflicted with a concurrent transaction (attempt %d): retrying in %.1f s",
                            what, attempt, wait)
                sleep(wait)
        raise AssertionError("unreachable")

    # -- the interface --------------------------------------------------------------------------

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
        date_set, protected = set(dates), set(protected_pick_game_ids)
        staged_rows: dict[str, list[tuple]] = {}
        skipped = 0
        for t in tables:
            rows = list(rows_by_table.get(t, ()))
            for row in rows:
                if type(row) is not schemas.TABLES[t].row_type \
                        and getattr(row, "_fields", None) != schemas.TABLES[t].row_type._fields:
                    raise TypeError(f"table {t!r} takes {schemas.TABLES[t].row_type.__name__} rows, "
                                    f"got {type(row).__name__}")
                if row.game_date not in date_set:
                    raise ValueError(f"{t} row for {row.game_date} outside the replaced dates {dates}")
            if t == "best_bets" and protected:
                kept = [r for r in rows if r.game_id not in protected]
                skipped += len(rows) - len(kept)
                rows = kept
            staged_rows[t] = rows
        tag = uuid.uuid4().hex[:12]
        staging: dict[str, str] = {}
        try:
            for t, rows in staged_rows.items():
                if rows:
                    staging[t] = self.stage(t, rows, tag=tag)
            self.promote(dates, tables, staging, protected_pick_game_ids=protected)
        finally:
            self.drop(staging.values())
        counts = {t: len(rows) for t, rows in staged_rows.items()}
        if skipped:
            counts["best_bets_protected_skipped"] = skipped
        return counts

    def append(self, table: str, rows: Iterable[tuple]) -> int:
        """Appends rows through a load job (WRITE_APPEND): no streaming buffer, rows DML-visible at once."""
        return self.load(table, table, rows)

    def upsert_picks(self, picks: Iterable[tuple], history: Iterable[tuple]) -> int:
        """Streaming: stages the changed picks and their history rows, then one transaction replaces the
        picks' ``best_bets`` rows (by pick_id) and writes the history rows idempotently on
        (pick_id, version). ``best_bets_latest`` (a view over the history) shows one row per pick."""
        picks, history = unique_picks(picks, history)
        if not picks and not history:
            return 0
        tag = uuid.uuid4().hex[:12]
        staging: dict[str, str] = {}
        try:
            if picks:
                staging["best_bets"] = self.stage("best_bets", picks, tag=tag)
            if history:
                staging["best_bets_history"] = self.stage("best_bets_history", history, tag=tag)
            self._run_transaction(upsert_picks_script(self.project, self.dataset, staging), "pick upsert")
        finally:
            self.drop(staging.values())
        return len(history)

    # -- streaming writes (no load job, DDL or transaction per pick change) --------------------------

    def insert_streaming(self, table: str, rows: Iterable[tuple], insert_ids: Iterable[str]) -> int:
        """Appends typed rows with ``insertAll`` (``insert_rows_json``) in chunks of
        ``STREAM_INSERT_CHUNK`` rows, each row with its insert id, so a retried call (a redelivered
        bundle) is deduplicated by BigQuery (best effort, about a minute) and readers dedupe the rest by
        key. No load job, no DDL, no DML: it never conflicts with a batch job's transaction. Raises
        (``RuntimeError``, errors clipped) when BigQuery rejects a row: the caller dead-letters the batch."""
        rows, ids = list(rows), list(insert_ids)
        if len(rows) != len(ids):
            raise ValueError(f"{len(rows)} rows but {len(ids)} insert ids")
        for i in range(0, len(rows), STREAM_INSERT_CHUNK):
            chunk = [row_to_json(r) for r in rows[i:i + STREAM_INSERT_CHUNK]]
            errors = self.client.insert_rows_json(self._ref(table), chunk,
                                                  row_ids=ids[i:i + STREAM_INSERT_CHUNK])
            if errors:
                raise RuntimeError(schemas.clip_text(
                    f"BigQuery rejected {len(errors)} rows of {table}: {json.dumps(errors, default=str)}"))
        return len(rows)

    def append_pick_history(self, history: Iterable[tuple]) -> int:
        """Streaming: appends ``best_bets_history`` rows (one per pick version) with insert id
        ``<pick_id>:<version>``. The stream's current picks are served by the ``best_bets_latest`` view
        (:meth:`latest_picks`): ``best_bets`` stays the batch jobs' table, so the stream never runs a
        transaction against it."""
        rows = list({(h.pick_id, h.version): h for h in history}.values())
        return self.insert_streaming("best_bets_history", rows, [f"{h.pick_id}:{h.version}" for h in rows])

    def latest_picks(self, game_dates: Iterable[dt.date]) -> list[tuple]:
        """The latest version of each streamed pick of some dates (``BestBetHistory`` rows, from the
        ``best_bets_latest`` view: one row per pick_id even when a redelivery duplicated a version)."""
        dates = sorted(set(game_dates))
        if not dates:
            return []
        rows = self.query(f"SELECT * FROM `{self._ref(LATEST_PICKS_VIEW)}` WHERE game_date IN UNNEST(?) "
                          "ORDER BY pick_id", [dates])
        return [json_to_row("best_bets_history", r) for r in rows]

    def append_dead_letters(self, rows: Iterable[tuple]) -> int:
        """Streaming: a BATCH of dead letters (the stream buffers them per window) with ONE load job.
        Payload and error are cut by ``schemas.clip_text`` here too (the one truncation); exact duplicates
        within the batch are written once. A load job (not ``insertAll``) so the batch jobs' DELETE of a
        date never meets rows in the streaming buffer."""
        return self.load("dead_letters", "dead_letters", dead_letter_batch(rows))

    def upsert_versions(self, rows_by_table: Mapping[str, Iterable[tuple]]) -> dict[str, int]:
        """Streaming: stages the versioned rows, then one transaction replaces the stored rows of the same
        player-game versions (idempotent on (game_date, game_id, player_lookup, version))."""
        staged = version_rows(rows_by_table)
        if not staged:
            return {}
        tag = uuid.uuid4().hex[:12]
        staging: dict[str, str] = {}
        try:
            for t, (rows, _keys) in staged.items():
                staging[t] = self.stage(t, rows, tag=tag)
            self._run_transaction(upsert_versions_script(self.project, self.dataset, staging),
                                  "versioned rows upsert")
        finally:
            self.drop(staging.values())
        return {t: len(rows) for t, (rows, _keys) in staged.items()}

    def insert_run(self, run: schemas.RunRecord) -> None:
        self.append("runs", [run])

    def finish_run(self, run_id: str, finished_at: dt.datetime, status: str, counts_json: str) -> None:
        self.query(f"UPDATE `{self._ref('runs')}` SET finished_at = ?, status = ?, counts = ? "
                   "WHERE run_id = ?", [finished_at, status, counts_json, run_id])

    def query(self, sql: str, params: Iterable[Any] | None = None) -> list[dict]:
        """Runs GoogleSQL with positional ``?`` parameters; rows as dicts (NUMERIC stays Decimal)."""
        from google.cloud import bigquery

        config = bigquery.QueryJobConfig(query_parameters=[_param(None, p) for p in (params or ())])
        return [dict(r.items()) for r in self.client.query(sql, job_config=config).result()]

    def date_counts(self, tables: Iterable[str], dates: Iterable[dt.date]) -> dict[dt.date, dict[str, int]]:
        """Rows stored per date and table, for some dates of game_date-partitioned tables (one query)."""
        tables, dates = list(tables), sorted(set(dates))
        out = {d: dict.fromkeys(tables, 0) for d in dates}
        if not tables or not dates:
            return out
        in_dates = _date_list(dates)
        sql = " UNION ALL ".join(
            f"SELECT '{t}' AS t, game_date, COUNT(*) AS n FROM `{self._ref(t)}` "
            f"WHERE game_date IN ({in_dates}) GROUP BY game_date" for t in tables)
        for r in self.query(sql):
            out[r["game_date"]][r["t"]] = int(r["n"])
        return out

    def read_rows(self, table: str, game_dates: Iterable[dt.date] | None = None) -> list[tuple]:
        """Typed rows of a whole table or of some dates of a partitioned table (one query)."""
        spec = schemas.TABLES.get(table)
        if spec is None:
            raise ValueError(f"unknown table {table!r}")
        sql = f"SELECT * FROM `{self._ref(table)}`"
        params: list[Any] = []
        if game_dates is not None:
            if spec.partition != "game_date":
                raise ValueError(f"table {table!r} has no game_date partition")
            params = [sorted(set(game_dates))]
            if not params[0]:
                return []
            sql += " WHERE game_date IN UNNEST(?)"
        return [json_to_row(table, r) for r in self.query(sql, params)]

    def read_table(self, table: str, game_dates: Iterable[dt.date] | None = None):
        import pandas as pd

        rows = self.read_rows(table, game_dates)
        return pd.DataFrame(rows, columns=list(schemas.TABLES[table].row_type._fields))

    def row_count(self, table: str) -> int:
        return int(self.query(f"SELECT COUNT(*) AS n FROM `{self._ref(table)}`")[0]["n"])

    def table_exists(self, table: str) -> bool:
        """Whether ``table`` exists in the dataset (graded-history reads tell "none yet" from a failure)."""
        from google.api_core import exceptions as gexc

        try:
            self.client.get_table(self._ref(table))
        except gexc.NotFound:
            return False
        return True

    def table_sql(self, table: str) -> str:
        """``table`` as written in GoogleSQL: dataset-qualified, so a query never depends on a default."""
        return f"`{self._ref(table)}`"


def latest_picks_sql(project: str, dataset: str) -> str:
    """The ``best_bets_latest`` view: the latest version of each pick in the streaming history."""
    return (f"SELECT * EXCEPT (rn) FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY pick_id "
            f"ORDER BY version DESC, changed_at DESC) AS rn FROM `{project}.{dataset}.best_bets_history`) "
            f"WHERE rn = 1")


# ------------------------------------------------------------------------------------------------
# Inputs
# ------------------------------------------------------------------------------------------------


def input_query(project: str, dataset: str, kind: str) -> str:
    if kind not in schemas.INPUT_KINDS:
        raise ValueError(f"unknown input kind {kind!r}; expected one of {sorted(schemas.INPUT_KINDS)}")
    return f"SELECT * FROM `{project}.{dataset}.{kind}` WHERE game_date IN UNNEST(@dates)"


def query_inputs(inputs: str, kind: str, dates: Iterable[dt.date]) -> Iterator[dict]:
    """Raw records of one kind for some dates: ONE partition-filtered query."""
    from google.cloud import bigquery

    project, dataset = cloud.parse_bigquery_uri(inputs)
    dates = sorted(set(dates))
    if not dates:
        return iter(())
    config = bigquery.QueryJobConfig(query_parameters=[bigquery.ArrayQueryParameter("dates", "DATE", dates)])
    result = cloud.bigquery_client(project).query(input_query(project, dataset, kind), job_config=config)
    return (dict(r.items()) for r in result.result(page_size=50_000))


def parse_records(kind: str, records: Iterable[Mapping],
                  event_window_hours: tuple[float, float] | None = None) -> Iterator[tuple]:
    """Typed rows and DeadLetter rows of raw records (``parse_record``; never raises on bad data)."""
    for record in records:
        try:
            yield parse_record(kind, record, event_window_hours=event_window_hours)
        except ParseError as exc:
            yield dead_letter(kind, exc.reason, {k: _json_value(v) for k, v in record.items()},
                              event_ts=raw_event_time(kind, record), game_date=raw_game_date(record))


def read_rows_bigquery(inputs: str, kind: str, dates: Iterable[dt.date],
                       event_window_hours: tuple[float, float] | None = None) -> tuple[list, list]:
    """(typed rows, dead letters) of one kind for some dates, without Beam (one query)."""
    rows, dead = [], []
    for item in parse_records(kind, query_inputs(inputs, kind, dates), event_window_hours):
        (dead if type(item) is schemas.DeadLetter else rows).append(item)
    return rows, dead


class QueryInputsFn(beam.DoFn):
    """Runs the one query of a kind (the element is the dates) and emits typed rows at their event time."""

    DEAD_LETTERS = "dead_letters"

    def __init__(self, inputs: str, kind: str, event_window_hours: tuple[float, float] | None = None):
        self.inputs, self.kind = inputs, kind
        self.window = tuple(event_window_hours) if event_window_hours else None
        self.rows_counter = beam.metrics.Metrics.counter("props.io", f"{kind}_rows")
        self.dead_counter = beam.metrics.Metrics.counter("props.io", f"{kind}_dead_letters")

    def process(self, dates: list[dt.date]):
        from pipeline.io.parse import event_time

        for item in parse_records(self.kind, query_inputs(self.inputs, self.kind, dates), self.window):
            if type(item) is schemas.DeadLetter:
                self.dead_counter.inc()
                yield beam.pvalue.TaggedOutput(self.DEAD_LETTERS, item)
            else:
                self.rows_counter.inc()
                yield beam.window.TimestampedValue(item, event_time(self.kind, item).timestamp())


class ReadBigQueryInputs(beam.PTransform):
    """Reads one input kind for some dates from ``bigquery://PROJECT.DATASET`` (one query per run).

    Returns a ``DoOutputsTuple`` like ``files.ReadInputs``: ``.rows`` and ``.dead_letters``.
    """

    def __init__(self, inputs: str, kind: str, dates: Iterable[dt.date],
                 event_window_hours: tuple[float, float] | None = None):
        super().__init__()
        cloud.parse_bigquery_uri(inputs)
        if kind not in schemas.INPUT_KINDS:
            raise ValueError(f"unknown input kind {kind!r}")
        self.inputs, self.kind, self.dates = inputs, kind, sorted(set(dates))
        self.window = event_window_hours

    def expand(self, pbegin):
        return (
            pbegin
            | "Dates" >> beam.Create([self.dates])
            | "QueryInputs" >> beam.ParDo(QueryInputsFn(self.inputs, self.kind, self.window)).with_outputs(
                QueryInputsFn.DEAD_LETTERS, main="rows")
        )


def raw_record(kind: str, row: tuple) -> dict:
    """A typed input row as a raw-table record (features spread into their 55 named columns)."""
    record = row_to_json(row)
    if kind == "features":
        values = record.pop("features")
        record.update(dict(zip(schemas.FEATURE_NAMES, values, strict=True)))
    return record


def load_raw_inputs(inputs: str, kind: str, rows: Iterable[tuple], *, location: str = "US") -> int:
    """Creates the raw table of ``kind`` (partitioned by game_date) if needed and appends typed rows.

    For seeding a dataset from files (tests, a first production load); upstream writers own it later.
    """
    from google.cloud import bigquery

    project, dataset = cloud.parse_bigquery_uri(inputs)
    client = cloud.bigquery_client(project)
    ds = bigquery.Dataset(f"{project}.{dataset}")
    ds.location = location
    client.create_dataset(ds, exists_ok=True)
    schema = [bigquery.SchemaField(f["name"], f["type"], mode=f["mode"]) for f in raw_table_schema(kind)]
    table = bigquery.Table(f"{project}.{dataset}.{kind}", schema=schema)
    table.time_partitioning = bigquery.TimePartitioning(type_=bigquery.TimePartitioningType.DAY,
                                                        field="game_date")
    client.create_table(table, exists_ok=True)
    rows = list(rows)
    if not rows:
        return 0
    data = "\n".join(json.dumps(raw_record(kind, r), allow_nan=False) for r in rows).encode("utf-8")
    job_config = bigquery.LoadJobConfig(source_format=bigquery.SourceFormat.NEWLINE_DELIMITED_JSON,
                                        schema=schema,
                                        write_disposition=bigquery.WriteDisposition.WRITE_APPEND)
    client.load_table_from_file(io.BytesIO(data), table, job_config=job_config).result()
    return len(rows)


# ------------------------------------------------------------------------------------------------
# The Beam sink: WriteToBigQuery into per-job staging tables, then ONE transaction for all the job's dates
# ------------------------------------------------------------------------------------------------

REJECTED_SOURCE = "bigquery"


def rejected_dead_letter(failed: tuple, staging_tables: Mapping[str, str], dates: list[dt.date]
                         ) -> schemas.DeadLetter:
    """A row BigQuery rejected for good (``WriteToBigQuery``'s ``failed_rows_with_errors`` element
    ``(destination, row, errors)``) as a dead letter: step ``stage_<table>``, the errors and the row as
    payload (both cut by ``schemas.clip_text``), dated by the row's game_date when it is a run date (else
    the job's first date, so a re-run replaces it), with the row's run_id."""
    destination, row, errors = failed
    table_id = str(destination).rsplit(".", 1)[-1]
    table = staging_tables.get(table_id, table_id)
    row = row if isinstance(row, Mapping) else {"row": row}
    try:
        game_date = dt.date.fromisoformat(str(row.get("game_date")))
    except ValueError:
        game_date = None
    if game_date not in set(dates):
        game_date = dates[0]
    error_text = json.dumps(errors, default=str, sort_keys=True)
    run_id = row.get("run_id")
    return schemas.DeadLetter(
        source=REJECTED_SOURCE, step=f"stage_{table}",
        error=schemas.clip_text(f"BigQuery rejected the row: {error_text}"),
        payload=schemas.clip_text(json.dumps(row, default=str, sort_keys=True)),
        event_ts=None, game_date=game_date, run_id=run_id if isinstance(run_id, str) else None)


class CreateStagingFn(beam.DoFn):
    """Creates the job's staging tables (one per replaced table, empty, expiring after ``STAGING_TTL``)
    before any row is written: the writes wait on this step's output, so no staging table is ever created
    by ``WriteToBigQuery`` without an expiry."""

    def __init__(self, warehouse_uri: str, staging: Iterable[tuple[str, str]]):
        self.warehouse_uri, self.staging = warehouse_uri, tuple(staging)  # (table, staging table id)

    def process(self, _unused):
        warehouse = BigQueryWarehouse.from_uri(self.warehouse_uri, create=False)
        for table, staging in self.staging:
            warehouse.create_staging(table, staging=staging)
        yield len(self.staging)


class PromoteDatesFn(beam.DoFn):
    """All the job's dates in ONE replace transaction from the job's staging tables.

    The element is the list of the job's dates (one element: one transaction per job, however many dates a
    backfill chunk has). The ``rejected`` side input (the dead letters of rows BigQuery rejected for good)
    is also the barrier: in batch a side input is ready only once the producing writes have finished.
    Rejected rows are loaded into their own staging table first (one WRITE_TRUNCATE load job, only when
    there are any: a retried bundle never loads them twice), so they commit with the dates.
    Emits ``(date, {table: rows stored for that date})`` per date (one counting query) plus
    ``"transaction_dates"`` (how many dates the one transaction covered) and ``"rejected_rows"``.
    """

    def __init__(self, warehouse_uri: str, staging: Mapping[str, str], tables: tuple[str, ...],
                 protected: Mapping[str, tuple[str, ...]], rejected_staging: str):
        self.warehouse_uri, self.staging, self.tables, self.protected = (
            warehouse_uri, dict(staging), tables, dict(protected))
        self.rejected_staging = rejected_staging

    def setup(self):
        self._warehouse = BigQueryWarehouse.from_uri(self.warehouse_uri, create=False)
        self._rejected = beam.metrics.Metrics.counter("props.io", "bigquery_rejected_rows")
        self._transactions = beam.metrics.Metrics.counter("props.io", "bigquery_replace_transactions")

    def process(self, dates_iso: list[str], rejected: list, staging_ready: int):
        days = sorted(dt.date.fromisoformat(d) for d in dates_iso)
        if rejected:
            log.warning("%d rows were rejected by BigQuery; they are stored as dead letters", len(rejected))
            self._rejected.inc(len(rejected))
            # WRITE_TRUNCATE into its own staging table: a retried bundle never loads them twice
            self._warehouse.load(self.rejected_staging, "dead_letters", rejected, truncate=True)
        protected = sorted({g for d in dates_iso for g in self.protected.get(d, ())})
        staging: dict[str, str | tuple[str, ...]] = dict(self.staging)
        staging["dead_letters"] = (self.staging["dead_letters"], self.rejected_staging)
        self._warehouse.promote(days, self.tables, staging, protected_pick_game_ids=protected)
        self._transactions.inc()
        counts = self._warehouse.date_counts(self.tables, days)
        for day in days:
            yield day, {**counts[day], "transaction_dates": len(days), "rejected_rows": len(rejected)}


class DropStagingFn(beam.DoFn):
    """Drops the job's staging tables once the transaction committed (they also expire on their own)."""

    def __init__(self, warehouse_uri: str, staging: Mapping[str, str]):
        self.warehouse_uri, self.staging = warehouse_uri, dict(staging)

    def process(self, _unused, promoted: list):
        warehouse = BigQueryWarehouse.from_uri(self.warehouse_uri, create=False)
        warehouse.drop(self.staging.values())
        yield len(promoted)


def staging_tag(dates: Iterable[dt.date]) -> str:
    """A staging-table suffix unique per job (random) that names the job's date span for operators."""
    dates = sorted(dates)
    return f"{dates[0]:%Y%m%d}_{len(dates)}d_{uuid.uuid4().hex[:8]}"


class WriteToBigQueryWarehouse(beam.PTransform):
    """Writes ``(table_name, row)`` pairs to the BigQuery warehouse with Beam's ``WriteToBigQuery``.

    Same contract as ``Warehouse.replace_dates`` (all the job's dates replaced atomically in ONE
    transaction, a date with no rows still cleared, protected picks kept), implemented as:
    staging tables created with an expiry -> rows -> ``WriteToBigQuery`` (STREAMING_INSERTS, explicit
    schema from the row type, ``RETRY_ON_TRANSIENT_ERROR``) into ``_staging_<table>_<run tag>`` -> rows
    BigQuery rejects for good become ``dead_letters`` rows -> one DELETE+INSERT transaction for all dates ->
    staging dropped.

    Args:
      warehouse_uri: ``bigquery://PROJECT.DATASET``.
      dates: the job's game dates.
      protected_pick_game_ids: per date, game ids whose stored picks must not change.
      tables: tables to replace (default ``SLATE_TABLES``; must include ``dead_letters``, where rejected
        rows go).
      run_tag: suffix of the staging tables (default: random); two concurrent jobs never share staging.

    Returns:
      A PCollection of ``(date, {table: rows stored for that date, "transaction_dates": n,
      "rejected_rows": n})``, complete once the transaction committed (the exports wait on it).
    """

    def __init__(self, warehouse_uri: str, dates: Iterable[dt.date],
                 protected_pick_game_ids: Mapping[dt.date, Collection[str]] | None = None,
                 tables: Collection[str] | None = None, run_tag: str | None = None):
        super().__init__()
        self.project, self.dataset = cloud.parse_bigquery_uri(warehouse_uri)
        self.warehouse_uri = warehouse_uri
        self.dates = sorted(set(dates))
        if not self.dates:
            raise ValueError("WriteToBigQueryWarehouse needs at least one date")
        self.tables = tuple(SLATE_TABLES if tables is None else tables)
        if "dead_letters" not in self.tables:
            raise ValueError("WriteToBigQueryWarehouse needs the dead_letters table (rejected rows go there)")
        self.protected = {d.isoformat(): tuple(ids) for d, ids in (protected_pick_game_ids or {}).items()}
        tag = staging_tag(self.dates) if run_tag is None else run_tag
        self.staging = {t: f"{STAGING_PREFIX}{t}_{tag}" for t in self.tables}
        self.rejected_staging = f"{STAGING_PREFIX}dead_letters_{tag}_rejected"

    def expand(self, pcoll):
        from apache_beam.io.gcp.bigquery import BigQueryDisposition, WriteToBigQuery
        from apache_beam.io.gcp.bigquery_tools import RetryStrategy

        dates, tables = list(self.dates), self.tables
        first, date_set = dates[0], set(dates)
        staging_tables = {v: k for k, v in self.staging.items()}

        def check(pair):
            if pair[0] not in tables:
                raise ValueError(f"rows for table {pair[0]!r}, which this sink does not replace ({tables})")
            return pair

        def encode(pair, table, _staging_ready):
            _, row = pair
            if getattr(row, "game_date", None) is None:
                row = row._replace(game_date=first)
            if row.game_date not in date_set:
                raise ValueError(f"{table} row for {row.game_date} outside the run dates {dates}")
            return row_to_json(row)

        pcoll = pcoll | "CheckTables" >> beam.Map(check)
        ready = (
            pcoll.pipeline
            | "StagingTrigger" >> beam.Create([None])
            | "CreateStaging" >> beam.ParDo(CreateStagingFn(
                self.warehouse_uri, [*self.staging.items(), ("dead_letters", self.rejected_staging)]))
        )

        failed = []
        for t in self.tables:
            label = "".join(part.title() for part in t.split("_"))
            result = (
                pcoll
                | f"Select{label}" >> beam.Filter(lambda pair, t=t: pair[0] == t)
                | f"Encode{label}" >> beam.Map(encode, t, beam.pvalue.AsSingleton(ready))
                | f"Stage{label}" >> WriteToBigQuery(
                    table=f"{self.project}:{self.dataset}.{self.staging[t]}",
                    schema=beam_table_schema(t),
                    method=WriteToBigQuery.Method.STREAMING_INSERTS,
                    create_disposition=BigQueryDisposition.CREATE_NEVER,
                    write_disposition=BigQueryDisposition.WRITE_APPEND,
                    insert_retry_strategy=RetryStrategy.RETRY_ON_TRANSIENT_ERROR)
            )
            failed.append(result.failed_rows_with_errors)
        rejected = (
            tuple(failed)
            | "RejectedRows" >> beam.Flatten()
            | "RejectedDeadLetters" >> beam.Map(rejected_dead_letter, staging_tables, dates)
        )
        promoted = (
            pcoll.pipeline
            | "RunDates" >> beam.Create([[d.isoformat() for d in self.dates]])
            | "PromoteDates" >> beam.ParDo(
                PromoteDatesFn(self.warehouse_uri, self.staging, self.tables, self.protected,
                               self.rejected_staging),
                rejected=beam.pvalue.AsList(rejected), staging_ready=beam.pvalue.AsSingleton(ready))
        )
        _ = (
            pcoll.pipeline
            | "DropStagingTrigger" >> beam.Create([None])
            | "DropStaging" >> beam.ParDo(DropStagingFn(
                self.warehouse_uri, {**self.staging, "rejected": self.rejected_staging}),
                                          promoted=beam.pvalue.AsList(promoted))
        )
        return promoted

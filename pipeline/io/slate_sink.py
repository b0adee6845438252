"""The slate sink: per game date, one warehouse transaction, then that date's JSON exports.

Every output row of a slate or backfill arrives as a ``(table, row)`` pair. Rows are grouped by game
date (every run date is present even with no rows, so a zero-pick re-run clears stale picks), and one
DoFn call per date:

1. replaces the date's rows of every slate table in one transaction (``Warehouse.replace_dates``: DuckDB
   locally; on BigQuery, ``bigquery.WriteToBigQueryWarehouse`` has committed ALL the job's dates already
   in one transaction, and this step waits for that commit through a side input); picks of games already
   started are protected (kept as stored);
2. then writes ``best-bets/{date}.json`` and ``admin/picks/{date}.json`` through Beam FileSystems (a local
   folder or ``gs://``) from what the warehouse holds for the date after the commit (the picks are read
   back, so a started game's kept picks are exported too; the other tables hold exactly the run's rows),
   so the exports always equal the committed tables; and, for the run's latest date,
   ``best-bets/latest.json`` when it moves forward (``exports.write_latest``: an earlier date's run or
   backfill never rewrites it backwards).

This is the one write path of ``props run`` and ``props backfill`` (``pipeline.graph``). Doing both in one
step keeps the graph small (Beam's per-step cost dominates a slate on the local runner) and orders the
exports after the commit they describe.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections import Counter
from collections.abc import Collection, Iterable, Mapping, Sequence

import apache_beam as beam

from pipeline import schemas
from pipeline.io.files import GroupInBundleFn, rows_of_groups

METRICS_NAMESPACE = "props"


class WriteDateFn(beam.DoFn):
    """``(date_iso, [RowGroup[(table, row), ...] | None, ...])`` (one group per bundle, ``None`` the run
    date's marker) -> replace the date, write its exports; emits counts."""

    def __init__(
        self,
        *,
        warehouse_uri: str | None,
        exports_uri: str | None,
        run_dates: Iterable[dt.date],
        tables: Collection[str],
        protected: Mapping[dt.date, Collection[str]],
        policy_version: str,
        record: dict | None,
        ultra_public: bool,
        generated_at: dt.datetime | None = None,
        replace: bool = True,
    ):
        self._warehouse_uri = warehouse_uri
        self._replace = replace
        self._exports_uri = exports_uri
        self._latest = max(run_dates)
        self._tables = tuple(tables)
        self._protected = {d.isoformat(): tuple(ids) for d, ids in protected.items()}
        self._policy_version = policy_version
        self._record = record
        self._ultra_public = ultra_public
        self._generated_at = generated_at

    def setup(self):
        self._warehouse = None
        if self._warehouse_uri:
            from pipeline.io.warehouse import open_warehouse

            kwargs = {"create": False} if self._warehouse_uri.startswith("bigquery://") else {}
            self._warehouse = open_warehouse(self._warehouse_uri, **kwargs)
        self._write_ms = beam.metrics.Metrics.distribution(METRICS_NAMESPACE, "write_ms")
        self._session: contextlib.ExitStack | None = None

    def start_bundle(self):
        self._end_session()

    def finish_bundle(self):
        self._end_session()

    def teardown(self):
        self._end_session()

    def _begin_session(self) -> None:
        """One warehouse connection for the dates of a bundle (``Warehouse.session``; opened at the bundle's
        first date, closed when it ends): a DuckDB open reads the catalog and a close checkpoints, ~90 ms
        per date when each date had its own (py-spy, a 28-date backfill). The file is held while the
        bundle writes (a chunk's dates, seconds), never around the pipeline. A BigQuery warehouse has
        none."""
        if self._session is None:
            self._session = contextlib.ExitStack()
            session = getattr(self._warehouse, "session", None)
            if session is not None:
                self._session.enter_context(session())

    def _end_session(self) -> None:
        stack, self._session = getattr(self, "_session", None), None
        if stack is not None:
            stack.close()

    def process(self, element, _committed=None):
        import time

        started = time.perf_counter()
        date_iso, items = element
        game_date = dt.date.fromisoformat(date_iso)
        rows_by_table: dict[str, list] = {t: [] for t in self._tables}
        for table, row in rows_of_groups(items):
            rows_by_table[table].append(row)
        counts = {}
        written: list[str] = []
        # The date's transaction and the read-back share the bundle's connection (Warehouse.session).
        self._begin_session()
        if self._warehouse is not None and self._replace:
            counts = self._warehouse.replace_dates(
                [game_date],
                rows_by_table,
                protected_pick_game_ids=self._protected.get(date_iso, ()),
                tables=self._tables,
            )
        if self._exports_uri and self._warehouse is not None:
            # what the warehouse holds now: kept picks of started games too
            rows_by_table["best_bets"] = self._warehouse.read_rows("best_bets", [game_date])
        if self._exports_uri:
            written = self._write_exports(game_date, rows_by_table)
        self._write_ms.update(int((time.perf_counter() - started) * 1000))
        yield game_date, {"tables": counts, "exports": written}

    def _write_exports(self, game_date: dt.date, rows: Mapping[str, list]) -> list[str]:
        from pipeline.io import exports

        summaries = rows.get("filter_summary", [])
        bundle = {
            "picks": sorted(rows.get("best_bets", []), key=lambda p: p.rank),
            "filter_summary": summaries[0] if summaries else None,
            "consensus": sorted(rows.get("consensus", []), key=lambda c: c.player_lookup),
            "gate_counts": dict(sorted(Counter(g.reason for g in rows.get("gate_decisions", [])).items())),
            "diagnostics_counts": dict(
                sorted(Counter(d.code for d in rows.get("line_diagnostics", [])).items())
            ),
        }
        docs = exports.export_documents(
            game_date,
            bundle,
            generated_at=self._generated_at or dt.datetime.now(dt.UTC),
            policy_version=self._policy_version,
            record=self._record,
            ultra_public=self._ultra_public,
            latest=game_date == self._latest,
        )
        written = []
        latest = docs.pop(exports.LATEST_PATH, None)
        for rel, (doc, cache) in docs.items():
            written.append(
                exports.write_json(exports.join_uri(self._exports_uri, rel), doc, cache_control=cache)
            )
        if latest is not None:  # last: a reader following latest never sees a missing date
            uri = exports.write_latest(self._exports_uri, game_date, latest[0], cache_control=latest[1])
            written += [uri] if uri else []
        return written


class DateOfPair:
    """``(table, row)`` -> the row's date (ISO; the run's first date, ``dates[0]``, for a row without one).
    A row of a date outside the run fails the run (a planning bug, not bad data)."""

    def __init__(self, dates: Sequence[str]):
        self._dates, self._first = frozenset(dates), dates[0]

    def __call__(self, pair) -> str:
        d = getattr(pair[1], "game_date", None)
        iso = d.isoformat() if d is not None else self._first
        if iso not in self._dates:
            text = f"{pair[0]} row of {iso}, not a date of this run: {pair[1]!r}"
            raise ValueError(schemas.clip_text(text, 500))
        return iso


class WriteSlateOutputs(beam.PTransform):
    """Writes ``(table, row)`` pairs of a slate/backfill: one transaction + exports per run date.

    The input is one PCollection of pairs or a sequence of them (e.g. one per table): they are keyed by
    date where they are produced and flattened once with the run's dates (on the local runner every
    Flatten re-encodes its elements, so one Flatten instead of two halves that cost).

    Args:
      warehouse_uri: ``duckdb:///path``, a path, ``bigquery://PROJECT.DATASET`` or None (no tables): where
        the date is replaced and the committed picks are read back from for the exports.
      replace: False when another sink committed the rows already (BigQuery: ``after`` waits for it).
      exports_uri: a local folder, ``gs://BUCKET/PREFIX`` or None (no exports).
      dates: the run's dates (each is replaced even with no rows).
      tables: the tables the run replaces.
      protected_pick_game_ids: per date, games already started (their picks are kept).
      policy_version, record, ultra_public: what the public export shows.
      after: a PCollection to wait for (as a side input) before any date is written, e.g. the BigQuery
        sink's commits, so exports never describe uncommitted rows.
    Returns: ``(date, {"tables": {table: rows}, "exports": [uris]})`` per date.
    """

    def __init__(
        self,
        *,
        warehouse_uri,
        exports_uri,
        dates,
        tables,
        protected_pick_game_ids,
        policy_version,
        record=None,
        ultra_public=False,
        after=None,
        replace=True,
    ):
        super().__init__()
        self._after = after  # a PCollection that must be complete first (e.g. the BigQuery commit)
        self._dates = sorted(dates)
        self._fn = WriteDateFn(
            warehouse_uri=warehouse_uri,
            exports_uri=exports_uri,
            run_dates=self._dates,
            tables=tables,
            protected=protected_pick_game_ids,
            policy_version=policy_version,
            record=record,
            ultra_public=ultra_public,
            replace=replace,
        )

    def expand(self, pairs):
        dates = [d.isoformat() for d in self._dates]
        inputs = [pairs] if isinstance(pairs, beam.PCollection) else list(pairs)
        pipeline = inputs[0].pipeline
        keyed = [pcoll | f"KeyByDate{'' if len(inputs) == 1 else i}" >> beam.ParDo(
            GroupInBundleFn(DateOfPair(dates))) for i, pcoll in enumerate(inputs)]
        markers = pipeline | "RunDates" >> beam.Create([(d.isoformat(), None) for d in self._dates])
        return (
            (*keyed, markers)
            | "WithAllDates" >> beam.Flatten()
            | "GroupByDate" >> beam.GroupByKey()
            | "WriteDate" >> beam.ParDo(self._fn, *([beam.pvalue.AsList(self._after)] if self._after else []))
        )

"""Builds the grading graph (``props grade``); never runs it.

``build_grading_pipeline(p, plan)`` is ONE Beam graph, the same on the DirectRunner and on Dataflow:

1. reads, in bulk: the dates' ``predictions``, ``best_bets`` and stored ``dead_letters`` and the 30-day
   lookback of ``prediction_accuracy`` from the warehouse (one query each), the dates' box scores,
   injury reports, odds and schedule from ``--inputs`` (files or BigQuery, ``io.sources.ReadSource``);
2. grades with the transforms of ``pipeline/transforms/grading.py`` (``ResolveTipoffs``,
   ``GradePlayerDates``, ``ComputeModelPerformance``, ``NewDeadLetters``);
3. writes: ``prediction_accuracy``, ``best_bets_results`` and ``model_performance_daily`` of every date
   replaced in one warehouse transaction (``Warehouse.replace_dates``: a re-grade leaves the same rows;
   a date with nothing graded is still cleared), new dead letters appended once;
4. then (after the commit, a side-input barrier) the exports: ``best-bets/record.json``,
   ``models/performance.json`` and each date's ``best-bets/{date}.json`` (and ``latest.json`` when it
   shows that date) re-written with each pick's actual points and result, and the record as of the date.

    plan = GradePlan(run_id=..., dates=..., inputs=..., warehouse="duckdb:///w.duckdb", exports=...,
                     policy=...)
    with beam.Pipeline(options=...) as p:
        outputs = build_grading_pipeline(p, plan)

The warehouse helpers here (``read_table_rows``, ``season_results``, ``record_as_of``) are also what
``props grade`` and ``props report`` read the stored grading rows with.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple

import apache_beam as beam
from apache_beam.metrics import Metrics

from pipeline import schemas
from pipeline.domain import grading as grading_lib
from pipeline.domain import records as records_lib
from pipeline.io import sources
from pipeline.options import date_range
from pipeline.policy import Policy
from pipeline.schemas import BestBetResult, ModelPerformanceDaily, Pick
from pipeline.transforms import grading as grading_transforms

GRADING_TABLES: tuple[str, ...] = ("prediction_accuracy", "best_bets_results", "model_performance_daily")
LOOKBACK_DAYS = max(grading_lib.WINDOWS_DAYS)
INPUT_KINDS: tuple[str, ...] = ("box_scores", "injuries", "odds", "schedule")
METRICS_NAMESPACE = grading_transforms.METRICS_NAMESPACE


class GradePlan(NamedTuple):
    """Everything a grading launch resolved: the graph is a pure function of this."""

    run_id: str
    dates: tuple[dt.date, ...]
    inputs: str
    warehouse: str  # duckdb:///path or bigquery://PROJECT.DATASET
    exports: str | None
    policy: Policy
    generated_at: dt.datetime

    @property
    def lookback_dates(self) -> list[dt.date]:
        """The days of the 30-day windows of the first date that are not graded now (read, not written)."""
        first = self.dates[0] - dt.timedelta(days=LOOKBACK_DAYS - 1)
        graded = set(self.dates)
        return [d for d in date_range(first, self.dates[-1]) if d not in graded]


def plan_summary(plan: GradePlan) -> dict[str, Any]:
    """The resolved plan (printed by --preflight_only, stored in the runs table)."""
    return {"run_id": plan.run_id, "command": "grade", "dates": [d.isoformat() for d in plan.dates],
            "inputs": plan.inputs, "warehouse": plan.warehouse, "exports": plan.exports,
            "tables": list(GRADING_TABLES), "policy_version": plan.policy.version,
            "lookback_days": len(plan.lookback_dates)}


# --------------------------------------------------------------------------------------------
# Warehouse reads (one query per table)
# --------------------------------------------------------------------------------------------


def row_of(row_type: type, record: Mapping[str, Any]):
    """A row NamedTuple from a warehouse record (lists -> tuples; missing columns take defaults)."""
    defaults = row_type._field_defaults
    values = {}
    for f in row_type._fields:
        v = record[f] if f in record else defaults.get(f)
        values[f] = tuple(v) if isinstance(v, list) else v
    return row_type(**values)


def read_table_rows(warehouse, table: str, dates: Sequence[dt.date]) -> list:
    """Every row of ``table`` for ``dates`` as row NamedTuples (one query). Uses the warehouse's
    ``read_rows`` when it has one (BigQuery: dataset-qualified table, ``IN UNNEST``), else a plain
    ``SELECT`` through ``query`` (DuckDB)."""
    if not dates:
        return []
    dates = sorted(set(dates))
    row_type = schemas.TABLES[table].row_type
    return [row_of(row_type, r._asdict() if hasattr(r, "_asdict") else r)
            for r in warehouse.read_rows(table, dates)]


def season_results(warehouse, as_of: dt.date, *, whole_season: bool = False) -> list[BestBetResult]:
    """Every graded pick of the season of ``as_of`` up to it (or the whole season), one query."""
    season_first, season_last, _ = records_lib.season_bounds(as_of)
    return read_table_rows(warehouse, "best_bets_results",
                           date_range(season_first, season_last if whole_season else as_of))


def record_as_of(results: Iterable[BestBetResult], graded_through: dt.date) -> dt.date:
    """The date ``record.json`` is computed at: the latest graded pick of the season, so re-grading an
    earlier date never rolls the public record back."""
    return max([graded_through] + [r.game_date for r in results if r.result != grading_lib.PENDING])


class ReadWarehouseRowsFn(beam.DoFn):
    """Reads the rows of one table for some dates (one query) when its single element arrives."""

    def __init__(self, warehouse_uri: str, table: str, dates: Sequence[dt.date]):
        self._uri, self._table, self._dates = warehouse_uri, table, sorted(set(dates))
        self.rows_counter = Metrics.counter(METRICS_NAMESPACE, f"read_{table}")

    def process(self, _unused):
        from pipeline.io.stream_sinks import PublishedPicksWarehouse
        from pipeline.io.warehouse import open_warehouse

        # best_bets as published: on BigQuery the stream's picks live in best_bets_history (the
        # best_bets_latest view), and are graded like the batch's
        rows = read_table_rows(PublishedPicksWarehouse(open_warehouse(self._uri)), self._table, self._dates)
        self.rows_counter.inc(len(rows))
        yield from rows


class ReadWarehouseRows(beam.PTransform):
    """The rows of ``table`` for ``dates`` from the warehouse, in bulk (one query), as typed rows."""

    def __init__(self, warehouse_uri: str, table: str, dates: Sequence[dt.date]):
        super().__init__()
        self._fn = ReadWarehouseRowsFn(warehouse_uri, table, dates)

    def expand(self, pbegin):
        return (pbegin
                | "Once" >> beam.Create([None])
                | "Query" >> beam.ParDo(self._fn)
                | "Spread" >> beam.Reshuffle())


# --------------------------------------------------------------------------------------------
# Writes
# --------------------------------------------------------------------------------------------


class ReplaceGradedDatesFn(beam.DoFn):
    """All graded rows -> one ``replace_dates`` of the grading tables for every date (then the new dead
    letters appended); emits ``{table: rows written}``."""

    def __init__(self, warehouse_uri: str, dates: Sequence[dt.date]):
        self._uri, self._dates = warehouse_uri, sorted(set(dates))
        self.written_counter = Metrics.counter(METRICS_NAMESPACE, "dead_letters_written")

    def process(self, element):
        from pipeline.io.warehouse import open_warehouse

        _, pairs = element
        rows: dict[str, list] = {t: [] for t in GRADING_TABLES}
        dead = []
        for table, row in pairs:
            if table == "dead_letters":
                dead.append(row)
            else:
                rows[table].append(row)
        warehouse = open_warehouse(self._uri)
        counts = warehouse.replace_dates(self._dates, rows, tables=list(GRADING_TABLES))
        counts["dead_letters"] = warehouse.append("dead_letters", dead) if dead else 0
        self.written_counter.inc(counts["dead_letters"])
        yield counts


class WriteGradedRows(beam.PTransform):
    """``(table, row)`` pairs -> the grading tables of ``dates`` replaced in ONE transaction (idempotent:
    re-grading leaves the same rows; every date is cleared even with no rows), new dead letters
    appended. Returns a single ``{table: rows}`` element once committed (the exports wait for it)."""

    def __init__(self, warehouse_uri: str, dates: Sequence[dt.date]):
        super().__init__()
        self._uri, self._dates = warehouse_uri, sorted(set(dates))

    def expand(self, pairs):
        marker = pairs.pipeline | "EveryRun" >> beam.Create([("", None)])
        return (
            (pairs | "KeyAll" >> beam.Map(lambda pair: ("", pair)), marker)
            | "WithMarker" >> beam.Flatten()
            | "GroupAll" >> beam.GroupByKey()
            | "DropMarker" >> beam.Map(lambda kv: (kv[0], [p for p in kv[1] if p is not None]))
            | "ReplaceDates" >> beam.ParDo(ReplaceGradedDatesFn(self._uri, self._dates))
        )


# --------------------------------------------------------------------------------------------
# Exports
# --------------------------------------------------------------------------------------------


def _read_json(uri: str) -> dict | None:
    from apache_beam.io.filesystems import FileSystems

    if not FileSystems.exists(uri):
        return None
    with FileSystems.open(uri) as f:
        return json.loads(f.read().decode("utf-8"))


def result_counts(results: Iterable[BestBetResult]) -> dict[str, int]:
    out = {k: 0 for k in grading_transforms.PICK_RESULTS}
    for r in results:
        out[r.result] += 1
    return out


def graded_pick_fields(result: BestBetResult) -> dict:
    """The fields a graded pick gains in ``best-bets/{date}.json``."""
    return {"actual_points": result.actual_points, "result": result.result, "margin": result.margin,
            "void_reason": result.void_reason, "closing_line": result.closing_line, "clv": result.clv}


def graded_best_bets_document(doc: dict, results: Iterable[BestBetResult], picks: Iterable[Pick], *,
                              record: dict, ultra_public: bool) -> dict:
    """A ``best-bets/{date}.json`` document with each pick's actual points and result, the record as of
    the date, and ``ultra_tier`` on picks once the public gate holds (pure)."""
    by_id = {r.pick_id: r for r in results}
    ultra = {p.pick_id: p.ultra_tier for p in picks}
    out = dict(doc)
    new_picks = []
    for p in doc.get("picks", []):
        p = dict(p)
        r = by_id.get(p.get("pick_id"))
        if r is not None:
            p.update(graded_pick_fields(r))
        if ultra_public and p.get("pick_id") in ultra:
            p["ultra_tier"] = bool(ultra[p["pick_id"]])
        new_picks.append(p)
    out["picks"] = new_picks
    out["record"] = record
    out["graded"] = result_counts(by_id.values())
    return out


def performance_document(rows: Iterable[ModelPerformanceDaily], generated_at: dt.datetime) -> dict:
    """``models/performance.json``: the latest model_performance_daily row per model with its state."""
    latest: dict[str, ModelPerformanceDaily] = {}
    for r in rows:
        if r.model_id not in latest or r.game_date > latest[r.model_id].game_date:
            latest[r.model_id] = r
    return {"generated_at": generated_at,
            "models": [latest[k]._asdict() for k in sorted(latest)]}


def write_exports(exports: str, warehouse, dates: Sequence[dt.date], *, picks: Sequence[Pick],
                  policy: Policy, generated_at: dt.datetime) -> list[str]:
    """Writes record.json, performance.json and the graded per-date documents from the committed
    tables; returns the uris."""
    from pipeline.commands.common import live_run_ids
    from pipeline.io.exports import best_bets_document, join_uri, to_jsonable, write_json

    results_all = season_results(warehouse, max(dates), whole_season=True)
    live = live_run_ids(warehouse)
    written = []
    last = record_as_of(results_all, max(dates))
    record = records_lib.best_bets_record(results_all, last, live_run_ids=live, policy=policy)
    uri = join_uri(exports, "best-bets/record.json")
    written.append(write_json(uri, to_jsonable(record), cache_control="public, max-age=60"))

    perf_rows = read_table_rows(warehouse, "model_performance_daily",
                                date_range(last - dt.timedelta(days=LOOKBACK_DAYS - 1), last))
    uri = join_uri(exports, "models/performance.json")
    written.append(write_json(uri, to_jsonable(performance_document(perf_rows, generated_at)),
                              cache_control="public, max-age=60"))

    latest_uri = join_uri(exports, "best-bets/latest.json")
    latest_doc = _read_json(latest_uri)
    picks_by_date: dict[dt.date, list[Pick]] = defaultdict(list)
    for p in picks:
        picks_by_date[p.game_date].append(p)
    results_by_date: dict[dt.date, list[BestBetResult]] = defaultdict(list)
    for r in results_all:
        results_by_date[r.game_date].append(r)
    for d in sorted(set(dates)):
        rec = records_lib.best_bets_record(results_all, d, live_run_ids=live, policy=policy)
        public = rec["ultra"]["public"]
        uri = join_uri(exports, f"best-bets/{d.isoformat()}.json")
        doc = _read_json(uri)
        if doc is None:
            if not picks_by_date.get(d):
                continue  # no slate export and no picks: nothing to re-write
            doc = best_bets_document(d, picks_by_date[d], None, generated_at=generated_at,
                                     policy_version=policy.version, record=None, ultra_public=public,
                                     consensus=None)
        graded = graded_best_bets_document(doc, results_by_date.get(d, []), picks_by_date.get(d, []),
                                           record=rec, ultra_public=public)
        written.append(write_json(uri, to_jsonable(graded), cache_control="public, max-age=3600"))
        if latest_doc is not None and latest_doc.get("date") == d.isoformat():
            written.append(write_json(latest_uri, to_jsonable(graded), cache_control="public, max-age=60"))
    return written


class WriteGradedExportsFn(beam.DoFn):
    """Once the grading tables are committed (the ``committed`` side input), writes the exports."""

    def __init__(self, plan: GradePlan):
        self._plan = plan

    def process(self, _unused, committed, picks):
        from pipeline.io.warehouse import open_warehouse

        if not committed:
            raise RuntimeError("the grading tables were not committed; exports not written")
        plan = self._plan
        yield from write_exports(plan.exports, open_warehouse(plan.warehouse), plan.dates, picks=picks,
                                 policy=plan.policy, generated_at=plan.generated_at)


# --------------------------------------------------------------------------------------------
# The graph
# --------------------------------------------------------------------------------------------


class StampTableFn(beam.DoFn):
    """Pairs rows with their table for the sink and counts them (``rows_<table>``)."""

    def __init__(self, table: str):
        self._table = table
        self.counter = Metrics.counter(METRICS_NAMESPACE, f"rows_{table}")

    def process(self, row):
        self.counter.inc()
        yield self._table, row


def build_grading_pipeline(p: beam.Pipeline, plan: GradePlan) -> dict[str, beam.PCollection]:
    """Builds the grading graph of ``plan`` on ``p`` (see the module docstring); never runs it.

    Returns:
      A dict of PCollections: ``accuracy``, ``results``, ``performance``, ``dead_letters`` (new ones,
      written), ``committed`` (one ``{table: rows}`` element) and, with exports, ``exports`` (uris).
    """
    dates = list(plan.dates)
    policy, run_id = plan.policy, plan.run_id
    predictions = p | "ReadPredictions" >> ReadWarehouseRows(plan.warehouse, "predictions", dates)
    picks = p | "ReadPicks" >> ReadWarehouseRows(plan.warehouse, "best_bets", dates)
    lookback = p | "ReadLookback" >> ReadWarehouseRows(plan.warehouse, "prediction_accuracy",
                                                        plan.lookback_dates)
    stored_dead = p | "ReadStoredDeadLetters" >> ReadWarehouseRows(plan.warehouse, "dead_letters", dates)
    inputs = {kind: p | f"Read_{kind}" >> sources.ReadSource(plan.inputs, kind, dates)
              for kind in INPUT_KINDS}

    tipoffs = inputs["schedule"].rows | "ResolveTipoffs" >> grading_transforms.ResolveTipoffs()
    graded = {
        "predictions": predictions, "picks": picks, "box_scores": inputs["box_scores"].rows,
        "injuries": inputs["injuries"].rows, "odds": inputs["odds"].rows,
    } | "GradePlayerDates" >> grading_transforms.GradePlayerDates(tipoffs, policy=policy, run_id=run_id)
    performance = (graded.accuracy, lookback) | "ComputeModelPerformance" >> (
        grading_transforms.ComputeModelPerformance(dates, policy=policy, run_id=run_id))
    dead = (
        tuple(inputs[k].dead_letters for k in INPUT_KINDS) + (graded.dead_letters,)
        | "AllDeadLetters" >> beam.Flatten()
        | "NewDeadLetters" >> grading_transforms.NewDeadLetters(stored_dead, run_id=run_id)
    )
    pairs = (
        graded.accuracy | "Stamp_prediction_accuracy" >> beam.ParDo(StampTableFn("prediction_accuracy")),
        graded.results | "Stamp_best_bets_results" >> beam.ParDo(StampTableFn("best_bets_results")),
        performance | "Stamp_model_performance_daily" >> beam.ParDo(StampTableFn("model_performance_daily")),
        dead | "Stamp_dead_letters" >> beam.ParDo(StampTableFn("dead_letters")),
    ) | "AllTableRows" >> beam.Flatten()
    committed = pairs | "WriteGradedRows" >> WriteGradedRows(plan.warehouse, dates)
    outputs = {"accuracy": graded.accuracy, "results": graded.results, "performance": performance,
               "dead_letters": dead, "committed": committed}
    if plan.exports:
        outputs["exports"] = (
            p
            | "ExportsOnce" >> beam.Create([None])
            | "WriteGradedExports" >> beam.ParDo(WriteGradedExportsFn(plan),
                                                 committed=beam.pvalue.AsList(committed),
                                                 picks=beam.pvalue.AsList(picks))
        )
    return outputs

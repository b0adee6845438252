"""``props grade``: grading, model performance, the best-bets record and the graded exports.

    props grade --date 2026-02-22
    props grade --start 2026-01-01 --end 2026-04-12      # also prints the season backtest table
    props grade --date 2026-02-22 --inputs DIR --warehouse duckdb:///w.duckdb --exports ./exports
    props grade --date 2026-02-22 --preflight_only      # the plan and the preflight checks, no job
    props grade --date 2026-02-22 --runner DataflowRunner ...   # submits the job and exits

One Beam job (``pipeline.grade_graph.build_grading_pipeline``, the transforms of
``pipeline/transforms/grading.py``): predictions and best bets of the dates read from the warehouse in
bulk, box scores, injury reports, odds and the schedule from ``--inputs``; every player-date graded by
``pipeline.domain.grading.grade_player_date`` (the latest prediction per model, NO_LINE included; every
pick not withdrawn; injury status and closing line as of tip-off); model performance recomputed from the
graded rows and the stored 30-day lookback; ``prediction_accuracy``, ``best_bets_results`` and
``model_performance_daily`` of the dates replaced in ONE warehouse transaction; then the exports
(``best-bets/record.json``, ``models/performance.json``, each date's ``best-bets/{date}.json`` and
``latest.json`` when it shows that date) re-written from the committed tables. Grading a date twice gives
identical rows (apart from ``run_id``). Input rows that fail to parse are written to ``dead_letters``
once (rows already stored with the same source, step and payload are not duplicated on a re-grade).

A row in ``runs`` (command ``grade``) and a closing summary line: dates, predictions graded, picks graded
(W-L-P-V), model rows, dead letters, seconds; then the record and, for a range, the backtest table
(per family and best bets: W-L-P, HR with its 95 % interval, ROI at -110, CLV, OVER/UNDER, and whether
the consensus beats the best single family). On a remote runner the job is submitted and the launcher
exits (``runs.status`` = ``submitted``); if the job's metrics cannot be read the run is recorded
``succeeded_unverified`` and the summary says ``metrics UNAVAILABLE``.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
import traceback
from collections.abc import Sequence
from typing import Any, NamedTuple

import apache_beam as beam

from pipeline import schemas
from pipeline.commands import common
from pipeline.commands.common import LaunchError, eprint
from pipeline.commands.run import RunKilled, abandoned_line, clean_up_dead_runs, finish_killed, killable
from pipeline.domain import grading as grading_lib
from pipeline.domain import records as records_lib
from pipeline.grade_graph import (  # noqa: F401 - re-exported: props report reads with these
    GRADING_TABLES,
    LOOKBACK_DAYS,
    GradePlan,
    build_grading_pipeline,
    plan_summary,
    read_table_rows,
    record_as_of,
    season_results,
)
from pipeline.io import legacy_exports
from pipeline.options import DataOptions, OptionsError, RangeOptions, date_range, parse_date
from pipeline.schemas import BestBetResult, ModelPerformanceDaily, PredictionAccuracy


class GradeOutcome(NamedTuple):
    """What one grading run did (returned for tests and the summary)."""

    run_id: str
    dates: tuple[dt.date, ...]
    accuracy: list[PredictionAccuracy]
    results: list[BestBetResult]
    performance: list[ModelPerformanceDaily]
    record: dict
    counts: dict[str, Any]
    exports: list[str]


# --------------------------------------------------------------------------------------------
# Options
# --------------------------------------------------------------------------------------------


def resolve_dates(options) -> list[dt.date]:
    """--date D or --start D --end D (inclusive); OptionsError otherwise."""
    rng = options.view_as(RangeOptions)
    one = parse_date(rng.date, "date")
    start, end = parse_date(rng.start, "start"), parse_date(rng.end, "end")
    if one is not None and (start is not None or end is not None):
        raise OptionsError("give either --date or --start/--end, not both; e.g. --date 2026-02-22")
    if one is not None:
        return [one]
    if start is None or end is None:
        raise OptionsError("--date D or --start D --end D is required, e.g. --date 2026-02-22")
    return date_range(start, end)




# --------------------------------------------------------------------------------------------
# The job
# --------------------------------------------------------------------------------------------


def grade_counts(metrics: dict[str, Any]) -> dict[str, Any]:
    """The summary counts of a grading job from its counters (``metrics_error`` passed through)."""
    if common.METRICS_ERROR in metrics:
        return {common.METRICS_ERROR: metrics[common.METRICS_ERROR]}
    m = metrics
    counts = {
        "predictions": m.get("read_predictions", 0), "predictions_graded": m.get("predictions_graded", 0),
        "pending_predictions": m.get("predictions_pending", 0),
        "no_line_predictions": m.get("predictions_no_line", 0),
        "picks": m.get("read_best_bets", 0), "withdrawn_picks": m.get("picks_withdrawn", 0),
        "model_performance_rows": m.get("model_performance_rows", 0),
        "dead_letters": m.get("dead_letters", 0), "dead_letters_written": m.get("dead_letters_written", 0),
        "grading_failures": m.get("grading_failures", 0),
    }
    for r in (grading_lib.WIN, grading_lib.LOSS, grading_lib.PUSH, grading_lib.VOID, grading_lib.PENDING):
        counts[f"picks_{r.lower()}"] = m.get(f"picks_{r.lower()}", 0)
    return counts


def run_grading(plan: GradePlan, options) -> dict[str, Any]:
    """Builds and runs the grading job; returns its summary counts.

    Local runners run to completion. On a remote runner (Dataflow) the job is submitted and this returns
    at once with ``{"submitted": 1, "job_id": ...}`` (a flex-template launcher must exit after ``run()``).
    """
    p = beam.Pipeline(options=options)
    build_grading_pipeline(p, plan)
    result = common.run_or_submit(p, options, f"grading {plan.dates[0]}..{plan.dates[-1]}")
    if isinstance(result, dict):
        return result
    return grade_counts(common.metric_counts(result))


def local_options():
    """Pipeline options for a local grading job when the caller gives none (tests, benchmarks)."""
    from apache_beam.options.pipeline_options import PipelineOptions

    return PipelineOptions(["--runner=FnApiRunner"])


def grade_dates(warehouse, inputs: str, exports: str | None, dates: Sequence[dt.date], *, policy,
                run_id: str, generated_at: dt.datetime | None = None, options=None) -> GradeOutcome:
    """Grades ``dates`` with the grading job (run locally to completion) and reads back what it wrote:
    the dates' grading rows, the record as of the latest graded date, the job's counts."""
    dates = sorted(set(dates))
    plan = GradePlan(run_id=run_id, dates=tuple(dates), inputs=inputs, warehouse=warehouse.uri,
                     exports=exports, policy=policy, generated_at=generated_at or dt.datetime.now(dt.UTC))
    counts = run_grading(plan, options or local_options())
    if counts.get("submitted"):
        return GradeOutcome(run_id, tuple(dates), [], [], [], {}, counts, [])
    accuracy = sorted(read_table_rows(warehouse, "prediction_accuracy", dates),
                      key=lambda a: (a.game_date, a.game_id, a.player_lookup, a.model_id))
    results = sorted(read_table_rows(warehouse, "best_bets_results", dates),
                     key=lambda r: (r.game_date, r.rank if r.rank is not None else 10**6, r.pick_id))
    performance = sorted(read_table_rows(warehouse, "model_performance_daily", dates),
                         key=lambda r: (r.game_date, r.model_id))
    results_all = season_results(warehouse, dates[-1], whole_season=True)
    record = records_lib.best_bets_record(results_all, record_as_of(results_all, dates[-1]),
                                          live_run_ids=common.live_run_ids(warehouse), policy=policy)
    written = []
    if exports:
        written = sorted({f"{exports}/best-bets/record.json", f"{exports}/models/performance.json"})
    return GradeOutcome(run_id, tuple(dates), accuracy, results, performance, record, counts, written)


def season_backtest(warehouse, start: dt.date, end: dt.date, policy) -> list[grading_lib.BacktestLine]:
    """The backtest table over the stored grading rows of [start, end]."""
    dates = date_range(start, end)
    accuracy = read_table_rows(warehouse, "prediction_accuracy", dates)
    results = read_table_rows(warehouse, "best_bets_results", dates)
    return grading_lib.backtest_table(accuracy, results, policy=policy)


def format_grade_summary(dates: Sequence[dt.date], counts: dict[str, Any], seconds: float) -> str:
    d = sorted(dates)
    span = d[0].isoformat() if len(d) == 1 else f"{d[0]}..{d[-1]} ({len(d)} dates)"
    if counts.get("submitted"):
        return f"grade {span}: submitted job {counts.get('job_id')}, {seconds:.1f} s"
    if counts.get(common.METRICS_ERROR):
        return (f"grade {span}: finished, metrics UNAVAILABLE ({counts[common.METRICS_ERROR]}), "
                f"{seconds:.1f} s")
    c = counts
    return (f"grade {span}: predictions graded {c['predictions_graded']} "
            f"(no line {c['no_line_predictions']}; pending {c['pending_predictions']}), picks graded "
            f"{c['picks_win']}-{c['picks_loss']}-{c['picks_push']}-{c['picks_void']} W-L-P-V "
            f"(pending {c['picks_pending']}, withdrawn {c['withdrawn_picks']}), "
            f"model rows {c['model_performance_rows']}, dead letters {c['dead_letters']} "
            f"({c['dead_letters_written']} new), {seconds:.1f} s")


def preflight(plan: GradePlan, options) -> int:
    """Prints the resolved plan and runs the preflight checks; runs no job, writes nothing."""
    print(json.dumps(plan_summary(plan), indent=2, default=str))
    from pipeline.io import cloud

    problems = list(cloud.preflight(options, command="grade", dates=list(plan.dates)))
    for problem in problems:
        eprint(f"preflight: {problem}")
    print("preflight: OK" if not problems else f"preflight: {len(problems)} problem(s)")
    return 0 if not problems else 2


def main(argv: list[str]) -> int:
    common.prepare_local_environment()
    if "-h" in argv or "--help" in argv:
        common.print_help("grade", (RangeOptions, DataOptions))
        return 0
    watch = common.Stopwatch()
    from pipeline.io import cloud

    try:
        options = common.parse_options(argv)
        cloud.launch_preflight(options)  # before anything touches Google Cloud, as `props run` / `backfill`
        legacy_exports.check_options(options)  # #11: never overlap --exports
        dates = resolve_dates(options)
        policy = common.load_policy(options)
        inputs = common.default_inputs(options)
        uri = common.warehouse_uri(options)
        exports = common.exports_uri(options)
    except cloud.PreflightError as exc:
        for problem in exc.problems:
            eprint(f"props grade: {problem}")
        return 2
    except (OptionsError, LaunchError, ValueError) as exc:
        eprint(f"props grade: {exc}")
        return 2
    run_id = common.new_run_id("grade")
    plan = GradePlan(run_id=run_id, dates=tuple(dates), inputs=inputs, warehouse=uri, exports=exports,
                     policy=policy, generated_at=dt.datetime.now(dt.UTC))
    if options.view_as(DataOptions).preflight_only:
        return preflight(plan, options)
    try:
        from pipeline.io.warehouse import open_warehouse

        warehouse = open_warehouse(uri)
    except (LaunchError, ValueError) as exc:
        eprint(f"props grade: {exc}")
        return 2
    abandoned = clean_up_dead_runs(warehouse, exports)
    started = dt.datetime.now(dt.UTC)
    warehouse.insert_run(schemas.RunRecord(
        run_id=run_id, command="grade",
        options=json.dumps(plan_summary(plan) | {"argv": list(argv)}, sort_keys=True, default=str),
        policy_version=policy.version, registry_digest=None, started_at=started, finished_at=None,
        status="running", counts="{}", game_date=dates[0] if len(dates) == 1 else None,
        host=socket.gethostname(), pid=os.getpid()))
    try:
        with killable():  # from the row's insert on: a SIGTERM / SIGINT always finishes the row
            if common.is_remote_runner(options):
                counts, outcome = run_grading(plan, options), None
            else:
                outcome = grade_dates(warehouse, inputs, exports, dates, policy=policy, run_id=run_id,
                                      generated_at=plan.generated_at, options=options)
                counts = outcome.counts
    except RunKilled as killed:
        return finish_killed(warehouse, run_id, exports, killed, "props grade")
    except Exception as exc:
        warehouse.finish_run(run_id, dt.datetime.now(dt.UTC), "failed",
                             json.dumps({"error": f"{type(exc).__name__}: {exc}"}))
        traceback.print_exc()
        eprint(f"props grade: FAILED after {watch.seconds:.1f} s: {type(exc).__name__}: {exc}")
        return 1
    counts_doc = dict(counts, seconds=round(watch.seconds, 2))
    if abandoned:
        counts_doc["abandoned_runs"] = abandoned
    status = common.run_status(counts)
    warehouse.finish_run(run_id, dt.datetime.now(dt.UTC), status, json.dumps(counts_doc, default=str))
    if status == "succeeded":
        legacy_exports.after_commit(options, warehouse, dates, algorithm_version=policy.version)
    print(format_grade_summary(dates, counts, watch.seconds))
    if abandoned:
        print(abandoned_line(abandoned))
    if outcome is None:
        return 0
    rec = outcome.record
    print(f"record as of {rec['as_of']}: season {rec['season']['record']}, "
          f"last 10 {rec['last_10']['record']}, "
          f"streak {rec['current_streak']['type'] or '-'}{rec['current_streak']['length']}, "
          f"ultra OVER {rec['ultra']['over']['record']} (public: {rec['ultra']['public']})")
    if len(dates) > 1:
        print()
        print(grading_lib.format_backtest_table(season_backtest(warehouse, dates[0], dates[-1], policy)))
    return 0

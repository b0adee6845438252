"""``props grade``: grading, model performance, the best-bets record and the graded exports.

    props grade --date 2026-02-22
    props grade --start 2026-01-01 --end 2026-04-12      # also prints the season backtest table
    props grade --date 2026-02-22 --inputs DIR --warehouse duckdb:///w.duckdb --exports ./exports

For the dates: predictions and best bets are read from the warehouse (one bulk query each); box scores,
injury reports, odds and the schedule of the dates from ``--inputs`` (one bulk read per kind). Every
player-date is graded by ``pipeline.domain.grading.grade_player_date`` (the latest prediction per model
with a line; every pick not withdrawn; injury status and closing line as of tip-off). Then, in ONE
warehouse transaction, ``prediction_accuracy``, ``best_bets_results`` and ``model_performance_daily`` of
the dates are replaced (model performance recomputed from the accuracy history: a 30-day lookback read
once). Finally the exports: ``best-bets/record.json``, ``models/performance.json`` and each date's
``best-bets/{date}.json`` (and ``latest.json`` when it is that date) re-written with each pick's actual
points and result. Grading a date twice gives identical rows (apart from ``run_id``).

Engine: the grading runs in plain Python over the bulk-read rows, not in a Beam pipeline. The rows are
already on the driver (warehouse queries, ``read_local``), a whole season grades in seconds this way,
and the one-transaction replace of three tables plus the model-performance recompute need every row in
one place anyway. ``pipeline.transforms.grading`` wraps the same domain function in ``GradePredictions``
/ ``GradePicks`` for a Dataflow graph (tested with TestPipeline).

Input rows that fail to parse are written to ``dead_letters`` once (rows already stored with the same
source, step and payload are not duplicated on a re-grade). A closing summary line: dates, predictions
graded, picks graded (W-L-P-V), seconds.
"""

from __future__ import annotations

import datetime as dt
import json
import traceback
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple

from pipeline import schemas
from pipeline.commands import common
from pipeline.commands.common import LaunchError, eprint
from pipeline.domain import grading as grading_lib
from pipeline.domain import records as records_lib
from pipeline.io import legacy_exports
from pipeline.options import DataOptions, OptionsError, RangeOptions, date_range, parse_date
from pipeline.schemas import BestBetResult, ModelPerformanceDaily, Pick, Prediction, PredictionAccuracy

GRADING_TABLES: tuple[str, ...] = ("prediction_accuracy", "best_bets_results", "model_performance_daily")
LOOKBACK_DAYS = max(grading_lib.WINDOWS_DAYS)


class GradeOutcome(NamedTuple):
    """What one grading run did (returned for tests and the summary)."""

    run_id: str
    dates: tuple[dt.date, ...]
    accuracy: list[PredictionAccuracy]
    results: list[BestBetResult]
    performance: list[ModelPerformanceDaily]
    record: dict
    counts: dict[str, int]
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
# Reading
# --------------------------------------------------------------------------------------------


def row_of(row_type: type, record: Mapping[str, Any]):
    """A row NamedTuple from a warehouse record (lists -> tuples; missing columns take defaults)."""
    defaults = row_type._field_defaults
    values = {}
    for f in row_type._fields:
        v = record[f] if f in record else defaults.get(f)
        values[f] = tuple(v) if isinstance(v, list) else v
    return row_type(**values)


def _in_dates(column: str, dates: Sequence[dt.date]) -> tuple[str, list]:
    return f"{column} IN ({', '.join('?' for _ in dates)})", list(dates)


def read_table_rows(warehouse, table: str, dates: Sequence[dt.date]) -> list:
    """Every row of ``table`` for ``dates`` as row NamedTuples (one query). Uses the warehouse's
    ``read_rows`` when it has one (BigQuery: dataset-qualified table, ``IN UNNEST``), else a plain
    ``SELECT`` through ``query`` (DuckDB)."""
    if not dates:
        return []
    dates = sorted(set(dates))
    row_type = schemas.TABLES[table].row_type
    if hasattr(warehouse, "read_rows"):
        return [row_of(row_type, r._asdict() if hasattr(r, "_asdict") else r)
                for r in warehouse.read_rows(table, dates)]
    where, params = _in_dates("game_date", dates)
    return [row_of(row_type, r) for r in warehouse.query(f"SELECT * FROM {table} WHERE {where}", params)]


def read_inputs(inputs: str, dates: Sequence[dt.date]) -> tuple[dict[str, list], list[schemas.DeadLetter]]:
    """Box scores, injuries, odds and schedule of the dates: one bulk read per kind."""
    from pipeline.io.sources import read_local

    rows: dict[str, list] = {}
    dead: list[schemas.DeadLetter] = []
    for kind in ("box_scores", "injuries", "odds", "schedule"):
        kind_rows, kind_dead = read_local(inputs, kind, dates)
        rows[kind] = kind_rows
        dead.extend(kind_dead)
    return rows, dead


def tipoffs_of(events: Iterable[schemas.ScheduleEvent]) -> dict[str, dt.datetime]:
    """game_id -> tip-off from each game's latest schedule event."""
    return {gid: g.tipoff_utc for gid, g in common.latest_games(events).items() if g.tipoff_utc is not None}


# --------------------------------------------------------------------------------------------
# Grading (pure Python over the bulk-read rows)
# --------------------------------------------------------------------------------------------


def grade_rows(predictions: Sequence[Prediction], picks: Sequence[Pick], inputs: Mapping[str, list], *,
               policy, run_id: str | None) -> tuple[list[PredictionAccuracy], list[BestBetResult], dict]:
    """Grades every (game_date, player) of the predictions and picks; returns sorted rows and counts."""
    def key(r) -> tuple[dt.date, str]:
        return r.game_date, r.player_lookup

    groups: dict[str, dict[tuple, list]] = {k: defaultdict(list) for k in
                                            ("predictions", "picks", "box_scores", "injuries", "odds")}
    wanted = {key(r) for r in predictions} | {key(r) for r in picks}
    for name, rows in (("predictions", predictions), ("picks", picks), ("box_scores", inputs["box_scores"]),
                       ("injuries", inputs["injuries"]), ("odds", inputs["odds"])):
        g = groups[name]
        for r in rows:
            k = key(r)
            if k in wanted:
                g[k].append(r)
    played = frozenset(b.game_id for b in inputs["box_scores"])
    tipoffs = tipoffs_of(inputs["schedule"])
    accuracy: list[PredictionAccuracy] = []
    results: list[BestBetResult] = []
    counts = {"pending_predictions": 0, "no_line_predictions": 0}
    for k in sorted(wanted):
        out = grading_lib.grade_player_date(
            groups["predictions"].get(k, ()), groups["picks"].get(k, ()), groups["box_scores"].get(k, ()),
            groups["injuries"].get(k, ()), groups["odds"].get(k, ()), tipoffs=tipoffs,
            played_game_ids=played, policy=policy, run_id=run_id)
        accuracy.extend(out.accuracy)
        results.extend(out.results)
        counts["pending_predictions"] += out.pending_predictions
        counts["no_line_predictions"] += out.no_line_predictions
    counts["withdrawn_picks"] = sum(1 for p in picks if p.status == "withdrawn")
    accuracy.sort(key=lambda a: (a.game_date, a.game_id, a.player_lookup, a.model_id))
    results.sort(key=lambda r: (r.game_date, r.rank if r.rank is not None else 10**6, r.pick_id))
    return accuracy, results, counts


def result_counts(results: Iterable[BestBetResult]) -> dict[str, int]:
    out = {k: 0 for k in (grading_lib.WIN, grading_lib.LOSS, grading_lib.PUSH, grading_lib.VOID,
                          grading_lib.PENDING)}
    for r in results:
        out[r.result] += 1
    return out


def _new_dead_letters(warehouse, dead: Sequence[schemas.DeadLetter], dates: Sequence[dt.date],
                      run_id: str) -> list[schemas.DeadLetter]:
    """The dead letters not yet stored (same source, step and payload), stamped with the run id."""
    if not dead:
        return []
    stored = {(d.source, d.step, d.payload) for d in read_table_rows(warehouse, "dead_letters", dates)}
    out, seen = [], set()
    for d in dead:
        k = (d.source, d.step, d.payload)
        if k not in stored and k not in seen:
            seen.add(k)
            out.append(d._replace(run_id=d.run_id or run_id))
    return out


# --------------------------------------------------------------------------------------------
# Exports
# --------------------------------------------------------------------------------------------


def _read_json(uri: str) -> dict | None:
    from apache_beam.io.filesystems import FileSystems

    if not FileSystems.exists(uri):
        return None
    with FileSystems.open(uri) as f:
        return json.loads(f.read().decode("utf-8"))


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


def write_exports(exports: str, warehouse, dates: Sequence[dt.date], *, results_all: Sequence[BestBetResult],
                  picks: Sequence[Pick], non_live: set[str], policy, generated_at: dt.datetime) -> list[str]:
    """Writes record.json, performance.json and the graded per-date documents; returns the uris."""
    from pipeline.io.exports import best_bets_document, join_uri, to_jsonable, write_json

    written = []
    last = max(dates)
    gate = dict(min_picks=policy.ultra_public_min_picks, min_hr=policy.ultra_public_min_hr)
    record = records_lib.best_bets_record(results_all, record_as_of(results_all, last),
                                          non_live_run_ids=non_live, **gate)
    uri = join_uri(exports, "best-bets/record.json")
    written.append(write_json(uri, to_jsonable(record), cache_control="public, max-age=60"))

    perf_last = record_as_of(results_all, last)
    perf_rows = read_table_rows(warehouse, "model_performance_daily",
                                date_range(perf_last - dt.timedelta(days=LOOKBACK_DAYS - 1), perf_last))
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
    for d in dates:
        rec = records_lib.best_bets_record(results_all, d, non_live_run_ids=non_live, **gate)
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


# --------------------------------------------------------------------------------------------
# The whole job
# --------------------------------------------------------------------------------------------


def season_results(warehouse, as_of: dt.date, *, whole_season: bool = False) -> list[BestBetResult]:
    """Every graded pick of the season of ``as_of`` up to it (or the whole season), one query."""
    season_first, season_last, _ = records_lib.season_bounds(as_of)
    return read_table_rows(warehouse, "best_bets_results",
                           date_range(season_first, season_last if whole_season else as_of))


def record_as_of(results: Iterable[BestBetResult], graded_through: dt.date) -> dt.date:
    """The date ``record.json`` is computed at: the latest graded pick of the season, so re-grading an
    earlier date never rolls the public record back."""
    return max([graded_through] + [r.game_date for r in results if r.result != grading_lib.PENDING])


def non_live_run_ids(warehouse) -> set[str]:
    """Runs that are backfills (their picks never count toward the ultra public gate)."""
    try:
        rows = warehouse.query("SELECT run_id FROM runs WHERE command = ?", ["backfill"])
        return {r["run_id"] for r in rows}
    except Exception:  # noqa: BLE001 - a warehouse without a runs table yet
        return set()


def grade_dates(warehouse, inputs: str, exports: str | None, dates: Sequence[dt.date], *, policy,
                run_id: str, generated_at: dt.datetime | None = None) -> GradeOutcome:
    """Grades ``dates``: reads, grades, replaces the grading tables in one transaction, writes exports."""
    dates = sorted(set(dates))
    generated_at = generated_at or dt.datetime.now(dt.UTC)
    predictions = read_table_rows(warehouse, "predictions", dates)
    picks = read_table_rows(warehouse, "best_bets", dates)
    rows, dead = read_inputs(inputs, dates)
    accuracy, results, counts = grade_rows(predictions, picks, rows, policy=policy, run_id=run_id)

    first = dates[0] - dt.timedelta(days=LOOKBACK_DAYS - 1)
    lookback = [d for d in date_range(first, dates[-1]) if d not in set(dates)]
    history = read_table_rows(warehouse, "prediction_accuracy", lookback)
    performance = grading_lib.model_performance_series(history + accuracy, dates, run_id=run_id)

    new_dead = _new_dead_letters(warehouse, dead, dates, run_id)
    warehouse.replace_dates(dates, {"prediction_accuracy": accuracy, "best_bets_results": results,
                                    "model_performance_daily": performance}, tables=list(GRADING_TABLES))
    if new_dead:
        warehouse.append("dead_letters", new_dead)

    results_all = season_results(warehouse, dates[-1], whole_season=True)
    non_live = non_live_run_ids(warehouse)
    written = []
    if exports:
        written = write_exports(exports, warehouse, dates, results_all=results_all, picks=picks,
                                non_live=non_live, policy=policy, generated_at=generated_at)
    gate = dict(min_picks=policy.ultra_public_min_picks, min_hr=policy.ultra_public_min_hr)
    record = records_lib.best_bets_record(results_all, record_as_of(results_all, dates[-1]),
                                          non_live_run_ids=non_live, **gate)
    counts = dict(counts, predictions=len(predictions), predictions_graded=len(accuracy),
                  picks=len(picks), **{f"picks_{k.lower()}": v for k, v in result_counts(results).items()},
                  model_performance_rows=len(performance), dead_letters=len(dead),
                  dead_letters_written=len(new_dead))
    return GradeOutcome(run_id, tuple(dates), accuracy, results, performance, record, counts, written)


def season_backtest(warehouse, start: dt.date, end: dt.date) -> list[grading_lib.BacktestLine]:
    """The backtest table over the stored grading rows of [start, end]."""
    dates = date_range(start, end)
    accuracy = read_table_rows(warehouse, "prediction_accuracy", dates)
    results = read_table_rows(warehouse, "best_bets_results", dates)
    return grading_lib.backtest_table(accuracy, results)


def format_grade_summary(outcome: GradeOutcome, seconds: float) -> str:
    c = outcome.counts
    d = outcome.dates
    span = d[0].isoformat() if len(d) == 1 else f"{d[0]}..{d[-1]} ({len(d)} dates)"
    return (f"grade {span}: predictions graded {c['predictions_graded']} "
            f"(pending {c['pending_predictions']}, no line {c['no_line_predictions']}), picks graded "
            f"{c['picks_win']}-{c['picks_loss']}-{c['picks_push']}-{c['picks_void']} W-L-P-V "
            f"(pending {c['picks_pending']}, withdrawn {c['withdrawn_picks']}), "
            f"model rows {c['model_performance_rows']}, dead letters {c['dead_letters']}, {seconds:.1f} s")


def main(argv: list[str]) -> int:
    common.prepare_local_environment()
    if "-h" in argv or "--help" in argv:
        common.print_help("grade", (RangeOptions, DataOptions))
        return 0
    watch = common.Stopwatch()
    try:
        options = common.parse_options(argv)
        legacy_exports.check_options(options)  # #11: never overlap --exports
        dates = resolve_dates(options)
        policy = common.load_policy(options)
        inputs = common.default_inputs(options)
        from pipeline.io.warehouse import open_warehouse

        warehouse = open_warehouse(common.warehouse_uri(options))
        exports = common.exports_uri(options)
    except (OptionsError, LaunchError, ValueError) as exc:
        eprint(f"props grade: {exc}")
        return 2
    run_id = common.new_run_id("grade")
    started = dt.datetime.now(dt.UTC)
    warehouse.insert_run(schemas.RunRecord(
        run_id=run_id, command="grade", options=json.dumps({"argv": list(argv), "inputs": inputs}),
        policy_version=policy.version, registry_digest=None, started_at=started, finished_at=None,
        status="running", counts="{}", game_date=dates[0] if len(dates) == 1 else None))
    try:
        outcome = grade_dates(warehouse, inputs, exports, dates, policy=policy, run_id=run_id)
    except Exception as exc:
        warehouse.finish_run(run_id, dt.datetime.now(dt.UTC), "failed",
                             json.dumps({"error": f"{type(exc).__name__}: {exc}"}))
        traceback.print_exc()
        eprint(f"props grade: FAILED after {watch.seconds:.1f} s: {type(exc).__name__}: {exc}")
        return 1
    warehouse.finish_run(run_id, dt.datetime.now(dt.UTC), "succeeded",
                         json.dumps(dict(outcome.counts, seconds=round(watch.seconds, 2))))
    legacy_exports.after_commit(options, warehouse, dates, algorithm_version=policy.version)
    print(format_grade_summary(outcome, watch.seconds))
    rec = outcome.record
    print(f"record as of {rec['as_of']}: season {rec['season']['record']}, "
          f"last 10 {rec['last_10']['record']}, "
          f"streak {rec['current_streak']['type'] or '-'}{rec['current_streak']['length']}, "
          f"ultra OVER {rec['ultra']['over']['record']} (public: {rec['ultra']['public']})")
    if len(dates) > 1:
        print()
        print(grading_lib.format_backtest_table(season_backtest(warehouse, dates[0], dates[-1])))
    return 0

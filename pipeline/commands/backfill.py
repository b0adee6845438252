"""``props backfill --start D --end D``: every date of a range at its own decision time.

    props backfill --start 2026-02-01 --end 2026-02-28
    props backfill --start 2026-02-01 --end 2026-04-12 --dates-per-pipeline 14 --run-mode BACKFILL

Each date is decided ``--decision-offset-minutes`` (default 60) before its first tip-off, with the
features of that date (built upstream from earlier games only) and only the models whose training window
ended before it (the leakage guard), so a backtest is never leaky. Dates are processed in chunks of
``--dates-per-pipeline`` per Beam pipeline, with a progress line per chunk; each date is replaced in the
warehouse atomically, so an interrupted backfill can simply be run again.
"""

from __future__ import annotations

import datetime as dt
import json
import traceback

from pipeline.commands import common
from pipeline.commands.common import LaunchError, eprint
from pipeline.commands.run import (
    RunKilled,
    abandoned_line,
    build_plan,
    clean_up_dead_runs,
    finish_killed,
    killable,
    open_warehouse,
    record_run,
    run_plan,
)
from pipeline.options import (
    DataOptions,
    OptionsError,
    RangeOptions,
    SlateOptions,
    date_range,
    parse_date,
)


def progress_bar(done: int, total: int, width: int = 24) -> str:
    filled = int(width * done / total) if total else width
    return "[" + "#" * filled + "." * (width - filled) + f"] {done}/{total}"


def main(argv: list[str]) -> int:
    common.prepare_local_environment()
    if "-h" in argv or "--help" in argv:
        common.print_help("backfill", (RangeOptions, SlateOptions, DataOptions))
        return 0
    watch = common.Stopwatch()
    from pipeline.io import cloud

    try:
        options = common.parse_options(argv)
        cloud.launch_preflight(options)  # before anything touches Google Cloud, as `props run` / `grade`
        rng = options.view_as(RangeOptions)
        start, end = parse_date(rng.start, "start"), parse_date(rng.end, "end")
        if start is None or end is None:
            raise OptionsError("--start and --end are required, e.g. --start 2026-02-01 --end 2026-02-28")
        dates = date_range(start, end)
        run_mode = options.view_as(SlateOptions).run_mode
        if "--run-mode" not in " ".join(argv) and "--run_mode" not in " ".join(argv):
            run_mode = "BACKFILL"
        registry = common.load_registry(options)
        policy = common.load_policy(options)
        inputs = common.default_inputs(options)
        preflight_only = options.view_as(DataOptions).preflight_only
        warehouse = None if preflight_only else open_warehouse(options)
        from pipeline.io.sources import read_local

        events, _ = read_local(inputs, "schedule", dates, policy.event_time_window_hours)
        game_dates = sorted({e.game_date for e in events if start <= e.game_date <= end})
        if not game_dates:
            raise LaunchError(f"no scheduled games between {start} and {end} in {inputs}")
    except cloud.PreflightError as exc:
        for problem in exc.problems:
            eprint(f"props backfill: {problem}")
        return 2
    except (OptionsError, LaunchError) as exc:
        eprint(f"props backfill: {exc}")
        return 2

    # On Dataflow the whole range is one job (the service parallelises dates); locally, chunks show progress.
    per = len(game_dates) if common.is_remote_runner(options) else (rng.dates_per_pipeline or len(game_dates))
    chunks = [game_dates[i : i + per] for i in range(0, len(game_dates), per)]
    run_id = common.new_run_id("backfill")
    totals = {k: 0 for k in common.SUMMARY_FIELDS}
    first_plan = None
    eprint(
        f"props backfill {start}..{end}: {len(game_dates)} game dates in {len(chunks)} pipeline(s), "
        f"run mode {run_mode}, policy {policy.version}, run {run_id}"
    )
    started = dt.datetime.now(dt.UTC)
    abandoned: list[str] = []
    unscored: list[str] = []  # dates no enabled model is eligible for: named in the runs row and summary
    done = 0
    for chunk in chunks:
        try:
            with common.warehouse_session(warehouse):  # the graded-history reads share one connection
                plan = build_plan(
                    options,
                    command="backfill",
                    dates=chunk,
                    run_mode=run_mode,
                    offset_minutes=rng.decision_offset_minutes,
                    inputs=inputs,
                    registry=registry,
                    policy=policy,
                    warehouse=warehouse,
                    run_id=run_id,
                )
        except LaunchError as exc:
            eprint(f"props backfill: {exc}")
            return 2
        if preflight_only:
            from pipeline.commands.run import dry_run

            return dry_run(plan, options)
        unscored += [str(d) for d in chunk if not plan.date_plans[d].model_ids]
        if first_plan is None:
            first_plan = plan
            with common.warehouse_session(warehouse):
                abandoned = clean_up_dead_runs(warehouse, plan.exports)
                record_run(warehouse, plan, registry, started)
        chunk_watch = common.Stopwatch()
        try:
            with killable():
                counts = run_plan(plan, options)
        except RunKilled as killed:
            return finish_killed(warehouse, run_id, plan.exports, killed, "props backfill",
                                 {"done_dates": done})
        except Exception as exc:
            warehouse.finish_run(
                run_id,
                dt.datetime.now(dt.UTC),
                "failed",
                json.dumps({"error": f"{type(exc).__name__}: {exc}", "done_dates": done}),
            )
            traceback.print_exc()
            eprint(f"props backfill: FAILED at {chunk[0]}..{chunk[-1]}: {type(exc).__name__}: {exc}")
            return 1
        for k in totals:
            totals[k] += counts.get(k, 0)
        totals.update({k: counts[k] for k in ("history", common.METRICS_ERROR) if k in counts})
        done += len(chunk)
        rate = totals["predictions"] / max(watch.seconds, 1e-9)
        eprint(
            f"{progress_bar(done, len(game_dates))} {chunk[0]}..{chunk[-1]}  "
            f"viable {counts.get('viable', 0)} picks {counts.get('picks', 0)} "
            f"dead {counts.get('dead_letters', 0)}  {chunk_watch.seconds:.1f} s  "
            f"({rate:.0f} predictions/s overall)"
        )
    seconds = watch.seconds
    player_games = totals["players"]
    counts_doc = dict(
        totals,
        seconds=round(seconds, 2),
        dates=len(game_dates),
        player_games_per_second=round(player_games / max(seconds, 1e-9), 1),
    )
    if abandoned:
        counts_doc["abandoned_runs"] = abandoned
    if unscored:
        counts_doc["dates_without_models"] = unscored
    status = "submitted" if common.is_remote_runner(options) else common.run_status(totals)
    warehouse.finish_run(run_id, dt.datetime.now(dt.UTC), status, json.dumps(counts_doc))
    print(common.format_summary(f"backfill {start}..{end} ({len(game_dates)} dates)", totals, seconds))
    print(f"player-games per second: {counts_doc['player_games_per_second']}")
    if unscored:
        print(f"not scored (no enabled model eligible; training windows must end before the date): "
              f"{len(unscored)} date(s), {unscored[0]}..{unscored[-1]}")
    if abandoned:
        print(abandoned_line(abandoned))
    return 0

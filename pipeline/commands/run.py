"""``props run``: one slate end to end (the product's main job).

    props run                                   # local default: simulated season, sample models,
                                                # the busiest date after the models' training window
    props run --game-date 2026-02-22 --as-of 2026-02-22T23:00:00Z --run-mode RETRY
    props run --inputs bigquery://proj.props_raw --warehouse bigquery://proj.props --runner DataflowRunner

The launch resolves and checks everything first (policy, registry, dates, decision time, eligible models,
graded history); then one Beam pipeline reads every source once, scores every viable player with every
eligible model through RunInference, selects the best bets, replaces the date's rows in the warehouse in
one transaction and writes the JSON exports. It ends with a one-line summary and a row in ``runs``.

The ``runs`` row (``schemas.RUN_STATUSES``): ``running`` from the launch (with the launcher's host and
pid), then ``succeeded``, ``failed``, ``submitted`` (Dataflow) or ``killed`` (SIGTERM / SIGINT: the
handler finishes the row and removes this process's temporary export files, exit code 128 + signal).
A process killed without a chance to say so (SIGKILL, a lost machine) leaves its row ``running``: the
next launch of ``run`` or ``backfill`` finishes such rows as ``abandoned``
(``warehouse.abandon_dead_runs``), removes the temporary export files of processes that are gone
(``exports.remove_orphan_temp_files``) and says so in its summary.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import signal
import socket
import sys
import threading
import traceback
from collections.abc import Iterator, Sequence

import apache_beam as beam

from pipeline import schemas
from pipeline.commands import common
from pipeline.commands.common import LaunchError, eprint
from pipeline.domain.calendar import season_start, today_eastern
from pipeline.graph import RunPlan, build_pipeline, plan_summary
from pipeline.io import legacy_exports
from pipeline.options import (
    DataOptions,
    OptionsError,
    SlateOptions,
    parse_date,
    parse_timestamp,
    validate_run_mode,
)


def build_plan(
    options,
    *,
    command: str,
    dates: Sequence[dt.date] | None = None,
    as_of: dt.datetime | None = None,
    run_mode: str | None = None,
    offset_minutes: int = 60,
    inputs: str | None = None,
    registry=None,
    policy=None,
    warehouse=None,
    write: bool = True,
    run_id: str | None = None,
) -> RunPlan:
    """Resolves a RunPlan for ``dates`` (default: the slate options) and checks it."""
    slate = options.view_as(SlateOptions)
    inputs = inputs or common.default_inputs(options)
    policy = policy or common.load_policy(options)
    registry = registry or common.load_registry(options)
    run_mode = validate_run_mode(run_mode or slate.run_mode)
    if dates is None:
        game_date = parse_date(slate.game_date, "game_date")
        if game_date is None:
            if options.view_as(DataOptions).inputs is None:
                game_date = common.busiest_date(inputs, common.trained_until(registry))
            else:
                game_date = today_eastern()
        dates = [game_date]
        as_of = as_of or parse_timestamp(slate.as_of, "as_of")
    from pipeline.io.sources import read_local

    events, schedule_dead = read_local(inputs, "schedule", dates, policy.event_time_window_hours)
    plans = common.date_plans(
        events, dates, run_mode=run_mode, as_of=as_of, offset_minutes=offset_minutes, registry=registry
    )
    if not plans:
        raise LaunchError(
            f"no scheduled games on {', '.join(d.isoformat() for d in dates)} in {inputs}; "
            "check --inputs and --game-date"
        )
    specs, infos = common.model_infos(registry, plans, policy)
    handler = None
    if specs:
        from models.handler import build_keyed_handler

        handler = build_keyed_handler(specs)
    first = min(plans)
    box_dates = tuple(
        season_start(first) + dt.timedelta(days=i) for i in range((max(plans) - season_start(first)).days)
    )
    history = common.graded_history(warehouse, sorted(plans), policy) if warehouse is not None else {}
    return RunPlan(
        run_id=run_id or common.new_run_id(command),
        command=command,
        inputs=inputs,
        warehouse=common.warehouse_uri(options) if write else None,
        exports=common.exports_uri(options) if write else None,
        policy=policy,
        models=infos,
        model_handler=handler,
        date_plans=plans,
        schedule=tuple(events),
        schedule_dead_letters=tuple(schedule_dead),
        history=history or {},
        box_score_dates=box_dates,
    )


def run_plan(plan: RunPlan, options) -> dict[str, int]:
    """Runs the graph of ``plan``; returns the summary counts.

    Local runners run to completion. On a remote runner (Dataflow) the job is submitted and this returns
    at once with ``{"submitted": 1, "job_id": ...}``: a flex-template launcher must exit after ``run()``
    (waiting would hold the launcher VM until its timeout); the job's counts are in Dataflow's metrics.
    """
    p = beam.Pipeline(options=options)
    build_pipeline(p, plan)
    result = common.run_or_submit(p, options, f"slate {plan.dates[0]}..{plan.dates[-1]}")
    if isinstance(result, dict):
        return result
    return common.summary_counts(common.metric_counts(result), plan.history)


def open_warehouse(options):
    from pipeline.io.warehouse import open_warehouse as _open

    return _open(common.warehouse_uri(options))


def record_run(warehouse, plan: RunPlan, registry, started_at) -> None:
    warehouse.insert_run(
        schemas.RunRecord(
            run_id=plan.run_id,
            command=plan.command,
            options=json.dumps(plan_summary(plan) | {"argv": sys.argv[1:]}, sort_keys=True, default=str),
            policy_version=plan.policy.version,
            registry_digest=registry.digest,
            started_at=started_at,
            finished_at=None,
            status="running",
            counts="{}",
            game_date=plan.dates[0] if len(plan.dates) == 1 else None,
            host=socket.gethostname(),
            pid=os.getpid(),
        )
    )


def clean_up_dead_runs(warehouse, exports_uri: str | None) -> list[str]:
    """At launch: finishes the ``running`` rows of processes that are gone as ``abandoned`` and removes
    their temporary export files; returns the abandoned run ids (printed in the summary)."""
    from pipeline.io.exports import remove_orphan_temp_files
    from pipeline.io.warehouse import abandon_dead_runs

    abandoned = abandon_dead_runs(warehouse, host=socket.gethostname())
    removed = remove_orphan_temp_files(exports_uri)
    if abandoned or removed:
        eprint(f"found {len(abandoned)} run(s) left running by a process that is gone, now abandoned"
               f"{': ' + ', '.join(abandoned) if abandoned else ''}; removed {len(removed)} temporary "
               "export file(s)")
    return abandoned


def abandoned_line(abandoned: Sequence[str]) -> str | None:
    """The summary line naming the runs this launch marked abandoned (None when there were none)."""
    return f"abandoned runs: {', '.join(abandoned)}" if abandoned else None


class RunKilled(BaseException):
    """SIGTERM or SIGINT arrived while the pipeline ran (a BaseException: ``except Exception`` must not
    record it as a failure)."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


@contextlib.contextmanager
def killable() -> Iterator[None]:
    """Turns SIGTERM / SIGINT into :class:`RunKilled` while the block runs (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, _frame):
        raise RunKilled(signum)

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def finish_killed(warehouse, run_id: str, exports_uri: str | None, killed: RunKilled, what: str,
                  extra: dict | None = None) -> int:
    """Finishes a run's row as ``killed``, removes this process's temporary export files; the exit code."""
    from pipeline.io.exports import remove_orphan_temp_files
    from pipeline.io.warehouse import pid_alive

    me = os.getpid()
    remove_orphan_temp_files(exports_uri, alive=lambda pid: pid != me and pid_alive(pid))
    name = signal.Signals(killed.signum).name
    warehouse.finish_run(run_id, dt.datetime.now(dt.UTC), "killed",
                         json.dumps({"signal": name, **(extra or {})}))
    eprint(f"{what}: killed by {name}; run {run_id} recorded as killed")
    return 128 + killed.signum


def no_scoring_note(registry, models: Sequence, dates: Sequence[dt.date]) -> str | None:
    """The plain sentence for the launch and summary lines when no model will score ``dates`` (``models``:
    the plan's eligible models); None when some will. A disabled model is never scored, so such a run
    writes no prediction and no pick."""
    if models:
        return None
    if not registry.enabled():
        return f"no enabled model ({len(registry.models)} registered, all disabled): nothing will be scored"
    return (f"no enabled model eligible for {', '.join(map(str, dates))} (training windows must end "
            "before the date): nothing will be scored")


def main(argv: list[str]) -> int:
    common.prepare_local_environment()
    if "-h" in argv or "--help" in argv:
        common.print_help("run", (SlateOptions, DataOptions))
        return 0
    watch = common.Stopwatch()
    from pipeline.io import cloud

    try:
        options = common.parse_options(argv)
        cloud.launch_preflight(options)  # before anything touches Google Cloud (Beam's clients included)
        legacy_exports.check_options(options)  # #11: never overlap --exports
        registry = common.load_registry(options)
        policy = common.load_policy(options)
        preflight_only = options.view_as(DataOptions).preflight_only
        warehouse = None if preflight_only else open_warehouse(options)
        # A dry run resolves the same plan (targets included) but never runs it.
        with common.warehouse_session(warehouse):  # the graded-history reads share one connection
            plan = build_plan(options, command="run", registry=registry, policy=policy, warehouse=warehouse)
    except cloud.PreflightError as exc:
        for problem in exc.problems:
            eprint(f"props run: {problem}")
        return 2
    except (OptionsError, LaunchError) as exc:
        eprint(f"props run: {exc}")
        return 2
    if preflight_only:
        return dry_run(plan, options)

    started = dt.datetime.now(dt.UTC)
    # said on the launch and summary lines, never silently
    note = no_scoring_note(registry, plan.models, plan.dates)
    with common.warehouse_session(warehouse):  # released before the pipeline writes
        abandoned = clean_up_dead_runs(warehouse, plan.exports)
    try:
        with killable():  # from the row's insert on: a SIGTERM always finishes the row
            record_run(warehouse, plan, registry, started)
            eprint(
                f"props run {plan.dates[0]} as of {plan.date_plans[plan.dates[0]].as_of:%Y-%m-%dT%H:%MZ}: "
                f"{len(plan.date_plans[plan.dates[0]].games)} games, {len(plan.models)} models, "
                f"policy {policy.version}, run {plan.run_id}"
                + (f"; {note}" if note else "")
            )
            counts = run_plan(plan, options)
    except RunKilled as killed:
        return finish_killed(warehouse, plan.run_id, plan.exports, killed, "props run")
    except Exception as exc:
        warehouse.finish_run(
            plan.run_id,
            dt.datetime.now(dt.UTC),
            "failed",
            json.dumps({"error": f"{type(exc).__name__}: {exc}"}),
        )
        traceback.print_exc()
        eprint(f"props run: FAILED after {watch.seconds:.1f} s: {type(exc).__name__}: {exc}")
        return 1
    counts_doc = dict(counts, seconds=round(watch.seconds, 2))
    if abandoned:
        counts_doc["abandoned_runs"] = abandoned
    status = common.run_status(counts)  # succeeded / submitted / succeeded_unverified (no metrics)
    warehouse.finish_run(plan.run_id, dt.datetime.now(dt.UTC), status, json.dumps(counts_doc))
    if status == "succeeded":
        legacy_exports.after_commit(options, warehouse, plan.dates, algorithm_version=policy.version)
    print(common.format_summary(f"run {plan.dates[0]}", counts, watch.seconds))
    if note:
        print(f"run {plan.dates[0]}: {note}")
    if abandoned:
        print(abandoned_line(abandoned))
    print(f"warehouse {plan.warehouse}  exports {plan.exports}")
    return 0


def dry_run(plan: RunPlan, options) -> int:
    """Prints the resolved plan and runs the preflight checks; writes nothing."""
    print(json.dumps(plan_summary(plan), indent=2, default=str))
    problems: list[str] = []
    try:
        from pipeline.io import cloud

        problems = list(cloud.preflight(options, command=plan.command, dates=plan.dates))
    except ImportError:
        pass
    for p in problems:
        eprint(f"preflight: {p}")
    print("preflight: OK" if not problems else f"preflight: {len(problems)} problem(s)")
    return 0 if not problems else 2

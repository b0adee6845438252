"""``props stream``: the streaming job - re-score a player the moment his line moves.

    props stream                                  # local default: the Pub/Sub emulator (started if needed),
                                                  # topics/subscriptions created; serves every date
    props stream --debounce-seconds 0.5
    props stream --rebuild-as-of 2026-02-22T20:00:00Z      # restart: rebuild state from --inputs first
    props stream --pubsub-project my-proj --runner DataflowRunner ...   # real Pub/Sub, never an emulator

One job serves the whole season. The launch validates the policy and the registry; each game date is
initialised when its first event arrives (its feature rows and player contexts from --inputs, its
eligible models by the registry's leakage guard, its published picks and graded history from the
warehouse) and cleared after its games are over plus ``windows.STATE_GRACE_S``. A ``kind=registry``
message changes the models of the open dates without a restart. The graph is
``pipeline.stream_graph.build_stream_pipeline``, run on the streaming DirectRunner until it is killed.
Each pick change goes to ``best_bets_history`` (and ``best_bets`` on DuckDB; on BigQuery the
``best_bets_latest`` view serves it), the exports, the legacy files with ``--legacy-exports`` and the
picks-changes topic; every new version of a player-game writes its gate decision, line diagnostics,
predictions and consensus (versioned rows, ``version`` >= 1) like a batch run does (version 0); on
BigQuery those and the dead letters are written in 5-minute batches (``io/stream_sinks.py``).
In a second terminal: ``props replay --date D`` (or ``--start D1 --end D2``) publishes the days' events.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from pipeline.commands import common
from pipeline.commands.common import LaunchError, eprint
from pipeline.domain.calendar import today_eastern
from pipeline.io import legacy_exports
from pipeline.options import (
    DataOptions,
    LegacyOptions,
    OptionsError,
    SlateOptions,
    StreamOptions,
    parse_date,
    parse_timestamp,
)


def served_dates(options, inputs: str, registry) -> list[dt.date]:
    """The dates named at launch (rebuilt on a restart): --game-date, else the day of --rebuild-as-of
    and the day before (a restart mid-season), else today (the simulated season's busiest date)."""
    game_date = parse_date(options.view_as(SlateOptions).game_date, "game_date")
    if game_date is not None:
        return [game_date]
    rebuild = parse_timestamp(options.view_as(StreamOptions).rebuild_as_of, "rebuild_as_of")
    if rebuild is not None:
        day = rebuild.date()
        return [day - dt.timedelta(days=1), day]
    if options.view_as(DataOptions).inputs is None:
        return [common.busiest_date(inputs, common.trained_until(registry))]
    return [today_eastern()]


def day_events(inputs: str, dates: Sequence[dt.date], *, since: dt.datetime | None = None,
               until: dt.datetime | None = None) -> tuple[list, list]:
    """The dates' odds, schedule and injury events from --inputs in event-time order (since < t <= until),
    and the dead letters of unreadable records."""
    from pipeline.io.parse import event_time
    from pipeline.io.sources import read_local
    from pipeline.transforms.streaming import StreamEvent

    events, dead = [], []
    for kind in ("schedule", "injuries", "odds"):
        rows, bad = read_local(inputs, kind, dates)
        dead.extend(bad)
        for r in rows:
            t = event_time(kind, r)
            if (since is None or t > since) and (until is None or t <= until):
                events.append((t, kind, StreamEvent(kind, r)))
    order = {"schedule": 0, "injuries": 1, "odds": 2}
    events.sort(key=lambda e: (e[0], order[e[1]]))
    return [e[2] for e in events], dead


def build_stream_plan(options, *, registry=None, policy=None, warehouse=None, run_id: str | None = None):
    """Resolves a StreamPlan (see the module docstring); raises LaunchError with a clear message.

    Nothing about a game date is resolved here: the job learns dates from their events and loads each
    date's reference data when it first sees it (``transforms.streaming.DateReference``). The launch only
    validates the registry and, on a restart (``--rebuild-as-of``), reads the events to rebuild from."""
    from pipeline.io import pubsub
    from pipeline.stream_graph import StreamPlan
    from pipeline.transforms.streaming import DateReference

    stream = options.view_as(StreamOptions)
    inputs = common.default_inputs(options)
    policy = policy or common.load_policy(options)
    registry = registry or common.load_registry(options)
    if not registry.enabled():
        raise LaunchError("no enabled model in the registry; check --registry")
    rebuild_as_of = parse_timestamp(stream.rebuild_as_of, "rebuild_as_of")
    dates = served_dates(options, inputs, registry)
    rebuild = day_events(inputs, dates, until=rebuild_as_of)[0] if rebuild_as_of else []
    warehouse_uri = common.warehouse_uri(options) if warehouse is not None else None
    reference = DateReference(policy, inputs=inputs, registry_uri=registry.uri, registry=registry,
                              warehouse_uri=warehouse_uri, history_fn=common.graded_history)
    history = common.graded_history(warehouse, dates, policy) if warehouse is not None else {}
    project = stream.pubsub_project
    return StreamPlan(
        run_id=run_id or common.new_run_id("stream"), policy=policy, reference=reference,
        history=history or {}, debounce_seconds=float(stream.debounce_seconds),
        subscription=pubsub.subscription_path(project, stream.events_subscription),
        picks_changes_topic=pubsub.topic_path(project, stream.picks_changes_topic),
        warehouse=warehouse_uri,
        exports=common.exports_uri(options) if warehouse is not None else None,
        legacy_exports=options.view_as(LegacyOptions).legacy_exports if warehouse is not None else None,
        initial=tuple(rebuild), dates=tuple(dates), inputs=inputs,
        state_grace_s=None if stream.state_grace_seconds is None else float(stream.state_grace_seconds),
        # The periodic refresh needs an SDF source, which only Dataflow runs (beam-notes).
        feature_refresh_seconds=float(stream.feature_refresh_seconds) if common.is_remote_runner(options)
        else 0.0)


def setup_pubsub(options) -> object | None:
    """Local runs with an emulator (asked for, or the local default: ``options.pubsub_target``): points the
    clients at it, starts it if nothing listens and creates the topics and subscription if missing.
    Returns the emulator process when this command started it. Real Pub/Sub (always on a remote runner):
    nothing is created here; the topics and subscription come from ``launch_templates/setup.sh`` and the
    launch preflight checked them."""
    from pipeline.io import pubsub
    from pipeline.options import pubsub_target

    stream = options.view_as(StreamOptions)
    host, project = pubsub_target(options)
    if not project:
        raise LaunchError("Pub/Sub project unknown: pass --pubsub-project (or --project)")
    stream.pubsub_project = project  # resolved once; the plan and the graph read it
    if host is None:
        return None
    proc = None
    pubsub.use_emulator(host)
    if not pubsub.reachable(host):
        eprint(f"props: starting the Pub/Sub emulator on {host} (gcloud beta emulators pubsub start)")
        try:
            proc = pubsub.start_emulator(host, project)
        except RuntimeError as exc:
            raise LaunchError(str(exc)) from None
    pubsub.ensure_topics(project, [stream.events_topic, stream.picks_changes_topic, stream.features_topic],
                         {stream.events_subscription: stream.events_topic})
    return proc


def streaming_options(options, argv: Sequence[str]):
    from apache_beam.options.pipeline_options import StandardOptions

    standard = options.view_as(StandardOptions)
    standard.streaming = True
    if not any(a.startswith("--runner") for a in argv):
        standard.runner = "DirectRunner"  # streaming runs on the BundleBasedDirectRunner locally
    return options


def main(argv: list[str]) -> int:
    common.prepare_local_environment()
    if "-h" in argv or "--help" in argv:
        common.print_help("stream", (StreamOptions, SlateOptions, DataOptions, LegacyOptions))
        return 0
    import apache_beam as beam

    from pipeline.io import cloud, direct_runner, pubsub
    from pipeline.io.warehouse import open_warehouse
    from pipeline.stream_graph import build_stream_pipeline

    proc = None
    try:
        options = streaming_options(common.parse_options(argv), argv)
        cloud.launch_preflight(options, streaming=True)  # before anything touches Google Cloud
        legacy_exports.check_options(options)  # #11: never overlap --exports
        proc = setup_pubsub(options)
        warehouse = open_warehouse(common.warehouse_uri(options))
        plan = build_stream_plan(options, warehouse=warehouse)
    except cloud.PreflightError as exc:
        for problem in exc.problems:
            eprint(f"props stream: {problem}")
        return 2
    except (OptionsError, LaunchError) as exc:
        eprint(f"props stream: {exc}")
        if proc is not None:
            pubsub.stop_emulator(proc)
        return 2
    eprint(f"props stream (every date it sees; launch dates {', '.join(map(str, plan.dates))}): "
           f"{len(plan.reference.registry.enabled())} enabled models, debounce {plan.debounce_seconds} s, "
           f"reading {plan.subscription}, changes to {plan.picks_changes_topic}, run {plan.run_id}")
    if direct_runner.apply_for(options):  # the local streaming runner only; never Dataflow
        from pipeline.io import stream_sinks

        # One process writes the local warehouse: its file stays open while the sinks are busy.
        plan = plan._replace(warehouse_keep_open_s=stream_sinks.LOCAL_KEEP_OPEN_S)
    try:
        p = beam.Pipeline(options=options)
        build_stream_pipeline(p, plan)
        result = p.run()
        if common.is_remote_runner(options):  # a template launcher submits and exits
            eprint(f"props stream: submitted Dataflow job {getattr(result, 'job_id', lambda: None)()}")
            return 0
        eprint("props stream: running (Ctrl-C to stop)")
        result.wait_until_finish()
    except KeyboardInterrupt:
        eprint("props stream: stopped")
    finally:
        if proc is not None:
            pubsub.stop_emulator(proc)
    return 0

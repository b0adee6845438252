"""``props stream``: the streaming job - re-score a player the moment his line moves.

    props stream                                  # local default: the Pub/Sub emulator (started if needed),
                                                  # topics/subscriptions created, the simulated season's
                                                  # busiest date after the models' training window
    props stream --game-date 2026-02-22 --debounce-seconds 0.5
    props stream --rebuild-as-of 2026-02-22T20:00:00Z      # restart: rebuild state from --inputs first
    props stream --pubsub-project my-proj --runner DataflowRunner ...   # real Pub/Sub, never an emulator

The launch resolves everything first (policy, registry, served dates, eligible models, graded history,
the dates' feature rows and player contexts from --inputs, the picks already published from the
warehouse), then runs ``pipeline.stream_graph.build_stream_pipeline`` on the streaming DirectRunner until
it is killed. Each pick change goes to ``best_bets`` / ``best_bets_history``, the exports and the
picks-changes topic; every new version of a player-game writes its gate decision, line diagnostics,
predictions and consensus (versioned rows, ``version`` >= 1) like a batch run does (version 0).
In a second terminal: ``props replay --date D`` publishes the day's events.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Sequence

from pipeline.commands import common
from pipeline.commands.common import LaunchError, eprint
from pipeline.domain.calendar import today_eastern
from pipeline.options import (
    DataOptions,
    OptionsError,
    SlateOptions,
    StreamOptions,
    parse_date,
    parse_timestamp,
)


def served_dates(options, inputs: str, registry) -> list[dt.date]:
    game_date = parse_date(options.view_as(SlateOptions).game_date, "game_date")
    if game_date is not None:
        return [game_date]
    if options.view_as(DataOptions).inputs is None:
        return [common.busiest_date(inputs, common.trained_until(registry))]
    return [today_eastern()]


def routing(features: Sequence) -> tuple[dict[str, tuple[str, ...]], dict[str, dt.date]]:
    """(game_id -> players with a feature row, game_id -> game_date) from the served dates' feature rows:
    the routing of schedule and injury events (dates from the rows, never parsed from a game id)."""
    players: dict[str, set[str]] = defaultdict(set)
    dates: dict[str, dt.date] = {}
    for r in features:
        players[r.game_id].add(r.player_lookup)
        dates.setdefault(r.game_id, r.game_date)
    return {g: tuple(sorted(ps)) for g, ps in players.items()}, dates


def initial_state(features: Sequence, contexts: dict, rebuild_events: Sequence = ()) -> list[tuple]:
    """The launch-time keyed state: (pg, StreamEvent) for each feature row, its context
    (``contexts``: ``domain.context.player_contexts``, keyed by (game_id, player_lookup)), then the
    rebuild events (typed rows already routed by the graph's own router)."""
    from pipeline.transforms.slate import pg_key
    from pipeline.transforms.streaming import RoutePlayerGamesFn, StreamEvent

    out = []
    for r in features:
        key = pg_key(r.game_id, r.player_lookup)
        out.append((key, StreamEvent("features", r)))
        ctx = contexts.get((r.game_id, r.player_lookup))
        if ctx is not None:
            out.append((key, StreamEvent("context", ctx)))
    if rebuild_events:
        router = RoutePlayerGamesFn(*routing(features))
        router.setup()
        for ev in rebuild_events:
            out.extend(router.process(ev))
    return out


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
    """Resolves a StreamPlan (see the module docstring); raises LaunchError with a clear message."""
    from pipeline.domain.calendar import season_start
    from pipeline.io import pubsub
    from pipeline.io.sources import read_local
    from pipeline.io.stream_sinks import published_picks
    from pipeline.stream_graph import StreamPlan

    stream = options.view_as(StreamOptions)
    inputs = common.default_inputs(options)
    policy = policy or common.load_policy(options)
    registry = registry or common.load_registry(options)
    dates = served_dates(options, inputs, registry)
    events, _dead = common.read_schedule(inputs, dates)
    plans = common.date_plans(events, dates, run_mode=policy.streaming_run_mode, as_of=None,
                              offset_minutes=60, registry=registry)
    if not plans:
        raise LaunchError(f"no scheduled games on {', '.join(map(str, dates))} in {inputs}; "
                          "check --game-date")
    specs, infos = common.model_infos(registry, plans, policy)
    if not specs:
        raise LaunchError(f"no enabled model is eligible for {', '.join(map(str, dates))} (training windows "
                          "must end before the date); check --registry")
    from models.handler import build_keyed_handler

    features, _fdead = read_local(inputs, "features", sorted(plans))
    first = min(plans)
    start = season_start(first)
    box_dates = [start + dt.timedelta(days=i) for i in range((max(plans) - start).days)]
    box_scores, _bdead = read_local(inputs, "box_scores", box_dates)
    from pipeline.domain.context import player_contexts

    contexts = player_contexts(features, box_scores)
    rebuild_as_of = parse_timestamp(stream.rebuild_as_of, "rebuild_as_of")
    rebuild = day_events(inputs, sorted(plans), until=rebuild_as_of)[0] if rebuild_as_of else []
    players_by_game, game_dates = routing(features)
    history = common.graded_history(warehouse, sorted(plans), policy) if warehouse is not None else {}
    published = published_picks(warehouse, sorted(plans)) if warehouse is not None else {}
    project = stream.pubsub_project
    return StreamPlan(
        run_id=run_id or common.new_run_id("stream"), policy=policy, models=infos,
        model_handler=build_keyed_handler(specs), date_plans=plans,
        players_by_game=players_by_game, game_dates=game_dates, schedule=tuple(events),
        initial=tuple(initial_state(features, contexts, rebuild)), history=history or {}, published=published,
        debounce_seconds=float(stream.debounce_seconds),
        subscription=pubsub.subscription_path(project, stream.events_subscription),
        picks_changes_topic=pubsub.topic_path(project, stream.picks_changes_topic),
        warehouse=common.warehouse_uri(options) if warehouse is not None else None,
        exports=common.exports_uri(options) if warehouse is not None else None,
        inputs=inputs,
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
        common.print_help("stream", (StreamOptions, SlateOptions, DataOptions))
        return 0
    import apache_beam as beam

    from pipeline.io import cloud, direct_runner, pubsub
    from pipeline.io.warehouse import open_warehouse
    from pipeline.stream_graph import build_stream_pipeline

    proc = None
    try:
        options = streaming_options(common.parse_options(argv), argv)
        cloud.launch_preflight(options, streaming=True)  # before anything touches Google Cloud
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
    eprint(f"props stream {', '.join(map(str, plan.dates))}: {len(plan.models)} models, "
           f"{sum(len(v) for v in plan.players_by_game.values())} player-games, "
           f"debounce {plan.debounce_seconds} s, "
           f"reading {plan.subscription}, changes to {plan.picks_changes_topic}, run {plan.run_id}")
    direct_runner.apply_for(options)  # the local streaming runner only; never Dataflow
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

"""Builds the streaming graph (``props stream``); never runs it.

``build_stream_pipeline(p, plan, messages=None)`` wires the events source (the Pub/Sub subscription of
``pipeline/io/pubsub.py``, or ``messages``: any PCollection of PubsubMessages, e.g. a TestStream) through
``transforms.streaming.RescorePlayerGames`` (the slate's ScorePlayers and SelectBestBetsFn inside) into
the sinks of ``pipeline/io/stream_sinks.py``, and returns the named outputs so tests can assert on them::

    plan = commands.stream.build_stream_plan(options)
    with beam.Pipeline(options=streaming_options) as p:
        outputs = build_stream_pipeline(p, plan)

Launch-time state (feature rows and contexts of the served dates, and on a restart the events already
ingested up to ``--rebuild-as-of``) enters the same keyed state as the stream through a ``Create``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any, NamedTuple

import apache_beam as beam

from pipeline.domain.schedule import DatePlan
from pipeline.policy import Policy
from pipeline.schemas import VERSIONED_TABLES
from pipeline.transforms.slate import ModelInfo, stamp


class StreamPlan(NamedTuple):
    """Everything ``props stream`` resolved at launch: the graph is a pure function of this."""

    run_id: str
    policy: Policy
    models: tuple[ModelInfo, ...]
    model_handler: Any
    date_plans: Mapping[dt.date, DatePlan]  # eligible models per served date
    players_by_game: Mapping[str, tuple[str, ...]]
    initial: tuple  # (pg, StreamEvent) launch-time state
    history: Mapping[str, Any]
    published: Mapping[str, Mapping[str, Any]]  # date_iso -> pick_id -> Pick (warehouse at launch)
    debounce_seconds: float
    subscription: str | None  # full path of the events subscription
    picks_changes_topic: str | None  # full path
    warehouse: str | None
    exports: str | None
    clock: Any = None  # processing clock of the debounce timer (None: wall clock; TestStream: 0-based)
    inputs: str | None = None  # where the feature store is re-read from (Dataflow refresh)
    feature_refresh_seconds: float = 0.0  # > 0: periodic re-read of the served dates' feature rows
    game_dates: Mapping[str, dt.date] = {}  # game_id -> game_date (injury routing), from the feature rows
    schedule: tuple = ()  # the served dates' schedule events read at launch (ScheduleEvent)
    scoring_timeout_s: float | None = None  # None: windows.SCORING_TIMEOUT_S

    @property
    def dates(self) -> list[dt.date]:
        return sorted(self.date_plans)


class ReadFeatureRowsFn(beam.DoFn):
    """A refresh tick -> every feature-store row of the served dates, as ``features`` events (one bulk read
    per tick). Rows that fail to parse are counted; the launch already dead-lettered them once."""

    def __init__(self, inputs: str, dates: list[dt.date]):
        self._inputs, self._dates = inputs, sorted(dates)

    def setup(self):
        self._rows = beam.metrics.Metrics.counter("props", "stream_feature_rows_refreshed")
        self._bad = beam.metrics.Metrics.counter("props", "stream_feature_rows_unparseable")

    def process(self, _tick):
        from pipeline.io.sources import read_local
        from pipeline.transforms.streaming import StreamEvent

        rows, dead = read_local(self._inputs, "features", self._dates)
        self._rows.inc(len(rows))
        self._bad.inc(len(dead))
        for row in rows:
            yield StreamEvent("features", row)


class RefreshFeatureRows(beam.PTransform):
    """The slowly-changing feature store: every ``interval_s`` seconds, re-read the served dates' feature
    rows and feed them into the per-player-game state as ``features`` events. The state's change
    signature includes the feature row, so an unchanged row re-scores nobody and a changed one re-scores
    exactly its player (with every model).

    On Dataflow the ticks come from ``PeriodicImpulse``. Beam's local runners cannot run that source
    (beam-notes: SDF sources), so tests pass ``ticks`` (any PCollection, e.g. a bounded ``Create``) and
    the local job receives changed rows as ``kind=features`` messages instead.
    """

    def __init__(self, inputs: str, dates, interval_s: float, ticks=None):
        super().__init__()
        self._inputs, self._dates, self._interval, self._ticks = inputs, list(dates), interval_s, ticks

    def expand(self, pbegin):
        ticks = self._ticks
        if ticks is None:
            from apache_beam.transforms.periodicsequence import PeriodicImpulse

            ticks = pbegin | "RefreshTicks" >> PeriodicImpulse(fire_interval=self._interval)
        return ticks | "ReadFeatureRows" >> beam.ParDo(ReadFeatureRowsFn(self._inputs, self._dates))


def build_stream_pipeline(p: beam.Pipeline, plan: StreamPlan, messages=None,
                          feature_ticks=None) -> dict[str, beam.PCollection]:
    """Builds the streaming graph on ``p``; returns ``events``, ``changes`` (DateChanges),
    ``player_games``, ``scored``, the versioned rows ``gate_decisions``, ``line_diagnostics``,
    ``predictions``, ``consensus`` (stamped with the run id and policy version, as written),
    ``dead_letters`` and ``change_messages`` (bytes).

    ``feature_ticks`` replaces the feature refresh's PeriodicImpulse (tests); the refresh is wired when
    ``plan.feature_refresh_seconds > 0`` and ``plan.inputs`` is set (``props stream`` does so on Dataflow).
    """
    from pipeline.io import pubsub, stream_sinks
    from pipeline.transforms import streaming

    if messages is None:
        if not plan.subscription:
            raise ValueError("build_stream_pipeline: no subscription and no messages")
        parsed = p | "ReadEvents" >> pubsub.ReadEvents(plan.subscription, plan.policy.event_time_window_hours)
    else:
        parsed = messages | "ParseEvents" >> pubsub.ParseMessages(plan.policy.event_time_window_hours)
    events = parsed.events
    if plan.inputs and (plan.feature_refresh_seconds > 0 or feature_ticks is not None):
        refreshed = p | "RefreshFeatures" >> RefreshFeatureRows(
            plan.inputs, plan.dates, plan.feature_refresh_seconds, ticks=feature_ticks)
        events = (parsed.events, refreshed) | "EventsAndFeatureRefresh" >> beam.Flatten()
    initial = None
    if plan.initial:
        initial = p | "InitialState" >> beam.Create(list(plan.initial), reshuffle=False)

    out = events | "Rescore" >> streaming.RescorePlayerGames(
        policy=plan.policy, models=plan.models, date_plans=plan.date_plans, model_handler=plan.model_handler,
        players_by_game=plan.players_by_game, history=plan.history, debounce_seconds=plan.debounce_seconds,
        published=plan.published, run_id=plan.run_id, initial=initial,
        clock=plan.clock, game_dates=plan.game_dates, launch_schedule=plan.schedule,
        scoring_timeout_s=plan.scoring_timeout_s)
    dead = (parsed[pubsub.DEAD], out["dead_letters"]) | "AllDeadLetters" >> beam.Flatten()
    versioned = {
        table: out[table] | f"Stamp_{table}" >> beam.Map(stamp, plan.run_id, plan.policy.version)
        for table in VERSIONED_TABLES
    }
    messages_out = {"changes": out["changes"], "dead_letters": dead, **versioned} | "WriteOutputs" >> (
        stream_sinks.WriteStreamOutputs(
            warehouse_uri=plan.warehouse, exports_uri=plan.exports,
            picks_changes_topic=plan.picks_changes_topic,
            latest_date=max(plan.dates) if plan.dates else None, policy_version=plan.policy.version,
            history=plan.history, run_id=plan.run_id))
    return {
        "events": events, "changes": out["changes"], "player_games": out["player_games"],
        "scored": out["scored"], **versioned, "dead_letters": dead, "change_messages": messages_out,
    }

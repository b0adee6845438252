"""Builds the streaming graph (``props stream``); never runs it.

``build_stream_pipeline(p, plan, messages=None)`` wires the events source (the Pub/Sub subscription, or
``messages``: any PCollection of PubsubMessages, e.g. a TestStream) through
``transforms.streaming.RescorePlayerGames`` into the sinks of ``pipeline/io/stream_sinks.py``, and returns
the named outputs so tests can assert on them::

    plan = commands.stream.build_stream_plan(options)
    with beam.Pipeline(options=streaming_options) as p:
        outputs = build_stream_pipeline(p, plan)

One job serves every game date of the season: a date's reference data (feature rows, contexts, eligible
models, published picks, graded history) is loaded by ``plan.reference`` the first time an event of the
date arrives, and the date's state is cleared after its games are over (``windows.STATE_GRACE_S``).
Messages with ``kind=registry`` (a registry document, see :func:`parse_registry_message`) change the
eligible models of every open date without a restart. On a restart the events already ingested up to
``--rebuild-as-of`` enter through a ``Create`` (``plan.initial``).
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any, NamedTuple

import apache_beam as beam

from pipeline.policy import Policy
from pipeline.schemas import VERSIONED_TABLES
from pipeline.transforms.slate import stamp

REGISTRY_KIND = "registry"


class StreamPlan(NamedTuple):
    """Everything ``props stream`` resolved at launch: the graph is a pure function of this."""

    run_id: str
    policy: Policy
    reference: Any  # transforms.streaming.DateReference: loads a date on first sight
    history: dict
    debounce_seconds: float
    subscription: str | None  # full path of the events subscription
    picks_changes_topic: str | None  # full path
    warehouse: str | None
    exports: str | None
    clock: Any = None  # processing clock of the timers (None: wall clock; TestStream: 0-based)
    initial: tuple = ()  # StreamEvents routed before the stream's (restart: --rebuild-as-of)
    dates: tuple = ()  # dates named at launch (--game-date / rebuild); the job serves every date it sees
    published: dict = {}  # date_iso -> pick_id -> Pick seeds (tests; the job reads them per date)
    inputs: str | None = None  # where the feature store is re-read from (Dataflow refresh)
    feature_refresh_seconds: float = 0.0  # > 0: periodic re-read of the served dates' feature rows
    scoring_timeout_s: float | None = None  # None: windows.SCORING_TIMEOUT_S
    state_grace_s: float | None = None  # None: windows.STATE_GRACE_S
    model_handler: Any = None  # None: models.handler.RegistryModelHandler
    legacy_exports: str | None = None  # --legacy-exports: the old website's files after each change batch
    warehouse_batch_s: float | None = None  # BigQuery batches; None: windows.WAREHOUSE_BATCH_S
    warehouse_keep_open_s: float = 0.0  # DuckDB: > 0 keeps the file open between sink writes (local runner)


def registry_message(registry, *, base_uri: str | None = None) -> tuple[bytes, dict[str, str]]:
    """(data, attributes) of a ``kind=registry`` message: the registry document (``Registry.to_json``),
    published after the registry file was changed (a model promoted, retrained or disabled)."""
    attrs = {"kind": REGISTRY_KIND, "event_ts": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")}
    base = base_uri or getattr(registry, "base_uri", None)
    if base:
        attrs["base_uri"] = base
    return registry.to_json().encode("utf-8"), attrs


def parse_registry_message(data: bytes, attrs: dict):
    """A ``kind=registry`` message -> a validated Registry (artifacts are checked when first loaded)."""
    from models.registry import REGISTRY_VERSION, ModelSpec, Registry

    doc = json.loads(data.decode("utf-8"))
    if not isinstance(doc, dict) or doc.get("registry_version") != REGISTRY_VERSION:
        raise ValueError(f"not a registry document (registry_version {REGISTRY_VERSION} expected)")
    base = attrs.get("base_uri")
    return Registry([ModelSpec.from_dict(m, base) for m in doc.get("models") or []]).validate(
        check_artifacts=False)


class ParseEventsFn(beam.DoFn):
    """PubsubMessages -> main: StreamEvents (``pubsub.ParseMessageFn`` for the event kinds,
    StreamEvent("registry", Registry) for a registry message); ``dead_letters``: messages that do not
    parse. One step for both (each step costs the local runner about 1-2 ms per bundle)."""

    def __init__(self, event_window_hours=None):
        from pipeline.io import pubsub

        self._events = pubsub.ParseMessageFn(event_window_hours)

    def setup(self):
        self._events.setup()

    def process(self, message):
        from pipeline.transforms import slate
        from pipeline.transforms.streaming import StreamEvent

        attrs = message.attributes or {}
        if attrs.get("kind") != REGISTRY_KIND:
            yield from self._events.process(message)
            return
        try:
            yield StreamEvent(REGISTRY_KIND, parse_registry_message(message.data, dict(attrs)))
        except Exception as exc:  # noqa: BLE001 - a bad registry message must not stop the job
            yield beam.pvalue.TaggedOutput(slate.DEAD, slate.dead_letter(
                "pubsub:registry", "parse", slate.format_exception(exc),
                message.data.decode("utf-8", errors="replace")))


# The feature refresh re-reads today (US Eastern) and the next day: a date's rows are built from the games
# before it (domain.md section 5), so they settle the evening before / the morning of the date; picks lock
# at tip-off, so no earlier date ever needs them again.
FEATURE_REFRESH_DAYS = 2


def refresh_dates(tick: Any, days: int = FEATURE_REFRESH_DAYS) -> list[dt.date]:
    """The dates a refresh tick re-reads: the US Eastern date at the tick's time (``PeriodicImpulse``
    emits its fire time, seconds since the epoch) and the ``days - 1`` following dates."""
    from pipeline.domain.calendar import eastern_date

    today = eastern_date(dt.datetime.fromtimestamp(float(tick), dt.UTC))
    return [today + dt.timedelta(days=i) for i in range(days)]


class ReadFeatureRowsFn(beam.DoFn):
    """A refresh tick (its fire time) -> every feature-store row of the dates served at that time
    (:func:`refresh_dates`), as ``features`` events (one bulk read per tick). Rows that fail to parse are
    counted; the date's initialisation already dead-lettered them once."""

    def __init__(self, inputs: str, days: int = FEATURE_REFRESH_DAYS):
        self._inputs, self._days = inputs, days

    def setup(self):
        self._rows = beam.metrics.Metrics.counter("props", "stream_feature_rows_refreshed")
        self._bad = beam.metrics.Metrics.counter("props", "stream_feature_rows_unparseable")

    def process(self, tick):
        from pipeline.io.sources import read_local
        from pipeline.transforms.streaming import StreamEvent

        rows, dead = read_local(self._inputs, "features", refresh_dates(tick, self._days))
        self._rows.inc(len(rows))
        self._bad.inc(len(dead))
        for row in rows:
            yield StreamEvent("features", row)


class RefreshFeatureRows(beam.PTransform):
    """The slowly-changing feature store: every ``interval_s`` seconds, re-read the feature rows of the
    dates served at that moment (today US Eastern and the next day, :func:`refresh_dates`; the season-long
    job learns its dates from schedule events, so the launch dates are not the served dates) and feed them
    into the per-player-game state as ``features`` events. The state's change signature includes the
    feature row, so an unchanged row re-scores nobody and a changed one re-scores exactly its player (with
    every model). A date first seen through a refreshed row is initialised like any other.

    On Dataflow the ticks come from ``PeriodicImpulse`` (elements: the fire time in seconds). Beam's local
    runners cannot run that source (beam-notes: SDF sources), so tests pass ``ticks`` (any PCollection of
    times, e.g. a bounded ``Create``) and the local job receives changed rows as ``kind=features``
    messages instead.
    """

    def __init__(self, inputs: str, interval_s: float, ticks=None, days: int = FEATURE_REFRESH_DAYS):
        super().__init__()
        self._inputs, self._interval, self._ticks, self._days = inputs, interval_s, ticks, days

    def expand(self, pbegin):
        ticks = self._ticks
        if ticks is None:
            from apache_beam.transforms.periodicsequence import PeriodicImpulse

            ticks = pbegin | "RefreshTicks" >> PeriodicImpulse(fire_interval=self._interval)
        return ticks | "ReadFeatureRows" >> beam.ParDo(ReadFeatureRowsFn(self._inputs, self._days))


def build_stream_pipeline(p: beam.Pipeline, plan: StreamPlan, messages=None,
                          feature_ticks=None) -> dict[str, beam.PCollection]:
    """Builds the streaming graph on ``p``; returns ``events``, ``changes`` (DateChanges),
    ``player_games``, ``scored``, the versioned rows ``gate_decisions``, ``line_diagnostics``,
    ``predictions``, ``consensus`` (stamped with the run id and policy version, as written),
    ``cleared`` (state the clearing timers cleared), ``dead_letters`` and ``change_messages`` (bytes).

    ``feature_ticks`` replaces the feature refresh's PeriodicImpulse (tests); the refresh is wired when
    ``plan.feature_refresh_seconds > 0`` and ``plan.inputs`` is set (``props stream`` does so on Dataflow).
    """
    from pipeline.io import stream_sinks
    from pipeline.transforms import slate, streaming

    if messages is None:
        if not plan.subscription:
            raise ValueError("build_stream_pipeline: no subscription and no messages")
        from apache_beam.io.gcp.pubsub import ReadFromPubSub

        messages = p | "ReadEvents" >> ReadFromPubSub(
            subscription=plan.subscription, with_attributes=True, timestamp_attribute="event_ts")
    parsed = messages | "ParseEvents" >> beam.ParDo(
        ParseEventsFn(plan.policy.event_time_window_hours)).with_outputs(slate.DEAD, main="events")
    events = parsed.events
    if plan.inputs and (plan.feature_refresh_seconds > 0 or feature_ticks is not None):
        refreshed = p | "RefreshFeatures" >> RefreshFeatureRows(
            plan.inputs, plan.feature_refresh_seconds, ticks=feature_ticks)
        events = (events, refreshed) | "EventsAndFeatureRefresh" >> beam.Flatten()
    initial = None
    if plan.initial:
        initial = p | "InitialState" >> beam.Create(list(plan.initial), reshuffle=False)

    out = events | "Rescore" >> streaming.RescorePlayerGames(
        policy=plan.policy, reference=plan.reference, history=plan.history,
        debounce_seconds=plan.debounce_seconds, published=plan.published, run_id=plan.run_id,
        initial=initial, clock=plan.clock, scoring_timeout_s=plan.scoring_timeout_s,
        state_grace_s=plan.state_grace_s, model_handler=plan.model_handler)
    dead = (parsed[slate.DEAD], out["dead_letters"]) | "AllDeadLetters" >> beam.Flatten()
    versioned = {
        table: out[table] | f"Stamp_{table}" >> beam.Map(stamp, plan.run_id, plan.policy.version)
        for table in VERSIONED_TABLES
    }
    messages_out = {"changes": out["changes"], "dead_letters": dead, **versioned} | "WriteOutputs" >> (
        stream_sinks.WriteStreamOutputs(
            warehouse_uri=plan.warehouse, exports_uri=plan.exports,
            picks_changes_topic=plan.picks_changes_topic,
            latest_date=None, policy_version=plan.policy.version,
            history=plan.history, run_id=plan.run_id, legacy_exports=plan.legacy_exports,
            batch_s=plan.warehouse_batch_s, clock=plan.clock, keep_open_s=plan.warehouse_keep_open_s))
    return {
        "events": events, "changes": out["changes"], "player_games": out["player_games"],
        "scored": out["scored"], **versioned, "cleared": out["cleared"], "dead_letters": dead,
        "change_messages": messages_out,
    }

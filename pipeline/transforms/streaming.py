"""The streaming transforms of the season-long job: per game-date reference state, per player-game state,
scoring on a complete model set, per game-date best bets with a debounce, lifecycle, state clearing.

Shapes (``pg`` = ``"game_id|player"``, stable for the player-game's life; versions live in values)::

    StreamEvent --RouteEventsFn--> ("season", schedule | registry event) --> SeasonDatesFn (the open dates)
        -> on a registry event, (date_iso, StreamEvent("registry", Registry)) for every open date
    StreamEvent --RouteEventsFn--> (date_iso, event of any other kind) --> DateStateFn (stateful per date_iso)
        first sight of a date: load its reference data once (DateReference.load: feature rows + contexts,
        published picks, graded history, eligible models by ``registry.eligible_for``)
        -> (pg, StreamEvent) routed to the player-games (+ features / context / models events)
        -> init:    (date_iso, ("init", DateInit))        published picks + history for the date's best bets
        -> clear:   after every game of the date is final (or cancelled / postponed) + ``state_grace_s``
                    of processing time, a ``clear`` event to every player-game and to the date's best bets
    (pg, StreamEvent) --PlayerGameStateFn (stateful, per pg)--> on every change of what a batch run would
                    write for the player-game (decision, book, diagnostics, features, context, tip-off,
                    model set), a new version n:
                                              + gate_decisions, line_diagnostics (version n)
                                              + main:     ScoringRequest(PlayerGame "pg#n", models)
                                              + removed:  PlayerGameRemoved (no longer viable)
                                              + ticks:    GameTick (event-time clock, tip-off, status)
    ScoringRequest --RunInference(models.handler.RegistryModelHandler)--> raw predictions
    ScoringRequest + raw --CompleteModelSetFn (stateful, per pg; versions in the value, timer)-->
                    predictions + consensus (version n) + Scored, or one dead letter if incomplete
    Scored + removed + ticks + init + clear --BestBetsStateFn (stateful, per game_date, debounced)-->
                    PickChanges

The player-game state rebuilds the line book with ``linebook.build_line_book`` at ``as_of`` = the latest
event time it has seen (payload time: snapshot / report / schedule-event time) and decides with
``gate.decide_player_game`` (run mode ``policy.streaming_run_mode``): the same functions, in the same
order, as the batch ``slate.JoinPlayerGameFn``. Scoring uses the slate's ``score_player_game`` (all
models or nothing) with the model set the version carries (so a registry change re-scores with exactly
the new set); the date state selects with the slate's ``SelectBestBetsFn`` and diffs with
``domain.lifecycle.diff_picks``. No rule is re-implemented here.

State is stored with :class:`StateCoder`: plain dicts with a ``schema`` number, NamedTuples by class name,
field names and values, rebuilt by name (a field added with a default reads old state; an in-place
Dataflow update can add fields), never pickled classes.
"""

from __future__ import annotations

import datetime as dt
import functools
import importlib
import io
import pickle
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import apache_beam as beam
from apache_beam.coders import Coder
from apache_beam.transforms.timeutil import TimeDomain
from apache_beam.transforms.userstate import (
    BagStateSpec,
    ReadModifyWriteStateSpec,
    TimerSpec,
    on_timer,
)
from apache_beam.utils.timestamp import Timestamp

from pipeline.domain import gate as gate_lib
from pipeline.domain import lifecycle
from pipeline.domain import linebook as linebook_lib
from pipeline.domain.schedule import game_started, latest_games
from pipeline.io.parse import event_time
from pipeline.policy import Policy
from pipeline.schemas import FeatureRow, Pick
from pipeline.transforms import slate
from pipeline.transforms.slate import DEAD, DIAGNOSTICS, GATE, PREDICTIONS, PlayerGame, Scored, pg_key

# The date's ticks and removals, on one output: what one player-game event sends the date's best bets the
# short way (not through scoring) reaches it in the order it was sent (BestBetsStateFn).
TICKS = "ticks"
CONSENSUS = "consensus"
INIT = "init"
CLEARED = "cleared"
EVENT_KINDS: tuple[str, ...] = ("odds", "schedule", "injuries", "features")
DONE_STATUSES = ("final", "cancelled", "postponed")  # a game that will not be played (again) on its date
STATE_SCHEMA = 2  # bump when a state dict changes meaning; readers fill defaults for missing fields


class StreamEvent(NamedTuple):
    """A parsed event (``kind`` in EVENT_KINDS), or an internal one: ``context`` (PlayerContext),
    ``models`` (tuple of ModelRef), ``registry`` (a Registry), ``clear`` (None)."""

    kind: str
    row: Any


class PlayerGameRemoved(NamedTuple):
    """A player-game that left the universe (or lost its line): the date's best bets must drop it."""

    key: str  # game_id|player
    game_date: dt.date
    reason: str
    seq: int
    now: dt.datetime


class GameTick(NamedTuple):
    """The event-time clock of a date, with what the schedule says about one game."""

    game_id: str
    tipoff_utc: dt.datetime | None
    status: str | None
    now: dt.datetime
    # ``pg#n`` of the version this event sent for scoring, if any: the date's best bets know a version of
    # that event time is on its way (BestBetsStateFn waits for it before locking past it).
    pending: str | None = None


class DateChanges(NamedTuple):
    """One recomputation of a date that changed something: the changes and the date's latest picks."""

    game_date: dt.date
    changes: tuple  # lifecycle.PickChange
    picks: tuple  # latest version of every pick of the date (any status)
    filter_summary: Any
    consensus: tuple
    now: dt.datetime


class ModelRef(NamedTuple):
    """One model a version is scored with: what scoring needs (ModelInfo) and what loading needs."""

    model_id: str
    family: str
    feature_set: str
    min_edge: float
    artifact_uri: str
    feature_count: int
    sha256: str | None = None
    holdout_bias: float | None = None  # registry holdout vegas bias (policy consensus_bias_correction)

    def info(self) -> slate.ModelInfo:
        return slate.ModelInfo(self.model_id, self.family, self.feature_set, self.min_edge, self.holdout_bias)


def model_refs(specs: Sequence[Any], policy: Policy) -> tuple[ModelRef, ...]:
    """Registry ModelSpecs -> ModelRefs sorted by id (a model's min edge is the policy's for its loss)."""
    return tuple(sorted(
        (ModelRef(s.model_id, s.family, s.feature_set, policy.min_edge(s.loss), s.artifact_uri,
                  s.feature_count, s.sha256 or None, s.holdout_vegas_bias) for s in specs),
        key=lambda r: r.model_id))


class ScoringRequest(NamedTuple):
    """A player-game version to score and the exact model set to score it with."""

    player_game: PlayerGame
    models: tuple  # ModelRef


class DateInit(NamedTuple):
    """What the date's best-bets state needs when the date is first seen."""

    published: Mapping[str, Pick]  # pick_id -> latest stored version (the warehouse)
    history: Mapping[str, Any]  # the date's graded history (``by_date`` entry and friends)


def split_key(key: str) -> tuple[str, int]:
    """``"game|player#7"`` -> (``"game|player"``, 7); a key without ``#`` has sequence 0."""
    base, _, seq = key.partition("#")
    return base, int(seq) if seq else 0


# --------------------------------------------------------------------------------------------
# State coder: versioned plain dicts, NamedTuples by field name
# --------------------------------------------------------------------------------------------

_NT = "__namedtuple__"


# Values stored as they are (the common case: checked by exact type before any walking).
_ATOMS = frozenset({str, int, float, bool, type(None), bytes, dt.datetime, dt.date, dt.timedelta})


@functools.cache
def _class_name(cls: type) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


def to_plain(value: Any) -> Any:
    """NamedTuples -> ``{_NT: "module:Qualname", field: value}`` (recursively); dicts, lists, tuples
    and sets are walked; everything else (dates, numbers, strings) stays as it is. The walk of
    :class:`StateCoder`'s first format: no job writes it any more (format 2 does), it stays as the
    definition of the cells :func:`from_plain` still reads, and the tests write such cells with it."""
    cls = type(value)
    if cls in _ATOMS:
        return value
    if isinstance(value, tuple) and hasattr(value, "_fields"):
        out = {_NT: _class_name(cls)}
        for f, v in zip(value._fields, value, strict=True):
            out[f] = v if type(v) in _ATOMS else to_plain(v)
        return out
    if isinstance(value, dict):
        return {k: v if type(v) in _ATOMS else to_plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [v if type(v) in _ATOMS else to_plain(v) for v in value]
    if isinstance(value, tuple):
        return tuple(v if type(v) in _ATOMS else to_plain(v) for v in value)
    if isinstance(value, (set, frozenset)):
        return type(value)(to_plain(v) for v in value)
    return value


@functools.cache
def _resolve(name: str) -> tuple[Any, frozenset]:
    """The class stored under ``name`` and its field names (classes do not change within a process)."""
    module, _, qualname = name.partition(":")
    obj: Any = importlib.import_module(module)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj, frozenset(obj._fields)


def from_plain(value: Any) -> Any:
    """Inverse of :func:`to_plain`. A NamedTuple is rebuilt from the fields its class has now: a field
    the stored value lacks takes the class default (a field added by an update), a stored field the class
    no longer has is dropped."""
    cls = type(value)
    if cls in _ATOMS:
        return value
    if isinstance(value, dict):
        if _NT in value:
            nt, fields = _resolve(value[_NT])
            return nt(**{f: v if type(v) in _ATOMS else from_plain(v)
                         for f, v in value.items() if f in fields})
        return {k: v if type(v) in _ATOMS else from_plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [v if type(v) in _ATOMS else from_plain(v) for v in value]
    if isinstance(value, tuple):
        return tuple(v if type(v) in _ATOMS else from_plain(v) for v in value)
    if isinstance(value, (set, frozenset)):
        return type(value)(from_plain(v) for v in value)
    return value


def _rebuild(name: str, fields: tuple, values: tuple) -> Any:
    """A NamedTuple stored by :class:`StateCoder` (class name, field names, values), rebuilt from the
    fields its class has now: the stored fields in the same order (the common case) make the tuple at
    once; otherwise a field the stored value lacks takes the class default (a field added by an update)
    and a stored field the class no longer has is dropped."""
    cls, current = _resolve(name)
    if fields == cls._fields:
        return cls._make(values)
    return cls(**{f: v for f, v in zip(fields, values, strict=True) if f in current})


class _StatePickler(pickle.Pickler):
    """Pickles NamedTuples as ``_rebuild(class name, field names, values)``, never the class itself.
    Everything else is pickled as pickle does it; the walk over the value is pickle's own (C) walk, and
    the class name and field tuple of a class are written once per cell (pickle's memo)."""

    def reducer_override(self, obj):
        fields = getattr(type(obj), "_fields", None)
        if fields is not None and isinstance(obj, tuple):
            return _rebuild, (_class_name(type(obj)), fields, tuple(obj))
        if obj is dt.UTC:  # every event time's zone: pickle's own reduction of it cost 3.7 us per cell
            return _utc, ()
        return NotImplemented


def _utc() -> dt.timezone:
    return dt.UTC


_PICKLERS = threading.local()
STATE_PICKLE_PROTOCOL = 5  # the current format; cells written with protocol 4 are the first format


class StateCoder(Coder):
    """The coder of every state cell of the stream.

    Format 2 (written): pickle protocol 5 where every NamedTuple is stored by class name, field names and
    values (:class:`_StatePickler`, read back by :func:`_rebuild`): no class is pickled, and a class that
    gained a field with a default (or lost one) reads old cells, as Dataflow's in-place update needs.
    Format 1 (read only: cells a job before format 2 wrote, protocol 4): :func:`to_plain` maps then pickle,
    decoded by :func:`from_plain`. Format 2 costs one pickle call per cell instead of a Python walk over
    every value (the walk was ~38 % of the stream's worker thread under 700 odds updates/s)."""

    def encode(self, value: Any) -> bytes:
        local = _PICKLERS.__dict__
        pickler = local.get("pickler")
        if pickler is None:  # one pickler and buffer per thread, reused (their set-up was half the cost)
            buf = io.BytesIO()
            pickler = local["pickler"] = (_StatePickler(buf, protocol=STATE_PICKLE_PROTOCOL), buf)
        pickler, buf = pickler
        buf.seek(0)
        buf.truncate()
        pickler.clear_memo()
        pickler.dump(value)
        return buf.getvalue()

    def decode(self, encoded: bytes) -> Any:
        if encoded[1] == STATE_PICKLE_PROTOCOL:
            return pickle.loads(encoded)
        return from_plain(pickle.loads(encoded))  # format 1

    def is_deterministic(self) -> bool:
        return False

    def to_type_hint(self):
        return Any


def read_state(cell, defaults: Mapping[str, Any]) -> dict:
    """A dict state cell with every field of the current schema (missing ones from ``defaults``)."""
    raw = cell.read()
    return {**{k: (v.copy() if isinstance(v, (dict, list)) else v) for k, v in defaults.items()},
            **(raw or {}), "schema": STATE_SCHEMA}


# --------------------------------------------------------------------------------------------
# Per game-date reference data
# --------------------------------------------------------------------------------------------


class DateContext(NamedTuple):
    features: tuple  # FeatureRow of the date
    contexts: Mapping  # (game_id, player_lookup) -> PlayerContext
    models: tuple  # ModelRef eligible on the date
    published: Mapping[str, Pick]
    history: Mapping[str, Any]
    problems: tuple = ()  # (step, error): recorded as dead letters by the caller


class DateReference:
    """Loads a date's reference data the first time the stream sees the date (one bulk read per date).

    Args:
      policy: for the models' minimum edges.
      inputs: the feature store (``--inputs``: features and box scores by date); None: only ``features``.
      registry_uri: re-read at every date initialisation (a registry change reaches new dates without a
        message); ``registry``: an in-memory registry used when there is no uri (tests).
      warehouse_uri: published picks and graded history of the date (None: none).
      features, contexts: rows known in memory (tests, or a launch that already read them).
      history_fn: ``(warehouse, dates, policy) -> graded history`` (the command passes
        ``commands.common.graded_history``; layers below the commands never import them).
    """

    def __init__(self, policy: Policy, *, inputs: str | None = None, registry_uri: str | None = None,
                 registry=None, warehouse_uri: str | None = None, features: Sequence[FeatureRow] = (),
                 contexts: Mapping | None = None, history_fn: Callable | None = None):
        self.policy, self.inputs, self.registry_uri = policy, inputs, registry_uri
        self.history_fn = history_fn
        self.registry, self.warehouse_uri = registry, warehouse_uri
        self.features, self.contexts = tuple(features), dict(contexts or {})

    def current_registry(self):
        if self.registry_uri:
            from models.registry import load_registry

            return load_registry(self.registry_uri)
        return self.registry

    def models_for(self, game_date: dt.date, registry=None) -> tuple[ModelRef, ...]:
        registry = registry if registry is not None else self.current_registry()
        return model_refs(registry.eligible_for(game_date), self.policy) if registry is not None else ()

    def load(self, game_date: dt.date) -> DateContext:
        from pipeline.domain.context import player_contexts

        problems: list[tuple[str, str]] = []
        features = [r for r in self.features if r.game_date == game_date]
        contexts = {k: v for k, v in self.contexts.items()}
        # every feature row has a context, as in batch (no box scores known: the empty history's)
        contexts.update({k: v for k, v in player_contexts(features, []).items() if k not in contexts})
        if self.inputs:
            from pipeline.domain.calendar import season_start
            from pipeline.io.sources import read_local

            rows, _dead = read_local(self.inputs, "features", [game_date])  # dead-lettered by props run
            start = season_start(game_date)
            box, _bdead = read_local(self.inputs, "box_scores",
                                     [start + dt.timedelta(days=i) for i in range((game_date - start).days)])
            features.extend(rows)
            contexts.update(player_contexts(rows, box))
        try:
            models = self.models_for(game_date)
        except Exception as exc:  # noqa: BLE001 - an unreadable registry must not stop the job
            problems.append(("registry", slate.format_exception(exc)))
            models = ()
        published, history = {}, {}
        if self.warehouse_uri:
            try:
                from pipeline.io.stream_sinks import published_picks
                from pipeline.io.warehouse import open_warehouse

                wh = open_warehouse(self.warehouse_uri)
                published = published_picks(wh, [game_date]).get(game_date.isoformat(), {})
                if self.history_fn is not None:
                    history = self.history_fn(wh, [game_date], self.policy) or {}
            except Exception as exc:  # noqa: BLE001 - recorded as a dead letter, the date still runs
                problems.append(("warehouse", slate.format_exception(exc)))
        return DateContext(tuple(features), contexts, models, published, history, tuple(problems))


_SEASON_OPEN = ReadModifyWriteStateSpec("open", StateCoder())
_P_SEASON_OPEN = beam.DoFn.StateParam(_SEASON_OPEN)


class SeasonDatesFn(beam.DoFn):
    """Stateful on one key (``"season"``): which dates are open, from schedule events only (a few per game).

    A ``registry`` event (a model promoted, retrained or disabled) is fanned out as
    ``(date_iso, StreamEvent("registry", Registry))`` to every open date, whose DateStateFn re-evaluates
    its eligible models. A date stops being open when every game of it is done (DONE_STATUSES); its own
    state is cleared by DateStateFn's timer. State: ``{date_iso: {game_id: [event_ts, status]}}``.
    """

    def process(self, element, open_state=_P_SEASON_OPEN):
        _key, ev = element
        state = read_state(open_state, {"dates": {}})
        if ev.kind == "schedule":
            games = state["dates"].setdefault(ev.row.game_date.isoformat(), {})
            last = games.get(ev.row.game_id)
            if last is None or ev.row.event_ts >= last[0]:
                games[ev.row.game_id] = [ev.row.event_ts, ev.row.status]
            state["dates"] = {d: g for d, g in state["dates"].items()
                              if not all(s in DONE_STATUSES for _t, s in g.values())}
            open_state.write(state)
        elif ev.kind == "registry":
            for date_iso in sorted(state["dates"]):
                yield date_iso, ev


# --------------------------------------------------------------------------------------------
# Per game-date state: reference data on first sight, routing, clearing
# --------------------------------------------------------------------------------------------

DATE_REF = ReadModifyWriteStateSpec("date", StateCoder())
# DateStateFn never changes a value it read from DATE_REF in place (it builds new lists and dicts and
# writes them), so the local runner may hand every read of one stored value the same decoded object
# (``io.direct_runner._shared_state_reads``): every event of a date reads this cell.
DATE_REF.props_shared_reads = True
DATE_CLEAR = TimerSpec("clear", TimeDomain.REAL_TIME)
_KEY = beam.DoFn.KeyParam
_P_DATE_REF, _P_DATE_CLEAR = beam.DoFn.StateParam(DATE_REF), beam.DoFn.TimerParam(DATE_CLEAR)
DATE_DEFAULTS: dict[str, Any] = {
    "initialised": False, "closed": False, "players": {}, "lined": [], "schedule": [], "statuses": {},
    "models": (), "clear_armed": False,
}


def route_key(ev: StreamEvent) -> str | None:
    """The game date (ISO) an event belongs to, from its row (never parsed from a game id)."""
    d = getattr(ev.row, "game_date", None)
    return d.isoformat() if isinstance(d, dt.date) else None


class DateStateFn(beam.DoFn):
    """Stateful per game date: loads the date's reference data once, routes events to player-games, and
    clears the date's state when its games are over.

    On the first element of a date (normally its first schedule event) ``reference.load(date)`` reads the
    date's feature rows and contexts (one bulk read), its eligible models (``registry.eligible_for``, the
    leakage guard), its published picks and graded history; it emits ``features``/``context``/``models``
    events to the date's player-games and an ``init`` element to the date's best bets. Then, for every
    event: odds and feature rows go to their player-game; a schedule event to every player-game of its game
    (players with a feature row, and players seen in odds); an injury report to the player's games of the
    date; a ``registry`` event re-evaluates the eligible models and, when the set changed, sends the new
    set to every player-game (each re-scores with exactly that set). A player-game seen for the first time
    (e.g. a lined player without features) gets the date's schedule so far and its model set first.

    Clearing: once every game of the date is done (DONE_STATUSES, latest schedule event per game), a
    processing-time timer ``grace_s`` ahead is set; when it fires, every player-game of the date and the
    date's best bets get a ``clear`` event, the date's state is cleared and only a ``closed`` marker stays
    (one tiny cell per date of the season). An event for a closed date is a dead letter (never silently
    dropped, never re-opening the date). ``cleared`` output: ``("date", date_iso, n_player_games)``.
    """

    def __init__(self, reference: DateReference, *, grace_s: float, clock=None):
        self._reference, self._grace, self._clock = reference, float(grace_s), clock or Timestamp.now

    def setup(self):
        self._inits = slate._counter("stream_dates_initialised")
        self._cleared = slate._counter("stream_dates_cleared")
        self._late = slate._counter("stream_events_after_clear")
        self._dead = slate._counter("dead_letters")

    def _to_pg(self, state, key: str):
        """Events a player-game seen for the first time needs before its own (``state`` changes only
        then)."""
        game_id, player = key.split("|", 1)
        if key in state["lined"] or player in state["players"].get(game_id, ()):
            return
        state["lined"] = [*state["lined"], key]  # never in place: the read value may be shared
        state["changed"] = True
        yield key, StreamEvent("models", tuple(state["models"]))
        for row in state["schedule"]:
            if row.game_id == game_id:
                yield key, StreamEvent("schedule", row)

    def _keys(self, state) -> list[str]:
        keys = {pg_key(g, p) for g, ps in state["players"].items() for p in ps}
        return sorted(keys | set(state["lined"]))

    def process(self, element, date_state=_P_DATE_REF, clear_timer=_P_DATE_CLEAR):
        date_iso, ev = element
        state = read_state(date_state, DATE_DEFAULTS)
        if state["closed"]:
            self._late.inc()
            self._dead.inc()
            row = ev.row._asdict() if hasattr(ev.row, "_asdict") else repr(ev.row)
            yield beam.pvalue.TaggedOutput(DEAD, slate.dead_letter(
                f"stream:{ev.kind}", "stream_date_state", f"event for {date_iso} after its state was cleared "
                "(every game done + grace period)", row, game_date=dt.date.fromisoformat(date_iso)))
            return
        # Most events (odds of a known player-game, injuries) change nothing here: the cell is written
        # only when something changed (encoding the date's state is most of this step's cost).
        state["changed"] = not state["initialised"] or ev.kind in ("schedule", "registry")
        if not state["initialised"]:
            yield from self._initialise(date_iso, state)
        if ev.kind in ("odds", "features"):
            key = pg_key(ev.row.game_id, ev.row.player_lookup)
            yield from self._to_pg(state, key)
            yield key, ev
        elif ev.kind == "schedule":
            row = ev.row
            state["schedule"] = [*state["schedule"], row]  # never in place (see DATE_REF)
            last = state["statuses"].get(row.game_id)
            if last is None or row.event_ts >= last[0]:
                state["statuses"] = {**state["statuses"], row.game_id: [row.event_ts, row.status]}
            for key in self._keys(state):
                if key.split("|", 1)[0] == row.game_id:
                    yield key, ev
        elif ev.kind == "injuries":
            for key in self._keys(state):
                if key.split("|", 1)[1] == ev.row.player_lookup:
                    yield key, ev
        elif ev.kind == "registry":
            try:
                models = self._reference.models_for(dt.date.fromisoformat(date_iso), ev.row)
            except Exception as exc:  # noqa: BLE001 - a bad registry message must not stop the job
                self._dead.inc()
                yield beam.pvalue.TaggedOutput(DEAD, slate.dead_letter(
                    "stream:registry", "stream_models", slate.format_exception(exc), date_iso,
                    game_date=dt.date.fromisoformat(date_iso)))
                models = tuple(state["models"])
            if tuple(models) != tuple(state["models"]):
                state["models"] = tuple(models)
                for key in self._keys(state):
                    yield key, StreamEvent("models", tuple(models))
        else:
            raise ValueError(f"unknown stream event kind {ev.kind!r}")
        statuses = [s for _t, s in state["statuses"].values()]
        if statuses and all(s in DONE_STATUSES for s in statuses) and not state["clear_armed"]:
            state["clear_armed"] = True
            state["changed"] = True
            clear_timer.set(self._clock() + self._grace)
        if state.pop("changed"):
            date_state.write(state)

    def _initialise(self, date_iso: str, state: dict):
        game_date = dt.date.fromisoformat(date_iso)
        ctx = self._reference.load(game_date)
        self._inits.inc()
        state["initialised"] = True
        state["models"] = tuple(ctx.models)
        for step, error in ctx.problems:
            self._dead.inc()
            yield beam.pvalue.TaggedOutput(DEAD, slate.dead_letter(
                "stream:date", f"stream_date_{step}", error, date_iso, game_date=game_date))
        if not ctx.models:
            self._dead.inc()
            yield beam.pvalue.TaggedOutput(DEAD, slate.dead_letter(
                "stream:date", "stream_models", f"no enabled model is eligible for {date_iso} (training "
                "windows must end before the date): its player-games are gated but not scored", date_iso,
                game_date=game_date))
        players: dict[str, list[str]] = {}
        for r in ctx.features:
            players.setdefault(r.game_id, [])
            if r.player_lookup not in players[r.game_id]:
                players[r.game_id].append(r.player_lookup)
        state["players"] = players
        for r in ctx.features:
            key = pg_key(r.game_id, r.player_lookup)
            yield key, StreamEvent("models", tuple(ctx.models))
            yield key, StreamEvent("features", r)
            c = ctx.contexts.get((r.game_id, r.player_lookup))
            if c is not None:
                yield key, StreamEvent("context", c)
        yield beam.pvalue.TaggedOutput(INIT, (date_iso, ("init", DateInit(ctx.published, ctx.history))))

    @on_timer(DATE_CLEAR)
    def clear(self, key=_KEY, date_state=_P_DATE_REF):
        state = read_state(date_state, DATE_DEFAULTS)
        keys = self._keys(state)
        for pg in keys:
            yield pg, StreamEvent("clear", None)
        yield beam.pvalue.TaggedOutput(INIT, (key, ("clear", None)))
        date_state.clear()
        date_state.write({"schema": STATE_SCHEMA, "closed": True})
        self._cleared.inc()
        yield beam.pvalue.TaggedOutput(CLEARED, ("date", key, len(keys)))


# --------------------------------------------------------------------------------------------
# Per player-game state
# --------------------------------------------------------------------------------------------

# State and timer specs, and their DoFn parameters as module-level singletons (ruff B008).
PG_ODDS = BagStateSpec("odds", StateCoder())  # layout 1 (read once to migrate, then cleared): see PG_BOOK
PG_BOOK = ReadModifyWriteStateSpec("book", StateCoder())  # the retained snapshots, one cell
PG_SCHEDULE = BagStateSpec("schedule", StateCoder())
PG_INJURIES = BagStateSpec("injuries", StateCoder())
PG_INFO = ReadModifyWriteStateSpec("info", StateCoder())
# PlayerGameStateFn writes ``info`` and ``book`` last and never changes in place what it read or wrote
# (``read_state`` copies the dict, the book is copied into a new list; rows are NamedTuples), so the local
# runner may hand the next read the value written (``io.direct_runner._write_through``), one per
# player-game; schedule and injury rows are shared by every player of a game.
for _spec in (PG_INFO, PG_BOOK):
    _spec.props_shared_reads = 4096
    _spec.props_write_through = True
PG_SCHEDULE.props_shared_reads = True
PG_INJURIES.props_shared_reads = True
DATE_ENTRIES = BagStateSpec("entries", StateCoder())
# BestBetsStateFn never changes an entry it read from the bag (it builds new rows), so the local runner
# may hand every read of one stored entry the same decoded object (``io.direct_runner._shared_bag_reads``).
DATE_ENTRIES.props_shared_reads = True
DATE_PUBLISHED = ReadModifyWriteStateSpec("published", StateCoder())
DATE_CLOCK = ReadModifyWriteStateSpec("clock", StateCoder())
# BestBetsStateFn reads the clock through ``read_clock`` (its maps copied before any change) and writes a
# new value: written through like the player-game's cells (encoding it was ~3 % of the worker thread).
DATE_CLOCK.props_shared_reads = 1024
DATE_CLOCK.props_write_through = True
DATE_DEBOUNCE = TimerSpec("debounce", TimeDomain.REAL_TIME)
_PG_ODDS, _PG_SCHEDULE = beam.DoFn.StateParam(PG_ODDS), beam.DoFn.StateParam(PG_SCHEDULE)
_PG_BOOK = beam.DoFn.StateParam(PG_BOOK)
_PG_INJURIES, _PG_INFO = beam.DoFn.StateParam(PG_INJURIES), beam.DoFn.StateParam(PG_INFO)
_DATE_ENTRIES, _DATE_PUBLISHED = beam.DoFn.StateParam(DATE_ENTRIES), beam.DoFn.StateParam(DATE_PUBLISHED)
_DATE_CLOCK, _DATE_DEBOUNCE = beam.DoFn.StateParam(DATE_CLOCK), beam.DoFn.TimerParam(DATE_DEBOUNCE)

JOIN_STATE = ReadModifyWriteStateSpec("join", StateCoder())
# CompleteModelSetFn reads the join through ``read_join`` (every pending entry copied) and writes a new
# value: written through (encoding each version's request and predictions was ~2 % of the worker thread).
JOIN_STATE.props_shared_reads = 4096
JOIN_STATE.props_write_through = True
JOIN_TIMEOUT = TimerSpec("timeout", TimeDomain.REAL_TIME)
_JOIN_STATE, _JOIN_TIMEOUT = beam.DoFn.StateParam(JOIN_STATE), beam.DoFn.TimerParam(JOIN_TIMEOUT)

PG_DEFAULTS: dict[str, Any] = {
    "seq": 0, "signature": None, "emitted": False, "now": None, "feature_row": None, "context": None,
    "closed": False, "models": (), "book_cell": False, "fresh": False, "game_date": None,
}


class PlayerGameStateFn(beam.DoFn):
    """Stateful per player-game (key ``game_id|player``, stable): odds, feature row, injuries, schedule,
    model set -> versioned decisions.

    State (global window): ``book``, one cell with per book the latest odds snapshot and the first that
    could open (``linebook.retained_snapshots``: at most two per book, however many snapshots a day
    brings; the event-time ``now`` only moves forward, so they build the same line book as every
    snapshot), every schedule event of the game and injury report of the player, and ``info`` (feature
    row, context, model set, event-time ``now``, version counter, last signature). An odds event reads and
    writes the two cells once each. A job before this layout kept the snapshots in the ``odds`` bag,
    cleared and re-added whenever a book's latest snapshot was replaced (~2 x books encodes per update):
    the first event of such a player-game after an in-place update moves the bag into ``book``
    (``info["book_cell"]`` marks the move) and clears it. On each event the line book is
    rebuilt at ``as_of = now`` and ``gate.decide_player_game`` decides, exactly as the batch join does.
    When anything a batch run would write for the player-game changed (the decision, the line book, its
    diagnostics, the feature row, the context, the tip-off) or its model set changed, the version
    counter n moves and:

    * ``gate_decisions`` / ``line_diagnostics``: the rows of version n (``scored_at`` = now);
    * main: a ScoringRequest (PlayerGame ``pg#n``, version n, and the model set) when viable, with or
      without a line (without one it is scored NO_LINE and never becomes a pick), and when the date has
      at least one eligible model;
    * ``ticks``: ``(date_iso, PlayerGameRemoved)`` when a previously viable player-game stops being
      viable, then ``(date_iso, GameTick)`` on every event (the date's event-time clock for locking),
      naming the version sent for scoring, if any (``pending``); one output, so the date's best bets get
      them in the order they were sent;
    * ``dead_letters``: odds of a game not on the schedule, stray odds rows of another game_date (only
      the row: the line book is built from the rest).

    When the game is final its odds, schedule and injuries are dropped (a ``closed`` marker ignores late
    events); the ``clear`` event of the date's timer (DateStateFn) then clears every cell of the key.
    """

    def __init__(self, policy: Policy, run_mode: str | None = None):
        self._policy = policy
        self._run_mode = run_mode or policy.streaming_run_mode

    def setup(self):
        self._emitted = slate._counter("stream_player_games_emitted")
        self._versions = slate._counter("stream_player_game_versions")
        self._unchanged = slate._counter("stream_events_unchanged")
        self._removed = slate._counter("stream_player_games_removed")
        self._cleared = slate._counter("stream_player_games_cleared")
        self._dead = slate._counter("dead_letters")

    def _dead_letter(self, row, why: str, now):
        self._dead.inc()
        return beam.pvalue.TaggedOutput(DEAD, slate.dead_letter(
            "odds", "stream_universe", why, row._asdict(), event_ts=now, game_date=row.game_date))

    def _replay(self, new_kept: list, stored: list) -> bool:
        """Whether odds (this event's rows of the player-game, ``new_kept``) leave the book cell as it is:
        a replayed snapshot (one the cell holds), a late one that is neither a book's latest nor its
        opening (``linebook.changes_retained``), or none (odds of another date). Asked only at an
        unchanged ``now`` after a full pass that saw every other input as it is: then the line book,
        decision, tick and signature would all be the last ones, and nothing is rebuilt, emitted or
        written."""
        return (not new_kept or new_kept[0] in stored
                or not linebook_lib.changes_retained(stored, new_kept[0], self._policy))

    def process(self, element, odds_state=_PG_ODDS, schedule_state=_PG_SCHEDULE, injury_state=_PG_INJURIES,
                info_state=_PG_INFO, book_state=_PG_BOOK):
        key, ev = element
        if ev.kind == "clear":
            odds_state.clear()
            book_state.clear()
            schedule_state.clear()
            injury_state.clear()
            info_state.clear()
            self._cleared.inc()
            yield beam.pvalue.TaggedOutput(CLEARED, ("player_game", key, 1))
            return
        info = read_state(info_state, PG_DEFAULTS)
        if info["closed"]:
            return
        game_id, player = key.split("|", 1)
        if ev.kind != "odds":
            info["fresh"] = False  # anything but odds may change what the last full pass decided from
        new_odds = None
        if ev.kind == "odds":
            new_odds = ev.row
        elif ev.kind == "schedule":
            schedule_state.add(ev.row)
        elif ev.kind == "injuries":
            injury_state.add(ev.row)
        elif ev.kind == "features":
            info["feature_row"] = ev.row
        elif ev.kind == "context":
            info["context"] = ev.row
        elif ev.kind == "models":
            info["models"] = tuple(ev.row)
        if ev.kind in ("odds", "schedule", "injuries"):
            t = event_time(ev.kind, ev.row)
            if info["now"] is None or t > info["now"]:
                info["now"] = t
                info["fresh"] = False
        now = info["now"]
        if now is None:  # only reference data so far: nothing to decide yet
            info_state.write(info)
            return
        # After a full pass at this ``now`` with nothing but odds since, the schedule would give the game
        # (and date) that pass saw: the replay check needs neither read. A cell written before the pass
        # kept its game date (``game_date`` None) is checked once the schedule is read, below.
        replay_checked = bool(new_odds is not None and info["fresh"] and info["book_cell"]
                              and info["game_date"])
        if replay_checked:
            kept_fast, stray_fast = linebook_lib.split_player_game(
                [new_odds], info["game_date"], game_id, player)
            if self._replay(kept_fast, list(book_state.read() or ())):
                for row in slate.stray_odds_dead_letters(stray_fast, "stream_line_book"):
                    self._dead.inc()
                    yield beam.pvalue.TaggedOutput(DEAD, row)
                self._unchanged.inc()
                return

        schedule = list(schedule_state.read())
        game = latest_games(schedule, now).get(game_id)
        feature_row: FeatureRow | None = info["feature_row"]
        if game is None and feature_row is None:
            if new_odds is not None:  # batch: "unknown game" dead letter; nothing to decide
                yield self._dead_letter(new_odds, f"unknown game {game_id!r}: not on the schedule at "
                                                  f"{now.isoformat()}", now)
            info_state.write(info)
            return
        game_date = game.game_date if game else feature_row.game_date
        new_kept: list = []
        if new_odds is not None:
            new_kept, stray = linebook_lib.split_player_game([new_odds], game_date, game_id, player)
            for row in slate.stray_odds_dead_letters(stray, "stream_line_book"):
                self._dead.inc()
                yield beam.pvalue.TaggedOutput(DEAD, row)
        stored = list(book_state.read() or ())
        if not replay_checked and info["fresh"] and info["book_cell"] and self._replay(new_kept, stored):
            self._unchanged.inc()
            return
        date_iso = game_date.isoformat()
        pending = None  # the version sent for scoring, named on the tick

        moved = False
        if not info["book_cell"]:  # state of the bag layout (or a new player-game): moved once
            moved = True
            stored = list(odds_state.read()) + stored
            odds_state.clear()
            info["book_cell"] = True
        odds = stored + new_kept
        kept, stray = linebook_lib.split_player_game(odds, game_date, game_id, player)
        if stray:  # stored before the game's date was known: rejected now, once
            for row in slate.stray_odds_dead_letters(stray, "stream_line_book"):
                self._dead.inc()
                yield beam.pvalue.TaggedOutput(DEAD, row)
        # Bounded state: every stored snapshot is at or before ``now``, which only moves forward, so
        # the latest and the opening snapshot per book build the same line book as the whole history.
        retained = linebook_lib.retained_snapshots(kept, self._policy)
        if moved or retained != stored:
            book_state.write(retained)
        prev_close = feature_row.prev_game_closing_line if feature_row else None
        book, diagnostics = linebook_lib.build_line_book(
            retained, now, self._policy, prev_game_closing_line=prev_close, key=(game_date, game_id, player))
        decision = gate_lib.decide_player_game(
            feature_row, game_status=game.status if game else None,
            tipoff_utc=game.tipoff_utc if game else None, as_of=now,
            injury_status=gate_lib.latest_injury_status(list(injury_state.read()), now),
            run_mode=self._run_mode, policy=self._policy)
        tipoff = game.tipoff_utc if game else None
        models = tuple(info["models"])
        signature = (decision, book, tuple(diagnostics), feature_row, info["context"], tipoff,
                     tuple(m.model_id for m in models))
        if signature == info["signature"]:
            self._unchanged.inc()
        else:
            info["seq"] += 1
            seq = info["seq"]
            info["signature"] = signature
            self._versions.inc()
            yield beam.pvalue.TaggedOutput(GATE, slate.gate_decision_row(
                game_date, game_id, player, self._run_mode, decision, feature_row, book, version=seq,
                scored_at=now))
            for d in diagnostics:
                yield beam.pvalue.TaggedOutput(DIAGNOSTICS, d._replace(version=seq, scored_at=now))
            if decision[0] and models:
                info["emitted"] = True
                self._emitted.inc()
                pending = f"{key}#{seq}"
                yield ScoringRequest(PlayerGame(
                    key=pending, game_date=game_date, game_id=game_id, player_lookup=player,
                    player_name=book.player_name, feature_row=feature_row, book=book,
                    context=info["context"], tipoff_utc=tipoff, version=seq, scored_at=now), models)
            elif info["emitted"]:
                info["emitted"] = False
                self._removed.inc()
                yield beam.pvalue.TaggedOutput(TICKS, (date_iso, PlayerGameRemoved(
                    key=key, game_date=game_date, reason=decision[1], seq=seq, now=now)))
        yield beam.pvalue.TaggedOutput(TICKS, (date_iso, GameTick(
            game_id=game_id, tipoff_utc=tipoff, status=game.status if game else None, now=now,
            pending=pending)))

        info["fresh"] = True  # this pass saw every input as stored: a replay alone changes nothing now
        info["game_date"] = game_date
        if game is not None and game.status in ("final", "cancelled"):
            book_state.clear()
            schedule_state.clear()
            injury_state.clear()
            info = {"closed": True}
        info_state.write(info)


# --------------------------------------------------------------------------------------------
# Scoring: RunInference over the version's model set, then the completion join
# --------------------------------------------------------------------------------------------


class RequestVectorsFn(beam.DoFn):
    """ScoringRequest -> ``(ModelRef, (pg#n, vector))`` for every model of the request's set (one vector
    per feature set, ``scoring.build_feature_vector`` as in batch)."""

    def process(self, request: ScoringRequest):
        from pipeline.domain import scoring as scoring_lib

        pg = request.player_game
        vectors: dict[str, Any] = {}
        for ref in request.models:
            vec = vectors.get(ref.feature_set)
            if vec is None:
                vec = scoring_lib.build_feature_vector(pg.feature_row, pg.book, ref.feature_set)
                vectors[ref.feature_set] = vec
            yield ref, (pg.key, vec)


def _failed_by_model_id(element):
    """A failed batch of ``(ModelRef, (key, vector))`` -> the slate's ``(model_id, (key, vector))`` shape."""
    batch, exc = element
    items = batch if isinstance(batch, (list, tuple)) else [batch]
    return [(getattr(i[0], "model_id", i[0]), i[1]) if isinstance(i, tuple) and len(i) == 2 else i
            for i in items], exc


class InferVersionedPredictions(beam.PTransform):
    """ScoringRequests -> ``(pg#n, (model_id, raw))`` for every model of each request's set, through
    RunInference with ``models.handler.RegistryModelHandler`` (models loaded by their registry entry on
    first use, so a model promoted after the launch is scored without a restart), and dead letters of
    failed inference batches."""

    def __init__(self, handler=None):
        super().__init__()
        self._handler = handler

    def expand(self, requests):
        from apache_beam.ml.inference.base import RunInference

        from models.handler import RegistryModelHandler

        handler = self._handler or RegistryModelHandler()
        vectors = requests | "FeatureVectors" >> beam.ParDo(RequestVectorsFn())
        results, dlq = vectors | "RunInference" >> RunInference(handler).with_exception_handling()
        failures = (dlq.failed_inferences | "FailedByModelId" >> beam.Map(_failed_by_model_id)
                    | "InferenceFailures" >> beam.ParDo(slate.InferenceFailureFn()))
        raw = results | "RawByPlayerGame" >> beam.Map(slate.raw_by_player_game)
        return {"raw": raw, DEAD: failures}


JOIN_DEFAULTS: dict[str, Any] = {"pending": {}}


def read_join(cell) -> dict:
    """The completion join's cell (``read_state``) with every pending entry copied, so what was read is
    never changed in place (the local runner hands the next read the value written)."""
    state = read_state(cell, JOIN_DEFAULTS)
    state["pending"] = {seq: {**entry, "raws": dict(entry["raws"])}
                        for seq, entry in state["pending"].items()}
    return state


class CompleteModelSetFn(beam.DoFn):
    """Stateful per player-game (key ``game_id|player``; the version is in the value): buffers each
    version's ScoringRequest and raw predictions and scores the version (``slate.score_player_game``)
    once every model of its set is in.

    Elements ``(pg, (n, "request", ScoringRequest) | (n, "raw", (model_id, raw)))``. A version's first
    element gives it a deadline ``timeout_s`` of processing time ahead; the key's one timer is set to the
    earliest pending deadline. When it fires, each overdue incomplete version is ONE dead letter naming
    its missing models: never a consensus of some of the models, never a silent drop. A raw prediction
    arriving after its version was scored starts a new, incomplete entry and is dead-lettered the same way.

    Worked timeline (2 models a, b; timeout 10 s of processing time):

        t=0.0  request(A, v3)   -> pending {3: {request}}, timer t=10
        t=0.2  raw(A, v3, a)    -> pending {3: {request, a}}
        t=0.3  raw(A, v3, b)    -> complete: 2 predictions + consensus (version 3) + Scored; v3 removed
        t=0.4  request(B, v1)   -> pending {1: {request}}, timer t=10.4
        t=0.5  raw(B, v1, a)    -> pending {1: {request, a}} (model b's batch failed: its dead letter)
        t=10.4 timer            -> dead letter "incomplete model set for B#1 ... missing b"; state cleared

    Outputs: main Scored, ``predictions``, ``consensus``, ``dead_letters``.
    """

    def __init__(self, policy: Policy, *, timeout_s: float, clock=None):
        self._policy = policy
        self._timeout = float(timeout_s)
        self._clock = clock or Timestamp.now

    def setup(self):
        self._scored = slate._counter("stream_versions_scored")
        self._predictions = slate._counter("predictions")
        self._dead = slate._counter("dead_letters")

    def process(self, element, join=_JOIN_STATE, timer=_JOIN_TIMEOUT):
        key, (seq, tag, value) = element
        state = read_join(join)
        pending = state["pending"]
        entry = pending.get(seq)
        if entry is None:
            deadline = float(self._clock()) + self._timeout
            entry = pending[seq] = {"request": None, "raws": {}, "deadline": deadline}
            timer.set(Timestamp(min(e["deadline"] for e in pending.values())))
        if tag == "request":
            entry["request"] = value
        else:
            model_id, raw = value
            entry["raws"].setdefault(model_id, raw)
        request: ScoringRequest | None = entry["request"]
        if request is None or any(m.model_id not in entry["raws"] for m in request.models):
            join.write(state)
            return
        del pending[seq]
        if pending:
            join.write(state)
        else:
            join.clear()
            # Nothing is pending: the timeout is cleared too (a key without timers costs the local
            # runner's monitor nothing; a live one was walked on every cycle until it fired: ~8 % of the
            # worker thread under 1,000 near-tip-off odds/s). The timer callback finds nothing anyway.
            timer.clear()
        expected = [m.model_id for m in request.models]
        infos = {m.model_id: m.info() for m in request.models}
        out = slate.score_player_game(request.player_game, entry["raws"].items(), expected, infos,
                                      self._policy)
        self._scored.inc()
        for pred in out.predictions:
            self._predictions.inc()
            yield beam.pvalue.TaggedOutput(PREDICTIONS, pred)
        yield beam.pvalue.TaggedOutput(CONSENSUS, out.consensus)
        yield Scored(consensus=out.consensus, player_game=request.player_game)

    @on_timer(JOIN_TIMEOUT)
    def timeout(self, key=_KEY, join=_JOIN_STATE, timer=_JOIN_TIMEOUT, fired=beam.DoFn.TimestampParam):
        state = read_join(join)
        # the timer fires at the earliest deadline: every version due by then is overdue
        now = max(float(self._clock()), float(fired))
        pending = state["pending"]
        for seq in sorted(s for s, e in pending.items() if e["deadline"] <= now):
            entry = pending.pop(seq)
            request = entry["request"]
            got = sorted(entry["raws"])
            if request is None:
                why, missing, pg = "no player-game for these predictions (late or duplicate)", (), None
            else:
                pg = request.player_game
                why = f"not complete after {self._timeout:g} s"
                missing = tuple(m.model_id for m in request.models
                                if m.model_id not in entry["raws"]) or ("<no eligible model>",)
            self._dead.inc()
            yield beam.pvalue.TaggedOutput(DEAD, slate.incomplete_dead_letter(
                pg, f"{key}#{seq}", missing, got, why))
        if pending:
            join.write(state)
            timer.set(Timestamp(min(e["deadline"] for e in pending.values())))
        else:
            join.clear()


class ScoreOnCompleteModelSet(beam.PTransform):
    """ScoringRequests -> predictions + consensus + Scored, each version scored only with its complete
    model set (RunInference through :class:`InferVersionedPredictions`, then :class:`CompleteModelSetFn`).

    Returns: a dict ``scored``, ``predictions``, ``consensus``, ``dead_letters``.
    """

    def __init__(self, *, policy, timeout_s: float, clock=None, model_handler=None):
        super().__init__()
        self._policy, self._timeout, self._clock, self._handler = policy, timeout_s, clock, model_handler

    def expand(self, requests):
        from pipeline.transforms import windows

        inferred = requests | "Infer" >> InferVersionedPredictions(self._handler)

        def request_by_pg(r):
            pg, seq = split_key(r.player_game.key)
            return pg, (seq, "request", r)

        def raw_by_pg(k, mr):
            pg, seq = split_key(k)
            return pg, (seq, "raw", mr)

        joined = (
            (requests | "RequestByPlayerGame" >> beam.Map(request_by_pg),
             inferred["raw"] | "RawByPlayerGameKey" >> beam.MapTuple(raw_by_pg))
            | "ScoringInputs" >> beam.Flatten()
            | "ScoringWindow" >> windows.events_window()
            | "CompleteModelSet" >> beam.ParDo(CompleteModelSetFn(
                self._policy, timeout_s=self._timeout, clock=self._clock))
            .with_outputs(PREDICTIONS, CONSENSUS, DEAD, main="scored")
        )
        dead = (inferred[DEAD] | "InferenceDeadWindow" >> windows.events_window(), joined[DEAD]) | (
            "ScoringDeadLetters" >> beam.Flatten())
        return {"scored": joined.scored, PREDICTIONS: joined[PREDICTIONS], CONSENSUS: joined[CONSENSUS],
                DEAD: dead}


# --------------------------------------------------------------------------------------------
# Per game-date best bets, debounced, with the pick lifecycle
# --------------------------------------------------------------------------------------------


COMPACT_SLACK = 16  # the best-bets bag is compacted once it holds more than 2 x player-games + this
CLOCK_DEFAULTS: dict[str, Any] = {"now": None, "last": None, "armed": False, "tipoffs": {}, "statuses": {},
                                   "history": {}, "held": {}, "early": {}}
CLOCK_CHANGED_MAPS = ("tipoffs", "statuses", "held", "early")  # changed key by key (hold_version, ...)


def read_clock(cell) -> dict:
    """The date clock cell (``read_state``) with the maps BestBetsStateFn changes key by key copied: the
    value read is never changed in place (the local runner hands the next read the value written)."""
    state = read_state(cell, CLOCK_DEFAULTS)
    for name in CLOCK_CHANGED_MAPS:
        state[name] = dict(state[name])
    return state


class BestBetsStateFn(beam.DoFn):
    """Stateful per game date: latest consensus per player-game -> debounced best bets -> pick changes.

    Elements ``(date_iso, ("scored", Scored) | ("removed", PlayerGameRemoved) | ("tick", GameTick)
    | ("init", DateInit) | ("clear", None))``. ``init`` (from DateStateFn, when the date is first seen)
    seeds the published picks and the date's graded history; ``clear`` (the date's games are over, plus
    the grace period) clears every cell of the date.
    Each element is appended to a bag; the first one after a recomputation arms a processing-time timer
    ``debounce_seconds`` ahead; when it fires, the latest entry per player-game (highest sequence) gives the
    candidates, the slate's ``SelectBestBetsFn`` selects, ``lifecycle.diff_picks`` diffs against the
    published picks (seeded at launch from the warehouse), and a ``DateChanges`` is emitted if anything
    changed. The bag is compacted to the latest entry per player-game when superseded entries outnumber
    them (so it holds at most about twice the date's player-games); ticks only move the clock cell.

    Worked timeline (debounce 1.0 s; times are processing time):

        t=0.00  odds move for A -> Scored(A#3) arrives  -> bag [A#3], timer armed for t=1.00
        t=0.30  odds move for B -> Scored(B#5) arrives  -> bag [A#3, B#5], timer already armed
        t=0.80  injury out for A -> Removed(A#4)        -> bag [A#3, B#5, A#4]
        t=1.00  timer fires: latest A#4 (removed), B#5 -> select over B -> diff: A's pick withdrawn
                (injury_out), B's pick updated -> one DateChanges with 2 changes; bag kept (A#3 is dropped
                when the bag is compacted: more than 2 x its player-games + COMPACT_SLACK entries)
        t=1.40  odds move for C -> Scored(C#2)          -> timer armed for t=2.40 (one recomputation per
                                                           second at most, whatever the message rate)

    ``clock`` gives the processing time the timer is set from (default ``Timestamp.now``); TestStream's
    processing clock starts at 0, so tests pass :func:`zero_clock`.

    Locking: ticks carry the event-time clock; once a game's tip-off is at or before it (or the schedule
    says in progress / final), the next recomputation locks its active picks; nothing of a started game
    is ever created, updated or withdrawn again. A recomputation first decides the date just before each
    tip-off crossed since the previous one (:func:`catch_up_points`), so a burst that brings a game's last
    pre-tip-off moves and its tip-off within one debounce still creates and updates its picks, then locks
    them, as a real-time run and the batch run ``--as-of`` the last pre-tip-off event do.
    """

    def __init__(self, policy: Policy, history: Mapping[str, Any], *, debounce_seconds: float,
                 published: Mapping[str, Mapping[str, Pick]] | None = None, run_id: str | None = None,
                 clock=None, hold_seconds: float | None = None):
        from pipeline.transforms import windows

        self._hold = float(windows.SCORING_TIMEOUT_S if hold_seconds is None else hold_seconds)
        self._policy = policy
        self._clock = clock or Timestamp.now
        self._history = dict(history or {})
        self._debounce = float(debounce_seconds)
        self._published_seed = {d: dict(p) for d, p in (published or {}).items()}
        self._run_id = run_id

    def setup(self):
        self._select = slate.SelectBestBetsFn(self._policy)
        self._select.setup()
        self._recomputations = slate._counter("stream_recomputations")
        self._waits = slate._counter("stream_recomputations_waiting_for_scoring")
        self._changes = slate._counter("stream_pick_changes")
        self._dead = slate._counter("dead_letters")
        self._cleared = slate._counter("stream_date_best_bets_cleared")

    def process(self, element, entries=_DATE_ENTRIES, clock=_DATE_CLOCK, timer=_DATE_DEBOUNCE,
                published_state=_DATE_PUBLISHED):
        date_iso, item = element
        tag, value = item
        if tag == "clear":
            entries.clear()
            clock.clear()
            published_state.clear()
            self._cleared.inc()
            yield beam.pvalue.TaggedOutput(CLEARED, ("best_bets", date_iso, 1))
            return
        state = read_clock(clock)
        if tag == "init":
            if published_state.read() is None:
                published_state.write(dict(value.published))
            state["history"] = dict(value.history or {})
            clock.write(state)
            return
        if tag != "tick":  # a tick only moves the clock (below); the recomputation reads no tick entry
            entries.add(item)
        # Versions on their way through scoring (named by their event's tick), for the recomputation that
        # locks past a tip-off to wait for (``recompute``).
        if tag == "scored":
            in_flight = release_version(state, *split_key(value.player_game.key))
        else:  # a later removal does not release a version in flight: a catch-up before it needs that version
            in_flight = tag == "tick" and value.pending is not None and hold_version(
                state, *split_key(value.pending), value.now, self._clock().micros / 1e6)
        t = value.now if tag in ("tick", "removed") else None
        if tag == "tick":
            moves = t is not None and (state["now"] is None or t > state["now"])
            if value.tipoff_utc is not None and state["tipoffs"].get(value.game_id) != value.tipoff_utc:
                state["tipoffs"][value.game_id] = value.tipoff_utc
                moves = True
            if value.status is not None and state["statuses"].get(value.game_id) != value.status:
                state["statuses"][value.game_id] = value.status
                moves = True
            if not moves:
                # The clock, tip-offs and statuses are as they were: a recomputation would select and
                # lock exactly what the last one did. Nothing is written and no timer is armed (every
                # player-game's event sends a tick: most only repeat the date's clock).
                if in_flight:
                    clock.write(state)
                return
        if t is not None and (state["now"] is None or t > state["now"]):
            state["now"] = t
        if not state["armed"]:
            state["armed"] = True
            timer.set(self._clock() + self._debounce)
        clock.write(state)

    @on_timer(DATE_DEBOUNCE)
    def recompute(self, key=_KEY, entries=_DATE_ENTRIES, published_state=_DATE_PUBLISHED, clock=_DATE_CLOCK,
                  timer=_DATE_DEBOUNCE):
        if clock.read() is None:
            return  # cleared while the timer was armed
        state = read_clock(clock)
        now, last = state["now"], state["last"]
        # Tip-offs crossed since the last recomputation: the picks of those games are decided as of just
        # before each tip-off first (see ``catch_up_points``), then the whole date at ``now``.
        points = catch_up_points(state["tipoffs"], last, now) if now is not None else []
        if state["held"]:
            arrived_by = self._clock().micros / 1e6 - self._hold
            state["held"] = {pg: h for pg, h in state["held"].items() if h[2] > arrived_by}
            if points and any(at < points[-1] for _seq, at, _arrived in state["held"].values()):
                # A version decided before a crossed tip-off is still being scored (its event's tick came
                # the short way): the locking recomputation waits for it. The next element (its scored
                # entry, at the latest) arms the debounce again; the timer is set meanwhile to when the
                # earliest held version times out (scoring has dead-lettered it by then).
                self._waits.inc()
                state["armed"] = False
                timer.set(Timestamp.of(min(h[2] for h in state["held"].values()) + self._hold))
                clock.write(state)
                return
        state["armed"] = False
        if now is not None:
            state["last"] = now
        clock.write(state)
        if now is None:
            return
        self._recomputations.inc()
        stored = list(entries.read())
        latest = latest_before(stored)
        if len(stored) > 2 * len(latest) + COMPACT_SLACK:
            # Compacted to the latest entry per player-game once superseded entries outnumber them:
            # re-encoding every entry at every recomputation was most of its cost; the bag stays bounded.
            entries.clear()
            for _seq, tag, value in latest.values():
                entries.add((tag, value))

        published = published_state.read()
        if published is None:
            published = dict(self._published_seed.get(key, {}))
        history = self._history
        if state["history"]:
            history = {**self._history, **state["history"],
                       "by_date": {**self._history.get("by_date", {}), **state["history"].get("by_date", {})}}
        changes: list = []
        try:
            for point in points:
                before = latest_before(stored, point)
                step, published, _summary, _scored = self._select_and_diff(
                    key, before, published, history, now=point, tipoffs=state["tipoffs"],
                    statuses=statuses_at(state["statuses"], state["tipoffs"], point))
                changes.extend(step)
            step, new_latest, summary, scored = self._select_and_diff(
                key, latest, published, history, now=now, tipoffs=state["tipoffs"],
                statuses=state["statuses"])
            changes.extend(step)
        except Exception as exc:  # noqa: BLE001 - a bad recomputation must not stop the job
            self._dead.inc()
            yield beam.pvalue.TaggedOutput(DEAD, slate.dead_letter(
                "stream", "best_bets", slate.format_exception(exc),
                {"game_date": key, "players": len(latest)}, event_ts=now,
                game_date=dt.date.fromisoformat(key)))
            return
        published_state.write(new_latest)
        if changes:
            self._changes.inc(len(changes))
            yield DateChanges(
                game_date=dt.date.fromisoformat(key), changes=tuple(changes),
                picks=tuple(sorted(new_latest.values(), key=lambda p: (p.rank, p.pick_id))),
                filter_summary=summary, consensus=tuple(s.consensus for s in scored), now=now)

    def _select_and_diff(self, key: str, latest: Mapping[str, tuple[int, str, Any]], published, history, *,
                         now: dt.datetime, tipoffs, statuses):
        """One selection of the date over the latest entry per player-game, diffed against ``published``:
        (changes, the new latest version of every pick, the filter summary, the scored entries)."""
        scored = [v for _s, tag, v in latest.values() if tag == "scored"]
        removed = {pg: v.reason for pg, (_s, tag, v) in latest.items() if tag == "removed"}
        rows = []
        for s in scored:
            pg, _ = split_key(s.player_game.key)
            rows.append(Scored(consensus=s.consensus, player_game=s.player_game._replace(key=pg)))
        picks, summary = [], None
        for out in self._select.process((key, rows), history):
            if isinstance(out, beam.pvalue.TaggedOutput):
                summary = out.value
            else:
                picks.append(out)
        picks = [slate.stamp(p, self._run_id, self._policy.version) for p in picks]
        if summary is not None:
            summary = slate.stamp(summary, self._run_id, self._policy.version)
        changes, new_latest = lifecycle.diff_picks(
            published, picks, now=now, tipoffs=tipoffs, removed=removed, statuses=statuses)
        return changes, new_latest, summary, scored


CATCH_UP_EPSILON = dt.timedelta(microseconds=1)


def catch_up_points(tipoffs: Mapping[str, dt.datetime | None], last: dt.datetime | None,
                    now: dt.datetime) -> list[dt.datetime]:
    """The event times a recomputation at ``now`` decides the date at before its own: just before each
    tip-off crossed since the last recomputation (``last < tip-off <= now``), earliest first.

    The debounce batches a date's updates in processing time; a pick's lifecycle is decided in event time.
    When a replay (or a burst) brings a game's last pre-tip-off line moves and the clock passing its
    tip-off within one debounce, a recomputation only at ``now`` would find the game started and never
    create (or update) its picks, where an uninterrupted real-time run, and the batch run ``--as-of`` its
    last pre-tip-off event, have them. Deciding the date just before each crossed tip-off first creates or
    updates them there, and the recomputation at ``now`` locks them. A job's first recomputation of a date
    has no earlier clock (``last`` None): a restart's rebuild events all come at once and the published
    picks are its seed."""
    if last is None:
        return []
    return sorted({tip - CATCH_UP_EPSILON for tip in tipoffs.values()
                   if tip is not None and last < tip <= now})


def hold_version(state: dict, pg: str, seq: int, at: dt.datetime, arrived: float) -> bool:
    """A tick named version ``seq`` of ``pg`` (event time ``at``) as sent for scoring: held in the date
    clock's ``held`` (``pg`` -> (highest seq, earliest event time, earliest arrival in processing-time
    seconds)) until its scored entry arrives, unless that came first (``early``). Whether ``state``
    changed."""
    early = state["early"]
    if early.get(pg, 0) >= seq:
        if early[pg] == seq:
            del early[pg]
            return True
        return False
    early.pop(pg, None)  # an earlier version's, its tick long gone (held past the timeout): superseded
    old = state["held"].get(pg)
    held = (seq, at, arrived)
    state["held"][pg] = (max(seq, old[0]), min(at, old[1]), min(arrived, old[2])) if old else held
    return True


def release_version(state: dict, pg: str, seq: int) -> bool:
    """Version ``seq`` of ``pg`` was scored and reached the date's best bets: its held entry (or an earlier
    version's) is released; one ahead of its tick is noted (``early``) for the tick. Whether ``state``
    changed."""
    old = state["held"].get(pg)
    if old is not None:
        if old[0] <= seq:
            del state["held"][pg]
            return True
        return False
    state["early"][pg] = max(seq, state["early"].get(pg, 0))
    return True


def latest_before(entries: Sequence[tuple[str, Any]],
                  point: dt.datetime | None = None) -> dict[str, tuple[int, str, Any]]:
    """``pg`` -> (seq, tag, value) of the latest best-bets entry per player-game (highest sequence),
    among those decided at or before ``point`` when given (a scored version's ``scored_at``, a removal's
    ``now``; an entry without an event time counts as earlier)."""
    latest: dict[str, tuple[int, str, Any]] = {}
    for tag, value in entries:
        if tag == "scored":
            (pg, seq), at = split_key(value.player_game.key), value.player_game.scored_at
        elif tag == "removed":
            pg, seq, at = value.key, value.seq, value.now
        else:
            continue
        if point is not None and at is not None and at > point:
            continue
        if pg not in latest or seq >= latest[pg][0]:
            latest[pg] = (seq, tag, value)
    return latest


def statuses_at(statuses: Mapping[str, str | None], tipoffs: Mapping[str, dt.datetime | None],
                point: dt.datetime) -> dict[str, str | None]:
    """The schedule statuses as they stood at ``point`` for a catch-up recomputation: an ``in_progress`` /
    ``final`` status of a game whose tip-off is after ``point`` is a later event (the status that crossed
    the tip-off), so it is left out; every other status is kept."""
    out = {}
    for game_id, status in statuses.items():
        tip = tipoffs.get(game_id)
        if game_started(status, None, point) and tip is not None and tip > point:
            continue
        out[game_id] = status
    return out


def zero_clock() -> Timestamp:
    """The processing clock of a TestStream pipeline (starts at 0): timers fire on the next advance."""
    return Timestamp(0)


# --------------------------------------------------------------------------------------------
# The composite
# --------------------------------------------------------------------------------------------


def key_by_date(ev: StreamEvent):
    """StreamEvent -> ``(date_iso, ev)``; an event without a game date is not routable (dead letter)."""
    d = route_key(ev)
    if d is None:
        return beam.pvalue.TaggedOutput(DEAD, slate.dead_letter(
            f"stream:{ev.kind}", "stream_route", "event without a game_date", repr(ev.row)))
    return d, ev


SEASON = "season"


class RouteEventsFn(beam.DoFn):
    """StreamEvent -> main: ``(date_iso, ev)`` for every kind but ``registry`` (:func:`key_by_date`);
    ``season``: ``("season", ev)`` for schedule and registry events (the open dates, SeasonDatesFn);
    ``dead_letters``: an event without a game date. One step: on the local runner each step costs about
    1-2 ms per bundle, and the two filters and two keying maps this replaces sat on every event's path."""

    def setup(self):
        self._dead = slate._counter("dead_letters")

    def process(self, ev: StreamEvent):
        if ev.kind in ("schedule", "registry"):
            yield beam.pvalue.TaggedOutput(SEASON, (SEASON, ev))
            if ev.kind == "registry":
                return
        out = key_by_date(ev)
        if isinstance(out, beam.pvalue.TaggedOutput):
            self._dead.inc()
        yield out


class RescorePlayerGames(beam.PTransform):
    """Stream events of any game date -> per-date pick changes and the versioned rows of every re-scored
    player-game.

    Args:
      policy: the policy (run mode, gate, line book, selection).
      reference: a DateReference: loads a date's feature rows, contexts, eligible models, published picks
        and graded history the first time the stream sees the date.
      history: graded history known at launch (``commands.common.graded_history``), merged under each
        date's own.
      debounce_seconds: the best-bets debounce.
      scoring_timeout_s: how long a version may wait for its complete model set before it is
        dead-lettered (processing time; ``windows.SCORING_TIMEOUT_S`` by default).
      state_grace_s: how long after a date's last game is done its state is cleared (processing time;
        ``windows.STATE_GRACE_S`` by default).
      published: date_iso -> {pick_id: Pick} seeds (tests; the job reads them per date from the warehouse).
      run_id: stamped on picks.
      clock: processing clock of the debounce, scoring and clearing timers (tests: ``zero_clock``).
      model_handler: RunInference handler over ``(ModelRef, (key, vector))`` (default
        ``models.handler.RegistryModelHandler``).
    Input: a PCollection of StreamEvent (``registry`` events included), plus ``initial``: StreamEvents
      to route before the stream's (a restart's rebuild events).
    Returns: a dict: ``changes`` (DateChanges), ``player_games``, ``scored``, ``gate_decisions``,
      ``line_diagnostics``, ``predictions``, ``consensus`` (the versioned rows, not yet stamped with the
      run id), ``cleared`` (what the clearing timers cleared) and ``dead_letters``.
    """

    def __init__(self, *, policy, reference: DateReference, history=None, debounce_seconds: float,
                 published=None, run_id: str | None = None, initial=None, clock: Callable | None = None,
                 scoring_timeout_s: float | None = None, state_grace_s: float | None = None,
                 model_handler=None):
        from pipeline.transforms import windows

        super().__init__()
        self._policy, self._reference = policy, reference
        self._history, self._debounce, self._published = dict(history or {}), debounce_seconds, published
        self._run_id, self._initial, self._clock = run_id, initial, clock
        self._timeout = windows.SCORING_TIMEOUT_S if scoring_timeout_s is None else scoring_timeout_s
        self._grace = windows.STATE_GRACE_S if state_grace_s is None else state_grace_s
        self._handler = model_handler

    def expand(self, events):
        from pipeline.transforms import windows

        if self._initial is not None:
            events = (self._initial, events) | "WithInitialEvents" >> beam.Flatten()
        events = events | "EventsWindow" >> windows.events_window()
        by_date = events | "RouteEvents" >> beam.ParDo(RouteEventsFn()).with_outputs(
            SEASON, DEAD, main="keyed")
        season = by_date[SEASON] | "SeasonDates" >> beam.ParDo(SeasonDatesFn())
        dates = (
            (by_date.keyed, season) | "DateInputs" >> beam.Flatten()
            | "DateState" >> beam.ParDo(DateStateFn(self._reference, grace_s=self._grace, clock=self._clock))
            .with_outputs(INIT, CLEARED, DEAD, main="routed")
        )
        state = (
            dates.routed
            | "PlayerGameState" >> beam.ParDo(PlayerGameStateFn(self._policy))
            .with_outputs(TICKS, DEAD, GATE, DIAGNOSTICS, CLEARED, main="requests")
        )
        scored = state.requests | "ScorePlayers" >> ScoreOnCompleteModelSet(
            policy=self._policy, timeout_s=self._timeout, clock=self._clock, model_handler=self._handler)
        to_dates = (
            scored["scored"] | "ScoredByDate" >> beam.Map(lambda s: (slate.scored_date(s), ("scored", s))),
            state[TICKS] | "TicksByDate" >> beam.MapTuple(
                lambda d, t: (d, ("removed" if isinstance(t, PlayerGameRemoved) else "tick", t))),
            dates[INIT],
        ) | "BestBetsInputs" >> beam.Flatten()
        changes = (
            to_dates
            | "BestBetsState" >> beam.ParDo(BestBetsStateFn(
                self._policy, self._history, debounce_seconds=self._debounce, published=self._published,
                run_id=self._run_id, clock=self._clock, hold_seconds=self._timeout)).with_outputs(
                    DEAD, CLEARED, main="changes")
        )
        dead = (by_date[DEAD], dates[DEAD], state[DEAD], scored[DEAD], changes[DEAD]) | (
            "StreamDeadLetters" >> beam.Flatten())
        cleared = (dates[CLEARED], state[CLEARED], changes[CLEARED]) | "ClearedState" >> beam.Flatten()
        player_games = state.requests | "PlayerGames" >> beam.Map(lambda r: r.player_game)
        return {"changes": changes.changes, "player_games": player_games, "requests": state.requests,
                "scored": scored["scored"], GATE: state[GATE], DIAGNOSTICS: state[DIAGNOSTICS],
                PREDICTIONS: scored[PREDICTIONS], CONSENSUS: scored[CONSENSUS], CLEARED: cleared,
                "dead_letters": dead}

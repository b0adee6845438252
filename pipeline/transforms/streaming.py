"""The streaming transforms: per player-game state, scoring on a complete model set, per game-date best
bets with a debounce, lifecycle.

Shapes (``pg`` = ``"game_id|player"``)::

    StreamEvent --RoutePlayerGames--> (pg, StreamEvent)
        --PlayerGameStateFn (stateful, per pg)--> on every change of what a batch run would write for
                                                   the player-game, a new version n (key "pg#n"):
                                              + gate_decisions, line_diagnostics (version n)
                                              + main:     PlayerGame (viable, with or without a line)
                                              + removed:  PlayerGameRemoved (no longer viable)
                                              + ticks:    GameTick (event-time clock, tip-off, status)
    PlayerGame --slate.InferRawPredictions (RunInference)--> raw predictions
    PlayerGame + raw --CompleteModelSetFn (stateful, per "pg#n", timer)--> predictions + consensus
                                              (version n) + Scored, or one dead letter if incomplete
    Scored + removed + ticks --BestBetsStateFn (stateful, per game_date, debounced)--> PickChanges

The player-game state rebuilds the line book with ``linebook.build_line_book`` at ``as_of`` = the latest
event time it has seen (payload time: snapshot / report / schedule-event time) and decides with
``gate.decide_player_game`` (run mode ``policy.streaming_run_mode``): the same functions, in the same
order, as the batch ``slate.JoinPlayerGameFn``. Scoring uses the slate's ``score_player_game`` (all
models or nothing); the date state selects with the slate's ``SelectBestBetsFn`` and diffs with
``domain.lifecycle.diff_picks``. No rule is re-implemented here.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import apache_beam as beam
from apache_beam.coders import PickleCoder
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
from pipeline.domain.schedule import latest_games
from pipeline.io.parse import event_time
from pipeline.policy import Policy
from pipeline.schemas import FeatureRow, Pick, ScheduleEvent
from pipeline.transforms import slate
from pipeline.transforms.slate import DEAD, DIAGNOSTICS, GATE, PREDICTIONS, PlayerGame, Scored, pg_key

REMOVED = "removed"
TICKS = "ticks"
CONSENSUS = "consensus"
EVENT_KINDS: tuple[str, ...] = ("odds", "schedule", "injuries", "features")


class StreamEvent(NamedTuple):
    """A parsed event (``kind`` in EVENT_KINDS, or ``context`` for a launch-time PlayerContext)."""

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


class DateChanges(NamedTuple):
    """One recomputation of a date that changed something: the changes and the date's latest picks."""

    game_date: dt.date
    changes: tuple  # lifecycle.PickChange
    picks: tuple  # latest version of every pick of the date (any status)
    filter_summary: Any
    consensus: tuple
    now: dt.datetime


def split_key(key: str) -> tuple[str, int]:
    """``"game|player#7"`` -> (``"game|player"``, 7); a key without ``#`` has sequence 0."""
    base, _, seq = key.partition("#")
    return base, int(seq) if seq else 0


# --------------------------------------------------------------------------------------------
# Routing
# --------------------------------------------------------------------------------------------


class RoutePlayerGamesFn(beam.DoFn):
    """StreamEvent -> ``(pg, StreamEvent)`` for every player-game it concerns.

    Odds and feature rows name their player-game. A schedule event goes to every player-game of its game
    and an injury report to the player's games of that date, both known at launch from the date's feature
    rows (``players_by_game``, ``game_dates``: game_id -> game_date from the rows, never parsed from the
    id). A lined player without a feature row gets his game's schedule from the launch schedule
    (``PlayerGameStateFn``) and is gated ``no_features_available``.
    """

    def __init__(self, players_by_game: Mapping[str, Sequence[str]], game_dates: Mapping[str, dt.date]):
        self._players_by_game = {g: tuple(ps) for g, ps in players_by_game.items()}
        self._games_by_player_date: dict[tuple[str, dt.date], list[str]] = {}
        for game_id, players in self._players_by_game.items():
            game_date = game_dates.get(game_id)
            if game_date is None:
                continue
            for p in players:
                self._games_by_player_date.setdefault((p, game_date), []).append(game_id)

    def setup(self):
        self._unrouted = slate._counter("stream_events_unrouted")

    def process(self, ev: StreamEvent):
        row = ev.row
        if ev.kind in ("odds", "features"):
            yield pg_key(row.game_id, row.player_lookup), ev
        elif ev.kind == "schedule":
            players = self._players_by_game.get(row.game_id, ())
            if not players:
                self._unrouted.inc()
            for p in players:
                yield pg_key(row.game_id, p), ev
        elif ev.kind == "injuries":
            games = self._games_by_player_date.get((row.player_lookup, row.game_date), ())
            if not games:
                self._unrouted.inc()
            for g in games:
                yield pg_key(g, row.player_lookup), ev
        else:
            raise ValueError(f"unknown stream event kind {ev.kind!r}")


# --------------------------------------------------------------------------------------------
# Per player-game state
# --------------------------------------------------------------------------------------------

# State and timer specs, and their DoFn parameters as module-level singletons (ruff B008).
PG_ODDS = BagStateSpec("odds", PickleCoder())
PG_SCHEDULE = BagStateSpec("schedule", PickleCoder())
PG_INJURIES = BagStateSpec("injuries", PickleCoder())
PG_INFO = ReadModifyWriteStateSpec("info", PickleCoder())
DATE_ENTRIES = BagStateSpec("entries", PickleCoder())
DATE_PUBLISHED = ReadModifyWriteStateSpec("published", PickleCoder())
DATE_CLOCK = ReadModifyWriteStateSpec("clock", PickleCoder())
DATE_DEBOUNCE = TimerSpec("debounce", TimeDomain.REAL_TIME)
_KEY = beam.DoFn.KeyParam
_PG_ODDS, _PG_SCHEDULE = beam.DoFn.StateParam(PG_ODDS), beam.DoFn.StateParam(PG_SCHEDULE)
_PG_INJURIES, _PG_INFO = beam.DoFn.StateParam(PG_INJURIES), beam.DoFn.StateParam(PG_INFO)
_DATE_ENTRIES, _DATE_PUBLISHED = beam.DoFn.StateParam(DATE_ENTRIES), beam.DoFn.StateParam(DATE_PUBLISHED)
_DATE_CLOCK, _DATE_DEBOUNCE = beam.DoFn.StateParam(DATE_CLOCK), beam.DoFn.TimerParam(DATE_DEBOUNCE)


JOIN_STATE = ReadModifyWriteStateSpec("join", PickleCoder())
JOIN_TIMEOUT = TimerSpec("timeout", TimeDomain.REAL_TIME)
_JOIN_STATE, _JOIN_TIMEOUT = beam.DoFn.StateParam(JOIN_STATE), beam.DoFn.TimerParam(JOIN_TIMEOUT)


class PlayerGameStateFn(beam.DoFn):
    """Stateful per player-game: its odds, feature row, injuries, schedule -> versioned decisions.

    State (global window): every odds snapshot of the player-game today (the line book needs the opening
    snapshot and the latest per book; a day is a few hundred snapshots), every schedule event of the game
    and injury report of the player, and ``info`` (feature row, context, event-time ``now``, version
    counter, last signature). On each event the line book is rebuilt at ``as_of = now`` and
    ``gate.decide_player_game`` decides, exactly as the batch join does. When anything a batch run would
    write for the player-game changed (the decision, the line book, its diagnostics, the feature row,
    the context, the tip-off), the version counter n moves and:

    * ``gate_decisions`` / ``line_diagnostics``: the rows of version n (``scored_at`` = now);
    * main: a PlayerGame (key ``pg#n``, version n) when viable, with or without a line (without one it
      is scored NO_LINE and never becomes a pick);
    * ``removed``: a PlayerGameRemoved when a previously viable player-game stops being viable;
    * ``ticks``: ``(date_iso, GameTick)`` on every event (the date's event-time clock for locking);
    * ``dead_letters``: odds of a game not on the schedule, stray odds rows of another game_date (only
      the row: the line book is built from the rest).

    The game's schedule is the launch schedule (``launch_schedule``: the served dates' schedule events
    read at launch) plus the schedule events received, as of ``now``. State is cleared when the game is
    final (a ``closed`` marker stays, so late events are ignored).
    """

    def __init__(self, policy: Policy, run_mode: str | None = None,
                 launch_schedule: Sequence[ScheduleEvent] = ()):
        self._policy = policy
        self._run_mode = run_mode or policy.streaming_run_mode
        self._launch_schedule: dict[str, tuple[ScheduleEvent, ...]] = {}
        for ev in launch_schedule:
            self._launch_schedule[ev.game_id] = (*self._launch_schedule.get(ev.game_id, ()), ev)

    def setup(self):
        self._emitted = slate._counter("stream_player_games_emitted")
        self._versions = slate._counter("stream_player_game_versions")
        self._unchanged = slate._counter("stream_events_unchanged")
        self._removed = slate._counter("stream_player_games_removed")
        self._dead = slate._counter("dead_letters")

    def _dead_letter(self, row, why: str, now):
        self._dead.inc()
        return beam.pvalue.TaggedOutput(DEAD, slate.dead_letter(
            "odds", "stream_universe", why, row._asdict(), event_ts=now, game_date=row.game_date))

    def process(self, element, odds_state=_PG_ODDS, schedule_state=_PG_SCHEDULE, injury_state=_PG_INJURIES,
                info_state=_PG_INFO):
        key, ev = element
        info = info_state.read() or {"seq": 0, "signature": None, "emitted": False, "now": None,
                                     "feature_row": None, "context": None, "closed": False}
        if info["closed"]:
            return
        game_id, player = key.split("|", 1)
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
        if ev.kind in ("odds", "schedule", "injuries"):
            t = event_time(ev.kind, ev.row)
            info["now"] = t if info["now"] is None or t > info["now"] else info["now"]
        now = info["now"]
        if now is None:  # only launch-time state so far: nothing to decide yet
            info_state.write(info)
            return

        schedule = [*self._launch_schedule.get(game_id, ()), *schedule_state.read()]
        game = latest_games(schedule, now).get(game_id)
        feature_row: FeatureRow | None = info["feature_row"]
        if game is None and feature_row is None:
            if new_odds is not None:  # batch: "unknown game" dead letter; nothing to decide
                yield self._dead_letter(new_odds, f"unknown game {game_id!r}: not on the schedule at "
                                                  f"{now.isoformat()}", now)
            info_state.write(info)
            return
        game_date = game.game_date if game else feature_row.game_date
        if new_odds is not None:
            kept, stray = linebook_lib.split_player_game([new_odds], game_date, game_id, player)
            for row in slate.stray_odds_dead_letters(stray, "stream_line_book"):
                self._dead.inc()
                yield beam.pvalue.TaggedOutput(DEAD, row)
            for row in kept:
                odds_state.add(row)
        date_iso = game_date.isoformat()
        yield beam.pvalue.TaggedOutput(TICKS, (date_iso, GameTick(
            game_id=game_id, tipoff_utc=game.tipoff_utc if game else None,
            status=game.status if game else None, now=now)))

        odds = list(odds_state.read())
        kept, stray = linebook_lib.split_player_game(odds, game_date, game_id, player)
        if stray:  # stored before the game's date was known: rejected now, once
            for row in slate.stray_odds_dead_letters(stray, "stream_line_book"):
                self._dead.inc()
                yield beam.pvalue.TaggedOutput(DEAD, row)
            odds_state.clear()
            for row in kept:
                odds_state.add(row)
        prev_close = feature_row.prev_game_closing_line if feature_row else None
        book, diagnostics = linebook_lib.build_line_book(
            kept, now, self._policy, prev_game_closing_line=prev_close, key=(game_date, game_id, player))
        decision = gate_lib.decide_player_game(
            feature_row, game_status=game.status if game else None,
            tipoff_utc=game.tipoff_utc if game else None, as_of=now,
            injury_status=gate_lib.latest_injury_status(list(injury_state.read()), now),
            run_mode=self._run_mode, policy=self._policy)
        tipoff = game.tipoff_utc if game else None
        signature = (decision, book, tuple(diagnostics), feature_row, info["context"], tipoff)
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
            if decision[0]:
                info["emitted"] = True
                self._emitted.inc()
                yield PlayerGame(
                    key=f"{key}#{seq}", game_date=game_date, game_id=game_id, player_lookup=player,
                    player_name=book.player_name, feature_row=feature_row, book=book,
                    context=info["context"], tipoff_utc=tipoff, version=seq, scored_at=now)
            elif info["emitted"]:
                info["emitted"] = False
                self._removed.inc()
                yield beam.pvalue.TaggedOutput(REMOVED, (date_iso, PlayerGameRemoved(
                    key=key, game_date=game_date, reason=decision[1], seq=seq, now=now)))

        if game is not None and game.status in ("final", "cancelled"):
            odds_state.clear()
            schedule_state.clear()
            injury_state.clear()
            info = {"closed": True}
        info_state.write(info)


# --------------------------------------------------------------------------------------------
# Scoring join: a player-game version and every expected model's raw prediction
# --------------------------------------------------------------------------------------------


class CompleteModelSetFn(beam.DoFn):
    """Stateful per emission key ``pg#n``: buffers the PlayerGame and the raw predictions of version n and
    scores it (``slate.score_player_game``) once every model eligible on its date is in.

    Elements ``(pg#n, ("pg", PlayerGame) | ("raw", (model_id, raw)))``. The first element arms a
    processing-time timer ``timeout_s`` ahead; if the set is still incomplete when it fires (an inference
    failed: its own dead letter is already written; or the player-game never arrived), ONE dead letter
    names the missing models and the state is cleared: never a consensus of some of the models, never a
    silent drop. A raw prediction arriving after its version was scored starts a new, incomplete set and
    is dead-lettered the same way (a duplicate is never scored twice).

    Worked timeline (2 models a, b; timeout 10 s of processing time):

        t=0.0  PlayerGame(A#3)  -> state {pg}, timer t=10
        t=0.2  raw(A#3, a)      -> state {pg, a}
        t=0.3  raw(A#3, b)      -> complete: 2 predictions + consensus (version 3) + Scored; state cleared
        t=0.4  PlayerGame(B#1)  -> state {pg}, timer t=10.4
        t=0.5  raw(B#1, a)      -> state {pg, a}      (model b's batch failed: dead letter from inference)
        t=10.4 timer            -> dead letter "incomplete model set for B#1 ... missing b"; state cleared

    Outputs: main Scored, ``predictions``, ``consensus``, ``dead_letters``.
    """

    def __init__(self, models: Sequence[slate.ModelInfo], date_plans: Mapping[dt.date, slate.DatePlan],
                 policy: Policy, *, timeout_s: float, clock=None):
        self._models = {m.model_id: m for m in models}
        self._eligible = {d: tuple(p.model_ids) for d, p in date_plans.items()}
        self._policy = policy
        self._timeout = float(timeout_s)
        self._clock = clock or Timestamp.now

    def setup(self):
        self._scored = slate._counter("stream_versions_scored")
        self._predictions = slate._counter("predictions")
        self._dead = slate._counter("dead_letters")

    def process(self, element, join=_JOIN_STATE, timer=_JOIN_TIMEOUT):
        key, (tag, value) = element
        state = join.read()
        if state is None:
            state = {"pg": None, "raws": {}}
            timer.set(self._clock() + self._timeout)
        if tag == "pg":
            state["pg"] = value
        else:
            model_id, raw = value
            state["raws"].setdefault(model_id, raw)
        pg: PlayerGame | None = state["pg"]
        expected = self._eligible.get(pg.game_date, ()) if pg is not None else None
        if pg is None or not expected or any(m not in state["raws"] for m in expected):
            join.write(state)
            return
        join.clear()
        out = slate.score_player_game(pg, state["raws"].items(), expected, self._models, self._policy)
        self._scored.inc()
        for pred in out.predictions:
            self._predictions.inc()
            yield beam.pvalue.TaggedOutput(PREDICTIONS, pred)
        yield beam.pvalue.TaggedOutput(CONSENSUS, out.consensus)
        yield Scored(consensus=out.consensus, player_game=pg)

    @on_timer(JOIN_TIMEOUT)
    def timeout(self, key=_KEY, join=_JOIN_STATE):
        state = join.read()
        if state is None:
            return  # scored in time
        join.clear()
        pg = state["pg"]
        got = sorted(state["raws"])
        if pg is None:
            why, missing = "no player-game for these predictions (late or duplicate)", ()
        else:
            expected = self._eligible.get(pg.game_date, ())
            why = f"not complete after {self._timeout:g} s"
            missing = tuple(m for m in expected if m not in state["raws"]) or ("<no eligible model>",)
        self._dead.inc()
        yield beam.pvalue.TaggedOutput(DEAD, slate.incomplete_dead_letter(pg, key, missing, got, why))


class ScoreOnCompleteModelSet(beam.PTransform):
    """PlayerGame versions -> predictions + consensus + Scored, each version scored only with its date's
    complete model set (RunInference through ``slate.InferRawPredictions``, then
    :class:`CompleteModelSetFn`).

    Returns: a dict ``scored``, ``predictions``, ``consensus``, ``dead_letters``.
    """

    def __init__(self, *, models, date_plans, model_handler, policy, timeout_s: float, clock=None):
        super().__init__()
        self._models, self._plans, self._handler = list(models), date_plans, model_handler
        self._policy, self._timeout, self._clock = policy, timeout_s, clock

    def expand(self, player_games):
        from pipeline.transforms import windows

        inferred = player_games | "Infer" >> slate.InferRawPredictions(
            self._models, self._plans, self._handler)
        joined = (
            (player_games | "PlayerGameByKey" >> beam.Map(lambda pg: (pg.key, ("pg", pg))),
             inferred["raw"] | "RawTagged" >> beam.MapTuple(lambda k, mr: (k, ("raw", mr))))
            | "ScoringInputs" >> beam.Flatten()
            | "ScoringWindow" >> windows.events_window()
            | "CompleteModelSet" >> beam.ParDo(CompleteModelSetFn(
                self._models, self._plans, self._policy, timeout_s=self._timeout, clock=self._clock))
            .with_outputs(PREDICTIONS, CONSENSUS, DEAD, main="scored")
        )
        dead = (inferred[DEAD] | "InferenceDeadWindow" >> windows.events_window(), joined[DEAD]) | (
            "ScoringDeadLetters" >> beam.Flatten())
        return {"scored": joined.scored, PREDICTIONS: joined[PREDICTIONS], CONSENSUS: joined[CONSENSUS],
                DEAD: dead}


# --------------------------------------------------------------------------------------------
# Per game-date best bets, debounced, with the pick lifecycle
# --------------------------------------------------------------------------------------------


class BestBetsStateFn(beam.DoFn):
    """Stateful per game date: latest consensus per player-game -> debounced best bets -> pick changes.

    Elements ``(date_iso, ("scored", Scored) | ("removed", PlayerGameRemoved) | ("tick", GameTick))``.
    Each element is appended to a bag; the first one after a recomputation arms a processing-time timer
    ``debounce_seconds`` ahead; when it fires, the latest entry per player-game (highest sequence) gives the
    candidates, the slate's ``SelectBestBetsFn`` selects, ``lifecycle.diff_picks`` diffs against the
    published picks (seeded at launch from the warehouse), and a ``DateChanges`` is emitted if anything
    changed. The bag is compacted to the latest entry per player-game.

    Worked timeline (debounce 1.0 s; times are processing time):

        t=0.00  odds move for A -> Scored(A#3) arrives  -> bag [A#3], timer armed for t=1.00
        t=0.30  odds move for B -> Scored(B#5) arrives  -> bag [A#3, B#5], timer already armed
        t=0.80  injury out for A -> Removed(A#4)        -> bag [A#3, B#5, A#4]
        t=1.00  timer fires: latest A#4 (removed), B#5 -> select over B -> diff: A's pick withdrawn
                (injury_out), B's pick updated -> one DateChanges with 2 changes; bag compacted to [A#4, B#5]
        t=1.40  odds move for C -> Scored(C#2)          -> timer armed for t=2.40 (one recomputation per
                                                           second at most, whatever the message rate)

    ``clock`` gives the processing time the timer is set from (default ``Timestamp.now``); TestStream's
    processing clock starts at 0, so tests pass :func:`zero_clock`.

    Locking: ticks carry the event-time clock; once a game's tip-off is at or before it (or the schedule
    says in progress / final), the next recomputation locks its active picks; nothing of a started game
    is ever created, updated or withdrawn again.
    """

    def __init__(self, policy: Policy, history: Mapping[str, Any], *, debounce_seconds: float,
                 published: Mapping[str, Mapping[str, Pick]] | None = None, run_id: str | None = None,
                 clock=None):
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
        self._changes = slate._counter("stream_pick_changes")
        self._dead = slate._counter("dead_letters")

    def process(self, element, entries=_DATE_ENTRIES, clock=_DATE_CLOCK, timer=_DATE_DEBOUNCE):
        _date_iso, item = element
        entries.add(item)
        state = clock.read() or {"now": None, "armed": False, "tipoffs": {}, "statuses": {}}
        tag, value = item
        t = value.now if tag in ("tick", "removed") else None
        if tag == "tick":
            if value.tipoff_utc is not None:
                state["tipoffs"][value.game_id] = value.tipoff_utc
            if value.status is not None:
                state["statuses"][value.game_id] = value.status
        if t is not None and (state["now"] is None or t > state["now"]):
            state["now"] = t
        if not state["armed"]:
            state["armed"] = True
            timer.set(self._clock() + self._debounce)
        clock.write(state)

    @on_timer(DATE_DEBOUNCE)
    def recompute(self, key=_KEY, entries=_DATE_ENTRIES, published_state=_DATE_PUBLISHED, clock=_DATE_CLOCK):
        state = clock.read() or {"now": None, "armed": False, "tipoffs": {}, "statuses": {}}
        state["armed"] = False
        clock.write(state)
        now = state["now"]
        if now is None:
            return
        self._recomputations.inc()
        latest: dict[str, tuple[int, str, Any]] = {}
        for tag, value in entries.read():
            if tag == "scored":
                pg, seq = split_key(value.player_game.key)
            elif tag == "removed":
                pg, seq = value.key, value.seq
            else:
                continue
            if pg not in latest or seq >= latest[pg][0]:
                latest[pg] = (seq, tag, value)
        entries.clear()
        for _seq, tag, value in latest.values():
            entries.add((tag, value))

        scored = [v for _s, tag, v in latest.values() if tag == "scored"]
        removed = {pg: v.reason for pg, (_s, tag, v) in latest.items() if tag == "removed"}
        rows = []
        for s in scored:
            pg, _ = split_key(s.player_game.key)
            rows.append(Scored(consensus=s.consensus, player_game=s.player_game._replace(key=pg)))
        published = published_state.read()
        if published is None:
            published = dict(self._published_seed.get(key, {}))
        try:
            picks, summary = [], None
            for out in self._select.process((key, rows), self._history):
                if isinstance(out, beam.pvalue.TaggedOutput):
                    summary = out.value
                else:
                    picks.append(out)
            picks = [slate.stamp(p, self._run_id, self._policy.version) for p in picks]
            if summary is not None:
                summary = slate.stamp(summary, self._run_id, self._policy.version)
            changes, new_latest = lifecycle.diff_picks(
                published, picks, now=now, tipoffs=state["tipoffs"], removed=removed,
                statuses=state["statuses"])
        except Exception as exc:  # noqa: BLE001 - a bad recomputation must not stop the job
            self._dead.inc()
            yield beam.pvalue.TaggedOutput(DEAD, slate.dead_letter(
                "stream", "best_bets", slate.format_exception(exc), {"game_date": key, "players": len(rows)},
                event_ts=now, game_date=dt.date.fromisoformat(key)))
            return
        published_state.write(new_latest)
        if changes:
            self._changes.inc(len(changes))
            yield DateChanges(
                game_date=dt.date.fromisoformat(key), changes=tuple(changes),
                picks=tuple(sorted(new_latest.values(), key=lambda p: (p.rank, p.pick_id))),
                filter_summary=summary, consensus=tuple(s.consensus for s in scored), now=now)


def zero_clock() -> Timestamp:
    """The processing clock of a TestStream pipeline (starts at 0): timers fire on the next advance."""
    return Timestamp(0)


# --------------------------------------------------------------------------------------------
# The composite
# --------------------------------------------------------------------------------------------


class RescorePlayerGames(beam.PTransform):
    """Stream events -> per-date pick changes and the versioned rows of every re-scored player-game.

    Args:
      policy, models, date_plans, model_handler: as for ``slate.ScorePlayers`` (date_plans give the
        eligible models per date: the complete model set of a version).
      players_by_game: game_id -> players with a feature row (routing of schedule and injury events).
      game_dates: game_id -> game_date (routing of injury reports; from the rows, never from the id).
      launch_schedule: the served dates' schedule events read at launch.
      history: graded history (``commands.common.graded_history``) for the selection.
      debounce_seconds: the best-bets debounce.
      scoring_timeout_s: how long a version may wait for its complete model set before it is
        dead-lettered (processing time; ``windows.SCORING_TIMEOUT_S`` by default).
      published: date_iso -> {pick_id: Pick} already published (the warehouse's best_bets at launch).
      run_id: stamped on picks.
      clock: processing clock of the debounce and scoring timers (tests: ``zero_clock``).
    Input: a PCollection of StreamEvent, plus ``initial``: ``(pg, StreamEvent)`` launch-time state.
    Returns: a dict: ``changes`` (DateChanges), ``player_games``, ``scored``, ``gate_decisions``,
      ``line_diagnostics``, ``predictions``, ``consensus`` (the versioned rows, not yet stamped with the
      run id), ``dead_letters``.
    """

    def __init__(self, *, policy, models, date_plans, model_handler, players_by_game, history,
                 debounce_seconds: float, published=None, run_id: str | None = None, initial=None,
                 clock=None, game_dates=None, launch_schedule=(), scoring_timeout_s: float | None = None):
        from pipeline.transforms import windows

        super().__init__()
        self._policy, self._models, self._plans = policy, list(models), date_plans
        self._handler, self._players_by_game = model_handler, players_by_game
        self._history, self._debounce, self._published = history, debounce_seconds, published
        self._run_id, self._initial, self._clock = run_id, initial, clock
        self._game_dates = dict(game_dates or {})
        self._launch_schedule = tuple(launch_schedule)
        self._timeout = windows.SCORING_TIMEOUT_S if scoring_timeout_s is None else scoring_timeout_s
        empty = [d for d, p in date_plans.items() if not p.model_ids]
        if not date_plans:
            raise ValueError("RescorePlayerGames: no streamed date")
        if empty:
            raise ValueError("every streamed date needs at least one eligible model; none on "
                             + ", ".join(map(str, sorted(empty))))

    def expand(self, events):
        from pipeline.transforms import windows

        routed = events | "RoutePlayerGames" >> beam.ParDo(
            RoutePlayerGamesFn(self._players_by_game, self._game_dates))
        if self._initial is not None:
            routed = (routed, self._initial) | "WithInitialState" >> beam.Flatten()
        state = (
            routed
            | "EventsWindow" >> windows.events_window()
            | "PlayerGameState" >> beam.ParDo(PlayerGameStateFn(
                self._policy, launch_schedule=self._launch_schedule))
            .with_outputs(REMOVED, TICKS, DEAD, GATE, DIAGNOSTICS, main="player_games")
        )
        scored = state.player_games | "ScorePlayers" >> ScoreOnCompleteModelSet(
            models=self._models, date_plans=self._plans, model_handler=self._handler, policy=self._policy,
            timeout_s=self._timeout, clock=self._clock)
        to_dates = (
            scored["scored"] | "ScoredByDate" >> beam.Map(
                lambda s: (s.consensus.game_date.isoformat(), ("scored", s))),
            state[REMOVED] | "RemovedByDate" >> beam.MapTuple(lambda d, r: (d, ("removed", r))),
            state[TICKS] | "TicksByDate" >> beam.MapTuple(lambda d, t: (d, ("tick", t))),
        ) | "DateInputs" >> beam.Flatten()
        changes = (
            to_dates
            | "BestBetsState" >> beam.ParDo(BestBetsStateFn(
                self._policy, self._history, debounce_seconds=self._debounce, published=self._published,
                run_id=self._run_id, clock=self._clock)).with_outputs(DEAD, main="changes")
        )
        dead = (state[DEAD], scored[DEAD], changes[DEAD]) | "StreamDeadLetters" >> beam.Flatten()
        return {"changes": changes.changes, "player_games": state.player_games, "scored": scored["scored"],
                GATE: state[GATE], DIAGNOSTICS: state[DIAGNOSTICS], PREDICTIONS: scored[PREDICTIONS],
                CONSENSUS: scored[CONSENSUS], "dead_letters": dead}

"""The streaming transforms: per player-game state, per game-date best bets with a debounce, lifecycle.

Shapes (``pg`` = ``"game_id|player"``)::

    StreamEvent --RoutePlayerGames--> (pg, StreamEvent)
        --PlayerGameStateFn (stateful, per pg)--> PlayerGame (key "pg#seq") when the line book / feature
                                                   row / gate outcome changed
                                              + removed:  PlayerGameRemoved (left the universe)
                                              + ticks:    GameTick (event-time clock, tip-off, status)
    PlayerGame --scoring_window--> slate.ScorePlayers (the batch transform, unchanged) --> Scored
    Scored + removed + ticks --BestBetsStateFn (stateful, per game_date, debounced)--> PickChanges

The player-game state rebuilds the line book with ``linebook.build_line_book`` at ``as_of`` = the
latest event time it has seen (payload time: snapshot / report / schedule-event time), applies
``gate.universe_exclusion`` and ``gate.gate`` (run mode ``policy.streaming_run_mode``), and emits a
PlayerGame only when what the models see changed. The date state selects with the slate's
``SelectBestBetsFn`` and diffs with ``domain.lifecycle.diff_picks``. No rule is re-implemented here.
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
from pipeline.schemas import FeatureRow, Pick
from pipeline.transforms import slate
from pipeline.transforms.slate import DEAD, PlayerGame, Scored, pg_key

REMOVED = "removed"
TICKS = "ticks"
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
    rows (``players_by_game``); a player without a feature row is never viable, so nothing is lost.
    """

    def __init__(self, players_by_game: Mapping[str, Sequence[str]]):
        self._players_by_game = {g: tuple(ps) for g, ps in players_by_game.items()}
        self._games_by_player_date: dict[tuple[str, dt.date], list[str]] = {}
        for game_id, players in self._players_by_game.items():
            game_date = dt.datetime.strptime(game_id[:8], "%Y%m%d").date()
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


def book_signature(book) -> tuple:
    """What the models and the selection read from the line book (a change here means re-score)."""
    return (book.line, book.line_book, book.opening_line, book.line_move, book.n_books,
            book.multi_book_line_std, book.prop_line_delta)


class PlayerGameStateFn(beam.DoFn):
    """Stateful per player-game: latest snapshot per book, feature row, injuries, schedule -> PlayerGame.

    State (global window): every odds snapshot of the player-game today (the line book needs the opening
    snapshot and the latest per book; a day is a few hundred snapshots), every schedule event of the game
    and injury report of the player, and ``info`` (feature row, context, event-time ``now``, emission
    sequence, last signature). On each event the line book is rebuilt at ``as_of = now`` and the gate
    applied; outputs:

    * main: a PlayerGame (key ``pg#seq``) when the line book signature (line, book, opening, move,
      n_books, std, prop_line_delta), the feature row or the gate outcome changed and the player-game is
      viable with a line;
    * ``removed``: a PlayerGameRemoved when a previously emitted player-game stops being viable (injury
      out, postponement, tip-off) or loses its line;
    * ``ticks``: ``(date_iso, GameTick)`` on every event (the date's event-time clock for locking);
    * ``dead_letters``: a line book that cannot be built.

    State is cleared when the game is final (a ``closed`` marker stays, so late events are ignored).
    """

    def __init__(self, policy: Policy, run_mode: str | None = None):
        self._policy = policy
        self._run_mode = run_mode or policy.streaming_run_mode

    def setup(self):
        self._emitted = slate._counter("stream_player_games_emitted")
        self._unchanged = slate._counter("stream_events_unchanged")
        self._removed = slate._counter("stream_player_games_removed")
        self._dead = slate._counter("dead_letters")

    def process(self, element, odds_state=_PG_ODDS, schedule_state=_PG_SCHEDULE, injury_state=_PG_INJURIES,
                info_state=_PG_INFO):
        key, ev = element
        info = info_state.read() or {"seq": 0, "signature": None, "emitted": False, "now": None,
                                     "feature_row": None, "context": None, "closed": False}
        if info["closed"]:
            return
        game_id, player = key.split("|", 1)
        if ev.kind == "odds":
            odds_state.add(ev.row)
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

        schedule = list(schedule_state.read())
        game = latest_games(schedule, now).get(game_id)
        feature_row: FeatureRow | None = info["feature_row"]
        game_date = game.game_date if game else (feature_row.game_date if feature_row else
                                                 dt.datetime.strptime(game_id[:8], "%Y%m%d").date())
        date_iso = game_date.isoformat()
        yield beam.pvalue.TaggedOutput(TICKS, (date_iso, GameTick(
            game_id=game_id, tipoff_utc=game.tipoff_utc if game else None,
            status=game.status if game else None, now=now)))

        odds = list(odds_state.read())
        prev_close = feature_row.prev_game_closing_line if feature_row else None
        try:
            book, _diagnostics = linebook_lib.build_line_book(
                odds, now, self._policy, prev_game_closing_line=prev_close, key=(game_date, game_id, player))
        except ValueError as exc:
            self._dead.inc()
            yield beam.pvalue.TaggedOutput(DEAD, slate.dead_letter(
                "odds", "stream_line_book", str(exc), [o._asdict() for o in odds[-5:]], event_ts=now,
                game_date=game_date))
            info_state.write(info)
            return
        injury = gate_lib.latest_injury_status(list(injury_state.read()), now)
        exclusion = gate_lib.universe_exclusion(
            game.status if game else None, game.tipoff_utc if game else None, now, injury, self._policy)
        if exclusion is not None:
            viable, reason = False, exclusion
        else:
            viable, reason = gate_lib.gate(feature_row, self._run_mode, self._policy)
        if viable and book.line is None:
            viable, reason = False, "no_prop_line"
        if viable and info["context"] is None:  # launch-time context not in yet (or no feature row)
            viable, reason = False, "no_player_context"

        if viable:
            signature = (reason, book_signature(book), feature_row, game.tipoff_utc)
            if signature != info["signature"] or not info["emitted"]:
                info["seq"] += 1
                info["signature"], info["emitted"] = signature, True
                self._emitted.inc()
                yield PlayerGame(
                    key=f"{key}#{info['seq']}", game_date=game_date, game_id=game_id, player_lookup=player,
                    player_name=book.player_name, feature_row=feature_row, book=book,
                    context=info["context"], tipoff_utc=game.tipoff_utc)
            else:
                self._unchanged.inc()
        elif info["emitted"]:
            info["seq"] += 1
            info["signature"], info["emitted"] = None, False
            self._removed.inc()
            yield beam.pvalue.TaggedOutput(REMOVED, (date_iso, PlayerGameRemoved(
                key=key, game_date=game_date, reason=reason, seq=info["seq"], now=now)))
        else:
            self._unchanged.inc()

        if game is not None and game.status in ("final", "cancelled"):
            odds_state.clear()
            schedule_state.clear()
            injury_state.clear()
            info = {"closed": True}
        info_state.write(info)


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
        state = clock.read() or {"now": None, "armed": False, "tipoffs": {}, "started": set()}
        tag, value = item
        t = value.now if tag in ("tick", "removed") else None
        if tag == "tick":
            if value.tipoff_utc is not None:
                state["tipoffs"][value.game_id] = value.tipoff_utc
            if value.status in ("in_progress", "final"):
                state["started"].add(value.game_id)
        if t is not None and (state["now"] is None or t > state["now"]):
            state["now"] = t
        if not state["armed"]:
            state["armed"] = True
            timer.set(self._clock() + self._debounce)
        clock.write(state)

    @on_timer(DATE_DEBOUNCE)
    def recompute(self, key=_KEY, entries=_DATE_ENTRIES, published_state=_DATE_PUBLISHED, clock=_DATE_CLOCK):
        state = clock.read() or {"now": None, "armed": False, "tipoffs": {}, "started": set()}
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
                statuses=dict.fromkeys(state["started"], "in_progress"))
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
    """Stream events -> per-date pick changes, through the slate's scoring and selection.

    Args:
      policy, models, date_plans, model_handler: as for ``slate.ScorePlayers`` (date_plans give the
        eligible models per date; every served date must have the same number of eligible models).
      players_by_game: game_id -> players with a feature row (routing of schedule and injury events).
      history: graded history (``commands.common.graded_history``) for the selection.
      debounce_seconds: the best-bets debounce.
      published: date_iso -> {pick_id: Pick} already published (the warehouse's best_bets at launch).
      run_id: stamped on picks.
      clock: processing clock of the debounce timer (tests: ``zero_clock``).
    Input: a PCollection of StreamEvent, plus ``initial``: ``(pg, StreamEvent)`` launch-time state.
    Returns: a dict: ``changes`` (DateChanges), ``player_games``, ``scored``, ``predictions``,
      ``dead_letters``.
    """

    def __init__(self, *, policy, models, date_plans, model_handler, players_by_game, history,
                 debounce_seconds: float, published=None, run_id: str | None = None, initial=None,
                 clock=None):
        super().__init__()
        self._policy, self._models, self._plans = policy, list(models), date_plans
        self._handler, self._players_by_game = model_handler, players_by_game
        self._history, self._debounce, self._published = history, debounce_seconds, published
        self._run_id, self._initial, self._clock = run_id, initial, clock
        counts = {len(p.model_ids) for p in date_plans.values()}
        if len(counts) != 1 or 0 in counts:
            raise ValueError("every streamed date needs the same, non-zero number of eligible models; got "
                             + ", ".join(f"{d}: {len(p.model_ids)}" for d, p in sorted(date_plans.items())))
        self._n_models = counts.pop()

    def expand(self, events):
        from pipeline.transforms import windows

        routed = events | "RoutePlayerGames" >> beam.ParDo(RoutePlayerGamesFn(self._players_by_game))
        if self._initial is not None:
            routed = (routed, self._initial) | "WithInitialState" >> beam.Flatten()
        state = (
            routed
            | "EventsWindow" >> windows.events_window()
            | "PlayerGameState" >> beam.ParDo(PlayerGameStateFn(self._policy))
            .with_outputs(REMOVED, TICKS, DEAD, main="player_games")
        )
        scored = (
            state.player_games
            | "ScoringWindow" >> windows.scoring_window(self._n_models)
            | "ScorePlayers" >> slate.ScorePlayers(self._models, self._plans, self._handler, self._policy)
        )
        to_dates = (
            scored["scored"] | "ScoredEventsWindow" >> windows.events_window() | "ScoredByDate" >> beam.Map(
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
        dead = (state[DEAD], scored[DEAD] | "DeadEventsWindow" >> windows.events_window(), changes[DEAD]) | (
            "StreamDeadLetters" >> beam.Flatten())
        return {"changes": changes.changes, "player_games": state.player_games, "scored": scored["scored"],
                "predictions": scored[slate.PREDICTIONS], "dead_letters": dead}

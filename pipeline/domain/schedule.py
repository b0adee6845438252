"""The schedule of a game date (domain.md sections 2, 4 and 8): game states, decision time, "started".

Shared by the launch (``pipeline/commands``), the transforms (batch and stream) and the sinks, so it lives
below all of them and imports nothing of the pipeline but ``schemas``:

* :class:`GameState`: a game as the schedule says at a time; :func:`latest_games` resolves it from the
  schedule events (the latest event at or before ``as_of``);
* :class:`DatePlan`: what one game date of a run needs (decision time, run mode, games, eligible models);
* :func:`decision_time`: ``offset_minutes`` before the date's first tip-off among games to be played;
* :func:`game_started`: THE rule for "the game has started" (the universe excludes it, a re-run keeps its
  picks, the stream locks them): the schedule says ``in_progress`` or ``final``, or the tip-off is at or
  before ``now``. A ``postponed`` or ``cancelled`` game never started (its picks are withdrawn instead).

Pure functions, no Beam, no I/O::

    games = latest_games(events, as_of)
    started = [g for g in games.values() if game_started(g.status, g.tipoff_utc, as_of)]
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import NamedTuple

from pipeline.schemas import ScheduleEvent

STARTED_STATUSES: tuple[str, ...] = ("in_progress", "final")
NOT_PLAYED_STATUSES: tuple[str, ...] = ("postponed", "cancelled")


class GameState(NamedTuple):
    """A game as the schedule says at the decision time (resolved at launch from the schedule events)."""

    game_id: str
    game_date: dt.date
    tipoff_utc: dt.datetime | None
    home_team: str
    away_team: str
    status: str
    new_game_date: dt.date | None


class DatePlan(NamedTuple):
    """What one game date of a run needs to know: its decision time and its games."""

    game_date: dt.date
    as_of: dt.datetime
    run_mode: str
    games: Mapping[str, GameState]
    model_ids: tuple[str, ...]  # models eligible for the date (leakage guard applied)


def _status(status: str | None) -> str | None:
    return status.strip().lower() if status is not None else None


def game_started(status: str | None, tipoff_utc: dt.datetime | None, now: dt.datetime) -> bool:
    """True once the game has started at ``now``: the schedule says ``in_progress`` / ``final`` (any case),
    or its tip-off is at or before ``now``. A postponed or cancelled game has not started (it is not
    played at that tip-off); an unknown status (None) is decided by the tip-off alone."""
    s = _status(status)
    if s in NOT_PLAYED_STATUSES:
        return False
    if s in STARTED_STATUSES:
        return True
    return tipoff_utc is not None and tipoff_utc <= now


def is_played(status: str | None) -> bool:
    """False for a postponed or cancelled game (any case)."""
    return _status(status) not in NOT_PLAYED_STATUSES


def latest_games(events: Iterable[ScheduleEvent], as_of: dt.datetime | None = None) -> dict[str, GameState]:
    """Each game's state from its latest schedule event (at or before ``as_of`` when given).

    Events of one game are ordered by (event time, status); a game with no event at or before ``as_of``
    is left out (not announced yet). The tip-off is the latest one announced.
    """
    by_game: dict[str, list[ScheduleEvent]] = defaultdict(list)
    for ev in events:
        by_game[ev.game_id].append(ev)
    out = {}
    for game_id, evs in by_game.items():
        evs.sort(key=lambda e: (e.event_ts, e.status))
        chosen = [e for e in evs if as_of is None or e.event_ts <= as_of]
        if not chosen:
            continue  # not announced yet at the decision time
        ev = chosen[-1]
        tipoff = next((e.tipoff_utc for e in reversed(chosen) if e.tipoff_utc is not None), None)
        out[game_id] = GameState(
            game_id=game_id,
            game_date=ev.game_date,
            tipoff_utc=tipoff,
            home_team=ev.home_team,
            away_team=ev.away_team,
            status=ev.status,
            new_game_date=ev.new_game_date,
        )
    return out


def decision_time(games: Iterable[GameState], offset_minutes: int) -> dt.datetime | None:
    """``offset_minutes`` before the date's first tip-off among games that will be played (None: no such
    game)."""
    tipoffs = [g.tipoff_utc for g in games if g.tipoff_utc is not None and is_played(g.status)]
    return (min(tipoffs) - dt.timedelta(minutes=offset_minutes)) if tipoffs else None


def started_game_ids(plan: DatePlan) -> tuple[str, ...]:
    """The games of a date plan already started at its decision time, sorted (their picks are kept)."""
    return tuple(sorted(g.game_id for g in plan.games.values()
                        if game_started(g.status, g.tipoff_utc, plan.as_of)))

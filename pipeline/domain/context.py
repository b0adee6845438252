"""Player context from box scores: the signal and filter inputs that are not in the feature row.

:func:`player_context` summarises one player's box scores of this season strictly before the game
(minutes, starter role, plus-minus streak, rest, three-point shooting, games vs the opponent, team and
opponent rest); :func:`team_last_game_dates` gives each team's latest game date, for the rest fields.
:func:`context_for_row` is the context of one feature row from the player's box scores and the teams'
game dates, and :func:`player_contexts` the same for many rows at once: the batch DoFn
(``transforms.slate.PlayerContextFn``) calls the first, the stream's launch (``commands.stream``) the
second, so both compute the same contexts.
Days of rest are calendar days since the last game (a back-to-back is 1). DNP games
(``domain.grading.is_dnp``, the one DNP rule) do not count as games played (minutes, starter, streak,
shooting, player rest); they do count for team rest.
Any field is None when its inputs are unknown. Pure functions: no Beam, no I/O.
"""

from __future__ import annotations

import bisect
import datetime as dt
import statistics
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import NamedTuple

from pipeline.domain.grading import is_dnp
from pipeline.schemas import BoxScore, FeatureRow


class PlayerContext(NamedTuple):
    games_played: int | None = None
    minutes_avg_season: float | None = None
    minutes_avg_last_3: float | None = None
    prev_game_minutes: float | None = None
    starter_last_game: bool | None = None
    neg_pm_streak: int | None = None
    days_rest: int | None = None
    fg3a_per_game: float | None = None
    fg3_pct_season: float | None = None
    fg3_pct_last_3: float | None = None
    fg3_pct_std: float | None = None
    games_vs_opponent: int | None = None
    team_days_rest: int | None = None
    opponent_days_rest: int | None = None


def _opponent(b: BoxScore) -> str | None:
    """The opponent of a box score: its column, else from game_id ``YYYYMMDD_AWAY_HOME``."""
    if getattr(b, "opponent_team_abbr", None):
        return b.opponent_team_abbr
    parts = (b.game_id or "").split("_")
    if len(parts) == 3 and b.team_abbr in parts[1:]:
        return parts[2] if parts[1] == b.team_abbr else parts[1]
    return None


def _mean(xs: list[float]) -> float | None:
    return round(sum(xs) / len(xs), 4) if xs else None


def _pct(games: Sequence[BoxScore]) -> float | None:
    att = sum(g.fg3a for g in games)
    return round(sum(g.fg3m for g in games) / att, 4) if att > 0 else None


def team_last_game_dates(box_scores: Iterable[BoxScore], before: dt.date | None = None) -> dict[str, dt.date]:
    """{team_abbr: latest game_date} over the box scores (only dates strictly before ``before`` if given)."""
    out: dict[str, dt.date] = {}
    for b in box_scores:
        if before is not None and b.game_date >= before:
            continue
        if b.team_abbr and (b.team_abbr not in out or b.game_date > out[b.team_abbr]):
            out[b.team_abbr] = b.game_date
        opp = _opponent(b)
        if opp and (opp not in out or b.game_date > out[opp]):
            out[opp] = b.game_date
    return out


def player_context(
    history: Sequence[BoxScore],
    game_date: dt.date,
    opponent_team_abbr: str | None,
    team_last_game: dict[str, dt.date],
    *,
    team_abbr: str | None = None,
) -> PlayerContext:
    """The context of one player for a game.

    Args:
      history: the player's BoxScore rows of this season strictly before ``game_date`` (caller filters;
        rows on or after ``game_date`` raise ValueError, so a leak cannot pass unnoticed).
      game_date: the game's date.
      opponent_team_abbr: the opponent, for games_vs_opponent and opponent rest.
      team_last_game: {team: last game date before game_date} (:func:`team_last_game_dates`).
      team_abbr: the player's team (default: the team of his latest box score).
    """
    rows = sorted(history, key=lambda b: (b.game_date, b.game_id))
    late = [b for b in rows if b.game_date >= game_date]
    if late:
        raise ValueError(f"player_context: history of {late[0].player_lookup} has a game on "
                         f"{late[0].game_date}, not before {game_date}")
    played = [b for b in rows if not is_dnp(b)]
    with_min = [b for b in played if b.minutes is not None]
    last = played[-1] if played else None
    if team_abbr is None and rows:
        team_abbr = rows[-1].team_abbr

    streak = 0
    for b in reversed(played):
        if b.plus_minus is not None and b.plus_minus < 0:
            streak += 1
        else:
            break

    shooting = [b for b in played if b.fg3a is not None and b.fg3m is not None]
    per_game_pct = [b.fg3m / b.fg3a for b in shooting if b.fg3a > 0]

    def rest(team: str | None) -> int | None:
        last_date = team_last_game.get(team) if team else None
        return (game_date - last_date).days if last_date is not None and last_date < game_date else None

    return PlayerContext(
        games_played=len(played),
        minutes_avg_season=_mean([b.minutes for b in with_min]),
        minutes_avg_last_3=_mean([b.minutes for b in with_min[-3:]]),
        prev_game_minutes=last.minutes if last is not None else None,
        starter_last_game=bool(last.starter) if last is not None else None,
        neg_pm_streak=streak if played else None,
        days_rest=(game_date - last.game_date).days if last is not None else None,
        fg3a_per_game=_mean([b.fg3a for b in shooting]),
        fg3_pct_season=_pct(shooting),
        fg3_pct_last_3=_pct(shooting[-3:]),
        fg3_pct_std=round(statistics.pstdev(per_game_pct), 4) if len(per_game_pct) >= 2 else None,
        games_vs_opponent=(sum(1 for b in played if _opponent(b) == opponent_team_abbr)
                           if opponent_team_abbr else None),
        team_days_rest=rest(team_abbr),
        opponent_days_rest=rest(opponent_team_abbr),
    )


def team_game_dates(box_scores: Iterable[BoxScore]) -> dict[str, tuple[dt.date, ...]]:
    """{team_abbr: its sorted game dates} from box scores (DNP rows count: the team played)."""
    dates: dict[str, set[dt.date]] = defaultdict(set)
    for b in box_scores:
        if b.team_abbr:
            dates[b.team_abbr].add(b.game_date)
    return {t: tuple(sorted(ds)) for t, ds in dates.items()}


def context_for_row(
    row: FeatureRow, box_scores: Iterable[BoxScore], team_dates: Mapping[str, Sequence[dt.date]]
) -> PlayerContext:
    """The context of one feature row: the player's box scores strictly before ``row.game_date`` (any
    order, later ones and other players' are ignored), the team and opponent rest from ``team_dates``
    (:func:`team_game_dates`)."""
    history = [b for b in box_scores if b.player_lookup == row.player_lookup and b.game_date < row.game_date]
    team_last = {}
    for team in (row.team_abbr, row.opponent_team_abbr):
        dates = team_dates.get(team, ()) if team else ()
        i = bisect.bisect_left(dates, row.game_date)
        if i > 0:
            team_last[team] = dates[i - 1]
    return player_context(history, row.game_date, row.opponent_team_abbr, team_last, team_abbr=row.team_abbr)


def player_contexts(
    features: Iterable[FeatureRow], box_scores: Iterable[BoxScore]
) -> dict[tuple[str, str], PlayerContext]:
    """{(game_id, player_lookup): context} for every feature row (:func:`context_for_row`), reading the
    box scores once."""
    box_scores = list(box_scores)
    teams = team_game_dates(box_scores)
    by_player: dict[str, list[BoxScore]] = defaultdict(list)
    for b in box_scores:
        by_player[b.player_lookup].append(b)
    return {(r.game_id, r.player_lookup): context_for_row(r, by_player.get(r.player_lookup, ()), teams)
            for r in features}

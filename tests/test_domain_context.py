"""Tests for pipeline.domain.context: box-score summaries used by signals and filters."""

import datetime as dt

import pytest

from pipeline.domain.context import PlayerContext, player_context, team_last_game_dates
from pipeline.schemas import BoxScore

GAME = dt.date(2026, 2, 22)


def box(day, minutes=30.0, pm=1.0, starter=True, dnp=False, opp="BOS", fg3a=5.0, fg3m=2.0, team="LAL"):
    d = GAME - dt.timedelta(days=day)
    gid = f"{d:%Y%m%d}_{team}_{opp}"
    return BoxScore("p", gid, d, team, 20.0 if not dnp else None, minutes if not dnp else None, dnp, starter,
                    pm if not dnp else None, fg3a, fg3m)


def test_minutes_starter_streak_and_rest():
    hist = [box(9, 30, pm=5), box(7, 32, pm=-1), box(5, 34, pm=-2), box(4, 36, pm=-3, starter=False),
            box(3, dnp=True), box(2, 38, pm=-4, starter=False)]
    last = {"LAL": GAME - dt.timedelta(days=1), "BOS": GAME - dt.timedelta(days=3)}
    ctx = player_context(hist, GAME, "BOS", last)
    assert ctx.games_played == 5
    assert ctx.minutes_avg_season == 34.0
    assert ctx.minutes_avg_last_3 == 36.0
    assert ctx.prev_game_minutes == 38.0
    assert ctx.starter_last_game is False
    assert ctx.neg_pm_streak == 4  # the DNP does not break the streak
    assert ctx.days_rest == 2
    assert (ctx.team_days_rest, ctx.opponent_days_rest) == (1, 3)


def test_neg_pm_streak_breaks_on_zero_or_missing():
    hist = [box(5, pm=-1), box(4, pm=0), box(3, pm=-2), box(2, pm=-1), box(1, pm=-3)]
    assert player_context(hist, GAME, "BOS", {}).neg_pm_streak == 3
    hist = [box(3, pm=-1), box(2, pm=None), box(1, pm=-3)]
    assert player_context(hist, GAME, "BOS", {}).neg_pm_streak == 1


def test_three_point_shooting():
    hist = [box(6, fg3a=5, fg3m=3), box(5, fg3a=5, fg3m=3), box(4, fg3a=5, fg3m=3),
            box(3, fg3a=4, fg3m=0), box(2, fg3a=4, fg3m=1), box(1, fg3a=4, fg3m=0)]
    ctx = player_context(hist, GAME, "NYK", {})
    assert ctx.fg3a_per_game == 4.5
    assert ctx.fg3_pct_season == pytest.approx(10 / 27, abs=1e-4)
    assert ctx.fg3_pct_last_3 == pytest.approx(1 / 12, abs=1e-4)
    assert ctx.fg3_pct_std is not None and ctx.fg3_pct_std > 0.2
    assert ctx.games_vs_opponent == 0


def test_games_vs_opponent_from_game_id_either_side():
    hist = [box(6, opp="BOS"), box(5, opp="NYK"), box(4, opp="BOS", dnp=True)]
    home = BoxScore("p", f"{GAME - dt.timedelta(days=3):%Y%m%d}_BOS_LAL", GAME - dt.timedelta(days=3), "LAL",
                    20.0, 30.0, False, True, 1.0)
    ctx = player_context(hist + [home], GAME, "BOS", {})
    assert ctx.games_vs_opponent == 2  # DNP does not count


def test_empty_history_is_all_unknown():
    ctx = player_context([], GAME, "BOS", {})
    assert ctx == PlayerContext(games_played=0, games_vs_opponent=0)
    assert ctx.minutes_avg_season is None and ctx.neg_pm_streak is None and ctx.days_rest is None


def test_missing_shooting_columns_leave_fields_unknown():
    ctx = player_context([box(2, fg3a=None, fg3m=None)], GAME, "BOS", {})
    assert (ctx.fg3a_per_game, ctx.fg3_pct_season, ctx.fg3_pct_std) == (None, None, None)


def test_history_on_or_after_the_game_is_rejected():
    with pytest.raises(ValueError):
        player_context([box(0)], GAME, "BOS", {})


def test_team_last_game_dates_both_teams_and_before():
    scores = [box(3, opp="BOS"), box(1, opp="NYK"), box(0, opp="MIA")]
    out = team_last_game_dates(scores, before=GAME)
    assert out == {"LAL": GAME - dt.timedelta(days=1), "NYK": GAME - dt.timedelta(days=1),
                   "BOS": GAME - dt.timedelta(days=3)}
    assert team_last_game_dates(scores)["MIA"] == GAME

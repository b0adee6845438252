"""Tests for sim.features on the cached full season: the 55 columns, point-in-time history features
recomputed from prior box scores on a random sample, quality fields and the gate over the season, and
the raw injury reports the features read (issue 2, domain.md sections 2, 4, 5)."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pandas as pd
import pytest

from pipeline.schemas import FEATURE_INDEX, FEATURE_NAMES, REQUIRED_FEATURE_INDICES
from sim import features as SF
from tests.test_sim_league import ET, load_kind

QUALITY_COLS = (
    "feature_quality_score",
    "quality_alert_level",
    "matchup_quality_pct",
    "required_default_count",
    "default_feature_indices",
)


@pytest.fixture(scope="module")
def feats() -> pd.DataFrame:
    return load_kind("features")


@pytest.fixture(scope="module")
def viable(feats) -> pd.Series:
    """The quality gate of domain.md section 4 in FIRST mode (threshold 85)."""
    return (
        (feats["quality_alert_level"] != "red")
        & (feats["matchup_quality_pct"] >= 50)
        & (feats["required_default_count"] == 0)
        & (feats["feature_quality_score"] >= 85)
    )


def test_all_55_feature_columns_and_quality_fields(feats):
    assert len(FEATURE_NAMES) == 55
    for c in ("player_lookup", "game_id", "game_date", "team_abbr", "opponent_team_abbr", "feature_version"):
        assert c in feats.columns
    assert [c for c in feats.columns if c in FEATURE_INDEX] == list(FEATURE_NAMES)
    for c in QUALITY_COLS:
        assert c in feats.columns
    assert (feats["feature_version"] == SF.FEATURE_VERSION).all()
    # every column is populated for part of the season (no dead feature); no playoff games in it
    for name in FEATURE_NAMES:
        assert feats[name].notna().any(), name
    assert (feats["playoff_game"] == 0.0).all()


def _recompute(row, hist: pd.DataFrame, team_dates: dict[str, list[dt.date]]) -> dict[str, float | None]:
    """History features of one feature row from the player's box scores strictly before the game date."""
    d = row.game_date
    prior = hist[hist["game_date"] < d] if hist is not None else hist
    n_prior = 0 if prior is None else len(prior)
    played = prior[~prior["is_dnp"]] if n_prior else None
    pts = [] if played is None else played["points"].tolist()
    mins = [] if played is None else played["minutes"].tolist()
    dates = [] if played is None else played["game_date"].tolist()
    n = len(pts)
    last7 = [i for i, gd in enumerate(dates) if (d - gd).days <= 7]
    prev = [x for x in team_dates[row.team_abbr] if x < d]
    rest = (d - prev[-1]).days if prev else None
    std10 = None
    if n >= 3:
        mu = sum(pts[-10:]) / len(pts[-10:])
        std10 = math.sqrt(sum((p - mu) ** 2 for p in pts[-10:]) / len(pts[-10:]))
    vs = [] if played is None else played[played["opponent_team_abbr"] == row.opponent_team_abbr]
    return {
        "points_avg_last_3": sum(pts[-3:]) / len(pts[-3:]) if n else None,
        "points_avg_last_5": sum(pts[-5:]) / len(pts[-5:]) if n else SF.DEFAULTS[0],
        "points_avg_last_10": sum(pts[-10:]) / len(pts[-10:]) if n else SF.DEFAULTS[1],
        "points_avg_season": sum(pts) / n if n else SF.DEFAULTS[2],
        "points_std_last_10": std10 if n >= 3 else SF.DEFAULTS[3],
        "minutes_avg_last_10": sum(mins[-10:]) / len(mins[-10:]) if n else SF.DEFAULTS[31],
        "games_in_last_7_days": float(len(last7)),
        "minutes_load_last_7d": float(sum(mins[i] for i in last7)),
        "days_rest": None if rest is None else float(rest),
        "back_to_back": 1.0 if rest == 1 else 0.0,
        "dnp_rate": float(prior["is_dnp"].sum()) / n_prior if n_prior else SF.DEFAULTS[33],
        "games_vs_opponent": float(len(vs)),
        "home_away": 1.0 if row.game_id.endswith("_" + row.team_abbr) else 0.0,
        "_n_played": n,
    }


def test_history_features_are_point_in_time_on_a_random_sample(feats):
    """200 random rows: recomputed from box scores strictly before the game date, no leak."""
    box = load_kind("box_scores").sort_values(["game_date", "game_id"], kind="stable")
    by_player = {k: g for k, g in box.groupby("player_lookup", sort=False)}
    team_dates = {
        t: sorted(set(g["game_date"])) for t, g in box[["team_abbr", "game_date"]].groupby("team_abbr")
    }
    sample = feats.sample(n=200, random_state=2026)
    n_history = n_fresh = 0
    for row in sample.itertuples(index=False):
        want = _recompute(row, by_player.get(row.player_lookup), team_dates)
        n = want.pop("_n_played")
        n_history += n >= 10
        n_fresh += n < 3
        for name, value in want.items():
            got = getattr(row, name)
            if value is None:
                assert math.isnan(got), (row.player_lookup, row.game_id, name, got)
            else:
                key = (row.player_lookup, row.game_id, name, got, value)
                assert got == pytest.approx(value, abs=1e-9), key
        defaults = set(int(i) for i in row.default_feature_indices)
        if n == 0:
            assert {0, 1, 2, 3, 31} <= defaults, (row.player_lookup, row.game_id)
        elif n < 3:
            assert 3 in defaults and not {0, 1, 2, 31} & defaults
        else:
            assert not {0, 1, 2, 3, 31} & defaults
    assert n_history >= 100


def test_first_game_rows_use_defaults_not_future_games(feats):
    """The first row of each player uses league defaults: nothing from his own later games leaks in."""
    first = feats.sort_values("game_date", kind="stable").drop_duplicates("player_lookup")
    assert len(first) >= 450
    for name in ("points_avg_last_5", "points_avg_last_10", "points_avg_season"):
        assert (first[name] == SF.DEFAULTS[FEATURE_INDEX[name]]).all(), name
    assert first["points_avg_last_3"].isna().all() and (first["games_in_last_7_days"] == 0).all()
    assert (first["required_default_count"] > 0).all() and (first["quality_alert_level"] != "green").all()


def test_quality_fields_in_range_and_consistent(feats):
    assert feats["feature_quality_score"].between(0, 100).all()
    assert feats["matchup_quality_pct"].between(0, 100).all()
    assert set(feats["quality_alert_level"]) == {"green", "yellow", "red"}
    required = set(REQUIRED_FEATURE_INDICES)
    n_req = feats["default_feature_indices"].map(lambda ix: sum(1 for i in ix if int(i) in required))
    assert (n_req == feats["required_default_count"]).all()
    assert feats["default_feature_indices"].map(lambda ix: list(ix) == sorted(ix)).all()
    assert (feats.loc[feats["required_default_count"] > 0, "quality_alert_level"] != "green").all()
    # required features are never missing (defaulted instead), except the shot-zone features 18-20
    for i in sorted(required - {18, 19, 20}):
        assert feats[FEATURE_NAMES[i]].notna().all(), FEATURE_NAMES[i]
    for i in (18, 19, 20):
        assert feats[FEATURE_NAMES[i]].isna().any()
    # the market features are NaN exactly when there is no line
    no_line = feats["has_vegas_line"] == 0.0
    assert set(feats["has_vegas_line"]) == {0.0, 1.0}
    for name in ("vegas_points_line", "vegas_opening_line", "vegas_line_move"):
        assert feats.loc[no_line, name].isna().all() and feats.loc[~no_line, name].notna().all(), name
    assert feats.loc[no_line, "line_vs_season_avg"].isna().all()
    # line_vs_season_avg = line - season average, when the player has a season average (not a default)
    has_avg = ~feats["default_feature_indices"].map(lambda ix: 2 in set(int(i) for i in ix))
    lined = feats[~no_line & has_avg]
    diff = lined["vegas_points_line"] - lined["points_avg_season"]
    assert np.allclose(lined["line_vs_season_avg"], diff, atol=1e-9)
    move = feats["vegas_points_line"] - feats["vegas_opening_line"]
    assert (feats["vegas_line_move"] - move).abs().max() < 1e-9


def test_early_season_and_new_players_fail_the_gate_more_often(feats, viable):
    d = pd.to_datetime(feats["game_date"])
    early = d < pd.Timestamp("2025-11-04")
    mid = d.dt.month.isin([12, 1, 2, 3])
    assert viable[early].mean() + 0.15 < viable[mid].mean(), (viable[early].mean(), viable[mid].mean())
    # players who joined mid-season (signings, trades keep their history): their first games fail more
    first = feats.groupby("player_lookup")["game_date"].transform("min")
    nth = feats.sort_values("game_date", kind="stable").groupby("player_lookup").cumcount()
    new = mid & (pd.to_datetime(first) > pd.Timestamp("2025-11-15")) & (nth.reindex(feats.index) < 5)
    assert new.sum() >= 10  # a few signings a season, first 5 games each
    assert viable[new].mean() + 0.15 < viable[mid].mean(), (viable[new].mean(), viable[mid].mean())


def test_a_typical_date_has_30_to_60_percent_viable_players(feats, viable):
    mid = pd.to_datetime(feats["game_date"]).dt.month.isin([12, 1, 2, 3])
    per_date = viable[mid].groupby(feats.loc[mid, "game_date"]).mean()
    assert len(per_date) >= 90
    assert 0.30 <= per_date.median() <= 0.60, per_date.describe()
    assert per_date.between(0.30, 0.60).mean() >= 0.7, per_date.describe()


def test_raw_injury_statuses_mixed_case_with_late_scratches(feats):
    inj = load_kind("injuries")
    status = inj["status"]
    lower = status.str.lower()
    assert set(lower) <= {"out", "doubtful", "questionable", "probable", "available"}
    assert {"out", "doubtful", "questionable", "probable"} <= set(lower)
    for st in ("out", "doubtful", "questionable", "probable"):
        assert status[lower == st].nunique() >= 2, st  # the raw data mixes cases
    assert (status != lower).any() and (status == lower).any()
    # every report is about a rostered player of a game that date, filed before its tip-off
    sched = load_kind("schedule")
    tip = sched.sort_values("event_ts").groupby("game_id")["tipoff_utc"].last()
    j = inj.merge(feats[["player_lookup", "game_date", "game_id"]], on=["player_lookup", "game_date"])
    assert len(j) == len(inj)
    lead = j["game_id"].map(tip) - j["report_ts"]
    assert (lead > pd.Timedelta(0)).all() and (lead < pd.Timedelta(hours=30)).all()
    local_day = j["report_ts"].dt.tz_convert(ET).dt.date
    assert (local_day >= j["game_date"] - dt.timedelta(days=1)).all()
    # late scratches: 'out' within the last hour before tip-off
    late_out = (j["status"].str.lower() == "out") & (lead <= pd.Timedelta(hours=1))
    assert late_out.sum() >= 20
    # a player ruled out at the decision time is visible to star_teammates_out: it is used somewhere
    assert (feats["star_teammates_out"] > 0).any()

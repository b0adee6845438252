"""Tests for sim.season: the in-process API, determinism, point-in-time features, realism bands."""

from __future__ import annotations

import datetime as dt
import filecmp
import math

import pytest

import sim
from pipeline.domain.linebook import build_line_book
from pipeline.policy import Policy
from pipeline.schemas import FEATURE_INDEX, BoxScore, FeatureRow, OddsSnapshot
from sim.realism import realism_report

TEAMS = ("LAL", "BOS", "DEN", "MIA", "NYK", "PHX")


@pytest.fixture(scope="module")
def small():
    """Six teams from the season start through mid-January (history and window in one run)."""
    return sim.simulate(seed=11, teams=TEAMS, days=85)


def test_small_api_returns_typed_rows_in_window(small):
    assert small.features and isinstance(small.features[0], FeatureRow)
    assert isinstance(small.odds[0], OddsSnapshot) and isinstance(small.box_scores[0], BoxScore)
    assert len(small.features[0].features) == 55
    window = sim.simulate(seed=11, teams=("LAL", "BOS", "DEN", "MIA"), start="2026-01-05", days=10)
    dates = {r.game_date for r in window.box_scores}
    assert dates and min(dates) >= dt.date(2026, 1, 5) and max(dates) <= dt.date(2026, 1, 14)
    assert {r.team_abbr for r in small.box_scores} <= set(TEAMS)
    assert small.df("odds")["book"].nunique() >= 8
    # every rostered player of a game has a feature row (box scores list DNPs too)
    fkeys = {(r.player_lookup, r.game_id) for r in small.features}
    assert {(r.player_lookup, r.game_id) for r in small.box_scores} <= fkeys


def test_same_seed_writes_byte_identical_files(tmp_path):
    a = sim.simulate(seed=3, teams=("LAL", "BOS", "DEN", "MIA"), start="2025-12-01", days=5)
    b = sim.simulate(seed=3, teams=("LAL", "BOS", "DEN", "MIA"), start="2025-12-01", days=5)
    a.write(tmp_path / "a")
    b.write(tmp_path / "b")
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file())
    assert len(files) > 10
    for f in files:
        assert filecmp.cmp(tmp_path / "a" / f, tmp_path / "b" / f, shallow=False), f
    c = sim.simulate(seed=4, teams=("LAL", "BOS", "DEN", "MIA"), start="2025-12-01", days=5)
    assert not c.df("box_scores")["points"].equals(a.df("box_scores")["points"])


def test_features_use_prior_box_scores_only(small):
    """Recomputes history features from box scores strictly before the game date: no leak."""
    box = small.box_scores
    by_player: dict[str, list[BoxScore]] = {}
    for r in sorted(box, key=lambda r: r.game_date):
        by_player.setdefault(r.player_lookup, []).append(r)
    checked = 0
    for fr in small.features[::7]:
        prior = [r for r in by_player.get(fr.player_lookup, []) if r.game_date < fr.game_date]
        played = [r for r in prior if not r.is_dnp]
        if len(played) < 3:
            continue
        pts = [r.points for r in played]
        f = fr.features
        assert f[FEATURE_INDEX["points_avg_season"]] == pytest.approx(sum(pts) / len(pts))
        assert f[FEATURE_INDEX["points_avg_last_5"]] == pytest.approx(sum(pts[-5:]) / len(pts[-5:]))
        mins = [r.minutes for r in played][-10:]
        assert f[FEATURE_INDEX["minutes_avg_last_10"]] == pytest.approx(sum(mins) / len(mins))
        vs = [r for r in played if r.opponent_team_abbr == fr.opponent_team_abbr]
        assert f[FEATURE_INDEX["games_vs_opponent"]] == len(vs)
        assert f[FEATURE_INDEX["dnp_rate"]] == pytest.approx(sum(r.is_dnp for r in prior) / len(prior))
        checked += 1
    assert checked > 30


def test_market_features_follow_line_book_rule(small):
    """vegas_points_line == the pipeline's line book (odds, decision time); None and has_vegas_line 0
    without a line."""
    odds_by = {}
    for o in small.odds:
        odds_by.setdefault((o.player_lookup, o.game_id), []).append(o)
    n_line = n_none = 0
    for fr in small.features[::5]:
        as_of = dt.datetime.fromisoformat(small.meta["decision_ts"][fr.game_date.isoformat()])
        mv, _ = build_line_book(odds_by.get((fr.player_lookup, fr.game_id), []), as_of, Policy(),
                                key=(fr.game_date, fr.game_id, fr.player_lookup))
        f = fr.features
        if mv.line is None:
            n_none += 1
            assert f[FEATURE_INDEX["has_vegas_line"]] == 0.0 and f[FEATURE_INDEX["vegas_points_line"]] is None
        else:
            n_line += 1
            assert f[FEATURE_INDEX["vegas_points_line"]] == mv.line
            assert f[FEATURE_INDEX["vegas_opening_line"]] == mv.opening_line
            assert f[FEATURE_INDEX["multi_book_line_std"]] == mv.multi_book_line_std
    assert n_line > 20 and n_none > 20


def test_quality_fields_and_viability(small):
    df = small.df("features")
    assert set(df["quality_alert_level"]) <= {"green", "yellow", "red"}
    assert df["feature_quality_score"].between(0, 100).all()
    viable = (
        (df["quality_alert_level"] != "red")
        & (df["matchup_quality_pct"] >= 50)
        & (df["required_default_count"] == 0)
        & (df["feature_quality_score"] >= 85)
    )
    assert 0.25 <= viable.mean() <= 0.65
    assert all(math.isnan(x) or x >= 0 for x in df["required_default_count"])


def test_realism_bands_on_small_season(small):
    rep = realism_report(small)
    for key in (
        "line_mae",
        "over_hit_rate",
        "mean_points_lined",
        "share_rostered_with_line",
        "share_std_le_1",
    ):
        assert rep[key]["pass"], (key, rep[key])


def test_write_and_read_back(tmp_path):
    sim_small = sim.simulate(seed=5, teams=("LAL", "BOS", "DEN", "MIA"), start="2026-01-05", days=3)
    out = sim_small.write(tmp_path / "s")
    back = sim.read_season(out)
    assert len(back.frames["odds"]) == len(sim_small.frames["odds"])
    assert (out / "manifest.json").exists()
    assert list((out / "features").glob("game_date=2026-01-0*/part-00000.parquet"))
    assert list((out / "box_scores").glob("game_date=*/part-00000.jsonl"))

"""Tests for pipeline.domain.selection: every filter and signal boundary, ranking, ultra, picks, summary."""

import datetime as dt
import json

import pytest

from pipeline.domain.context import PlayerContext
from pipeline.domain.selection import (
    FILTER_NAMES,
    SIGNAL_TAGS,
    Candidate,
    apply_filters,
    evaluate_signals,
    filter_audit,
    pick_angles,
    pick_id,
    select_best_bets,
    ultra,
    ultra_public_gate,
)
from pipeline.policy import Policy
from pipeline.schemas import Consensus, FeatureRow, LineBook

P = Policy()
D = dt.date(2026, 2, 22)
TS = dt.datetime(2026, 2, 22, 21, 0, tzinfo=dt.UTC)
TIP = dt.datetime(2026, 2, 23, 0, 30, tzinfo=dt.UTC)


def cand(edge=6.0, player="p", line=24.5, fam=None, agreement=1.0, conf=0.85, fqs=90.0, delta=None,
         std=0.5, n_books=3, move=0.0, graded=None, state="HEALTHY", team="LAL", b2b=0.0, games_vs=2,
         **ctx) -> Candidate:
    fam = fam if fam is not None else {"v12_mae": edge, "v9_mae": edge}
    direction = "OVER" if edge > 0 else "UNDER" if edge < 0 else None
    game_id = f"20260222_{team}_BOS"
    cons = Consensus(D, game_id, player, line, "draftkings", TS, edge, line + edge, direction, len(fam), 3,
                     agreement, 0.5, "m1", edge, json.dumps(fam, sort_keys=True), ("m1", "m2", "m3"), conf,
                     "median_of_families", fqs, team, "BOS")
    book = LineBook(D, game_id, player, "Player", line, "draftkings", "odds_api", TS, -110, -110, 0,
                    line - move, move, n_books, std, line - 1, line + 1, delta)
    feats = [10.0] * 55
    feats[16] = b2b
    feats[30] = None  # games_vs_opponent comes from the context unless it is unknown
    row = FeatureRow(player, game_id, D, team, "BOS", "v2", tuple(feats), fqs, "green", 90.0, 0, ())
    base = dict(games_played=40, minutes_avg_season=30.0, minutes_avg_last_3=30.0, prev_game_minutes=30.0,
                starter_last_game=True, neg_pm_streak=0, days_rest=1, fg3a_per_game=2.0, fg3_pct_season=0.35,
                fg3_pct_last_3=0.35, fg3_pct_std=0.1, games_vs_opponent=games_vs, team_days_rest=1,
                opponent_days_rest=1)
    base.update(ctx)
    return Candidate(cons, book, row, PlayerContext(**base), "Player", TIP, graded, state)


def first_fail(c, policy=P):
    return apply_filters(c, evaluate_signals(c, policy), policy)


def sig(c, tag, policy=P):
    return next(s for s in evaluate_signals(c, policy) if s.tag == tag)


def test_baseline_candidate_passes_everything():
    assert first_fail(cand()) is None
    assert first_fail(cand(edge=-6.0)) is None


# ---- filters, in order, both sides of every threshold ------------------------------------------------


@pytest.mark.parametrize("graded, fails", [
    (None, False), ((4, 6), False),  # exactly 40 % on 10 graded passes
    ((9, 14), True),  # 39.1 %
    ((3, 5), True),  # 8 graded, 37.5 %
    ((0, 7), False),  # 7 graded never blacklists
    ((0, 0), False),
])
def test_blacklist(graded, fails):
    assert (first_fail(cand(graded=graded)) == "blacklist") is fails


@pytest.mark.parametrize("edge, fails", [(5.0, False), (-5.0, False), (4.99, True), (-4.99, True)])
def test_edge_floor(edge, fails):
    assert (first_fail(cand(edge=edge)) == "edge_floor") is fails


@pytest.mark.parametrize("edge, ref, fails", [
    (-7.0, -6.5, True), (-6.99, -6.5, False), (-7.0, -7.0, False), (-8.0, -7.5, False), (-7.5, None, True),
    (7.5, 2.0, False),  # OVER is never capped
])
def test_under_edge_7plus(edge, ref, fails):
    fam = {"v9_mae": edge} if ref is None else {"v12_mae": ref, "v9_mae": edge}
    assert (first_fail(cand(edge=edge, fam=fam)) == "under_edge_7plus") is fails


@pytest.mark.parametrize("games, fails", [(6, True), (5, False), (None, False)])
def test_familiar_matchup(games, fails):
    assert (first_fail(cand(games_vs=games)) == "familiar_matchup") is fails


def test_familiar_matchup_falls_back_to_the_feature():
    c = cand(games_vs=None)
    feats = tuple(6.0 if i == 30 else v for i, v in enumerate(c.feature_row.features))
    c = c._replace(feature_row=c.feature_row._replace(features=feats))
    assert first_fail(c) == "familiar_matchup"


@pytest.mark.parametrize("fqs, fails", [(85.0, False), (84.9, True)])
def test_quality_floor(fqs, fails):
    assert (first_fail(cand(fqs=fqs)) == "quality_floor") is fails


@pytest.mark.parametrize("edge, line, fails", [(-6.0, 12.0, False), (-6.0, 11.5, True), (6.0, 11.5, False)])
def test_bench_under_line(edge, line, fails):
    assert (first_fail(cand(edge=edge, line=line)) == "bench_under") is fails


@pytest.mark.parametrize("edge, delta, failure", [
    (-6.0, 2.0, "line_jumped_under"), (-6.0, 1.9, None),
    (-6.0, -2.0, "line_dropped_under"), (-6.0, -1.9, None),
    (6.0, 2.0, None), (6.0, -2.0, None), (-6.0, None, None),
])
def test_prop_line_delta_filters(edge, delta, failure):
    assert first_fail(cand(edge=edge, delta=delta)) == failure


@pytest.mark.parametrize("edge, streak, fails", [(-6.0, 3, True), (-6.0, 2, False), (6.0, 5, False),
                                                 (-6.0, None, False)])
def test_neg_pm_streak(edge, streak, fails):
    assert (first_fail(cand(edge=edge, neg_pm_streak=streak)) == "neg_pm_streak") is fails


def test_signal_count_two_passes_one_fails():
    c = cand(edge=6.0, conf=0.89)  # 0.89 is in the excluded band: no edge_spread_optimal
    assert sum(s.qualifies for s in evaluate_signals(c, P)) == 2  # model_health + high_edge
    assert first_fail(c) is None
    low = Policy(edge_floor=3.0)
    assert first_fail(cand(edge=4.0), low) == "signal_count"  # model_health only
    assert first_fail(cand(edge=6.0, conf=0.89), Policy(min_signals=3)) == "signal_count"


EDGE_GRID = [round(5.0 + 0.05 * i, 2) for i in range(201)]  # 5.0 .. 15.0


def _bare(edge, policy=P):
    """A candidate whose only possible signals are model_health and high_edge (no context, confidence in
    the excluded band so no edge_spread_optimal, no book disagreement)."""
    c = cand(edge=edge, conf=0.89)
    return c._replace(context=PlayerContext())


def _signal_count_passes(c, policy=P):
    audit = filter_audit(c, evaluate_signals(c, policy), policy)
    return {a["filter"]: a["passed"] for a in audit}


def test_signal_count_never_rejects_by_default_past_the_edge_floor():
    """With the domain.md defaults, signal_count cannot reject a candidate that passed edge_floor.

    Proof: model_health always qualifies (1 signal); edge_floor passes iff |edge| >= edge_floor (5.0) and
    high_edge qualifies iff |edge| >= high_edge (5.0), so every candidate past edge_floor has >= 2 signals
    = min_signals, and no signal is excluded from the count. The premises are the policy's defaults, and
    the grid below checks the conclusion on the weakest possible candidate (no other signal at all).
    """
    assert P.high_edge <= P.edge_floor and P.min_signals <= 2 and P.signal_count_excludes == ()
    for edge in EDGE_GRID + [-e for e in EDGE_GRID] + [4.99, -4.99]:
        passed = _signal_count_passes(_bare(edge))
        if passed["edge_floor"]:
            assert passed["signal_count"], edge
    # The check can fail: with high_edge above the floor the same grid finds candidates it rejects.
    stricter = Policy(high_edge=5.5)
    rejected = [e for e in EDGE_GRID
                if not _signal_count_passes(_bare(e, stricter), stricter)["signal_count"]]
    assert rejected and min(rejected) == 5.0 and max(rejected) == 5.45


def test_signal_count_excludes_makes_the_filter_bite():
    policy = Policy(signal_count_excludes=("model_health", "high_edge"))
    c = cand(edge=6.0, conf=0.89)  # only model_health and high_edge qualify
    assert {s.tag for s in evaluate_signals(c, policy) if s.qualifies} == {"model_health", "high_edge"}
    assert first_fail(c) is None  # default: passes
    assert first_fail(c, policy) == "signal_count"
    audit = {a["filter"]: a for a in filter_audit(c, evaluate_signals(c, policy), policy)}
    assert (audit["signal_count"]["value"], audit["signal_count"]["threshold"]) == (0, 2)
    # Two other signals are enough again: edge_spread_optimal + combo_he_ms (+ combo_3way).
    strong = cand(edge=6.0, player="q", conf=0.80, minutes_avg_last_3=33.0, minutes_avg_season=30.0)
    assert first_fail(strong, policy) is None
    picks, summary = select_best_bets([c, strong], policy, game_date=D)
    assert [p.player_lookup for p in picks] == ["q"]
    assert json.loads(summary.rejected)["signal_count"] == 1


@pytest.mark.parametrize("change, kwargs, tag, qualifies, confidence", [
    ({"edge_spread_band": (0.70, 0.80)}, {"conf": 0.72}, "edge_spread_optimal", True, 0.9),
    ({"edge_spread_band_confidence": 0.8}, {"conf": 0.80}, "edge_spread_optimal", True, 0.8),
    ({"edge_spread_high_confidence": 0.99}, {"conf": 0.95}, "edge_spread_optimal", True, 0.99),
    ({"edge_spread_else_confidence": 0.7}, {"conf": 0.87}, "edge_spread_optimal", True, 0.7),
    ({"combo_he_ms_confidence": 0.8}, {"minutes_avg_last_3": 33.0}, "combo_he_ms", True, 0.8),
    ({"combo_3way_confidence": 0.9}, {"minutes_avg_last_3": 33.0, "conf": 0.80}, "combo_3way", True, 0.9),
    ({"b2b_confidence_base": 0.6}, {"edge": -6.0, "b2b": 1.0, "minutes_avg_season": 35.0},
     "b2b_fatigue_under", True, 0.6),
    ({"b2b_confidence_minutes_scale": 4.0}, {"edge": -6.0, "b2b": 1.0, "minutes_avg_season": 37.0},
     "b2b_fatigue_under", True, 1.0),
    ({"rest_advantage_confidence_base": 0.5}, {"days_rest": 2, "opponent_days_rest": 1},
     "rest_advantage_2d", True, 0.6),
    ({"rest_advantage_confidence_per_day": 0.2}, {"days_rest": 2, "opponent_days_rest": 1},
     "rest_advantage_2d", True, 0.85),
    ({"bench_under_confidence": 0.6}, {"edge": -6.0, "starter_last_game": False}, "bench_under", True, 0.6),
    ({"prop_line_drop_confidence_base": 0.7}, {"delta": -2.0}, "prop_line_drop_over", True, 0.7),
    ({"prop_line_drop_confidence_per_point": 0.01}, {"delta": -4.0}, "prop_line_drop_over", True, 0.87),
    ({"book_disagreement_confidence_base": 0.8}, {"std": 1.5, "n_books": 5}, "book_disagreement", True, 0.8),
    ({"book_disagreement_confidence_per_std": 0.02}, {"std": 2.5, "n_books": 5}, "book_disagreement", True,
     0.87),
    ({"book_disagreement_confidence_max": 0.9}, {"std": 3.0, "n_books": 5}, "book_disagreement", True, 0.9),
    ({"three_pt_min_z": 0.5}, {"fg3a_per_game": 4.0, "fg3_pct_season": 0.40, "fg3_pct_last_3": 0.30,
                               "fg3_pct_std": 0.10}, "3pt_bounce", True, 0.3333),
    ({"three_pt_confidence_z_scale": 2.0}, {"fg3a_per_game": 4.0, "fg3_pct_season": 0.40,
                                            "fg3_pct_last_3": 0.20, "fg3_pct_std": 0.10}, "3pt_bounce", True,
     1.0),
    ({"blowout_confidence_minutes_scale": 8.0}, {"minutes_avg_season": 30.0, "prev_game_minutes": 24.0,
                                                 "days_rest": 2}, "blowout_recovery", True, 0.75),
])
def test_signal_confidences_come_from_the_policy(change, kwargs, tag, qualifies, confidence):
    policy = Policy(**change)
    s = sig(cand(**kwargs), tag, policy)
    assert (s.qualifies, s.confidence) == (qualifies, pytest.approx(confidence, abs=1e-4))
    default = sig(cand(**kwargs), tag)
    assert (default.qualifies, default.confidence) != (s.qualifies, pytest.approx(confidence, abs=1e-4))


@pytest.mark.parametrize("agreement, fails", [(0.5, False), (0.49, True), (None, True)])
def test_low_agreement(agreement, fails):
    assert (first_fail(cand(agreement=agreement)) == "low_agreement") is fails


def test_first_failure_wins_and_audit_lists_every_filter():
    c = cand(edge=-7.5, fam={"v9_mae": -7.5}, fqs=80.0, line=10.5, graded=(1, 9))
    assert first_fail(c) == "blacklist"
    audit = filter_audit(c, evaluate_signals(c, P), P)
    assert [a["filter"] for a in audit] == list(FILTER_NAMES)
    failed = [a["filter"] for a in audit if not a["passed"]]
    assert failed == ["blacklist", "under_edge_7plus", "quality_floor", "bench_under"]


# ---- signals -------------------------------------------------------------------------------------------


def test_signal_table_order_and_missing_inputs_do_not_qualify():
    c = cand()
    assert [s.tag for s in evaluate_signals(c, P)] == list(SIGNAL_TAGS)
    empty = c._replace(context=PlayerContext())
    qual = {s.tag for s in evaluate_signals(empty, P) if s.qualifies}
    assert qual == {"model_health", "high_edge", "edge_spread_optimal"}


@pytest.mark.parametrize("state, conf", [("HEALTHY", 1.0), (None, 1.0), ("INSUFFICIENT_DATA", 1.0),
                                         ("WATCH", 0.7), ("BLOCKED", 0.3)])
def test_model_health(state, conf):
    s = sig(cand(state=state), "model_health")
    assert s.qualifies and s.confidence == conf


@pytest.mark.parametrize("edge, q, conf", [(5.0, True, 0.5), (4.9, False, 0.0), (-12.0, True, 1.0)])
def test_high_edge(edge, q, conf):
    s = sig(cand(edge=edge), "high_edge")
    assert (s.qualifies, s.confidence) == (q, conf)


@pytest.mark.parametrize("conf, q, sc", [(0.70, True, 0.75), (0.69, False, 0.0), (0.75, True, 0.9),
                                         (0.85, True, 0.9), (0.88, False, 0.0), (0.90, False, 0.0),
                                         (0.87, True, 0.75), (0.91, True, 0.95)])
def test_edge_spread_optimal(conf, q, sc):
    s = sig(cand(conf=conf), "edge_spread_optimal")
    assert (s.qualifies, s.confidence) == (q, sc)


def test_combo_signals():
    c = cand(minutes_avg_last_3=33.0, minutes_avg_season=30.0, conf=0.80)
    assert sig(c, "combo_he_ms").qualifies and sig(c, "combo_3way").qualifies
    assert sig(c, "combo_3way").confidence == 0.95
    assert not sig(cand(minutes_avg_last_3=32.9, minutes_avg_season=30.0), "combo_he_ms").qualifies
    assert not sig(cand(edge=-6.0, minutes_avg_last_3=34.0), "combo_he_ms").qualifies
    assert not sig(cand(minutes_avg_last_3=33.0, conf=0.89), "combo_3way").qualifies


def test_b2b_fatigue_under():
    s = sig(cand(edge=-6.0, b2b=1.0, minutes_avg_season=37.0), "b2b_fatigue_under")
    assert s.qualifies and s.confidence == pytest.approx(0.7)
    assert sig(cand(edge=-6.0, b2b=1.0, minutes_avg_season=35.0), "b2b_fatigue_under").confidence == 0.5
    assert not sig(cand(edge=-6.0, b2b=1.0, minutes_avg_season=34.9), "b2b_fatigue_under").qualifies
    assert not sig(cand(edge=-6.0, b2b=0.0, minutes_avg_season=38.0), "b2b_fatigue_under").qualifies
    assert not sig(cand(edge=6.0, b2b=1.0, minutes_avg_season=38.0), "b2b_fatigue_under").qualifies


def test_rest_advantage_2d():
    s = sig(cand(days_rest=2, opponent_days_rest=1), "rest_advantage_2d")
    assert s.qualifies and s.confidence == pytest.approx(0.75)
    assert sig(cand(days_rest=4, opponent_days_rest=0), "rest_advantage_2d").confidence == pytest.approx(1.0)
    assert not sig(cand(days_rest=1, opponent_days_rest=1), "rest_advantage_2d").qualifies
    assert not sig(cand(days_rest=3, opponent_days_rest=2), "rest_advantage_2d").qualifies
    assert not sig(cand(days_rest=3, opponent_days_rest=None), "rest_advantage_2d").qualifies


def test_bench_under_signal():
    assert sig(cand(edge=-6.0, starter_last_game=False), "bench_under").qualifies
    assert not sig(cand(edge=-6.0, starter_last_game=None), "bench_under").qualifies
    assert not sig(cand(edge=6.0, starter_last_game=False), "bench_under").qualifies


def test_prop_line_drop_over():
    assert sig(cand(delta=-2.0), "prop_line_drop_over").confidence == pytest.approx(0.85)
    assert sig(cand(delta=-4.0), "prop_line_drop_over").confidence == pytest.approx(0.95)
    assert not sig(cand(delta=-1.9), "prop_line_drop_over").qualifies
    assert not sig(cand(edge=-6.0, delta=-3.0), "prop_line_drop_over").qualifies


def test_book_disagreement():
    assert sig(cand(std=1.5, n_books=5), "book_disagreement").confidence == pytest.approx(0.85)
    assert sig(cand(std=3.0, n_books=6), "book_disagreement").confidence == pytest.approx(0.95)
    assert not sig(cand(std=1.49, n_books=5), "book_disagreement").qualifies
    assert not sig(cand(std=2.0, n_books=4), "book_disagreement").qualifies
    assert sig(cand(edge=-6.0, std=1.5, n_books=5), "book_disagreement").qualifies


def test_3pt_bounce():
    c = cand(fg3a_per_game=4.0, fg3_pct_season=0.40, fg3_pct_last_3=0.20, fg3_pct_std=0.10)
    s = sig(c, "3pt_bounce")
    assert s.qualifies and s.confidence == pytest.approx(2 / 3, abs=1e-4)
    assert not sig(c._replace(context=c.context._replace(fg3a_per_game=3.9)), "3pt_bounce").qualifies
    z_one = c._replace(context=c.context._replace(fg3_pct_last_3=0.30))
    assert not sig(z_one, "3pt_bounce").qualifies  # z exactly 1 is not "more than one std"
    assert not sig(c._replace(context=c.context._replace(fg3_pct_std=0.0)), "3pt_bounce").qualifies


def test_blowout_recovery():
    s = sig(cand(minutes_avg_season=30.0, prev_game_minutes=22.0, days_rest=2), "blowout_recovery")
    assert s.qualifies and s.confidence == 0.5
    def rec(prev, rest):
        return sig(cand(minutes_avg_season=30.0, prev_game_minutes=prev, days_rest=rest), "blowout_recovery")
    assert rec(24.0, 2).qualifies  # deficit exactly 6
    assert not rec(24.1, 2).qualifies
    assert not rec(10.0, 1).qualifies


# ---- ultra, ids, angles ----------------------------------------------------------------------------------


@pytest.mark.parametrize("edge, ref, flag", [(6.0, 6.0, True), (-6.0, -6.5, True), (6.0, 5.9, False),
                                             (5.9, 8.0, False), (6.5, -6.5, False), (6.5, None, False)])
def test_ultra(edge, ref, flag):
    fam = {"v9_mae": edge} if ref is None else {"v12_mae": ref, "v9_mae": edge}
    got, crit = ultra(cand(edge=edge, fam=fam), P)
    assert got is flag and crit["ultra"] is flag
    assert crit["threshold"] == 6.0 and crit["reference_edge"] == ref


def test_ultra_public_gate():
    assert ultra_public_gate(40, 10, P)  # 50 picks at exactly 80 %
    assert not ultra_public_gate(39, 10, P)  # 49 picks
    assert not ultra_public_gate(39, 11, P)  # 78 %
    assert not ultra_public_gate(0, 0, P)


def test_pick_id_deterministic_and_sensitive():
    a = pick_id(D, "p", "20260222_LAL_BOS", "OVER", "v1")
    assert a == pick_id(D, "p", "20260222_LAL_BOS", "OVER", "v1") and len(a) == 20
    int(a, 16)
    assert a != pick_id(D, "p", "20260222_LAL_BOS", "UNDER", "v1")
    assert a != pick_id(D, "p", "20260222_LAL_BOS", "OVER", "v2")


def test_pick_angles_at_most_max_and_ordered():
    c = cand(edge=6.3, fam={"v12_mae": 6.5, "v9_mae": 6.1, "v9_q43": 1.0}, move=-2.5, delta=-2.5, std=2.0,
             n_books=6, days_rest=3, opponent_days_rest=1, minutes_avg_last_3=34.0)
    signals = evaluate_signals(c, P)
    angles = pick_angles(c, signals, P)
    assert len(angles) == 5
    assert angles[0] == "High conviction: edge 6.3 pts"
    assert angles[1] == "2 of 3 families agree OVER (avg edge 6.3)"
    assert angles[2] == "Line dropped 2.5 pts since open"
    assert angles[3].startswith("Ultra")
    assert pick_angles(c, signals, Policy(max_angles=2)) == angles[:2]


# ---- selection -------------------------------------------------------------------------------------------


def test_zero_candidates_give_zero_picks_and_a_complete_summary():
    picks, summary = select_best_bets([], P, game_date=D, run_id="r")
    assert picks == []
    assert (summary.total_candidates, summary.passed, summary.game_date) == (0, 0, D)
    rejected = json.loads(summary.rejected)
    assert list(rejected) == list(FILTER_NAMES) + ["team_cap", "daily_cap"]
    assert set(rejected.values()) == {0}
    assert summary.policy_version == P.version and summary.run_id == "r"


def test_ranking_ties_by_player_lookup_and_counters():
    cands = [cand(edge=6.0, player="zed"), cand(edge=-6.0, player="amy", team="NYK"),
             cand(edge=7.5, player="bob", team="MIA"), cand(edge=4.0, player="low"),
             cand(edge=6.0, player="bad", graded=(1, 9))]
    picks, summary = select_best_bets(cands, P, game_date=D)
    assert [(p.rank, p.player_lookup) for p in picks] == [(1, "bob"), (2, "amy"), (3, "zed")]
    rejected = json.loads(summary.rejected)
    assert rejected["edge_floor"] == 1 and rejected["blacklist"] == 1
    assert (summary.total_candidates, summary.passed) == (5, 3)
    assert select_best_bets(list(reversed(cands)), P, game_date=D)[0] == picks


def test_pick_is_fully_filled():
    c = cand(edge=6.5, fam={"v12_mae": 6.2, "v9_mae": 6.8})
    [p], _ = select_best_bets([c], P, game_date=D, run_id="r1")
    assert p.pick_id == pick_id(D, "p", "20260222_LAL_BOS", "OVER", P.version)
    assert (p.status, p.version, p.rank) == ("active", 1, 1)
    assert (p.direction, p.line, p.consensus_edge) == ("OVER", 24.5, 6.5)
    assert p.signals == ("model_health", "high_edge", "edge_spread_optimal")
    assert p.ultra_tier is True and json.loads(p.ultra_criteria)["direction"] == "OVER"
    assert [a["filter"] for a in json.loads(p.filter_audit)] == list(FILTER_NAMES)
    assert set(json.loads(p.signal_details)) == set(SIGNAL_TAGS)
    assert p.model_ids == ("m1", "m2", "m3") and p.confidence == 0.85
    assert (p.tipoff_utc, p.player_name, p.team_abbr, p.opponent_team_abbr) == (TIP, "Player", "LAL", "BOS")
    assert (p.run_id, p.policy_version) == ("r1", P.version)
    assert (p.line_book, p.line_snapshot_ts) == ("draftkings", TS)
    assert 1 <= len(p.pick_angles) <= 5
    assert "NaN" not in p.filter_audit + p.signal_details + p.ultra_criteria


def test_caps():
    cands = [cand(edge=9.0, player="a"), cand(edge=8.0, player="b"), cand(edge=7.0, player="c", team="NYK")]
    picks, summary = select_best_bets(cands, Policy(team_cap=1), game_date=D)
    assert [p.player_lookup for p in picks] == ["a", "c"] and json.loads(summary.rejected)["team_cap"] == 1
    picks, summary = select_best_bets(cands, Policy(daily_cap=2), game_date=D)
    assert [p.player_lookup for p in picks] == ["a", "b"] and json.loads(summary.rejected)["daily_cap"] == 1


def test_bad_candidates_raise():
    c = cand()
    no_line = c._replace(consensus=c.consensus._replace(line=None, consensus_edge=None))
    with pytest.raises(ValueError):
        select_best_bets([no_line], P, game_date=D)
    with pytest.raises(ValueError):
        select_best_bets([c], P, game_date=D + dt.timedelta(days=1))
    with pytest.raises(ValueError):
        select_best_bets([c, c], P, game_date=D)


# ---- the pure chain end to end -------------------------------------------------------------------------


def test_end_to_end_pure_chain():
    """snapshots -> line book -> gate -> vectors -> predictions (fixed raw numbers) -> consensus -> picks."""
    from pipeline.domain.consensus import compute_consensus
    from pipeline.domain.context import player_context, team_last_game_dates
    from pipeline.domain.gate import gate, universe_exclusion
    from pipeline.domain.linebook import build_line_book
    from pipeline.domain.scoring import build_feature_vector, make_prediction
    from pipeline.schemas import BoxScore, OddsSnapshot

    as_of = dt.datetime(2026, 2, 22, 20, 0, tzinfo=dt.UTC)
    game_id = "20260222_LAL_BOS"
    players = {  # player: (line, raw predictions per model, quality score)
        "alpha": (24.5, {"m_v12": 31.24, "m_v9": 30.9, "m_q43": 29.0}, 92.0),  # OVER ~6.4
        "bravo": (18.5, {"m_v12": 19.0, "m_v9": 20.2, "m_q43": 17.0}, 95.0),  # small edge
        "charlie": (30.5, {"m_v12": 35.0, "m_v9": 36.0, "m_q43": 34.0}, 84.0),  # not viable in FIRST
        "delta": (None, {"m_v12": 12.0, "m_v9": 12.0, "m_q43": 12.0}, 90.0),  # no sane line
    }
    models = {"m_v12": ("v12_mae", "v12", "MAE"), "m_v9": ("v9_mae", "v9", "MAE"),
              "m_q43": ("v9_q43", "v9", "Quantile:alpha=0.43")}
    box_scores = [BoxScore(p, f"202602{d:02d}_LAL_NYK", dt.date(2026, 2, d), "LAL", 20.0, 32.0, False, True,
                           3.0)
                  for p in players for d in (16, 18, 20)]
    team_last = team_last_game_dates(box_scores, before=D)

    candidates, all_preds, gate_rows = [], [], []
    for player, (line, raws, score) in players.items():
        snaps = [] if line is None else [
            OddsSnapshot(player, player.title(), game_id, D, "draftkings", line - 1.0, -110, -110,
                         as_of - dt.timedelta(hours=8), "odds_api"),
            OddsSnapshot(player, player.title(), game_id, D, "draftkings", line, -115, -105,
                         as_of - dt.timedelta(hours=1), "odds_api"),
            OddsSnapshot(player, player.title(), game_id, D, "fanduel", line + 0.5, -110, -110,
                         as_of - dt.timedelta(hours=2), "odds_api")]
        book, diags = build_line_book(snaps, as_of, P, key=(D, game_id, player), prev_game_closing_line=None)
        assert diags[-1].code == ("NO_PROP_LINE" if line is None else "LINE_SOURCE")
        assert universe_exclusion("scheduled", TIP, as_of, "probable", P) is None
        feats = tuple([22.0, 22.0, 21.0, 3.5] + [1.0] * 51)
        row = FeatureRow(player, game_id, D, "LAL", "BOS", "v2", feats, score, "green", 90.0, 0, ())
        viable, reason = gate(row, "FIRST", P)
        gate_rows.append((player, viable, reason))
        if not viable:
            continue
        preds = []
        for model_id, (family, fs, loss) in models.items():
            vec = build_feature_vector(row, book, fs)
            assert vec.shape[0] in (33, 54)
            preds.append(make_prediction(raws[model_id], model_id=model_id, family=family, feature_set=fs,
                                         min_edge=P.min_edge(loss), feature_row=row, book=book, policy=P))
        all_preds += preds
        cons = compute_consensus(preds, P)
        if cons.line is None:
            assert all(p.recommendation == "NO_LINE" for p in preds)
            continue
        hist = [b for b in box_scores if b.player_lookup == player]
        ctx = player_context(hist, D, "BOS", team_last, team_abbr="LAL")
        candidates.append(Candidate(cons, book, row, ctx, book.player_name, TIP, None, "HEALTHY"))

    assert ("charlie", False, "quality_below_threshold_85") in gate_rows
    assert len(all_preds) == 9 and len(candidates) == 2
    picks, summary = select_best_bets(candidates, P, game_date=D, run_id="e2e")
    assert [p.player_lookup for p in picks] == ["alpha"]
    pick = picks[0]
    assert (pick.direction, pick.line, pick.consensus_edge) == ("OVER", 24.5, 6.4)
    assert pick.line_book == "draftkings"
    assert json.loads(pick.ultra_criteria)["reference_edge"] == 6.7  # 31.24 -> 31.2 (half-up) - 24.5
    assert pick.ultra_tier is True  # v12_mae 6.7 and consensus (median of 6.7, 6.4, 4.5) 6.4 both clear 6.0
    assert pick.predicted_points == 30.9 and pick.n_models == 3 and pick.n_families == 3
    assert json.loads(summary.rejected)["edge_floor"] == 1 and summary.passed == 1

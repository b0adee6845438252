"""Grading rules of domain.md section 9: every boundary of pipeline.domain.grading."""

from __future__ import annotations

import datetime as dt

import pytest

from pipeline.domain import grading as g
from pipeline.policy import Policy
from pipeline.schemas import BoxScore, Pick, Prediction, PredictionAccuracy

D = dt.date(2026, 2, 22)
P = Policy()


def box(points=20.0, minutes=30.0, is_dnp=False) -> BoxScore:
    return BoxScore("lebronjames", "20260222_LAL_BOS", D, "LAL", points, minutes, is_dnp, True, 3.0)


def pred(rec="OVER", line=20.5, predicted=25.0, edge=None, model_id="m1", family="v12_mae") -> Prediction:
    edge = edge if edge is not None else (None if line is None else round(predicted - line, 1))
    return Prediction(D, "20260222_LAL_BOS", "lebronjames", model_id, family, "v12", predicted, line,
                      "draftkings", None, edge, rec, 0.8)


def pick(direction="OVER", line=20.5, ultra=False) -> Pick:
    return Pick("p1", D, "20260222_LAL_BOS", "lebronjames", "LeBron James", "LAL", "BOS", None, 1,
                direction, line, "draftkings", None, 5.5, 26.0, 0.8, 5, 8, 1.0, 0.8, ("m1",), ("high_edge",),
                "{}", "{}", (), ultra, "{}", "active", 1, run_id="run-a")


@pytest.mark.parametrize("direction,line,actual,expected", [
    ("OVER", 20.5, 21, True), ("OVER", 20.5, 20, False),
    ("UNDER", 20.5, 20, True), ("UNDER", 20.5, 21, False),
    ("OVER", 20.0, 20, None), ("UNDER", 20.0, 20, None), ("OVER", 20.0, 21, True), ("UNDER", 20.0, 19, True),
    ("over", 20.5, 21, True), ("Under", 20.5, 21, False),
])
def test_bet_outcome_boundaries(direction, line, actual, expected):
    assert g.bet_outcome(direction, line, actual) is expected


@pytest.mark.parametrize("direction", ["HOLD", "NO_LINE", ""])
def test_bet_outcome_has_no_result_without_a_bet(direction):
    with pytest.raises(ValueError):
        g.bet_outcome(direction, 20.5, 21)


@pytest.mark.parametrize("b,status,expected", [
    (box(0.0, 12.0), None, None),  # 0 points with minutes played is a result
    (box(0.0, 0.0), "Out", "dnp_injury_confirmed"),
    (box(0.0, None), "DOUBTFUL", "dnp_injury_confirmed"),
    (box(0.0, 0.0), "Questionable", "dnp_late_scratch"),
    (box(0.0, 0.0), "probable", "dnp_late_scratch"),
    (box(0.0, 0.0), None, "dnp_unknown"),
    (box(0.0, 0.0), "available", "dnp_unknown"),
    (box(None, 25.0), None, "dnp_unknown"),  # missing points
    (box(0.0, 0.0, is_dnp=True), " out ", "dnp_injury_confirmed"),
    (box(12.0, 20.0, is_dnp=True), None, "dnp_unknown"),  # the DNP flag wins
    (None, "OUT", "dnp_injury_confirmed"),  # no row in a played game
    (box(15.0, 30.0), "out", None),  # played despite a report: a result
])
def test_void_reason(b, status, expected):
    assert g.void_reason(b, status) == expected


def test_grade_prediction_win_errors_margin():
    a = g.grade_prediction(pred("OVER", 20.5, 25.0), box(22.0), None, closing_line=21.5)
    assert a.prediction_correct is True and not a.is_push and not a.is_voided
    assert a.absolute_error == 3.0 and a.signed_error == 3.0 and a.within_3 and a.within_5
    assert a.margin == 1.5 and a.clv == 1.0 and a.actual_points == 22.0


def test_grade_prediction_push_at_exactly_the_line():
    a = g.grade_prediction(pred("UNDER", 20.0, 15.0), box(20.0), None)
    assert a.is_push and a.prediction_correct is None and a.margin == 0.0
    assert a.within_5 is True and a.within_3 is False


def test_grade_prediction_zero_points_with_minutes_is_a_loss():
    a = g.grade_prediction(pred("OVER", 5.5, 9.0), box(0.0, 14.0), "questionable")
    assert a.prediction_correct is False and not a.is_voided and a.absolute_error == 9.0


@pytest.mark.parametrize("minutes", [0.0, None])
def test_grade_prediction_void_dnp(minutes):
    a = g.grade_prediction(pred("OVER", 20.5, 25.0), box(0.0, minutes), "Out")
    assert a.is_voided and a.void_reason == "dnp_injury_confirmed"
    assert a.prediction_correct is None and a.absolute_error is None and not a.is_push


@pytest.mark.parametrize("rec,line", [("HOLD", 20.5), ("NO_LINE", None)])
def test_hold_and_no_line_have_no_result(rec, line):
    a = g.grade_prediction(pred(rec, line, 21.0), box(20.0), None, closing_line=21.0)
    assert a.prediction_correct is None and not a.is_push
    assert a.absolute_error == 1.0 and a.signed_error == 1.0 and a.within_3 and not a.is_voided
    assert (a.margin is None) == (line is None)
    # the edge rule still scores a HOLD (edge +0.5: OVER lost at 20 < 20.5); NO_LINE has no edge result
    assert a.edge_correct is (False if line is not None else None)
    assert a.clv == (0.5 if line is not None else None)  # in the edge's direction: OVER, close 21.0


def test_no_line_prediction_is_graded_with_void_reasons():
    a = g.grade_prediction(pred("NO_LINE", None, 12.0), box(0.0, 0.0), "doubtful")
    assert a.is_voided and a.void_reason == "dnp_injury_confirmed" and a.absolute_error is None
    assert a.prediction_correct is None and a.edge_correct is None and a.line is None


@pytest.mark.parametrize("edge,line,actual,outcome", [
    (3.0, 20.5, 21.0, "WIN"), (3.0, 20.5, 20.0, "LOSS"), (-3.0, 20.5, 20.0, "WIN"),
    (-4.5, 20.5, 25.0, "LOSS"),
    (3.0, 20.0, 20.0, "PUSH"), (-3.0, 20.0, 20.0, "PUSH"), (0.0, 20.5, 30.0, None), (None, None, 30.0, None),
    (3.0, None, 30.0, None), (3.0, 20.5, None, None), (float("nan"), 20.5, 30.0, None),
    (3.0, float("nan"), 30.0, None),
])
def test_edge_outcome_is_the_direction_of_the_edge(edge, line, actual, outcome):
    assert g.edge_outcome(edge, line, actual) == outcome
    assert g.edge_correct(edge, line, actual) is {"WIN": True, "LOSS": False}.get(outcome)


def test_edge_buckets_include_their_bound_and_vectorised_form_agrees():
    assert g.in_edge_bucket(3.0, 3.0) and g.in_edge_bucket(-3.0, 3.0) and not g.in_edge_bucket(2.9, 3.0)
    assert not g.in_edge_bucket(None, 3.0) and not g.in_edge_bucket(float("nan"), 3.0)
    import numpy as np

    edge = np.array([3.0, -3.0, 2.9, np.nan, 5.0, 3.0])
    line = np.array([20.5, 20.5, 20.5, np.nan, 20.0, 20.0])
    actual = np.array([21.0, 21.0, 25.0, 30.0, 20.0, 22.0])
    assert list(g.edge_outcomes(edge, line, actual)) == [
        g.edge_outcome(e, ln, a) for e, ln, a in zip(edge, line, actual, strict=True)]
    assert list(g.edge_outcomes(edge, line, actual)) == ["WIN", "LOSS", "WIN", None, "PUSH", "WIN"]
    assert g.in_edge_buckets(edge, 3.0).tolist() == [True, True, False, False, True, True]


def test_dnp_rule_on_plain_values():
    assert g.dnp(True, 20.0, 30.0) and g.dnp(False, None, 30.0) and g.dnp(None, float("nan"), 10.0)
    assert g.dnp(False, 0.0, 0.0) and g.dnp(False, 0.0, None) and g.dnp(float("nan"), 0.0, float("nan"))
    assert not g.dnp(False, 0.0, 12.0) and not g.dnp(None, 15.0, None)


def test_grade_pick_results_and_clv_sign():
    assert g.grade_pick(pick("OVER", 20.5), box(21.0), None, 21.5).result == "WIN"
    assert g.grade_pick(pick("OVER", 20.5), box(21.0), None, 21.5).clv == 1.0  # close moved up: beat it
    assert g.grade_pick(pick("UNDER", 20.5), box(21.0), None, 21.5).clv == -1.0
    assert g.grade_pick(pick("UNDER", 20.5), box(21.0), None, 19.5).clv == 1.0
    assert g.grade_pick(pick("UNDER", 20.5), box(21.0), None, None).clv is None
    assert g.grade_pick(pick("UNDER", 20.0), box(20.0), None, 20.0).result == "PUSH"
    assert g.grade_pick(pick("UNDER", 20.5), box(21.0), None, 20.5).result == "LOSS"
    v = g.grade_pick(pick("OVER", 20.5), box(0.0, 0.0), "Probable", 20.5)
    assert v.result == "VOID" and v.void_reason == "dnp_late_scratch" and v.margin is None
    p = g.grade_pick(pick(), None, None, None, game_played=False)
    assert p.result == "PENDING" and p.actual_points is None
    r = g.grade_pick(pick(ultra=True), box(30.0), None, 20.5)
    assert r.ultra_tier and r.rank == 1 and r.pick_run_id == "run-a" and r.margin == 9.5


@pytest.mark.parametrize("hr,n,state", [
    (0.9, 4, "INSUFFICIENT_DATA"), (None, 0, "INSUFFICIENT_DATA"), (0.0, 5, "BLOCKED"),
    (0.5239, 10, "BLOCKED"), (0.524, 10, "DEGRADING"), (0.5499, 10, "DEGRADING"), (0.55, 10, "WATCH"),
    (0.5799, 10, "WATCH"), (0.58, 10, "HEALTHY"), (1.0, 5, "HEALTHY"),
])
def test_model_state_thresholds(hr, n, state):
    assert g.model_state(hr, n, P) == state


def test_model_state_exact_boundaries_from_counts():
    assert g.model_state(g.hit_rate(131, 119), 250, P) == "DEGRADING"  # 131/250 = 52.4 %
    assert g.model_state(g.hit_rate(11, 9), 20, P) == "WATCH"  # 55 %
    assert g.model_state(g.hit_rate(29, 21), 50, P) == "HEALTHY"  # 58 %


def test_model_state_bounds_come_from_the_policy():
    import dataclasses

    strict = dataclasses.replace(P, state_min_graded=20, breakeven_hr=0.5, state_degrading_hr=0.6,
                                 state_watch_hr=0.7)
    assert g.model_state(0.9, 19, strict) == "INSUFFICIENT_DATA"
    assert [g.model_state(hr, 20, strict) for hr in (0.49, 0.5, 0.65, 0.7)] == [
        "BLOCKED", "DEGRADING", "WATCH", "HEALTHY"]


def acc(day: dt.date, correct: bool | None, *, rec="OVER", edge=4.0, model="m1", voided=False,
        abs_err=2.0, predicted=24.0, line=20.0, family="v12_mae") -> PredictionAccuracy:
    """A graded row whose actual points give ``correct`` for the edge's direction (None: a push)."""
    up = edge > 0
    actual = line if correct is None else line + (2.0 if correct == up else -2.0)
    return PredictionAccuracy(day, "g", f"p{day}{correct}{edge}", model, family, line, rec, predicted,
                              edge, actual, 30.0, correct if rec in ("OVER", "UNDER") else None,
                              correct is None and not voided, voided,
                              "dnp_unknown" if voided else None, None if voided else abs_err, 2.0, True, True,
                              2.0, edge_correct=None if voided else g.edge_correct(edge, line, actual))


def test_model_performance_windows_cross_month_and_year():
    as_of = dt.date(2026, 1, 2)
    rows = [
        acc(dt.date(2026, 1, 2), True), acc(dt.date(2026, 1, 1), True),   # in 7/14/30
        acc(dt.date(2025, 12, 27), False),                                  # day 7: first of the 7-day window
        acc(dt.date(2025, 12, 26), False),                                  # day 8: only 14/30
        acc(dt.date(2025, 12, 20), True),                                   # day 14: in 14
        acc(dt.date(2025, 12, 19), True),                                   # day 15: only 30
        acc(dt.date(2025, 12, 4), False),                                   # day 30: in 30
        acc(dt.date(2025, 12, 3), True),                                    # day 31: outside
        acc(dt.date(2026, 1, 3), True),                                     # after as_of: outside
    ]
    m = g.model_performance(rows, as_of, "m1", policy=P)
    assert (m.n_7d, m.n_14d, m.n_30d) == (3, 5, 7)
    assert m.hr_7d == pytest.approx(2 / 3) and m.hr_14d == pytest.approx(3 / 5)
    assert m.hr_30d == pytest.approx(4 / 7)
    assert m.state == "INSUFFICIENT_DATA" and m.family == "v12_mae"


def test_model_performance_excludes_push_void_hold_and_low_edge():
    day = dt.date(2026, 3, 1)
    rows = [acc(day, True), acc(day, None), acc(day, None, voided=True), acc(day, True, rec="HOLD", edge=1.0),
            acc(day, False, edge=2.9), acc(day, False, edge=-3.0, rec="UNDER"), acc(day, True, edge=5.0),
            acc(day, True, edge=-6.0, rec="UNDER"), acc(day, True, model="other")]
    m = g.model_performance(rows, day, "m1", policy=P)
    assert m.n_7d == 4 and m.hr_7d == 0.75
    assert m.n_edge5_30d == 2 and m.hr_edge5_30d == 1.0
    assert m.over_hr_30d == 1.0 and m.under_hr_30d == 0.5
    # MAE over every non-void row with an error (HOLD included): 7 rows of 2.0
    assert m.mae_30d == 2.0 and m.vegas_bias_30d == 4.0
    assert g.model_performance([], day, "none", policy=P).state == "INSUFFICIENT_DATA"


def test_edge_3_plus_counts_a_quantile_hold_at_edge_3_5_and_no_line_rows_count_for_mae():
    day = dt.date(2026, 3, 1)
    hold = acc(day, True, rec="HOLD", edge=3.5)  # a q43 model recommends only at 4+: still edge 3+
    no_line = PredictionAccuracy(day, "g", "nl", "m1", "v12_mae", None, "NO_LINE", 20.0, None, 16.0, 30.0,
                                 None, False, False, None, 4.0, 4.0, False, True, None)
    m = g.model_performance([hold, no_line], day, "m1", policy=P)
    assert (m.n_7d, m.hr_7d, m.over_hr_30d) == (1, 1.0, 1.0)
    assert m.mae_30d == 3.0 and m.vegas_bias_30d == 4.0  # bias over the lined row only
    five = g.model_performance([hold], day, "m1", policy=Policy(edge_buckets=(4.0, 6.0)))
    assert five.n_7d == 0  # the buckets are the policy's


def test_model_performance_series_rows_per_date_and_model():
    rows = [acc(dt.date(2026, 3, 1), True), acc(dt.date(2026, 3, 1), False, model="m2")]
    out = g.model_performance_series(rows, [dt.date(2026, 3, 1), dt.date(2026, 3, 30), dt.date(2026, 3, 31)],
                                     policy=P)
    assert [(r.game_date.isoformat(), r.model_id) for r in out] == [
        ("2026-03-01", "m1"), ("2026-03-01", "m2"), ("2026-03-30", "m1"), ("2026-03-30", "m2")]
    assert out[2].n_7d == 0 and out[2].n_30d == 1


def test_roi_and_backtest_table():
    assert g.roi_at_minus_110(0, 0) is None
    assert g.roi_at_minus_110(11, 10) == pytest.approx((10 - 10) / 21)
    day = dt.date(2026, 3, 1)
    rows = [acc(day, True)._replace(clv=1.0), acc(day, False)._replace(clv=-0.5), acc(day, None),
            acc(day, True, edge=2.0), acc(day, None, voided=True)]
    picks = [g.grade_pick(pick(), box(25.0), None, 21.5), g.grade_pick(pick(), box(0.0, 0.0), None, None),
             g.grade_pick(pick(), None, None, 22.0, game_played=False)]
    lines = g.backtest_table(rows, picks, policy=P)
    fam, bb = lines
    assert (fam.name, fam.picks, fam.wins, fam.losses, fam.pushes, fam.voids) == ("v12_mae", 2, 1, 1, 1, 1)
    assert fam.mean_clv == 0.25 and fam.roi == pytest.approx((100 / 110 - 1) / 2)
    assert (bb.name, bb.picks, bb.wins, bb.voids, bb.n_clv) == ("best_bets", 1, 1, 1, 1)
    text = g.format_backtest_table(lines)
    assert "v12_mae" in text and "best_bets" in text and "50.0%" in text


def test_wilson_interval_and_roi_on_a_crafted_set():
    assert g.wilson_interval(0, 0) is None
    lo, hi = g.wilson_interval(30, 50)  # textbook: 60 % of 50 -> [46.2 %, 72.4 %]
    assert lo == pytest.approx(0.4618, abs=1e-4) and hi == pytest.approx(0.7239, abs=1e-4)
    assert g.wilson_interval(10, 10)[1] == pytest.approx(1.0) and g.wilson_interval(0, 10)[0] == 0.0
    day = dt.date(2026, 3, 1)
    rows = ([acc(day, True, edge=4.0, family="a")] * 20 + [acc(day, True, edge=-4.0, family="a")] * 10
            + [acc(day, False, edge=4.0, family="a")] * 12 + [acc(day, False, edge=-4.0, family="a")] * 8
            + [acc(day, True, edge=3.0, family="b")] * 20 + [acc(day, False, edge=-3.0, family="b")] * 20)
    picks = ([g.grade_pick(pick("OVER", 20.5), box(25.0), None, None)] * 45
             + [g.grade_pick(pick("UNDER", 20.5), box(25.0), None, None)] * 5)
    a, b, bb = g.backtest_table(rows, picks, policy=P)
    assert (a.name, a.wins, a.losses, a.hit_rate) == ("a", 30, 20, 0.6)
    assert (a.hr_low, a.hr_high) == pytest.approx(g.wilson_interval(30, 50))
    assert a.roi == pytest.approx((30 * 100 / 110 - 20) / 50)  # +14.5 % per unit at -110
    assert (a.over_wins, a.over_losses, a.under_wins, a.under_losses) == (20, 12, 10, 8)
    assert a.over_hr == pytest.approx(20 / 32) and a.under_hr == pytest.approx(10 / 18)
    assert (b.hit_rate, b.over_hr, b.under_hr) == (0.5, 1.0, 0.0)
    assert (bb.wins, bb.losses, bb.over_hr, bb.under_hr) == (45, 5, 1.0, 0.0)
    assert bb.roi == pytest.approx((45 * 100 / 110 - 5) / 50)
    cmp = g.consensus_vs_best_family([a, b, bb])
    assert cmp.best_family == "a" and cmp.beats and cmp.significant  # 90 % [78.6, 95.7] vs [46.2, 72.4]
    assert "beats it" in g.format_consensus_line(cmp)
    close = bb._replace(hit_rate=0.62, hr_low=0.48, hr_high=0.74)
    cmp = g.consensus_vs_best_family([a, b, close])
    assert cmp.beats and not cmp.significant and "overlap" in g.format_consensus_line(cmp)
    worse = bb._replace(hit_rate=0.55)
    assert "does NOT beat" in g.format_consensus_line(g.consensus_vs_best_family([a, b, worse]))


def test_grade_player_date_latest_prediction_status_before_tipoff_and_closing_line():
    from pipeline.policy import Policy
    from pipeline.schemas import InjuryReport, OddsSnapshot

    tip = dt.datetime(2026, 2, 23, 0, 30, tzinfo=dt.UTC)
    t = lambda h: tip - dt.timedelta(hours=h)
    early = pred("OVER", 20.5, 25.0)._replace(line_snapshot_ts=t(5))
    late = pred("UNDER", 21.5, 17.0)._replace(line_snapshot_ts=t(2))
    other = pred("NO_LINE", None, 17.0, model_id="m2")
    odds = [OddsSnapshot("lebronjames", "LeBron James", "20260222_LAL_BOS", D, "draftkings", line, -110, -110,
                         ts, "odds_api")
            for line, ts in ((21.5, t(3)), (22.5, t(0.5)), (30.5, tip + dt.timedelta(1)))]
    reports = [InjuryReport("lebronjames", D, "Questionable", "knee", t(10)),
               InjuryReport("lebronjames", D, "OUT", "knee", tip + dt.timedelta(minutes=5))]  # after tip
    pk = pick("UNDER", 21.5)
    withdrawn = pick("OVER", 21.5)._replace(pick_id="p2", status="withdrawn")
    out = g.grade_player_date([early, late, other], [pk, withdrawn], [box(0.0, 0.0)], reports, odds,
                              tipoffs={"20260222_LAL_BOS": tip}, played_game_ids={"20260222_LAL_BOS"},
                              policy=Policy(), run_id="r")
    assert out.no_line_predictions == 1 and out.pending_predictions == 0
    a, nl = out.accuracy  # the NO_LINE prediction of m2 is graded too (void: DNP)
    assert nl.model_id == "m2" and nl.recommendation == "NO_LINE" and nl.void_reason == "dnp_late_scratch"
    assert a.recommendation == "UNDER" and a.line == 21.5  # the latest snapshot's prediction is graded
    assert a.void_reason == "dnp_late_scratch" and a.closing_line == 22.5 and a.clv == -1.0
    (r,) = out.results
    assert r.result == "VOID" and r.closing_line == 22.5 and r.closing_book == "draftkings"
    pending = g.grade_player_date([late], [pk], [], [], [], tipoffs={}, played_game_ids=set(),
                                  policy=Policy())
    assert pending.pending_predictions == 1 and pending.accuracy == []
    assert pending.results[0].result == "PENDING"

"""Tests for models.governance: holdout metrics and promotion gates (domain.md section 9)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from models.governance import (
    DEFAULT_THRESHOLDS,
    GateThresholds,
    bet_record,
    evaluate_holdout,
    failed_gates,
    format_report,
    run_gates,
    tier_of,
)

NAN = float("nan")


def test_bet_record_wins_losses_pushes():
    pred = np.array([25.0, 25.0, 15.0, 15.0, 21.0, 30.0, 24.0])
    line = np.array([20.5, 20.0, 20.5, 20.5, 20.5, NAN, 20.0])
    actual = np.array([22.0, 20.0, 25.0, 10.0, 30.0, 35.0, 23.0])
    # rows: OVER win, OVER push, UNDER loss, UNDER win, edge 0.5 (no bet), no line, OVER edge 4 win
    rec = bet_record(pred, actual, line, 3.0)
    assert rec == {"wins": 3, "losses": 1, "pushes": 1, "graded": 4, "hr": 0.75}
    assert bet_record(pred, actual, line, 3.0, "OVER") == {"wins": 2, "losses": 0, "pushes": 1, "graded": 2,
                                                          "hr": 1.0}
    assert bet_record(pred, actual, line, 3.0, "UNDER")["hr"] == 0.5
    assert bet_record(pred, actual, line, 4.5)["graded"] == 3  # edge exactly 4.5: 20.5 -> 25/15 qualify
    assert bet_record(pred, actual, line, 50.0)["hr"] is None


def test_tiers():
    assert [tier_of(x) for x in (30.0, 25.0, 24.9, 15.0, 5.0, 4.9, NAN)] == [
        "25+", "25+", "15-24", "15-24", "5-14", "<5", "<5"]


def test_evaluate_holdout_market_comparison_on_same_rows():
    pred = np.array([22.0, 18.0, 10.0])
    actual = np.array([20.0, 20.0, 12.0])
    line = np.array([21.0, 19.0, NAN])
    m = evaluate_holdout(pred, actual, line, np.array([26.0, 16.0, 8.0]))
    assert m["n_rows"] == 3 and m["n_with_line"] == 2
    assert m["mae"] == pytest.approx(2.0)
    assert m["mae_on_lined"] == pytest.approx(2.0) and m["market_mae"] == pytest.approx(1.0)
    assert m["vegas_bias"] == pytest.approx(0.0)
    assert m["tiers"]["25+"] == {"n": 1, "mean_error": 2.0}
    assert m["tiers"]["<5"] == {"n": 0, "mean_error": None}
    with pytest.raises(ValueError, match="empty holdout"):
        evaluate_holdout(np.array([]), np.array([]), np.array([]), np.array([]))


def _metrics(n_over_win=40, n_over_loss=20, n_under_win=40, n_under_loss=20, bias=0.0):
    """A holdout where the bets and the bias are controlled."""
    rows = []
    for win, n in ((True, n_over_win), (False, n_over_loss)):
        rows += [(24.0 + bias, 27.0 if win else 17.0, 20.5)] * n
    for win, n in ((True, n_under_win), (False, n_under_loss)):
        rows += [(17.0 + bias, 14.0 if win else 25.0, 20.5)] * n
    pred, actual, line = (np.array(c) for c in zip(*rows, strict=True))
    return evaluate_holdout(pred, actual, line, np.full(len(pred), 20.0))


def test_gates_pass():
    results = run_gates(_metrics())
    assert failed_gates(results) == []
    assert [r["gate"] for r in results] == [
        "edge3_hit_rate", "vegas_bias", "tier_mean_error", "over_hit_rate", "under_hit_rate"]


def test_gates_fail_each_rule():
    assert failed_gates(run_gates(_metrics(20, 10, 10, 5))) == ["edge3_hit_rate"]  # 45 bets < 50
    assert "over_hit_rate" in failed_gates(run_gates(_metrics(n_over_win=20, n_over_loss=40, n_under_win=60,
                                                              n_under_loss=0)))
    assert "under_hit_rate" in failed_gates(run_gates(_metrics(60, 0, 20, 40)))
    assert failed_gates(run_gates(_metrics(60, 0, 0, 0, bias=2.0)))[:1] == ["vegas_bias"]
    # a tier with mean error beyond +/-5
    m = evaluate_holdout(np.array([10.0] * 60), np.array([20.0] * 60), np.full(60, NAN), np.full(60, 30.0))
    res = {r["gate"]: r for r in run_gates(m)}
    assert not res["tier_mean_error"]["passed"] and "25+" in res["tier_mean_error"]["detail"]
    assert not res["vegas_bias"]["passed"] and res["vegas_bias"]["detail"] == "no rows with a line"


def test_thresholds_are_arguments():
    strict = dataclasses.replace(DEFAULT_THRESHOLDS, min_hr=0.7)
    assert failed_gates(run_gates(_metrics(), strict)) == ["edge3_hit_rate"]
    text = format_report("m1", _metrics(), run_gates(_metrics()))
    assert "edge-3+ HR 66.7% (80-40" in text and "vs market line" in text


def test_thresholds_come_from_the_policy_and_bets_follow_the_edge_rule():
    from pipeline.domain import grading
    from pipeline.policy import Policy

    t = GateThresholds.from_policy(Policy(edge_buckets=(4.0, 6.0), breakeven_hr=0.5, promotion_min_bets=7))
    assert (t.edge, t.big_edge, t.min_direction_hr, t.min_bets) == (4.0, 6.0, 0.5, 7)
    assert DEFAULT_THRESHOLDS == GateThresholds.from_policy(Policy())
    pred = np.array([24.0, 17.0, 23.5, 24.0, 30.0])
    line = np.array([20.5, 20.5, 20.5, 20.0, NAN])
    actual = np.array([21.0, 21.0, 20.0, 20.0, 10.0])
    rec = bet_record(pred, actual, line, 3.0)
    edge = pred - line
    outcomes = grading.edge_outcomes(edge, line, actual)[grading.in_edge_buckets(edge, 3.0)]
    assert (rec["wins"], rec["losses"], rec["pushes"]) == tuple(
        int((outcomes == o).sum()) for o in ("WIN", "LOSS", "PUSH")) == (1, 2, 1)

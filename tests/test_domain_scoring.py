"""Tests for pipeline.domain.scoring: feature vectors, confidence tiers, predictions and rounding."""

import datetime as dt
import math

import numpy as np
import pytest

from pipeline.domain.scoring import build_feature_vector, confidence, make_prediction, round_half_up
from pipeline.policy import Policy
from pipeline.schemas import FEATURE_SETS, FeatureRow, LineBook

P = Policy()
D = dt.date(2026, 2, 22)
TS = dt.datetime(2026, 2, 22, 21, 0, tzinfo=dt.UTC)


def row(score=90.0, std10=3.0, season_avg=20.0, missing=()):
    feats = [float(i) for i in range(55)]
    feats[2], feats[3] = season_avg, std10
    for i in missing:
        feats[i] = None
    return FeatureRow("p", "20260222_LAL_BOS", D, "LAL", "BOS", "v2", tuple(feats), score, "green", 90.0, 0,
                      ())


def book(line=24.5, opening=22.5, std=0.5, delta=2.0):
    return LineBook(D, "20260222_LAL_BOS", "p", "P", line, "draftkings" if line else None, "odds_api",
                    TS if line else None, -110, -110, 0, opening, None if line is None else line - opening,
                    2 if line else 0, std, line, line, delta)


def test_vector_shapes_and_catalogue_order():
    for fs, n in (("v9", 33), ("v12", 54), ("v12_noveg", 50)):
        v = build_feature_vector(row(), book(), fs)
        assert v.dtype == np.float32 and v.shape == (n,)
    v = build_feature_vector(row(), book(), "v12_noveg")
    assert list(v[:25]) == [float(i) if i not in (2, 3) else {2: 20.0, 3: 3.0}[i] for i in range(25)]
    assert v[25] == 29.0  # index 29 follows 24 once 25-28 are dropped
    with pytest.raises(KeyError):
        build_feature_vector(row(), book(), "v13")


def test_market_features_from_the_line_book():
    v = build_feature_vector(row(season_avg=20.0), book(line=24.5, opening=22.5, std=0.5, delta=2.0), "v12")
    assert (v[25], v[26], v[27], v[28]) == (24.5, 22.5, 2.0, 1.0)
    assert (v[50], v[53]) == (0.5, 4.5)
    assert FEATURE_SETS["v12"][-1] == 53  # prop_line_delta (54) is catalogued but in no set yet


def test_without_a_line_market_features_are_nan_and_flag_zero():
    v = build_feature_vector(row(), book(line=None, opening=None, std=None, delta=None), "v12")
    assert all(math.isnan(v[i]) for i in (25, 26, 27, 50, 53))
    assert v[28] == 0.0
    v = build_feature_vector(row(), None, "v9")
    assert math.isnan(v[25]) and v[28] == 0.0


def test_missing_values_stay_nan_never_default_filled():
    v = build_feature_vector(row(missing=(18, 19, 20, 30)), book(), "v12")
    assert all(math.isnan(v[i]) for i in (18, 19, 20, 30))
    v = build_feature_vector(row(missing=(2,)), book(), "v12")
    assert math.isnan(v[53])  # line - missing season average
    v = build_feature_vector(row(), book(std=None, delta=None), "v12")
    assert math.isnan(v[50])


def test_feature_count_mismatch_is_an_error():
    bad = row()._replace(features=(1.0,) * 54)
    with pytest.raises(ValueError):
        build_feature_vector(bad, book(), "v9")


@pytest.mark.parametrize("score, std, expected", [
    (90.0, 3.99, 0.95), (89.9, 4.0, 0.75 + 0.07 + 0.07), (80.0, 5.99, 0.89), (79.9, 6.0, 0.75 + 0.05 + 0.05),
    (70.0, 7.99, 0.85), (69.9, 8.0, 0.79), (None, None, 0.79), (95.0, float("nan"), 0.87),
])
def test_confidence_tiers(score, std, expected):
    assert confidence(score, std, P) == pytest.approx(expected, abs=1e-9)


@pytest.mark.parametrize("x, expected", [(22.25, 22.3), (22.24, 22.2), (-2.25, -2.3), (0.05, 0.1),
                                         (22.0, 22.0)])
def test_round_half_up(x, expected):
    assert round_half_up(x, 1) == expected


def predict(raw, line=24.5, min_edge=3.0, **kw):
    b = book(line=line) if line is not None else book(line=None, opening=None, std=None, delta=None)
    return make_prediction(raw, model_id="m1", family="v12_mae", feature_set="v12", min_edge=min_edge,
                           feature_row=row(**kw), book=b, policy=P, run_id="r")


@pytest.mark.parametrize("raw, min_edge, rec, edge", [
    (27.5, 3.0, "OVER", 3.0), (27.4, 3.0, "HOLD", 2.9), (21.5, 3.0, "UNDER", -3.0), (21.6, 3.0, "HOLD", -2.9),
    (28.5, 4.0, "OVER", 4.0), (28.4, 4.0, "HOLD", 3.9), (20.5, 4.0, "UNDER", -4.0), (24.5, 3.0, "HOLD", 0.0),
    (27.44, 3.0, "HOLD", 2.9), (27.45, 3.0, "OVER", 3.0),  # half-up rounding of the prediction decides
])
def test_recommendation_boundaries(raw, min_edge, rec, edge):
    p = predict(raw, min_edge=min_edge)
    assert p.recommendation == rec and p.edge == pytest.approx(edge, abs=1e-9)


def test_clamp_and_rounding():
    assert predict(-3.0).predicted_points == 0.0
    assert predict(75.2).predicted_points == 60.0
    assert predict(60.04).predicted_points == 60.0
    assert predict(23.25).predicted_points == 23.3
    with pytest.raises(ValueError):
        predict(float("nan"))


def test_no_line_prediction_and_row_fields():
    p = predict(30.0, line=None)
    assert p.recommendation == "NO_LINE"
    assert (p.edge, p.line, p.line_book, p.line_snapshot_ts) == (None, None, None, None)
    p = predict(30.0, score=92.0, std10=5.0)
    assert p.confidence == pytest.approx(0.92)
    assert (p.line, p.line_book, p.line_snapshot_ts) == (24.5, "draftkings", TS)
    assert (p.policy_version, p.run_id) == (P.version, "r")
    assert (p.model_id, p.family, p.feature_set) == ("m1", "v12_mae", "v12")
    assert (p.team_abbr, p.opponent_team_abbr, p.feature_quality_score) == ("LAL", "BOS", 92.0)

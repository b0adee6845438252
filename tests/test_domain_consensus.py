"""Tests for pipeline.domain.consensus: family edges, methods, agreement, determinism, no-line rows."""

import datetime as dt
import json
import statistics

import pytest

from pipeline.domain.consensus import compute_consensus
from pipeline.policy import Policy
from pipeline.schemas import Prediction

P = Policy()
D = dt.date(2026, 2, 22)
TS = dt.datetime(2026, 2, 22, 21, 0, tzinfo=dt.UTC)


def pred(model_id, family, edge, line=24.5, conf=0.85, player="p"):
    predicted = line + edge if line is not None else 20.0 + edge
    rec = "NO_LINE" if line is None else ("OVER" if edge >= 3 else "UNDER" if edge <= -3 else "HOLD")
    return Prediction(D, "20260222_LAL_BOS", player, model_id, family, "v12", predicted, line,
                      "draftkings" if line is not None else None, TS if line is not None else None,
                      edge if line is not None else None, rec, conf, 90.0, "LAL", "BOS")


PREDS = [
    pred("a1", "v12_mae", 6.0), pred("a2", "v12_mae", 4.0),  # family edge 5.0
    pred("b1", "v9_mae", 3.0),  # 3.0: exactly the agreement minimum
    pred("c1", "v9_q43", -1.0, conf=0.75),
    pred("d1", "v12_noveg_mae", 2.9),
]


def test_median_of_families_and_agreement_at_the_minimum():
    c = compute_consensus(PREDS, P)
    assert json.loads(c.family_edges) == {"v12_mae": 5.0, "v9_mae": 3.0, "v9_q43": -1.0, "v12_noveg_mae": 2.9}
    assert list(json.loads(c.family_edges)) == sorted(json.loads(c.family_edges))
    assert c.consensus_edge == 2.95 and c.direction == "OVER"  # median of 4 family edges
    assert c.agreement == 0.5  # v12_mae and v9_mae (|3.0| counts); 2.9 does not
    assert (c.n_families, c.n_models) == (4, 5)
    assert c.consensus_prediction == 24.5 + 2.95
    assert (c.max_edge_model_id, c.max_edge) == ("a1", 6.0)
    assert c.model_ids == ("a1", "a2", "b1", "c1", "d1")
    assert c.mean_confidence == pytest.approx(0.83)
    assert c.dispersion == pytest.approx(statistics.pstdev([5.0, 3.0, -1.0, 2.9]), abs=1e-4)
    assert (c.method, c.policy_version, c.line, c.line_book, c.line_snapshot_ts) == (
        "median_of_families", P.version, 24.5, "draftkings", TS)


def test_methods_from_the_policy():
    mean = compute_consensus(PREDS, Policy(consensus_method="mean_of_families"))
    assert mean.consensus_edge == pytest.approx(2.48, abs=1e-9)  # (5 + 3 - 1 + 2.9) / 4 = 2.475 -> half up
    mx = compute_consensus(PREDS, Policy(consensus_method="max_abs_edge"))
    assert mx.consensus_edge == 6.0 and mx.method == "max_abs_edge"


def test_under_direction_and_sign_of_agreement():
    preds = [pred("a1", "v12_mae", -7.0), pred("b1", "v9_mae", -5.0), pred("c1", "v9_q43", 4.0)]
    c = compute_consensus(preds, P)
    assert (c.consensus_edge, c.direction) == (-5.0, "UNDER")
    assert c.agreement == pytest.approx(2 / 3, abs=1e-4)


def test_order_independent():
    assert compute_consensus(PREDS, P) == compute_consensus(list(reversed(PREDS)), P)


def test_family_of_overrides_prediction_family():
    fam = {"a1": "x", "a2": "x", "b1": "x", "c1": "y", "d1": "y"}
    c = compute_consensus(PREDS, P, family_of=fam)
    assert json.loads(c.family_edges) == {"x": pytest.approx(13 / 3, abs=1e-4), "y": pytest.approx(0.95)}
    assert c.n_families == 2


def test_without_a_line():
    preds = [pred("a1", "v12_mae", 4.0, line=None), pred("b1", "v9_mae", 2.0, line=None)]
    c = compute_consensus(preds, P)
    assert (c.consensus_edge, c.direction, c.agreement, c.line) == (None, None, None, None)
    assert c.consensus_prediction == 23.0  # mean predicted points
    assert c.family_edges == "{}" and c.max_edge_model_id is None


def test_zero_edge_has_no_direction():
    c = compute_consensus([pred("a1", "v12_mae", 0.0)], P)
    assert c.consensus_edge == 0.0 and c.direction is None and c.agreement == 0.0


def test_bad_inputs():
    with pytest.raises(ValueError):
        compute_consensus([], P)
    with pytest.raises(ValueError):
        compute_consensus([pred("a1", "v12_mae", 4.0), pred("b1", "v9_mae", 4.0, player="q")], P)
    with pytest.raises(ValueError):
        compute_consensus([pred("a1", "v12_mae", 4.0), pred("b1", "v9_mae", 4.0, line=25.5)], P)
    with pytest.raises(ValueError):
        compute_consensus([pred("a1", "v12_mae", 4.0), pred("a1", "v12_mae", 5.0)], P)


# --- bias correction (policy.consensus_bias_correction) -------------------------------------------------

CORRECTED = Policy(consensus_bias_correction=True)


def test_bias_correction_off_ignores_biases_and_keeps_todays_numbers():
    c_plain = compute_consensus(PREDS, P)
    c_off = compute_consensus(PREDS, P, bias_of={"a1": 0.5, "a2": 0.5, "b1": 9.0})
    assert c_off == c_plain and c_off.method == "median_of_families"


def test_bias_of_one_family_moves_its_edge_and_the_consensus_by_exactly_the_bias():
    preds = [pred("a1", "v12_mae", 6.0), pred("a2", "v12_mae", 4.0), pred("b1", "v9_mae", 1.0),
             pred("c1", "v9_q43", -2.0)]
    off = compute_consensus(preds, P)
    on = compute_consensus(preds, CORRECTED, bias_of={"a1": 0.5, "a2": 0.5})
    assert json.loads(off.family_edges) == {"v12_mae": 5.0, "v9_mae": 1.0, "v9_q43": -2.0}
    assert json.loads(on.family_edges) == {"v12_mae": 4.5, "v9_mae": 1.0, "v9_q43": -2.0}
    mean_off = compute_consensus(preds, Policy(consensus_method="mean_of_families"))
    mean_on = compute_consensus(
        preds, Policy(consensus_method="mean_of_families", consensus_bias_correction=True),
        bias_of={"a1": 0.5, "a2": 0.5})
    assert mean_off.consensus_edge == pytest.approx(4.0 / 3, abs=0.005)  # (5 + 1 - 2) / 3
    assert mean_on.consensus_edge == pytest.approx(3.5 / 3, abs=0.005)  # moved by 0.5 / 3 families
    assert on.method == "median_of_families+bias_corrected"
    # the max-|edge| model is reported on raw edges; with max_abs_edge the consensus is its corrected edge
    assert (on.max_edge_model_id, on.max_edge) == ("a1", 6.0)
    mx = compute_consensus(preds, Policy(consensus_method="max_abs_edge", consensus_bias_correction=True),
                           bias_of={"a1": 0.5, "a2": 0.5})
    assert mx.consensus_edge == 5.5 and mx.method == "max_abs_edge+bias_corrected"


def test_bias_correction_moves_the_median_when_the_family_is_the_median():
    preds = [pred("a1", "v12_mae", 3.2), pred("b1", "v9_mae", 1.0), pred("c1", "v12_noveg_mae", 5.0)]
    off = compute_consensus(preds, P)
    on = compute_consensus(preds, CORRECTED, bias_of={"a1": 0.5})
    assert off.consensus_edge == 3.2 and on.consensus_edge == 2.7  # the median family moved by its bias
    assert off.consensus_prediction - on.consensus_prediction == pytest.approx(0.5)
    assert (off.agreement, on.agreement) == (round(2 / 3, 4), round(1 / 3, 4))  # 2.7 < agreement_edge 3


def test_bias_correction_can_flip_the_direction_and_model_without_bias_is_corrected_by_zero():
    preds = [pred("a1", "v12_mae", 0.3), pred("b1", "v9_mae", 0.2), pred("c1", "v12_noveg_mae", 0.1)]
    on = compute_consensus(preds, CORRECTED, bias_of={"a1": 0.34, "b1": 0.33, "c1": None})
    assert json.loads(on.family_edges) == {"v12_mae": -0.04, "v9_mae": -0.13, "v12_noveg_mae": 0.1}
    assert (on.consensus_edge, on.direction) == (-0.04, "UNDER")
    # no bias map at all: every model corrected by 0, same numbers as off (only the method says "corrected")
    bare = compute_consensus(preds, CORRECTED)
    assert bare._replace(method="median_of_families") == compute_consensus(preds, P)


def test_predictions_are_not_changed_by_the_correction():
    before = list(PREDS)
    compute_consensus(PREDS, CORRECTED, bias_of={"a1": 1.0})
    assert PREDS == before and PREDS[0].edge == 6.0 and PREDS[0].recommendation == "OVER"

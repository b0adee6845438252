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

"""Tests for pipeline.policy: defaults file, validation errors that name the field, digest, JSON text."""

import json

import pytest

from pipeline.policy import Policy, PolicyError, json_text, load_policy, policy_from_dict
from pipeline.schemas import BOOK_PRIORITY


def test_packaged_default_equals_dataclass_defaults():
    p = load_policy()
    assert p == Policy()
    assert p.digest == Policy().digest
    assert p.book_priority == BOOK_PRIORITY
    assert p.gate_thresholds == {"FIRST": 85, "RETRY": 85, "FINAL_RETRY": 80, "LAST_CALL": 70, "BACKFILL": 70}
    assert (p.line_min, p.line_max, p.staleness_hours) == (5.0, 70.0, 12.0)
    assert (p.edge_floor, p.ultra_edge, p.matchup_floor, p.quality_floor) == (5.0, 6.0, 50.0, 85.0)
    assert p.daily_cap is None and p.team_cap is None and p.max_angles == 5
    assert p.consensus_bias_correction is False


def test_round_trip_through_a_file(tmp_path):
    data = json.loads(Policy().to_json())
    data.update(version="test-2", edge_floor=4.5, daily_cap=10, consensus_method="mean_of_families")
    path = tmp_path / "p.json"
    path.write_text(json.dumps(data))
    p = load_policy(str(path))
    assert (p.version, p.edge_floor, p.daily_cap) == ("test-2", 4.5, 10)
    assert p.consensus_method == "mean_of_families"
    assert isinstance(p.book_priority, tuple)
    assert p.digest != Policy().digest
    assert hash(p) == hash(load_policy(str(path)))


def test_partial_file_takes_defaults(tmp_path):
    path = tmp_path / "p.json"
    path.write_text('{"version": "v", "min_signals": 3}')
    p = load_policy(str(path))
    assert p.min_signals == 3 and p.edge_floor == 5.0


@pytest.mark.parametrize("data, field", [
    ({"version": "v", "edge_flor": 5.0}, "edge_flor"),
    ({"version": "v", "edge_floor": "5"}, "edge_floor"),
    ({"version": "v", "edge_floor": True}, "edge_floor"),
    ({"version": "v", "blacklist_hr": 40}, "blacklist_hr"),
    ({"version": "v", "blacklist_min_graded": 8.5}, "blacklist_min_graded"),
    ({"version": "v", "consensus_method": "vote"}, "consensus_method"),
    ({"version": "v", "consensus_bias_correction": 1}, "consensus_bias_correction"),
    ({"version": "v", "consensus_bias_correction": "true"}, "consensus_bias_correction"),
    ({"version": "v", "gate_thresholds": {"FIRST": 85}}, "gate_thresholds"),
    ({"version": "v", "streaming_run_mode": "NOW"}, "streaming_run_mode"),
    ({"version": "v", "line_min": 80.0}, "line_max"),
    ({"version": "v", "predicted_clamp": [60, 0]}, "predicted_clamp"),
    ({"version": "v", "daily_cap": 0}, "daily_cap"),
    ({"version": "v", "excluded_injury_statuses": ["OUT"]}, "excluded_injury_statuses"),
    ({"version": "v", "signal_count_excludes": ["high_edg"]}, "signal_count_excludes"),
    ({"version": "v", "signal_count_excludes": ["high_edge", "high_edge"]}, "signal_count_excludes"),
    ({"version": "v", "signal_count_excludes": "high_edge"}, "signal_count_excludes"),
    ({"version": "v", "combo_3way_confidence": 1.5}, "combo_3way_confidence"),
    ({"version": "v", "edge_spread_band": [0.9, 0.8]}, "edge_spread_band"),
    ({"version": "v", "three_pt_confidence_z_scale": 0}, "three_pt_confidence_z_scale"),
    ({"version": "v", "blowout_confidence_minutes_scale": -16}, "blowout_confidence_minutes_scale"),
    ({"version": "v", "prop_line_drop": 0}, "prop_line_drop"),
    ({"edge_floor": 5.0}, "version"),
])
def test_bad_values_name_the_field_and_show_an_example(data, field):
    with pytest.raises(PolicyError) as err:
        policy_from_dict(data)
    msg = str(err.value)
    assert repr(field) in msg
    assert "example" in msg or "valid fields" in msg


def test_bad_policy_file_names_the_field_and_file(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text('{"version": "v", "quality_floor": 185}')
    with pytest.raises(PolicyError, match=r"bad\.json.*'quality_floor'.*\"quality_floor\": 85\.0"):
        load_policy(str(path))


def test_unreadable_and_non_json_files(tmp_path):
    with pytest.raises(PolicyError, match="cannot read"):
        load_policy(str(tmp_path / "missing.json"))
    path = tmp_path / "x.json"
    path.write_text("{not json")
    with pytest.raises(PolicyError, match="not valid JSON"):
        load_policy(str(path))


def test_direct_construction_is_validated_too():
    with pytest.raises(PolicyError, match="'min_agreement'"):
        Policy(min_agreement=1.5)


def test_min_edge_by_loss_and_gate_threshold():
    p = Policy()
    assert p.min_edge("MAE") == 3.0
    assert p.min_edge("Quantile:alpha=0.43") == 4.0
    assert p.gate_threshold("FINAL_RETRY") == 80
    with pytest.raises(ValueError):
        p.min_edge("RMSE")
    with pytest.raises(ValueError):
        p.gate_threshold("SOMETIMES")


def test_signal_count_excludes_reads_from_a_file(tmp_path):
    path = tmp_path / "p.json"
    path.write_text('{"version": "v", "signal_count_excludes": ["model_health", "high_edge"]}')
    assert load_policy(str(path)).signal_count_excludes == ("model_health", "high_edge")
    assert Policy().signal_count_excludes == ()


def _spec(model_id, family, loss, alpha, *, enabled=True):
    import datetime as dt

    from models.registry import FAMILIES, ModelSpec

    fam = FAMILIES[family]
    return ModelSpec(model_id=model_id, family=family, feature_set=fam.feature_set, loss=loss,
                     quantile_alpha=alpha, training_start=dt.date(2025, 10, 21),
                     training_end=dt.date(2026, 1, 15), artifact_uri=f"/nowhere/{model_id}.cbm", sha256="0",
                     feature_count=0, enabled=enabled, status="promoted" if enabled else "failed_gates")


def test_model_min_edge_comes_from_the_policy_by_loss():
    """commands.common.model_infos: each model's recommendation minimum is Policy.min_edge(loss)."""
    import datetime as dt

    from models.registry import Registry
    from pipeline.commands.common import model_infos

    registry = Registry([
        _spec("mae", "v12_mae", "MAE", None),
        _spec("q43", "v12_vegas_q43", "Quantile:alpha=0.43", 0.43),
        _spec("off", "v9_mae", "MAE", None, enabled=False),
    ])
    day = [dt.date(2026, 2, 22)]
    specs, infos = model_infos(registry, day, Policy())
    assert [(i.model_id, i.min_edge) for i in infos] == [("mae", 3.0), ("q43", 4.0)]  # "off" is never scored
    assert [s.model_id for s in specs] == ["mae", "q43"]
    _, infos = model_infos(registry, day, Policy(min_edge_mae=2.5, min_edge_quantile=4.5))
    assert [(i.model_id, i.min_edge) for i in infos] == [("mae", 2.5), ("q43", 4.5)]


def test_json_text_is_canonical_and_has_no_nan():
    assert json_text({"b": 1.234567, "a": float("nan")}) == '{"a":null,"b":1.2346}'
    assert json_text({"b": 1, "a": 2}, sort_keys=False) == '{"b":1,"a":2}'


def test_bias_correction_is_a_boolean_field_read_from_a_file(tmp_path):
    path = tmp_path / "p.json"
    path.write_text('{"version": "v", "consensus_bias_correction": true}')
    p = load_policy(str(path))
    assert p.consensus_bias_correction is True
    assert p.digest != Policy(version="v").digest


def test_model_infos_carry_the_registry_holdout_bias(capsys):
    """commands.common.model_infos: ModelInfo.holdout_bias is the registry's holdout vegas_bias (None when
    not recorded); with the correction on, the launch line counts the models corrected by 0."""
    import datetime as dt

    from models.registry import Registry
    from pipeline.commands.common import model_infos

    with_bias = _spec("mae", "v12_mae", "MAE", None)
    with_bias.holdout_metrics["vegas_bias"] = 0.34
    registry = Registry([with_bias, _spec("q43", "v12_vegas_q43", "Quantile:alpha=0.43", 0.43)])
    day = [dt.date(2026, 2, 22)]
    _, infos = model_infos(registry, day, Policy())
    assert [(i.model_id, i.holdout_bias) for i in infos] == [("mae", 0.34), ("q43", None)]
    assert "bias correction" not in capsys.readouterr().err
    model_infos(registry, day, Policy(consensus_bias_correction=True))
    err = capsys.readouterr().err
    assert "mae +0.34" in err and "1 model(s) without a recorded bias, corrected by 0 (q43)" in err


def test_stream_model_refs_carry_the_registry_holdout_bias():
    """pipeline.transforms.streaming.model_refs (the stream reads the registry per date): the ModelInfo it
    scores with carries the same holdout bias as the batch's model_infos."""
    from pipeline.transforms.streaming import model_refs

    with_bias = _spec("mae", "v12_mae", "MAE", None)
    with_bias.holdout_metrics["vegas_bias"] = 0.21
    refs = model_refs([with_bias, _spec("q43", "v12_vegas_q43", "Quantile:alpha=0.43", 0.43)], Policy())
    assert [(r.info().model_id, r.info().holdout_bias) for r in refs] == [("mae", 0.21), ("q43", None)]

"""Tests for models.train: data loading, training, gating, registering, determinism, the sample models."""

from __future__ import annotations

import datetime as dt
import json
import os

import pandas as pd
import pytest

os.environ.setdefault("NO_GCE_CHECK", "true")

from models import governance  # noqa: E402
from models.registry import load_registry  # noqa: E402
from models.synthetic import synthetic_frame, write_layout  # noqa: E402
from models.train import (  # noqa: E402
    DEFAULT_HOLDOUT,
    DEFAULT_WINDOW,
    SAMPLE_DIR,
    SAMPLE_FAMILIES,
    TrainParams,
    is_dnp,
    load_labeled_frame,
    main,
    parse_window,
    train_family,
)

START = dt.date(2025, 10, 21)
WINDOW = "2025-10-21:2025-11-09"
HOLDOUT = "2025-11-10:2025-11-17"


@pytest.fixture(scope="module")
def season(tmp_path_factory):
    folder = tmp_path_factory.mktemp("season")
    write_layout(synthetic_frame(START, 28, players=50, seed=11), str(folder))
    return str(folder)


def test_is_dnp_rule():
    pts = pd.Series([0.0, 0.0, 0.0, None, 12.0, 5.0])
    mins = pd.Series([0.0, None, 12.0, 30.0, 25.0, 20.0])
    flag = pd.Series([False, False, False, False, False, True])
    assert is_dnp(pts, mins, flag).tolist() == [True, True, False, True, False, True]


def test_load_labeled_frame_joins_and_drops_dnp(season):
    frame = load_labeled_frame(season, START, START + dt.timedelta(days=2))
    raw = synthetic_frame(START, 3, players=50, seed=11)  # same generator prefix: same first 3 days
    assert len(frame) == int((~raw["is_dnp"]).sum())
    assert frame["game_date"].min() == START and frame["game_date"].max() == START + dt.timedelta(days=2)
    assert not frame["is_dnp"].any()
    assert frame.attrs["excluded"] == {"no_box_score": 0, "dnp": int(raw["is_dnp"].sum())}
    with pytest.raises(ValueError, match="no feature rows"):
        load_labeled_frame(season, dt.date(2024, 1, 1), dt.date(2024, 1, 2))


def test_parse_window():
    assert parse_window("2025-10-21:2026-01-15") == (dt.date(2025, 10, 21), dt.date(2026, 1, 15))
    for bad in ("2025-10-21", "2026-01-15:2025-10-21", "x:y"):
        with pytest.raises(ValueError, match="START:END"):
            parse_window(bad)


def _train(season, tmp_path, *extra) -> dict:
    reg = str(tmp_path / "reg" / "registry.json")
    rc = main(["--family", "v9_q43", "--data", season, "--window", WINDOW, "--holdout", HOLDOUT,
               "--registry", reg, "--iterations", "40", "--threads", "1", *extra])
    assert rc == 0
    return json.loads(open(reg).read())


def test_train_cli_registers_validated_deterministic_model(season, tmp_path, capsys):
    doc1 = _train(season, tmp_path / "a")
    out = capsys.readouterr().out
    assert "MAE on lined rows: model" in out and "vs market line" in out and "edge-5+ HR" in out
    doc2 = _train(season, tmp_path / "b")
    (m1,), (m2,) = doc1["models"], doc2["models"]
    assert m1["model_id"] == "catboost_v9_q43_train1021_1109"
    assert m1["artifact_uri"] == "catboost_v9_q43_train1021_1109.cbm"
    assert (m1["family"], m1["feature_set"], m1["loss"], m1["feature_count"]) == (
        "v9_q43", "v9", "Quantile:alpha=0.43", 33)
    assert m1["sha256"] == m2["sha256"] and m1["holdout_metrics"] == m2["holdout_metrics"]
    assert m1["enabled"] == (m1["failed_gates"] == []) and m1["status"] in ("promoted", "failed_gates")
    load_registry(str(tmp_path / "a" / "reg" / "registry.json")).validate()


def test_failed_gates_register_disabled_without_override(season, tmp_path, capsys):
    train = load_labeled_frame(season, *parse_window(WINDOW))
    holdout = load_labeled_frame(season, *parse_window(HOLDOUT))
    impossible = governance.GateThresholds(min_bets=10**6)
    kwargs = dict(window=parse_window(WINDOW), holdout_window=parse_window(HOLDOUT), out_dir=str(tmp_path),
                  params=TrainParams(iterations=20, thread_count=1), thresholds=impossible)
    spec = train_family("v12_noveg_mae", train, holdout, **kwargs)
    assert (spec.enabled, spec.status, spec.failed_gates[0]) == (False, "failed_gates", "edge3_hit_rate")
    assert spec.enabled_override_reason is None
    with pytest.raises(TypeError):
        train_family("v12_noveg_mae", train, holdout, force_enable="local demo needs models", **kwargs)
    # the CLI has no override either: the old flag is an error, not silently ignored
    reg = tmp_path / "reg.json"
    assert main(["--family", "v9_mae", "--data", season, "--registry", str(reg), "--force-enable", "x"]) == 2
    assert "--force-enable was removed" in capsys.readouterr().err and not reg.exists()
    with pytest.raises(ValueError, match="must start after"):
        train_family("v9_mae", train, holdout, **{**kwargs, "holdout_window": parse_window(WINDOW)})


def test_cli_usage_errors(capsys):
    assert main([]) == 2
    assert main(["--family", "v9_mae", "--window", "2025-10-21"]) == 2
    assert "START:END" in capsys.readouterr().err


def _sample_registry():
    return load_registry(str(SAMPLE_DIR / "registry.json"))


def test_sample_registry_is_valid_and_complete():
    reg = _sample_registry().validate()
    assert sorted(m.family for m in reg.models) == sorted(SAMPLE_FAMILIES)
    for m in reg.models:
        assert os.path.getsize(m.artifact_uri) < 2 * 1024 * 1024
        # domain.md section 9: enabled exactly when every gate passed; no override
        assert m.enabled == (m.failed_gates == []) and m.status in ("promoted", "failed_gates"), m.model_id
        # built by the documented command: its default windows
        assert (m.training_start, m.training_end) == DEFAULT_WINDOW, m.model_id
        assert (m.holdout_start, m.holdout_end) == DEFAULT_HOLDOUT, m.model_id
        assert m.holdout_metrics["n_rows"] > 0 and len(m.gates) == 5


@pytest.mark.slow
def test_retraining_a_sample_family_reproduces_its_registry_entry(tmp_path):
    """The documented settings are deterministic: same holdout metrics and the same artifact hash."""
    reg = _sample_registry()
    spec = min(reg.models, key=lambda m: m.feature_count)  # a v9 family: the fastest to retrain
    params = spec.training_params
    rc = main(["--family", spec.family, "--registry", str(tmp_path / "registry.json"),
               "--seed", str(params["seed"]), "--threads", str(params["thread_count"]),
               "--iterations", str(params["iterations"])])
    assert rc == 0
    again = load_registry(str(tmp_path / "registry.json")).get(spec.model_id)
    assert again.training_params["data"] == params["data"], (
        "the simulated season changed since the sample models were trained: rerun "
        "`props train --all-sample-families`")
    assert again.holdout_metrics == spec.holdout_metrics
    assert again.gates == spec.gates
    assert again.sha256 == spec.sha256

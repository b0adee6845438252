"""Tests for models.registry: parsing, launch-time validation, the leakage guard, relative artifacts."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import os

import pytest

os.environ.setdefault("NO_GCE_CHECK", "true")

from models.registry import (  # noqa: E402
    FAMILIES,
    ModelSpec,
    Registry,
    RegistryError,
    load_registry,
    make_model_id,
)
from models.synthetic import synthetic_frame  # noqa: E402
from models.train import TrainParams, fit_model, model_bytes  # noqa: E402


@pytest.fixture(scope="module")
def artifact(tmp_path_factory):
    """A tiny real v9 CatBoost artifact (33 features) in its own folder, with its registry spec."""
    folder = tmp_path_factory.mktemp("reg")
    frame = synthetic_frame(dt.date(2025, 10, 21), 6, players=20, seed=5)
    blob = model_bytes(fit_model(frame, "v9_mae", TrainParams(iterations=10, depth=3, thread_count=1)))
    path = folder / "m.cbm"
    path.write_bytes(blob)
    spec = ModelSpec(model_id="catboost_v9_mae_train1021_1026", family="v9_mae", feature_set="v9", loss="MAE",
                     quantile_alpha=None, training_start=dt.date(2025, 10, 21),
                     training_end=dt.date(2025, 10, 26),
                     artifact_uri=str(path), sha256=hashlib.sha256(blob).hexdigest(), feature_count=33,
                     enabled=True, status="promoted", holdout_start=dt.date(2025, 10, 27),
                     holdout_end=dt.date(2025, 10, 31))
    return folder, spec


def _write(folder, specs) -> str:
    uri = str(folder / "registry.json")
    Registry(specs, uri).write()
    return uri


def test_roundtrip_relative_artifact_and_digest(artifact, monkeypatch, tmp_path):
    folder, spec = artifact
    uri = _write(folder, [spec])
    doc = json.loads(open(uri).read())
    assert doc["registry_version"] == 1
    assert doc["models"][0]["artifact_uri"] == "m.cbm"  # stored relative to the registry folder
    monkeypatch.chdir(tmp_path)  # resolves from any working directory
    reg = load_registry(uri).validate()
    assert reg.models == [spec]
    assert reg.digest == load_registry(uri).digest
    changed = reg.upsert(dataclasses.replace(spec, enabled=False, status="failed_gates"))
    assert changed.digest != reg.digest and len(changed.models) == 1


@pytest.mark.parametrize("change, message", [
    ({"family": "v11_mae"}, "unknown family 'v11_mae'"),
    ({"feature_set": "v13"}, "unknown feature_set 'v13'"),
    ({"feature_set": "v12", "feature_count": 54}, "does not match family v9_mae"),
    ({"loss": "Quantile:alpha=0.43", "quantile_alpha": 0.43}, "loss 'Quantile:alpha=0.43'"),
    ({"feature_count": 50}, "feature_count 50 but feature set v9 has 33"),
    ({"status": "failed_gates"}, "enabled with status 'failed_gates'; only a promoted model may be enabled"),
    ({"status": "override"}, "unknown status 'override'"),
    ({"failed_gates": ["vegas_bias"]}, r"enabled but failed its promotion gates \['vegas_bias'\].*"
                                       r"\"enabled\": false, \"status\": \"failed_gates\""),
    ({"gates": [{"gate": "over_hit_rate", "passed": False}]},
     r"enabled but failed its promotion gates \['over_hit_rate'\]"),
    ({"enabled": False, "failed_gates": ["vegas_bias"]}, "status promoted but failed gates"),
    ({"holdout_start": dt.date(2025, 10, 26)}, "holdout starts"),
    ({"sha256": "0" * 64}, "sha256 mismatch"),
    ({"artifact_uri": "/nonexistent/m.cbm"}, "missing or unreadable"),
])
def test_validate_names_model_and_fix(artifact, change, message):
    _, spec = artifact
    bad = dataclasses.replace(spec, **change)
    with pytest.raises(RegistryError, match=message) as e:
        Registry([bad], "mem://registry.json").validate()
    assert spec.model_id in str(e.value)


def test_validate_feature_count_against_artifact(artifact, tmp_path):
    """A v12_noveg entry pointing at a 33-feature artifact: the artifact's count is checked."""
    _, spec = artifact
    fam = FAMILIES["v12_noveg_mae"]
    bad = dataclasses.replace(spec, family="v12_noveg_mae", feature_set=fam.feature_set, feature_count=50)
    with pytest.raises(RegistryError, match="artifact has 33 features, registry says 50"):
        Registry([bad]).validate()


def test_duplicate_ids_and_unknown_fields(artifact):
    folder, spec = artifact
    with pytest.raises(RegistryError, match="duplicate model_id"):
        Registry([spec, spec]).validate()
    uri = _write(folder, [spec])
    doc = json.loads(open(uri).read())
    doc["models"][0]["enabeld"] = True
    (folder / "typo.json").write_text(json.dumps(doc))
    with pytest.raises(RegistryError, match=r"train1021_1026: unknown registry fields \['enabeld'\]"):
        load_registry(str(folder / "typo.json"))
    with pytest.raises(RegistryError, match="missing or unreadable"):
        load_registry(str(folder / "nope.json"))


def test_id_spelling_is_never_interpreted(artifact):
    """An id that reads like another family is served by its explicit fields only."""
    _, spec = artifact
    odd = dataclasses.replace(spec, model_id="catboost_v12_vegas_q45_whatever")
    reg = Registry([odd]).validate()
    assert reg.models[0].family == "v9_mae" and reg.models[0].loss == "MAE"


def test_eligible_for_is_the_leakage_guard(artifact):
    _, spec = artifact
    disabled = dataclasses.replace(spec, model_id="off", enabled=False, status="failed_gates")
    reg = Registry([spec, disabled])
    assert reg.enabled() == [spec]
    assert reg.eligible_for(dt.date(2025, 10, 26)) == []  # the training end itself
    assert reg.eligible_for(dt.date(2025, 10, 20)) == []
    assert reg.eligible_for(dt.date(2025, 10, 27)) == [spec]


def test_families_table_and_model_id():
    assert FAMILIES["v12_vegas_q43"].feature_set == "v12" and FAMILIES["v12_vegas_q43"].quantile_alpha == 0.43
    assert FAMILIES["v9_low_vegas"].loss == "MAE"
    assert len(FAMILIES) == 10
    # The recommendation minimum is the policy's, by loss: the family table carries none.
    assert "min_edge" not in {f.name for f in dataclasses.fields(FAMILIES["v12_mae"])}
    model_id = make_model_id("v12_mae", dt.date(2025, 10, 21), dt.date(2026, 1, 15))
    assert model_id == "catboost_v12_mae_train1021_0115"


def test_a_disabled_model_that_failed_its_gates_is_valid_and_never_scored(artifact):
    """domain.md section 9: a model that fails a gate is registered disabled; it is never eligible."""
    _, spec = artifact
    failed = dataclasses.replace(spec, model_id="catboost_v9_mae_failed", enabled=False,
                                 status="failed_gates", failed_gates=["tier_mean_error"],
                                 gates=[{"gate": "tier_mean_error", "passed": False}])
    reg = Registry([spec, failed]).validate()
    assert reg.enabled() == [spec]
    assert [m.model_id for m in reg.eligible_for(dt.date(2026, 2, 22))] == [spec.model_id]


def test_enabling_a_failed_model_is_a_launch_error(artifact, tmp_path):
    """The old `override` (enabled despite failed gates) stops the launch, naming the model and the fix."""
    from pipeline.commands.common import LaunchError, parse_options
    from pipeline.commands.common import load_registry as launch_registry

    _, spec = artifact
    forced = dataclasses.replace(spec, enabled=True, status="promoted", failed_gates=["over_hit_rate"])
    uri = _write(tmp_path, [forced])
    with pytest.raises(LaunchError, match=r"catboost_v9_mae_train1021_1026: enabled but failed its promotion "
                                          r"gates \['over_hit_rate'\]"):
        launch_registry(parse_options([f"--registry={uri}"]))


def test_sample_registry_disables_the_models_that_failed_their_gates():
    from pipeline.options import SAMPLE_REGISTRY

    reg = load_registry(str(SAMPLE_REGISTRY)).validate(check_artifacts=False)
    for m in reg.models:
        assert m.enabled == (m.status == "promoted") == (m.failed_gates == []), m.model_id
        assert m.enabled_override_reason is None, m.model_id
    disabled = sorted(m.family for m in reg.models if not m.enabled)
    assert disabled == ["v12_noveg_mae", "v12_vegas_q43", "v9_mae", "v9_q43"]  # sim-1.3 market
    enabled_families = {m.family for m in reg.enabled()}
    assert len(enabled_families) >= 2  # consensus still has several families to combine
    assert enabled_families == {"v12_mae", "v12_noveg_q43"}

"""Tests for models.handler: the CatBoost ModelHandler and the keyed handler under RunInference."""

from __future__ import annotations

import datetime as dt
import hashlib
import os

import numpy as np
import pytest

os.environ.setdefault("NO_GCE_CHECK", "true")

import apache_beam as beam  # noqa: E402
from apache_beam.metrics.metric import MetricsFilter  # noqa: E402
from apache_beam.ml.inference.base import PredictionResult, RunInference  # noqa: E402
from apache_beam.testing.test_pipeline import TestPipeline as BeamTestPipeline  # noqa: E402
from apache_beam.testing.util import assert_that, equal_to  # noqa: E402

from models.features import feature_matrix  # noqa: E402
from models.handler import METRICS_NAMESPACE, CatBoostModelHandler, build_keyed_handler  # noqa: E402
from models.registry import FAMILIES, ModelSpec  # noqa: E402
from models.synthetic import synthetic_frame  # noqa: E402
from models.train import TrainParams, fit_model, model_bytes  # noqa: E402
from pipeline.schemas import FEATURE_SETS  # noqa: E402


def _spec(family: str, path: str, blob: bytes, model_id: str) -> ModelSpec:
    fam = FAMILIES[family]
    return ModelSpec(model_id=model_id, family=family, feature_set=fam.feature_set, loss=fam.loss,
                     quantile_alpha=fam.quantile_alpha, training_start=dt.date(2025, 10, 21),
                     training_end=dt.date(2025, 11, 5), artifact_uri=path,
                     sha256=hashlib.sha256(blob).hexdigest(),
                     feature_count=len(FEATURE_SETS[fam.feature_set]),
                     enabled=True, status="promoted")


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory):
    """Two tiny real CatBoost models (v9: 33 features, v12_noveg quantile: 50 features) and data."""
    tmp = tmp_path_factory.mktemp("models")
    frame = synthetic_frame(dt.date(2025, 10, 21), 16, players=30, seed=3)
    params = TrainParams(iterations=30, depth=4, thread_count=1)
    out = {}
    for family in ("v9_mae", "v12_noveg_q43"):
        model = fit_model(frame, family, params)
        blob = model_bytes(model)
        path = str(tmp / f"{family}.cbm")
        with open(path, "wb") as f:
            f.write(blob)
        out[family] = (model, _spec(family, path, blob, f"tiny_{family}"))
    return frame, out


def _examples(frame, feature_set: str, n: int) -> list[tuple[str, np.ndarray]]:
    x = feature_matrix(frame.head(n), feature_set)
    return [(f"row{i}", x[i]) for i in range(n)]


def test_run_inference_matches_bare_predict(tiny_models):
    frame, models = tiny_models
    model, spec = models["v9_mae"]
    handler = CatBoostModelHandler(spec.artifact_uri, model_id=spec.model_id, feature_count=33)
    loaded = handler.load_model()
    batch = _examples(frame, "v9", 20)
    results = list(handler.run_inference(batch, loaded))
    expected = model.predict(np.stack([v for _, v in batch]))
    assert [r.example[0] for r in results] == [k for k, _ in batch]
    assert all(r.model_id == spec.model_id for r in results)
    np.testing.assert_allclose([r.inference for r in results], expected, rtol=0, atol=1e-9)
    assert all(isinstance(r.inference, float) for r in results)


def test_wrong_vector_length_is_a_clear_error(tiny_models):
    frame, models = tiny_models
    _, spec = models["v9_mae"]
    handler = CatBoostModelHandler(spec.artifact_uri, model_id=spec.model_id, feature_count=33)
    batch = _examples(frame, "v9", 3) + [("bad", np.zeros(50, dtype=np.float32))]
    with pytest.raises(ValueError, match=r"tiny_v9_mae: row 'bad' .*\(50,\), expected \(33,\)"):
        handler.run_inference(batch, handler.load_model())


def test_load_checks_hash_and_feature_count(tiny_models):
    _, models = tiny_models
    _, spec = models["v9_mae"]
    with pytest.raises(ValueError, match="sha256"):
        CatBoostModelHandler(spec.artifact_uri, model_id="m", feature_count=33,
                             expected_sha256="0" * 64).load_model()
    with pytest.raises(ValueError, match="33 features, handler expects 54"):
        CatBoostModelHandler(spec.artifact_uri, model_id="m", feature_count=54).load_model()
    with pytest.raises(OSError):
        CatBoostModelHandler(spec.artifact_uri + ".missing", model_id="m", feature_count=33).load_model()


def test_keyed_handler_scores_several_models_and_dead_letters_a_bad_batch(tiny_models):
    frame, models = tiny_models
    specs = [spec for _, spec in models.values()]
    good, expected = [], []
    for model, spec in models.values():
        batch = _examples(frame, spec.feature_set, 25)
        preds = model.predict(np.stack([v for _, v in batch]))
        good += [(spec.model_id, ex) for ex in batch]
        expected += [(spec.model_id, key, round(float(p), 9))
                     for (key, _), p in zip(batch, preds, strict=True)]
    # The bad input: a v9 model fed a 50-wide vector (its batch fails as a whole; nothing crashes).
    bad = [(models["v9_mae"][1].model_id, ("bad", np.zeros(50, dtype=np.float32)))]

    p = BeamTestPipeline(runner="FnApiRunner")
    scored, failed = (p | "Good" >> beam.Create(good)
                      | "ScoreGood" >> RunInference(build_keyed_handler(specs, batch_size=64))
                      .with_exception_handling())
    bad_scored, bad_failed = (p | "Bad" >> beam.Create(bad)
                              | "ScoreBad" >> RunInference(build_keyed_handler(specs, batch_size=64))
                              .with_exception_handling())

    def flatten(kv):
        model_id, result = kv
        assert isinstance(result, PredictionResult) and result.model_id == model_id
        return model_id, result.example[0], round(result.inference, 9)

    assert_that(scored | "Flatten" >> beam.Map(flatten), equal_to(expected), label="CheckScored")
    assert_that(failed.failed_inferences | "CountFailed" >> beam.combiners.Count.Globally(), equal_to([0]),
                label="NoFailures")
    assert_that(bad_scored | "CountBadScored" >> beam.combiners.Count.Globally(), equal_to([0]),
                label="BadNotScored")
    assert_that(bad_failed.failed_inferences
                | "ErrorText" >> beam.Map(lambda kv: "expected (33,)" in str(kv[1])),
                equal_to([True]), label="BadFailed")
    result = p.run()
    result.wait_until_finish()
    query = result.metrics().query(MetricsFilter().with_namespace(METRICS_NAMESPACE))
    counters = {c.key.metric.name: c.committed for c in query["counters"]}
    assert counters["rows"] == 50
    assert counters["bad_vectors"] == 1


def test_build_keyed_handler_rejects_empty_and_duplicates(tiny_models):
    _, models = tiny_models
    _, spec = models["v9_mae"]
    with pytest.raises(ValueError, match="no models"):
        build_keyed_handler([])
    with pytest.raises(ValueError, match="duplicate"):
        build_keyed_handler([spec, spec])
    kh = build_keyed_handler([spec], batch_size=128)
    assert kh.batch_elements_kwargs() == {"min_batch_size": 128, "max_batch_size": 128}

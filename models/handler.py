"""CatBoost model handler for Beam's RunInference, and the keyed handler over every registry model.

``CatBoostModelHandler`` serves one ``.cbm`` artifact, read through Beam's ``FileSystems`` (so a local
path and a ``gs://`` URI behave the same). Its examples are ``(row_key, float32 vector)`` pairs; a batch
is stacked into one matrix and scored with a single ``predict`` call. ``build_keyed_handler`` puts one such
handler per registry model behind a ``KeyedModelHandler`` so one ``RunInference`` step scores every model::

    scored, failed = (
        keyed_examples                                  # (model_id, (row_key, vector))
        | "ScoreModels" >> RunInference(build_keyed_handler(specs)).with_exception_handling())
    # scored: (model_id, PredictionResult(example=(row_key, vector), inference=float, model_id=model_id))
    # failed.failed_inferences: (failed batch, exception) -> dead letters

Metrics: counters ``batches``, ``rows``, ``load_failures``, ``bad_vectors`` and the distribution
``batch_size`` under the namespace ``CatBoostModelHandler``; Beam's own RunInference metrics (latency,
load time, counts) go under the same namespace for a single handler and under ``BeamML_KeyedModels``
(with per-model prefixes) for the keyed handler.

Batching: Beam ignores the batching settings of the per-key handlers inside a ``KeyedModelHandler``, so
the keyed handler built here pins ``min_batch_size``/``max_batch_size`` itself (beam-notes.md: pin
batch sizes). A batch mixes models; the keyed handler splits it per model. A batch that fails (e.g. a
wrong vector length) fails as a whole and goes to the failed output with its exception.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from functools import partial
from itertools import repeat
from operator import itemgetter
from typing import Any

import numpy as np
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics
from apache_beam.ml.inference.base import KeyedModelHandler, KeyModelMapping, ModelHandler, PredictionResult
from catboost import CatBoostRegressor

from models.registry import ModelSpec

METRICS_NAMESPACE = "CatBoostModelHandler"

ScoringExample = tuple[str, np.ndarray]
_new_prediction_result = partial(tuple.__new__, PredictionResult)
_second = itemgetter(1)


class CatBoostModelHandler(ModelHandler[ScoringExample, PredictionResult, CatBoostRegressor]):
    """Loads one CatBoost regressor and scores ``(row_key, vector)`` examples in batches.

    Args:
      model_uri: the ``.cbm`` artifact (local path or gs://).
      model_id: stamped on every PredictionResult.
      feature_count: the length every vector must have (the model's feature set size).
      min_batch_size, max_batch_size: Beam batching (pinned; see beam-notes.md).
      thread_count: CatBoost predict threads (1 is fastest for batches of a few hundred rows).
      expected_sha256: if set, the loaded bytes must have this hash (guards an artifact replaced after
        the launch-time registry validation).
      large_model: share one copy per worker process (Beam's ``large_model``).
    """

    def __init__(self, model_uri: str, *, model_id: str, feature_count: int,
                 min_batch_size: int | None = 64, max_batch_size: int | None = 512, thread_count: int = 1,
                 expected_sha256: str | None = None, large_model: bool = False):
        super().__init__(min_batch_size=min_batch_size, max_batch_size=max_batch_size,
                         large_model=large_model)
        if feature_count <= 0:
            raise ValueError(f"model {model_id}: feature_count must be positive, got {feature_count}")
        self._model_uri = model_uri
        self._model_id = model_id
        self._feature_count = int(feature_count)
        self._thread_count = int(thread_count)
        self._expected_sha256 = expected_sha256
        self._batches = Metrics.counter(METRICS_NAMESPACE, "batches")
        self._rows = Metrics.counter(METRICS_NAMESPACE, "rows")
        self._load_failures = Metrics.counter(METRICS_NAMESPACE, "load_failures")
        self._bad_vectors = Metrics.counter(METRICS_NAMESPACE, "bad_vectors")
        self._batch_size = Metrics.distribution(METRICS_NAMESPACE, "batch_size")

    @property
    def model_id(self) -> str:
        return self._model_id

    def load_model(self) -> CatBoostRegressor:
        try:
            with FileSystems.open(self._model_uri) as f:
                blob = f.read()
            if self._expected_sha256 is not None:
                digest = hashlib.sha256(blob).hexdigest()
                if digest != self._expected_sha256:
                    raise ValueError(f"model {self._model_id}: artifact {self._model_uri} sha256 {digest} "
                                     f"!= registered {self._expected_sha256}")
            model = CatBoostRegressor()
            model.load_model(blob=blob)
            if model.feature_names_ is not None and len(model.feature_names_) != self._feature_count:
                raise ValueError(f"model {self._model_id}: artifact has {len(model.feature_names_)} "
                                 f"features, handler expects {self._feature_count}")
        except Exception:
            self._load_failures.inc()
            raise
        return model

    def run_inference(self, batch: Sequence[ScoringExample], model: CatBoostRegressor,
                      inference_args: dict[str, Any] | None = None) -> Iterable[PredictionResult]:
        n = self._feature_count
        vectors = list(map(_second, batch))
        # Every vector must hold exactly n values: each has length n (one C-level pass) and together they
        # hold n per row (so none is 2-D). A per-row Python shape check cost ~10 % of a 512-row batch.
        try:
            ok = set(map(len, vectors)) == {n}
            flat = np.concatenate(vectors, dtype=np.float32) if ok else None
            ok = ok and flat.size == n * len(vectors)
        except (TypeError, ValueError):
            ok = False
        if not ok:
            self._raise_bad_vector(batch)
        # One C-level copy (np.concatenate is about 2x faster than np.array/np.stack on a list of rows).
        matrix = flat.reshape(len(vectors), n)
        preds = model.predict(matrix, thread_count=self._thread_count)
        self._batches.inc()
        self._rows.inc(len(batch))
        self._batch_size.update(len(batch))
        # PredictionResult(example, inference, model_id) built without its Python-level __new__ (hot path).
        return list(map(_new_prediction_result, zip(batch, preds.tolist(), repeat(self._model_id))))

    def _raise_bad_vector(self, batch: Sequence[ScoringExample]) -> None:
        n = self._feature_count
        for key, vec in batch:
            shape = getattr(vec, "shape", None)
            if shape != (n,):
                self._bad_vectors.inc()
                raise ValueError(f"model {self._model_id}: row {key!r} has a feature vector of shape "
                                 f"{shape if shape is not None else type(vec).__name__}, expected ({n},)")
        self._bad_vectors.inc()
        raise ValueError(f"model {self._model_id}: the batch's feature vectors are not {n} numbers each")

    def get_num_bytes(self, batch: Sequence[ScoringExample]) -> int:
        # Cheap estimate instead of Beam's default pickle of the whole batch.
        return sum(getattr(vec, "nbytes", 0) + len(key) for key, vec in batch)

    def get_metrics_namespace(self) -> str:
        return METRICS_NAMESPACE


class _PinnedBatchKeyedModelHandler(KeyedModelHandler):
    """A KeyedModelHandler that pins batch sizes (Beam drops the per-key handlers' batching settings)."""

    def __init__(self, mappings: list[KeyModelMapping], *, batch_size: int, max_models_per_worker_hint: int):
        super().__init__(mappings, max_models_per_worker_hint=max_models_per_worker_hint)
        self._pinned_batching = {"min_batch_size": batch_size, "max_batch_size": batch_size}

    def batch_elements_kwargs(self) -> Mapping[str, Any]:
        return dict(self._pinned_batching)

    def share_model_across_processes(self) -> bool:
        """False: each worker process holds its own models. Beam's KeyedModelHandler over several models
        shares them across processes by default, through a local multiprocessing server whose small
        socket round trips left the 11-game slate's scoring stage idle ~0.5 s of its 1 s (Nagle /
        delayed-ACK waits, not CPU; bench/bench_slate.py, notes/h-slate.md). A sample model is ~0.5 MB,
        so a copy per process costs nothing worth sharing."""
        return False


def handler_for(spec: ModelSpec, *, batch_size: int | None = 512,
                thread_count: int = 1) -> CatBoostModelHandler:
    """The single-model handler of a registry entry (``batch_size=None``: no batching settings)."""
    return CatBoostModelHandler(spec.artifact_uri, model_id=spec.model_id, feature_count=spec.feature_count,
                                min_batch_size=batch_size, max_batch_size=batch_size,
                                thread_count=thread_count, expected_sha256=spec.sha256 or None)


def build_keyed_handler(specs: list[ModelSpec], *, batch_size: int = 512) -> KeyedModelHandler:
    """One KeyedModelHandler over the given models; elements ``(model_id, (row_key, vector))``.

    Output elements are ``(model_id, PredictionResult)``. ``max_models_per_worker_hint`` is the number of
    models, so every model stays loaded (beam-notes.md).
    """
    if not specs:
        raise ValueError("build_keyed_handler: no models (is any registry model enabled and eligible?)")
    ids = [s.model_id for s in specs]
    if len(set(ids)) != len(ids):
        dups = sorted(i for i in set(ids) if ids.count(i) > 1)
        raise ValueError(f"build_keyed_handler: duplicate model ids {dups}")
    mappings = [KeyModelMapping([s.model_id], handler_for(s, batch_size=None)) for s in specs]
    return _PinnedBatchKeyedModelHandler(mappings, batch_size=batch_size,
                                         max_models_per_worker_hint=len(specs))


class _ModelCache(dict):
    """model_id -> loaded CatBoostRegressor (a dict subclass so Beam can hold it as the 'model')."""


class RegistryModelHandler(ModelHandler[tuple, tuple, _ModelCache]):
    """One handler for every model a running stream may score, loaded on first use from its registry
    entry carried by each element: examples ``(ref, (row_key, vector))`` where ``ref`` has
    ``model_id``, ``artifact_uri``, ``feature_count``, ``sha256`` (``transforms.streaming.ModelRef``).

    This is the stream's model update path: a model promoted after the launch arrives in a ScoringRequest's
    model set (from a registry event or a date initialisation) and is loaded when first seen, with the
    same checks as ``CatBoostModelHandler.load_model`` (sha256, feature count); a disabled model is no
    longer in any set, so it is no longer scored. Outputs ``(model_id, PredictionResult)`` like the keyed
    handler. Batches are pinned (beam-notes) and may mix models; each model's rows are one predict call.
    """

    def __init__(self, *, batch_size: int = 512, thread_count: int = 1):
        super().__init__(min_batch_size=batch_size, max_batch_size=batch_size)
        self._batch_size, self._thread_count = batch_size, thread_count

    def load_model(self) -> _ModelCache:
        return _ModelCache()

    def run_inference(self, batch: Sequence[tuple], model: _ModelCache,
                      inference_args: dict[str, Any] | None = None) -> Iterable[tuple]:
        by_model: dict[str, list[int]] = {}
        refs = {}
        for i, (ref, _example) in enumerate(batch):
            by_model.setdefault(ref.model_id, []).append(i)
            refs[ref.model_id] = ref
        out: list[Any] = [None] * len(batch)
        for model_id, rows in by_model.items():
            ref = refs[model_id]
            handler = CatBoostModelHandler(
                ref.artifact_uri, model_id=model_id, feature_count=ref.feature_count, min_batch_size=None,
                max_batch_size=None, thread_count=self._thread_count, expected_sha256=ref.sha256)
            if model_id not in model:
                model[model_id] = handler.load_model()
            results = handler.run_inference([batch[i][1] for i in rows], model[model_id])
            for i, result in zip(rows, results, strict=True):
                out[i] = (model_id, result)
        return out

    def get_num_bytes(self, batch: Sequence[tuple]) -> int:
        return sum(getattr(vec, "nbytes", 0) + len(key) for _ref, (key, vec) in batch)

    def get_metrics_namespace(self) -> str:
        return METRICS_NAMESPACE

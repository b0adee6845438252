"""Benchmark: CatBoostModelHandler.run_inference vs a bare ``model.predict`` on the same batches.

Uses the sample ``v12_mae`` model (54 features, the documented training settings) when
``models/sample/registry.json`` has it, else trains a model of the same size on synthetic data. For
batch sizes 1, 64 and 512 it scores the same rows (a) with ``model.predict`` on pre-stacked float32
matrices and (b) through the handler (``(row_key, vector)`` examples: validation, stacking, predict,
PredictionResult per row), best of 9 rounds run in turn, and prints rows/s and the handler/bare
ratio. Goal: at batch 512 the handler is within 20 % of bare predict. It then compares two pipelines
(FnApiRunner, batch 512): RunInference over the keyed handler vs a plain DoFn calling predict, and
prints peak memory.

    .venv/bin/python bench/bench_handler.py [--rows 51200]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import resource
import tempfile
import time

import numpy as np

os.environ.setdefault("NO_GCE_CHECK", "true")

from models.features import feature_matrix  # noqa: E402
from models.handler import CatBoostModelHandler, build_keyed_handler  # noqa: E402
from models.registry import RegistryError, load_registry  # noqa: E402
from models.synthetic import synthetic_frame  # noqa: E402
from models.train import SAMPLE_DIR, TrainParams, fit_model, model_bytes  # noqa: E402


def _model_spec():
    try:
        reg = load_registry(str(SAMPLE_DIR / "registry.json"))
        spec = next(m for m in reg.models if m.family == "v12_mae")
        return spec, "sample " + spec.model_id
    except (RegistryError, StopIteration):
        pass
    import dataclasses
    import hashlib

    from models.registry import FAMILIES, ModelSpec

    frame = synthetic_frame(dt.date(2025, 10, 21), 60, players=300, seed=7)
    model = fit_model(frame, "v12_mae", TrainParams())
    blob = model_bytes(model)
    path = os.path.join(tempfile.mkdtemp(), "bench.cbm")
    with open(path, "wb") as f:
        f.write(blob)
    fam = FAMILIES["v12_mae"]
    spec = ModelSpec(model_id="bench_v12_mae", family="v12_mae", feature_set="v12", loss=fam.loss,
                     quantile_alpha=None, training_start=dt.date(2025, 10, 21),
                     training_end=dt.date(2025, 12, 19), artifact_uri=path,
                     sha256=hashlib.sha256(blob).hexdigest(), feature_count=54, enabled=True,
                     status="promoted")
    return dataclasses.replace(spec), "synthetic v12_mae (400 trees, depth 6)"


def _best_of(*fns, reps: int = 9) -> list[float]:
    """Best wall time of each function over ``reps`` rounds, run in turn so load drift hits all alike."""
    best = [float("inf")] * len(fns)
    for _ in range(reps):
        for i, fn in enumerate(fns):
            t0 = time.perf_counter()
            fn()
            best[i] = min(best[i], time.perf_counter() - t0)
    return best


def bench_direct(spec, rows: int) -> None:
    handler = CatBoostModelHandler(spec.artifact_uri, model_id=spec.model_id,
                                   feature_count=spec.feature_count)
    model = handler.load_model()
    frame = synthetic_frame(dt.date(2026, 2, 1), max(1, rows // 300 + 1), players=300, seed=9)
    x = feature_matrix(frame, spec.feature_set)
    print("bare = model.predict on pre-stacked matrices (the model alone); bare+stack = the same batches of "
          "(key, vector) examples stacked with np.stack, then predict (what a DoFn calling predict does)")
    print(f"{'batch':>6} {'rows':>7} {'bare rows/s':>12} {'bare+stack':>11} {'handler rows/s':>15} "
          f"{'handler/bare':>13} {'handler/bare+stack':>19}")
    for batch_size in (1, 64, 512):
        n = min(rows, 3000) if batch_size == 1 else rows
        n -= n % batch_size
        examples = [(f"row{i}", x[i % len(x)]) for i in range(n)]
        batches = [examples[i:i + batch_size] for i in range(0, n, batch_size)]
        matrices = [np.stack([v for _, v in b]) for b in batches]

        def bare(matrices=matrices):
            for m in matrices:
                model.predict(m, thread_count=1)

        def via_handler(batches=batches):
            for b in batches:
                handler.run_inference(b, model)

        def stacked(batches=batches):
            for b in batches:
                model.predict(np.stack([v for _, v in b]), thread_count=1)

        t_bare, t_stacked, t_handler = _best_of(bare, stacked, via_handler)
        print(f"{batch_size:>6} {n:>7} {n / t_bare:>12,.0f} {n / t_stacked:>11,.0f} {n / t_handler:>15,.0f} "
              f"{t_bare / t_handler:>12.1%} {t_stacked / t_handler:>18.1%}")


class _MakeRowsFn:
    """Generates (model_id, (row_key, vector)) inside the pipeline (a Create of numpy rows costs more
    than the inference: every element would be pickled)."""

    def __init__(self, model_id: str, width: int, chunk: int):
        self.model_id, self.width, self.chunk = model_id, width, chunk

    def __call__(self, i: int):
        x = np.random.default_rng(i).normal(10.0, 5.0, (self.chunk, self.width)).astype(np.float32)
        return [(self.model_id, (f"r{i}_{j}", x[j])) for j in range(self.chunk)]


def bench_pipeline(spec, rows: int) -> None:
    """RunInference(keyed handler) vs a plain DoFn calling predict on the same pinned batches."""
    import apache_beam as beam
    from apache_beam.ml.inference.base import RunInference
    from apache_beam.options.pipeline_options import PipelineOptions

    from models.handler import CatBoostModelHandler

    chunk = 1024
    n_chunks = max(1, rows // chunk)
    make_rows = _MakeRowsFn(spec.model_id, spec.feature_count, chunk)
    plain = CatBoostModelHandler(spec.artifact_uri, model_id=spec.model_id, feature_count=spec.feature_count)

    class BarePredictFn(beam.DoFn):
        def setup(self):
            self.model = plain.load_model()

        def process(self, batch):
            preds = self.model.predict(np.stack([v for _, (_, v) in batch]), thread_count=1)
            yield from preds.tolist()

    def run(label, score) -> float:
        t0 = time.perf_counter()
        with beam.Pipeline(options=PipelineOptions(["--runner=FnApiRunner"])) as p:
            _ = (p | f"{label}Chunks" >> beam.Create(list(range(n_chunks)))
                 | f"{label}Rows" >> beam.FlatMap(make_rows)
                 | f"{label}Score" >> score
                 | f"{label}One" >> beam.Map(lambda _: 1)
                 | f"{label}Count" >> beam.CombineGlobally(sum))
        return time.perf_counter() - t0

    n = n_chunks * chunk
    t_plain = run("Plain", beam.BatchElements(min_batch_size=512, max_batch_size=512)
                  | beam.ParDo(BarePredictFn()))
    t_ri = run("RunInference", RunInference(build_keyed_handler([spec], batch_size=512)))
    print(f"pipelines (FnApiRunner, batch 512, {n} rows, wall incl. start-up): plain DoFn + predict "
          f"{n / t_plain:,.0f} rows/s; RunInference(keyed CatBoostModelHandler) {n / t_ri:,.0f} rows/s "
          f"({t_plain / t_ri:.1%} of plain)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rows", type=int, default=51200)
    ap.add_argument("--no-pipeline", action="store_true", help="skip the RunInference pipeline figure")
    args = ap.parse_args()
    spec, what = _model_spec()
    print(f"model: {what}; {spec.feature_count} features; CatBoost predict thread_count=1")
    bench_direct(spec, args.rows)
    if not args.no_pipeline:
        bench_pipeline(spec, args.rows)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS {peak_mb:,.0f} MB")


if __name__ == "__main__":
    main()

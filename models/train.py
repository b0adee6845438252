"""``props train``: train a model family, evaluate it on a later holdout, run the promotion gates, register.

Trains CatBoost on feature-store rows joined to box scores (label = actual points of player-games that
were played; DNPs excluded) over a training window, scores a later holdout window, compares the model
with the market line on the same rows (domain.md section 9), applies the gates of
:mod:`models.governance`, writes the ``.cbm`` artifact and upserts its registry entry (``enabled`` only
if every gate passes; failed gates recorded). Deterministic for a fixed ``--seed`` and ``--threads``.

Data: the simulated season written by ``props simulate`` (``DIR/features/game_date=D/part-*.parquet``
and ``DIR/box_scores/game_date=D/part-*.jsonl``); the default ``DIR`` is
``./data/sim/2025-26-seed-<sim.DEFAULT_SEED>/``, generated (once, cached) if missing.

Usage::

    props train --family v12_mae [--window 2025-10-21:2025-12-31] [--holdout 2026-01-01:2026-02-15]
                [--data DIR] [--registry PATH] [--out DIR] [--seed 42] [--threads 2]

A model that fails a gate is registered ``enabled: false`` with its failed gates recorded (domain.md
section 9); there is no override.

The sample models shipped in ``models/sample/`` are built by THE documented command::

    props train --all-sample-families

which trains the six sample families on the default windows of the simulated season (training
2025-10-21..2025-12-31, holdout 2026-01-01..2026-02-15) and writes ``models/sample/registry.json`` and
``models/sample/*.cbm``.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import hashlib
import io
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq
from apache_beam.io.filesystems import FileSystems

from models import governance
from models.features import feature_matrix
from models.registry import (
    FAMILIES,
    ModelSpec,
    Registry,
    RegistryError,
    load_registry,
    make_model_id,
    resolve_uri,
)
from pipeline.schemas import FEATURE_NAMES, FEATURE_SETS

SAMPLE_DIR = Path(__file__).resolve().parent / "sample"
SAMPLE_FAMILIES: tuple[str, ...] = (
    "v9_mae", "v9_q43", "v12_mae", "v12_noveg_mae", "v12_noveg_q43", "v12_vegas_q43",
)
# The sample models' windows (sim-1.3 season 2025-10-21..2026-04-12): ten weeks of training, then a
# holdout of six and a half weeks (~5,000 lined player-games) so the gates' ">= 50 graded bets" and the
# OVER/UNDER splits rest on hundreds of bets; the season after the holdout (2026-02-16..) is left for the
# backtest.
DEFAULT_WINDOW = (dt.date(2025, 10, 21), dt.date(2025, 12, 31))
DEFAULT_HOLDOUT = (dt.date(2026, 1, 1), dt.date(2026, 2, 15))
DEFAULT_SEED = 42
DEFAULT_THREADS = 2
DEFAULT_REGISTRY = "./models_registry/registry.json"


@dataclasses.dataclass(frozen=True)
class TrainParams:
    """CatBoost settings: small and fast; recorded in the registry entry."""

    iterations: int = 400
    depth: int = 6
    learning_rate: float = 0.05
    l2_leaf_reg: float = 3.0
    seed: int = DEFAULT_SEED
    thread_count: int = DEFAULT_THREADS


# ------------------------------------------------------------------------------------------------
# Data
# ------------------------------------------------------------------------------------------------


def parse_window(text: str) -> tuple[dt.date, dt.date]:
    """``START:END`` (ISO dates, inclusive) -> (start, end); ValueError with an example otherwise."""
    try:
        a, b = text.split(":")
        start, end = dt.date.fromisoformat(a), dt.date.fromisoformat(b)
    except ValueError as e:
        raise ValueError(f"bad window {text!r}: expected START:END, e.g. 2025-10-21:2026-01-15") from e
    if start > end:
        raise ValueError(f"bad window {text!r}: START:END with start after end")
    return start, end


def _dates(start: dt.date, end: dt.date) -> list[dt.date]:
    return [start + dt.timedelta(days=i) for i in range((end - start).days + 1)]


def _partition_files(data_dir: str, kind: str, date: dt.date, ext: str) -> list[str]:
    pattern = f"{data_dir.rstrip('/')}/{kind}/game_date={date:%Y-%m-%d}/part-*.{ext}"
    result = FileSystems.match([pattern])[0]
    return sorted(m.path for m in result.metadata_list)


def is_dnp(points: pd.Series, minutes: pd.Series, dnp_flag: pd.Series) -> pd.Series:
    """domain.md section 9, the one DNP rule (``pipeline.domain.grading.dnp``) applied per row."""
    from pipeline.domain.grading import dnp

    pts = pd.to_numeric(points, errors="coerce")
    mins = pd.to_numeric(minutes, errors="coerce")
    flag = dnp_flag.fillna(False).astype(bool)
    return pd.Series([dnp(f, p, m) for f, p, m in zip(flag, pts, mins, strict=True)], index=points.index,
                     dtype=bool)


def load_labeled_frame(data_dir: str, start: dt.date, end: dt.date) -> pd.DataFrame:
    """Feature rows of the window joined to their box scores; only played player-games, label ``points``.

    Rows without a box score (e.g. postponed games) and DNPs are excluded and counted in
    ``frame.attrs["excluded"]``.

    Raises ValueError if the window has no feature files (wrong ``--data`` or window).
    """
    feats, boxes = [], []
    for date in _dates(start, end):
        for path in _partition_files(data_dir, "features", date, "parquet"):
            with FileSystems.open(path) as f:
                feats.append(pq.read_table(io.BytesIO(f.read())).to_pandas())
        for path in _partition_files(data_dir, "box_scores", date, "jsonl"):
            with FileSystems.open(path) as f:
                text = f.read().decode()
            if text.strip():
                boxes.append(pd.read_json(io.StringIO(text), lines=True, dtype=False))
    if not feats:
        raise ValueError(f"no feature rows under {data_dir}/features for {start}..{end}; run "
                         f"`props simulate --out {data_dir}` or pass --data/--window")
    if not boxes:
        raise ValueError(f"no box scores under {data_dir}/box_scores for {start}..{end}")
    frame = pd.concat(feats, ignore_index=True)
    box = pd.concat(boxes, ignore_index=True)[["player_lookup", "game_id", "points", "minutes", "is_dnp"]]
    merged = frame.merge(box, on=["player_lookup", "game_id"], how="inner", validate="one_to_one")
    played = ~is_dnp(merged["points"], merged["minutes"], merged["is_dnp"])
    excluded = {"no_box_score": int(len(frame) - len(merged)), "dnp": int((~played).sum())}
    merged = merged[played].copy()
    merged["points"] = merged["points"].astype(float)
    merged["game_date"] = pd.to_datetime(merged["game_date"]).dt.date
    merged = merged.sort_values(["game_date", "game_id", "player_lookup"], kind="mergesort")
    merged = merged.reset_index(drop=True)
    merged.attrs["excluded"] = excluded  # reported by the CLI: nothing is dropped silently
    return merged


def data_provenance(data_dir: str) -> dict[str, Any]:
    """Season, seed and generator version from the data's ``manifest.json`` (empty if it has none)."""
    uri = f"{data_dir.rstrip('/')}/manifest.json"
    if not FileSystems.exists(uri):
        return {}
    with FileSystems.open(uri) as f:
        meta = json.loads(f.read().decode())
    return {k: meta[k] for k in ("season", "seed", "generator_version") if k in meta}


def default_data_dir() -> str:
    import sim  # the simulator package; owns DEFAULT_SEED and ensure_season

    seed = getattr(sim, "DEFAULT_SEED", None)
    if seed is None or not hasattr(sim, "ensure_season"):
        raise RuntimeError("sim.ensure_season / sim.DEFAULT_SEED are not available; pass --data DIR "
                           "pointing at a season written by `props simulate`")
    path = f"./data/sim/2025-26-seed-{seed}/"
    sim.ensure_season(path, "2025-26", seed)
    return path


# ------------------------------------------------------------------------------------------------
# Training and evaluation
# ------------------------------------------------------------------------------------------------


def fit_model(frame: pd.DataFrame, family: str, params: TrainParams):
    """A CatBoostRegressor of ``family`` fitted on ``frame`` (float32, NaN for missing, named columns)."""
    from catboost import CatBoostRegressor, Pool

    fam = FAMILIES[family]
    names = [FEATURE_NAMES[i] for i in FEATURE_SETS[fam.feature_set]]
    pool = Pool(feature_matrix(frame, fam.feature_set), label=frame["points"].to_numpy(float),
                feature_names=names)
    model = CatBoostRegressor(
        iterations=params.iterations, depth=params.depth, learning_rate=params.learning_rate,
        l2_leaf_reg=params.l2_leaf_reg, loss_function=fam.loss, random_seed=params.seed,
        thread_count=params.thread_count, allow_writing_files=False, verbose=False)
    model.fit(pool)
    return model


def evaluate_model(model, frame: pd.DataFrame, family: str,
                   thresholds: governance.GateThresholds = governance.DEFAULT_THRESHOLDS
                   ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Holdout metrics and gate results of a fitted model on a labelled frame."""
    fam = FAMILIES[family]
    pred = model.predict(feature_matrix(frame, fam.feature_set), thread_count=1)
    line = pd.to_numeric(frame["vegas_points_line"], errors="coerce").to_numpy(float)
    season = pd.to_numeric(frame["points_avg_season"], errors="coerce").to_numpy(float)
    metrics = governance.evaluate_holdout(pred, frame["points"].to_numpy(float), line, season, thresholds)
    return metrics, governance.run_gates(metrics, thresholds)


def model_bytes(model, metadata: dict[str, str] | None = None) -> bytes:
    """The model serialized as .cbm bytes, byte-identical for identical training.

    CatBoost stamps a random ``model_guid`` and the wall-clock ``train_finish_time``; both are replaced
    by fixed values (plus ``metadata``, e.g. the model id) so a retrain can be checked by its sha256.
    """
    meta = model.get_metadata()
    meta["model_guid"] = (metadata or {}).get("model_id", "unregistered")
    meta["train_finish_time"] = "not recorded (deterministic artifact)"
    for key, value in (metadata or {}).items():
        meta[key] = value
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "model.cbm")
        model.save_model(path, format="cbm")
        return Path(path).read_bytes()


def train_family(family: str, train: pd.DataFrame, holdout: pd.DataFrame, *,
                 window: tuple[dt.date, dt.date], holdout_window: tuple[dt.date, dt.date],
                 out_dir: str, params: TrainParams = TrainParams(),
                 thresholds: governance.GateThresholds = governance.DEFAULT_THRESHOLDS,
                 provenance: dict[str, Any] | None = None) -> ModelSpec:
    """Fits, evaluates, gates and writes one model; returns its registry entry (not yet registered)."""
    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}; known: {sorted(FAMILIES)}")
    if holdout_window[0] <= window[1]:
        raise ValueError(f"holdout {holdout_window[0]} must start after the training window end {window[1]}")
    if len(train) == 0:
        raise ValueError(f"no played player-games in the training window {window[0]}..{window[1]}")
    fam = FAMILIES[family]
    model = fit_model(train, family, params)
    metrics, gates = evaluate_model(model, holdout, family, thresholds)
    failed = governance.failed_gates(gates)
    model_id = make_model_id(family, *window)
    blob = model_bytes(model, {"model_id": model_id, "family": family, "feature_set": fam.feature_set})
    uri = resolve_uri(f"{model_id}.cbm", out_dir)
    with FileSystems.create(uri, mime_type="application/octet-stream") as f:
        f.write(blob)
    enabled, status = (True, "promoted") if not failed else (False, "failed_gates")
    import catboost

    return ModelSpec(
        model_id=model_id, family=family, feature_set=fam.feature_set, loss=fam.loss,
        quantile_alpha=fam.quantile_alpha, training_start=window[0], training_end=window[1],
        artifact_uri=uri, sha256=hashlib.sha256(blob).hexdigest(),
        feature_count=len(FEATURE_SETS[fam.feature_set]), enabled=enabled, status=status,
        holdout_start=holdout_window[0], holdout_end=holdout_window[1],
        holdout_metrics=metrics, gates=gates, failed_gates=failed, enabled_override_reason=None,
        training_params={**dataclasses.asdict(params), "catboost_version": catboost.__version__,
                         "train_rows": int(len(train)), "thresholds": dataclasses.asdict(thresholds),
                         "artifact_bytes": len(blob), "data": provenance or {}},
    )


def _open_registry(uri: str) -> Registry:
    try:
        return load_registry(uri)
    except RegistryError:
        if FileSystems.exists(uri):
            raise
        return Registry([], uri)


# ------------------------------------------------------------------------------------------------
# CLI
# ------------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="props train", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--family", action="append", choices=sorted(FAMILIES),
                   help="family to train (repeatable)")
    p.add_argument("--all-sample-families", action="store_true",
                   help=f"train {', '.join(SAMPLE_FAMILIES)} into models/sample/ (the sample models)")
    p.add_argument("--window", default=f"{DEFAULT_WINDOW[0]}:{DEFAULT_WINDOW[1]}",
                   help="training window START:END (inclusive)")
    p.add_argument("--holdout", default=f"{DEFAULT_HOLDOUT[0]}:{DEFAULT_HOLDOUT[1]}",
                   help="holdout window START:END (inclusive), after the training window")
    p.add_argument("--data", default=None, help="season directory written by `props simulate` "
                   "(default: ./data/sim/2025-26-seed-<sim.DEFAULT_SEED>/, simulated if missing)")
    p.add_argument("--registry", default=None,
                   help=f"registry file to upsert (default {DEFAULT_REGISTRY}; with --all-sample-families "
                        "models/sample/registry.json)")
    p.add_argument("--out", default=None, help="artifact folder (default: the registry's folder)")
    p.add_argument("--seed", type=int, default=DEFAULT_SEED, help="CatBoost random_seed")
    p.add_argument("--threads", type=int, default=DEFAULT_THREADS, help="CatBoost thread_count")
    p.add_argument("--iterations", type=int, default=TrainParams.iterations, help="boosting iterations")
    return p


def main(argv: list[str]) -> int:
    args, unknown = build_parser().parse_known_args(argv)
    if any(a.split("=")[0] == "--force-enable" for a in unknown):
        print("props train: --force-enable was removed: a model that fails its gates is registered disabled "
              "with the failed gates recorded (domain.md section 9)", file=sys.stderr)
        return 2
    if unknown:
        print(f"props train: ignoring pipeline options (training runs no Beam pipeline): {unknown}",
              file=sys.stderr)
    if args.all_sample_families:
        families = list(SAMPLE_FAMILIES) + [f for f in (args.family or []) if f not in SAMPLE_FAMILIES]
        registry_uri = args.registry or str(SAMPLE_DIR / "registry.json")
    elif args.family:
        families, registry_uri = list(dict.fromkeys(args.family)), args.registry or DEFAULT_REGISTRY
    else:
        print("props train: pass --family F (repeatable) or --all-sample-families", file=sys.stderr)
        return 2
    try:
        window, holdout_window = parse_window(args.window), parse_window(args.holdout)
    except ValueError as e:
        print(f"props train: {e}", file=sys.stderr)
        return 2
    if not registry_uri.startswith("gs://"):
        registry_uri = os.path.abspath(registry_uri)
        os.makedirs(os.path.dirname(registry_uri), exist_ok=True)
    out_dir = args.out or registry_uri.rsplit("/", 1)[0]
    if "://" not in out_dir:
        out_dir = os.path.abspath(out_dir)
        os.makedirs(out_dir, exist_ok=True)
    data_dir = args.data or default_data_dir()
    params = TrainParams(iterations=args.iterations, seed=args.seed, thread_count=args.threads)

    t0 = time.perf_counter()
    train = load_labeled_frame(data_dir, *window)
    holdout = load_labeled_frame(data_dir, *holdout_window)
    print(f"data {data_dir}: {len(train)} training rows {window[0]}..{window[1]}, {len(holdout)} holdout "
          f"rows {holdout_window[0]}..{holdout_window[1]} ({time.perf_counter() - t0:.1f}s); excluded "
          f"(training, holdout): {train.attrs.get('excluded')}, {holdout.attrs.get('excluded')}")
    registry = _open_registry(registry_uri)
    for family in families:
        t1 = time.perf_counter()
        spec = train_family(family, train, holdout, window=window, holdout_window=holdout_window,
                            out_dir=out_dir, params=params,
                            provenance=data_provenance(data_dir))
        registry = registry.upsert(spec)
        registry.write(registry_uri)
        print(governance.format_report(spec.model_id, spec.holdout_metrics, spec.gates))
        print(f"  -> {spec.status}, enabled={spec.enabled}, {spec.training_params['artifact_bytes']} bytes, "
              f"trained in {time.perf_counter() - t1:.1f}s")
    load_registry(registry_uri).validate()
    print(f"registry {registry_uri}: {len(registry.models)} models, {len(registry.enabled())} enabled, "
          f"digest {registry.digest[:12]}; total {time.perf_counter() - t0:.1f}s")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main(sys.argv[1:]))

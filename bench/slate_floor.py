"""The floor for bench_slate.py: the same slate with plain pandas + CatBoost, no Beam, no warehouse.

    .venv/bin/python bench/slate_floor.py --game-date 2026-02-22

It reads the date's odds, features, schedule and injuries in bulk, builds the line book vectorised
(latest snapshot per book at the decision time, sanity rules, book priority), applies the universe and
quality gate, scores every eligible model in one batch each, and computes the median-of-families
consensus and the edge floor. It skips what the pipeline adds on top (diagnostic rows, dead letters, the
full filter chain and signals, the warehouse transaction and exports), so it is a lower bound on the work,
not a reimplementation of the product. Prints its own wall time (process start included).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

T0 = time.perf_counter()

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from catboost import CatBoostRegressor  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline.schemas import BOOK_PRIORITY, FEATURE_NAMES, FEATURE_SETS  # noqa: E402


def read(inputs: Path, kind: str, date: str) -> pd.DataFrame:
    folder = inputs / kind / f"game_date={date}"
    frames = [pd.read_parquet(f) for f in sorted(folder.glob("*.parquet"))]
    for f in sorted(folder.glob("*.jsonl")):
        frames.append(pd.read_json(f, lines=True))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--game-date", required=True)
    ap.add_argument("--inputs", default=str(ROOT / "data" / "sim" / "2025-26-seed-42"))
    ap.add_argument("--registry", default=str(ROOT / "models" / "sample" / "registry.json"))
    args = ap.parse_args()
    inputs, date = Path(args.inputs), args.game_date
    t_read = time.perf_counter()
    odds = read(inputs, "odds", date)
    feats = read(inputs, "features", date)
    sched = read(inputs, "schedule", date)
    inj = read(inputs, "injuries", date)
    t_read = time.perf_counter() - t_read

    t_compute = time.perf_counter()
    sched["tipoff_utc"] = pd.to_datetime(sched["tipoff_utc"], utc=True)
    sched["event_ts"] = pd.to_datetime(sched["event_ts"], utc=True)
    final = sched.sort_values("event_ts").groupby("game_id").last()
    as_of = final.loc[~final["status"].isin(["postponed", "cancelled"]), "tipoff_utc"].min() - pd.Timedelta(
        hours=1
    )
    games = sched[sched["event_ts"] <= as_of].sort_values("event_ts").groupby("game_id").last()
    live = games[
        (~games["status"].isin(["postponed", "cancelled", "in_progress", "final"]))
        & (games["tipoff_utc"] > as_of)
    ].index

    odds["snapshot_ts"] = pd.to_datetime(odds["snapshot_ts"], utc=True)
    o = odds[odds["snapshot_ts"] <= as_of].sort_values("snapshot_ts")
    latest = o.groupby(["game_id", "player_lookup", "book"]).last().reset_index()
    valid_price = lambda p: (p <= -100) | (p >= 100)  # noqa: E731
    sane = latest[
        (latest["line"].between(5.0, 70.0))
        & valid_price(latest["over_price"])
        & valid_price(latest["under_price"])
        & (latest["snapshot_ts"] >= as_of - pd.Timedelta(hours=12))
    ].copy()
    rank = {b: i for i, b in enumerate(BOOK_PRIORITY)}
    sane["prio"] = sane["book"].map(rank).fillna(len(rank))
    chosen = sane.sort_values(["prio", "book"]).groupby(["game_id", "player_lookup"]).first()
    spread = sane.groupby(["game_id", "player_lookup"])["line"].agg(["std", "count"])
    first = o.sort_values("snapshot_ts").groupby(["game_id", "player_lookup", "book"])["line"].first()
    book = chosen[["book", "line"]].join(spread)
    book["opening"] = [
        first.get((g, p, b), np.nan) for (g, p), b in zip(book.index, book["book"], strict=True)
    ]

    inj["report_ts"] = pd.to_datetime(inj["report_ts"], utc=True)
    status = inj[inj["report_ts"] <= as_of].sort_values("report_ts").groupby("player_lookup")["status"].last()
    f = feats[feats["game_id"].isin(live)].copy()
    f["injury"] = f["player_lookup"].map(status).str.lower()
    viable = f[
        ~f["injury"].isin(["out", "doubtful"])
        & (f["quality_alert_level"] != "red")
        & (f["matchup_quality_pct"] >= 50)
        & (f["required_default_count"] == 0)
        & (f["feature_quality_score"] >= 85)
    ].copy()
    viable = viable.join(book, on=["game_id", "player_lookup"])
    viable["vegas_points_line"] = viable["line"]
    viable["vegas_opening_line"] = viable["opening"]
    viable["vegas_line_move"] = viable["line"] - viable["opening"]
    viable["has_vegas_line"] = viable["line"].notna().astype(float)
    viable["multi_book_line_std"] = viable["std"]
    viable["line_vs_season_avg"] = viable["line"] - viable["points_avg_season"]
    viable["prop_line_delta"] = viable["line"] - viable["prev_game_closing_line"]

    reg = json.loads(Path(args.registry).read_text())
    edges = {}
    n_pred = 0
    for m in reg["models"]:
        if not m["enabled"] or m["training_end"] >= date:
            continue
        model = CatBoostRegressor()
        model.load_model(str(Path(args.registry).parent / m["artifact_uri"]))
        cols = [FEATURE_NAMES[i] for i in FEATURE_SETS[m["feature_set"]]]
        x = viable[cols].to_numpy(dtype=np.float32)
        pred = np.clip(np.round(model.predict(x), 1), 0, 60)
        n_pred += len(pred)
        edges.setdefault(m["family"], []).append(pred - viable["line"].to_numpy())
    fam = np.vstack([np.mean(v, axis=0) for v in edges.values()]) if edges else np.empty((0, len(viable)))
    consensus = np.median(fam, axis=0) if len(fam) else np.array([])
    picks = int(np.sum(np.abs(np.nan_to_num(consensus)) >= 5.0))
    t_compute = time.perf_counter() - t_compute
    print(
        f"pandas floor {date}: {len(f)} players in live games, {len(viable)} viable, {n_pred} predictions, "
        f"{picks} past the edge floor; read {t_read:.2f} s, compute {t_compute:.2f} s, "
        f"process {time.perf_counter() - T0:.1f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

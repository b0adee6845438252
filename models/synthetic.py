"""A tiny synthetic labelled feature frame for model tests and benchmarks (not the league simulator).

``synthetic_frame(start, days, players, seed)`` returns one row per player-game with the 55 catalogue
features as named columns, a market line (``vegas_points_line``, NaN for some rows) and the box-score
label columns ``points``, ``minutes``, ``is_dnp``. Points depend on a latent rate, form and opponent, so
a model can learn something the noisy line only partly prices. ``write_layout(frame, out_dir)`` writes
it in the simulator's file layout (``features/game_date=D/part-00000.parquet`` and
``box_scores/game_date=D/part-00000.jsonl``) so the training loader can be tested without ``sim/``.
"""

from __future__ import annotations

import datetime as dt
import json
import os

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.schemas import FEATURE_NAMES


def synthetic_frame(start: dt.date, days: int, players: int = 40, seed: int = 0,
                    line_share: float = 0.8) -> pd.DataFrame:
    """One row per (player, day); deterministic for the arguments."""
    rng = np.random.default_rng(seed)
    rate = rng.uniform(3.0, 30.0, players)
    rows = []
    for d in range(days):
        date = start + dt.timedelta(days=d)
        form = rng.normal(0.0, 2.5, players)
        opp = rng.normal(0.0, 1.5, players)
        noise = rng.normal(0.0, 4.0, players)
        feats = rng.normal(0.0, 1.0, (players, len(FEATURE_NAMES)))
        feats[:, 0] = rate + form + rng.normal(0, 1.5, players)          # points_avg_last_5
        feats[:, 1] = rate + 0.5 * form + rng.normal(0, 1.0, players)    # points_avg_last_10
        feats[:, 2] = rate + rng.normal(0, 0.5, players)                 # points_avg_season
        feats[:, 3] = 3.0 + 0.2 * rate + rng.normal(0, 0.5, players)     # points_std_last_10
        feats[:, 13] = 112.0 + 2.0 * opp + rng.normal(0, 1.0, players)   # opponent_def_rating
        line = np.round(2 * (rate + 0.4 * form + rng.normal(0, 1.5, players))) / 2
        has_line = rng.random(players) < line_share
        feats[:, 25] = np.where(has_line, line, np.nan)
        feats[:, 26] = np.where(has_line, line + rng.choice([-1.0, -0.5, 0.0, 0.5], players), np.nan)
        feats[:, 27] = feats[:, 25] - feats[:, 26]
        feats[:, 28] = has_line.astype(float)
        feats[:, 53] = feats[:, 25] - feats[:, 2]
        feats[rng.random((players, len(FEATURE_NAMES))) < 0.02] = np.nan  # sporadic missing values
        points = np.maximum(0.0, np.round(rate + form + opp + noise))
        dnp = rng.random(players) < 0.05
        for p in range(players):
            row = {"player_lookup": f"player{p:03d}", "game_id": f"{date:%Y%m%d}_AAA_BBB",
                   "game_date": date}
            row.update({name: float(feats[p, i]) for i, name in enumerate(FEATURE_NAMES)})
            row.update({"points": 0.0 if dnp[p] else float(points[p]),
                        "minutes": 0.0 if dnp[p] else float(rng.uniform(10, 38)), "is_dnp": bool(dnp[p])})
            rows.append(row)
    return pd.DataFrame(rows)


def write_layout(frame: pd.DataFrame, out_dir: str) -> None:
    """Writes ``frame`` as the simulator's features (parquet) and box_scores (jsonl) partitions."""
    for date, part in frame.groupby("game_date", sort=True):
        fdir = os.path.join(out_dir, "features", f"game_date={date:%Y-%m-%d}")
        bdir = os.path.join(out_dir, "box_scores", f"game_date={date:%Y-%m-%d}")
        os.makedirs(fdir, exist_ok=True)
        os.makedirs(bdir, exist_ok=True)
        feats = part[["player_lookup", "game_id", "game_date", *FEATURE_NAMES]]
        pq.write_table(pa.Table.from_pandas(feats, preserve_index=False),
                       os.path.join(fdir, "part-00000.parquet"))
        with open(os.path.join(bdir, "part-00000.jsonl"), "w") as f:
            for r in part.itertuples(index=False):
                f.write(json.dumps({"player_lookup": r.player_lookup, "game_id": r.game_id,
                                    "game_date": f"{r.game_date:%Y-%m-%d}", "team_abbr": "AAA",
                                    "points": r.points, "minutes": r.minutes, "is_dnp": r.is_dnp,
                                    "starter": True, "plus_minus": 0.0}) + "\n")

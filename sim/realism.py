"""Realism metrics of a simulated season, with the bands of issue 2; printed by ``props simulate``.

:func:`realism_report` takes a :class:`sim.season.Simulation` or a season directory written by it and
recomputes the closing line (line book at each game's tip-off, :func:`sim.odds.line_book_arrays`) from
the odds table, then measures: closing line vs actual points (MAE, OVER hit rate without pushes), mean
points of lined player-games, share of rostered players with a line, cross-book line standard deviation
(share <= 1.0 and share > 1.5), the busiest date (games, rostered players) and the share of viable
feature rows (quality gate at 85) on mid-season dates.
"""

from __future__ import annotations

import datetime as dt
import os

import numpy as np
import pandas as pd

from pipeline.schemas import FEATURE_NAMES
from sim import odds as odds_mod

REFERENCE_DATE = dt.date(2026, 2, 22)
BANDS: dict[str, tuple[float, float]] = {
    "line_mae": (4.5, 5.5),
    "over_hit_rate": (0.45, 0.52),
    "mean_points_lined": (12.0, 18.0),
    "share_rostered_with_line": (0.40, 0.70),
    "share_std_le_1": (0.60, 1.0),
    "share_std_gt_1_5": (0.005, 0.20),
    "viable_share_midseason": (0.30, 0.60),
}


def _epoch_seconds(ts: pd.Series) -> np.ndarray:
    """UTC timestamps -> int64 epoch seconds, whatever their resolution (pandas keeps s/ms/us/ns)."""
    return ((ts - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(seconds=1)).to_numpy(np.int64)


def closing_lines(odds_df: pd.DataFrame, schedule: pd.DataFrame) -> pd.DataFrame:
    """Line book at tip-off per (player_lookup, game_id) with a snapshot: line, n_books, std."""
    if odds_df.empty:
        return pd.DataFrame(columns=["player_lookup", "game_id", "line", "n_books", "std"])
    tips = schedule.sort_values("event_ts", kind="stable").groupby("game_id")["tipoff_utc"].last()
    pg = odds_df[["player_lookup", "game_id"]].drop_duplicates().reset_index(drop=True)
    pg["m"] = np.arange(len(pg))
    df = odds_df.merge(pg, on=["player_lookup", "game_id"], how="left")
    book_idx = {b: i for i, b in enumerate(odds_mod.BOOK_NAMES)}
    b = df["book"].map(book_idx).to_numpy(np.int64)
    t = _epoch_seconds(pd.to_datetime(df["snapshot_ts"], utc=True))
    m = df["m"].to_numpy(np.int64)
    order = np.lexsort((t, b, m))
    arrays = {
        "m": m[order],
        "b": b[order],
        "t": t[order],
        "line": df["line"].to_numpy(float)[order],
        "over": df["over_price"].to_numpy(np.int64)[order],
        "under": df["under_price"].to_numpy(np.int64)[order],
    }
    tip = pd.to_datetime(pg["game_id"].map(tips), utc=True)
    as_of = _epoch_seconds(tip)
    lb = odds_mod.line_book_arrays(arrays, len(pg), as_of)
    return pd.DataFrame(
        {
            "player_lookup": pg["player_lookup"],
            "game_id": pg["game_id"],
            "line": lb["line"],
            "n_books": lb["n_books"],
            "std": lb["std"],
        }
    )


def realism_report(season_dir_or_data) -> dict:
    """Realism metrics with their bands: {name: {"value", "low", "high", "pass"}} plus "info"."""
    from sim.season import Simulation, read_season

    sim = (
        season_dir_or_data
        if isinstance(season_dir_or_data, Simulation)
        else read_season(os.fspath(season_dir_or_data))
    )
    box = sim.frames["box_scores"]
    feats = sim.frames["features"]
    sched = sim.frames["schedule"]
    close = closing_lines(sim.frames["odds"], sched)
    lined = close[close["line"].notna()]
    j = lined.merge(box[["player_lookup", "game_id", "points", "is_dnp"]], on=["player_lookup", "game_id"])
    played = j[(~j["is_dnp"].astype(bool)) & j["points"].notna()]
    err = played["points"] - played["line"]
    decided = played[err != 0]
    values = {
        "line_mae": float(err.abs().mean()) if len(played) else float("nan"),
        "over_hit_rate": float((decided["points"] > decided["line"]).mean())
        if len(decided)
        else float("nan"),
        "mean_points_lined": float(played["points"].mean()) if len(played) else float("nan"),
        "share_rostered_with_line": float(
            len(lined.merge(box[["player_lookup", "game_id"]])) / max(len(box), 1)
        ),
    }
    std = lined["std"].dropna()
    values["share_std_le_1"] = float((std <= 1.0).mean()) if len(std) else float("nan")
    values["share_std_gt_1_5"] = float((std > 1.5).mean()) if len(std) else float("nan")
    viable = (
        (feats["quality_alert_level"] != "red")
        & (feats["matchup_quality_pct"] >= 50)
        & (feats["required_default_count"] == 0)
        & (feats["feature_quality_score"] >= 85)
    )
    dates = pd.Series(feats["game_date"])
    months = dates.map(lambda d: d.month)
    mid = months.isin([12, 1, 2, 3])
    if not mid.any():
        mid = dates >= dates.min()
    values["viable_share_midseason"] = float(viable[mid].mean()) if mid.any() else float("nan")
    games_per_date = sched[sched["status"] != "postponed"].groupby("game_date")["game_id"].nunique()
    busiest = games_per_date.idxmax() if len(games_per_date) else None
    report = {}
    for k, v in values.items():
        lo, hi = BANDS[k]
        report[k] = {"value": round(v, 4), "low": lo, "high": hi, "pass": bool(lo <= v <= hi)}
    rostered_busy = int((feats["game_date"] == busiest).sum()) if busiest is not None else 0
    report["info"] = {
        "busiest_date": busiest.isoformat() if busiest is not None else None,
        "busiest_date_games": int(games_per_date.max()) if len(games_per_date) else 0,
        "busiest_date_rostered": rostered_busy,
        "busiest_date_viable": int(viable[feats["game_date"] == busiest].sum()) if busiest is not None else 0,
        "lined_player_games_played": int(len(played)),
        "reference_date_2026_02_22": {
            "games": int(games_per_date.get(REFERENCE_DATE, 0)),
            "rostered": int((feats["game_date"] == REFERENCE_DATE).sum()),
            "viable": int(viable[feats["game_date"] == REFERENCE_DATE].sum()),
        },
        "n_features": len(FEATURE_NAMES),
    }
    return report


def format_report(report: dict) -> str:
    lines = ["realism (closing line = line book at tip-off):"]
    for k, r in report.items():
        if k == "info":
            continue
        lines.append(
            f"  {k:<26} {r['value']:>8.4f}  band [{r['low']}, {r['high']}]  {'PASS' if r['pass'] else 'FAIL'}"
        )
    lines += [f"  {k}: {v}" for k, v in report["info"].items()]
    return "\n".join(lines)

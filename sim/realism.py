"""Realism metrics of a simulated season, with the bands of issues 2 and 13; printed by ``props simulate``.

:func:`realism_report` takes a :class:`sim.season.Simulation` or a season directory written by it and
recomputes the closing line (the pipeline's line book at each game's tip-off, :func:`closing_lines`) from
the odds table, then measures: closing line vs actual points (MAE, OVER hit rate without pushes, overall
and per line tier), the closing line's MAE gain over the opening line (the selected book's first line),
mean points of lined player-games, share of rostered players with a line, cross-book line standard
deviation (share <= 1.0 and share > 1.5), the busiest date (games, rostered players), the share of viable
feature rows (quality gate at 85) on mid-season dates, and the model bands: a CatBoost MAE model on the
v12 features (``models.train.fit_model``, family ``v12_mae``) trained on the first 60 % of the dates and
bet at edge 3+ against the feature store's line on the rest (hit rate, graded bets, OVER share).

It also measures how OVER fares against the feature store's line after the line moved since the player's
previous game (:func:`over_after_line_move`, the policy's ``line_jump`` threshold: the moves that best
bets' ``line_jumped_under`` / ``line_dropped_under`` filters look at), with a band on the drops and the
jumps: in a real market the line's history is public, so no blanket bet on it (OVER, or UNDER, after every
drop or every jump) wins at -110: OVER wins between 1 - breakeven and the policy's ``breakeven_hr``
(47.6-52.4 %) after each (issue 13: a market whose lines partly revert after a move fails it).
"""

from __future__ import annotations

import datetime as dt
import os

import pandas as pd

from pipeline.policy import Policy
from pipeline.schemas import FEATURE_NAMES
from sim import odds as odds_mod

REFERENCE_DATE = dt.date(2026, 2, 22)
LINE_TIERS: tuple[tuple[str, float, float], ...] = (
    ("lt12", 0.0, 12.0), ("12_18", 12.0, 18.0), ("18_25", 18.0, 25.0), ("25plus", 25.0, float("inf")))
MODEL_TRAIN_SHARE = 0.6  # the model band trains on the first 60 % of the dates
MODEL_ITERATIONS = 400
_BREAKEVEN = Policy().breakeven_hr  # a -110 bet
BANDS: dict[str, tuple[float, float]] = {
    "line_mae": (4.5, 5.5),
    # issue 13: a sharp market (lines at the median, closing line better than the opening)
    "over_hit_rate": (0.47, 0.51),
    **{f"over_hit_rate_line_{name}": (0.45, 0.55) for name, _, _ in LINE_TIERS},
    "close_vs_open_mae_gain": (0.02, 0.08),
    "model_edge3_hit_rate": (0.50, 0.555),
    "model_edge3_bets": (300.0, float("inf")),
    "model_edge3_over_share": (0.35, 0.65),
    # issue 13: no blanket bet on the line's move since the previous game beats the -110 vig
    "over_hit_rate_after_drop": (round(1.0 - _BREAKEVEN, 4), _BREAKEVEN),
    "over_hit_rate_after_jump": (round(1.0 - _BREAKEVEN, 4), _BREAKEVEN),
    "mean_points_lined": (12.0, 18.0),
    "share_rostered_with_line": (0.40, 0.70),
    "share_std_le_1": (0.60, 1.0),
    "share_std_gt_1_5": (0.005, 0.20),
    "viable_share_midseason": (0.30, 0.60),
}


def closing_lines(odds_df: pd.DataFrame, schedule: pd.DataFrame) -> pd.DataFrame:
    """The pipeline's line book at tip-off per (player_lookup, game_id) with a snapshot: the closing
    ``line``, ``n_books``, ``std`` and the selected book's ``opening`` line (NaN without a sane line)."""
    cols = ["player_lookup", "game_id", "line", "n_books", "std", "opening"]
    if odds_df.empty:
        return pd.DataFrame(columns=cols)
    tips = schedule.sort_values("event_ts", kind="stable").groupby("game_id")["tipoff_utc"].last()
    pg = odds_df[["player_lookup", "game_id", "game_date"]].drop_duplicates(["player_lookup", "game_id"])
    pg = pg.reset_index(drop=True)
    tip = odds_mod._epoch_seconds(pg["game_id"].map(tips))
    (books,) = odds_mod.line_books(odds_df, pg, tip)
    lb = odds_mod.line_book_frame(books)
    return pd.DataFrame({"player_lookup": pg["player_lookup"], "game_id": pg["game_id"], **{
        c: lb[c] for c in ("line", "n_books", "std", "opening")}})


def over_after_line_move(features: pd.DataFrame, box: pd.DataFrame, threshold: float | None = None) -> dict:
    """OVER hit rate against the feature store's line (decision time), pushes excluded, by the line's move
    since the player's previous game (``prop_line_delta``): dropped by >= ``threshold`` (default: the
    policy's ``line_jump``, the threshold of the ``line_jumped_under`` / ``line_dropped_under`` filters),
    jumped by >= it, and in between: {"threshold", "<group>": {"over_rate", "n"}} (rate None on no rows)."""
    from models.train import is_dnp

    t = Policy().line_jump if threshold is None else threshold
    f = features[["player_lookup", "game_id", "vegas_points_line", "prop_line_delta"]]
    f = f[f["vegas_points_line"].notna() & f["prop_line_delta"].notna()]  # is_dnp below is per row
    keys = ["player_lookup", "game_id"]
    j = f.merge(box[[*keys, "points", "minutes", "is_dnp"]], on=keys)
    line = pd.to_numeric(j["vegas_points_line"], errors="coerce")
    pts = pd.to_numeric(j["points"], errors="coerce")
    delta = pd.to_numeric(j["prop_line_delta"], errors="coerce")
    played = ~is_dnp(j["points"], j["minutes"], j["is_dnp"])
    ok = line.notna() & pts.notna() & delta.notna() & played & (pts != line)
    over = pts > line
    groups = {"dropped": delta <= -t, "jumped": delta >= t, "moved_less": (delta > -t) & (delta < t)}
    out: dict = {"threshold": t}
    for name, mask in groups.items():
        sel = ok & mask
        n = int(sel.sum())
        out[name] = {"over_rate": round(float(over[sel].mean()), 4) if n else None, "n": n}
    return out


def model_check(features: pd.DataFrame, box: pd.DataFrame, train_share: float = MODEL_TRAIN_SHARE,
                iterations: int = MODEL_ITERATIONS) -> dict:
    """A CatBoost MAE model on the v12 features (``models.train.fit_model``, family ``v12_mae``) trained
    on the first ``train_share`` of the dates and bet at edge 3+ against the feature store's line on
    the rest: graded bets, hit rate and OVER share (None when the season is too short to train)."""
    from models import governance
    from models.train import TrainParams, fit_model, is_dnp

    j = features.merge(box[["player_lookup", "game_id", "points", "minutes", "is_dnp"]],
                       on=["player_lookup", "game_id"])
    j = j[~is_dnp(j["points"], j["minutes"], j["is_dnp"])].copy()
    j["points"] = j["points"].astype(float)
    dates = sorted(j["game_date"].unique())
    out = {"graded": 0, "hr": None, "over_share": None, "train_rows": 0, "test_rows": 0}
    if len(dates) < 10:
        return out
    cut = dates[int(len(dates) * train_share)]
    train = j[j["game_date"] < cut].sort_values(["game_date", "game_id", "player_lookup"], kind="stable")
    test = j[j["game_date"] >= cut].sort_values(["game_date", "game_id", "player_lookup"], kind="stable")
    model = fit_model(train, "v12_mae", TrainParams(iterations=iterations, thread_count=2))
    from models.features import feature_matrix

    pred = model.predict(feature_matrix(test, "v12"), thread_count=2)
    line = test["vegas_points_line"].to_numpy(float)
    actual = test["points"].to_numpy(float)
    t = governance.DEFAULT_THRESHOLDS
    rec = governance.bet_record(pred, actual, line, t.edge)
    over = governance.bet_record(pred, actual, line, t.edge, "OVER")
    n_bets = rec["graded"] + rec["pushes"]
    out.update(graded=rec["graded"], hr=rec["hr"], train_rows=int(len(train)), test_rows=int(len(test)),
               over_share=(over["graded"] + over["pushes"]) / n_bets if n_bets else None,
               first_test_date=cut.isoformat())
    return out


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
    nan = float("nan")
    values = {
        "line_mae": float(err.abs().mean()) if len(played) else nan,
        "over_hit_rate": float((decided["points"] > decided["line"]).mean()) if len(decided) else nan,
        "mean_points_lined": float(played["points"].mean()) if len(played) else float("nan"),
        "share_rostered_with_line": float(
            len(lined.merge(box[["player_lookup", "game_id"]])) / max(len(box), 1)
        ),
    }
    for name, lo, hi in LINE_TIERS:
        tier = decided[(decided["line"] >= lo) & (decided["line"] < hi)]
        over = float((tier["points"] > tier["line"]).mean()) if len(tier) else nan
        values[f"over_hit_rate_line_{name}"] = over
    open_mae = float((played["points"] - played["opening"]).abs().mean()) if len(played) else nan
    values["close_vs_open_mae_gain"] = 1.0 - values["line_mae"] / open_mae if open_mae > 0 else nan
    model = model_check(feats, box)
    values["model_edge3_hit_rate"] = nan if model["hr"] is None else float(model["hr"])
    values["model_edge3_bets"] = float(model["graded"])
    values["model_edge3_over_share"] = nan if model["over_share"] is None else float(model["over_share"])
    moves = over_after_line_move(feats, box)
    for name, group in (("drop", "dropped"), ("jump", "jumped")):
        rate = moves[group]["over_rate"]
        values[f"over_hit_rate_after_{name}"] = nan if rate is None else float(rate)
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
        "model_check": model,
        "over_after_line_move": moves,
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

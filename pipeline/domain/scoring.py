"""Feature vectors and predictions (domain.md sections 5 and 6) as pure functions.

:func:`build_feature_vector` turns a feature-store row and the line book into a model's input vector
(float32, the feature set's columns in catalogue order, NaN for missing; market features set from the
line book, never default-filled, exactly as at training). :func:`make_prediction` turns a model's raw
output into a :class:`~pipeline.schemas.Prediction`: clamped, rounded half-up to 0.1, edge against the
selected line, recommendation and confidence (:func:`confidence`).
"""

from __future__ import annotations

import math
from decimal import ROUND_HALF_UP, Decimal

import numpy as np

from pipeline.policy import Policy
from pipeline.schemas import FEATURE_INDEX, FEATURE_NAMES, FEATURE_SETS, FeatureRow, LineBook, Prediction

IDX_LINE = FEATURE_INDEX["vegas_points_line"]  # 25
IDX_OPENING = FEATURE_INDEX["vegas_opening_line"]  # 26
IDX_MOVE = FEATURE_INDEX["vegas_line_move"]  # 27
IDX_HAS_LINE = FEATURE_INDEX["has_vegas_line"]  # 28
IDX_BOOK_STD = FEATURE_INDEX["multi_book_line_std"]  # 50
IDX_LINE_VS_SEASON = FEATURE_INDEX["line_vs_season_avg"]  # 53
IDX_PROP_DELTA = FEATURE_INDEX["prop_line_delta"]  # 54
IDX_SEASON_AVG = FEATURE_INDEX["points_avg_season"]  # 2
IDX_STD_LAST_10 = FEATURE_INDEX["points_std_last_10"]  # 3


def round_half_up(x: float, ndigits: int = 1) -> float:
    """Rounds the decimal value of ``x`` half away from zero: 22.25 -> 22.3, -2.25 -> -2.3, 22.24 -> 22.2.

    Python's round() works on the binary value (round(22.25, 1) happens to give 22.2), so we go through
    the shortest decimal representation (repr) instead.
    """
    q = Decimal(1).scaleb(-ndigits)
    return float(Decimal(repr(float(x))).quantize(q, rounding=ROUND_HALF_UP))


def _f(x: float | None) -> float:
    return float("nan") if x is None else float(x)


def build_feature_vector(row: FeatureRow, book: LineBook | None, feature_set: str) -> np.ndarray:
    """The model input of one player-game: float32, the set's columns in catalogue order, NaN = missing.

    Market features come from the line book: 25 line, 26 opening line, 27 move, 28 has-line flag,
    50 multi-book std, 53 line - season average (feature 2), 54 prop_line_delta. Without a line
    25, 26, 27, 50, 53, 54 are NaN and 28 is 0.0. KeyError for an unknown feature set.
    """
    indices = FEATURE_SETS[feature_set]
    if len(row.features) != len(FEATURE_NAMES):
        raise ValueError(f"feature row {row.player_lookup}/{row.game_id} has {len(row.features)} features, "
                         f"expected {len(FEATURE_NAMES)}")
    full = np.array([_f(v) for v in row.features], dtype=np.float64)
    line = book.line if book is not None else None
    nan = float("nan")
    if line is None:
        full[[IDX_LINE, IDX_OPENING, IDX_MOVE, IDX_BOOK_STD, IDX_LINE_VS_SEASON, IDX_PROP_DELTA]] = nan
        full[IDX_HAS_LINE] = 0.0
    else:
        full[IDX_LINE] = line
        full[IDX_OPENING] = _f(book.opening_line)
        full[IDX_MOVE] = _f(book.line_move)
        full[IDX_HAS_LINE] = 1.0
        full[IDX_BOOK_STD] = _f(book.multi_book_line_std)
        full[IDX_LINE_VS_SEASON] = line - full[IDX_SEASON_AVG]  # NaN when the season average is missing
        full[IDX_PROP_DELTA] = _f(book.prop_line_delta)
    return full[list(indices)].astype(np.float32)


def confidence(
    feature_quality_score: float | None, points_std_last_10: float | None, policy: Policy
) -> float:
    """0.75 + quality bonus (>= 90: .10, >= 80: .07, >= 70: .05, else .02) + consistency bonus on the
    10-game points std (< 4: .10, < 6: .07, < 8: .05, else .02); a missing input gets the lowest bonus."""
    q_bonus = policy.quality_bonus_else
    if feature_quality_score is not None and not math.isnan(feature_quality_score):
        for threshold, bonus in policy.quality_bonus_tiers:
            if feature_quality_score >= threshold:
                q_bonus = bonus
                break
    c_bonus = policy.consistency_bonus_else
    if points_std_last_10 is not None and not math.isnan(points_std_last_10):
        for threshold, bonus in policy.consistency_bonus_tiers:
            if points_std_last_10 < threshold:
                c_bonus = bonus
                break
    return round(policy.confidence_base + q_bonus + c_bonus, 4)


def recommendation(edge: float | None, min_edge: float) -> str:
    """OVER / UNDER when |edge| >= min_edge, HOLD below, NO_LINE when there is no edge."""
    if edge is None:
        return "NO_LINE"
    if abs(edge) >= min_edge and edge != 0:
        return "OVER" if edge > 0 else "UNDER"
    return "HOLD"


def make_prediction(
    raw_prediction: float,
    *,
    model_id: str,
    family: str,
    feature_set: str,
    min_edge: float,
    feature_row: FeatureRow,
    book: LineBook | None,
    policy: Policy,
    run_id: str | None = None,
) -> Prediction:
    """A model's prediction for one player-game.

    ``predicted_points`` = raw clamped to ``policy.predicted_clamp`` then rounded half-up to 0.1
    (:func:`round_half_up`); ``edge`` = predicted - line rounded to 0.1 (None without a line);
    recommendation per :func:`recommendation`; confidence per :func:`confidence` from the row's quality
    score and points_std_last_10. ValueError for a non-finite raw prediction.
    """
    raw = float(raw_prediction)
    if not math.isfinite(raw):
        raise ValueError(f"model {model_id} returned a non-finite prediction {raw_prediction!r} for "
                         f"{feature_row.player_lookup}/{feature_row.game_id}")
    lo, hi = policy.predicted_clamp
    predicted = round_half_up(min(max(raw, lo), hi), 1)
    line = book.line if book is not None else None
    edge = round_half_up(predicted - line, 1) if line is not None else None
    std10 = feature_row.features[IDX_STD_LAST_10] if len(feature_row.features) > IDX_STD_LAST_10 else None
    return Prediction(
        game_date=feature_row.game_date,
        game_id=feature_row.game_id,
        player_lookup=feature_row.player_lookup,
        model_id=model_id,
        family=family,
        feature_set=feature_set,
        predicted_points=predicted,
        line=line,
        line_book=book.line_book if line is not None else None,
        line_snapshot_ts=book.line_snapshot_ts if line is not None else None,
        edge=edge,
        recommendation=recommendation(edge, min_edge),
        confidence=confidence(feature_row.feature_quality_score, std10, policy),
        feature_quality_score=feature_row.feature_quality_score,
        team_abbr=feature_row.team_abbr,
        opponent_team_abbr=feature_row.opponent_team_abbr,
        run_id=run_id,
        policy_version=policy.version,
    )

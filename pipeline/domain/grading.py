"""Grading rules (domain.md section 9): pure functions, no Beam, no I/O.

What: the outcome of one bet against the actual points, DNP voids with their reasons, the graded
``PredictionAccuracy`` / ``BestBetResult`` rows, closing-line value, the "edge N+" rule, the rolling
per-model performance row with its health state, and the season backtest table (per family and for best
bets: W-L-P, hit rate with a 95 % Wilson interval, ROI at -110, CLV, OVER/UNDER split, and whether the
consensus beats the best single family).
How: every rule is a small function of plain values; the Beam transforms (``pipeline/transforms/
grading.py``, the ``props grade`` job) and governance (``models/governance.py``) only route rows into
them. Numbers that are settings come from the policy (``Policy.edge_buckets``, ``breakeven_hr``,
``state_*``), never from literals here.

Conventions (one place for each):
  * hit rate (HR) = wins / (wins + losses), a fraction 0-1; pushes and voids never count;
  * a "bet" is an OVER/UNDER recommendation with a line (``prediction_correct``, ``best_bets_results``);
  * the "edge N+" rule (:func:`edge_outcome`): the direction of the edge (OVER when edge > 0, UNDER when
    edge < 0) against the line, whatever the recommendation (a quantile model's HOLD at edge 3.5 counts
    at edge 3+), for predictions with |edge| >= N; pushes, voids, no line and edge 0 have no result.
    Stored per graded prediction as ``prediction_accuracy.edge_correct``; every "edge 3+" / "edge 5+"
    hit rate (model performance, promotion gates, blacklist history, backtest, report) uses it;
  * every prediction that was scored is graded, NO_LINE included: errors, within 3 / 5 and void
    reasons; it has no result (``prediction_correct`` and ``edge_correct`` NULL);
  * a window of N days is the N calendar days ending at the as-of date, inclusive;
  * signed_error = predicted - actual (positive = the model over-predicted);
  * margin = actual - line; CLV = closing - line for OVER, line - closing for UNDER (positive = beat
    the close), in the edge's direction for predictions and the pick's direction for picks;
  * state from the 7-day edge-3+ HR: INSUFFICIENT_DATA (n < ``state_min_graded``), BLOCKED
    (< ``breakeven_hr``), DEGRADING (< ``state_degrading_hr``), WATCH (< ``state_watch_hr``), HEALTHY;
    each threshold's exact value belongs to the better state.
"""

from __future__ import annotations

import datetime as dt
import math
from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np

from pipeline.domain.gate import latest_injury_status
from pipeline.domain.linebook import closing_line as selected_closing_line
from pipeline.policy import Policy
from pipeline.schemas import (
    BestBetResult,
    BoxScore,
    InjuryReport,
    ModelPerformanceDaily,
    OddsSnapshot,
    Pick,
    Prediction,
    PredictionAccuracy,
)

BET_DIRECTIONS: tuple[str, ...] = ("OVER", "UNDER")

# Void reasons (section 9): the injury status captured before the game decides the reason.
DNP_INJURY_CONFIRMED = "dnp_injury_confirmed"
DNP_LATE_SCRATCH = "dnp_late_scratch"
DNP_UNKNOWN = "dnp_unknown"
INJURY_CONFIRMED_STATUSES: frozenset[str] = frozenset({"out", "doubtful"})
LATE_SCRATCH_STATUSES: frozenset[str] = frozenset({"questionable", "probable"})

# Pick results (contract.md best_bets_results.result).
WIN, LOSS, PUSH, VOID, PENDING = "WIN", "LOSS", "PUSH", "VOID", "PENDING"

# Model performance: the rolling windows (calendar days) and the states, best last.
WINDOWS_DAYS: tuple[int, int, int] = (7, 14, 30)
STATE_HEALTHY = "HEALTHY"
STATE_INSUFFICIENT = "INSUFFICIENT_DATA"
STATES: tuple[str, ...] = (STATE_INSUFFICIENT, "BLOCKED", "DEGRADING", "WATCH", STATE_HEALTHY)

# A -110 bet: a win pays 100/110 of the stake, a loss costs the stake.
WIN_PAYOUT_AT_MINUS_110 = 100.0 / 110.0


def bet_outcome(direction: str, line: float, actual: float) -> bool | None:
    """True if the bet won, False if it lost, None for a push (actual exactly on the line).

    OVER wins if ``actual > line``; UNDER wins if ``actual < line``. ``direction`` is case-insensitive;
    anything other than OVER/UNDER (HOLD, NO_LINE) raises ValueError: those have no result.
    """
    d = direction.upper()
    if d not in BET_DIRECTIONS:
        raise ValueError(f"bet_outcome: direction must be OVER or UNDER, got {direction!r}")
    if actual == line:
        return None
    return actual > line if d == "OVER" else actual < line


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def dnp(is_dnp_flag: Any, points: Any, minutes: Any) -> bool:
    """The DNP rule on plain values (NaN = missing): the DNP flag, missing points, or 0 points with 0 or
    missing minutes. 0 points with minutes > 0 is a played game (a normal result). Training
    (``models/train.py``) applies it to its box-score frame; :func:`is_dnp` to a ``BoxScore``."""
    if (not _missing(is_dnp_flag) and bool(is_dnp_flag)) or _missing(points):
        return True
    return points == 0 and (_missing(minutes) or minutes <= 0)


def is_dnp(box: BoxScore | None) -> bool:
    """Did-not-play: no box score row, or :func:`dnp` of its DNP flag, points and minutes."""
    return box is None or dnp(box.is_dnp, box.points, box.minutes)


def void_reason(box: BoxScore | None, injury_status_before_game: str | None) -> str | None:
    """None if the player played; else why the bet is void.

    ``injury_status_before_game`` is the player's latest injury report status at or before tip-off
    (compared case-insensitively): out/doubtful -> ``dnp_injury_confirmed``, questionable/probable ->
    ``dnp_late_scratch``, anything else or no report -> ``dnp_unknown``. ``box`` None means the player
    has no row in a game that has box scores (the caller decides that the game itself was played).
    """
    if not is_dnp(box):
        return None
    status = (injury_status_before_game or "").strip().lower()
    if status in INJURY_CONFIRMED_STATUSES:
        return DNP_INJURY_CONFIRMED
    if status in LATE_SCRATCH_STATUSES:
        return DNP_LATE_SCRATCH
    return DNP_UNKNOWN


def clv_points(direction: str, line: float | None, closing_line: float | None) -> float | None:
    """Closing-line value in points, positive when the bet beat the close; None without both lines."""
    if line is None or closing_line is None or direction.upper() not in BET_DIRECTIONS:
        return None
    value = closing_line - line if direction.upper() == "OVER" else line - closing_line
    return round(value, 2)


# --------------------------------------------------------------------------------------------
# The "edge N+" rule
# --------------------------------------------------------------------------------------------


def edge_direction(edge: float | None) -> str | None:
    """OVER for a positive edge, UNDER for a negative one, None for no edge (no line) or 0."""
    if _missing(edge) or edge == 0:
        return None
    return "OVER" if edge > 0 else "UNDER"


def edge_outcome(edge: float | None, line: float | None, actual: float | None) -> str | None:
    """THE "edge N+" rule: the result of the edge's direction against the line (WIN / LOSS / PUSH), or
    None without a result (no line, no or zero edge, no actual points: pass None for a void).

    OVER (edge > 0) wins if actual > line, UNDER (edge < 0) wins if actual < line (:func:`bet_outcome`),
    whatever the model's recommendation. Which predictions count at "edge N+" is
    :func:`in_edge_bucket`. NaN counts as missing, so the vectorised form (:func:`edge_outcomes`) can
    take numpy arrays with NaN lines.
    """
    direction = edge_direction(edge)
    if direction is None or _missing(line) or _missing(actual):
        return None
    won = bet_outcome(direction, float(line), float(actual))
    return PUSH if won is None else (WIN if won else LOSS)


def edge_correct(edge: float | None, line: float | None, actual: float | None) -> bool | None:
    """:func:`edge_outcome` as the stored ``edge_correct`` column: True (WIN), False (LOSS), else None."""
    return {WIN: True, LOSS: False}.get(edge_outcome(edge, line, actual))


def in_edge_bucket(edge: float | None, bucket: float) -> bool:
    """Does a prediction count at "edge ``bucket``+": |edge| >= bucket (the exact bucket value counts)."""
    return not _missing(edge) and abs(edge) >= bucket


_edge_outcome_ufunc = np.frompyfunc(edge_outcome, 3, 1)
_in_edge_bucket_ufunc = np.frompyfunc(in_edge_bucket, 2, 1)


def edge_outcomes(edge: np.ndarray, line: np.ndarray, actual: np.ndarray) -> np.ndarray:
    """:func:`edge_outcome` element-wise over arrays (governance's holdout): an object array of
    WIN / LOSS / PUSH / None. The same function, applied per element: one definition."""
    return np.asarray(_edge_outcome_ufunc(np.asarray(edge, float), np.asarray(line, float),
                                          np.asarray(actual, float)), dtype=object)


def in_edge_buckets(edge: np.ndarray, bucket: float) -> np.ndarray:
    """:func:`in_edge_bucket` element-wise: a boolean array."""
    return np.asarray(_in_edge_bucket_ufunc(np.asarray(edge, float), float(bucket)), dtype=bool)


def _r(value: float | None, digits: int = 2) -> float | None:
    return None if value is None else round(float(value), digits)


def grade_prediction(pred: Prediction, box: BoxScore | None, injury_status: str | None, *,
                     closing_line: float | None = None, run_id: str | None = None) -> PredictionAccuracy:
    """Grades one prediction against the box score of a game that was played.

    Every prediction is graded, NO_LINE included (domain.md sections 3 and 9: scored and tracked for
    accuracy). Void (DNP): no result, no errors, the void reason. Otherwise errors and within 3 / 5
    always; ``prediction_correct`` (True/False, or None for a push) only for an OVER/UNDER recommendation
    with a line, None for HOLD and NO_LINE; ``edge_correct`` by the "edge N+" rule (:func:`edge_outcome`)
    whenever there is a line; margin with a line. ``closing_line`` (optional) gives the CLV in the
    edge's direction.
    """
    reason = void_reason(box, injury_status)
    rec = pred.recommendation.upper()
    is_bet = rec in BET_DIRECTIONS and pred.line is not None
    direction = edge_direction(pred.edge) if pred.line is not None else None
    clv = clv_points(direction, pred.line, closing_line) if direction is not None else None
    minutes = box.minutes if box is not None else None
    if reason is not None:
        return PredictionAccuracy(
            game_date=pred.game_date, game_id=pred.game_id, player_lookup=pred.player_lookup,
            model_id=pred.model_id, family=pred.family, line=pred.line, recommendation=rec,
            predicted_points=pred.predicted_points, edge=pred.edge,
            actual_points=box.points if box is not None else None, minutes=minutes,
            prediction_correct=None, is_push=False, is_voided=True, void_reason=reason,
            absolute_error=None, signed_error=None, within_3=None, within_5=None, margin=None,
            run_id=run_id, closing_line=closing_line, clv=clv, edge_correct=None)
    actual = float(box.points)  # type: ignore[union-attr]  # not None: is_dnp checked it
    outcome = bet_outcome(rec, pred.line, actual) if is_bet else None
    signed = pred.predicted_points - actual
    abs_err = abs(signed)
    return PredictionAccuracy(
        game_date=pred.game_date, game_id=pred.game_id, player_lookup=pred.player_lookup,
        model_id=pred.model_id, family=pred.family, line=pred.line, recommendation=rec,
        predicted_points=pred.predicted_points, edge=pred.edge, actual_points=actual, minutes=minutes,
        prediction_correct=outcome, is_push=is_bet and outcome is None, is_voided=False, void_reason=None,
        absolute_error=_r(abs_err), signed_error=_r(signed), within_3=abs_err <= 3.0, within_5=abs_err <= 5.0,
        margin=_r(actual - pred.line) if pred.line is not None else None,
        run_id=run_id, closing_line=closing_line, clv=clv,
        edge_correct=edge_correct(pred.edge, pred.line, actual))


def grade_pick(pick: Pick, box: BoxScore | None, injury_status: str | None, closing_line: float | None, *,
               game_played: bool = True, closing_book: str | None = None,
               run_id: str | None = None) -> BestBetResult:
    """Grades one pick: WIN / LOSS / PUSH / VOID (DNP, with the reason), or PENDING when the game has no
    box scores yet (``game_played`` False). CLV is computed whenever the closing line is known.
    """
    clv = clv_points(pick.direction, pick.line, closing_line)
    common = dict(pick_id=pick.pick_id, game_date=pick.game_date, game_id=pick.game_id,
                  player_lookup=pick.player_lookup, direction=pick.direction.upper(), line=pick.line,
                  consensus_edge=pick.consensus_edge, closing_line=closing_line, clv=clv,
                  ultra_tier=bool(pick.ultra_tier), run_id=run_id, rank=pick.rank, pick_run_id=pick.run_id,
                  closing_book=closing_book)
    if not game_played:
        return BestBetResult(actual_points=None, minutes=None, result=PENDING, void_reason=None, margin=None,
                             **common)
    minutes = box.minutes if box is not None else None
    reason = void_reason(box, injury_status)
    if reason is not None:
        return BestBetResult(actual_points=box.points if box is not None else None, minutes=minutes,
                             result=VOID, void_reason=reason, margin=None, **common)
    actual = float(box.points)  # type: ignore[union-attr]
    outcome = bet_outcome(pick.direction, pick.line, actual)
    result = PUSH if outcome is None else (WIN if outcome else LOSS)
    return BestBetResult(actual_points=actual, minutes=minutes, result=result, void_reason=None,
                         margin=_r(actual - pick.line), **common)


def latest_predictions(predictions: Iterable[Prediction]) -> list[Prediction]:
    """The latest prediction (by line snapshot time, then run_id) of each (game_date, game_id, player,
    model): the one graded (``prediction_accuracy`` has one row per player-game and model). Sorted."""
    best: dict[tuple, Prediction] = {}
    epoch = dt.datetime.min.replace(tzinfo=dt.UTC)
    for p in predictions:
        key = (p.game_date, p.game_id, p.player_lookup, p.model_id)
        cur = best.get(key)
        rank = (p.line_snapshot_ts or epoch, p.run_id or "")
        if cur is None or rank >= (cur.line_snapshot_ts or epoch, cur.run_id or ""):
            best[key] = p
    return [best[k] for k in sorted(best)]


class GradedGroup(NamedTuple):
    """What grading one (game_date, player_lookup) produced."""

    accuracy: list[PredictionAccuracy]
    results: list[BestBetResult]
    pending_predictions: int  # predictions of games with no box scores yet (not written)
    no_line_predictions: int  # NO_LINE predictions graded (errors, no result), part of ``accuracy``


def grade_player_date(predictions: Iterable[Prediction], picks: Iterable[Pick], boxes: Iterable[BoxScore],
                      reports: Iterable[InjuryReport], odds: Iterable[OddsSnapshot], *,
                      tipoffs: Mapping[str, dt.datetime], played_game_ids: Collection[str],
                      policy: Policy, run_id: str | None = None) -> GradedGroup:
    """Grades every prediction (latest per model, NO_LINE included) and every non-withdrawn pick of ONE
    (game_date, player_lookup) from that player's box scores, injury reports and odds snapshots of the
    date. The injury status is the latest report at or before the game's tip-off (``tipoffs`` by game_id;
    without a tip-off: the latest report of the date). The closing line is the line book's selected line
    as of tip-off (``linebook.closing_line``). A game without box scores (``played_game_ids``) is
    pending: predictions are not graded, picks get PENDING. Pure and deterministic (sorted output)."""
    # one box score per game; should a duplicate exist, the played row wins (sorted last)
    box_by_game = {b.game_id: b for b in sorted(boxes, key=lambda b: (b.game_id, not b.is_dnp,
                                                                      b.points or 0.0))}
    reports = list(reports)
    odds_by_game: dict[str, list[OddsSnapshot]] = defaultdict(list)
    for o in odds:
        odds_by_game[o.game_id].append(o)
    status_cache: dict[str, str | None] = {}
    closing_cache: dict[str, tuple[float, str, dt.datetime] | None] = {}
    far = dt.datetime.max.replace(tzinfo=dt.UTC)

    def status(game_id: str) -> str | None:
        if game_id not in status_cache:
            status_cache[game_id] = latest_injury_status(reports, tipoffs.get(game_id, far))
        return status_cache[game_id]

    def closing(game_id: str) -> tuple[float, str, dt.datetime] | None:
        if game_id not in closing_cache:
            tip = tipoffs.get(game_id)
            snaps = odds_by_game.get(game_id, [])
            closing_cache[game_id] = selected_closing_line(snaps, tip, policy) if tip is not None and snaps \
                else None
        return closing_cache[game_id]

    accuracy, pending, no_line = [], 0, 0
    for p in latest_predictions(predictions):
        if p.game_id not in played_game_ids:
            pending += 1
            continue
        if p.line is None:
            no_line += 1
        close = closing(p.game_id) if p.line is not None else None
        accuracy.append(grade_prediction(p, box_by_game.get(p.game_id), status(p.game_id),
                                         closing_line=close[0] if close else None, run_id=run_id))
    results = []
    for k in sorted((k for k in picks if k.status != "withdrawn"), key=lambda k: k.pick_id):
        close = closing(k.game_id)
        results.append(grade_pick(k, box_by_game.get(k.game_id), status(k.game_id),
                                  close[0] if close else None, game_played=k.game_id in played_game_ids,
                                  closing_book=close[1] if close else None, run_id=run_id))
    return GradedGroup(accuracy, results, pending, no_line)


# --------------------------------------------------------------------------------------------
# Hit rates at "edge N+"
# --------------------------------------------------------------------------------------------


def hit_rate(wins: int, losses: int) -> float | None:
    """wins / (wins + losses), None when there is no graded bet."""
    n = wins + losses
    return wins / n if n else None


Z_95 = 1.959964  # two-sided 95 % normal quantile


def wilson_interval(wins: int, n: int, z: float = Z_95) -> tuple[float, float] | None:
    """95 % Wilson score interval of a hit rate ``wins / n`` (None when n = 0)."""
    if n <= 0:
        return None
    p = wins / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def accuracy_edge_outcome(row: PredictionAccuracy) -> str | None:
    """:func:`edge_outcome` of a graded prediction (None when it is void). Python readers of
    ``prediction_accuracy`` call this; SQL readers use the stored ``edge_correct`` (the same rule)."""
    if row.is_voided:
        return None
    return edge_outcome(row.edge, row.line, row.actual_points)


def edge_bucket_result(row: PredictionAccuracy, bucket: float) -> bool | None:
    """A graded prediction's result at "edge ``bucket``+": True / False when its |edge| reaches the bucket
    and it has a result, else None (not counted: push, void, no line, below the bucket)."""
    if not in_edge_bucket(row.edge, bucket):
        return None
    return {WIN: True, LOSS: False}.get(accuracy_edge_outcome(row))


# --------------------------------------------------------------------------------------------
# Model performance
# --------------------------------------------------------------------------------------------


def state_bounds(policy: Policy) -> tuple[tuple[float, str], ...]:
    """(upper bound, state) pairs, lowest first: below ``breakeven_hr`` BLOCKED, below
    ``state_degrading_hr`` DEGRADING, below ``state_watch_hr`` WATCH (fractions of 1)."""
    return ((policy.breakeven_hr, "BLOCKED"), (policy.state_degrading_hr, "DEGRADING"),
            (policy.state_watch_hr, "WATCH"))


def model_state(hr_7d: float | None, n_7d: int, policy: Policy) -> str:
    """Health state from the 7-day edge-3+ HR (a fraction): INSUFFICIENT_DATA when n < the policy's
    ``state_min_graded``; then the first bound of :func:`state_bounds` the HR is below; else HEALTHY."""
    if n_7d < policy.state_min_graded or hr_7d is None:
        return STATE_INSUFFICIENT
    for bound, state in state_bounds(policy):
        if hr_7d < bound:
            return state
    return STATE_HEALTHY


class _DayStats(NamedTuple):
    """Sums of one model's graded rows on one date (windows add these up)."""

    w3: int = 0
    l3: int = 0
    w5: int = 0
    l5: int = 0
    over_w: int = 0
    over_l: int = 0
    under_w: int = 0
    under_l: int = 0
    abs_err_sum: float = 0.0
    abs_err_n: int = 0
    bias_sum: float = 0.0
    bias_n: int = 0

    def add(self, other: _DayStats) -> _DayStats:
        return _DayStats(*(a + b for a, b in zip(self, other, strict=True)))


def _row_stats(row: PredictionAccuracy, policy: Policy) -> _DayStats:
    if row.is_voided:
        return _DayStats()
    abs_n = 1 if row.absolute_error is not None else 0
    bias_n = 1 if (row.line is not None and row.predicted_points is not None) else 0
    base = dict(abs_err_sum=float(row.absolute_error or 0.0), abs_err_n=abs_n,
                bias_sum=float(row.predicted_points - row.line) if bias_n else 0.0, bias_n=bias_n)
    edge3, edge5 = policy.edge_buckets
    won = edge_bucket_result(row, edge3)
    if won is None:
        return _DayStats(**base)
    w, lo = (1, 0) if won else (0, 1)
    e5 = edge_bucket_result(row, edge5) is not None
    over = edge_direction(row.edge) == "OVER"
    return _DayStats(w3=w, l3=lo, w5=w if e5 else 0, l5=lo if e5 else 0,
                     over_w=w if over else 0, over_l=lo if over else 0,
                     under_w=0 if over else w, under_l=0 if over else lo, **base)


def _window(daily: dict[dt.date, _DayStats], as_of: dt.date, days: int) -> _DayStats:
    total = _DayStats()
    for i in range(days):
        s = daily.get(as_of - dt.timedelta(days=i))
        if s is not None:
            total = total.add(s)
    return total


def _performance_row(daily: dict[dt.date, _DayStats], as_of: dt.date, model_id: str, family: str | None,
                     policy: Policy, run_id: str | None) -> ModelPerformanceDaily:
    w7, w14, w30 = (_window(daily, as_of, d) for d in WINDOWS_DAYS)
    hr7 = hit_rate(w7.w3, w7.l3)
    n7 = w7.w3 + w7.l3
    return ModelPerformanceDaily(
        game_date=as_of, model_id=model_id, family=family,
        hr_7d=hr7, hr_14d=hit_rate(w14.w3, w14.l3), hr_30d=hit_rate(w30.w3, w30.l3),
        n_7d=n7, n_14d=w14.w3 + w14.l3, n_30d=w30.w3 + w30.l3,
        hr_edge5_30d=hit_rate(w30.w5, w30.l5), n_edge5_30d=w30.w5 + w30.l5,
        over_hr_30d=hit_rate(w30.over_w, w30.over_l), under_hr_30d=hit_rate(w30.under_w, w30.under_l),
        mae_30d=w30.abs_err_sum / w30.abs_err_n if w30.abs_err_n else None,
        vegas_bias_30d=w30.bias_sum / w30.bias_n if w30.bias_n else None,
        state=model_state(hr7, n7, policy), run_id=run_id)


def model_performance_series(accuracy_rows: Iterable[PredictionAccuracy], as_of_dates: Iterable[dt.date], *,
                             policy: Policy, run_id: str | None = None) -> list[ModelPerformanceDaily]:
    """One ``ModelPerformanceDaily`` per (as-of date, model) for every model with at least one graded row
    in the 30 days ending at that date. HR windows count the "edge N+" rule at ``policy.edge_buckets``
    (7/14/30-day at edge 3+, edge 5+ over 30 days, OVER/UNDER split by the edge's direction); MAE over
    every non-void prediction (NO_LINE included); vegas bias = mean(predicted - line) over lined ones.
    ``accuracy_rows`` must cover the 30-day lookback of the earliest date. Rows come out sorted by
    (game_date, model_id). Each row is aggregated once per day, so a season of dates costs one pass over
    the rows plus 30 additions per (date, model)."""
    daily: dict[str, dict[dt.date, _DayStats]] = defaultdict(dict)
    family: dict[str, str | None] = {}
    # A fixed order: float sums (bias, error) must not depend on the order a runner hands rows over, so a
    # re-grade writes bit-identical rows.
    def order(r: PredictionAccuracy) -> tuple:
        return (r.model_id, r.game_date, r.game_id, r.player_lookup, -1.0 if r.line is None else r.line,
                -1.0 if r.predicted_points is None else r.predicted_points)

    ordered = sorted(accuracy_rows, key=order)
    for row in ordered:
        per_model = daily[row.model_id]
        per_model[row.game_date] = per_model.get(row.game_date, _DayStats()).add(_row_stats(row, policy))
        if row.family is not None or row.model_id not in family:
            family[row.model_id] = row.family
    out = []
    longest = max(WINDOWS_DAYS)
    for as_of in sorted(set(as_of_dates)):
        first = as_of - dt.timedelta(days=longest - 1)
        for model_id in sorted(daily):
            if any(first <= d <= as_of for d in daily[model_id]):
                out.append(_performance_row(daily[model_id], as_of, model_id, family[model_id], policy,
                                            run_id))
    return out


def model_performance(accuracy_rows: Iterable[PredictionAccuracy], as_of_date: dt.date, model_id: str, *,
                      policy: Policy, run_id: str | None = None) -> ModelPerformanceDaily:
    """The performance row of one model at one date (windows of 7/14/30 calendar days ending at
    ``as_of_date`` inclusive); a model with no graded rows gets counts 0 and INSUFFICIENT_DATA."""
    rows = [r for r in accuracy_rows if r.model_id == model_id]
    series = model_performance_series(rows, [as_of_date], policy=policy, run_id=run_id)
    if series:
        return series[0]
    fam = next((r.family for r in rows if r.family is not None), None)
    return _performance_row({}, as_of_date, model_id, fam, policy, run_id)


# --------------------------------------------------------------------------------------------
# Season backtest table
# --------------------------------------------------------------------------------------------

BEST_BETS = "best_bets"


class BacktestLine(NamedTuple):
    """One line of the backtest table (a model family at edge 3+, or best bets)."""

    name: str
    picks: int  # graded W + L (pushes and voids excluded, like the HR)
    wins: int
    losses: int
    pushes: int
    voids: int
    hit_rate: float | None
    hr_low: float | None  # 95 % Wilson interval of the HR
    hr_high: float | None
    roi: float | None  # profit per unit staked at -110 over W + L
    mean_clv: float | None
    n_clv: int
    over_wins: int
    over_losses: int
    over_hr: float | None
    under_wins: int
    under_losses: int
    under_hr: float | None


def roi_at_minus_110(wins: int, losses: int) -> float | None:
    """Profit per unit staked on -110 bets: (wins x 100/110 - losses) / (wins + losses)."""
    n = wins + losses
    return (wins * WIN_PAYOUT_AT_MINUS_110 - losses) / n if n else None


class _Tally:
    """W/L/P per direction, voids and CLVs of one backtest line."""

    def __init__(self) -> None:
        self.counts = {(d, o): 0 for d in BET_DIRECTIONS for o in (WIN, LOSS, PUSH)}
        self.voids = 0
        self.clvs: list[float] = []

    def line(self, name: str) -> BacktestLine:
        c = self.counts
        ow, ol, uw, ul = c["OVER", WIN], c["OVER", LOSS], c["UNDER", WIN], c["UNDER", LOSS]
        wins, losses = ow + uw, ol + ul
        ci = wilson_interval(wins, wins + losses)
        return BacktestLine(
            name, wins + losses, wins, losses, c["OVER", PUSH] + c["UNDER", PUSH], self.voids,
            hit_rate(wins, losses), ci[0] if ci else None, ci[1] if ci else None,
            roi_at_minus_110(wins, losses), sum(self.clvs) / len(self.clvs) if self.clvs else None,
            len(self.clvs), ow, ol, hit_rate(ow, ol), uw, ul, hit_rate(uw, ul))


def backtest_table(accuracy_rows: Iterable[PredictionAccuracy], pick_results: Iterable[BestBetResult], *,
                   policy: Policy) -> list[BacktestLine]:
    """Per model family (every prediction of its models at "edge 3+" = ``policy.edge_buckets[0]``, by the
    edge rule) and for best bets (graded picks): W-L-P, voids, HR with its 95 % Wilson interval, ROI at
    -110, mean CLV (over the bets with a closing line) and the OVER / UNDER split. Families sorted by
    name, best bets last."""
    bucket = policy.edge_buckets[0]
    families: dict[str, _Tally] = defaultdict(_Tally)
    for r in accuracy_rows:
        if r.line is None or not in_edge_bucket(r.edge, bucket):
            continue
        t = families[r.family or "(unknown)"]
        if r.is_voided:
            t.voids += 1
            continue
        outcome = accuracy_edge_outcome(r)
        if outcome is None:
            continue
        t.counts[edge_direction(r.edge), outcome] += 1
        if r.clv is not None:
            t.clvs.append(r.clv)
    lines = [families[f].line(f) for f in sorted(families)]
    picks = _Tally()
    for p in pick_results:
        if p.result == VOID:
            picks.voids += 1
        elif p.result in (WIN, LOSS, PUSH) and p.direction.upper() in BET_DIRECTIONS:
            picks.counts[p.direction.upper(), p.result] += 1
        if p.clv is not None and p.result != PENDING:
            picks.clvs.append(p.clv)
    lines.append(picks.line(BEST_BETS))
    return lines


class ConsensusComparison(NamedTuple):
    """Best bets (the consensus) against the best single family, on HR with 95 % intervals."""

    best_family: str | None
    family: BacktestLine | None
    consensus: BacktestLine
    beats: bool | None  # consensus HR > best family HR; None when either has no graded bet
    significant: bool  # the consensus interval lies wholly above the family's


def consensus_vs_best_family(lines: Sequence[BacktestLine]) -> ConsensusComparison:
    """Compares the best-bets line with the family of the highest HR (ties: more bets, then name)."""
    consensus = next(ln for ln in lines if ln.name == BEST_BETS)
    families = [ln for ln in lines if ln.name != BEST_BETS and ln.hit_rate is not None]
    best = min(families, key=lambda ln: (-ln.hit_rate, -ln.picks, ln.name), default=None)
    if best is None or consensus.hit_rate is None:
        return ConsensusComparison(best.name if best else None, best, consensus, None, False)
    beats = consensus.hit_rate > best.hit_rate
    significant = beats and consensus.hr_low is not None and best.hr_high is not None \
        and consensus.hr_low > best.hr_high
    return ConsensusComparison(best.name, best, consensus, beats, significant)


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.1f}%"


def _interval(low: float | None, high: float | None) -> str:
    return "-" if low is None or high is None else f"[{100 * low:.1f}-{100 * high:.1f}]"


def format_consensus_line(cmp: ConsensusComparison) -> str:
    """One sentence: does the consensus (best bets) beat the best single family on HR?"""
    c = cmp.consensus
    if cmp.family is None or c.hit_rate is None:
        return ("consensus vs best family: not enough graded bets to compare "
                f"(best bets {c.picks}, best family {cmp.best_family or '-'})")
    f = cmp.family
    head = (f"consensus (best bets) HR {_pct(c.hit_rate)} {_interval(c.hr_low, c.hr_high)} on {c.picks} vs "
            f"best family {f.name} HR {_pct(f.hit_rate)} {_interval(f.hr_low, f.hr_high)} on {f.picks}: ")
    if cmp.significant:
        return head + "the consensus beats it (intervals do not overlap)"
    if cmp.beats:
        return head + "the consensus is higher but the 95 % intervals overlap (not a significant win)"
    return head + "the consensus does NOT beat the best family"


def format_backtest_table(lines: Sequence[BacktestLine]) -> str:
    """A fixed-width text table plus the consensus line (``props grade --start --end``, README)."""
    def num(v: float | None) -> str:
        return "-" if v is None else f"{v:+.2f}"

    header = (f"{'name':<16} {'bets':>6} {'W-L-P':>13} {'voids':>6} {'HR':>7} {'95% CI':>13} {'ROI':>7} "
              f"{'CLV':>6} {'n_clv':>6} {'OVER W-L':>10} {'OVER HR':>8} {'UNDER W-L':>10} {'UNDER HR':>8}")
    out = [header, "-" * len(header)]
    for ln in lines:
        wlp = f"{ln.wins}-{ln.losses}-{ln.pushes}"
        out.append(f"{ln.name:<16} {ln.picks:>6} {wlp:>13} {ln.voids:>6} {_pct(ln.hit_rate):>7} "
                   f"{_interval(ln.hr_low, ln.hr_high):>13} {_pct(ln.roi):>7} {num(ln.mean_clv):>6} "
                   f"{ln.n_clv:>6} {f'{ln.over_wins}-{ln.over_losses}':>10} {_pct(ln.over_hr):>8} "
                   f"{f'{ln.under_wins}-{ln.under_losses}':>10} {_pct(ln.under_hr):>8}")
    out.append(format_consensus_line(consensus_vs_best_family(lines)))
    return "\n".join(out)

"""Grading rules (domain.md section 9): pure functions, no Beam, no I/O.

What: the outcome of one bet against the actual points, DNP voids with their reasons, the graded
``PredictionAccuracy`` / ``BestBetResult`` rows, closing-line value, the rolling per-model performance
row with its health state, and the season backtest table (picks, hit rate, ROI at -110, mean CLV).
How: every rule is a small function of plain values; the Beam transforms (``pipeline/transforms/
grading.py``) and the ``props grade`` command only route rows into them.

Conventions (one place for each):
  * hit rate (HR) = wins / (wins + losses), a fraction 0-1; pushes and voids never count;
  * a "bet" is an OVER/UNDER recommendation with a line; HOLD and NO_LINE have no result;
  * model HR windows count bets with |edge| >= 3.0 (edge 5+ for ``hr_edge5_30d``);
  * a window of N days is the N calendar days ending at the as-of date, inclusive;
  * signed_error = predicted - actual (positive = the model over-predicted);
  * margin = actual - line; CLV = closing - line for OVER, line - closing for UNDER (positive = beat
    the close);
  * state from the 7-day HR: INSUFFICIENT_DATA (n < 5), BLOCKED (< 52.4 %), DEGRADING (< 55 %),
    WATCH (< 58 %), HEALTHY; each threshold's exact value belongs to the better state.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import NamedTuple

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

# Model performance: edge floors of the HR windows and the state thresholds (fractions of 1).
HR_EDGE_MIN = 3.0
HR_EDGE5_MIN = 5.0
WINDOWS_DAYS: tuple[int, int, int] = (7, 14, 30)
STATE_MIN_N = 5
STATE_THRESHOLDS: tuple[tuple[float, str], ...] = ((0.524, "BLOCKED"), (0.55, "DEGRADING"), (0.58, "WATCH"))
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


def is_dnp(box: BoxScore | None) -> bool:
    """Did-not-play: no box score row, the DNP flag, missing points, or 0 points with 0/missing minutes.

    0 points with minutes > 0 is a played game (a normal result).
    """
    if box is None or box.is_dnp or box.points is None:
        return True
    return box.points == 0 and (box.minutes is None or box.minutes <= 0)


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


def _r(value: float | None, digits: int = 2) -> float | None:
    return None if value is None else round(float(value), digits)


def grade_prediction(pred: Prediction, box: BoxScore | None, injury_status: str | None, *,
                     closing_line: float | None = None, run_id: str | None = None) -> PredictionAccuracy:
    """Grades one prediction against the box score of a game that was played.

    Void (DNP): no result, no errors. Otherwise errors always; a result (True/False, or push) only for
    an OVER/UNDER recommendation with a line; HOLD and NO_LINE get ``prediction_correct`` None and
    ``is_push`` False. ``closing_line`` (optional) gives the CLV of a bet.
    """
    reason = void_reason(box, injury_status)
    rec = pred.recommendation.upper()
    is_bet = rec in BET_DIRECTIONS and pred.line is not None
    clv = clv_points(rec, pred.line, closing_line) if is_bet else None
    minutes = box.minutes if box is not None else None
    if reason is not None:
        return PredictionAccuracy(
            game_date=pred.game_date, game_id=pred.game_id, player_lookup=pred.player_lookup,
            model_id=pred.model_id, family=pred.family, line=pred.line, recommendation=rec,
            predicted_points=pred.predicted_points, edge=pred.edge,
            actual_points=box.points if box is not None else None, minutes=minutes,
            prediction_correct=None, is_push=False, is_voided=True, void_reason=reason,
            absolute_error=None, signed_error=None, within_3=None, within_5=None, margin=None,
            run_id=run_id, closing_line=closing_line, clv=clv)
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
        run_id=run_id, closing_line=closing_line, clv=clv)


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
    no_line_predictions: int  # predictions without a line (not graded)


def grade_player_date(predictions: Iterable[Prediction], picks: Iterable[Pick], boxes: Iterable[BoxScore],
                      reports: Iterable[InjuryReport], odds: Iterable[OddsSnapshot], *,
                      tipoffs: dict[str, dt.datetime], played_game_ids: frozenset[str] | set[str],
                      policy: Policy, run_id: str | None = None) -> GradedGroup:
    """Grades every prediction (latest per model, with a line) and every non-withdrawn pick of ONE
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
        if p.line is None:
            no_line += 1
            continue
        if p.game_id not in played_game_ids:
            pending += 1
            continue
        close = closing(p.game_id) if p.recommendation.upper() in BET_DIRECTIONS else None
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
# Model performance
# --------------------------------------------------------------------------------------------


def hit_rate(wins: int, losses: int) -> float | None:
    """wins / (wins + losses), None when there is no graded bet."""
    n = wins + losses
    return wins / n if n else None


def model_state(hr_7d: float | None, n_7d: int, *, min_n: int = STATE_MIN_N,
                thresholds: Sequence[tuple[float, str]] = STATE_THRESHOLDS) -> str:
    """Health state from the 7-day edge-3+ HR (a fraction): INSUFFICIENT_DATA when n < 5; then the first
    threshold the HR is below (52.4 % BLOCKED, 55 % DEGRADING, 58 % WATCH); else HEALTHY."""
    if n_7d < min_n or hr_7d is None:
        return STATE_INSUFFICIENT
    for bound, state in thresholds:
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


def _row_stats(row: PredictionAccuracy) -> _DayStats:
    if row.is_voided:
        return _DayStats()
    abs_n = 1 if row.absolute_error is not None else 0
    bias_n = 1 if (row.line is not None and row.predicted_points is not None) else 0
    base = dict(abs_err_sum=float(row.absolute_error or 0.0), abs_err_n=abs_n,
                bias_sum=float(row.predicted_points - row.line) if bias_n else 0.0, bias_n=bias_n)
    rec = (row.recommendation or "").upper()
    edge = abs(row.edge) if row.edge is not None else 0.0
    if rec not in BET_DIRECTIONS or row.prediction_correct is None or edge < HR_EDGE_MIN:
        return _DayStats(**base)
    w, lo = (1, 0) if row.prediction_correct else (0, 1)
    e5 = edge >= HR_EDGE5_MIN
    return _DayStats(w3=w, l3=lo, w5=w if e5 else 0, l5=lo if e5 else 0,
                     over_w=w if rec == "OVER" else 0, over_l=lo if rec == "OVER" else 0,
                     under_w=w if rec == "UNDER" else 0, under_l=lo if rec == "UNDER" else 0, **base)


def _window(daily: dict[dt.date, _DayStats], as_of: dt.date, days: int) -> _DayStats:
    total = _DayStats()
    for i in range(days):
        s = daily.get(as_of - dt.timedelta(days=i))
        if s is not None:
            total = total.add(s)
    return total


def _performance_row(daily: dict[dt.date, _DayStats], as_of: dt.date, model_id: str, family: str | None,
                     run_id: str | None) -> ModelPerformanceDaily:
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
        state=model_state(hr7, n7), run_id=run_id)


def model_performance_series(accuracy_rows: Iterable[PredictionAccuracy], as_of_dates: Iterable[dt.date], *,
                             run_id: str | None = None) -> list[ModelPerformanceDaily]:
    """One ``ModelPerformanceDaily`` per (as-of date, model) for every model with at least one graded row
    in the 30 days ending at that date. ``accuracy_rows`` must cover the 30-day lookback of the earliest
    date. Rows come out sorted by (game_date, model_id). Each row is aggregated once per day, so a season
    of dates costs one pass over the rows plus 30 additions per (date, model)."""
    daily: dict[str, dict[dt.date, _DayStats]] = defaultdict(dict)
    family: dict[str, str | None] = {}
    for row in accuracy_rows:
        per_model = daily[row.model_id]
        per_model[row.game_date] = per_model.get(row.game_date, _DayStats()).add(_row_stats(row))
        if row.family is not None or row.model_id not in family:
            family[row.model_id] = row.family
    out = []
    longest = max(WINDOWS_DAYS)
    for as_of in sorted(set(as_of_dates)):
        first = as_of - dt.timedelta(days=longest - 1)
        for model_id in sorted(daily):
            if any(first <= d <= as_of for d in daily[model_id]):
                out.append(_performance_row(daily[model_id], as_of, model_id, family[model_id], run_id))
    return out


def model_performance(accuracy_rows: Iterable[PredictionAccuracy], as_of_date: dt.date, model_id: str, *,
                      run_id: str | None = None) -> ModelPerformanceDaily:
    """The performance row of one model at one date (windows of 7/14/30 calendar days ending at
    ``as_of_date`` inclusive); a model with no graded rows gets counts 0 and INSUFFICIENT_DATA."""
    rows = [r for r in accuracy_rows if r.model_id == model_id]
    series = model_performance_series(rows, [as_of_date], run_id=run_id)
    if series:
        return series[0]
    fam = next((r.family for r in rows if r.family is not None), None)
    return _performance_row({}, as_of_date, model_id, fam, run_id)


# --------------------------------------------------------------------------------------------
# Season backtest table
# --------------------------------------------------------------------------------------------


class BacktestLine(NamedTuple):
    """One line of the backtest table (a model family or best bets)."""

    name: str
    picks: int  # graded W + L (pushes and voids excluded, like the HR)
    wins: int
    losses: int
    pushes: int
    voids: int
    hit_rate: float | None
    roi: float | None  # profit per unit staked at -110 over W + L
    mean_clv: float | None
    n_clv: int


def roi_at_minus_110(wins: int, losses: int) -> float | None:
    """Profit per unit staked on -110 bets: (wins x 100/110 - losses) / (wins + losses)."""
    n = wins + losses
    return (wins * WIN_PAYOUT_AT_MINUS_110 - losses) / n if n else None


def _line(name: str, outcomes: list[bool | None], voids: int, clvs: list[float]) -> BacktestLine:
    wins = sum(1 for o in outcomes if o is True)
    losses = sum(1 for o in outcomes if o is False)
    pushes = sum(1 for o in outcomes if o is None)
    return BacktestLine(name, wins + losses, wins, losses, pushes, voids, hit_rate(wins, losses),
                        roi_at_minus_110(wins, losses), sum(clvs) / len(clvs) if clvs else None, len(clvs))


def backtest_table(accuracy_rows: Iterable[PredictionAccuracy],
                   pick_results: Iterable[BestBetResult]) -> list[BacktestLine]:
    """Per model family (edge-3+ OVER/UNDER bets of all its models) and for best bets: graded picks,
    HR, ROI at -110 and mean CLV (over the bets with a closing line). Families sorted by name, best bets
    last."""
    by_family: dict[str, tuple[list, list, list]] = defaultdict(lambda: ([], [0], []))
    for r in accuracy_rows:
        rec = (r.recommendation or "").upper()
        if rec not in BET_DIRECTIONS or r.edge is None or abs(r.edge) < HR_EDGE_MIN or r.line is None:
            continue
        outcomes, voids, clvs = by_family[r.family or "(unknown)"]
        if r.is_voided:
            voids[0] += 1
            continue
        outcomes.append(r.prediction_correct)
        if r.clv is not None:
            clvs.append(r.clv)
    lines = [_line(fam, o, v[0], c) for fam, (o, v, c) in sorted(by_family.items())]
    outcomes, clvs, voids = [], [], 0
    for p in pick_results:
        if p.result == VOID:
            voids += 1
        elif p.result in (WIN, LOSS, PUSH):
            outcomes.append({WIN: True, LOSS: False, PUSH: None}[p.result])
        if p.clv is not None and p.result != PENDING:
            clvs.append(p.clv)
    lines.append(_line("best_bets", outcomes, voids, clvs))
    return lines


def format_backtest_table(lines: Sequence[BacktestLine]) -> str:
    """A fixed-width text table (README and the ``props grade --start --end`` summary)."""
    def pct(v: float | None) -> str:
        return "-" if v is None else f"{100 * v:.1f}%"

    def num(v: float | None) -> str:
        return "-" if v is None else f"{v:+.2f}"

    header = (f"{'name':<16} {'picks':>6} {'W-L-P':>13} {'voids':>6} {'HR':>7} {'ROI':>7} {'CLV':>6} "
              f"{'n_clv':>6}")
    out = [header, "-" * len(header)]
    for ln in lines:
        wlp = f"{ln.wins}-{ln.losses}-{ln.pushes}"
        out.append(f"{ln.name:<16} {ln.picks:>6} {wlp:>13} {ln.voids:>6} {pct(ln.hit_rate):>7} "
                   f"{pct(ln.roi):>7} {num(ln.mean_clv):>6} {ln.n_clv:>6}")
    return "\n".join(out)

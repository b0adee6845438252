"""Holdout evaluation and promotion gates (domain.md section 9), as pure functions.

``evaluate_holdout(pred, actual, line, season_avg)`` compares a model's holdout predictions with the
actual points and with the market line on the same rows; ``run_gates(metrics)`` applies the promotion
gates. Thresholds live in one place, the policy (``Policy.edge_buckets``, ``breakeven_hr``,
``promotion_*``), gathered in :class:`GateThresholds` (``GateThresholds.from_policy``) and passed as
arguments, never literals.

Betting rules: the project's one "edge N+" rule (``pipeline.domain.grading.edge_outcomes`` /
``in_edge_buckets``, vectorised over the holdout arrays): edge = pred - line; a bet when |edge| >= the
bucket; OVER (edge > 0) wins if actual > line, UNDER wins if actual < line; actual == line is a push and
is excluded from hit rates. Rows without a line count for MAE but not for hit rates or vegas bias. Scoring
tiers are by season average (the feature ``points_avg_season``): ``25+``, ``15-24``, ``5-14``, ``<5``; a
tier's mean error is mean(pred - actual).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from pipeline.domain.grading import LOSS, PUSH, WIN, edge_outcomes, in_edge_buckets
from pipeline.policy import Policy

TIERS: tuple[tuple[str, float, float], ...] = (
    ("25+", 25.0, math.inf),
    ("15-24", 15.0, 25.0),
    ("5-14", 5.0, 15.0),
    ("<5", -math.inf, 5.0),
)


_POLICY = Policy()  # the defaults below are the default policy's


@dataclasses.dataclass(frozen=True)
class GateThresholds:
    """Promotion gate thresholds (domain.md section 9); hit rates are fractions. The defaults are the
    default policy's; :meth:`from_policy` takes them from a policy file's."""

    edge: float = _POLICY.edge_buckets[0]  # "edge 3+"
    big_edge: float = _POLICY.edge_buckets[1]  # "edge 5+"
    min_hr: float = _POLICY.promotion_min_hr
    min_bets: int = _POLICY.promotion_min_bets
    max_abs_vegas_bias: float = _POLICY.promotion_max_vegas_bias
    max_abs_tier_error: float = _POLICY.promotion_max_tier_error
    min_direction_hr: float = _POLICY.breakeven_hr  # OVER and UNDER each at least breakeven

    @classmethod
    def from_policy(cls, policy: Policy) -> GateThresholds:
        return cls(edge=policy.edge_buckets[0], big_edge=policy.edge_buckets[1],
                   min_hr=policy.promotion_min_hr, min_bets=policy.promotion_min_bets,
                   max_abs_vegas_bias=policy.promotion_max_vegas_bias,
                   max_abs_tier_error=policy.promotion_max_tier_error, min_direction_hr=policy.breakeven_hr)


DEFAULT_THRESHOLDS = GateThresholds.from_policy(_POLICY)


def _r(x: float | None, nd: int = 6) -> float | None:
    """Rounds for a stable, JSON-safe record (None for NaN)."""
    if x is None or not math.isfinite(x):
        return None
    return round(float(x), nd)


def bet_record(pred: np.ndarray, actual: np.ndarray, line: np.ndarray, min_edge: float,
               direction: str | None = None) -> dict[str, Any]:
    """Wins, losses, pushes and hit rate of the bets at "edge ``min_edge``+" (rows with a line only),
    by the project's edge rule (``grading.edge_outcomes``).

    ``direction`` restricts to OVER (edge > 0) or UNDER (edge < 0) bets.
    """
    pred, actual, line = (np.asarray(a, float) for a in (pred, actual, line))
    edge = pred - line  # NaN without a line: no result, never in a bucket
    bet = in_edge_buckets(edge, min_edge)
    if direction == "OVER":
        bet &= edge > 0
    elif direction == "UNDER":
        bet &= edge < 0
    outcome = edge_outcomes(edge, line, actual)
    wins, losses, pushes = (int((bet & (outcome == o)).sum()) for o in (WIN, LOSS, PUSH))
    graded = wins + losses
    return {"wins": wins, "losses": losses, "pushes": pushes, "graded": graded,
            "hr": _r(wins / graded) if graded else None}


def tier_of(season_avg: float) -> str:
    for name, lo, hi in TIERS:
        if lo <= season_avg < hi:
            return name
    return "<5"  # NaN season average: lowest tier (no history)


def evaluate_holdout(pred: np.ndarray, actual: np.ndarray, line: np.ndarray, season_avg: np.ndarray,
                     thresholds: GateThresholds = DEFAULT_THRESHOLDS) -> dict[str, Any]:
    """Holdout metrics of one model; every array has one entry per played player-game (NaN line = none)."""
    pred, actual = np.asarray(pred, float), np.asarray(actual, float)
    line, season_avg = np.asarray(line, float), np.asarray(season_avg, float)
    if not (len(pred) == len(actual) == len(line) == len(season_avg)):
        raise ValueError("evaluate_holdout: arrays must have the same length")
    if len(pred) == 0:
        raise ValueError("evaluate_holdout: empty holdout (no played player-games in the holdout window)")
    has_line = ~np.isnan(line)
    err = pred - actual
    tiers: dict[str, dict[str, Any]] = {}
    names = np.array([tier_of(s) for s in season_avg])
    for name, _, _ in TIERS:
        mask = names == name
        n = int(mask.sum())
        tiers[name] = {"n": n, "mean_error": _r(err[mask].mean()) if n else None}
    n_line = int(has_line.sum())
    return {
        "n_rows": int(len(pred)),
        "n_with_line": n_line,
        "mae": _r(np.abs(err).mean()),
        "mae_on_lined": _r(np.abs(err[has_line]).mean()) if n_line else None,
        "market_mae": _r(np.abs(line[has_line] - actual[has_line]).mean()) if n_line else None,
        "vegas_bias": _r((pred[has_line] - line[has_line]).mean()) if n_line else None,
        "mean_error": _r(err.mean()),
        "edge3": bet_record(pred, actual, line, thresholds.edge),
        "edge5": bet_record(pred, actual, line, thresholds.big_edge),
        "edge3_over": bet_record(pred, actual, line, thresholds.edge, "OVER"),
        "edge3_under": bet_record(pred, actual, line, thresholds.edge, "UNDER"),
        "tiers": tiers,
    }


def run_gates(metrics: dict[str, Any],
              thresholds: GateThresholds = DEFAULT_THRESHOLDS) -> list[dict[str, Any]]:
    """The promotion gates applied to ``evaluate_holdout`` metrics: one result dict per gate.

    Each result: ``gate``, ``passed``, ``value``, ``threshold``, ``detail``. A gate whose input is missing
    (no bets, no lines) fails with a detail that says so.
    """
    t = thresholds
    out: list[dict[str, Any]] = []

    e3 = metrics["edge3"]
    out.append({
        "gate": "edge3_hit_rate", "value": e3["hr"], "threshold": t.min_hr,
        "passed": e3["hr"] is not None and e3["graded"] >= t.min_bets and e3["hr"] >= t.min_hr,
        "detail": f"{e3['wins']}-{e3['losses']} on {e3['graded']} graded edge-{t.edge:g}+ bets "
                  f"(need >= {t.min_bets} at >= {t.min_hr:.1%})",
    })
    bias = metrics["vegas_bias"]
    out.append({
        "gate": "vegas_bias", "value": bias, "threshold": t.max_abs_vegas_bias,
        "passed": bias is not None and abs(bias) <= t.max_abs_vegas_bias,
        "detail": "no rows with a line" if bias is None else f"mean(pred - line) = {bias:+.2f}",
    })
    worst = None
    for name, tier in metrics["tiers"].items():
        me = tier["mean_error"]
        if me is not None and (worst is None or abs(me) > abs(worst[1])):
            worst = (name, me)
    out.append({
        "gate": "tier_mean_error", "value": worst[1] if worst else None, "threshold": t.max_abs_tier_error,
        "passed": worst is not None and abs(worst[1]) <= t.max_abs_tier_error,
        "detail": "no rows" if worst is None else f"worst tier {worst[0]}: mean error {worst[1]:+.2f}",
    })
    for direction in ("over", "under"):
        rec = metrics[f"edge3_{direction}"]
        out.append({
            "gate": f"{direction}_hit_rate", "value": rec["hr"], "threshold": t.min_direction_hr,
            "passed": rec["hr"] is not None and rec["hr"] >= t.min_direction_hr,
            "detail": f"{rec['wins']}-{rec['losses']} on {rec['graded']} graded edge-{t.edge:g}+ "
                      f"{direction.upper()} bets",
        })
    return out


def failed_gates(results: list[dict[str, Any]]) -> list[str]:
    return [r["gate"] for r in results if not r["passed"]]


def format_report(model_id: str, metrics: dict[str, Any], results: list[dict[str, Any]]) -> str:
    """A human-readable summary: model vs market MAE, hit rates with counts, bias, split, gates."""
    def hr(rec: dict[str, Any]) -> str:
        return "n/a" if rec["hr"] is None else f"{rec['hr']:.1%}"

    m = metrics
    market = "n/a" if m["market_mae"] is None else f"{m['market_mae']:.3f}"
    lined = "n/a" if m["mae_on_lined"] is None else f"{m['mae_on_lined']:.3f}"
    bias = "n/a" if m["vegas_bias"] is None else f"{m['vegas_bias']:+.3f}"
    lines = [
        f"{model_id}",
        f"  holdout rows {m['n_rows']} ({m['n_with_line']} with a line); MAE {m['mae']:.3f} all rows",
        f"  MAE on lined rows: model {lined} vs market line {market}",
        f"  edge-3+ HR {hr(m['edge3'])} ({m['edge3']['wins']}-{m['edge3']['losses']}, "
        f"{m['edge3']['pushes']} pushes); edge-5+ HR {hr(m['edge5'])} "
        f"({m['edge5']['wins']}-{m['edge5']['losses']})",
        f"  OVER {hr(m['edge3_over'])} ({m['edge3_over']['wins']}-{m['edge3_over']['losses']}), "
        f"UNDER {hr(m['edge3_under'])} ({m['edge3_under']['wins']}-{m['edge3_under']['losses']}); "
        f"vegas bias {bias}",
        "  tiers: " + ", ".join(
            f"{k} n={v['n']} err={'n/a' if v['mean_error'] is None else format(v['mean_error'], '+.2f')}"
            for k, v in m["tiers"].items()),
        "  gates: " + ", ".join(f"{r['gate']}={'PASS' if r['passed'] else 'FAIL'}" for r in results),
    ]
    return "\n".join(lines)

"""Report figures computed from graded rows (pure): hit rate by edge bucket with Wilson intervals,
calibration of predicted points against actual, CLV summaries per model family and for best bets.

Hit rates follow the one rule of the project: wins / (wins + losses), pushes and voids excluded; a
model's bets are counted by the "edge N+" rule (``grading.edge_outcome``: the edge's direction against
the line, whatever the recommendation), picks by their result. The interval is
``grading.wilson_interval``.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import NamedTuple

from pipeline.domain.grading import LOSS, WIN, accuracy_edge_outcome, in_edge_bucket, wilson_interval
from pipeline.policy import Policy
from pipeline.schemas import BestBetResult, PredictionAccuracy

EDGE_BUCKETS: tuple[tuple[str, float, float], ...] = (
    ("0-2", 0.0, 2.0), ("2-3", 2.0, 3.0), ("3-5", 3.0, 5.0), ("5-7", 5.0, 7.0), ("7+", 7.0, math.inf),
)
CALIBRATION_BIN = 5.0  # points per calibration bin of predicted points


class BucketRate(NamedTuple):
    bucket: str
    wins: int
    losses: int
    hit_rate: float | None
    low: float | None  # 95 % Wilson interval
    high: float | None


class CalibrationBin(NamedTuple):
    low: float
    high: float
    n: int
    mean_predicted: float
    mean_actual: float


class ClvSummary(NamedTuple):
    name: str
    n: int
    mean: float | None
    share_positive: float | None


def bucket_of(abs_edge: float) -> str:
    for name, lo, hi in EDGE_BUCKETS:
        if lo <= abs_edge < hi:
            return name
    return EDGE_BUCKETS[-1][0]


def _rates(counts: dict[str, list[int]]) -> list[BucketRate]:
    out = []
    for name, _, _ in EDGE_BUCKETS:
        w, lo = counts.get(name, [0, 0])
        ci = wilson_interval(w, w + lo)
        out.append(BucketRate(name, w, lo, w / (w + lo) if w + lo else None, ci[0] if ci else None,
                              ci[1] if ci else None))
    return out


def hit_rate_by_edge(accuracy: Iterable[PredictionAccuracy]) -> list[BucketRate]:
    """Per |edge| bucket: W, L, HR and its interval over graded predictions (the edge rule)."""
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for a in accuracy:
        outcome = accuracy_edge_outcome(a)
        if outcome in (WIN, LOSS):
            counts[bucket_of(abs(a.edge))][0 if outcome == WIN else 1] += 1
    return _rates(counts)


def pick_hit_rate_by_edge(results: Iterable[BestBetResult]) -> list[BucketRate]:
    """Per |consensus_edge| bucket: the best bets' W, L, HR and interval."""
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for r in results:
        if r.result in ("WIN", "LOSS") and r.consensus_edge is not None:
            counts[bucket_of(abs(r.consensus_edge))][0 if r.result == "WIN" else 1] += 1
    return _rates(counts)


def calibration(accuracy: Iterable[PredictionAccuracy],
                bin_width: float = CALIBRATION_BIN) -> list[CalibrationBin]:
    """Mean actual points per bin of predicted points (non-void rows with an actual)."""
    sums: dict[int, list[float]] = defaultdict(lambda: [0, 0.0, 0.0])
    for a in accuracy:
        if a.is_voided or a.actual_points is None or a.predicted_points is None:
            continue
        b = int(a.predicted_points // bin_width)
        s = sums[b]
        s[0] += 1
        s[1] += a.predicted_points
        s[2] += a.actual_points
    return [CalibrationBin(b * bin_width, (b + 1) * bin_width, int(n), sp / n, sa / n)
            for b, (n, sp, sa) in sorted(sums.items())]


def clv_summaries(accuracy: Iterable[PredictionAccuracy], results: Sequence[BestBetResult], *,
                  policy: Policy) -> list[ClvSummary]:
    """Mean CLV and share of bets beating the close, per family (edge-3+ bets) and for best bets."""
    by_family: dict[str, list[float]] = defaultdict(list)
    for a in accuracy:
        if a.clv is not None and in_edge_bucket(a.edge, policy.edge_buckets[0]) and not a.is_voided:
            by_family[a.family or "(unknown)"].append(a.clv)

    def summary(name: str, values: list[float]) -> ClvSummary:
        if not values:
            return ClvSummary(name, 0, None, None)
        n = len(values)
        return ClvSummary(name, n, sum(values) / n, sum(v > 0 for v in values) / n)

    out = [summary(f, v) for f, v in sorted(by_family.items())]
    out.append(summary("best_bets", [r.clv for r in results if r.clv is not None and r.result != "PENDING"]))
    return out

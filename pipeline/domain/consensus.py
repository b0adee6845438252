"""Consensus of the enabled models for one player-game (domain.md section 7), a pure function.

:func:`compute_consensus` takes the latest prediction of every enabled model for ONE player-game (all
against the same line snapshot): family edge = mean edge of the family's models; consensus edge by the
policy's method (median or mean of the family edges, or the single largest-|edge| model); direction =
its sign; agreement = share of families on that side with |family edge| >= ``policy.agreement_edge``;
dispersion = population std of the family edges; the max-|edge| model kept for comparison with the old
system. Inputs are sorted first, so the result never depends on arrival order.

With ``policy.consensus_bias_correction`` on, each model's edge is first reduced by its holdout vegas bias
(mean predicted - line on its holdout, stored in the registry at training): family edge = mean of
(edge - bias) of the family's models; a model without a recorded bias is corrected by 0. The predictions
themselves (each model's raw edge and recommendation) are not changed, and the max-|edge| model is chosen
and reported on raw edges (with ``max_abs_edge`` the consensus edge is its corrected edge); the consensus
row's ``method`` then ends in ``+bias_corrected``.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence

from pipeline.domain.scoring import round_half_up
from pipeline.policy import Policy, json_text
from pipeline.schemas import Consensus, Prediction


def _mean(xs: Sequence[float]) -> float:
    return sum(xs) / len(xs)


def _direction(edge: float | None) -> str | None:
    if edge is None or edge == 0:
        return None
    return "OVER" if edge > 0 else "UNDER"


BIAS_CORRECTED_SUFFIX = "+bias_corrected"


def family_edges(
    predictions: Sequence[Prediction],
    family_of: Mapping[str, str] | None = None,
    bias_of: Mapping[str, float | None] | None = None,
) -> dict[str, float]:
    """{family: mean edge of its models} over predictions with an edge, sorted by family; with ``bias_of``
    (model_id -> holdout vegas bias) the mean of (edge - bias), a missing or None bias counting as 0."""
    by_family: dict[str, list[float]] = {}
    for p in predictions:
        if p.edge is None:
            continue
        fam = family_of[p.model_id] if family_of is not None else p.family
        edge = p.edge
        if bias_of is not None:
            edge = edge - (bias_of.get(p.model_id) or 0.0)
        by_family.setdefault(fam, []).append(edge)
    return {fam: round(_mean(edges), 4) for fam, edges in sorted(by_family.items())}


def compute_consensus(
    predictions: Sequence[Prediction],
    policy: Policy,
    *,
    family_of: Mapping[str, str] | None = None,
    bias_of: Mapping[str, float | None] | None = None,
) -> Consensus:
    """The consensus row of one player-game.

    Args:
      predictions: latest prediction of every enabled model for one player-game, same line snapshot.
      policy: consensus method and agreement edge.
      family_of: model_id -> family (the registry); default: each prediction's ``family``.
      bias_of: model_id -> holdout vegas bias (the registry), used only when
        ``policy.consensus_bias_correction`` is on; a model missing here (or None) is corrected by 0.

    Returns:
      Consensus with ``consensus_prediction`` = line + consensus edge (mean predicted points without a
      line); without a line, consensus_edge / direction / agreement are None. A zero consensus edge has
      no direction (None).

    Raises:
      ValueError: no predictions, several player-games, or predictions against different lines.
    """
    if not predictions:
        raise ValueError("compute_consensus needs at least one prediction")
    preds = sorted(predictions, key=lambda p: (p.model_id, p.line_snapshot_ts is None, p.line_snapshot_ts))
    keys = {(p.game_date, p.game_id, p.player_lookup) for p in preds}
    if len(keys) > 1:
        raise ValueError(f"compute_consensus takes one player-game, got {sorted(keys, key=str)[:3]}")
    lines = {(p.line, p.line_book, p.line_snapshot_ts) for p in preds}
    if len(lines) > 1:
        raise ValueError(f"predictions of {preds[0].player_lookup}/{preds[0].game_id} use different lines "
                         f"{sorted(lines, key=str)}; score every model against the same line snapshot")
    if len({p.model_id for p in preds}) != len(preds):
        raise ValueError(f"several predictions of one model for {preds[0].player_lookup}/{preds[0].game_id}")
    first = preds[0]
    line, line_book, line_ts = first.line, first.line_book, first.line_snapshot_ts
    model_ids = tuple(p.model_id for p in preds)
    mean_conf = round(_mean([p.confidence for p in preds]), 4)

    corrected = policy.consensus_bias_correction
    fam_edges = family_edges(preds, family_of, (bias_of or {}) if corrected else None)
    families = {(family_of[p.model_id] if family_of is not None else p.family) for p in preds}
    with_edge = [p for p in preds if p.edge is not None]
    max_model: Prediction | None = None
    for p in with_edge:  # sorted by model_id: ties keep the first id
        if max_model is None or abs(p.edge) > abs(max_model.edge):
            max_model = p

    consensus_edge = direction = agreement = dispersion = None
    if line is not None and fam_edges:
        values = list(fam_edges.values())
        if policy.consensus_method == "median_of_families":
            raw = statistics.median(values)
        elif policy.consensus_method == "mean_of_families":
            raw = _mean(values)
        else:  # max_abs_edge: the old system's choice, the single model with the largest |edge|
            raw = max_model.edge - (((bias_of or {}).get(max_model.model_id) or 0.0) if corrected else 0.0)
        consensus_edge = round_half_up(raw, 2)
        direction = _direction(consensus_edge)
        sign = 1 if direction == "OVER" else -1 if direction == "UNDER" else 0
        agreeing = [e for e in values if sign != 0 and e * sign > 0 and abs(e) >= policy.agreement_edge]
        agreement = round(len(agreeing) / len(values), 4)
        dispersion = round(statistics.pstdev(values), 4)
        consensus_prediction = round_half_up(line + consensus_edge, 2)
    else:
        consensus_prediction = round_half_up(_mean([p.predicted_points for p in preds]), 2)

    return Consensus(
        game_date=first.game_date,
        game_id=first.game_id,
        player_lookup=first.player_lookup,
        line=line,
        line_book=line_book,
        line_snapshot_ts=line_ts,
        consensus_edge=consensus_edge,
        consensus_prediction=consensus_prediction,
        direction=direction,
        n_families=len(families),
        n_models=len(preds),
        agreement=agreement,
        dispersion=dispersion,
        max_edge_model_id=max_model.model_id if max_model is not None else None,
        max_edge=max_model.edge if max_model is not None else None,
        family_edges=json_text(fam_edges),
        model_ids=model_ids,
        mean_confidence=mean_conf,
        method=policy.consensus_method + (BIAS_CORRECTED_SUFFIX if corrected else ""),
        feature_quality_score=first.feature_quality_score,
        team_abbr=first.team_abbr,
        opponent_team_abbr=first.opponent_team_abbr,
        run_id=first.run_id,
        policy_version=policy.version,
    )

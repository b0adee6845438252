"""Best bets of one game date (domain.md section 8): signals, filters, ranking, angles, ultra tier.

A :class:`Candidate` is a consensus row with a line plus what the rules read about the player (line
book, feature row, box-score context, graded history, reference-family health). For each candidate
:func:`evaluate_signals` computes the signal table (signals annotate, they never re-rank) and
:func:`filter_audit` evaluates every filter in the documented order; :func:`apply_filters` is the first
failure. :func:`select_best_bets` ranks the survivors by |consensus edge| (ties by player_lookup), applies
the optional caps and builds fully filled :class:`~pipeline.schemas.Pick` rows plus the date's
:class:`~pipeline.schemas.FilterSummary` (every counter present, zeros included). Zero candidates give
zero picks and a complete summary. Pure functions: no Beam, no I/O.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Sequence
from fractions import Fraction
from typing import Any, NamedTuple

from pipeline.domain.context import PlayerContext
from pipeline.policy import SIGNAL_TAGS, Policy, json_text
from pipeline.schemas import FEATURE_INDEX, Consensus, FeatureRow, FilterSummary, LineBook, Pick

FILTER_NAMES: tuple[str, ...] = (
    "blacklist", "edge_floor", "under_edge_7plus", "familiar_matchup", "quality_floor", "bench_under",
    "line_jumped_under", "line_dropped_under", "neg_pm_streak", "signal_count", "low_agreement",
)
CAP_NAMES: tuple[str, ...] = ("team_cap", "daily_cap")
IDX_BACK_TO_BACK = FEATURE_INDEX["back_to_back"]
IDX_GAMES_VS_OPP = FEATURE_INDEX["games_vs_opponent"]


class Candidate(NamedTuple):
    consensus: Consensus
    book: LineBook
    feature_row: FeatureRow
    context: PlayerContext
    player_name: str | None
    tipoff_utc: dt.datetime | None
    player_graded: tuple[int, int] | None  # (wins, losses) of reference-family edge-3+ graded predictions
    reference_family_state: str | None  # HEALTHY / WATCH / DEGRADING / BLOCKED / INSUFFICIENT_DATA / None


class SignalResult(NamedTuple):
    tag: str
    qualifies: bool
    confidence: float


def _c(x: float) -> float:
    return round(min(1.0, max(0.0, x)), 4)


def _feature(row: FeatureRow, idx: int) -> float | None:
    v = row.features[idx] if len(row.features) > idx else None
    return None if v is None or v != v else float(v)


def family_edge(c: Candidate, family: str) -> float | None:
    """The consensus row's edge of one family (None if the family did not score)."""
    edges = json.loads(c.consensus.family_edges or "{}")
    v = edges.get(family)
    return None if v is None else float(v)


# --------------------------------------------------------------------------------------------
# Signals
# --------------------------------------------------------------------------------------------


def evaluate_signals(c: Candidate, policy: Policy) -> list[SignalResult]:
    """Every signal of the table, in table order; a signal with missing inputs does not qualify."""
    cons, ctx, book = c.consensus, c.context, c.book
    edge, conf, direction = cons.consensus_edge, cons.mean_confidence, cons.direction
    over, under = direction == "OVER", direction == "UNDER"
    aedge = abs(edge) if edge is not None else None
    out: dict[str, tuple[bool, float]] = {}

    state = c.reference_family_state
    out["model_health"] = (True, policy.model_health_confidence.get(state, 1.0) if state else 1.0)

    high = aedge is not None and aedge >= policy.high_edge
    out["high_edge"] = (high, _c(aedge / policy.high_edge_confidence_scale) if high else 0.0)

    lo, hi = policy.edge_spread_excluded_band
    spread = (high and conf is not None and conf >= policy.edge_spread_min_confidence
              and not (lo <= conf <= hi))
    if spread:
        band_lo, band_hi = policy.edge_spread_band
        spread_conf = (policy.edge_spread_band_confidence if band_lo <= conf <= band_hi
                       else policy.edge_spread_high_confidence if conf > hi
                       else policy.edge_spread_else_confidence)
    out["edge_spread_optimal"] = (spread, spread_conf if spread else 0.0)

    gain = (ctx.minutes_avg_last_3 - ctx.minutes_avg_season
            if ctx.minutes_avg_last_3 is not None and ctx.minutes_avg_season is not None else None)
    he_ms = over and high and gain is not None and gain >= policy.combo_minutes_gain
    out["combo_he_ms"] = (he_ms, policy.combo_he_ms_confidence if he_ms else 0.0)
    three_way = he_ms and spread
    out["combo_3way"] = (three_way, policy.combo_3way_confidence if three_way else 0.0)

    b2b = _feature(c.feature_row, IDX_BACK_TO_BACK)
    mins = ctx.minutes_avg_season
    fatigue = under and b2b is not None and b2b >= 1.0 and mins is not None and mins >= policy.b2b_min_minutes
    out["b2b_fatigue_under"] = (fatigue, _c(policy.b2b_confidence_base + (mins - policy.b2b_min_minutes)
                                            / policy.b2b_confidence_minutes_scale) if fatigue else 0.0)

    rest, opp_rest = ctx.days_rest, ctx.opponent_days_rest
    rest_adv = (over and rest is not None and opp_rest is not None
                and rest >= policy.rest_advantage_player_min
                and opp_rest <= policy.rest_advantage_opponent_max)
    out["rest_advantage_2d"] = (rest_adv, _c(policy.rest_advantage_confidence_base
                                             + policy.rest_advantage_confidence_per_day * (rest - opp_rest))
                                if rest_adv else 0.0)

    bench = under and ctx.starter_last_game is False
    out["bench_under"] = (bench, policy.bench_under_confidence if bench else 0.0)

    delta = book.prop_line_delta
    drop = over and delta is not None and delta <= -policy.prop_line_drop
    out["prop_line_drop_over"] = (drop, _c(policy.prop_line_drop_confidence_base
                                           + policy.prop_line_drop_confidence_per_point
                                           * (-delta - policy.prop_line_drop)) if drop else 0.0)

    std = book.multi_book_line_std
    disagree = std is not None and std >= policy.book_disagreement_std and \
        book.n_books >= policy.book_disagreement_min_books
    disagree_conf = min(policy.book_disagreement_confidence_max,
                        policy.book_disagreement_confidence_base
                        + policy.book_disagreement_confidence_per_std * (std - policy.book_disagreement_std)
                        ) if disagree else 0.0
    out["book_disagreement"] = (disagree, round(disagree_conf, 4))

    z = None
    if (ctx.fg3a_per_game is not None and ctx.fg3_pct_season is not None and ctx.fg3_pct_last_3 is not None
            and ctx.fg3_pct_std):
        z = round((ctx.fg3_pct_season - ctx.fg3_pct_last_3) / ctx.fg3_pct_std, 4)  # no float noise at z = 1
    bounce = (over and z is not None and ctx.fg3a_per_game >= policy.three_pt_min_attempts
              and z > policy.three_pt_min_z)
    out["3pt_bounce"] = (bounce, _c(z / policy.three_pt_confidence_z_scale) if bounce else 0.0)

    deficit = (ctx.minutes_avg_season - ctx.prev_game_minutes
               if ctx.minutes_avg_season is not None and ctx.prev_game_minutes is not None else None)
    recovery = (over and deficit is not None and deficit >= policy.blowout_minutes_deficit
                and rest is not None and rest >= policy.blowout_min_rest)
    out["blowout_recovery"] = (recovery, _c(deficit / policy.blowout_confidence_minutes_scale) if recovery
                               else 0.0)

    return [SignalResult(tag, bool(out[tag][0]), float(out[tag][1])) for tag in SIGNAL_TAGS]


# --------------------------------------------------------------------------------------------
# Filters
# --------------------------------------------------------------------------------------------


def filter_audit(c: Candidate, signals: Sequence[SignalResult], policy: Policy) -> list[dict[str, Any]]:
    """Every filter in order: {"filter", "passed", "value", "threshold"} (value None = input unknown)."""
    cons, ctx, book = c.consensus, c.context, c.book
    edge = cons.consensus_edge
    aedge = abs(edge) if edge is not None else None
    under = cons.direction == "UNDER"
    audit: list[dict[str, Any]] = []

    def add(name: str, passed: bool, value: Any, threshold: Any) -> None:
        audit.append({"filter": name, "passed": bool(passed), "value": value, "threshold": threshold})

    # blacklist: HR < 40 % on >= 8 graded (exact fractions: 4 of 10 is exactly 40 % and passes).
    if c.player_graded is None:
        add("blacklist", True, None, policy.blacklist_hr)
    else:
        wins, losses = c.player_graded
        n = wins + losses
        hr = Fraction(wins, n) if n else None
        failed = n >= policy.blacklist_min_graded and hr is not None and \
            hr < Fraction(str(policy.blacklist_hr))
        add("blacklist", not failed,
            {"wins": wins, "losses": losses, "hr": float(hr) if hr is not None else None},
            {"hr": policy.blacklist_hr, "min_graded": policy.blacklist_min_graded})

    add("edge_floor", aedge is not None and aedge >= policy.edge_floor, edge, policy.edge_floor)

    ref = family_edge(c, policy.reference_family)
    big_under = under and aedge is not None and aedge >= policy.under_edge_cap
    ref_confirms = ref is not None and ref <= -policy.under_edge_cap
    add("under_edge_7plus", not big_under or ref_confirms, {"edge": edge, policy.reference_family: ref},
        policy.under_edge_cap)

    games = ctx.games_vs_opponent
    if games is None:
        g = _feature(c.feature_row, IDX_GAMES_VS_OPP)
        games = int(g) if g is not None else None
    add("familiar_matchup", games is None or games < policy.familiar_matchup_games, games,
        policy.familiar_matchup_games)

    score = c.feature_row.feature_quality_score
    add("quality_floor", score is not None and score >= policy.quality_floor, score, policy.quality_floor)

    short_under = under and cons.line is not None and cons.line < policy.bench_under_line
    add("bench_under", not short_under, cons.line, policy.bench_under_line)

    delta = book.prop_line_delta
    add("line_jumped_under", not (under and delta is not None and delta >= policy.line_jump), delta,
        policy.line_jump)
    add("line_dropped_under", not (under and delta is not None and delta <= -policy.line_jump), delta,
        -policy.line_jump)

    streak = ctx.neg_pm_streak
    add("neg_pm_streak", not (under and streak is not None and streak >= policy.neg_pm_streak), streak,
        policy.neg_pm_streak)

    # Signals named in policy.signal_count_excludes do not count (see Policy.signal_count_excludes).
    excluded = set(policy.signal_count_excludes)
    n_signals = sum(1 for s in signals if s.qualifies and s.tag not in excluded)
    add("signal_count", n_signals >= policy.min_signals, n_signals, policy.min_signals)

    agreement = cons.agreement
    add("low_agreement", agreement is not None and agreement >= policy.min_agreement, agreement,
        policy.min_agreement)
    return audit


def apply_filters(c: Candidate, signals: Sequence[SignalResult], policy: Policy) -> str | None:
    """The first failing filter's name in the documented order, or None if the candidate passes all."""
    for entry in filter_audit(c, signals, policy):
        if not entry["passed"]:
            return entry["filter"]
    return None


# --------------------------------------------------------------------------------------------
# Pick fields
# --------------------------------------------------------------------------------------------


def pick_id(game_date: dt.date, player_lookup: str, game_id: str, direction: str, policy_version: str) -> str:
    """Deterministic pick id: the first 20 hex chars of sha256("date|player|game|direction|version")."""
    text = f"{game_date.isoformat()}|{player_lookup}|{game_id}|{direction}|{policy_version}"
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:20]


def ultra(c: Candidate, policy: Policy) -> tuple[bool, dict[str, Any]]:
    """Ultra tier: the reference family's edge and the consensus edge both clear ``ultra_edge`` (>=) in the
    same direction. Returns (flag, criteria) for the ultra_criteria JSON."""
    ref = family_edge(c, policy.reference_family)
    edge = c.consensus.consensus_edge
    t = policy.ultra_edge
    over = ref is not None and edge is not None and ref >= t and edge >= t
    under = ref is not None and edge is not None and ref <= -t and edge <= -t
    flag = over or under
    return flag, {
        "reference_family": policy.reference_family,
        "reference_edge": ref,
        "consensus_edge": edge,
        "threshold": t,
        "direction": "OVER" if over else "UNDER" if under else None,
        "ultra": flag,
    }


def ultra_public_gate(wins: int, losses: int, policy: Policy) -> bool:
    """The public JSON shows ultra only after >= 50 graded live ultra OVER picks at >= 80 % HR."""
    n = wins + losses
    if n == 0 or n < policy.ultra_public_min_picks:
        return False
    return Fraction(wins, n) >= Fraction(str(policy.ultra_public_min_hr))


_SIGNAL_ANGLES = {
    "combo_he_ms": lambda c: ("Minutes up: "
                              f"+{c.context.minutes_avg_last_3 - c.context.minutes_avg_season:.1f}"
                              " min/g over the last 3"),
    "b2b_fatigue_under": lambda c: f"Back-to-back after {c.context.minutes_avg_season:.1f} min/g",
    "rest_advantage_2d": lambda c: f"Rest edge: {c.context.days_rest} days vs {c.context.opponent_days_rest}",
    "bench_under": lambda c: "Came off the bench last game",
    "prop_line_drop_over": lambda c: f"Line {abs(c.book.prop_line_delta):.1f} pts below last game's",
    "book_disagreement": lambda c: f"Books disagree: std {c.book.multi_book_line_std:.1f} over "
                                   f"{c.book.n_books} books",
    "3pt_bounce": lambda c: f"3PT bounce: {c.context.fg3_pct_last_3:.0%} last 3 vs "
                            f"{c.context.fg3_pct_season:.0%} season",
    "blowout_recovery": lambda c: f"Minutes rebound: {c.context.prev_game_minutes:.0f} min last game vs "
                                  f"{c.context.minutes_avg_season:.1f} avg",
}


def pick_angles(c: Candidate, signals: Sequence[SignalResult], policy: Policy) -> tuple[str, ...]:
    """At most ``policy.max_angles`` short reasons, in a fixed order: conviction, family agreement, line
    move, ultra, then the qualifying signals in table order."""
    cons = c.consensus
    edge = cons.consensus_edge or 0.0
    angles = [f"{'High conviction' if abs(edge) >= policy.edge_floor else 'Edge'}: edge {abs(edge):.1f} pts"]
    fam = json.loads(cons.family_edges or "{}")
    sign = 1 if cons.direction == "OVER" else -1 if cons.direction == "UNDER" else 0
    agreeing = [v for v in fam.values() if sign and v * sign > 0 and abs(v) >= policy.agreement_edge]
    if agreeing:
        avg = sum(abs(v) for v in agreeing) / len(agreeing)
        angles.append(f"{len(agreeing)} of {len(fam)} families agree {cons.direction} (avg edge {avg:.1f})")
    move = c.book.line_move
    if move is not None and abs(move) >= policy.angle_min_line_move:
        angles.append(f"Line {'dropped' if move < 0 else 'rose'} {abs(move):.1f} pts since open")
    if ultra(c, policy)[0]:
        angles.append(f"Ultra: {policy.reference_family} and consensus both "
                      f"{policy.ultra_edge:g}+ {cons.direction}")
    for s in signals:
        if s.qualifies and s.tag in _SIGNAL_ANGLES:
            angles.append(_SIGNAL_ANGLES[s.tag](c))
    return tuple(angles[: policy.max_angles])


# --------------------------------------------------------------------------------------------
# Selection
# --------------------------------------------------------------------------------------------


def _empty_counters() -> dict[str, int]:
    return {name: 0 for name in FILTER_NAMES + CAP_NAMES}


def select_best_bets(
    candidates: Sequence[Candidate],
    policy: Policy,
    *,
    game_date: dt.date,
    run_id: str | None = None,
) -> tuple[list[Pick], FilterSummary]:
    """The best bets of one game date.

    Args:
      candidates: consensus rows WITH a line for ``game_date``, one per player-game.
      policy: filters, signals, caps, angles, ultra.
      game_date: the date (also for the summary when there are no candidates).
      run_id: stamped on the rows.

    Returns:
      (picks ranked 1.., FilterSummary): ``rejected`` is a JSON object with every filter (then the caps)
      in order, zeros included; ``passed`` = number of picks.

    Raises:
      ValueError: a candidate without a line, of another date, or a duplicated player-game.
    """
    counters = _empty_counters()
    survivors: list[tuple[Candidate, list[SignalResult], list[dict[str, Any]]]] = []
    seen: set[tuple[str, str]] = set()
    for c in candidates:
        cons = c.consensus
        if cons.line is None or cons.consensus_edge is None:
            raise ValueError(f"candidate {cons.player_lookup}/{cons.game_id} has no line; "
                             "only consensus rows with a line are candidates")
        if cons.game_date != game_date:
            raise ValueError(f"candidate {cons.player_lookup}/{cons.game_id} is for {cons.game_date}, "
                             f"not {game_date}")
        key = (cons.player_lookup, cons.game_id)
        if key in seen:
            raise ValueError(f"player-game {key} appears twice among the candidates")
        seen.add(key)
        signals = evaluate_signals(c, policy)
        audit = filter_audit(c, signals, policy)
        failed = next((e["filter"] for e in audit if not e["passed"]), None)
        if failed is not None:
            counters[failed] += 1
        else:
            survivors.append((c, signals, audit))

    survivors.sort(key=lambda t: (-abs(t[0].consensus.consensus_edge), t[0].consensus.player_lookup,
                                  t[0].consensus.game_id))
    picks: list[Pick] = []
    per_team: dict[str | None, int] = {}
    for c, signals, audit in survivors:
        team = c.consensus.team_abbr or c.feature_row.team_abbr
        if policy.team_cap is not None and per_team.get(team, 0) >= policy.team_cap:
            counters["team_cap"] += 1
            continue
        if policy.daily_cap is not None and len(picks) >= policy.daily_cap:
            counters["daily_cap"] += 1
            continue
        per_team[team] = per_team.get(team, 0) + 1
        picks.append(_make_pick(c, signals, audit, len(picks) + 1, policy, run_id))

    summary = FilterSummary(
        game_date=game_date,
        total_candidates=len(candidates),
        passed=len(picks),
        rejected=json_text(counters, sort_keys=False),
        run_id=run_id,
        policy_version=policy.version,
    )
    return picks, summary


def _make_pick(c: Candidate, signals: list[SignalResult], audit: list[dict[str, Any]], rank: int,
               policy: Policy, run_id: str | None) -> Pick:
    cons = c.consensus
    flag, criteria = ultra(c, policy)
    return Pick(
        pick_id=pick_id(cons.game_date, cons.player_lookup, cons.game_id, cons.direction, policy.version),
        game_date=cons.game_date,
        game_id=cons.game_id,
        player_lookup=cons.player_lookup,
        player_name=c.player_name if c.player_name is not None else c.book.player_name,
        team_abbr=cons.team_abbr or c.feature_row.team_abbr,
        opponent_team_abbr=cons.opponent_team_abbr or c.feature_row.opponent_team_abbr,
        tipoff_utc=c.tipoff_utc,
        rank=rank,
        direction=cons.direction,
        line=cons.line,
        line_book=cons.line_book,
        line_snapshot_ts=cons.line_snapshot_ts,
        consensus_edge=cons.consensus_edge,
        predicted_points=cons.consensus_prediction,
        agreement=cons.agreement,
        n_families=cons.n_families,
        n_models=cons.n_models,
        dispersion=cons.dispersion,
        confidence=cons.mean_confidence,
        model_ids=tuple(cons.model_ids),
        signals=tuple(s.tag for s in signals if s.qualifies),
        signal_details=json_text({s.tag: {"qualifies": s.qualifies, "confidence": s.confidence}
                                  for s in signals}),
        filter_audit=json_text(audit),
        pick_angles=pick_angles(c, signals, policy),
        ultra_tier=flag,
        ultra_criteria=json_text(criteria),
        status="active",
        version=1,
        run_id=run_id,
        policy_version=policy.version,
    )

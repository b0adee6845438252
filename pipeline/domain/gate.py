"""Player universe and quality gate (domain.md section 4) as pure functions.

:func:`universe_exclusion` says why a player-game is outside the slate's universe (schedule status,
tip-off already passed, injury ``out``/``doubtful`` in any case) or None; :func:`gate` applies the
quality-gate table, first matching rule wins, and returns (viable, reason) with the documented reason
strings; :func:`decide_player_game` composes the two (the one decision batch and stream both make);
:func:`latest_injury_status` picks the injury status in force at the decision time.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable

from pipeline.domain.schedule import game_started
from pipeline.policy import Policy
from pipeline.schemas import GAME_STATUSES, FeatureRow, InjuryReport


def _num(x: float) -> str:
    """45.0 -> '45', 49.9 -> '49.9' (reason strings)."""
    if isinstance(x, float) and math.isfinite(x) and x == int(x):
        return str(int(x))
    if isinstance(x, int):
        return str(x)
    return repr(round(x, 4)) if isinstance(x, float) and math.isfinite(x) else str(x)


def universe_exclusion(
    game_status: str | None,
    tipoff_utc: dt.datetime | None,
    as_of: dt.datetime,
    injury_status: str | None,
    policy: Policy,
) -> str | None:
    """None if the player-game is in the universe at ``as_of``; else the exclusion reason.

    Reasons: ``not_on_schedule`` (no schedule status), ``game_postponed``, ``game_cancelled``,
    ``game_started`` (``schedule.game_started``: in_progress/final, or tip-off at or before ``as_of``),
    ``injury_<status>`` for the policy's excluded statuses (compared case-insensitively, lower-case reason).
    Raises ValueError for an unknown game status.
    """
    if game_status is None:
        return "not_on_schedule"
    status = game_status.strip().lower()
    if status not in GAME_STATUSES:
        raise ValueError(f"unknown game status {game_status!r}; expected one of {', '.join(GAME_STATUSES)}")
    if status == "postponed":
        return "game_postponed"
    if status == "cancelled":
        return "game_cancelled"
    if game_started(status, tipoff_utc, as_of):
        return "game_started"
    if injury_status is not None:
        injury = injury_status.strip().lower()
        if injury in policy.excluded_injury_statuses:
            return f"injury_{injury}"
    return None


def gate(feature_row: FeatureRow | None, run_mode: str, policy: Policy) -> tuple[bool, str]:
    """(viable, reason) by the quality-gate table; ValueError for an unknown run mode.

    1 no row -> no_features_available; 2 red alert -> hard_floor_red_alert; 3 matchup below the floor
    -> hard_floor_matchup_<pct>; 4 defaulted required features -> zero_tolerance_defaults_<n>;
    5 score >= the mode threshold -> quality_sufficient; 6 -> quality_below_threshold_<t>.
    """
    threshold = policy.gate_threshold(run_mode)
    if feature_row is None:
        return False, "no_features_available"
    if (feature_row.quality_alert_level or "").strip().lower() == "red":
        return False, "hard_floor_red_alert"
    pct = feature_row.matchup_quality_pct
    if pct is None or not (pct >= policy.matchup_floor):  # NaN / missing fails the floor
        return False, f"hard_floor_matchup_{_num(pct)}"
    if feature_row.required_default_count and feature_row.required_default_count > 0:
        return False, f"zero_tolerance_defaults_{feature_row.required_default_count}"
    score = feature_row.feature_quality_score
    if score is not None and score >= threshold:
        return True, "quality_sufficient"
    return False, f"quality_below_threshold_{_num(threshold)}"


def decide_player_game(
    feature_row: FeatureRow | None,
    *,
    game_status: str | None,
    tipoff_utc: dt.datetime | None,
    as_of: dt.datetime,
    injury_status: str | None,
    run_mode: str,
    policy: Policy,
) -> tuple[bool, str]:
    """The gate decision of one player-game at ``as_of``: (viable, reason).

    The universe first (:func:`universe_exclusion`: schedule, tip-off, injury), then the quality gate
    (:func:`gate`, ``no_features_available`` for a lined player without a feature row). Whether the
    player has a line does not decide viability: a viable player without one is scored ``NO_LINE``
    (domain.md section 3). Batch (``transforms.slate.JoinPlayerGameFn``) and stream
    (``transforms.streaming.PlayerGameStateFn``) both call this and nothing else.
    """
    exclusion = universe_exclusion(game_status, tipoff_utc, as_of, injury_status, policy)
    if exclusion is not None:
        return False, exclusion
    return gate(feature_row, run_mode, policy)


def latest_injury_status(reports: Iterable[InjuryReport], as_of: dt.datetime) -> str | None:
    """Lower-cased status of the latest report at or before ``as_of`` (None if there is none)."""
    best: InjuryReport | None = None
    for r in reports:
        if r.report_ts <= as_of and (best is None or (r.report_ts, r.status) > (best.report_ts, best.status)):
            best = r
    return best.status.strip().lower() if best is not None else None

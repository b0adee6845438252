"""The pick lifecycle of the streaming mode (domain.md section 8) as one pure function.

Lines move all day, so the best bets of a date are recomputed many times. :func:`diff_picks` compares the
picks the stream last published for a date (latest version per ``pick_id``) with the newly selected picks
and returns the changes to publish plus the new latest versions:

* ``created``   a pick that was not published before (version 1), or a withdrawn pick that passes again
                (its next version, status ``active``);
* ``updated``   an active pick whose material fields changed (line, book, edge, prediction, rank,
                agreement, models, signals, angles, ultra tier): next version;
* ``withdrawn`` an active pick that is no longer selected, with a reason: ``postponed`` (its game was
                postponed), ``cancelled``, ``injury_<status>`` (the player was ruled out / doubtful),
                ``direction_flipped`` (the same player-game is now picked the other way: a new pick id)
                or ``no_longer_passes``;
* ``locked``    an active pick whose game has started (``schedule.game_started``: tip-off at or before
                ``now``, or the game is in progress / final): it never changes again.

Games that have started are never touched otherwise: no pick is created, updated or withdrawn for them, a
withdrawn pick stays withdrawn, a locked pick stays locked (also when a late update arrives after tip-off).
``now`` is event time (the latest event the stream has seen for the date), never processing time.
Pure: no Beam, no I/O.

Usage::

    changes, latest = diff_picks(published, selected, now=now, tipoffs=tipoffs, removed=removed,
                                 statuses=statuses)
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import NamedTuple

from pipeline.domain.schedule import game_started
from pipeline.schemas import BestBetHistory, Pick

CREATED, UPDATED, WITHDRAWN, LOCKED = "created", "updated", "withdrawn", "locked"
CHANGES: tuple[str, ...] = (CREATED, UPDATED, WITHDRAWN, LOCKED)
ACTIVE = "active"

# Fields whose change makes a new version of an active pick. Not material: version, status, run stamps,
# the snapshot time of an unchanged line (a fresh snapshot of the same line is not news).
MATERIAL_FIELDS: tuple[str, ...] = (
    "rank", "direction", "line", "line_book", "consensus_edge", "predicted_points", "agreement",
    "n_families", "n_models", "model_ids", "signals", "pick_angles", "ultra_tier",
)

# Why a player-game left the universe (gate.universe_exclusion reasons) -> the withdrawal reason.
_REMOVAL_REASONS: dict[str, str] = {
    "game_postponed": "postponed",
    "game_cancelled": "cancelled",
}


class PickChange(NamedTuple):
    """One change of one pick: the new latest version (``pick.version``/``status`` already advanced)."""

    change: str  # created | updated | withdrawn | locked
    pick: Pick
    changed_at: dt.datetime

    def history_row(self) -> BestBetHistory:
        return BestBetHistory(change=self.change, changed_at=self.changed_at, **self.pick._asdict())


def pg_of(pick: Pick) -> str:
    return f"{pick.game_id}|{pick.player_lookup}"


def material(pick: Pick) -> tuple:
    """The fields whose change is an ``updated`` (edges and predictions compared at 0.01)."""
    out = []
    for name in MATERIAL_FIELDS:
        v = getattr(pick, name)
        if isinstance(v, float):
            v = round(v, 2)
        out.append(v)
    return tuple(out)


def withdrawal_reason(removed_reason: str | None) -> str:
    """A withdrawal reason from the reason the player-game left the universe (None: still in it)."""
    if removed_reason is None:
        return "no_longer_passes"
    if removed_reason in _REMOVAL_REASONS:
        return _REMOVAL_REASONS[removed_reason]
    if removed_reason.startswith("injury_"):
        return removed_reason
    return "no_longer_passes"


def pick_started(pick: Pick, *, now: dt.datetime, tipoffs: Mapping[str, dt.datetime | None],
                 statuses: Mapping[str, str | None] | None = None) -> bool:
    """Whether the pick's game has started at ``now`` (:func:`pipeline.domain.schedule.game_started`):
    its schedule status from ``statuses``, its tip-off from ``tipoffs`` or else the pick's own."""
    tip = tipoffs[pick.game_id] if pick.game_id in tipoffs else pick.tipoff_utc
    return game_started((statuses or {}).get(pick.game_id), tip, now)


def diff_picks(
    previous: Mapping[str, Pick],
    selected: Sequence[Pick],
    *,
    now: dt.datetime,
    tipoffs: Mapping[str, dt.datetime | None],
    removed: Mapping[str, str] | None = None,
    statuses: Mapping[str, str | None] | None = None,
) -> tuple[list[PickChange], dict[str, Pick]]:
    """The lifecycle changes between the published picks of a date and a new selection.

    Args:
      previous: the latest published version of every pick of the date, by ``pick_id`` (any status).
      selected: the date's newly selected picks (``select_best_bets`` output: status active, version 1).
      now: the event time of the recomputation (UTC).
      tipoffs: tip-off time by ``game_id`` (picks carry their own ``tipoff_utc`` as a fallback).
      removed: ``"game_id|player"`` -> the reason the player-game left the universe (``game_postponed``,
        ``injury_out``, ...), for the withdrawal reason.
      statuses: the latest schedule status by ``game_id`` (``in_progress`` / ``final`` locks a game even
        before its tip-off time; ``postponed`` / ``cancelled`` never lock).

    Returns:
      (changes in a stable order: locks, withdrawals, then creations/updates by rank; the new latest
      version of every pick by ``pick_id``).
    """
    removed = removed or {}
    tips = dict(tipoffs)
    states = dict(statuses or {})

    def is_started(p: Pick) -> bool:
        return pick_started(p, now=now, tipoffs=tips, statuses=states)

    latest: dict[str, Pick] = dict(previous)
    locks: list[PickChange] = []
    withdrawals: list[PickChange] = []
    upserts: list[PickChange] = []
    by_id = {p.pick_id: p for p in selected}
    selected_pgs = {pg_of(p) for p in selected}

    for pick_id, old in sorted(previous.items()):
        if old.status == LOCKED:
            continue  # locked picks never change
        if is_started(old):
            if old.status == ACTIVE:
                new = old._replace(status=LOCKED, version=old.version + 1)
                latest[pick_id] = new
                locks.append(PickChange(LOCKED, new, now))
            continue  # a withdrawn pick of a started game stays withdrawn
        fresh = by_id.get(pick_id)
        if fresh is None:
            if old.status == ACTIVE:
                reason = ("direction_flipped" if pg_of(old) in selected_pgs
                          else withdrawal_reason(removed.get(pg_of(old))))
                new = old._replace(status=WITHDRAWN, version=old.version + 1, withdrawn_reason=reason)
                latest[pick_id] = new
                withdrawals.append(PickChange(WITHDRAWN, new, now))
            continue
        if old.status == WITHDRAWN:
            new = fresh._replace(status=ACTIVE, version=old.version + 1, withdrawn_reason=None)
            latest[pick_id] = new
            upserts.append(PickChange(CREATED, new, now))
        elif material(fresh) != material(old):
            new = fresh._replace(status=ACTIVE, version=old.version + 1, withdrawn_reason=None)
            latest[pick_id] = new
            upserts.append(PickChange(UPDATED, new, now))

    for pick_id, fresh in by_id.items():
        if pick_id in previous or is_started(fresh):
            continue  # never create a pick of a game under way
        new = fresh._replace(status=ACTIVE, version=1, withdrawn_reason=None)
        latest[pick_id] = new
        upserts.append(PickChange(CREATED, new, now))

    upserts.sort(key=lambda c: (c.pick.rank, c.pick.pick_id))
    return locks + withdrawals + upserts, latest


def lock_started(previous: Mapping[str, Pick], *, now: dt.datetime,
                 tipoffs: Mapping[str, dt.datetime | None],
                 statuses: Mapping[str, str | None] | None = None,
                 ) -> tuple[list[PickChange], dict[str, Pick]]:
    """Only the locks due at ``now`` (no reselection): for a clock tick after tip-off."""
    active_started = {
        k: p for k, p in previous.items()
        if p.status == ACTIVE and pick_started(p, now=now, tipoffs=tipoffs, statuses=statuses)
    }
    latest = dict(previous)
    changes = []
    for pick_id, old in sorted(active_started.items()):
        new = old._replace(status=LOCKED, version=old.version + 1)
        latest[pick_id] = new
        changes.append(PickChange(LOCKED, new, now))
    return changes, latest


def active_picks(latest: Mapping[str, Pick]) -> list[Pick]:
    """The picks shown publicly (active and locked), by rank."""
    return sorted((p for p in latest.values() if p.status != WITHDRAWN), key=lambda p: (p.rank, p.pick_id))

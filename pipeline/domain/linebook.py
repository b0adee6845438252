"""The line book of one player-game (domain.md section 3): latest line per book, sanity, selected line.

:func:`build_line_book` takes every odds snapshot of ONE player-game (any time) and the decision time
``as_of``, keeps the snapshots at or before ``as_of``, takes the latest per book, rejects insane ones
(``LINE_SANITY_REJECT``), selects the line by book priority (``LINE_SOURCE``; ``NO_PROP_LINE`` when
nothing is sane) and computes the market context (opening line, move, book count and spread,
previous-game delta) from the same snapshots. :func:`closing_line` is the same selection at tip-off,
used by grading for CLV. Pure functions: no Beam, no I/O.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable
from typing import Any

from pipeline.policy import Policy, json_text
from pipeline.schemas import LineBook, LineDiagnostic, OddsSnapshot

LINE_SANITY_REJECT = "LINE_SANITY_REJECT"
LINE_SOURCE = "LINE_SOURCE"
NO_PROP_LINE = "NO_PROP_LINE"


def is_valid_american(price: Any) -> bool:
    """True for an int-like American price <= -100 or >= 100 (e.g. -110, +100); False for -99, 0, None."""
    if price is None or isinstance(price, bool):
        return False
    try:
        value = float(price)
    except (TypeError, ValueError):
        return False
    if not math.isfinite(value) or value != int(value):
        return False
    return value <= -100 or value >= 100


def _clean(x: float) -> float:
    """Removes binary float noise from sums/differences of half-point lines."""
    return round(x, 4)


def _sort_key(s: OddsSnapshot) -> tuple:
    # Latest last; ties broken by the remaining fields so the choice never depends on input order.
    return (s.snapshot_ts, s.source_api, s.line if s.line is not None else -1.0,
            s.over_price if s.over_price is not None else 0,
            s.under_price if s.under_price is not None else 0)


def _line_ok(line: Any, policy: Policy) -> bool:
    return (line is not None and isinstance(line, (int, float)) and math.isfinite(line)
            and policy.line_min <= line <= policy.line_max)


def _opening_candidate(snap: OddsSnapshot, policy: Policy) -> bool:
    """Whether a snapshot can be its book's opening line: a line in range and valid prices (staleness
    does not matter: the opening is the first such snapshot of the game, however old)."""
    return (_line_ok(snap.line, policy) and is_valid_american(snap.over_price)
            and is_valid_american(snap.under_price))


def sanity_reason(snap: OddsSnapshot, as_of: dt.datetime, policy: Policy) -> tuple[str, str] | None:
    """None if the snapshot is sane at ``as_of``; else (reason, value) for the diagnostic."""
    if snap.book in policy.pickem_sites:
        return "pickem_site", snap.book
    if not _line_ok(snap.line, policy):
        return "line_out_of_range", f"{snap.line} not in [{policy.line_min}, {policy.line_max}]"
    if not (is_valid_american(snap.over_price) and is_valid_american(snap.under_price)):
        return "invalid_price", f"over={snap.over_price} under={snap.under_price}"
    age_h = (as_of - snap.snapshot_ts).total_seconds() / 3600.0
    if age_h > policy.staleness_hours:
        # The value names the limit, not the age: a diagnostic changes when the book turns stale, not with
        # every tick of the clock (the stream writes a new version only when something changed).
        return "stale", f"older than {_num_text(policy.staleness_hours)} h"
    return None


def population_std(values: list[float]) -> float:
    """The population standard deviation (``numpy.std``'s definition: the square root of the mean squared
    deviation from the mean) of a few values, in plain Python: for a handful of books ``numpy.std`` spent
    most of its time converting the list (~2 % of the stream's worker thread). The two can differ in the
    last bits of a double (summation order); :func:`_clean` rounds to 4 decimals, where they agree
    (tests/test_domain_linebook.py compares them)."""
    n = len(values)
    mean = sum(values) / n
    return math.sqrt(sum((v - mean) * (v - mean) for v in values) / n)


def _num_text(x: float) -> str:
    return str(int(x)) if float(x) == int(x) else str(x)


def split_player_game(
    snapshots: Iterable[OddsSnapshot], game_date: dt.date, game_id: str, player_lookup: str
) -> tuple[list[OddsSnapshot], list[tuple[OddsSnapshot, str]]]:
    """(snapshots of this player-game, [(stray snapshot, reason)]) for the line book of one player-game.

    A snapshot whose ``game_date`` (or game id / player) differs from the player-game's is a stray row:
    it is rejected on its own (the caller dead-letters it with the reason) and the line book is built from
    the rest, so one bad row never costs the player-game its pick.
    """
    kept: list[OddsSnapshot] = []
    stray: list[tuple[OddsSnapshot, str]] = []
    for s in snapshots:
        if s.game_id != game_id or s.player_lookup != player_lookup:
            stray.append((s, f"odds row of {s.game_id}|{s.player_lookup} grouped with "
                             f"{game_id}|{player_lookup}"))
        elif s.game_date != game_date:
            stray.append((s, f"odds row game_date {s.game_date} differs from the game's date {game_date} "
                             f"({game_id})"))
        else:
            kept.append(s)
    return kept, stray


def build_line_book(
    snapshots: Iterable[OddsSnapshot],
    as_of: dt.datetime,
    policy: Policy,
    *,
    prev_game_closing_line: float | None = None,
    key: tuple[dt.date, str, str] | None = None,
    run_id: str | None = None,
) -> tuple[LineBook, list[LineDiagnostic]]:
    """The line book of one player-game at ``as_of`` and its diagnostics.

    Args:
      snapshots: every odds snapshot of one player-game (later ones are ignored).
      as_of: the decision time (tz-aware UTC).
      policy: line range, staleness, book priority, pick'em sites.
      prev_game_closing_line: the player's previous game's closing line, for ``prop_line_delta``.
      key: (game_date, game_id, player_lookup), needed only when ``snapshots`` is empty.
      run_id: stamped on the diagnostics.

    Returns:
      (LineBook, diagnostics): one LINE_SANITY_REJECT per rejected book, then one LINE_SOURCE or
      NO_PROP_LINE. Without a sane line the LineBook has ``line`` None and ``n_books`` 0.

    Raises:
      ValueError: snapshots of several player-games, or no snapshots and no ``key``.
    """
    snaps = list(snapshots)
    keys = {(s.game_date, s.game_id, s.player_lookup) for s in snaps}
    if len(keys) > 1:
        raise ValueError(f"build_line_book takes one player-game, got {sorted(keys, key=str)[:3]}")
    if keys:
        game_date, game_id, player_lookup = keys.pop()
    elif key is not None:
        game_date, game_id, player_lookup = key
    else:
        raise ValueError("build_line_book: no snapshots and no key=(game_date, game_id, player_lookup)")

    visible = sorted((s for s in snaps if s.snapshot_ts <= as_of), key=_sort_key)
    player_name = visible[-1].player_name if visible else (snaps[0].player_name if snaps else None)
    latest: dict[str, OddsSnapshot] = {}
    for s in visible:
        latest[s.book] = s  # ascending order: the last one wins

    def diag(code: str, book: str | None, line: float | None, value: str | None, reason: str,
             ts: dt.datetime | None) -> LineDiagnostic:
        return LineDiagnostic(game_date, game_id, player_lookup, code, book, line, value, reason, ts,
                              run_id=run_id, policy_version=policy.version)

    diagnostics: list[LineDiagnostic] = []
    sane: dict[str, OddsSnapshot] = {}
    for book in sorted(latest):
        snap = latest[book]
        why = sanity_reason(snap, as_of, policy)
        if why is None:
            sane[book] = snap
        else:
            diagnostics.append(diag(LINE_SANITY_REJECT, book, snap.line, why[1], why[0], snap.snapshot_ts))

    order = [b for b in policy.book_priority if b in sane] + sorted(b for b in sane if b not in
                                                                     policy.book_priority)
    if not order:
        reason = "no_sane_line" if visible else "no_snapshots"
        diagnostics.append(diag(NO_PROP_LINE, None, None, str(len(latest)), reason, None))
        book = LineBook(game_date, game_id, player_lookup, player_name, None, None, None, None, None, None,
                        None, None, None, 0, None, None, None, None)
        return book, diagnostics

    chosen = order[0]
    if chosen in policy.book_priority:
        depth = policy.book_priority.index(chosen)
    else:  # other books follow the whole priority list, alphabetically
        depth = len(policy.book_priority) + order.index(chosen)
    snap = sane[chosen]
    line = float(snap.line)

    opening_snap = next((s for s in visible if s.book == chosen and _opening_candidate(s, policy)), snap)
    opening = float(opening_snap.line)
    lines = [float(sane[b].line) for b in sorted(sane)]
    std = _clean(population_std(lines)) if len(lines) >= 2 else None
    delta = _clean(line - prev_game_closing_line) if prev_game_closing_line is not None else None

    diagnostics.append(diag(
        LINE_SOURCE, chosen, line,
        json_text({"fallback_depth": depth, "line_source_api": snap.source_api, "n_books": len(sane)}),
        "priority_book" if depth < len(policy.book_priority) else "fallback_other_book",
        snap.snapshot_ts))
    book = LineBook(
        game_date=game_date, game_id=game_id, player_lookup=player_lookup, player_name=player_name,
        line=line, line_book=chosen, line_source_api=snap.source_api, line_snapshot_ts=snap.snapshot_ts,
        over_price=int(snap.over_price), under_price=int(snap.under_price), fallback_depth=depth,
        opening_line=opening, line_move=_clean(line - opening), n_books=len(sane),
        multi_book_line_std=std, min_line=min(lines), max_line=max(lines), prop_line_delta=delta,
    )
    return book, diagnostics


def retained_snapshots(snapshots: Iterable[OddsSnapshot], policy: Policy) -> list[OddsSnapshot]:
    """The snapshots of one player-game that :func:`build_line_book` can still use once its ``as_of`` is
    at or after every one of them (the stream: the decision time only moves forward): per book, the
    latest one (what the book shows now) and the first that could open (its opening line if the book is
    selected). At most two per book, in their input order, so for any ``as_of`` at or after the latest
    ``snapshot_ts``, ``build_line_book(retained_snapshots(s), as_of) == build_line_book(s, as_of)``
    (ties of the sort key resolve as in the full list: the latest keeps the last, the opening the first).
    """
    snaps = list(snapshots)
    latest: dict[str, tuple[tuple, int]] = {}
    opening: dict[str, tuple[tuple, int]] = {}
    for i, s in enumerate(snaps):
        k = _sort_key(s)
        if s.book not in latest or k >= latest[s.book][0]:
            latest[s.book] = (k, i)
        if _opening_candidate(s, policy) and (s.book not in opening or k < opening[s.book][0]):
            opening[s.book] = (k, i)
    keep = sorted({i for _k, i in latest.values()} | {i for _k, i in opening.values()})
    return [snaps[i] for i in keep]


def changes_retained(retained: list[OddsSnapshot], snapshot: OddsSnapshot, policy: Policy) -> bool:
    """Whether ``retained_snapshots(retained + [snapshot])`` differs from ``retained``, for ``retained`` as
    :func:`retained_snapshots` returns it (its own fixed point: the stream's book cell), without the
    whole pass: only the new snapshot's book is looked at. It changes when the snapshot becomes its
    book's latest (no snapshot of the book yet, or a sort key at or after the latest one's: the last of
    equal keys wins) or its opening (an opening candidate before the current opening, or the first);
    otherwise every snapshot keeps its role and the result is ``retained`` itself. A snapshot equal to
    one held takes the whole pass (whether the list comes out equal depends on positions). The stream
    asks this for each replayed or late snapshot (most of a busy feed's updates)."""
    if snapshot in retained:
        return retained_snapshots([*retained, snapshot], policy) != retained
    key = _sort_key(snapshot)
    latest = opening = None
    for s in retained:
        if s.book != snapshot.book:
            continue
        k = _sort_key(s)
        if latest is None or k >= latest:
            latest = k
        if _opening_candidate(s, policy) and (opening is None or k < opening):
            opening = k
    if latest is None or key >= latest:
        return True
    return _opening_candidate(snapshot, policy) and (opening is None or key < opening)


def closing_line(
    snapshots: Iterable[OddsSnapshot], tipoff_utc: dt.datetime, policy: Policy
) -> tuple[float, str, dt.datetime] | None:
    """(line, book, snapshot_ts) of the line selected as of tip-off, or None without a sane line."""
    snaps = list(snapshots)
    if not snaps:
        return None
    book, _ = build_line_book(snaps, tipoff_utc, policy)
    if book.line is None:
        return None
    return book.line, book.line_book, book.line_snapshot_ts

"""The best-bets record and the ultra record (domain.md sections 8 and 9): pure functions, no I/O.

What: from graded picks (``BestBetResult`` rows) up to an as-of date, the W-L record and pct of the
season, the calendar month, the week and the last 10 graded picks, the current and best streaks, and the
ultra-tier record with its public gate. The output is the ``best-bets/record.json`` document (plain JSON
types) and the ``record`` block of ``best-bets/{date}.json``.

Definitions:
  * only WIN and LOSS count in W-L, pct and streaks; pushes and voids are counted apart, PENDING ignored;
  * season: NBA season of the as-of date, ``calendar.season_bounds`` (1 August to 31 July, "2025-26");
  * month: the calendar month of the as-of date; week: the ISO week (Monday-Sunday) of the as-of date;
  * order of picks: (game_date, rank, pick_id), so "last 10" and streaks are deterministic;
  * current streak: the run of equal results ending at the latest graded pick of the season;
    best streak: the longest run of wins in the season;
  * ultra public gate (:func:`ultra_public_gate`, the one definition ``props run``, ``props stream``
    and ``props grade`` use): >= ``Policy.ultra_public_min_picks`` graded ultra OVER picks at >=
    ``Policy.ultra_public_min_hr`` (``selection.ultra_public_gate``), counting live picks only. A pick is
    live when the run that produced it (``pick_run_id``) is in ``live_run_ids``: the runs whose
    ``command`` in the ``runs`` table is a live command (:data:`LIVE_COMMANDS`: ``run``, ``stream``;
    :func:`live_run_ids`). A backfill, a replay or a run unknown to the ``runs`` table is never live;
    the run id's spelling is never looked at (the old system's defect, domain.md section 10).

Every function accepts ``BestBetResult`` rows or mappings with the same keys (rows of
``Warehouse.query("SELECT * FROM best_bets_results ...")``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Iterable, Mapping
from typing import Any

from pipeline.domain.calendar import season_bounds
from pipeline.domain.selection import ultra_public_gate as ultra_gate_holds
from pipeline.policy import Policy
from pipeline.schemas import BestBetResult

LAST_N = 10
_GRADED = ("WIN", "LOSS")
LIVE_COMMANDS: frozenset[str] = frozenset({"run", "stream"})


def as_result(row: BestBetResult | Mapping[str, Any]) -> BestBetResult:
    """A ``BestBetResult`` from a row or a mapping (missing optional keys take their defaults)."""
    if isinstance(row, BestBetResult):
        return row
    defaults = BestBetResult._field_defaults
    return BestBetResult(**{f: row[f] if f in row else defaults[f] for f in BestBetResult._fields})


def live_run_ids(runs: Iterable[Mapping[str, Any]]) -> frozenset[str]:
    """The run ids of ``runs`` rows (mappings with ``run_id`` and ``command``) whose command is live."""
    return frozenset(r["run_id"] for r in runs if r.get("command") in LIVE_COMMANDS)


def is_live(result: BestBetResult, live_run_ids: Collection[str]) -> bool:
    """True for a pick produced by a live run (see the module docstring); no run id is never live."""
    return result.pick_run_id is not None and result.pick_run_id in live_run_ids


def week_bounds(day: dt.date) -> tuple[dt.date, dt.date, str]:
    """(Monday, Sunday, ISO label like "2026-W08") of the ISO week containing ``day``."""
    monday = day - dt.timedelta(days=day.weekday())
    iso = day.isocalendar()
    return monday, monday + dt.timedelta(days=6), f"{iso.year}-W{iso.week:02d}"


def _order(r: BestBetResult) -> tuple:
    return (r.game_date, r.rank if r.rank is not None else 10**6, r.pick_id)


def win_loss(results: Iterable[BestBetResult]) -> dict:
    """{"wins", "losses", "pushes", "voids", "pct", "record"} of the given results (pct None at 0-0)."""
    rs = [as_result(r) for r in results]
    wins = sum(r.result == "WIN" for r in rs)
    losses = sum(r.result == "LOSS" for r in rs)
    n = wins + losses
    return {"wins": wins, "losses": losses, "pushes": sum(r.result == "PUSH" for r in rs),
            "voids": sum(r.result == "VOID" for r in rs), "pct": round(wins / n, 4) if n else None,
            "record": f"{wins}-{losses}"}


def streaks(results_in_order: Iterable[BestBetResult]) -> tuple[dict, dict]:
    """(current streak, best win streak) over ordered results; pushes/voids/pending do not break them.

    current: {"type": "W" | "L" | None, "length": n}; best: {"length", "start", "end"} (dates ISO).
    """
    cur_type, cur_len = None, 0
    best_len, best_start, best_end = 0, None, None
    run_start = None
    for r in results_in_order:
        if r.result not in _GRADED:
            continue
        t = "W" if r.result == "WIN" else "L"
        if t == cur_type:
            cur_len += 1
        else:
            cur_type, cur_len, run_start = t, 1, r.game_date
        if t == "W" and cur_len > best_len:
            best_len, best_start, best_end = cur_len, run_start, r.game_date
    current = {"type": cur_type, "length": cur_len}
    best = {"length": best_len, "start": best_start.isoformat() if best_start else None,
            "end": best_end.isoformat() if best_end else None}
    return current, best


def ultra_record(results: Iterable[BestBetResult], as_of: dt.date, *, live_run_ids: Collection[str],
                 policy: Policy) -> dict:
    """The ultra-tier record up to ``as_of`` from live picks and whether its public gate holds."""
    live, excluded = [], 0
    for r in map(as_result, results):
        if not r.ultra_tier or r.game_date > as_of:
            continue
        if not is_live(r, live_run_ids):
            excluded += 1
            continue
        live.append(r)
    over = win_loss(r for r in live if r.direction == "OVER")
    n_over = over["wins"] + over["losses"]
    hr_over = over["wins"] / n_over if n_over else None
    return {"all": win_loss(live), "over": over, "under": win_loss(r for r in live if r.direction == "UNDER"),
            "excluded_non_live": excluded,
            "gate": {"min_graded_over": policy.ultra_public_min_picks, "min_hr": policy.ultra_public_min_hr,
                     "graded_over": n_over, "hr_over": round(hr_over, 4) if hr_over is not None else None},
            "public": ultra_gate_holds(over["wins"], over["losses"], policy)}


def best_bets_record(results: Iterable[BestBetResult], as_of: dt.date, *, live_run_ids: Collection[str],
                     policy: Policy) -> dict:
    """The record document as of ``as_of`` (inclusive): season, month, week, last 10, streaks, ultra."""
    all_rows = sorted((r for r in map(as_result, results) if r.game_date <= as_of), key=_order)
    s_start, s_end, s_label = season_bounds(as_of)
    season = [r for r in all_rows if s_start <= r.game_date <= s_end]
    month = [r for r in season if (r.game_date.year, r.game_date.month) == (as_of.year, as_of.month)]
    w_start, w_end, w_label = week_bounds(as_of)
    week = [r for r in season if w_start <= r.game_date <= w_end]
    graded = [r for r in season if r.result in _GRADED]
    last = graded[-LAST_N:]
    current, best = streaks(season)
    return {
        "as_of": as_of.isoformat(),
        "season": {"label": s_label, **win_loss(season)},
        "month": {"label": f"{as_of.year}-{as_of.month:02d}", **win_loss(month)},
        "week": {"label": w_label, "start": w_start.isoformat(), "end": w_end.isoformat(), **win_loss(week)},
        "last_10": {**win_loss(last), "results": ["W" if r.result == "WIN" else "L" for r in last]},
        "current_streak": current,
        "best_streak": best,
        "ultra": ultra_record(season, as_of, live_run_ids=live_run_ids, policy=policy),
    }


def ultra_public_gate(results: Iterable[BestBetResult | Mapping[str, Any]], as_of: dt.date, *,
                      live_run_ids: Collection[str], policy: Policy) -> bool:
    """THE ultra public gate: may the public JSON show the ultra tier on ``as_of``? From the season's
    live graded ultra OVER picks up to ``as_of`` (``props run`` and ``props stream`` pass the day before
    the slate: only games already graded count)."""
    rows = [as_result(r) for r in results]
    s_start, _, _ = season_bounds(as_of)
    season = [r for r in rows if s_start <= r.game_date <= as_of]
    return ultra_record(season, as_of, live_run_ids=live_run_ids, policy=policy)["public"]

"""The calendar of the domain (domain.md section 1): US Eastern game dates and NBA season bounds.

A ``game_date`` is the game's calendar date in US Eastern time (never UTC "today"), with daylight saving
time: :func:`eastern_date` turns a UTC instant into it and :func:`today_eastern` is "today" for a launch
without ``--game-date``. A season runs 1 August to 31 July and is labelled by its two years
(``"2025-26"``): :func:`season_bounds` is the one definition; the best-bets record, the graded history
read at launch (blacklist, model health) and the box-score window of player contexts all use it.

Pure functions (``zoneinfo``, no I/O beyond the clock of :func:`today_eastern` when no ``now`` is given)::

    season_bounds(dt.date(2026, 2, 22))          # (2025-08-01, 2026-07-31, "2025-26")
    eastern_date(dt.datetime(2026, 7, 5, 3, 30, tzinfo=dt.UTC))   # 2026-07-04 (EDT, UTC-4)
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

EASTERN = ZoneInfo("America/New_York")
SEASON_FIRST_MONTH = 8  # seasons run 1 August .. 31 July


def season_bounds(d: dt.date) -> tuple[dt.date, dt.date, str]:
    """(first day, last day, label) of the NBA season containing ``d``: 1 Aug .. 31 Jul, e.g. "2025-26"."""
    start_year = d.year if d.month >= SEASON_FIRST_MONTH else d.year - 1
    start = dt.date(start_year, SEASON_FIRST_MONTH, 1)
    end = dt.date(start_year + 1, SEASON_FIRST_MONTH, 1) - dt.timedelta(days=1)
    return start, end, f"{start_year}-{(start_year + 1) % 100:02d}"


def season_start(d: dt.date) -> dt.date:
    """The first day of the season containing ``d`` (1 August)."""
    return season_bounds(d)[0]


def eastern_date(ts: dt.datetime) -> dt.date:
    """The US Eastern calendar date of an instant (daylight saving time included).

    Raises ValueError for a naive datetime: an instant without a time zone has no Eastern date.
    """
    if ts.tzinfo is None or ts.utcoffset() is None:
        raise ValueError(f"eastern_date needs a time-zone-aware instant, got naive {ts.isoformat()}")
    return ts.astimezone(EASTERN).date()


def today_eastern(now: dt.datetime | None = None) -> dt.date:
    """Today's date in US Eastern time (``now`` defaults to the current UTC time)."""
    return eastern_date(now if now is not None else dt.datetime.now(dt.UTC))

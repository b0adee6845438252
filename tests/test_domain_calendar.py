"""Unit tests for pipeline/domain/calendar.py: Eastern game dates with daylight saving, season bounds."""

from __future__ import annotations

import datetime as dt

import pytest

from pipeline.domain import calendar
from pipeline.domain.calendar import eastern_date, season_bounds, season_start, today_eastern

UTC = dt.UTC


def test_a_july_night_at_0330_utc_is_the_previous_eastern_day():
    # 5 July 03:30 UTC is 4 July 23:30 EDT (UTC-4).
    assert eastern_date(dt.datetime(2026, 7, 5, 3, 30, tzinfo=UTC)) == dt.date(2026, 7, 4)
    assert today_eastern(dt.datetime(2026, 7, 5, 3, 30, tzinfo=UTC)) == dt.date(2026, 7, 4)
    # Midnight EDT is 04:00 UTC: at 04:30 UTC it is 5 July (a fixed UTC-5 would still say 4 July).
    assert today_eastern(dt.datetime(2026, 7, 5, 3, 59, tzinfo=UTC)) == dt.date(2026, 7, 4)
    assert today_eastern(dt.datetime(2026, 7, 5, 4, 30, tzinfo=UTC)) == dt.date(2026, 7, 5)


def test_a_january_night_at_0430_utc_is_the_previous_eastern_day():
    # Standard time (EST, UTC-5): 04:30 UTC is 23:30 the evening before; midnight is 05:00 UTC.
    assert today_eastern(dt.datetime(2026, 1, 15, 4, 30, tzinfo=UTC)) == dt.date(2026, 1, 14)
    assert today_eastern(dt.datetime(2026, 1, 15, 5, 0, tzinfo=UTC)) == dt.date(2026, 1, 15)


def test_eastern_date_of_other_offsets_and_naive_times():
    tip = dt.datetime(2026, 2, 22, 19, 30, tzinfo=dt.timezone(dt.timedelta(hours=1)))  # 13:30 EST
    assert eastern_date(tip) == dt.date(2026, 2, 22)
    with pytest.raises(ValueError, match="naive"):
        eastern_date(dt.datetime(2026, 2, 22, 12, 0))


def test_today_eastern_defaults_to_the_clock():
    # No fixed answer without a clock: it must equal the Eastern date of "now" taken around the call.
    before = eastern_date(dt.datetime.now(UTC))
    today = today_eastern()
    after = eastern_date(dt.datetime.now(UTC))
    assert today in (before, after)


@pytest.mark.parametrize("day, expected", [
    (dt.date(2026, 2, 22), (dt.date(2025, 8, 1), dt.date(2026, 7, 31), "2025-26")),
    (dt.date(2025, 10, 21), (dt.date(2025, 8, 1), dt.date(2026, 7, 31), "2025-26")),
    (dt.date(2026, 7, 31), (dt.date(2025, 8, 1), dt.date(2026, 7, 31), "2025-26")),
    (dt.date(2026, 8, 1), (dt.date(2026, 8, 1), dt.date(2027, 7, 31), "2026-27")),
    (dt.date(1999, 12, 31), (dt.date(1999, 8, 1), dt.date(2000, 7, 31), "1999-00")),
])
def test_season_bounds_run_1_august_to_31_july(day, expected):
    assert season_bounds(day) == expected
    assert season_start(day) == expected[0]


def test_one_season_rule_for_the_record_and_the_graded_history():
    """The best-bets record and the launch (history window, box scores) use the same bounds."""
    from pipeline.commands import common
    from pipeline.domain import records

    assert records.season_bounds is calendar.season_bounds
    assert common.season_start is calendar.season_start
    # The October season start of the old graph.season_start is gone: September is in the season too.
    assert season_start(dt.date(2025, 9, 15)) == dt.date(2025, 8, 1)

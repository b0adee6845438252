"""The best-bets record and the ultra gate (pipeline.domain.records)."""

from __future__ import annotations

import datetime as dt

from pipeline.domain import records as rec
from pipeline.policy import Policy
from pipeline.schemas import BestBetResult

P = Policy()
LIVE = frozenset({"live"})


def res(day: dt.date, result: str, *, rank=1, ultra=False, direction="OVER", run="live",
        pid=None) -> BestBetResult:
    return BestBetResult(pid or f"{day}-{rank}-{result}", day, "g", "p", direction, 20.5, 6.0, None, None,
                         result, None, None, None, None, ultra, rank=rank, pick_run_id=run)


def test_season_and_week_bounds():
    assert rec.season_bounds(dt.date(2026, 2, 22))[2] == "2025-26"
    assert rec.season_bounds(dt.date(2025, 10, 21))[2] == "2025-26"
    assert rec.season_bounds(dt.date(2026, 8, 1))[2] == "2026-27"
    monday, sunday, label = rec.week_bounds(dt.date(2026, 1, 1))  # a Thursday: ISO week 1 of 2026
    assert (monday, sunday, label) == (dt.date(2025, 12, 29), dt.date(2026, 1, 4), "2026-W01")


def test_record_windows_at_month_and_year_boundaries():
    rows = [
        res(dt.date(2025, 12, 29), "WIN"),   # same ISO week as 2026-01-01, previous month and year
        res(dt.date(2025, 12, 31), "LOSS"),
        res(dt.date(2026, 1, 1), "WIN"),
        res(dt.date(2026, 1, 1), "PUSH", rank=2),
        res(dt.date(2026, 1, 1), "VOID", rank=3),
        res(dt.date(2026, 1, 2), "WIN"),     # after as_of: ignored
        res(dt.date(2025, 7, 30), "WIN"),    # previous season
    ]
    r = rec.best_bets_record(rows, dt.date(2026, 1, 1), live_run_ids=LIVE, policy=P)
    assert r["season"]["label"] == "2025-26" and r["season"]["record"] == "2-1"
    assert r["season"]["pushes"] == 1 and r["season"]["voids"] == 1
    assert r["month"]["label"] == "2026-01" and r["month"]["record"] == "1-0"
    assert r["week"]["label"] == "2026-W01" and r["week"]["record"] == "2-1"
    assert r["season"]["pct"] == round(2 / 3, 4)
    assert r["last_10"]["results"] == ["W", "L", "W"]


def test_last_10_and_streaks():
    day = dt.date(2026, 3, 1)
    seq = ["WIN"] * 4 + ["LOSS"] + ["WIN"] * 2 + ["PUSH"] + ["WIN"] * 3 + ["LOSS"] * 2
    rows = [res(day + dt.timedelta(days=i), r) for i, r in enumerate(seq)]
    r = rec.best_bets_record(rows, dt.date(2026, 3, 31), live_run_ids=LIVE, policy=P)
    assert r["last_10"]["wins"] + r["last_10"]["losses"] == 10
    assert r["last_10"]["results"] == ["W", "W", "L", "W", "W", "W", "W", "W", "L", "L"]
    assert r["current_streak"] == {"type": "L", "length": 2}
    # the push does not break the run of 2 + 3 wins
    assert r["best_streak"]["length"] == 5 and r["best_streak"]["start"] == "2026-03-06"


def test_empty_record_is_complete():
    r = rec.best_bets_record([], dt.date(2026, 3, 1), live_run_ids=LIVE, policy=P)
    assert r["season"]["pct"] is None and r["current_streak"] == {"type": None, "length": 0}
    assert r["ultra"]["public"] is False and r["last_10"]["results"] == []


def test_ultra_public_gate_counts_live_over_picks_only():
    day = dt.date(2026, 3, 1)
    rows = [res(day, "WIN", rank=i, ultra=True) for i in range(40)]
    rows += [res(day, "LOSS", rank=100 + i, ultra=True) for i in range(10)]
    u = rec.ultra_record(rows, day, live_run_ids=LIVE, policy=P)
    assert u["gate"]["graded_over"] == 50 and u["gate"]["hr_over"] == 0.8 and u["public"] is True
    # one fewer graded pick: below 50
    assert rec.ultra_record(rows[1:], day, live_run_ids=LIVE, policy=P)["public"] is False
    # 79.x %: one more loss
    more = rows + [res(day, "LOSS", rank=999, ultra=True)]
    assert rec.ultra_record(more, day, live_run_ids=LIVE, policy=P)["public"] is False
    # UNDER ultra picks, pushes and non-ultra picks do not count toward the gate
    extra = [res(day, "WIN", rank=500, ultra=True, direction="UNDER"), res(day, "PUSH", rank=501, ultra=True),
             res(day, "WIN", rank=502)]
    assert rec.ultra_record(rows[1:] + extra, day, live_run_ids=LIVE, policy=P)["public"] is False
    # picks of runs that are not live (a backfill, a replay, an unknown run) never count
    bf = [res(day, "WIN", rank=700 + i, ultra=True, run="bf") for i in range(60)]
    u = rec.ultra_record(rows[1:] + bf, day, live_run_ids=LIVE, policy=P)
    assert u["public"] is False and u["excluded_non_live"] == 60


def test_ultra_gate_thresholds_are_the_policy_fields():
    day = dt.date(2026, 3, 1)
    rows = [res(day, "WIN", rank=i, ultra=True) for i in range(9)] + [res(day, "LOSS", rank=99, ultra=True)]
    assert rec.ultra_public_gate(rows, day, live_run_ids=LIVE, policy=P) is False  # 10 < 50
    easy = Policy(ultra_public_min_picks=10, ultra_public_min_hr=0.9)
    assert rec.ultra_public_gate(rows, day, live_run_ids=LIVE, policy=easy) is True
    strict = Policy(ultra_public_min_picks=10, ultra_public_min_hr=0.95)
    assert rec.ultra_public_gate(rows, day, live_run_ids=LIVE, policy=strict) is False


def test_live_runs_come_from_the_runs_table_command_never_from_the_run_id():
    runs = [{"run_id": "backfill-20260301T000000-aaaa", "command": "run"},  # looks like a backfill: live
            {"run_id": "run-20260301T000000-bbbb", "command": "backfill"},  # looks live: a backfill
            {"run_id": "s1", "command": "stream"}, {"run_id": "g1", "command": "grade"},
            {"run_id": "r1", "command": "replay"}]
    assert rec.live_run_ids(runs) == {"backfill-20260301T000000-aaaa", "s1"}
    day = dt.date(2026, 3, 1)
    rows = [res(day, "WIN", rank=i, ultra=True, run="backfill-20260301T000000-aaaa")._asdict()
            for i in range(50)]
    for r in rows:
        del r["closing_book"]  # an older table without the column
    live = rec.live_run_ids(runs)
    assert rec.best_bets_record(rows, day, live_run_ids=live, policy=P)["season"]["record"] == "50-0"
    assert rec.ultra_public_gate(rows, day, live_run_ids=live, policy=P) is True
    relabelled = [dict(r, pick_run_id="run-20260301T000000-bbbb") for r in rows]
    assert rec.ultra_public_gate(relabelled, day, live_run_ids=live, policy=P) is False
    assert rec.ultra_public_gate([dict(r, pick_run_id=None) for r in rows], day, live_run_ids=live,
                                 policy=P) is False

"""Unit tests for pipeline/domain/schedule.py: game states, decision time and the one "game started" rule,
and that the universe, the re-run protection and the stream lifecycle all decide by it."""

from __future__ import annotations

import datetime as dt
import itertools

import pytest

from pipeline.domain import gate, lifecycle
from pipeline.domain.schedule import (
    DatePlan,
    GameState,
    decision_time,
    game_started,
    latest_games,
    started_game_ids,
)
from pipeline.policy import Policy
from pipeline.schemas import GAME_STATUSES, ScheduleEvent

UTC = dt.UTC
DAY = dt.date(2026, 2, 22)
TIP = dt.datetime(2026, 2, 23, 0, 30, tzinfo=UTC)
BEFORE, AT, AFTER = TIP - dt.timedelta(minutes=1), TIP, TIP + dt.timedelta(minutes=1)


def event(game_id="20260222_LAL_BOS", status="scheduled", ts=dt.datetime(2026, 2, 22, 12, tzinfo=UTC),
          tipoff=TIP, new_date=None) -> ScheduleEvent:
    away, home = game_id.split("_")[1:]
    return ScheduleEvent(game_id=game_id, game_date=DAY, tipoff_utc=tipoff, home_team=home, away_team=away,
                         status=status, new_game_date=new_date, event_ts=ts)


@pytest.mark.parametrize("status, tipoff, now, started", [
    ("scheduled", TIP, BEFORE, False),
    ("scheduled", TIP, AT, True),  # tip-off at now has started
    ("scheduled", TIP, AFTER, True),
    ("scheduled", None, AFTER, False),  # no tip-off known: only the status can say
    (None, TIP, AFTER, True),  # unknown status: the tip-off decides
    (None, None, AFTER, False),
    ("in_progress", TIP, BEFORE, True),  # the schedule can start a game early
    ("final", None, BEFORE, True),
    ("IN_PROGRESS", TIP, BEFORE, True),  # any case
    ("postponed", TIP, AFTER, False),  # never played at that tip-off
    ("cancelled", TIP, AFTER, False),
])
def test_game_started(status, tipoff, now, started):
    assert game_started(status, tipoff, now) is started


def test_latest_games_takes_the_latest_event_at_the_decision_time():
    early = event(ts=dt.datetime(2026, 2, 22, 10, tzinfo=UTC))
    moved = event(ts=dt.datetime(2026, 2, 22, 15, tzinfo=UTC), tipoff=TIP + dt.timedelta(hours=1))
    postponed = event(ts=dt.datetime(2026, 2, 22, 20, tzinfo=UTC), status="postponed", tipoff=None,
                      new_date=dt.date(2026, 3, 1))
    later = event("20260222_NYK_MIA", ts=dt.datetime(2026, 2, 22, 16, tzinfo=UTC))
    events = [postponed, later, moved, early]
    at_noon = latest_games(events, dt.datetime(2026, 2, 22, 12, tzinfo=UTC))
    assert list(at_noon) == ["20260222_LAL_BOS"]  # the other game is not announced yet
    assert at_noon["20260222_LAL_BOS"].tipoff_utc == TIP
    final = latest_games(events)
    g = final["20260222_LAL_BOS"]
    assert (g.status, g.new_game_date) == ("postponed", dt.date(2026, 3, 1))
    assert g.tipoff_utc == TIP + dt.timedelta(hours=1)  # the latest announced tip-off is kept
    assert (g.home_team, g.away_team) == ("BOS", "LAL")


def test_decision_time_ignores_games_not_played():
    games = latest_games([event(), event("20260222_NYK_MIA", tipoff=TIP - dt.timedelta(hours=2),
                                         status="postponed")]).values()
    assert decision_time(games, 60) == TIP - dt.timedelta(minutes=60)
    assert decision_time([], 60) is None
    only_cancelled = latest_games([event(status="cancelled")]).values()
    assert decision_time(only_cancelled, 60) is None


def _state(game_id: str, status: str | None, tipoff: dt.datetime | None) -> GameState:
    return GameState(game_id, DAY, tipoff, "BOS", "LAL", status or "scheduled", None)


STATUSES = (*GAME_STATUSES, None)
TIPOFFS = (TIP, None)
NOWS = (BEFORE, AT, AFTER)


def test_the_universe_decides_started_by_the_one_rule():
    policy = Policy()
    for status, tipoff, now in itertools.product(STATUSES, TIPOFFS, NOWS):
        reason = gate.universe_exclusion(status, tipoff, now, None, policy)
        if status in ("postponed", "cancelled") or status is None:
            continue  # excluded for their own reasons (game_postponed / game_cancelled / not_on_schedule)
        assert (reason == "game_started") is game_started(status, tipoff, now), (status, tipoff, now)


def test_rerun_protection_decides_started_by_the_one_rule():
    """graph.RunPlan.protected_pick_game_ids: the games started at each date's decision time."""
    from pipeline.graph import RunPlan

    for now in NOWS:
        games = {}
        for i, (status, tipoff) in enumerate(itertools.product(GAME_STATUSES, TIPOFFS)):
            gid = f"20260222_T{i:02d}_H{i:02d}"
            games[gid] = _state(gid, status, tipoff)
        plan = DatePlan(DAY, now, "FIRST", games, ())
        expected = tuple(sorted(g for g, s in games.items() if game_started(s.status, s.tipoff_utc, now)))
        assert started_game_ids(plan) == expected
        run = RunPlan(**{**dict.fromkeys(RunPlan._fields), "date_plans": {DAY: plan}})
        assert run.protected_pick_game_ids() == {DAY: expected}
    # A postponed game's picks are not protected (they are withdrawn), an in-progress one's are.
    games = {"a": _state("a", "postponed", TIP), "b": _state("b", "in_progress", None)}
    plan = DatePlan(DAY, AFTER, "FIRST", games, ())
    assert started_game_ids(plan) == ("b",)


def test_the_stream_lifecycle_decides_started_by_the_one_rule():
    from tests.test_domain_lifecycle import GAME, pick

    for status, tipoff, now in itertools.product(STATUSES, TIPOFFS, NOWS):
        p = pick()._replace(tipoff_utc=None)
        changes, _ = lifecycle.lock_started({p.pick_id: p}, now=now, tipoffs={GAME: tipoff},
                                            statuses={GAME: status})
        assert bool(changes) is game_started(status, tipoff, now), (status, tipoff, now)


def test_layers_below_the_commands_never_import_them():
    """The shared schedule types live in pipeline/domain, so io/, transforms/ and domain/ never import
    pipeline.commands (the old commands.common <-> io cycle), and domain/ imports no io/ or transforms/."""
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / "pipeline"
    forbidden = {"io": ("pipeline.commands",), "transforms": ("pipeline.commands",),
                 "domain": ("pipeline.commands", "pipeline.io", "pipeline.transforms")}
    offenders = []
    for layer, prefixes in forbidden.items():
        for path in sorted((root / layer).glob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                         else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
                offenders += [f"{layer}/{path.name}: {n}" for n in names if n.startswith(prefixes)]
    assert offenders == []

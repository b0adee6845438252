"""The season-long stream (pipeline/transforms/streaming.py, stream_graph.py) on TestStream.

* Two game dates through one running graph: each date is initialised from its first event (its feature
  rows, its eligible models), a finished date's per-date and per-player-game state is cleared by the
  clearing timer after the grace period (the ``cleared`` output reports every cleared key), an event of
  the cleared date afterwards is a dead letter, and the other date keeps going.
* Registry changes while the stream runs: a ``kind=registry`` message enables one model and disables
  another; the next version of every open player-game is scored with exactly the new set.
* State written in the old shape is read by the new one (a field added by an in-place update), cells of
  the first coder format are read by the current one, and a player-game whose snapshots are in the odds
  bag (the layout before the one-cell ``book``) is moved to the new layout by its next event.

Real tiny CatBoost models (tests/slate_fixtures.py), no mocks.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import NamedTuple

import apache_beam as beam
import pytest
from apache_beam.io.gcp.pubsub import PubsubMessage
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.test_stream import TestStream

from pipeline.io.pubsub import message_for
from pipeline.policy import load_policy
from pipeline.schemas import ScheduleEvent
from pipeline.stream_graph import StreamPlan, build_stream_pipeline, registry_message
from pipeline.transforms import streaming
from pipeline.transforms.streaming import DateReference, zero_clock
from tests import slate_fixtures as fx

D1, D2 = fx.GAME_DATE, fx.GAME_DATE + dt.timedelta(days=1)
G1, G2 = fx.GAME_ID, "20260223_NYK_MIA"
DAY = dt.timedelta(days=1)
GRACE_S = 100.0
COLLECTED: dict[str, list] = {}


def _collect(x, name):
    COLLECTED.setdefault(name, []).append(x)


def sched(game_id, game_date, status, event_ts, tip):
    away, home = game_id.split("_")[1:]
    return ScheduleEvent(game_id=game_id, game_date=game_date, tipoff_utc=tip, home_team=home,
                         away_team=away, status=status, new_game_date=None, event_ts=event_ts)


def odds(player, line, minutes_before_asof, *, day2=False):
    row = fx.odds(player, "draftkings", line, minutes_before_asof, game_id=G2 if day2 else G1)
    return row._replace(game_date=D2, snapshot_ts=row.snapshot_ts + DAY) if day2 else row


def msg(kind, row) -> PubsubMessage:
    data, attrs = message_for(kind, row)
    return PubsubMessage(data, attrs)


FEATURES = [
    fx.feature_row("alpha", avg=30.0), fx.feature_row("delta", avg=30.0),
    fx.feature_row("gamma", avg=30.0, game_id=G2, team="NYK", opp="MIA", game_date=D2),
]


def _run(stream: TestStream, registry) -> dict[str, list]:
    COLLECTED.clear()
    policy = load_policy(None)
    plan = StreamPlan(
        run_id="stream-season", policy=policy,
        reference=DateReference(policy, registry=registry, features=FEATURES),
        history={}, debounce_seconds=0.5, subscription=None, picks_changes_topic=None, warehouse=None,
        exports=None, clock=zero_clock, scoring_timeout_s=1000.0, state_grace_s=GRACE_S)
    options = PipelineOptions()
    options.view_as(StandardOptions).streaming = True
    with TestPipeline(options=options) as p:
        out = build_stream_pipeline(p, plan, messages=p | stream)
        for name in ("changes", "dead_letters", "predictions", "cleared", "player_games"):
            _ = out[name] | f"Collect_{name}" >> beam.Map(_collect, name)
    return {k: list(v) for k, v in COLLECTED.items()}


@pytest.fixture(scope="module")
def season():
    tip1, tip2 = fx.TIPOFF, fx.TIPOFF + DAY
    stream = (
        TestStream()
        .advance_watermark_to(0)
        .add_elements([msg("schedule", sched(G1, D1, "scheduled", fx.AS_OF - dt.timedelta(hours=10), tip1))])
        .add_elements([msg("odds", odds("alpha", 13.5, 300)), msg("odds", odds("delta", 13.5, 300))])
        .advance_processing_time(5)
        # Day 2 is learned from its schedule event while day 1 is still open.
        .add_elements([msg("schedule", sched(G2, D2, "scheduled", fx.AS_OF + DAY - dt.timedelta(hours=10),
                                             tip2))])
        .add_elements([msg("odds", odds("gamma", 13.5, 300, day2=True))])
        .advance_processing_time(5)
        # Day 1's only game is final: its state is cleared GRACE_S of processing time later.
        .add_elements([msg("schedule", sched(G1, D1, "final", tip1 + dt.timedelta(hours=3), tip1))])
        .advance_processing_time(5)
        .advance_processing_time(GRACE_S + 10)
        # A late odds snapshot of day 1 after the clearing, and day 2 goes on.
        .add_elements([msg("odds", odds("alpha", 15.5, 100)),
                       msg("odds", odds("gamma", 14.5, 200, day2=True))])
        .advance_processing_time(5)
        .advance_processing_time(5)
        .advance_watermark_to_infinity()
    )
    return _run(stream, fx.tiny_registry())


def test_each_date_is_initialised_from_its_events_and_picks_are_made_per_date(season):
    dates = {dc.game_date for dc in season["changes"]}
    assert dates == {D1, D2}
    d2 = [c.pick for dc in season["changes"] if dc.game_date == D2 for c in dc.changes]
    assert d2 and {p.player_lookup for p in d2} == {"gamma"}
    assert d2[-1].line == 14.5  # the day-2 move after day 1 was cleared was scored


def test_a_finished_date_state_is_cleared_and_the_other_date_keeps_its_state(season):
    cleared = season["cleared"]
    assert ("date", D1.isoformat(), 2) in cleared
    pgs = sorted(k for kind, k, _n in cleared if kind == "player_game")
    assert pgs == sorted(f"{G1}|{p}" for p in ("alpha", "delta"))
    assert ("best_bets", D1.isoformat(), 1) in cleared
    assert not [c for c in cleared if D2.isoformat() in c[1] or G2 in c[1]]


def test_an_event_of_a_cleared_date_is_a_dead_letter_not_a_new_state(season):
    late = [d for d in season["dead_letters"] if d.step == "stream_date_state"]
    assert len(late) == 1 and "cleared" in late[0].error and "alpha" in late[0].payload
    alpha = [pg for pg in season["player_games"] if pg.player_lookup == "alpha"]
    assert all(pg.book.line != 15.5 for pg in alpha)


def test_registry_change_while_running_rescores_with_exactly_the_new_model_set():
    base = fx.tiny_registry()
    v12 = next(s for s in base.enabled() if s.family == "v12_mae")
    v9 = next(s for s in base.enabled() if s.family == "v9_mae")
    from models.registry import Registry

    before = Registry([v12, dataclasses.replace(v9, enabled=False)])
    after = Registry([dataclasses.replace(v12, enabled=False), v9])  # v9 promoted, v12 disabled
    data, attrs = registry_message(after)
    stream = (
        TestStream()
        .advance_watermark_to(0)
        .add_elements([msg("schedule", sched(G1, D1, "scheduled", fx.AS_OF - dt.timedelta(hours=10),
                                             fx.TIPOFF))])
        .add_elements([msg("odds", odds("alpha", 13.5, 300)), msg("odds", odds("delta", 13.5, 300))])
        .advance_processing_time(5)
        .add_elements([PubsubMessage(data, attrs)])
        .advance_processing_time(5)
        .add_elements([msg("odds", odds("alpha", 14.5, 200))])
        .advance_processing_time(5)
        .advance_watermark_to_infinity()
    )
    out = _run(stream, before)
    by_version: dict[tuple[str, int], set[str]] = {}
    for p in out["predictions"]:
        by_version.setdefault((p.player_lookup, p.version), set()).add(p.model_id)
    for player in ("alpha", "delta"):
        versions = sorted(v for pl, v in by_version if pl == player)
        sets = [by_version[(player, v)] for v in versions]
        switch = sets.index({v9.model_id})
        assert switch > 0 and all(s == {v12.model_id} for s in sets[:switch])
        assert all(s == {v9.model_id} for s in sets[switch:])
    # the registry message alone re-scored delta (no event of his own after it)
    assert by_version[("delta", max(v for pl, v in by_version if pl == "delta"))] == {v9.model_id}
    assert not [d for d in out.get("dead_letters", []) if d.step in ("scoring", "inference", "parse")]


class _OldShape(NamedTuple):
    a: int


class _NewShape(NamedTuple):
    a: int
    b: str = "default"


def test_state_written_by_the_old_shape_is_read_by_the_new_one(monkeypatch):
    coder = streaming.StateCoder()
    old = coder.encode({"info": _OldShape(a=3), "seq": 4})
    # An in-place update: the class under the stored name gained a field with a default.
    monkeypatch.setattr(__import__(__name__, fromlist=["_OldShape"]), "_OldShape", _NewShape)
    value = coder.decode(old)
    assert value == {"info": _NewShape(a=3, b="default"), "seq": 4}

    class Cell:
        def read(self):
            return {"seq": 2}  # a state dict of the old schema, before "models" existed

    state = streaming.read_state(Cell(), streaming.PG_DEFAULTS)
    assert state["seq"] == 2 and state["models"] == () and state["schema"] == streaming.STATE_SCHEMA



class _Info(NamedTuple):
    seq: int


def test_cells_of_the_first_coder_format_are_read_and_the_current_one_pickles_no_class():
    import io
    import pickle

    coder = streaming.StateCoder()
    value = {"info": _Info(seq=3), "rows": [fx.odds("alpha", "draftkings", 13.5)], "seq": 4}
    first_format = pickle.dumps(streaming.to_plain(value), protocol=4)  # what jobs before format 2 wrote
    assert coder.decode(first_format) == value

    class OnlyRebuild(pickle.Unpickler):
        def find_class(self, module, name):
            assert (module, name) in {("pipeline.transforms.streaming", "_rebuild"),
                                      ("pipeline.transforms.streaming", "_utc"),
                                      ("datetime", "date"), ("datetime", "datetime")}, (module, name)
            return super().find_class(module, name)

    encoded = coder.encode(value)
    assert OnlyRebuild(io.BytesIO(encoded)).load() == value == coder.decode(encoded)


class _Cell:
    """A state cell that stores what StateCoder encodes, as a runner does."""

    def __init__(self, value=None):
        self.stored = None if value is None else streaming.StateCoder().encode(value)

    def read(self):
        return None if self.stored is None else streaming.StateCoder().decode(self.stored)

    def write(self, value):
        self.stored = streaming.StateCoder().encode(value)

    def clear(self):
        self.stored = None


class _Bag:
    def __init__(self, values=()):
        self.stored = [streaming.StateCoder().encode(v) for v in values]

    def read(self):
        return [streaming.StateCoder().decode(v) for v in self.stored]

    def add(self, value):
        self.stored.append(streaming.StateCoder().encode(value))

    def clear(self):
        self.stored = []


def _alpha_reference(policy):
    """The events before alpha's odds: the date's model set, his feature row and his game's schedule."""
    return [
        streaming.StreamEvent("models",
                              tuple(streaming.model_refs(fx.tiny_registry().eligible_for(D1), policy))),
        streaming.StreamEvent("features", FEATURES[0]),
        streaming.StreamEvent("schedule", sched(G1, D1, "scheduled", fx.AS_OF - dt.timedelta(hours=10),
                                                fx.TIPOFF)),
    ]


def test_a_player_game_in_the_odds_bag_layout_moves_to_the_book_cell_on_its_next_event():
    policy = load_policy(None)
    key = streaming.pg_key(G1, "alpha")
    events = [
        *_alpha_reference(policy),
        streaming.StreamEvent("odds", fx.odds("alpha", "draftkings", 13.5, 300)),
        streaming.StreamEvent("odds", fx.odds("alpha", "fanduel", 14.5, 200)),
        streaming.StreamEvent("odds", fx.odds("alpha", "draftkings", 15.5, 100)),
    ]

    def run(fn, cells, evs):
        return _pg_run(fn, key, cells, evs)

    fn = streaming.PlayerGameStateFn(policy)
    fn.setup()
    new = {"odds": _Bag(), "schedule": _Bag(), "injuries": _Bag(), "info": _Cell(), "book": _Cell()}
    expected = run(fn, new, events)
    assert new["odds"].stored == [] and len(new["book"].read()) == 3  # 2 books: latest + opening each

    # The same player-game as a job of the bag layout left it after the first five events: snapshots in
    # the odds bag, no book cell, an info cell without ``book_cell``.
    old = {"odds": _Bag(), "schedule": _Bag(), "injuries": _Bag(), "info": _Cell(), "book": _Cell()}
    run(fn, old, events[:5])
    info = old["info"].read()
    del info["book_cell"]
    old["info"].write(info)
    old["odds"] = _Bag(old["book"].read())
    old["book"].clear()
    moved = run(fn, old, events[5:])
    assert old["odds"].stored == [] and old["book"].read() == new["book"].read()
    assert moved[0] == expected[5] and any(isinstance(o, streaming.ScoringRequest) for o in moved[0])


def _plain(o):
    return (o.tag, o.value) if isinstance(o, beam.pvalue.TaggedOutput) else o


def _pg_run(fn, key, cells, evs):
    return [list(map(_plain, fn.process((key, ev), odds_state=cells["odds"], schedule_state=cells["schedule"],
                                        injury_state=cells["injuries"], info_state=cells["info"],
                                        book_state=cells["book"]))) for ev in evs]


def _pg_cells():
    return {"odds": _Bag(), "schedule": _Bag(), "injuries": _Bag(), "info": _Cell(), "book": _Cell()}


def test_a_replayed_odds_snapshot_rebuilds_emits_and_writes_nothing_until_another_input_changes():
    policy = load_policy(None)
    key = streaming.pg_key(G1, "alpha")
    first = [
        *_alpha_reference(policy),
        streaming.StreamEvent("odds", fx.odds("alpha", "draftkings", 13.5, 300)),
        streaming.StreamEvent("odds", fx.odds("alpha", "fanduel", 14.5, 200)),
        streaming.StreamEvent("odds", fx.odds("alpha", "draftkings", 15.5, 100)),
    ]
    fn = streaming.PlayerGameStateFn(policy)
    fn.setup()
    cells = _pg_cells()
    _pg_run(fn, key, cells, first)
    before = {name: (c.stored if isinstance(c, _Cell) else list(c.stored)) for name, c in cells.items()}

    # Every snapshot again (a replay of the feed): no tick, no version, no request, no write.
    replayed = _pg_run(fn, key, cells, first[3:])
    assert replayed == [[], [], []]
    assert {name: (c.stored if isinstance(c, _Cell) else list(c.stored))
            for name, c in cells.items()} == before

    # A late snapshot of a held book that is neither its latest nor its opening changes nothing either;
    # one of a new book, even an older one, gets the full pass (its tick at least) and is kept.
    late = _pg_run(fn, key, cells, [streaming.StreamEvent("odds", fx.odds("alpha", "draftkings", 14.0, 150))])
    assert late == [[]] and cells["book"].stored == before["book"]
    stale = _pg_run(fn, key, cells, [streaming.StreamEvent("odds", fx.odds("alpha", "betmgm", 15.0, 250))])
    assert any(o[0] == streaming.TICKS for o in stale[0] if isinstance(o, tuple))
    assert len(cells["book"].read()) == len(streaming.StateCoder().decode(before["book"])) + 1

    # Another input (an injury report) is decided at once, even at an unchanged clock (the player is out:
    # removed); a replay after that pass is again nothing.
    after = _pg_run(fn, key, cells, [streaming.StreamEvent("injuries", fx.injury("alpha", "out")),
                                     streaming.StreamEvent("odds", first[5].row)])
    assert any(o[0] == streaming.TICKS and isinstance(o[1][1], streaming.PlayerGameRemoved)
               for o in after[0] if isinstance(o, tuple))
    assert after[1] == []


def test_a_replay_after_a_full_pass_reads_neither_schedule_nor_injuries_and_still_rejects_a_stray_row():
    class CountingBag(_Bag):
        reads = 0

        def read(self):
            self.reads += 1
            return super().read()

    policy = load_policy(None)
    key = streaming.pg_key(G1, "alpha")
    snap = fx.odds("alpha", "draftkings", 13.5, 300)
    fn = streaming.PlayerGameStateFn(policy)
    fn.setup()
    cells = _pg_cells()
    cells["schedule"], cells["injuries"] = CountingBag(), CountingBag()
    _pg_run(fn, key, cells, [*_alpha_reference(policy), streaming.StreamEvent("odds", snap)])
    reads = cells["schedule"].reads, cells["injuries"].reads
    assert reads[0] >= 1 and cells["info"].read()["game_date"] == D1

    # The snapshot again, then a row of another date under the same key, at the same clock: no schedule
    # or injury read; the stray row is still one dead letter with its reason, and nothing else.
    stray = snap._replace(game_date=D1 + dt.timedelta(days=1), snapshot_ts=snap.snapshot_ts
                          - dt.timedelta(minutes=1))
    replayed, rejected = _pg_run(fn, key, cells, [streaming.StreamEvent("odds", snap),
                                                  streaming.StreamEvent("odds", stray)])
    assert replayed == [] and (cells["schedule"].reads, cells["injuries"].reads) == reads
    assert [o[0] for o in rejected] == [streaming.DEAD]
    assert "differs from the game's date" in rejected[0][1].error

    # An older snapshot of a new book at the same clock is not a replay: the full pass, its replay check
    # made once (not again after the schedule read).
    checks = []
    replay = fn._replay
    fn._replay = lambda kept, stored: checks.append(kept) or replay(kept, stored)
    older = fx.odds("alpha", "fanduel", 14.5, 400)
    other_book = _pg_run(fn, key, cells, [streaming.StreamEvent("odds", older)])
    assert any(o[0] == streaming.TICKS for o in other_book[0] if isinstance(o, tuple))
    assert len(checks) == 1 and cells["schedule"].reads > reads[0]

    # A new snapshot takes the full pass again (it reads the schedule and moves the line).
    newer = fx.odds("alpha", "draftkings", 12.5, 200)
    moved = _pg_run(fn, key, cells, [streaming.StreamEvent("odds", newer)])
    assert any(isinstance(o, streaming.ScoringRequest) for o in moved[0])


def test_the_same_events_with_replays_interleaved_give_the_same_versions():
    policy = load_policy(None)
    key = streaming.pg_key(G1, "alpha")
    head = _alpha_reference(policy)
    snaps = [fx.odds("alpha", book, line, minutes) for book, line, minutes in
             [("draftkings", 13.5, 300), ("fanduel", 14.5, 200), ("draftkings", 15.5, 100),
              ("fanduel", 12.5, 90), ("draftkings", 11.5, 60)]]
    plain = head + [streaming.StreamEvent("odds", s) for s in snaps]
    with_replays = list(head)
    for i, s in enumerate(snaps):
        with_replays.append(streaming.StreamEvent("odds", s))
        with_replays += [streaming.StreamEvent("odds", r) for r in snaps[: i + 1]]  # the feed so far, again

    def versions(evs):
        fn = streaming.PlayerGameStateFn(policy)
        fn.setup()
        out = [o for step in _pg_run(fn, key, _pg_cells(), evs) for o in step]
        return [o.player_game for o in out if isinstance(o, streaming.ScoringRequest)]

    got, want = versions(with_replays), versions(plain)
    assert len(want) >= 3 and got == want


def test_a_tick_that_moves_nothing_neither_writes_the_date_clock_nor_arms_a_recomputation():
    class Timer:
        def __init__(self):
            self.sets = []

        def set(self, t):
            self.sets.append(t)

    class CountingCell(_Cell):
        writes = 0

        def write(self, value):
            self.writes += 1
            super().write(value)

    fn = streaming.BestBetsStateFn(load_policy(None), {}, debounce_seconds=1.0, clock=streaming.zero_clock)
    fn.setup()
    entries, clock, published, timer = _Bag(), CountingCell(), _Cell(), Timer()
    now = fx.AS_OF

    def tick(status, at):
        el = (D1.isoformat(), ("tick", streaming.GameTick(game_id=G1, tipoff_utc=fx.TIPOFF, status=status,
                                                           now=at)))
        return list(fn.process(el, entries=entries, clock=clock, timer=timer, published_state=published))

    tick("scheduled", now)
    assert len(timer.sets) == 1 and clock.read()["now"] == now and clock.writes == 1
    tick("scheduled", now)
    tick("scheduled", now - dt.timedelta(minutes=5))  # an older clock moves nothing either
    assert clock.writes == 1 and len(timer.sets) == 1 and clock.read()["now"] == now
    tick("in_progress", now)  # a new status does move the date's state
    assert clock.read()["statuses"][G1] == "in_progress" and clock.writes == 2
    assert not list(entries.read())  # ticks are never entries of the recomputation


def test_a_recomputation_past_a_tipoff_waits_for_a_version_in_scoring_at_most_the_scoring_timeout():
    """The clock crosses G1's tip-off while a version decided before it is still being scored: the
    recomputation waits (no selection, no change, the timer moved to when the version times out); a tick
    whose scored entry came first holds nothing; once the held version times out (scoring dead-lettered
    it), the recomputation goes ahead."""
    from apache_beam.utils.timestamp import Timestamp

    class Timer:
        def __init__(self):
            self.sets = []

        def set(self, t):
            self.sets.append(t)

    proc = [100.0]  # the processing clock, in seconds
    fn = streaming.BestBetsStateFn(load_policy(None), {}, debounce_seconds=1.0, hold_seconds=10.0,
                                   clock=lambda: Timestamp.of(proc[0]))
    fn.setup()
    entries, clock, published, timer = _Bag(), _Cell(), _Cell(), Timer()
    date = D1.isoformat()
    tip = fx.TIPOFF

    def send(tag, value):
        return list(fn.process((date, (tag, value)), entries=entries, clock=clock, timer=timer,
                               published_state=published))

    def recompute():
        return list(fn.recompute(key=date, entries=entries, published_state=published, clock=clock,
                                 timer=timer))

    def tick(at, pending=None, status="scheduled"):
        return send("tick", streaming.GameTick(game_id=G1, tipoff_utc=tip, status=status, now=at,
                                               pending=pending))

    tick(tip - dt.timedelta(hours=2))
    recompute()  # the first recomputation: the clock before the tip-off
    assert clock.read()["last"] == tip - dt.timedelta(hours=2)
    tick(tip - dt.timedelta(minutes=30), pending=f"{G1}|alpha#2")  # sent for scoring
    assert set(clock.read()["held"]) == {f"{G1}|alpha"}
    tick(tip + dt.timedelta(minutes=1), status="in_progress")  # another player-game's event: past it
    proc[0] = 101.0
    assert recompute() == []
    state = clock.read()
    assert state["last"] == tip - dt.timedelta(hours=2) and not state["armed"]  # waited: nothing decided
    assert timer.sets[-1] == Timestamp.of(110.0)  # when the held version times out

    # A version whose scored entry came first is not held by its tick.
    assert streaming.release_version(state, f"{G1}|delta", 3) and state["early"] == {f"{G1}|delta": 3}
    assert streaming.hold_version(state, f"{G1}|delta", 3, tip, 101.0)
    assert f"{G1}|delta" not in state["held"] and not state["early"]
    # A lower version's scored entry does not release a higher one in flight.
    assert not streaming.release_version(state, f"{G1}|alpha", 1) and f"{G1}|alpha" in state["held"]

    proc[0] = 110.0  # the held version timed out: the recomputation goes ahead
    recompute()
    state = clock.read()
    assert state["last"] == tip + dt.timedelta(minutes=1) and not state["held"]


def test_catch_up_points_are_the_tipoffs_crossed_since_the_last_recomputation():
    t0 = fx.TIPOFF
    tips = {"a": t0, "b": t0 + dt.timedelta(hours=1), "c": t0 + dt.timedelta(hours=3), "d": None}
    eps = streaming.CATCH_UP_EPSILON
    assert streaming.catch_up_points(tips, None, t0 + dt.timedelta(hours=5)) == []  # a first recomputation
    assert streaming.catch_up_points(tips, t0 - dt.timedelta(hours=1), t0 + dt.timedelta(hours=2)) == [
        t0 - eps, t0 + dt.timedelta(hours=1) - eps]
    one_hour = dt.timedelta(hours=1)
    assert streaming.catch_up_points(tips, t0, t0 + one_hour) == [t0 + one_hour - eps]
    # A status that crossed a later tip-off is not yet known at an earlier point; a final one before is.
    statuses = {"a": "final", "b": "in_progress", "c": "postponed"}
    assert streaming.statuses_at(statuses, tips, t0 + dt.timedelta(minutes=30)) == {
        "a": "final", "c": "postponed"}


def test_the_player_game_never_changes_in_place_what_it_read_or_wrote():
    # The local runner hands the next read of ``info`` / ``book`` the very object written, and every read
    # of a schedule or injury row the same object (direct_runner._write_through, _shared_bag_reads): a
    # DoFn that changed one in place would change its own stored state. Cells here keep the object and a
    # snapshot of its encoding; every read checks that nothing changed the object since.
    import copy

    coder = streaming.StateCoder()

    class SameCell:
        def __init__(self):
            self.value, self.encoded = None, None

        def read(self):
            if self.value is not None:
                assert coder.encode(self.value) == self.encoded, "changed in place after its write"
            return self.value

        def write(self, value):
            self.value, self.encoded = value, coder.encode(value)

        def clear(self):
            self.value = self.encoded = None

    class SameBag(SameCell):
        def read(self):
            for v, e in zip(self.value or [], self.encoded or [], strict=True):
                assert coder.encode(v) == e, "a bag element changed in place"
            return list(self.value or [])

        def add(self, value):
            self.value = [*(self.value or []), value]
            self.encoded = [*(self.encoded or []), coder.encode(value)]

    policy = load_policy(None)
    key = streaming.pg_key(G1, "alpha")
    events = [
        *_alpha_reference(policy),
        *[streaming.StreamEvent("odds", fx.odds("alpha", b, line, m)) for b, line, m in
          [("draftkings", 13.5, 300), ("fanduel", 14.5, 200), ("draftkings", 15.5, 100),
           ("fanduel", 14.5, 200)]],
        streaming.StreamEvent("injuries", fx.injury("alpha", "questionable")),
        streaming.StreamEvent("odds", fx.odds("alpha", "betmgm", 12.5, 50)),
    ]
    fn = streaming.PlayerGameStateFn(policy)
    fn.setup()
    same = {"odds": SameBag(), "schedule": SameBag(), "injuries": SameBag(), "info": SameCell(),
            "book": SameCell()}
    got = _pg_run(fn, key, same, copy.deepcopy(events))
    want = _pg_run(fn, key, _pg_cells(), events)
    assert got == want and any(isinstance(o, streaming.ScoringRequest) for step in got for o in step)


class _SameCell:
    """A cell that stores the object written (as the local runner's write-through cells do) and a snapshot
    of its encoding: every read and write checks that nothing changed the object since its write."""

    def __init__(self):
        self.value = self.encoded = None

    def read(self):
        if self.value is not None:
            encoded = streaming.StateCoder().encode(self.value)
            assert encoded == self.encoded, "changed in place after its write"
        return self.value

    def write(self, value):
        self.read()  # the value written last is unchanged until it is replaced
        self.value, self.encoded = value, streaming.StateCoder().encode(value)

    def clear(self):
        self.value = self.encoded = None


def test_the_best_bets_never_change_in_place_the_date_clock_they_read_or_wrote():
    # The local runner hands the next read of the date clock the very object written
    # (DATE_CLOCK.props_write_through): BestBetsStateFn must build a new value (read_clock copies the maps
    # it changes key by key). The cell keeps the object and a snapshot of its encoding; every read and
    # write checks that nothing changed the object since. Holds, releases, tip-offs, statuses.
    from apache_beam.utils.timestamp import Timestamp

    class Timer:
        def set(self, t):
            pass

    assert getattr(streaming.DATE_CLOCK, "props_write_through", False)
    proc = [100.0]
    fn = streaming.BestBetsStateFn(load_policy(None), {}, debounce_seconds=1.0, hold_seconds=10.0,
                                   clock=lambda: Timestamp.of(proc[0]))
    fn.setup()
    date, tip = D1.isoformat(), fx.TIPOFF

    def run(clock):
        entries, published, timer, seen = _Bag(), _Cell(), Timer(), []

        def send(tag, value):
            seen.append(list(fn.process((date, (tag, value)), entries=entries, clock=clock, timer=timer,
                                        published_state=published)))

        def tick(at, pending=None, status="scheduled", game=G1):
            send("tick", streaming.GameTick(game_id=game, tipoff_utc=tip, status=status, now=at,
                                            pending=pending))

        tick(tip - dt.timedelta(hours=2))
        seen.append(list(fn.recompute(key=date, entries=entries, published_state=published, clock=clock,
                                      timer=timer)))
        tick(tip - dt.timedelta(minutes=30), pending=f"{G1}|alpha#2")
        tick(tip - dt.timedelta(minutes=20), pending=f"{G1}|beta#1", game="20260221_NYK_MIA")
        tick(tip + dt.timedelta(minutes=1), status="in_progress")
        proc[0] = 101.0
        seen.append(list(fn.recompute(key=date, entries=entries, published_state=published, clock=clock,
                                      timer=timer)))
        proc[0] = 112.0
        seen.append(list(fn.recompute(key=date, entries=entries, published_state=published, clock=clock,
                                      timer=timer)))
        return seen, clock.read()

    proc[0] = 100.0
    got = run(_SameCell())
    proc[0] = 100.0
    want = run(_Cell())
    assert got == want and want[1]["statuses"] == {G1: "in_progress", "20260221_NYK_MIA": "scheduled"}


def test_the_completion_join_never_changes_in_place_what_it_read_or_wrote():
    # JOIN_STATE is written through on the local runner: CompleteModelSetFn must build a new value
    # (read_join copies every pending entry). Two versions interleaved, one completed, one timed out.
    from apache_beam.utils.timestamp import Timestamp

    class Timer:
        def set(self, t):
            pass

        def clear(self):
            pass

    assert getattr(streaming.JOIN_STATE, "props_write_through", False)
    policy = load_policy(None)
    key = streaming.pg_key(G1, "alpha")
    pg_fn = streaming.PlayerGameStateFn(policy)
    pg_fn.setup()
    events = [*_alpha_reference(policy),
              streaming.StreamEvent("odds", fx.odds("alpha", "draftkings", 13.5, 300)),
              streaming.StreamEvent("odds", fx.odds("alpha", "fanduel", 14.5, 200))]
    requests = [o for step in _pg_run(pg_fn, key, _pg_cells(), events) for o in step
                if isinstance(o, streaming.ScoringRequest)]
    requests = requests[-2:]  # the two odds versions
    assert len(requests) == 2 and len(requests[0].models) >= 2
    proc = [100.0]
    fn = streaming.CompleteModelSetFn(policy, timeout_s=10.0, clock=lambda: Timestamp.of(proc[0]))
    fn.setup()

    def run(join):
        out = []

        def send(seq, tag, value):
            out.append(list(map(_plain, fn.process((key, (seq, tag, value)), join=join, timer=Timer()))))

        first, second = requests
        models = [m.model_id for m in first.models]
        send(first.player_game.version, "request", first)
        send(second.player_game.version, "request", second)
        send(first.player_game.version, "raw", (models[0], 14.0))
        send(second.player_game.version, "raw", (models[0], 15.0))
        for m in models[1:]:
            send(first.player_game.version, "raw", (m, 13.0))
        proc[0] = 111.0
        out.append(list(map(_plain, fn.timeout(key=key, join=join, timer=Timer(),
                                               fired=Timestamp.of(110.0)))))
        proc[0] = 100.0
        return out, join.read()

    got, want = run(_SameCell()), run(_Cell())
    assert got == want and want[1] is None
    assert any(isinstance(o, streaming.Scored) for o in want[0][-2])  # the first version was scored

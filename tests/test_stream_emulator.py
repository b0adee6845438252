"""End-to-end streaming tests against the real Pub/Sub emulator (started and stopped by the fixture).

A small simulated day (4 teams, 2 games) is replayed through ``props replay`` into ``props stream``
running in a subprocess; the final picks must equal what ``props run`` produces for the same date with
``--as-of`` at the last replayed event (batch/stream parity). A restart (hard kill while a burst is still
in flight, start again with ``--rebuild-as-of``) must reflect every update and duplicate nothing. Malformed
messages go to dead letters while the job keeps running.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from pathlib import Path

import pytest

from tests.pubsub_emulator import PROJECT, StreamJob, fresh_id, pubsub_emulator  # noqa: F401 - fixture

pytestmark = [pytest.mark.slow, pytest.mark.emulator]

DATE = "2026-01-07"
UNTIL = "2026-01-07T23:30:00Z"  # before the first tip-off (00:30Z): every game still open
PICK_FIELDS = ("pick_id", "direction", "line", "line_book", "rank", "consensus_edge", "game_id")


@pytest.fixture(scope="module")
def day(tmp_path_factory):
    import sim
    from tests import slate_fixtures as fx

    root = tmp_path_factory.mktemp("stream-day")
    # seed 4: a day whose batch run has a pick with the tiny models on the simulated market (seed 7 has none)
    s = sim.simulate(seed=4, teams=("LAL", "BOS", "DEN", "MIA"), start="2026-01-05", days=3)
    s.write(root / "season")
    registry = fx.tiny_registry()
    return {"inputs": str(root / "season"), "registry": registry.uri if hasattr(registry, "uri") else None,
            "root": root}


@pytest.fixture(scope="module")
def batch_picks(day):
    from pipeline.commands import run

    out = day["root"] / "batch"
    code = run.main(["--inputs", day["inputs"], "--registry", _registry(day), "--game-date", DATE,
                     "--as-of", UNTIL, "--run-mode", "RETRY", "--warehouse", f"duckdb://{out}/wh.duckdb",
                     "--exports", str(out / "exports")])
    assert code == 0
    doc = json.loads((out / "exports" / "best-bets" / f"{DATE}.json").read_text())
    rows = _query(out / "wh.duckdb", "SELECT * FROM best_bets")
    return {"doc": doc, "rows": rows}


def _registry(day) -> str:
    if day["registry"]:
        return day["registry"]
    from tests import slate_fixtures as fx

    reg = fx.tiny_registry()
    return str(Path(reg.write()))


def _query(path: Path, sql: str) -> list[dict]:
    import duckdb

    con = duckdb.connect(str(path), read_only=True)
    try:
        cur = con.execute(sql)
        names = [d[0] for d in cur.description]
        return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
    finally:
        con.close()


def _job(day, host, tag: str, warehouse: Path, exports: Path, topics: dict, extra=()) -> StreamJob:
    args = ["--inputs", day["inputs"], "--registry", _registry(day), "--game-date", DATE,
            "--warehouse", f"duckdb://{warehouse}", "--exports", str(exports), "--pubsub-emulator", host,
            "--pubsub-project", PROJECT, "--events-topic", topics["events"],
            "--events-subscription", topics["sub"], "--picks-changes-topic", topics["changes"],
            "--debounce-seconds", "0.3", *extra]
    job = StreamJob(args, day["root"] / f"{tag}.log")
    job.wait_running()
    return job


def _replay(day, host, topics, *extra) -> None:
    from pipeline.commands import replay

    code = replay.main(["--inputs", day["inputs"], "--date", DATE, "--pubsub-emulator", host,
                        "--pubsub-project", PROJECT, "--events-topic", topics["events"], *extra])
    assert code == 0


def _wait_drained(job: StreamJob, warehouse: Path, exports: Path, topics: dict, *,
                  timeout_s: float = 150.0) -> None:
    """Publishes a malformed sentinel message after the replay and waits until the job has dead-lettered
    it (it has read everything published before), then until its export stops changing."""
    import duckdb

    from pipeline.io import pubsub

    token = fresh_id("sentinel")
    pub = pubsub.Publisher(PROJECT, topics["events"])
    pub.publish(token.encode(), {"kind": "odds"})
    pub.flush()
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert job.alive(), job.log()[-3000:]
        try:
            rows = _query(warehouse, f"SELECT count(*) AS n FROM dead_letters WHERE payload LIKE '%{token}%'")
            if rows[0]["n"]:
                break
        except duckdb.Error:
            pass  # the job holds the write lock for a moment, or the file does not exist yet
        time.sleep(0.5)
    else:
        raise AssertionError(f"the stream did not drain in {timeout_s} s: {job.log()[-2000:]}")
    path = exports / "best-bets" / f"{DATE}.json"
    last, since = None, time.monotonic()
    while time.monotonic() - since < 4.0 and time.monotonic() < deadline:
        stamp = path.stat().st_mtime if path.exists() else None
        if stamp != last:
            last, since = stamp, time.monotonic()
        time.sleep(0.3)


def _topics(host) -> dict:
    from pipeline.io import pubsub

    t = {"events": fresh_id("ev"), "sub": fresh_id("evsub"), "changes": fresh_id("pc"),
         "csub": fresh_id("pcsub")}
    pubsub.ensure_topics(PROJECT, [t["events"], t["changes"]],
                         {t["sub"]: t["events"], t["csub"]: t["changes"]})
    return t


def _public(doc: dict) -> list[tuple]:
    return sorted((p["pick_id"], p["direction"], p["line"], p["edge"], p["rank"]) for p in doc["picks"])


def test_replayed_day_matches_the_batch_run_and_bad_messages_are_dead_letters(day, batch_picks,
                                                                               pubsub_emulator):  # noqa: F811
    from pipeline.io import pubsub

    assert batch_picks["doc"]["total_picks"] > 0  # parity means something only with picks to compare
    host, topics = pubsub_emulator, _topics(pubsub_emulator)
    wh, exports = day["root"] / "parity.duckdb", day["root"] / "parity-exports"
    job = _job(day, host, "parity", wh, exports, topics)
    try:
        bad = pubsub.Publisher(PROJECT, topics["events"])
        bad.publish(b'{"player_lookup": ', {"kind": "odds", "event_ts": "2026-01-07T15:00:00Z"})
        bad.publish(b"{}", {"kind": "weather", "event_ts": "2026-01-07T15:00:00Z"})
        bad.publish(json.dumps({"player_lookup": "x", "line": "high"}).encode(), {"kind": "odds"})
        bad.flush()
        _replay(day, host, topics, "--until", UNTIL)
        _wait_drained(job, wh, exports, topics)
        stream_doc = json.loads((exports / "best-bets" / f"{DATE}.json").read_text())
        changes = pubsub.pull(PROJECT, topics["csub"], max_messages=500)
    finally:
        job.stop()
    assert batch_picks["doc"]["total_picks"] > 0
    assert _public(stream_doc) == _public(batch_picks["doc"])
    latest = json.loads((exports / "best-bets" / "latest.json").read_text())
    assert _public(latest) == _public(stream_doc)
    # Every change reached the picks-changes topic; best_bets holds the latest version of each pick.
    docs = [json.loads(m.data) for m in changes]
    assert docs and {d["change"] for d in docs} <= {"created", "updated", "withdrawn"}
    rows = _query(wh, "SELECT pick_id, version, status, line, rank FROM best_bets")
    active = sorted((r["pick_id"], r["line"], r["rank"]) for r in rows if r["status"] == "active")
    assert active == sorted((r["pick_id"], r["line"], r["rank"]) for r in batch_picks["rows"])
    dead = _query(wh, "SELECT source, step, error FROM dead_letters WHERE payload NOT LIKE '%sentinel%'")
    assert sorted(d["source"] for d in dead) == ["pubsub:odds", "pubsub:odds", "pubsub:weather"]
    assert all(d["step"] == "parse" and d["error"] for d in dead)


# The burst: the day's events in chunks (event-time bounds), each chunk followed by PROBES malformed probe
# messages (each one becomes a dead letter when the job processes it): the probes show how far the job got.
CHUNKS = (None, "2026-01-07T16:00:00Z", "2026-01-07T19:00:00Z", "2026-01-07T21:30:00Z",
          "2026-01-07T22:30:00Z", UNTIL)
PROBES = 8
GATED = 4  # chunks published and gone through (picks exported: the first come after 21:30Z) first


def _probes_now(warehouse: Path, token: str) -> int:
    """Probes dead-lettered so far while the job runs, read from a copy of the file and its log: the
    local stream keeps the file (and DuckDB's one-writer lock) while it writes (stream_sinks.
    KeepOpenDuckDBWarehouse), and a read of the file itself would also slow the job. 0 when the copy
    was taken mid-write (the next poll takes another)."""
    import shutil

    import duckdb

    copy = warehouse.with_name(f"{warehouse.stem}-probe.duckdb")
    try:
        for suffix in ("", ".wal"):
            src, dst = Path(f"{warehouse}{suffix}"), Path(f"{copy}{suffix}")
            dst.unlink(missing_ok=True)
            if src.exists():
                shutil.copyfile(src, dst)
        return _probe_counts(copy, token)[0]
    except (duckdb.Error, OSError):
        return 0


def _probe_counts(warehouse: Path, token: str) -> tuple[int, int]:
    """(distinct probes dead-lettered, dead-letter rows of probes)."""
    if not warehouse.exists():
        return 0, 0
    rows = _query(warehouse, f"SELECT payload FROM dead_letters WHERE payload LIKE '%{token}-%'")
    return len({r["payload"] for r in rows}), len(rows)


def test_restart_while_messages_are_in_flight_recovers_every_update_and_duplicates_nothing(
        day, batch_picks, pubsub_emulator, record_property):  # noqa: F811
    """A hard kill while the job is still working through a burst, then the documented restart.

    The day's events are published in event-time chunks, each followed by ``PROBES`` malformed probe
    messages. The first ``GATED`` chunks are published and the test waits until the job has gone through
    them (its first export exists and their probes are dead letters); the last hour before ``UNTIL``
    (about 200 events) is then published as one burst at max speed and the job is SIGKILLed the moment
    the last publish returns, while it is working through the burst (it absorbs about 1,000-1,500 updates/s,
    bench_stream_throughput). Waiting for progress inside the burst instead is a race the job can win: it
    drained a whole-day burst before the test's 0.2 s poll saw its first probes. That the kill hit work in
    flight is still asserted (fewer probe dead letters than probes published). The local runner acks a
    pull before processing it (at most once, beam-notes), so messages acked by the killed job but not yet
    processed are gone from the subscription. The restart procedure (``--rebuild-as-of`` the restart
    time) rebuilds every player-game's line book from the inputs, and the unread rest of the subscription
    is delivered to the new job. The final picks must equal the batch run's (an uninterrupted run), no
    (pick_id, version) may be written twice, and versions stay contiguous. How many probes the kill lost
    is measured and recorded (``record_property``), not assumed.
    """
    from pipeline.io import pubsub

    assert batch_picks["doc"]["total_picks"] > 0  # parity means something only with picks to compare
    host, topics = pubsub_emulator, _topics(pubsub_emulator)
    wh, exports = day["root"] / "inflight.duckdb", day["root"] / "inflight-exports"
    probe = fresh_id("probe")
    total = PROBES * (len(CHUNKS) - 1)
    export = exports / "best-bets" / f"{DATE}.json"
    job = _job(day, host, "inflight-1", wh, exports, topics)
    try:
        pub = pubsub.Publisher(PROJECT, topics["events"])

        def publish_chunk(chunk: int) -> None:
            since, until = CHUNKS[chunk], CHUNKS[chunk + 1]
            _replay(day, host, topics, *(("--since", since) if since else ()), "--until", until)  # max speed
            for i in range(PROBES):
                pub.publish(f"{probe}-{chunk}-{i:02d}".encode(), {"kind": "odds"})
            pub.flush()

        for chunk in range(GATED):
            publish_chunk(chunk)
        deadline = time.monotonic() + 150.0
        while not (export.exists() and _probes_now(wh, probe) >= GATED * PROBES):
            assert job.alive(), job.log()[-3000:]
            assert time.monotonic() < deadline, (
                f"no output in 150 s (export {export.exists()}, probes {_probes_now(wh, probe)}): "
                f"{job.log()[-2000:]}")
            time.sleep(0.2)
        for chunk in range(GATED, len(CHUNKS) - 1):
            publish_chunk(chunk)
    finally:
        job.stop()  # SIGKILL while the burst is in flight
    at_kill, _ = _probe_counts(wh, probe)
    before = _query(wh, "SELECT pick_id, version FROM best_bets_history") if wh.exists() else []
    assert GATED * PROBES <= at_kill < total, "the job drained the burst before the kill: nothing in flight"
    assert before, "the killed job had written no pick version: nothing for the restart to duplicate"

    job = _job(day, host, "inflight-2", wh, exports, topics, extra=("--rebuild-as-of", UNTIL))
    try:
        _wait_drained(job, wh, exports, topics)
        deadline = time.monotonic() + 20.0  # probes still queued behind the drain sentinel, if any
        while _probe_counts(wh, probe)[0] < total and time.monotonic() < deadline:
            assert job.alive(), job.log()[-3000:]
            time.sleep(0.5)
        stream_doc = json.loads(export.read_text())
    finally:
        job.stop()
    seen, rows = _probe_counts(wh, probe)
    record_property("probes_published", total)
    record_property("probes_processed_before_kill", at_kill)
    record_property("probes_lost_by_the_kill", total - seen)
    print(f"in-flight kill: {total} probes in {len(CHUNKS) - 1} chunks, {at_kill} processed before the kill, "
          f"{seen - at_kill} after the restart, {total - seen} lost (acked, never processed)")
    assert rows == seen, "a probe was dead-lettered twice"

    # The recovered state equals an uninterrupted run's.
    assert batch_picks["doc"]["total_picks"] > 0
    assert _public(stream_doc) == _public(batch_picks["doc"])
    rows = _query(wh, "SELECT pick_id, version, status, line, rank FROM best_bets")
    assert len(rows) == len({r["pick_id"] for r in rows})
    active = sorted((r["pick_id"], r["line"], r["rank"]) for r in rows if r["status"] == "active")
    assert active == sorted((r["pick_id"], r["line"], r["rank"]) for r in batch_picks["rows"])
    history = _query(wh, "SELECT pick_id, version, change FROM best_bets_history")
    keys = [(h["pick_id"], h["version"]) for h in history]
    assert len(keys) == len(set(keys)), "a (pick_id, version) was written twice"
    assert {(b["pick_id"], b["version"]) for b in before} <= set(keys)
    by_pick: dict[str, list[int]] = {}
    for pick_id, version in keys:
        by_pick.setdefault(pick_id, []).append(version)
    assert all(sorted(v) == list(range(1, len(v) + 1)) for v in by_pick.values()), by_pick
    assert all(r["version"] == max(by_pick[r["pick_id"]]) for r in rows)


SEASON_DATES = ("2026-01-05", "2026-01-06", "2026-01-07")


def _pre_tipoff_cut(inputs: str, date: str) -> str:
    """A date's last event before its first tip-off (its picks lock at tip-off; the batch run at this
    ``--as-of`` decides what the stream's picks were when they locked), ``UNTIL`` for the last date."""
    import datetime as dt

    from pipeline.commands import common
    from pipeline.commands.stream import day_events
    from pipeline.io.parse import event_time

    day = dt.date.fromisoformat(date)
    first_tip = min(e.tipoff_utc for e in common.read_schedule(inputs, [day])[0])
    until = dt.datetime.fromisoformat(UNTIL.replace("Z", "+00:00"))
    events = day_events(inputs, [day], until=min(until, first_tip - dt.timedelta(seconds=1)))[0]
    return max(event_time(e.kind, e.row) for e in events).isoformat().replace("+00:00", "Z")


def test_three_days_replayed_into_one_running_stream_match_batch_per_date_and_clear_finished_dates(
        day, pubsub_emulator):  # noqa: F811
    """``props replay --start D1 --end D3`` into one ``props stream``: D1 and D2 are replayed to their
    finals, D3 up to ``UNTIL`` (before its first tip-off). Each date's picks (locked for D1/D2, active
    for D3) equal ``props run --game-date D --as-of <D's last event before its first tip-off>``; D1's and
    D2's state is cleared after their finals (grace 1 s): a D1 odds snapshot published afterwards is a
    dead letter of the cleared date, never a re-opened state."""
    from pipeline.commands import replay, run
    from pipeline.io import pubsub
    from tests import slate_fixtures as fx

    host, topics = pubsub_emulator, _topics(pubsub_emulator)
    root = day["root"] / "season"
    wh, exports = root / "season.duckdb", root / "exports"
    expected = {}
    for d in SEASON_DATES:
        out = root / f"batch-{d}"
        code = run.main(["--inputs", day["inputs"], "--registry", _registry(day), "--game-date", d,
                         "--as-of", _pre_tipoff_cut(day["inputs"], d), "--run-mode", "RETRY",
                         "--warehouse", f"duckdb://{out}/wh.duckdb", "--exports", str(out / "exports")])
        assert code == 0
        expected[d] = sorted((r["pick_id"], r["direction"], r["line"], r["rank"])
                             for r in _query(out / "wh.duckdb", "SELECT * FROM best_bets"))
    assert sum(map(len, expected.values())) >= 2, expected  # the comparison is not of empty lists

    args = ["--inputs", day["inputs"], "--registry", _registry(day),
            "--warehouse", f"duckdb://{wh}", "--exports", str(exports), "--pubsub-emulator", host,
            "--pubsub-project", PROJECT, "--events-topic", topics["events"],
            "--events-subscription", topics["sub"], "--picks-changes-topic", topics["changes"],
            "--debounce-seconds", "0.3", "--state-grace-seconds", "1"]
    root.mkdir(parents=True, exist_ok=True)
    job = StreamJob(args, root / "season.log")
    job.wait_running()
    try:
        code = replay.main(["--inputs", day["inputs"], "--start", SEASON_DATES[0], "--end", SEASON_DATES[-1],
                            "--until", UNTIL, "--pubsub-emulator", host, "--pubsub-project", PROJECT,
                            "--events-topic", topics["events"]])
        assert code == 0
        _wait_drained(job, wh, exports, topics)
        time.sleep(3.0)  # D1's and D2's grace period (1 s of processing time) runs out
        # A D1 snapshot timed on D1's evening (inside the parse boundary's event-time window, so it is the
        # cleared date's state that rejects it, not the parse).
        late = fx.odds("lateprobe", "draftkings", 10.5)._replace(
            game_id="20260105_LAL_MIA", game_date=dt.date(2026, 1, 5),
            snapshot_ts=dt.datetime(2026, 1, 6, 3, 0, tzinfo=dt.UTC))
        pub = pubsub.Publisher(PROJECT, topics["events"])
        data, attrs = pubsub.message_for("odds", late)
        pub.publish(data, attrs)
        pub.flush()
        _wait_drained(job, wh, exports, topics)
        rows = _query(wh, "SELECT * FROM best_bets")
        dead = _query(wh, "SELECT step, error, payload FROM dead_letters WHERE step = 'stream_date_state'")
    finally:
        job.stop()
    for d in SEASON_DATES:
        status = "active" if d == SEASON_DATES[-1] else "locked"
        got = sorted((r["pick_id"], r["direction"], r["line"], r["rank"]) for r in rows
                     if str(r["game_date"]) == d and r["status"] == status)
        assert got == expected[d], d
    assert [d for d in dead if "lateprobe" in d["payload"] and "2026-01-05" in d["error"]], dead

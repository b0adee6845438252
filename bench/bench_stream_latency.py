"""Benchmark: latency from publishing a line move to the pick change on the picks-changes topic.

Starts the Pub/Sub emulator (or uses ``--emulator HOST:PORT``), starts ``props stream`` in a subprocess
on the 11-game night (``--date 2026-02-22`` of the cached simulated season, the packaged sample models;
``--small``: a simulated 2-game day and the tiny test registry), replays the night up to
``--warm-until`` (an hour before the first tip-off: the night's state, ~7k events) and reports how long
after the last publish the job had read it (the backlog), then publishes ``--moves`` line moves one at a
time for the pick whose game tips off last: its selected book's line alternately moved 0.5 in the
direction that widens the edge and back, so every move changes the pick's line and edge and must
produce an ``updated`` change. ``--load R`` publishes R other odds updates per second meanwhile (the
night's later snapshots of other players). Measures publish -> change received on a subscription of the
picks-changes topic; prints p50 / p95 / p99 / max, the job's CPU beside wall time, and with ``--load``
the backlog after the last publish.

    .venv/bin/python bench/bench_stream_latency.py [--moves 200] [--debounce 0.2] [--load 500]
    .venv/bin/python bench/bench_stream_latency.py --small

The helpers here (``StreamHarness``) are shared with bench_stream_throughput.py.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

os.environ.setdefault("NO_GCE_CHECK", "true")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

PROJECT = "props-bench"
DATE = dt.date(2026, 1, 7)
WARM_UNTIL = dt.datetime(2026, 1, 7, 23, 0, tzinfo=dt.UTC)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def process_group_cpu(pgid: int) -> float:
    """CPU seconds (user + system) of every live process in a process group (Linux /proc)."""
    total = 0
    tick = os.sysconf("SC_CLK_TCK")
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:  # fields after the command: state, ppid, pgrp, ...
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / tick


class StreamHarness:
    """Emulator + simulated data + ``props stream`` subprocess + a listener on picks-changes.

    ``inputs`` None: a small simulated day (4 teams, 2 games on DATE) and the tiny test registry;
    otherwise the given feature store / events (e.g. the cached simulated season) and ``registry``
    (None: the packaged sample models).
    """

    def __init__(self, *, emulator: str | None, debounce: float, workdir: Path, inputs: str | None = None,
                 registry: str | None = None, date: dt.date = DATE):
        from pipeline.io import pubsub

        self.workdir = workdir
        self.date = date
        self.emulator_proc = None
        self.host = emulator or f"127.0.0.1:{_free_port()}"
        if emulator is None:
            self.emulator_proc = pubsub.start_emulator(self.host, PROJECT)
        pubsub.use_emulator(self.host)
        tag = uuid.uuid4().hex[:8]
        self.topics = {"events": f"ev-{tag}", "sub": f"evsub-{tag}", "changes": f"pc-{tag}",
                       "csub": f"pcsub-{tag}"}
        t = self.topics
        pubsub.ensure_topics(PROJECT, [t["events"], t["changes"]],
                             {t["sub"]: t["events"], t["csub"]: t["changes"]})
        self.inputs, self.registry = (inputs, registry) if inputs else self._data()
        self.warehouse = workdir / "wh.duckdb"
        self.exports = workdir / "exports"
        self.received: list[tuple[float, dict]] = []
        self._cond = threading.Condition()
        self.job = None
        self.debounce = debounce

    def _data(self) -> tuple[str, str]:
        import sim
        from tests import slate_fixtures as fx

        season = self.workdir / "season"
        s = sim.simulate(seed=7, teams=("LAL", "BOS", "DEN", "MIA"), start="2026-01-05", days=3)
        s.write(season)
        return str(season), fx.tiny_registry().uri

    def start_job(self) -> float:
        t0 = time.monotonic()
        args = [sys.executable, "-m", "pipeline", "stream", "--inputs", self.inputs,
                *(["--registry", self.registry] if self.registry else []),
                "--game-date", self.date.isoformat(), "--warehouse", f"duckdb://{self.warehouse}",
                "--exports", str(self.exports), "--pubsub-emulator", self.host, "--pubsub-project", PROJECT,
                "--events-topic", self.topics["events"], "--events-subscription", self.topics["sub"],
                "--picks-changes-topic", self.topics["changes"], "--debounce-seconds", str(self.debounce)]
        self._log = open(self.workdir / "stream.log", "ab")  # noqa: SIM115 - closed in stop()
        self.job = subprocess.Popen(args, cwd=REPO, stdout=self._log, stderr=subprocess.STDOUT,
                                    start_new_session=True, env=dict(os.environ))
        log = self.workdir / "stream.log"
        while "running (Ctrl-C to stop)" not in log.read_text(errors="replace"):
            if self.job.poll() is not None:
                raise RuntimeError(log.read_text()[-3000:])
            time.sleep(0.3)
        time.sleep(3.0)
        return time.monotonic() - t0

    def cpu(self) -> float:
        """CPU seconds the job's processes have used so far (the job runs in its own session)."""
        return process_group_cpu(self.job.pid)

    def listen(self) -> None:
        from google.cloud import pubsub_v1

        from pipeline.io.pubsub import subscription_path

        self._subscriber = pubsub_v1.SubscriberClient()

        def callback(message):
            t = time.monotonic()
            message.ack()
            with self._cond:
                self.received.append((t, json.loads(message.data)))
                self._cond.notify_all()

        self._future = self._subscriber.subscribe(subscription_path(PROJECT, self.topics["csub"]), callback)

    def wait_change(self, predicate, timeout: float, *, after: float) -> tuple[float, dict] | None:
        """The first change received at or after ``after`` (monotonic) that satisfies ``predicate``."""
        deadline = time.monotonic() + timeout
        with self._cond:
            seen = 0
            while True:
                for t, doc in self.received[seen:]:
                    if t >= after and predicate(doc):
                        return t, doc
                seen = len(self.received)
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._cond.wait(left)

    def publisher(self):
        from pipeline.io import pubsub

        return pubsub.Publisher(PROJECT, self.topics["events"])

    def replay(self, *extra: str) -> None:
        from pipeline.commands import replay

        code = replay.main(["--inputs", self.inputs, "--date", self.date.isoformat(),
                            "--pubsub-emulator", self.host, "--pubsub-project", PROJECT,
                            "--events-topic", self.topics["events"], *extra])
        if code != 0:
            raise RuntimeError("replay failed")

    def drained(self, timeout: float = 600.0) -> float:
        """Publishes a malformed sentinel and waits until the job dead-letters it; returns the seconds
        (polled every 0.2 s).

        The bench reads a copy of the warehouse file, never the file itself: a DuckDB connection takes
        the file's lock for ~0.2 s and the job's writer waits for it (polling the file every 0.1 s held
        the lock most of the time and slowed the job several-fold). A copy taken mid-write fails to open
        or misses the sentinel; the next poll takes another."""
        import shutil

        import duckdb

        token = f"sentinel-{uuid.uuid4().hex}"
        pub = self.publisher()
        t0 = time.monotonic()
        pub.publish(token.encode(), {"kind": "odds"})
        pub.flush()
        copy = self.workdir / "probe.duckdb"
        while time.monotonic() - t0 < timeout:
            time.sleep(0.2)
            try:
                for suffix in ("", ".wal"):
                    src, dst = Path(f"{self.warehouse}{suffix}"), Path(f"{copy}{suffix}")
                    dst.unlink(missing_ok=True)
                    if src.exists():
                        shutil.copyfile(src, dst)
                con = duckdb.connect(str(copy), read_only=True)
                try:
                    n = con.execute("SELECT count(*) FROM dead_letters WHERE payload LIKE ?",
                                    [f"%{token}%"]).fetchone()[0]
                finally:
                    con.close()
                if n:
                    return time.monotonic() - t0
            except (duckdb.Error, OSError):
                pass
        raise RuntimeError("the stream did not drain")

    def stop(self) -> None:
        from pipeline.io import pubsub

        if getattr(self, "_future", None) is not None:
            self._future.cancel()
        if self.job is not None and self.job.poll() is None:
            os.killpg(self.job.pid, signal.SIGKILL)
            self.job.wait(timeout=30)
        if self.emulator_proc is not None:
            pubsub.stop_emulator(self.emulator_proc)


def _warehouse_rows(harness: StreamHarness, sql: str) -> list[tuple]:
    """Rows of a query on a copy of the job's warehouse (no lock on the job's file)."""
    import shutil

    import duckdb

    copy = harness.workdir / "query.duckdb"
    for suffix in ("", ".wal"):
        src, dst = Path(f"{harness.warehouse}{suffix}"), Path(f"{copy}{suffix}")
        dst.unlink(missing_ok=True)
        if src.exists():
            shutil.copyfile(src, dst)
    con = duckdb.connect(str(copy), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def pick_target(harness: StreamHarness, warm_until: dt.datetime, pub):
    """(player, snapshot of the selected book, line A, line B): publishing B then A alternately changes a
    pick every time.

    With a pick after the warm-up: the pick whose game tips off last, its line moved 0.5 in the direction
    that widens the edge and back (every move an ``updated``). Without one (the sample models make no
    pick on the 11-game night before its first tip-off: the largest consensus edge is under 5): the
    player with the largest positive consensus edge, his selected book's line lowered until the edge is
    about 6, which makes a pick (``created``), and back (``withdrawn``); the first of the top five
    candidates whose lowered line creates a pick within 10 s is used."""
    from pipeline.io.pubsub import message_for
    from pipeline.io.sources import read_local

    odds, _ = read_local(harness.inputs, "odds", [harness.date])
    path = harness.exports / "best-bets" / f"{harness.date.isoformat()}.json"
    doc = json.loads(path.read_text()) if path.exists() else {"picks": []}
    if doc["picks"]:
        pick = max(doc["picks"], key=lambda p: (str(p.get("tipoff_utc") or ""), p["player_lookup"]))
        snaps = [o for o in odds if o.player_lookup == pick["player_lookup"] and o.snapshot_ts <= warm_until]
        selected = [o for o in snaps if o.book == (pick.get("line_book") or "draftkings")] or snaps
        snap = max(selected, key=lambda o: o.snapshot_ts)
        step = -0.5 if pick["direction"] == "OVER" else 0.5
        return pick["player_lookup"], snap, snap.line, snap.line + step
    rows = _warehouse_rows(harness, """
        SELECT player_lookup, line_book, line_snapshot_ts, line, consensus_edge FROM consensus c
        WHERE line IS NOT NULL AND consensus_edge > 0 AND version = (SELECT max(version) FROM consensus d
              WHERE d.player_lookup = c.player_lookup AND d.game_id = c.game_id)
        ORDER BY consensus_edge DESC, player_lookup LIMIT 5""")
    for k, (player, book, ts, line, edge) in enumerate(rows):
        snap = next(o for o in odds if o.player_lookup == player and o.book == book
                    and o.snapshot_ts == ts.replace(tzinfo=dt.UTC))
        lowered = line - 0.5 * int(2 * (6.0 - edge) + 1)
        probe = snap._replace(line=lowered, snapshot_ts=warm_until + dt.timedelta(seconds=0.1 * (k + 1)))
        t0 = time.monotonic()
        pub.publish(*message_for("odds", probe))
        pub.flush()
        if harness.wait_change(lambda d, pl=player: d["player_lookup"] == pl, timeout=10.0, after=t0):
            return player, probe, lowered, line
        back = snap._replace(snapshot_ts=warm_until + dt.timedelta(seconds=0.1 * (k + 1) + 0.05))
        pub.publish(*message_for("odds", back))
        pub.flush()
    raise RuntimeError(f"no line move made a pick: candidates {rows}")


def percentile(sorted_values: list[float], q: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(round(q * (len(sorted_values) - 1))))]


def background_load(h: StreamHarness, rate: float, warm_until: dt.datetime, player: str,
                    stop: threading.Event, counter: list[int]) -> None:
    """Publishes the date's odds after ``warm_until`` and before the first tip-off (other players only:
    the target's own later snapshots would hide the moves; no game locks) at ``rate`` per second, in
    event-time order, repeating them when they run out."""
    from pipeline.commands.stream import day_events
    from pipeline.domain.schedule import latest_games
    from pipeline.io.pubsub import message_for

    events, _ = day_events(h.inputs, [h.date])
    tips = [g.tipoff_utc for g in latest_games([e.row for e in events if e.kind == "schedule"]).values()
            if g.tipoff_utc is not None]
    first_tip = min(tips) if tips else None
    odds = [e.row for e in events if e.kind == "odds" and e.row.player_lookup != player
            and e.row.snapshot_ts > warm_until and (first_tip is None or e.row.snapshot_ts < first_tip)]
    if not odds:
        return
    pub = h.publisher()
    t0, k = time.monotonic(), 0
    while not stop.is_set():
        pub.publish(*message_for("odds", odds[k % len(odds)]))
        k += 1
        counter[0] = k
        wait = t0 + k / rate - time.monotonic()
        if wait > 0:
            pub.flush()
            time.sleep(wait)
    pub.flush()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--moves", type=int, default=200)
    ap.add_argument("--debounce", type=float, default=0.2)
    ap.add_argument("--date", default="2026-02-22")
    ap.add_argument("--warm-until", default="2026-02-22T17:00:00Z")
    ap.add_argument("--inputs", default=None, help="default: the cached simulated season")
    ap.add_argument("--small", action="store_true", help="the small 2-game day and the tiny registry")
    ap.add_argument("--load", type=float, default=0.0,
                    help="odds updates per second of other players published during the moves")
    ap.add_argument("--emulator", default=None, help="use a running emulator HOST:PORT")
    args = ap.parse_args(argv)
    from pipeline.io.pubsub import message_for

    work = Path(tempfile.mkdtemp(prefix="bench-stream-latency-"))
    if args.small:
        h = StreamHarness(emulator=args.emulator, debounce=args.debounce, workdir=work)
        warm_until = WARM_UNTIL
    else:
        from pipeline.commands import common

        inputs = args.inputs or common.default_inputs(common.parse_options([]))
        h = StreamHarness(emulator=args.emulator, debounce=args.debounce, workdir=work, inputs=inputs,
                          date=dt.date.fromisoformat(args.date))
        warm_until = dt.datetime.fromisoformat(args.warm_until.replace("Z", "+00:00"))
    stop = threading.Event()
    try:
        startup = h.start_job()
        h.listen()
        c0, t0 = h.cpu(), time.monotonic()
        h.replay("--until", warm_until.isoformat().replace("+00:00", "Z"))
        published = time.monotonic() - t0
        warm = h.drained()
        print(f"job start {startup:.1f} s; warm-up replay of {h.date} up to {warm_until:%H:%M}Z published in "
              f"{published:.1f} s, read {warm:.1f} s after the last publish (the backlog); "
              f"{time.monotonic() - t0:.1f} s wall, {h.cpu() - c0:.1f} s CPU")
        time.sleep(2 * args.debounce + 1)
        pub = h.publisher()
        player, snap, line_a, line_b = pick_target(h, warm_until, pub)
        print(f"moving {player}'s {snap.book} line between {line_b} and {line_a}")
        sent = [0]
        if args.load > 0:
            threading.Thread(target=background_load, args=(h, args.load, warm_until, player, stop, sent),
                             daemon=True).start()
        latencies, missed, at = [], 0, []
        c0, t_moves = h.cpu(), time.monotonic()
        for i in range(args.moves):
            line = line_b if i % 2 == 0 else line_a
            moved = snap._replace(line=line, snapshot_ts=warm_until + dt.timedelta(seconds=i + 1))
            data, attrs = message_for("odds", moved)
            t0 = time.monotonic()
            pub.publish(data, attrs)
            pub.flush()
            got = h.wait_change(lambda d: d["player_lookup"] == player, timeout=10.0, after=t0)
            if got is None:
                missed += 1
                if missed <= 3:
                    tail = [(round(t - t0, 2), d["change"], d["line"], d["version"])
                            for t, d in h.received[-3:]]
                    print(f"  move {i} to {line}: no change in 10 s; last received {tail}")
                continue
            latencies.append(got[0] - t0)
            at.append((got[0] - t0, t0 - t_moves, i))
        stop.set()
        wall, cpu = time.monotonic() - t_moves, h.cpu() - c0
        lat = sorted(latencies)
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        load = (f"; {sent[0]} other odds updates published meanwhile ({sent[0] / wall:.0f}/s)"
                if args.load > 0 else "")
        print(f"moves {args.moves}, changes received {len(lat)}, missed {missed}; debounce {args.debounce} s"
              f"{load}; job {cpu:.1f} s CPU over {wall:.1f} s wall")
        if lat:
            print(f"latency line move -> picks-changes: p50 {statistics.median(lat) * 1000:.0f} ms, "
                  f"p95 {percentile(lat, 0.95) * 1000:.0f} ms, p99 {percentile(lat, 0.99) * 1000:.0f} ms, "
                  f"max {lat[-1] * 1000:.0f} ms (goal p95 <= 500 ms)")
            slow = ", ".join(f"#{i} at {t:.1f} s: {x * 1000:.0f} ms" for x, t, i in sorted(at)[::-1][:6])
            print(f"slowest moves (seconds after the first move): {slow}")
        if args.load > 0:
            print(f"backlog after the last publish: read {h.drained():.1f} s later")
        print(f"bench process peak RSS {peak_mb:.0f} MiB (the job runs in its own process)")
    finally:
        stop.set()
        h.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())

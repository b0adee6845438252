"""Benchmark: latency from publishing a line move to the pick change on the picks-changes topic.

Starts the Pub/Sub emulator (or uses ``--emulator HOST:PORT``), simulates a small day (4 teams, 2 games)
and trains the tiny test registry, starts ``props stream`` in a subprocess, replays the day up to an hour
before the first tip-off (warm state), then publishes ``--moves`` line moves one at a time for a player
with a pick: the selected book's line alternately moved 0.5 in the direction that widens the edge and
back, so every move changes the pick's line and edge and must produce an ``updated`` change. Measures
publish -> change received on a subscription of the picks-changes topic; prints p50 / p95 / max and peak
memory (resource.getrusage).

    .venv/bin/python bench/bench_stream_latency.py [--moves 200] [--debounce 0.2]

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
        """Publishes a malformed sentinel and waits until the job dead-letters it; returns the seconds.

        The warehouse is polled at growing intervals (0.2 s, 0.4 s, 0.8 s, then every 1 s): a DuckDB
        connection from this process takes the file's lock for ~0.2 s, and the job's writer waits for it
        (polling every 0.1 s held the lock most of the time and slowed the job several-fold)."""
        import duckdb

        token = f"sentinel-{uuid.uuid4().hex}"
        pub = self.publisher()
        t0 = time.monotonic()
        pub.publish(token.encode(), {"kind": "odds"})
        pub.flush()
        pause = 0.2
        while time.monotonic() - t0 < timeout:
            time.sleep(pause)
            pause = min(2 * pause, 1.0)
            try:
                con = duckdb.connect(str(self.warehouse), read_only=True)
                try:
                    n = con.execute("SELECT count(*) FROM dead_letters WHERE payload LIKE ?",
                                    [f"%{token}%"]).fetchone()[0]
                finally:
                    con.close()
                if n:
                    return time.monotonic() - t0
            except duckdb.Error:
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


def pick_target(harness: StreamHarness):
    """A current pick and the latest snapshot of its selected book (from the inputs, at WARM_UNTIL)."""
    from pipeline.io.sources import read_local

    doc = json.loads((harness.exports / "best-bets" / f"{DATE.isoformat()}.json").read_text())
    if not doc["picks"]:
        raise RuntimeError("no pick to move: the warm-up produced none")
    pick = doc["picks"][0]
    odds, _ = read_local(harness.inputs, "odds", [DATE])
    snaps = [o for o in odds if o.player_lookup == pick["player_lookup"] and o.snapshot_ts <= WARM_UNTIL]
    book = max(snaps, key=lambda o: o.snapshot_ts)
    selected = [o for o in snaps if o.book == "draftkings"] or snaps
    return pick, max(selected, key=lambda o: o.snapshot_ts) if selected else book


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--moves", type=int, default=200)
    ap.add_argument("--debounce", type=float, default=0.2)
    ap.add_argument("--emulator", default=None, help="use a running emulator HOST:PORT")
    args = ap.parse_args(argv)
    from pipeline.io.pubsub import message_for

    work = Path(tempfile.mkdtemp(prefix="bench-stream-latency-"))
    h = StreamHarness(emulator=args.emulator, debounce=args.debounce, workdir=work)
    try:
        startup = h.start_job()
        h.listen()
        h.replay("--until", WARM_UNTIL.isoformat().replace("+00:00", "Z"))
        warm = h.drained()
        time.sleep(2 * args.debounce + 1)
        pick, snap = pick_target(h)
        print(f"job start {startup:.1f} s; warm-up replay drained {warm:.1f} s after the last event; moving "
              f"{pick['player_lookup']} {pick['direction']} {snap.book} {snap.line}")
        pub = h.publisher()
        latencies, missed = [], 0
        for i in range(args.moves):
            step = -0.5 if pick["direction"] == "OVER" else 0.5  # a move that widens the edge
            line = snap.line + step if i % 2 == 0 else snap.line
            moved = snap._replace(line=line, snapshot_ts=WARM_UNTIL + dt.timedelta(seconds=i + 1))
            data, attrs = message_for("odds", moved)
            t0 = time.monotonic()
            pub.publish(data, attrs)
            pub.flush()
            got = h.wait_change(lambda d, ln=line: (d["player_lookup"] == pick["player_lookup"]
                                                    and d["line"] == ln), timeout=10.0, after=t0)
            if got is None:
                missed += 1
                if missed <= 3:
                    tail = [(round(t - t0, 2), d["change"], d["line"], d["version"])
                            for t, d in h.received[-3:]]
                    print(f"  move {i} to {line}: no change in 10 s; last received {tail}")
                continue
            latencies.append(got[0] - t0)
        lat = sorted(latencies)
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        if lat:
            p50 = statistics.median(lat)
            p95 = lat[min(len(lat) - 1, int(round(0.95 * (len(lat) - 1))))]
            print(f"moves {args.moves}, changes received {len(lat)}, missed {missed}; "
                  f"debounce {args.debounce} s")
            print(f"latency publish -> picks-changes: p50 {p50 * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms, "
                  f"max {lat[-1] * 1000:.0f} ms (goal p95 < 2000 ms)")
        else:
            print(f"no change received for {args.moves} moves")
        print(f"bench process peak RSS {peak_mb:.0f} MiB (the job runs in its own process)")
    finally:
        h.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())

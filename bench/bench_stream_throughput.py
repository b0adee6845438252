"""Benchmark: sustained odds updates per second the streaming job absorbs without a growing backlog.

Same set-up as bench_stream_latency.py (emulator, small simulated day, tiny registry, ``props stream``
in a subprocess). Publishes the day's odds snapshots (event times kept, ``event_ts`` near now) at each
offered rate of ``--rates`` for ``--seconds`` seconds, then publishes a malformed sentinel and measures how
long after the last publish the job has read everything (it dead-letters the sentinel). The job keeps up
with a rate when that lag stays small (it does not grow with the run's length); the absorbed rate is
messages / (publish time + lag). Prints one line per rate and the bench process's peak memory.

    .venv/bin/python bench/bench_stream_throughput.py [--rates 50,100,200,300] [--seconds 20]
"""

from __future__ import annotations

import argparse
import importlib.util
import resource
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
_spec = importlib.util.spec_from_file_location("bench_stream_latency", HERE / "bench_stream_latency.py")
harness_mod = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(harness_mod)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rates", default="50,100,200,300")
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--debounce", type=float, default=1.0)
    ap.add_argument("--emulator", default=None, help="use a running emulator HOST:PORT")
    args = ap.parse_args(argv)
    from pipeline.commands.stream import day_events
    from pipeline.io.pubsub import message_for

    work = Path(tempfile.mkdtemp(prefix="bench-stream-throughput-"))
    h = harness_mod.StreamHarness(emulator=args.emulator, debounce=args.debounce, workdir=work)
    try:
        startup = h.start_job()
        events, _ = day_events(h.inputs, [harness_mod.DATE])
        schedule = [e for e in events if e.kind == "schedule"]
        odds = [e for e in events if e.kind == "odds"]
        pub = h.publisher()
        for ev in schedule:  # the games exist before their odds arrive
            pub.publish(*message_for(ev.kind, ev.row))
        pub.flush()
        print(f"job start {startup:.1f} s; {len(odds)} odds snapshots of {harness_mod.DATE} to cycle through")
        i = 0
        for rate in [float(r) for r in args.rates.split(",")]:
            n = int(rate * args.seconds)
            t0 = time.monotonic()
            for k in range(n):
                ev = odds[i % len(odds)]
                i += 1
                pub.publish(*message_for("odds", ev.row))
                wait = t0 + (k + 1) / rate - time.monotonic()
                if wait > 0:
                    pub.flush()
                    time.sleep(wait)
            pub.flush()
            published_s = time.monotonic() - t0
            lag = h.drained()
            absorbed = n / (published_s + lag)
            verdict = "keeps up" if lag < 3.0 else "backlog grows"
            print(f"offered {rate:.0f}/s: {n} msgs published in {published_s:.1f} s, drained {lag:.1f} s "
                  f"after the last publish -> absorbed {absorbed:.0f}/s ({verdict})")
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"bench process peak RSS {peak_mb:.0f} MiB (the job runs in its own process); goal >= 300/s")
    finally:
        h.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())

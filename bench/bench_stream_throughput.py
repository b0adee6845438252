"""Benchmark: sustained odds updates per second the streaming job absorbs without a growing backlog.

Same set-up as bench_stream_latency.py (emulator, ``props stream`` in a subprocess). By default on the
11-game night (``--date 2026-02-22`` of the cached simulated season, the packaged sample models;
``--small`` for the old 2-game day with the tiny registry). Publishes the date's schedule and injury
events, then its odds snapshots in event-time order (event times kept) at each offered rate of
``--rates`` for ``--seconds`` seconds, then publishes a malformed sentinel and measures how long after the
last publish the job has read everything (it dead-letters the sentinel): the backlog. The job keeps up
with a rate when that lag stays small (it does not grow with the run's length); the absorbed rate is
messages / (publish time + lag). Prints one line per rate with the job's CPU time beside the wall time.

    .venv/bin/python bench/bench_stream_throughput.py [--rates 500,1000,1500] [--seconds 10]
    .venv/bin/python bench/bench_stream_throughput.py --small --rates 100,200,300,400 --seconds 15
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
    ap.add_argument("--rates", default="500,1000,1500")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--debounce", type=float, default=1.0)
    ap.add_argument("--date", default="2026-02-22")
    ap.add_argument("--inputs", default=None, help="default: the cached simulated season")
    ap.add_argument("--small", action="store_true", help="the small 2-game day and the tiny registry")
    ap.add_argument("--emulator", default=None, help="use a running emulator HOST:PORT")
    args = ap.parse_args(argv)
    import datetime as dt

    from pipeline.commands.stream import day_events
    from pipeline.io.pubsub import message_for

    work = Path(tempfile.mkdtemp(prefix="bench-stream-throughput-"))
    if args.small:
        h = harness_mod.StreamHarness(emulator=args.emulator, debounce=args.debounce, workdir=work)
    else:
        from pipeline.commands import common

        inputs = args.inputs or common.default_inputs(common.parse_options([]))
        h = harness_mod.StreamHarness(emulator=args.emulator, debounce=args.debounce, workdir=work,
                                      inputs=inputs, date=dt.date.fromisoformat(args.date))
    try:
        startup = h.start_job()
        events, _ = day_events(h.inputs, [h.date])
        first = [e for e in events if e.kind != "odds"]
        odds = [e for e in events if e.kind == "odds"]
        pub = h.publisher()
        c0, t0 = h.cpu(), time.monotonic()
        for ev in first:  # the games (and injuries) exist before their odds arrive
            pub.publish(*message_for(ev.kind, ev.row))
        pub.flush()
        h.drained()
        print(f"job start {startup:.1f} s; {len(first)} schedule and injury events read in "
              f"{time.monotonic() - t0:.1f} s wall, {h.cpu() - c0:.1f} s CPU (the date's reference data "
              f"loaded); {len(odds)} odds snapshots of {h.date} to publish in event-time order")
        i = 0
        for rate in [float(r) for r in args.rates.split(",")]:
            n = int(rate * args.seconds)
            if i + n > len(odds):
                print(f"  (the date has {len(odds)} snapshots: from here they repeat, as duplicates)")
            c0, t0 = h.cpu(), time.monotonic()
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
            wall, cpu = time.monotonic() - t0, h.cpu() - c0
            absorbed = n / (published_s + lag)
            verdict = "keeps up" if lag < 3.0 else "backlog grows"
            print(f"offered {rate:.0f}/s: {n} msgs published in {published_s:.1f} s, backlog read "
                  f"{lag:.1f} s after the last publish -> absorbed {absorbed:.0f}/s ({verdict}); job "
                  f"{cpu:.1f} s CPU over {wall:.1f} s wall")
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"bench process peak RSS {peak_mb:.0f} MiB (the job runs in its own process); goal >= 1,000/s")
    finally:
        h.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())

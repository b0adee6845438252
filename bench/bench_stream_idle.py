"""Benchmark: CPU an idle local ``props stream`` burns (no messages), fresh and after a replayed night.

Starts the Pub/Sub emulator, starts ``props stream`` on the cached simulated season with the sample models
(``--inputs``: default ``./data/sim/2025-26-seed-42``, simulated on first use) in a subprocess, waits until
it runs, then measures the CPU time (user + system, every process of the job) over ``--seconds`` of wall
time with nothing published. With ``--replay-until TS`` it first replays ``--date`` up to TS (as fast as
possible), waits until the job has read everything, and measures the idle job holding that night's state
(keys, timers). Prints CPU seconds per wall second as a share of one core (goal: under 10 %).

    .venv/bin/python bench/bench_stream_idle.py [--seconds 60]
    .venv/bin/python bench/bench_stream_idle.py --date 2026-02-22 --replay-until 2026-02-22T17:00:00Z
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
_spec = importlib.util.spec_from_file_location("bench_stream_latency", HERE / "bench_stream_latency.py")
harness_mod = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(harness_mod)


def season_inputs(inputs: str | None) -> str:
    """--inputs, or the cached simulated season of the local default (simulated on first use)."""
    if inputs:
        return inputs
    from pipeline.commands import common

    return common.default_inputs(common.parse_options([]))


def measure_idle(h, seconds: float) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the job) over ``seconds`` with nothing published."""
    c0, t0 = h.cpu(), time.monotonic()
    time.sleep(seconds)
    return time.monotonic() - t0, h.cpu() - c0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--inputs", default=None, help="default: the cached simulated season")
    ap.add_argument("--date", default="2026-02-22")
    ap.add_argument("--replay-until", default=None, help="replay --date up to this time first")
    ap.add_argument("--debounce", type=float, default=1.0)
    ap.add_argument("--emulator", default=None, help="use a running emulator HOST:PORT")
    args = ap.parse_args(argv)
    date = dt.date.fromisoformat(args.date)
    work = Path(tempfile.mkdtemp(prefix="bench-stream-idle-"))
    h = harness_mod.StreamHarness(emulator=args.emulator, debounce=args.debounce, workdir=work,
                                  inputs=season_inputs(args.inputs), date=date)
    try:
        startup = h.start_job()
        print(f"job start {startup:.1f} s (wall), {h.cpu():.1f} s CPU")
        if args.replay_until:
            c0, t0 = h.cpu(), time.monotonic()
            h.replay("--until", args.replay_until)
            published = time.monotonic() - t0
            lag = h.drained()
            print(f"replayed {date} up to {args.replay_until}: published in {published:.1f} s, read "
                  f"{lag:.1f} s after the last publish; {time.monotonic() - t0:.1f} s wall, "
                  f"{h.cpu() - c0:.1f} s CPU")
            time.sleep(2 * args.debounce + 2)
        wall, cpu = measure_idle(h, args.seconds)
        state = "after the replay" if args.replay_until else "fresh"
        print(f"idle job ({state}): {cpu:.2f} s CPU over {wall:.1f} s wall = {100 * cpu / wall:.1f} % of "
              f"one core (goal < 10 %)")
    finally:
        h.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark: a full simulated season as ``props simulate`` does it (generation, files, realism report
with its model bands). Prints wall times, peak RSS and row counts.

Run: ``.venv/bin/python bench/bench_simulate.py [--seed 42] [--out /tmp/sim-bench]``. Target: < 120 s.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import tempfile
import time

from sim.realism import format_report, realism_report
from sim.season import simulate


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    out = args.out or tempfile.mkdtemp(prefix="sim-bench-")
    t0 = time.perf_counter()
    sim = simulate(seed=args.seed)
    t1 = time.perf_counter()
    sim.write(out)
    t2 = time.perf_counter()
    report = realism_report(sim)
    t3 = time.perf_counter()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(format_report(report))
    print(f"generate_s={t1 - t0:.1f} write_s={t2 - t1:.1f} realism_s={t3 - t2:.1f} total_s={t3 - t0:.1f} "
          f"peak_rss_mb={peak:.0f}")
    print("rows", sim.meta["counts"])
    if args.out is None:
        shutil.rmtree(out)


if __name__ == "__main__":
    main()

"""Benchmark: a full simulated season (generation + files). Prints wall time, peak RSS and row counts.

Run: ``.venv/bin/python bench/bench_simulate.py [--seed 7] [--out /tmp/sim-bench]``. Target: < 120 s.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import tempfile
import time

from sim.season import simulate


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    out = args.out or tempfile.mkdtemp(prefix="sim-bench-")
    t0 = time.perf_counter()
    sim = simulate(seed=args.seed)
    t1 = time.perf_counter()
    sim.write(out)
    t2 = time.perf_counter()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"generate_s={t1 - t0:.1f} write_s={t2 - t1:.1f} total_s={t2 - t0:.1f} peak_rss_mb={peak:.0f}")
    print("rows", sim.meta["counts"])
    if args.out is None:
        shutil.rmtree(out)


if __name__ == "__main__":
    main()

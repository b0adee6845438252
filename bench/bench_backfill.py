"""Benchmark: `props backfill` over the simulated season (issue 4: goal under 30 minutes).

    .venv/bin/python bench/bench_backfill.py [--start 2025-10-21] [--end 2026-04-12] [--dates-per-pipeline 14]

Runs the real command in a subprocess against a fresh DuckDB warehouse and export folder, streams its
progress lines, and prints wall time, peak memory and player-games per second. Printed, never asserted.
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--start", default="2025-10-21")
    ap.add_argument("--end", default="2026-04-12")
    ap.add_argument("--dates-per-pipeline", default="14")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-backfill-"))
    cmd = [
        str(ROOT / ".venv" / "bin" / "props"),
        "backfill",
        "--start",
        args.start,
        "--end",
        args.end,
        "--dates-per-pipeline",
        args.dates_per_pipeline,
        "--warehouse",
        str(work / "props.duckdb"),
        "--exports",
        str(work / "exports"),
    ]
    print("$ " + " ".join(cmd), flush=True)
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    summary = []
    for line in proc.stdout:
        print("  " + line.rstrip(), flush=True)
        summary.append(line)
    code = proc.wait()
    wall = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    pg = next((ln for ln in summary if ln.startswith("player-games per second")), "")
    print(
        f"\nbackfill {args.start}..{args.end}: exit {code}, wall {wall / 60:.1f} min (goal < 30 min), "
        f"peak {peak:.0f} MB; {pg.strip()}"
    )
    return code


if __name__ == "__main__":
    sys.exit(main())

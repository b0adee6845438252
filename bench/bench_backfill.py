"""Benchmark: `props backfill` over the first 30, 80 and all 167 game dates of the simulated season.

    .venv/bin/python bench/bench_backfill.py [--dates 30,80,167] [--dates-per-pipeline 14]

Runs the real command in a subprocess per size, each against a fresh DuckDB warehouse and export folder,
and prints per size: wall time, CPU time (user + sys of the process tree: the machine is shared, so CPU
is the steadier figure), peak memory (the process's max RSS) and player-games per second (the command's
own figure, and player-games per wall second of the whole process). Goals (issue 14): >= 300
player-games/s, peak <= 1.5 GiB, memory flat in the number of dates. Printed, never asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SEASON = ROOT / "data" / "sim" / "2025-26-seed-42"


def game_dates() -> list[str]:
    """The season's game dates (the simulated season's manifest; simulated first if missing)."""
    if not (SEASON / "manifest.json").exists():
        subprocess.run([sys.executable, "-c", "from pipeline.commands import common; "
                        "common.default_inputs(common.parse_options([]))"], cwd=ROOT, check=True)
    return sorted(json.loads((SEASON / "manifest.json").read_text())["dates"])


def run_backfill(start: str, end: str, per: str) -> dict:
    work = Path(tempfile.mkdtemp(prefix="bench-backfill-"))
    cmd = [str(ROOT / ".venv" / "bin" / "props"), "backfill", "--start", start, "--end", end,
           "--dates-per-pipeline", per, "--warehouse", str(work / "props.duckdb"),
           "--exports", str(work / "exports")]
    print("$ " + " ".join(cmd), flush=True)
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=dict(os.environ, NO_GCE_CHECK="true"))
    lines = []
    for line in proc.stdout:
        print("  " + line.rstrip(), flush=True)
        lines.append(line)
    _, status, usage = os.wait4(proc.pid, 0)  # this child's own rusage: CPU and max RSS
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - started
    summary = next((ln for ln in lines if ln.startswith("backfill ")), "")
    players = int(summary.split("players ")[1].split(",")[0]) if "players " in summary else 0
    rate = next((ln.split(":")[1].strip() for ln in lines if ln.startswith("player-games per second")), "?")
    return {"exit": proc.returncode, "wall": wall, "cpu": usage.ru_utime + usage.ru_stime,
            "peak_mb": usage.ru_maxrss / 1024, "players": players, "rate": rate}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dates", default="30,80,167", help="numbers of game dates from the season start")
    ap.add_argument("--dates-per-pipeline", default="14")
    args = ap.parse_args()
    dates = game_dates()
    results = []
    for n in [int(x) for x in args.dates.split(",")]:
        chosen = dates[:n]
        r = run_backfill(chosen[0], chosen[-1], args.dates_per_pipeline)
        r["n"] = len(chosen)
        results.append(r)
    print()
    for r in results:
        print(f"backfill {r['n']:3d} dates: exit {r['exit']}, wall {r['wall']:.0f} s, CPU {r['cpu']:.0f} s, "
              f"peak {r['peak_mb']:.0f} MB, {r['players']} player-games: {r['rate']} player-games/s "
              f"(command), {r['players'] / r['wall']:.0f}/s per process wall second, "
              f"{r['players'] / r['cpu']:.0f}/s per CPU second (goal >= 300/s, peak <= 1536 MB)")
    return max(r["exit"] for r in results)


if __name__ == "__main__":
    sys.exit(main())

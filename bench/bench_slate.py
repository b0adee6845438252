"""Benchmark: the busiest simulated slate end to end through ``props run``, against the pandas floor.

    .venv/bin/python bench/bench_slate.py [--game-date D] [--repeat 2] [--registry PATH]

Prints wall time (process start included: imports, Beam start, graph build, run), peak memory, the time
split between reading (parse of every input file), scoring (RunInference batch latency) and writing
(warehouse transaction + exports), then the same slate computed by ``bench/slate_floor.py`` (plain
pandas + CatBoost, no Beam: the floor) and the ratio. Goal (issue 4): under 20 s wall for the 11-game
slate on this 2-core machine. Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _peak_mb_children() -> float:
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def run_in_process(argv: list[str]) -> dict:
    """One `props run` in this process with phase timings and Beam metrics."""
    t0 = time.perf_counter()
    import apache_beam as beam
    from apache_beam.metrics.metric import MetricsFilter

    from pipeline.commands import common, run
    from pipeline.graph import build_pipeline

    common.prepare_local_environment()
    t_import = time.perf_counter()
    options = common.parse_options(argv)
    warehouse = run.open_warehouse(options)
    plan = run.build_plan(options, command="run", warehouse=warehouse)
    t_plan = time.perf_counter()
    p = beam.Pipeline(options=options)
    build_pipeline(p, plan)
    t_build = time.perf_counter()
    result = p.run()
    result.wait_until_finish()
    t_run = time.perf_counter()
    dists = {}
    for d in result.metrics().query(MetricsFilter())["distributions"]:
        v = d.committed or d.attempted
        if v is not None:
            dists.setdefault(d.key.metric.name, 0)
            dists[d.key.metric.name] += v.sum
    counts = common.summary_counts(common.metric_counts(result))
    return {
        "date": plan.dates[0],
        "games": len(plan.date_plans[plan.dates[0]].games),
        "models": len(plan.models),
        "imports_s": t_import - t0,
        "plan_s": t_plan - t_import,
        "build_s": t_build - t_plan,
        "run_s": t_run - t_build,
        "total_s": t_run - t0,
        "read_s": dists.get("read_ms", 0) / 1000,
        "score_s": dists.get("inference_batch_latency_micro_secs", 0) / 1e6,
        "write_s": dists.get("write_ms", 0) / 1000,
        "counts": counts,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--game-date", default=None)
    ap.add_argument("--registry", default=None)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--in-process", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-slate-"))
    argv = ["--warehouse", str(work / "props.duckdb"), "--exports", str(work / "exports")]
    if args.game_date:
        argv += ["--game-date", args.game_date]
    if args.registry:
        argv += ["--registry", args.registry]
    if args.in_process:
        import json

        r = run_in_process(argv)
        r["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print("RESULT " + json.dumps(r, default=str))
        return 0

    import json

    # Make sure the simulated season exists before timing anything (first use simulates it).
    subprocess.run(
        [
            sys.executable,
            "-c",
            "from pipeline.commands import common; "
            "from pipeline.commands.common import parse_options; "
            "print(common.default_inputs(parse_options([])))",
        ],
        check=True,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
    )
    results = []
    for i in range(args.repeat):
        started = time.perf_counter()
        out = subprocess.run(
            [sys.executable, __file__, "--in-process", *sys.argv[1:]],
            cwd=ROOT,
            capture_output=True,
            text=True,
            env=dict(os.environ, NO_GCE_CHECK="true"),
        )
        wall = time.perf_counter() - started
        line = next((ln for ln in out.stdout.splitlines() if ln.startswith("RESULT ")), None)
        if line is None:
            print(out.stdout[-2000:], out.stderr[-4000:])
            return 1
        r = json.loads(line[len("RESULT ") :])
        r["wall_s"] = wall
        results.append(r)
        c = r["counts"]
        print(
            f"run {i + 1}: {r['date']} ({r['games']} games, {r['models']} models)  wall {wall:.1f} s  "
            f"[imports {r['imports_s']:.1f} | plan {r['plan_s']:.1f} | graph {r['build_s']:.1f} | "
            f"pipeline {r['run_s']:.1f}]  peak {r['peak_mb']:.0f} MB"
        )
        print(
            f"       inside the pipeline: reading {r['read_s']:.2f} s, scoring {r['score_s']:.2f} s, "
            f"writing {r['write_s']:.2f} s;  players {c['players']} viable {c['viable']} "
            f"predictions {c['predictions']} picks {c['picks']} dead letters {c['dead_letters']}"
        )
    best = min(results, key=lambda r: r["wall_s"])
    floor_cmd = [sys.executable, str(ROOT / "bench" / "slate_floor.py"), "--game-date", str(best["date"])]
    if args.registry:
        floor_cmd += ["--registry", args.registry]
    started = time.perf_counter()
    out = subprocess.run(floor_cmd, cwd=ROOT, capture_output=True, text=True)
    floor_wall = time.perf_counter() - started
    print(out.stdout.strip())
    if out.returncode != 0:
        print(out.stderr[-3000:])
    print(
        f"\nslate {best['date']}: best wall {best['wall_s']:.1f} s (goal < 20 s); pandas floor "
        f"{floor_wall:.1f} s wall; ratio {best['wall_s'] / floor_wall:.1f}x"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark: one slate end to end through ``props run``, paired with its floors in the same run.

    .venv/bin/python bench/bench_slate.py [--game-date 2026-02-22] [--repeat 5] [--registry PATH]

Each round runs, in rotating order, three processes: ``props run`` for the slate (against one DuckDB
warehouse and export folder, so rounds after the first re-run the date as a scheduler would), the
minimal Beam pipeline (``bench/beam_floor.py``) and the pandas + CatBoost floor (``bench/slate_floor.py``).
It prints per process wall time and CPU time (user + sys of the process tree), their medians over the
rounds, and the slate's ratio to (Beam minimum + pandas floor), wall and CPU: the machine is shared, so
CPU is the steadier figure. One extra in-process run prints where the slate's time goes (imports, plan,
graph, pipeline; reading, scoring, writing inside the pipeline). Goal (issue 14): <= 4.0 s wall median
for the 11-game slate. Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
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
    with common.warehouse_session(warehouse):  # as `props run` plans: one connection for its reads
        plan = run.build_plan(options, command="run", warehouse=warehouse)
    t_plan = time.perf_counter()
    p = beam.Pipeline(options=options)
    build_pipeline(p, plan)
    t_build = time.perf_counter()
    c_build = time.process_time()
    result = p.run()
    result.wait_until_finish()
    t_run = time.perf_counter()
    c_run = time.process_time()
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
        "run_cpu_s": c_run - c_build,
        "total_s": t_run - t0,
        "read_s": dists.get("read_ms", 0) / 1000,
        "score_s": dists.get("inference_batch_latency_micro_secs", 0) / 1e6,
        "write_s": dists.get("write_ms", 0) / 1000,
        "counts": counts,
    }


def _timed(cmd: list[str], env: dict) -> tuple[float, float, str]:
    """(wall s, CPU s of the child process tree, stdout) of one process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{out.stdout[-2000:]}\n{out.stderr[-4000:]}")
    return wall, cpu, out.stdout


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--game-date", default="2026-02-22")
    ap.add_argument("--registry", default=None)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--in-process", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-slate-"))
    argv = ["--warehouse", str(work / "props.duckdb"), "--exports", str(work / "exports"),
            "--game-date", args.game_date]
    if args.registry:
        argv += ["--registry", args.registry]
    if args.in_process:
        import json

        r = run_in_process(argv)
        r["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print("RESULT " + json.dumps(r, default=str))
        return 0

    import json

    env = dict(os.environ, NO_GCE_CHECK="true")
    # Make sure the simulated season exists before timing anything (first use simulates it).
    subprocess.run(
        [sys.executable, "-c", "from pipeline.commands import common; "
         "print(common.default_inputs(common.parse_options([])))"],
        check=True, cwd=ROOT, stdout=subprocess.DEVNULL, env=env,
    )
    props = [str(ROOT / ".venv" / "bin" / "props"), "run", *argv]
    floor = [sys.executable, str(ROOT / "bench" / "slate_floor.py"), "--game-date", args.game_date]
    if args.registry:
        floor += ["--registry", args.registry]
    commands = {
        "slate": props,
        "beam_min": [sys.executable, str(ROOT / "bench" / "beam_floor.py")],
        "pandas_floor": floor,
    }
    _timed(props, env)  # warm-up: creates the warehouse; not counted
    walls: dict[str, list[float]] = {k: [] for k in commands}
    cpus: dict[str, list[float]] = {k: [] for k in commands}
    names = list(commands)
    for i in range(args.repeat):
        order = names[i % 3:] + names[: i % 3]  # rotate, so no process always runs first
        line = []
        for name in order:
            wall, cpu, _ = _timed(commands[name], env)
            walls[name].append(wall)
            cpus[name].append(cpu)
            line.append(f"{name} {wall:.2f} s wall / {cpu:.2f} s CPU")
        print(f"round {i + 1}: " + ";  ".join(line), flush=True)

    # Where the time goes: one in-process run with phase timings and Beam's distributions.
    out = subprocess.run([sys.executable, __file__, "--in-process", *sys.argv[1:]], cwd=ROOT,
                         capture_output=True, text=True, env=env)
    result = next((ln for ln in out.stdout.splitlines() if ln.startswith("RESULT ")), None)
    if result is None:
        print(out.stdout[-2000:], out.stderr[-4000:])
        return 1
    r = json.loads(result[len("RESULT "):])
    c = r["counts"]
    print(
        f"\nin-process run: {r['date']} ({r['games']} games, {r['models']} models): imports "
        f"{r['imports_s']:.2f} s | plan {r['plan_s']:.2f} s | graph {r['build_s']:.2f} s | pipeline "
        f"{r['run_s']:.2f} s (CPU {r['run_cpu_s']:.2f} s) | peak {r['peak_mb']:.0f} MB;  "
        f"inside the pipeline: reading {r['read_s']:.2f} s, scoring {r['score_s']:.2f} s, "
        f"writing {r['write_s']:.2f} s;  players "
        f"{c['players']} viable {c['viable']} predictions {c['predictions']} picks {c['picks']} dead letters "
        f"{c['dead_letters']}"
    )
    med_w = {k: _median(v) for k, v in walls.items()}
    med_c = {k: _median(v) for k, v in cpus.items()}
    base_w = med_w["beam_min"] + med_w["pandas_floor"]
    base_c = med_c["beam_min"] + med_c["pandas_floor"]
    print(
        f"\nslate {args.game_date}, median of {args.repeat} paired rounds: props run "
        f"{med_w['slate']:.2f} s wall (goal <= 4.0 s) / {med_c['slate']:.2f} s CPU;  "
        f"Beam minimum {med_w['beam_min']:.2f} s / "
        f"{med_c['beam_min']:.2f} s CPU;  pandas floor {med_w['pandas_floor']:.2f} s / "
        f"{med_c['pandas_floor']:.2f} s CPU\n"
        f"ratio slate / (Beam minimum + pandas floor): {med_w['slate'] / base_w:.2f}x wall, "
        f"{med_c['slate'] / base_c:.2f}x CPU"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

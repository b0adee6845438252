"""Benchmark: a slate at 10x scale (ten leagues on one date) against the same slate at 1x.

    .venv/bin/python bench/bench_scale.py [--game-date 2026-02-22] [--leagues 10] [--repeat 1]

The load comes from the simulated season (``data/sim/``, simulated on first use): for the date, its
schedule, odds, feature rows and injury reports, and the box scores of every earlier date, are copied
``--leagues`` times, each copy a separate league (team codes get the league's digit, ``ATL`` -> ``ATL3``,
so game ids differ; player ids get ``l3``). The 1x input is the same rewrite with one league, so both runs
take the same code path. Each size runs ``props run --inputs DIR --game-date D`` in a fresh warehouse, in
alternating order; printed per run: wall time, CPU time (user + sys of the process tree) and peak memory
(max RSS); then the 10x / 1x ratios. Goal (issue 14): time within 12x and memory within 3x of the 1x
run. Printed, never asserted.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SEASON = ROOT / "data" / "sim" / "2025-26-seed-42"
PLAYER_FIELDS = ("player_lookup",)
TEAM_FIELDS = ("team_abbr", "opponent_team_abbr", "home_team", "away_team")


def _league_game_id(game_id: str, league: int) -> str:
    day, away, home = game_id.split("_")
    return f"{day}_{away}{league}_{home}{league}"


def _rewrite(record: dict, league: int) -> dict:
    out = dict(record)
    for f in PLAYER_FIELDS:
        if out.get(f):
            out[f] = f"{out[f]}l{league}"
    for f in TEAM_FIELDS:
        if out.get(f):
            out[f] = f"{out[f]}{league}"
    if out.get("game_id"):
        out["game_id"] = _league_game_id(out["game_id"], league)
    if out.get("player_name"):
        out["player_name"] = f"{out['player_name']} L{league}"
    return out


def _copy_parquet(src: Path, dst: Path, leagues: int) -> None:
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pq.read_table(src)
    frames = []
    for league in range(leagues):
        df = table.to_pandas()
        for f in PLAYER_FIELDS:
            if f in df:
                df[f] = df[f] + f"l{league}"
        for f in TEAM_FIELDS:
            if f in df:
                df[f] = df[f] + str(league)
        if "game_id" in df:
            df["game_id"] = df["game_id"].map(lambda g, lg=league: _league_game_id(g, lg))
        if "player_name" in df:
            df["player_name"] = df["player_name"] + f" L{league}"
        frames.append(df)
    out = pa.Table.from_pandas(pd.concat(frames, ignore_index=True), schema=table.schema,
                               preserve_index=False)
    dst.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(out, dst)


def _copy_jsonl(src: Path, dst: Path, leagues: int) -> None:
    records = [json.loads(line) for line in src.read_text().splitlines() if line.strip()]
    dst.parent.mkdir(parents=True, exist_ok=True)
    with dst.open("w") as f:
        for league in range(leagues):
            for r in records:
                f.write(json.dumps(_rewrite(r, league)) + "\n")


def make_inputs(out: Path, game_date: dt.date, leagues: int) -> Path:
    """Writes the ``leagues``-fold input folder for ``game_date`` (see the module docstring)."""
    for kind in ("schedule", "odds", "features", "injuries", "box_scores"):
        for part_dir in sorted((SEASON / kind).glob("game_date=*")):
            day = dt.date.fromisoformat(part_dir.name.split("=")[1])
            if day > game_date or (day < game_date and kind != "box_scores"):
                continue
            for src in sorted(part_dir.glob("part-*")):
                dst = out / kind / part_dir.name / src.name
                if src.suffix == ".parquet":
                    _copy_parquet(src, dst, leagues)
                else:
                    _copy_jsonl(src, dst, leagues)
    return out


def run_slate(inputs: Path, game_date: str, work: Path) -> dict:
    cmd = ["/usr/bin/time", "-f", "TIME %e %U %S %M", str(ROOT / ".venv" / "bin" / "props"), "run",
           "--inputs", str(inputs), "--game-date", game_date,
           "--warehouse", str(work / "props.duckdb"), "--exports", str(work / "exports")]
    env = dict(os.environ, NO_GCE_CHECK="true")
    p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=env)
    timing = [ln for ln in p.stderr.splitlines() if ln.startswith("TIME ")]
    if p.returncode != 0 or not timing:
        raise RuntimeError(f"props run failed:\n{p.stdout[-2000:]}\n{p.stderr[-4000:]}")
    wall, user, sys_, rss_kb = map(float, timing[-1].split()[1:])
    summary = next((ln for ln in p.stdout.splitlines() if ln.startswith("run ")), "")
    return {"wall": wall, "cpu": user + sys_, "peak_mb": rss_kb / 1024, "summary": summary}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--game-date", default="2026-02-22")
    ap.add_argument("--leagues", type=int, default=10)
    ap.add_argument("--repeat", type=int, default=1)
    args = ap.parse_args()
    if not (SEASON / "manifest.json").exists():
        subprocess.run([sys.executable, "-c", "from pipeline.commands import common; "
                        "common.default_inputs(common.parse_options([]))"], cwd=ROOT, check=True)
    game_date = dt.date.fromisoformat(args.game_date)
    tmp = Path(tempfile.mkdtemp(prefix="bench-scale-"))
    started = time.perf_counter()
    inputs = {1: make_inputs(tmp / "inputs-1x", game_date, 1),
              args.leagues: make_inputs(tmp / f"inputs-{args.leagues}x", game_date, args.leagues)}
    print(f"inputs written in {time.perf_counter() - started:.0f} s under {tmp}", flush=True)
    results: dict[int, list[dict]] = {1: [], args.leagues: []}
    for i in range(args.repeat):
        for n in ([1, args.leagues] if i % 2 == 0 else [args.leagues, 1]):
            r = run_slate(inputs[n], args.game_date, tmp / f"run-{n}x-{i}")
            results[n].append(r)
            print(f"{n:2d}x: wall {r['wall']:.1f} s, CPU {r['cpu']:.1f} s, peak {r['peak_mb']:.0f} MB;  "
                  f"{r['summary']}", flush=True)
    med = {n: {k: statistics.median(r[k] for r in rs) for k in ("wall", "cpu", "peak_mb")}
           for n, rs in results.items()}
    one, big = med[1], med[args.leagues]
    print(f"\n{args.leagues}x / 1x ({args.game_date}, median of {args.repeat}): "
          f"wall {big['wall']:.1f} / {one['wall']:.1f} s = {big['wall'] / one['wall']:.1f}x, "
          f"CPU {big['cpu']:.1f} / {one['cpu']:.1f} s = {big['cpu'] / one['cpu']:.1f}x (goal within 12x); "
          f"peak {big['peak_mb']:.0f} / {one['peak_mb']:.0f} MB = {big['peak_mb'] / one['peak_mb']:.1f}x "
          f"(goal within 3x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

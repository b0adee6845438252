"""Benchmark: ``props grade`` over a range of simulated dates: the grading Beam job (bulk reads, grading,
model performance, one-transaction write, exports) on the local FnApiRunner.

Simulates a league window (``sim.simulate``), writes its input files, and fills a fresh DuckDB warehouse
with synthetic predictions (``--models`` models for every player-game that has odds, predicted points =
closing line + noise, one line snapshot each) and picks (the ~3 % largest edges per date). It then times
``grade_dates`` over the whole range, once cold and once again (re-grade), and prints wall time per phase,
rows graded per second and peak RSS (``resource.getrusage``). Nothing is asserted.

    .venv/bin/python bench/bench_grade.py [--days 30] [--models 10] [--teams 30]
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import tempfile
import time

os.environ.setdefault("NO_GCE_CHECK", "true")

from pipeline.commands.grade import grade_dates  # noqa: E402
from pipeline.io.warehouse import open_warehouse  # noqa: E402
from pipeline.policy import load_policy  # noqa: E402
from pipeline.schemas import Pick, Prediction  # noqa: E402

TEAMS = ("ATL", "BOS", "BKN", "CHA", "CHI", "CLE", "DAL", "DEN", "DET", "GSW", "HOU", "IND", "LAC", "LAL",
         "MEM", "MIA", "MIL", "MIN", "NOP", "NYK", "OKC", "ORL", "PHI", "PHX", "POR", "SAC", "SAS", "TOR",
         "UTA", "WAS")


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def synthetic_rows(season, n_models: int, seed: int = 1) -> tuple[list[Prediction], list[Pick]]:
    rng = random.Random(seed)
    latest: dict[tuple, object] = {}
    for o in season.odds:
        if o.book == "draftkings" and 5 <= o.line <= 70:
            k = (o.game_date, o.game_id, o.player_lookup)
            if k not in latest or o.snapshot_ts > latest[k].snapshot_ts:
                latest[k] = o
    preds, by_date = [], {}
    for (d, game_id, player), o in sorted(latest.items()):
        edges = []
        for m in range(n_models):
            predicted = round(max(0.0, o.line + rng.gauss(0, 4)), 1)
            edge = round(predicted - o.line, 1)
            rec = "OVER" if edge >= 3 else "UNDER" if edge <= -3 else "HOLD"
            preds.append(Prediction(d, game_id, player, f"bench_m{m:02d}", f"fam{m % 5}", "v12", predicted,
                                    o.line, o.book, o.snapshot_ts, edge, rec, 0.8))
            edges.append(edge)
        by_date.setdefault(d, []).append((abs(sum(edges) / len(edges)), sum(edges) / len(edges), o))
    picks = []
    for d, cands in by_date.items():
        cands.sort(key=lambda c: (-c[0], c[2].player_lookup))
        for rank, (_, edge, o) in enumerate(cands[: max(1, len(cands) // 33)], start=1):
            picks.append(Pick(f"bench-{d}-{o.player_lookup}", d, o.game_id, o.player_lookup, o.player_name,
                              None, None, None, rank, "OVER" if edge > 0 else "UNDER", o.line, o.book,
                              o.snapshot_ts, edge, o.line + edge, 0.8, 5, n_models, 1.0, 0.8, (), (), "{}",
                              "{}", (), abs(edge) >= 6, "{}", "active", 1, run_id="run-bench"))
    return preds, picks


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--days", type=int, default=30)
    ap.add_argument("--models", type=int, default=10)
    ap.add_argument("--teams", type=int, default=30)
    ap.add_argument("--start", default="2026-01-05")
    args = ap.parse_args()

    import sim

    t0 = time.perf_counter()
    season = sim.simulate(seed=11, teams=TEAMS[: args.teams], start=args.start, days=args.days)
    work = tempfile.mkdtemp(prefix="bench-grade-")
    inputs = os.path.join(work, "inputs")
    season.write(inputs)
    t_sim = time.perf_counter() - t0
    preds, picks = synthetic_rows(season, args.models)
    dates = sorted({p.game_date for p in preds})
    wh = open_warehouse(f"duckdb://{work}/w.duckdb")
    wh.replace_dates(dates, {"predictions": preds, "best_bets": picks}, tables=["predictions", "best_bets"])
    t_fill = time.perf_counter() - t0 - t_sim
    print(f"setup: simulated {args.days} days x {args.teams} teams in {t_sim:.1f} s; {len(preds)} "
          f"predictions, {len(picks)} picks, {len(season.odds)} odds, {len(season.box_scores)} box scores "
          f"over {len(dates)} dates stored in {t_fill:.1f} s")
    policy = load_policy(None)
    for label in ("grade (cold)", "re-grade"):
        t = time.perf_counter()
        out = grade_dates(wh, inputs, os.path.join(work, "exports"), dates, policy=policy, run_id="bench")
        secs = time.perf_counter() - t
        print(f"{label}: {secs:.2f} s wall, {len(out.accuracy)} accuracy rows, {len(out.results)} pick "
              f"results, {len(out.performance)} model rows; {len(preds) / secs:,.0f} predictions/s; "
              f"peak RSS {peak_mib():.0f} MiB")


if __name__ == "__main__":
    main()

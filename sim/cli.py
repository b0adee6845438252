"""``props simulate [--season 2025-26] [--seed N] --out DIR``: writes a synthetic season.

Prints progress lines while generating, then the realism summary (:mod:`sim.realism`) with PASS/FAIL
per band. Exit status 0 when the files are written (a FAIL band is reported, not fatal).
"""

from __future__ import annotations

import argparse
import sys
import time

from sim import league


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="props simulate", description=__doc__.splitlines()[0])
    ap.add_argument("--season", default="2025-26", choices=sorted(league.SEASONS), help="season to simulate")
    ap.add_argument("--seed", type=int, default=7, help="random seed (same seed: byte-identical files)")
    ap.add_argument("--out", required=True, help="output directory (KIND/game_date=YYYY-MM-DD/part-00000.*)")
    ap.add_argument(
        "--start", default=None, help="keep dates from this date (YYYY-MM-DD); default: season start"
    )
    ap.add_argument("--days", type=int, default=None, help="keep this many days from --start")
    ap.add_argument("--no-realism", action="store_true", help="skip the realism summary")
    args, _beam = ap.parse_known_args(argv)
    from sim.realism import format_report, realism_report
    from sim.season import simulate

    t0 = time.perf_counter()

    def progress(msg: str) -> None:
        print(f"[{time.perf_counter() - t0:6.1f}s] {msg}", flush=True)

    sim = simulate(seed=args.seed, season=args.season, start=args.start, days=args.days, progress=progress)
    sim.write(args.out, progress=progress)
    progress(f"wrote {args.out} ({sim.meta['counts']})")
    if not args.no_realism:
        print(format_report(realism_report(sim)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

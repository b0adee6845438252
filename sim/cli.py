"""``props simulate [--seed N] [--format native|legacy] --out DIR``: writes a synthetic season.

Prints progress lines while generating, then the realism summary (:mod:`sim.realism`) with PASS/FAIL
per band. Exit status 0 when the files are written (a FAIL band is reported, not fatal).

``--format native`` (the default) writes the pipeline's input files (``KIND/game_date=YYYY-MM-DD/...``);
``--format legacy`` writes the same season in the old Cloud Run system's BigQuery table shapes
(:mod:`sim.legacy`: ``<dataset>.<table>.jsonl`` per old table plus ``manifest.json``, loadable with
``bq load --source_format=NEWLINE_DELIMITED_JSON``), for ``--inputs bigquery-legacy://PROJECT``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import time

from sim import league

FORMATS = ("native", "legacy")


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="props simulate", description=__doc__.splitlines()[0])
    ap.add_argument("--season", default="2025-26", choices=sorted(league.SEASONS), help="season to simulate")
    ap.add_argument("--seed", type=int, default=7, help="random seed (same seed: byte-identical files)")
    ap.add_argument("--out", required=True, help="output directory (KIND/game_date=YYYY-MM-DD/part-00000.*)")
    ap.add_argument(
        "--start", default=None, help="keep dates from this date (YYYY-MM-DD); default: season start"
    )
    ap.add_argument("--days", type=int, default=None, help="keep this many days from --start")
    ap.add_argument(
        "--teams",
        default=None,
        help="a small league of these tricodes, comma-separated (e.g. LAL,BOS,DEN,MIA); default: all",
    )
    ap.add_argument(
        "--format",
        default="native",
        choices=FORMATS,
        help="native: the pipeline's input files; legacy: the old system's tables (sim/legacy.py)",
    )
    ap.add_argument(
        "--postpone-on",
        default=None,
        help="legacy only: the date (YYYY-MM-DD) of the injected postponement when the dates "
        "written have no postponed game; default: the last date with two idle teams",
    )
    ap.add_argument("--no-realism", action="store_true", help="skip the realism summary")
    args, _beam = ap.parse_known_args(argv)
    from sim.realism import format_report, realism_report
    from sim.season import simulate

    teams = tuple(t.strip().upper() for t in args.teams.split(",") if t.strip()) if args.teams else None
    unknown = sorted(set(teams or ()) - set(league.TRICODES))
    if unknown:
        ap.error(f"--teams: unknown tricodes {unknown} (e.g. LAL,BOS,DEN,MIA)")
    try:
        postpone_on = dt.date.fromisoformat(args.postpone_on) if args.postpone_on else None
    except ValueError:
        ap.error(f"--postpone-on: {args.postpone_on!r} is not a date (YYYY-MM-DD)")
    t0 = time.perf_counter()

    def progress(msg: str) -> None:
        print(f"[{time.perf_counter() - t0:6.1f}s] {msg}", flush=True)

    sim = simulate(
        seed=args.seed, season=args.season, teams=teams, start=args.start, days=args.days, progress=progress
    )
    if args.format == "legacy":
        from sim.legacy import write_legacy

        write_legacy(sim, args.out, postpone_on=postpone_on, progress=progress)
    else:
        sim.write(args.out, progress=progress)
    progress(f"wrote {args.out} ({args.format}: {sim.meta['counts']})")
    if not args.no_realism:
        print(format_report(realism_report(sim)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

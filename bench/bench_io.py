"""Benchmark: reading odds partitions (pyarrow + parse) and replacing a date in the DuckDB warehouse.

Writes ``--dates`` synthetic odds partitions of ``--rows`` rows each (Parquet, the simulator's column types:
timestamp[us, tz=UTC], date32) to a temporary folder, then measures

* ``read_rows_local`` over one date and over every date (rows/s: the full season is ~2 M odds rows);
* the same read through ``ReadInputs`` on the FnApiRunner (every date; includes pipeline start-up);
* ``DuckDBWarehouse.replace_dates`` of one date with ``--rows`` prediction rows (first write and re-run);

and prints wall times, rates and peak memory (resource.getrusage).

    .venv/bin/python bench/bench_io.py [--rows 30000] [--dates 10] [--skip-beam]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import resource
import tempfile
import time

os.environ.setdefault("NO_GCE_CHECK", "true")

import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

from pipeline import schemas  # noqa: E402
from pipeline.io.files import ReadInputs, read_rows_local  # noqa: E402
from pipeline.io.warehouse import open_warehouse  # noqa: E402

BOOKS = ("draftkings", "fanduel", "betmgm", "williamhill_us", "betrivers", "espnbet", "hardrockbet", "bovada")


def odds_table(game_date: dt.date, n: int) -> pa.Table:
    start = dt.datetime(game_date.year, game_date.month, game_date.day, 12, tzinfo=dt.UTC)
    return pa.table({
        "player_lookup": [f"player{i % 400}" for i in range(n)],
        "player_name": [f"Player {i % 400}" for i in range(n)],
        "game_id": [f"{game_date:%Y%m%d}_T{i % 11:02d}_H{i % 11:02d}" for i in range(n)],
        "game_date": pa.array([game_date] * n, pa.date32()),
        "book": [BOOKS[i % len(BOOKS)] for i in range(n)],
        "line": [10.5 + (i % 25) for i in range(n)],
        "over_price": pa.array([-110 - i % 15 for i in range(n)], pa.int64()),
        "under_price": pa.array([-110 + i % 15 for i in range(n)], pa.int64()),
        "snapshot_ts": pa.array([start + dt.timedelta(seconds=i) for i in range(n)],
                                pa.timestamp("us", tz="UTC")),
        "source_api": ["odds_api"] * n,
    })


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=30000, help="odds rows per date (one 11-game date: 20-40k)")
    ap.add_argument("--dates", type=int, default=10, help="number of dates")
    ap.add_argument("--skip-beam", action="store_true", help="skip the ReadInputs pipeline")
    args = ap.parse_args()
    dates = [dt.date(2026, 1, 1) + dt.timedelta(days=i) for i in range(args.dates)]
    with tempfile.TemporaryDirectory() as root:
        for d in dates:
            folder = os.path.join(root, "odds", f"game_date={d}")
            os.makedirs(folder)
            pq.write_table(odds_table(d, args.rows), os.path.join(folder, "part-000.parquet"))
        print(f"rss after writing inputs: {peak_mib():.0f} MiB")

        for label, which in (("1 date", dates[:1]), (f"{len(dates)} dates", dates)):
            t, c = time.perf_counter(), time.process_time()
            rows, dead = read_rows_local(root, "odds", which)
            secs, cpu = time.perf_counter() - t, time.process_time() - c
            print(f"read_rows_local {label}: {len(rows)} rows, {len(dead)} dead in {secs:.2f} s wall, "
                  f"{cpu:.2f} s CPU ({len(rows) / cpu:,.0f} rows/CPU-s); peak rss {peak_mib():.0f} MiB")
        del rows

        if not args.skip_beam:
            import apache_beam as beam
            from apache_beam.options.pipeline_options import PipelineOptions

            t = time.perf_counter()
            with beam.Pipeline(options=PipelineOptions(["--runner=FnApiRunner"])) as p:
                read = p | ReadInputs(root, "odds", dates)
                _ = (read.rows | beam.combiners.Count.Globally()
                     | beam.Map(lambda n: print(f"  pipeline rows: {n}")))
            secs = time.perf_counter() - t
            n = args.rows * len(dates)
            print(f"ReadInputs (FnApiRunner) {len(dates)} dates: {secs:.2f} s "
                  f"({n / secs:,.0f} rows/s incl. start-up); peak rss {peak_mib():.0f} MiB")

        wh = open_warehouse(os.path.join(root, "wh", "props.duckdb"))
        d = dates[0]
        snap = dt.datetime(2026, 1, 1, 12, tzinfo=dt.UTC)
        preds = [schemas.Prediction(d, f"{d:%Y%m%d}_T01_H01", f"player{i}", f"m{i % 12}", "v12_mae", "v12",
                                    20.0, 20.5, "draftkings", snap, -0.5, "UNDER", 0.7)
                 for i in range(args.rows)]
        for label in ("first write", "re-run"):
            t = time.perf_counter()
            counts = wh.replace_dates([d], {"predictions": preds})
            secs = time.perf_counter() - t
            print(f"replace_dates {label}: {counts['predictions']} prediction rows in {secs:.2f} s "
                  f"({counts['predictions'] / secs:,.0f} rows/s)")
        print(f"peak rss: {peak_mib():.0f} MiB")


if __name__ == "__main__":
    main()

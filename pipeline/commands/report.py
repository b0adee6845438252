"""``props report``: one self-contained HTML report of graded dates (charts embedded as inline SVG).

    props report --date 2026-02-22                      # -> ./reports/report-2026-02-22.html
    props report --start 2026-02-01 --end 2026-02-28    # -> ./reports/report-2026-02-01_2026-02-28.html
    props report --date 2026-02-22 --out /tmp/r.html --warehouse duckdb:///w.duckdb

Reads the graded rows from the warehouse (``props grade`` first): the dates' picks, pick results and
prediction accuracy, and model performance over the dates (for one date: the 30 days ending at it, so
"model health over time" has a history). Sections: the record, the picks with results, per family and
best bets (the backtest table of ``props grade --start --end``: W-L-P, HR with its 95 % interval, ROI at
-110, mean CLV, OVER / UNDER, whether the consensus beats the best family), hit rate by edge bucket
with counts and intervals, calibration, model health, CLV. No external JS or CSS: open the file in any
browser.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from apache_beam.options.pipeline_options import PipelineOptions

from pipeline.commands import common
from pipeline.commands.common import LaunchError, eprint
from pipeline.commands.grade import resolve_dates
from pipeline.domain import records as records_lib
from pipeline.grade_graph import LOOKBACK_DAYS, read_table_rows, season_results
from pipeline.options import DataOptions, OptionsError, RangeOptions, date_range
from pipeline.report.html import ReportData, render_report

DEFAULT_REPORT_DIR = Path("reports")


class ReportOptions(PipelineOptions):
    """The report file: ``props report``."""

    @classmethod
    def _add_argparse_args(cls, parser):
        parser.add_argument("--out", dest="out", default=None,
                            help="Output HTML file. Default: ./reports/report-{date}.html or "
                                 "./reports/report-{start}_{end}.html.")


def default_out(dates: list[dt.date]) -> Path:
    name = dates[0].isoformat() if len(dates) == 1 else f"{dates[0].isoformat()}_{dates[-1].isoformat()}"
    return DEFAULT_REPORT_DIR / f"report-{name}.html"


def load_report_data(warehouse, dates: list[dt.date], *, policy,
                     generated_at: dt.datetime | None = None) -> ReportData:
    """Everything the report shows, read from the warehouse (one query per table)."""
    health_dates = dates if len(dates) > 1 else date_range(dates[0] - dt.timedelta(days=LOOKBACK_DAYS - 1),
                                                           dates[0])
    season = season_results(warehouse, dates[-1])
    record = records_lib.best_bets_record(season, dates[-1], live_run_ids=common.live_run_ids(warehouse),
                                          policy=policy)
    span = set(dates)
    return ReportData(
        title="Props report: " + (dates[0].isoformat() if len(dates) == 1
                                  else f"{dates[0].isoformat()} to {dates[-1].isoformat()}"),
        dates=tuple(dates),
        picks=[p for p in read_table_rows(warehouse, "best_bets", dates) if p.status != "withdrawn"],
        results=[r for r in season if r.game_date in span],
        accuracy=read_table_rows(warehouse, "prediction_accuracy", dates),
        performance=read_table_rows(warehouse, "model_performance_daily", health_dates),
        record=record,
        generated_at=generated_at or dt.datetime.now(dt.UTC),
        policy=policy,
    )


def main(argv: list[str]) -> int:
    common.prepare_local_environment()
    if "-h" in argv or "--help" in argv:
        common.print_help("report", (RangeOptions, ReportOptions, DataOptions))
        return 0
    watch = common.Stopwatch()
    try:
        options = common.parse_options(argv)
        dates = resolve_dates(options)
        policy = common.load_policy(options)
        from pipeline.io.warehouse import open_warehouse

        warehouse = open_warehouse(common.warehouse_uri(options))
    except (OptionsError, LaunchError, ValueError) as exc:
        eprint(f"props report: {exc}")
        return 2
    out = Path(options.view_as(ReportOptions).out or default_out(dates))
    data = load_report_data(warehouse, dates, policy=policy)
    if not data.accuracy and not data.results:
        eprint(f"props report: note: no graded rows for {dates[0]}..{dates[-1]}; run `props grade` first")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render_report(data), encoding="utf-8")
    print(f"report {out} ({out.stat().st_size // 1024} KiB): {len(data.picks)} picks, "
          f"{len(data.accuracy)} graded predictions, {watch.seconds:.1f} s")
    return 0

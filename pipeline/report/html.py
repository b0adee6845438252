"""The grading report as one self-contained HTML file (charts as inline SVG, no external JS or CSS).

``render_report(data)`` returns the HTML text; sections (each a ``<section id=...>``):
``record`` (the best-bets record), ``picks`` (the picks with results), ``edge-buckets`` (hit rate by
edge bucket with counts and 95 % Wilson intervals, models and best bets), ``calibration`` (predicted vs
actual points), ``model-health`` (7-day HR per model over time with the state thresholds), ``clv``
(closing-line value distribution and per-family means). Charts are drawn with matplotlib (Agg backend)
and embedded as ``<svg>`` elements.
"""

from __future__ import annotations

import datetime as dt
import html
import io
from collections import defaultdict
from collections.abc import Sequence
from typing import NamedTuple

from pipeline.domain import grading as grading_lib
from pipeline.policy import Policy
from pipeline.report import analysis
from pipeline.schemas import BestBetResult, ModelPerformanceDaily, Pick, PredictionAccuracy


class ReportData(NamedTuple):
    title: str
    dates: tuple[dt.date, ...]
    picks: list[Pick]
    results: list[BestBetResult]
    accuracy: list[PredictionAccuracy]
    performance: list[ModelPerformanceDaily]
    record: dict
    generated_at: dt.datetime
    policy: Policy  # edge buckets, breakeven and state bounds of the figures


CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:24px;color:#222;max-width:1100px}
h1{font-size:22px}h2{font-size:18px;border-bottom:1px solid #ddd;padding-bottom:4px;margin-top:32px}
table{border-collapse:collapse;font-size:13px;margin:8px 0}th,td{padding:3px 8px;border-bottom:1px solid #eee;
text-align:right}th{background:#f6f6f6}td.l,th.l{text-align:left}.WIN{color:#137333;font-weight:600}
.LOSS{color:#b3261e;font-weight:600}.PUSH,.VOID,.PENDING{color:#777}.muted{color:#777;font-size:12px}
figure{margin:8px 0}svg{max-width:100%;height:auto}
"""


def _svg(fig) -> str:
    import matplotlib.pyplot as plt

    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight")
    plt.close(fig)
    text = buf.getvalue()
    return text[text.index("<svg"):]  # drop the XML prolog and DOCTYPE: inline SVG in HTML


def _figure(width: float = 7.0, height: float = 3.2):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams["svg.hashsalt"] = "props-report"  # deterministic element ids
    return plt.subplots(figsize=(width, height))


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.1f}%"


def _num(v: float | None, fmt: str = "{:.1f}") -> str:
    return "-" if v is None else fmt.format(v)


def _table(headers: Sequence[str], rows: Sequence[Sequence[object]], left: int = 1) -> str:
    head = "".join(f'<th class="{"l" if i < left else ""}">{html.escape(h)}</th>'
                   for i, h in enumerate(headers))
    body = []
    for row in rows:
        cells = []
        for i, v in enumerate(row):
            cls = "l" if i < left else ""
            text = html.escape(str(v))
            if text in ("WIN", "LOSS", "PUSH", "VOID", "PENDING"):
                cls += f" {text}"
            cells.append(f'<td class="{cls.strip()}">{text}</td>')
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _record_section(record: dict) -> str:
    rows = []
    for key, label in (("season", "Season"), ("month", "Month"), ("week", "Week"), ("last_10", "Last 10")):
        r = record.get(key, {})
        rows.append([f"{label} {r.get('label', '')}".strip(), r.get("record", "-"), _pct(r.get("pct")),
                     r.get("pushes", 0), r.get("voids", 0)])
    cur, best = record.get("current_streak", {}), record.get("best_streak", {})
    ultra = record.get("ultra", {})
    over = ultra.get("over", {})
    gate = ultra.get("gate", {})
    return (
        _table(["window", "W-L", "pct", "pushes", "voids"], rows)
        + f"<p>Current streak: <b>{html.escape(str(cur.get('type') or '-'))}{cur.get('length', 0)}</b>; "
          f"best win streak: <b>{best.get('length', 0)}</b> "
          f"({html.escape(str(best.get('start')))} to {html.escape(str(best.get('end')))}).</p>"
        + f"<p>Ultra tier (live picks): all {ultra.get('all', {}).get('record', '-')}, OVER "
          f"{over.get('record', '-')} ({_pct(over.get('pct'))}); public gate "
          f"{gate.get('graded_over', 0)}/{gate.get('min_graded_over', '-')} graded OVER at "
          f"&ge; {_pct(gate.get('min_hr'))}: <b>{'open' if ultra.get('public') else 'closed'}</b>.</p>"
    )


def _picks_section(picks: list[Pick], results: list[BestBetResult]) -> str:
    by_id = {r.pick_id: r for r in results}
    rows = []
    for p in sorted(picks, key=lambda p: (p.game_date, p.rank, p.player_lookup)):
        r = by_id.get(p.pick_id)
        rows.append([p.game_date.isoformat(), p.rank, p.player_name or p.player_lookup, p.direction, p.line,
                     _num(p.consensus_edge), _num(r.actual_points, "{:.0f}") if r else "-",
                     r.result if r else ("WITHDRAWN" if p.status == "withdrawn" else "UNGRADED"),
                     _num(r.closing_line) if r else "-", _num(r.clv, "{:+.1f}") if r else "-",
                     "yes" if p.ultra_tier else ""])
    if not rows:
        return "<p>No picks on these dates.</p>"
    return _table(["date", "rank", "player", "dir", "line", "edge", "actual", "result", "close", "CLV",
                   "ultra"], rows, left=3)


def _bucket_chart(model_rates: list[analysis.BucketRate], pick_rates: list[analysis.BucketRate],
                  breakeven: float) -> str:
    fig, ax = _figure()
    xs = range(len(model_rates))
    for offset, rates, label, color in ((-0.2, model_rates, "model bets", "#4c78a8"),
                                        (0.2, pick_rates, "best bets", "#f58518")):
        pts = [(i + offset, r) for i, r in zip(xs, rates, strict=True) if r.hit_rate is not None]
        if not pts:
            continue
        ax.bar([x for x, _ in pts], [100 * r.hit_rate for _, r in pts], width=0.38, color=color, label=label)
        ax.errorbar([x for x, _ in pts], [100 * r.hit_rate for _, r in pts],
                    yerr=[[100 * (r.hit_rate - r.low) for _, r in pts],
                          [100 * (r.high - r.hit_rate) for _, r in pts]],
                    fmt="none", ecolor="#333", capsize=3, linewidth=1)
        for x, r in pts:
            ax.annotate(f"n={r.wins + r.losses}", (x, 2), ha="center", fontsize=7, color="white")
    ax.axhline(100 * breakeven, color="#b3261e", linestyle="--", linewidth=1,
               label=f"breakeven {100 * breakeven:.1f}%")
    ax.set_xticks(list(xs), [r.bucket for r in model_rates])
    ax.set_xlabel("|edge| (points)")
    ax.set_ylabel("hit rate %")
    ax.set_ylim(0, 100)
    ax.legend(fontsize=8, loc="upper left")
    return _svg(fig)


def _bucket_table(rates: list[analysis.BucketRate]) -> str:
    return _table(["|edge|", "W", "L", "HR", "95% interval"],
                  [[r.bucket, r.wins, r.losses, _pct(r.hit_rate),
                    f"{_pct(r.low)} - {_pct(r.high)}" if r.low is not None else "-"] for r in rates])


def _calibration_chart(bins: list[analysis.CalibrationBin]) -> str:
    fig, ax = _figure(5.0, 4.0)
    if bins:
        top = max(max(b.mean_predicted for b in bins), max(b.mean_actual for b in bins)) + 2
        ax.plot([0, top], [0, top], color="#999", linestyle="--", linewidth=1, label="perfect")
        ax.plot([b.mean_predicted for b in bins], [b.mean_actual for b in bins], marker="o", color="#4c78a8",
                label="mean actual per bin")
        for b in bins:
            ax.annotate(str(b.n), (b.mean_predicted, b.mean_actual), fontsize=7, xytext=(3, -8),
                        textcoords="offset points")
    ax.set_xlabel("predicted points (bin mean)")
    ax.set_ylabel("actual points (bin mean)")
    ax.legend(fontsize=8)
    return _svg(fig)


def _health_chart(performance: list[ModelPerformanceDaily], policy: Policy) -> str:
    fig, ax = _figure(7.0, 3.6)
    series: dict[str, list[tuple[dt.date, float]]] = defaultdict(list)
    for r in sorted(performance, key=lambda r: r.game_date):
        if r.hr_7d is not None:
            series[r.model_id].append((r.game_date, 100 * r.hr_7d))
    for model_id, pts in sorted(series.items()):
        ax.plot([d for d, _ in pts], [v for _, v in pts], marker="." if len(pts) < 40 else None, linewidth=1,
                label=model_id)
    lower = 0.0
    colours = ("#f4c7c3", "#fce8b2", "#fff3c4")
    for (bound, state), colour in zip(grading_lib.state_bounds(policy), colours, strict=True):
        ax.axhspan(100 * lower, 100 * bound, color=colour, alpha=0.5, linewidth=0,
                   label=f"{state} < {100 * bound:.1f}%")
        lower = bound
    ax.set_ylabel(f"7-day hit rate % (edge {policy.edge_buckets[0]:g}+)")
    ax.set_ylim(0, 100)
    ax.legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.autofmt_xdate()
    return _svg(fig)


def _health_table(performance: list[ModelPerformanceDaily]) -> str:
    latest: dict[str, ModelPerformanceDaily] = {}
    for r in performance:
        if r.model_id not in latest or r.game_date > latest[r.model_id].game_date:
            latest[r.model_id] = r
    rows = [[r.model_id, r.family or "-", r.game_date.isoformat(), _pct(r.hr_7d), r.n_7d, _pct(r.hr_30d),
             r.n_30d, _pct(r.hr_edge5_30d), _pct(r.over_hr_30d), _pct(r.under_hr_30d),
             _num(r.mae_30d, "{:.2f}"), _num(r.vegas_bias_30d, "{:+.2f}"), r.state]
            for r in (latest[k] for k in sorted(latest))]
    return _table(["model", "family", "as of", "HR 7d", "n 7d", "HR 30d", "n 30d", "HR e5 30d", "OVER 30d",
                   "UNDER 30d", "MAE 30d", "bias 30d", "state"], rows, left=2)


def _clv_chart(results: list[BestBetResult], accuracy: list[PredictionAccuracy], edge: float) -> str:
    fig, ax = _figure()
    picks = [r.clv for r in results if r.clv is not None and r.result != "PENDING"]
    bets = [a.clv for a in accuracy if a.clv is not None and grading_lib.in_edge_bucket(a.edge, edge)]
    bins = [x / 2 - 0.25 for x in range(-12, 14)]  # centred on half points (lines move in half points)
    clip = lambda vs: [min(max(v, -6.0), 6.0) for v in vs]  # noqa: E731 - tails in the end bins
    if bets:
        ax.hist(clip(bets), bins=bins, alpha=0.5, weights=[1 / len(bets)] * len(bets), color="#4c78a8",
                label=f"model bets, edge {edge:g}+ (n={len(bets)})")
    if picks:
        ax.hist(clip(picks), bins=bins, alpha=0.6, weights=[1 / len(picks)] * len(picks), color="#f58518",
                label=f"best bets (n={len(picks)})")
    ax.axvline(0, color="#333", linewidth=1)
    ax.set_xlabel("CLV (points; > 0 beat the close)")
    ax.set_ylabel("share")
    if bets or picks:
        ax.legend(fontsize=8)
    return _svg(fig)


def _backtest_table(lines: Sequence[grading_lib.BacktestLine]) -> str:
    """The backtest table of ``props grade --start --end`` (the same numbers)."""
    rows = []
    for b in lines:
        interval = "-" if b.hr_low is None else f"{_pct(b.hr_low)} - {_pct(b.hr_high)}"
        rows.append([b.name, b.picks, f"{b.wins}-{b.losses}-{b.pushes}", b.voids, _pct(b.hit_rate), interval,
                     _pct(b.roi), _num(b.mean_clv, "{:+.2f}"), b.n_clv, f"{b.over_wins}-{b.over_losses}",
                     _pct(b.over_hr), f"{b.under_wins}-{b.under_losses}", _pct(b.under_hr)])
    return _table(["name", "bets", "W-L-P", "voids", "HR", "95% interval", "ROI", "mean CLV", "n CLV",
                   "OVER W-L", "OVER HR", "UNDER W-L", "UNDER HR"], rows)


def render_report(data: ReportData) -> str:
    """The whole report as HTML text (self-contained)."""
    span = (data.dates[0].isoformat() if len(data.dates) == 1
            else f"{data.dates[0].isoformat()} to {data.dates[-1].isoformat()}")
    policy = data.policy
    model_rates = analysis.hit_rate_by_edge(data.accuracy)
    pick_rates = analysis.pick_hit_rate_by_edge(data.results)
    clv = analysis.clv_summaries(data.accuracy, data.results, policy=policy)
    backtest = grading_lib.backtest_table(data.accuracy, data.results, policy=policy)
    verdict = grading_lib.format_consensus_line(grading_lib.consensus_vs_best_family(backtest))
    edge3 = policy.edge_buckets[0]
    sections = [
        ("record", "Best-bets record", _record_section(data.record)),
        ("picks", "Picks and results", _picks_section(data.picks, data.results)),
        ("summary", f"Backtest: per family (edge {edge3:g}+) and best bets: hit rate with 95% interval, "
                    "ROI at -110, CLV, OVER / UNDER",
         _backtest_table(backtest) + f"<p>{html.escape(verdict)}</p>"),
        ("edge-buckets", "Hit rate by edge bucket (95% Wilson intervals)",
         f"<figure>{_bucket_chart(model_rates, pick_rates, policy.breakeven_hr)}</figure>"
         "<p class='muted'>Model bets (every graded prediction, by the direction of its edge)</p>"
         f"{_bucket_table(model_rates)}"
         f"<p class='muted'>Best bets (by |consensus edge|)</p>{_bucket_table(pick_rates)}"),
        ("calibration", "Calibration: predicted vs actual points",
         f"<figure>{_calibration_chart(analysis.calibration(data.accuracy))}</figure>"),
        ("model-health", "Model health over time",
         f"<figure>{_health_chart(data.performance, policy)}</figure>{_health_table(data.performance)}"),
        ("clv", "Closing-line value",
         f"<figure>{_clv_chart(data.results, data.accuracy, edge3)}</figure>"
         + _table(["name", "n", "mean CLV", "beat the close"],
                  [[c.name, c.n, _num(c.mean, "{:+.2f}"), _pct(c.share_positive)] for c in clv])),
    ]
    body = "".join(f'<section id="{sid}"><h2>{html.escape(title)}</h2>{content}</section>'
                   for sid, title, content in sections)
    return ("<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
            f"<title>{html.escape(data.title)}</title>"
            f"<style>{CSS}</style></head><body><h1>{html.escape(data.title)}</h1>"
            f"<p class='muted'>Games of {span}; generated {data.generated_at.isoformat(timespec='seconds')}. "
            f"Hit rate = wins / (wins + losses); pushes and voids excluded.</p>{body}</body></html>")

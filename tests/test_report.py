"""The report: figures (pipeline.report.analysis) and the HTML file of ``props report``."""

from __future__ import annotations

import datetime as dt
import html
from html.parser import HTMLParser

import pytest

from pipeline.commands import report
from pipeline.domain import grading as g
from pipeline.io.warehouse import open_warehouse
from pipeline.policy import Policy
from pipeline.report import analysis
from pipeline.schemas import BoxScore, Pick, Prediction

D = dt.date(2026, 2, 22)


@pytest.fixture(autouse=True)
def _anonymous_gcp(monkeypatch):
    import google.auth
    from google.auth.credentials import AnonymousCredentials

    monkeypatch.setenv("NO_GCE_CHECK", "true")
    monkeypatch.setattr(google.auth, "default", lambda *a, **k: (AnonymousCredentials(), None))


def _graded(day: dt.date, player: str, rec: str, line: float, predicted: float, actual: float, model="m1"):
    pred = Prediction(day, "20260222_LAL_BOS", player, model, "v12_mae", "v12", predicted, line, "draftkings",
                      None, round(predicted - line, 1), rec, 0.8)
    box = BoxScore(player, "20260222_LAL_BOS", day, "LAL", actual, 30.0, False, True, 1.0)
    return pred, box


def test_wilson_interval_and_buckets():
    assert g.wilson_interval(0, 0) is None
    lo, hi = g.wilson_interval(8, 10)
    assert 0.49 < lo < 0.5 and 0.94 < hi < 0.95
    assert analysis.bucket_of(2.0) == "2-3" and analysis.bucket_of(7.0) == "7+"
    assert analysis.bucket_of(1.99) == "0-2"
    rows = [g.grade_prediction(*_graded(D, f"p{i}", "OVER", 20.5, 26.0, 25.0 if i % 2 else 18.0)[:2], None)
            for i in range(4)]
    rows.append(g.grade_prediction(*_graded(D, "push", "OVER", 20.0, 26.0, 20.0), None))
    rates = {r.bucket: r for r in analysis.hit_rate_by_edge(rows)}
    assert (rates["5-7"].wins, rates["5-7"].losses, rates["5-7"].hit_rate) == (2, 2, 0.5)
    assert rates["0-2"].hit_rate is None
    cal = analysis.calibration(rows)
    assert len(cal) == 1 and cal[0].n == 5 and cal[0].mean_predicted == 26.0


class _Sections(HTMLParser):
    def __init__(self):
        super().__init__()
        self.sections, self.svgs, self.external = [], 0, []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "section":
            self.sections.append(a.get("id"))
        if tag == "svg":
            self.svgs += 1
        if tag in ("script", "link") or (tag == "img" and not str(a.get("src", "")).startswith("data:")):
            self.external.append(tag)


def test_props_report_writes_one_self_contained_html_file(tmp_path, capsys):
    uri = f"duckdb://{tmp_path / 'w.duckdb'}"
    wh = open_warehouse(uri)
    acc, results, picks = [], [], []
    for i, (rec, line, pred, actual) in enumerate([("OVER", 20.5, 27.0, 25.0), ("UNDER", 15.5, 9.0, 17.0),
                                                    ("OVER", 10.5, 14.0, 10.5), ("UNDER", 30.5, 26.0, 22.0)]):
        p, box = _graded(D, f"p{i}", rec, line, pred, actual)
        acc.append(g.grade_prediction(p, box, None, closing_line=line + 0.5))
        pick = Pick(f"pk{i}", D, p.game_id, p.player_lookup, f"Player {i}", "LAL", "BOS", None, i + 1, rec,
                    line, "draftkings", None, pred - line, pred, 0.8, 5, 8, 1.0, 0.8, ("m1",), (), "{}", "{}",
                    (), i == 0, "{}", "active", 1)
        picks.append(pick)
        results.append(g.grade_pick(pick, box, None, line + 0.5))
    perf = g.model_performance_series(acc, [D], policy=Policy())
    wh.replace_dates([D], {"best_bets": picks}, tables=["best_bets"])
    wh.replace_dates([D], {"prediction_accuracy": acc, "best_bets_results": results,
                           "model_performance_daily": perf},
                     tables=["prediction_accuracy", "best_bets_results", "model_performance_daily"])
    out = tmp_path / "r.html"
    assert report.main(["--date", D.isoformat(), "--warehouse", uri, "--out", str(out)]) == 0
    text = out.read_text()
    parser = _Sections()
    parser.feed(text)
    assert parser.sections == ["record", "picks", "summary", "edge-buckets", "calibration", "model-health",
                               "clv"]
    assert parser.svgs >= 4 and parser.external == []
    assert "Player 0" in text and "WIN" in text and "PUSH" in text
    assert '<td class="l">Season 2025-26</td><td class="">2-1</td>' in text
    # the backtest numbers of `props grade --start --end`: W-L-P, HR with its interval, OVER/UNDER, verdict
    lines = g.backtest_table(acc, results, policy=Policy())
    bb = lines[-1]
    assert (bb.wins, bb.losses, bb.pushes) == (2, 1, 1)
    lo, hi = g.wilson_interval(2, 3)
    assert f"{100 * lo:.1f}% - {100 * hi:.1f}%" in text and "95% interval" in text and "UNDER HR" in text
    assert html.escape(g.format_consensus_line(g.consensus_vs_best_family(lines))) in text
    assert str(out) in capsys.readouterr().out


def test_report_default_path_and_bad_options(tmp_path, capsys):
    assert report.default_out([D]).name == "report-2026-02-22.html"
    assert report.default_out([D, D + dt.timedelta(days=3)]).name == "report-2026-02-22_2026-02-25.html"
    assert report.main(["--date", "2026-13-01", "--warehouse", f"duckdb://{tmp_path / 'w.duckdb'}"]) == 2
    assert "--date" in capsys.readouterr().err

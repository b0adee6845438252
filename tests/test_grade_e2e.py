"""End to end on a small simulated fortnight: the slate backfill, then ``props grade``, then the report;
the record in the tables and in the exports agree, and a re-grade changes nothing."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from pipeline.commands import backfill, grade, report
from pipeline.commands import common as common_cmd
from pipeline.domain import records
from pipeline.io.warehouse import open_warehouse
from pipeline.policy import Policy

START, END = dt.date(2026, 2, 2), dt.date(2026, 2, 15)


@pytest.fixture(autouse=True)
def _anonymous_gcp(monkeypatch):
    import google.auth
    from google.auth.credentials import AnonymousCredentials

    monkeypatch.setenv("NO_GCE_CHECK", "true")
    monkeypatch.setattr(google.auth, "default", lambda *a, **k: (AnonymousCredentials(), None))


@pytest.mark.slow
def test_fortnight_backfill_then_grade(tmp_path, capsys):
    import sim
    from tests.slate_fixtures import tiny_registry

    inputs = tmp_path / "inputs"
    season = sim.simulate(seed=7, teams=("LAL", "BOS", "DEN", "MIA"), start=START.isoformat(), days=14)
    season.write(str(inputs))
    registry = tiny_registry()
    uri = f"duckdb://{tmp_path / 'w.duckdb'}"
    exports = tmp_path / "exports"
    common = ["--inputs", str(inputs), "--warehouse", uri, "--exports", str(exports)]
    span = ["--start", START.isoformat(), "--end", END.isoformat()]
    assert backfill.main(span + common + ["--registry", registry.uri, "--dates-per-pipeline", "14"]) == 0
    assert grade.main(span + common) == 0
    out = capsys.readouterr().out
    assert "picks graded" in out and "best_bets" in out and "ROI" in out  # summary + backtest table

    wh = open_warehouse(uri)
    n_pred = wh.query("SELECT count(*) AS n FROM predictions")[0]["n"]
    n_acc = wh.query("SELECT count(*) AS n FROM prediction_accuracy")[0]["n"]
    assert n_pred > 0 and n_acc == n_pred  # one accuracy row per prediction (one per model), NO_LINE included
    assert "consensus (best bets)" in out or "not enough graded bets" in out  # the consensus verdict line
    runs = wh.query("SELECT command, status, counts FROM runs WHERE command = 'grade'")
    assert runs and all(r["status"] == "succeeded" for r in runs)
    assert json.loads(runs[0]["counts"])["predictions"] == n_pred
    picks = wh.query("SELECT pick_id, game_date FROM best_bets WHERE status <> 'withdrawn'")
    results = wh.query("SELECT * FROM best_bets_results")
    assert {r["pick_id"] for r in results} == {p["pick_id"] for p in picks}
    assert all(r["result"] in ("WIN", "LOSS", "PUSH", "VOID") for r in results)
    assert wh.query("SELECT count(*) AS n FROM model_performance_daily")[0]["n"] > 0

    record = json.loads((exports / "best-bets" / "record.json").read_text())
    live = common_cmd.live_run_ids(wh)
    assert live == frozenset()  # only a backfill ran: no live picks
    assert record == json.loads(json.dumps(records.best_bets_record(results, END, live_run_ids=live,
                                                                    policy=Policy())))
    assert record["ultra"]["public"] is False  # backfill picks never open the ultra gate
    for d in sorted({p["game_date"] for p in picks}):
        doc = json.loads((exports / "best-bets" / f"{d.isoformat()}.json").read_text())
        stored = {r["pick_id"]: r for r in results if r["game_date"] == d}
        assert {p["pick_id"]: (p["result"], p["actual_points"]) for p in doc["picks"]} == {
            k: (r["result"], r["actual_points"]) for k, r in stored.items()}
    perf = json.loads((exports / "models" / "performance.json").read_text())
    assert perf["models"] and all(m["state"] for m in perf["models"])

    def snapshot():
        return {t: sorted(str(sorted((k, v) for k, v in r.items() if k != "run_id"))
                          for r in wh.query(f'SELECT * FROM "{t}"')) for t in grade.GRADING_TABLES}

    before = snapshot()
    assert grade.main(span + common) == 0
    assert snapshot() == before

    html_path = tmp_path / "report.html"
    assert report.main(span + ["--warehouse", uri, "--out", str(html_path)]) == 0
    text = html_path.read_text()
    assert text.count("<svg") >= 4 and 'id="model-health"' in text and "<script" not in text

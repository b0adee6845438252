"""Graded history at launch (commands.common.graded_history), unreadable job metrics, and a grading
preflight: nothing switches off silently, every fallback is visible in the summary and the runs row."""

from __future__ import annotations

import datetime as dt
import json

import duckdb
import pytest

from pipeline.commands import common, grade
from pipeline.commands.common import LaunchError
from pipeline.domain import grading as g
from pipeline.io.warehouse import open_warehouse
from pipeline.policy import Policy
from pipeline.schemas import BestBetResult, ModelPerformanceDaily, PredictionAccuracy, RunRecord

D = dt.date(2026, 2, 22)
P = Policy()


@pytest.fixture(autouse=True)
def _anonymous_gcp(monkeypatch):
    import google.auth
    from google.auth.credentials import AnonymousCredentials

    monkeypatch.setenv("NO_GCE_CHECK", "true")
    monkeypatch.setattr(google.auth, "default", lambda *a, **k: (AnonymousCredentials(), None))


def _acc(day, player, rec, edge, actual, family="v12_mae", line=20.5) -> PredictionAccuracy:
    return PredictionAccuracy(day, "g", player, "m1", family, line, rec, line + edge, edge, actual, 30.0,
                              None, False, False, None, 1.0, 1.0, True, True, actual - line,
                              edge_correct=g.edge_correct(edge, line, actual))


def _ultra(day, i, run) -> BestBetResult:
    return BestBetResult(f"u{i}", day, "g", f"p{i}", "OVER", 20.5, 6.5, 25.0, 30.0, "WIN", None, 4.5, None,
                         None, True, rank=i, pick_run_id=run)


def test_a_brand_new_warehouse_without_grading_tables_is_history_none_visibly(tmp_path):
    wh = open_warehouse(str(tmp_path / "w.duckdb"))
    with duckdb.connect(wh.path) as con:
        for t in common.HISTORY_TABLES:
            con.execute(f'DROP TABLE "{t}"')
    history = common.graded_history(wh, [D], P)
    assert history["status"] == "none" and history["missing_tables"] == list(common.HISTORY_TABLES)
    assert history["ultra_public"] is False and history["by_date"] == {}
    counts = common.summary_counts({"rows_best_bets": 3}, history)
    assert counts["history"] == "none"
    assert "history: none" in common.format_summary("run 2026-02-22", counts, 1.0)
    assert common.live_run_ids(wh) == frozenset()


def test_empty_tables_are_history_empty(tmp_path):
    history = common.graded_history(open_warehouse(str(tmp_path / "w.duckdb")), [D], P)
    assert history["status"] == "empty" and history["by_date"][D]["player_graded"] == {}


def test_a_failing_history_read_stops_the_launch_naming_the_table(tmp_path):
    wh = open_warehouse(str(tmp_path / "w.duckdb"))
    with duckdb.connect(wh.path) as con:  # a table of another shape (e.g. a foreign or broken migration)
        con.execute('DROP TABLE "prediction_accuracy"')
        con.execute('CREATE TABLE "prediction_accuracy" (game_date DATE, note VARCHAR)')
    with pytest.raises(LaunchError, match=r"reading prediction_accuracy .*failed: BinderException"):
        common.graded_history(wh, [D], P)


def test_history_counts_the_edge_rule_and_the_ultra_gate_reads_live_runs_from_the_runs_table(tmp_path):
    wh = open_warehouse(str(tmp_path / "w.duckdb"))
    day = D - dt.timedelta(days=3)
    acc = [_acc(day, "aa", "HOLD", 3.5, 25.0),  # a quantile HOLD at edge 3.5: edge 3+ (WIN)
           _acc(day, "aa", "UNDER", -3.0, 25.0),  # LOSS
           _acc(day, "aa", "OVER", 2.5, 25.0),  # below edge 3: not counted
           _acc(day, "aa", "OVER", 4.0, 20.5),  # push: not counted
           _acc(day, "bb", "OVER", 5.0, 30.0, family="v9_mae")]  # another family: not the blacklist's
    perf = [ModelPerformanceDaily(day, "m1", "v12_mae", 0.5, 0.5, 0.5, 10, 10, 10, None, 0, None, None, 2.0,
                                  0.1, "BLOCKED")]
    ultra = [_ultra(day, i, "backfill-20260219T000000-aaaa") for i in range(50)]
    wh.replace_dates([day], {"prediction_accuracy": acc, "model_performance_daily": perf,
                             "best_bets_results": ultra}, tables=list(grade.GRADING_TABLES))
    # the picks' run id looks like a backfill, but the runs table says it was a live `props run`
    wh.insert_run(RunRecord("backfill-20260219T000000-aaaa", "run", "{}", "p", None,
                            dt.datetime(2026, 2, 19, tzinfo=dt.UTC), None, "succeeded", "{}", day))
    history = common.graded_history(wh, [D], P)
    assert history["status"] == "ok"
    assert history["by_date"][D]["player_graded"] == {"aa": (1, 1)}
    assert history["by_date"][D]["family_state"] == {"v12_mae": "BLOCKED"}
    assert history["ultra_public"] is True and history["record"]["ultra"]["over"]["record"] == "50-0"
    assert common.graded_history(wh, [D], Policy(edge_buckets=(3.6, 5.0)))["by_date"][D]["player_graded"] \
        == {}  # the bucket is the policy's
    # the same run recorded as a backfill: its picks never open the gate
    with duckdb.connect(wh.path) as con:
        con.execute("UPDATE runs SET command = 'backfill'")
    assert common.graded_history(wh, [D], P)["ultra_public"] is False


def test_unreadable_job_metrics_are_recorded_as_succeeded_unverified():
    from apache_beam.runners.runner import PipelineResult, PipelineState

    result = PipelineResult(PipelineState.DONE)  # Beam's base result: metrics() is not implemented
    metrics = common.metric_counts(result)
    assert set(metrics) == {common.METRICS_ERROR} and "NotImplementedError" in metrics[common.METRICS_ERROR]
    counts = common.summary_counts(metrics, {"status": "ok"})
    assert common.run_status(counts) == "succeeded_unverified"
    assert "metrics UNAVAILABLE" in common.format_summary("run 2026-02-22", counts, 1.0)
    assert common.run_status(common.summary_counts({"rows_best_bets": 1})) == "succeeded"
    assert common.run_status({"submitted": 1}) == "submitted"
    assert "metrics UNAVAILABLE" in grade.format_grade_summary([D], grade.grade_counts(metrics), 1.0)


def test_grade_preflight_only_runs_no_job_and_writes_nothing(tmp_path, capsys):
    inputs = tmp_path / "inputs"
    for kind in ("schedule", "odds", "features"):  # what the preflight looks for
        (inputs / kind / f"game_date={D}").mkdir(parents=True)
        (inputs / kind / f"game_date={D}" / "part-00000.jsonl").write_text("")
    warehouse = tmp_path / "w.duckdb"
    argv = ["--date", D.isoformat(), "--inputs", str(inputs), "--warehouse", f"duckdb://{warehouse}",
            "--exports", str(tmp_path / "exports"), "--preflight_only"]
    rc = grade.main(argv)
    out = capsys.readouterr().out
    plan = json.loads(out[: out.index("preflight:")])
    assert rc == 0 and "preflight: OK" in out
    assert plan["command"] == "grade" and plan["dates"] == [D.isoformat()]
    assert plan["tables"] == list(grade.GRADING_TABLES)
    if warehouse.exists():  # the preflight may look at it, but no run and no grading rows are written
        wh = open_warehouse(str(warehouse))
        assert wh.query("SELECT count(*) AS n FROM runs")[0]["n"] == 0
    assert not (tmp_path / "exports").exists()

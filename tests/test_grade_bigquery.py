"""Grading against the local BigQuery emulator (real client, real SQL; no mocks): the graded history read
at launch names its dataset, a dataset without grading tables is a visible ``none``, and the grading
Beam job reads and writes a BigQuery warehouse the same way as DuckDB."""

from __future__ import annotations

import datetime as dt

import pytest

from pipeline.commands import common, grade
from pipeline.io import cloud
from pipeline.policy import Policy
from pipeline.schemas import RunRecord
from tests.emulators import bigquery_emulator
from tests.test_grade_command import PICKS, PREDS, TIP, D, _inputs

pytestmark = pytest.mark.emulator

PROJECT = "test-project"


@pytest.fixture(scope="module")
def bq():
    with bigquery_emulator(project=PROJECT) as emu:
        cloud.use_emulators(bigquery_endpoint=emu.endpoint, project=PROJECT)
        yield emu


@pytest.fixture(autouse=True)
def _anonymous_gcp(monkeypatch):
    import google.auth
    from google.auth.credentials import AnonymousCredentials

    monkeypatch.setenv("NO_GCE_CHECK", "true")
    monkeypatch.setattr(google.auth, "default", lambda *a, **k: (AnonymousCredentials(), None))


def test_history_of_a_dataset_without_tables_is_none(bq):
    from pipeline.io.bigquery import BigQueryWarehouse

    wh = BigQueryWarehouse(PROJECT, "never_created", create=False)
    history = common.graded_history(wh, [D], Policy())
    assert history["status"] == "none" and "prediction_accuracy" in history["missing_tables"]


def test_grading_job_on_bigquery_then_history_reads_back_from_a_non_default_dataset(bq, tmp_path):
    from pipeline.io.bigquery import BigQueryWarehouse

    wh = BigQueryWarehouse(PROJECT, "graded_elsewhere")
    wh.replace_dates([D], {"predictions": PREDS, "best_bets": PICKS}, tables=["predictions", "best_bets"])
    wh.insert_run(RunRecord("run-x", "run", "{}", "p1", None, TIP - dt.timedelta(hours=2), TIP, "succeeded",
                            "{}", D))
    out = grade.grade_dates(wh, _inputs(tmp_path / "inputs"), None, [D], policy=Policy(), run_id="g1")
    assert {r.pick_id: r.result for r in out.results} == {
        "pk-aa": "WIN", "pk-bb": "VOID", "pk-cc": "PUSH", "pk-dd": "LOSS"}
    assert len(out.accuracy) == 6 and out.counts["predictions_graded"] == 6
    assert out.record["ultra"]["all"]["record"] == "1-0"  # run-x is a live `props run` in `runs`

    history = common.graded_history(wh, [D + dt.timedelta(days=1)], Policy())
    assert history["status"] == "ok"
    assert history["by_date"][D + dt.timedelta(days=1)]["player_graded"] == {"aa": (1, 0), "dd": (0, 1)}
    assert common.live_run_ids(wh) == {"run-x"}
    again = grade.grade_dates(wh, _inputs(tmp_path / "inputs2"), None, [D], policy=Policy(), run_id="g2")
    assert sorted(a._replace(run_id=None) for a in again.accuracy) == sorted(
        a._replace(run_id=None) for a in out.accuracy)  # idempotent re-grade


def test_a_failing_history_read_on_bigquery_stops_the_launch_naming_the_table(bq):
    """A history read BigQuery rejects (here a ``prediction_accuracy`` of another shape in a non-default
    dataset) stops the launch with the table named; it is never swallowed as "no history"."""
    from google.cloud import bigquery

    from pipeline.commands.common import LaunchError
    from pipeline.io.bigquery import BigQueryWarehouse

    wh = BigQueryWarehouse(PROJECT, "broken_history")
    client = cloud.bigquery_client(PROJECT)
    table = f"{PROJECT}.broken_history.prediction_accuracy"
    client.delete_table(table)
    client.create_table(bigquery.Table(table, schema=[bigquery.SchemaField("game_date", "DATE"),
                                                      bigquery.SchemaField("note", "STRING")]))
    with pytest.raises(LaunchError, match=r"reading prediction_accuracy .*failed"):
        common.graded_history(wh, [D], Policy())

"""Never damage the old system's tables (issue #11 item 5): a BigQuery warehouse dataset that holds a
table named like one of ours but with another schema (the old ``nba_predictions.prediction_accuracy``)
is refused by ``props run``, ``props grade`` and the Dataflow launch preflight, with a message naming the
table and the columns that differ and telling to use our own dataset; our own (older) tables pass.

The old table's columns are the ones legacy.md names (``player_lookup``, ``game_id``, ``game_date``,
``system_id``, ``line_value``, ``prediction_correct``) plus ``predicted_points`` as NUMERIC (assumed: the
old system stores points as NUMERIC, legacy.md 1.7)."""

from __future__ import annotations

import datetime as dt

import pytest

from pipeline import schemas
from pipeline.commands import grade as grade_command
from pipeline.commands import run as run_command
from pipeline.commands.common import parse_options
from pipeline.io import cloud

PROJECT = "props-prod-1"
OLD = f"bigquery://{PROJECT}.nba_predictions"
OLD_ACCURACY = [("player_lookup", "STRING", "REQUIRED"), ("game_id", "STRING", "REQUIRED"),
                ("game_date", "DATE", "REQUIRED"), ("system_id", "STRING", "REQUIRED"),
                ("line_value", "NUMERIC", "NULLABLE"), ("predicted_points", "NUMERIC", "NULLABLE"),
                ("prediction_correct", "BOOL", "NULLABLE")]


def _fields(spec):
    from google.cloud import bigquery

    return [bigquery.SchemaField(n, t, mode=m) for n, t, m in spec]


def _ours(table: str, drop: tuple[str, ...] = ()) -> list:
    return _fields([(f["name"], f["type"], f["mode"]) for f in schemas.bigquery_schema(
        schemas.TABLES[table].row_type) if f["name"] not in drop])


def test_schema_differences_tell_ours_from_theirs():
    assert cloud.table_schema_differences("prediction_accuracy", _ours("prediction_accuracy")) == []
    # an older version of our table (columns added since are migrated in) is ours
    assert cloud.table_schema_differences("prediction_accuracy",
                                          _ours("prediction_accuracy", drop=("run_id", "clv"))) == []
    # the API's legacy type names are the same types
    legacy_names = _fields([("game_date", "DATE", "REQUIRED"), ("game_id", "STRING", "REQUIRED"),
                            ("player_lookup", "STRING", "REQUIRED"), ("model_id", "STRING", "REQUIRED"),
                            ("actual_points", "FLOAT", "NULLABLE"), ("is_push", "BOOLEAN", "REQUIRED")])
    assert cloud.table_schema_differences("prediction_accuracy", legacy_names) == []
    diffs = cloud.table_schema_differences("prediction_accuracy", _fields(OLD_ACCURACY))
    assert diffs[0] == "missing our key columns model_id"
    assert "predicted_points is NUMERIC (ours FLOAT64)" in diffs
    assert diffs[-1] == "columns not ours: line_value, system_id"
    # a column that may not be NULL where ours writes NULLs (hit rate of a model with no graded pick)
    strict = [f if f.name != "hr_7d" else type(f)("hr_7d", "FLOAT64", mode="REQUIRED")
              for f in _ours("model_performance_daily")]
    assert cloud.table_schema_differences("model_performance_daily", strict) == [
        "hr_7d is REQUIRED (ours may be NULL)"]


@pytest.fixture(scope="module")
def emulators():
    from tests.emulators import bigquery_emulator, gcs_emulator

    with gcs_emulator() as gcs, bigquery_emulator(project=PROJECT) as bq:
        yield gcs, bq


def _old_dataset(bq) -> object:
    """The old ``nba_predictions`` dataset with its ``prediction_accuracy`` table and one graded row."""
    from google.cloud import bigquery

    cloud.use_emulators(bigquery_endpoint=bq.endpoint, project=PROJECT)
    client = cloud.bigquery_client(PROJECT)
    client.create_dataset(bigquery.Dataset(f"{PROJECT}.nba_predictions"), exists_ok=True)
    table = bigquery.Table(f"{PROJECT}.nba_predictions.prediction_accuracy", schema=_fields(OLD_ACCURACY))
    table.time_partitioning = bigquery.TimePartitioning(type_=bigquery.TimePartitioningType.DAY,
                                                        field="game_date")
    client.create_table(table, exists_ok=True)
    if not list(client.query(f"SELECT 1 FROM `{PROJECT}.nba_predictions.prediction_accuracy`").result()):
        client.query(f"INSERT INTO `{PROJECT}.nba_predictions.prediction_accuracy` (player_lookup, game_id, "
                     "game_date, system_id, line_value, prediction_correct) VALUES ('lebronjames', "
                     "'20260222_LAL_BOS', DATE '2026-02-22', 'catboost_v9', 24.5, TRUE)").result()
    return client


def _untouched(client) -> None:
    table = client.get_table(f"{PROJECT}.nba_predictions.prediction_accuracy")
    assert [f.name for f in table.schema] == [n for n, _, _ in OLD_ACCURACY]  # no column added
    rows = list(client.query(f"SELECT * FROM `{PROJECT}.nba_predictions.prediction_accuracy`").result())
    assert len(rows) == 1 and rows[0]["system_id"] == "catboost_v9"
    assert {t.table_id for t in client.list_tables(f"{PROJECT}.nba_predictions")} == {"prediction_accuracy"}


def _says_why(text: str) -> None:
    assert f"table {PROJECT}.nba_predictions.prediction_accuracy already exists" in text
    assert "missing our key columns model_id" in text and "predicted_points is NUMERIC (ours FLOAT64)" in text
    assert "columns not ours: line_value, system_id" in text
    assert "use a dataset of this pipeline's own" in text


@pytest.mark.emulator
def test_props_run_and_grade_refuse_the_old_prediction_accuracy_and_leave_it_untouched(emulators, capsys):
    _gcs, bq = emulators
    client = _old_dataset(bq)
    code = run_command.main(["--warehouse", OLD, "--bigquery-endpoint", bq.endpoint,
                             "--game-date", "2026-02-22"])
    err = capsys.readouterr().err
    assert code == 2, err
    _says_why(err)
    assert err.startswith("props run: warehouse")
    code = grade_command.main(["--warehouse", OLD, "--bigquery-endpoint", bq.endpoint,
                               "--date", "2026-02-22"])
    err = capsys.readouterr().err
    assert code == 2, err
    _says_why(err)
    _untouched(client)
    # The dry run's preflight says the same.
    options = parse_options(["--warehouse", OLD, "--bigquery-endpoint", bq.endpoint])
    problems = cloud.preflight(options, dates=[dt.date(2026, 2, 22)])
    assert any("nba_predictions.prediction_accuracy already exists" in p for p in problems)


@pytest.mark.emulator
def test_our_own_dataset_passes_and_an_older_table_of_ours_is_migrated(emulators):
    from google.cloud import bigquery

    from pipeline.io.bigquery import BigQueryWarehouse

    _gcs, bq = emulators
    cloud.use_emulators(bigquery_endpoint=bq.endpoint, project=PROJECT)
    client = cloud.bigquery_client(PROJECT)
    client.create_dataset(bigquery.Dataset(f"{PROJECT}.props_older"), exists_ok=True)
    older = _ours("prediction_accuracy", drop=("run_id", "clv"))
    client.create_table(bigquery.Table(f"{PROJECT}.props_older.prediction_accuracy", schema=older),
                        exists_ok=True)
    uri = f"bigquery://{PROJECT}.props_older"
    cloud.launch_preflight(parse_options(["--warehouse", uri, "--bigquery-endpoint", bq.endpoint]))
    warehouse = BigQueryWarehouse.from_uri(uri)
    names = [f.name for f in client.get_table(f"{PROJECT}.props_older.prediction_accuracy").schema]
    assert "clv" in names and "run_id" in names
    assert cloud.warehouse_table_problems(uri) == [] and warehouse.row_count("prediction_accuracy") == 0


@pytest.fixture()
def anonymous_credentials(monkeypatch):
    """Application Default Credentials cannot exist on this machine: the lookup answers anonymous
    credentials (as tests/test_launch.py does); buckets and datasets are the real emulators."""
    import google.auth
    from google.auth.credentials import AnonymousCredentials

    monkeypatch.setattr(google.auth, "default", lambda *a, **k: (AnonymousCredentials(), PROJECT))


@pytest.mark.emulator
def test_the_dataflow_launch_preflight_refuses_the_old_dataset(emulators, anonymous_credentials):
    import main

    gcs, bq = emulators
    cloud.use_emulators(bigquery_endpoint=bq.endpoint, gcs_endpoint=gcs.endpoint, project=PROJECT)
    client = _old_dataset(bq)
    bucket = f"{PROJECT}-props"
    if not cloud.storage_client(PROJECT).bucket(bucket).exists():
        cloud.storage_client(PROJECT).create_bucket(bucket)
    argv = ["--command=grade", "--date=2026-02-22", f"--project={PROJECT}", f"--inputs=gs://{bucket}/inputs",
            f"--warehouse={OLD}", f"--exports=gs://{bucket}/exports",
            f"--registry=gs://{bucket}/models/registry.json", f"--temp_location=gs://{bucket}/temp"]
    problems = main.preflight(main.launcher_argv(argv))
    assert len(problems) == 1, problems
    assert problems[0].startswith("props grade: warehouse")
    _says_why(problems[0])
    _untouched(client)
    ours = [a.replace("nba_predictions", "props") if a.startswith("--warehouse") else a for a in argv]
    client.create_dataset(f"{PROJECT}.props", exists_ok=True)
    assert main.preflight(main.launcher_argv(ours)) == []

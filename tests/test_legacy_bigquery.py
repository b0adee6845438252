"""``bigquery-legacy://PROJECT`` against the BigQuery emulator: the old tables, created under their old
dataset and table names with old-style columns and partitioning, read through real SQL (partition filters,
array and scalar parameters) by ``pipeline.io.legacy.read_rows_legacy`` and through ``ReadSource``."""

from __future__ import annotations

import datetime as dt
import decimal
import io
import json

import apache_beam as beam
import pytest
from apache_beam.options.pipeline_options import PipelineOptions

from pipeline.io import cloud
from pipeline.io import legacy as lg
from pipeline.io.sources import ReadSource, read_local
from tests.emulators import bigquery_emulator
from tests.test_legacy_mapping import D, _fetch, _tables

pytestmark = pytest.mark.emulator

PROJECT = "nba-props-platform"
URI = f"bigquery-legacy://{PROJECT}"
PARTITION = {"injuries": "report_date", "postponements": None}
_TYPES = [(bool, "BOOL"), (int, "INT64"), (float, "FLOAT64"), (decimal.Decimal, "NUMERIC"),
          (dt.datetime, "TIMESTAMP"), (dt.date, "DATE"), (str, "STRING")]


def _bq_type(value) -> tuple[str, str]:
    if isinstance(value, list):
        return _bq_type(value[0])[0], "REPEATED"
    return next(t for py, t in _TYPES if isinstance(value, py)), "NULLABLE"


def _json(value):
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, (dt.date, decimal.Decimal)):
        return str(value)
    return value


def _create(client, key: str, rows: list[dict], project: str = PROJECT) -> None:
    """Creates the old table of ``key`` (columns typed from the rows, old partitioning) and loads rows."""
    from google.cloud import bigquery

    dataset, name = lg.LEGACY_TABLES[key].split(".")
    client.create_dataset(bigquery.Dataset(f"{project}.{dataset}"), exists_ok=True)
    fields: dict[str, tuple[str, str]] = {}
    for row in rows:
        for col, value in row.items():
            if value is not None and value != []:
                fields.setdefault(col, _bq_type(value))
    schema = [bigquery.SchemaField(c, t, mode=m) for c, (t, m) in fields.items()]
    table = bigquery.Table(f"{project}.{dataset}.{name}", schema=schema)
    part = PARTITION.get(key, "game_date")
    if part:
        table.time_partitioning = bigquery.TimePartitioning(type_=bigquery.TimePartitioningType.DAY,
                                                            field=part)
    client.create_table(table, exists_ok=True)
    data = "\n".join(json.dumps({c: _json(v) for c, v in r.items() if c in fields}) for r in rows).encode()
    config = bigquery.LoadJobConfig(source_format=bigquery.SourceFormat.NEWLINE_DELIMITED_JSON, schema=schema)
    client.load_table_from_file(io.BytesIO(data), table, job_config=config).result()


@pytest.fixture(scope="module")
def old_tables():
    with bigquery_emulator(project=PROJECT) as emu:
        cloud.use_emulators(bigquery_endpoint=emu.endpoint, project=PROJECT)
        client = cloud.bigquery_client(PROJECT)
        tables = _tables()
        later = D + dt.timedelta(days=2)  # rows of another date: the partition filter must leave them
        for key, rows in tables.items():
            extra = []
            for r in rows:
                moved = dict(r)
                for col in ("game_date", "original_date", "report_date"):
                    if col in moved:
                        moved[col] = later
                extra.append(moved)
            _create(client, key, rows + extra)
        yield tables


@pytest.mark.parametrize("kind", ["odds", "schedule", "injuries", "features", "box_scores"])
def test_old_tables_read_by_their_old_names_give_the_mapped_rows(old_tables, kind):
    rows, dead = lg.read_rows_legacy(URI, kind, [D])
    query, _ = _fetch(old_tables)
    want, want_dead = lg.read_rows_legacy(URI, kind, [D], query=query)
    assert dead == want_dead == []
    assert sorted(rows) == sorted(want) and rows
    assert {r.game_date for r in rows} == {D}
    assert read_local(URI, kind, [D]) == (rows, dead)  # sources.py dispatches the scheme


def test_beam_read_source_of_the_old_tables(old_tables):
    from apache_beam.testing.util import assert_that, equal_to

    want, _ = lg.read_rows_legacy(URI, "injuries", [D])
    with beam.Pipeline(options=PipelineOptions(["--runner=FnApiRunner"])) as p:
        out = p | ReadSource(URI, "injuries", [D])
        assert_that(out.rows, equal_to(want), label="Rows")
        assert_that(out.dead_letters, equal_to([]), label="Dead")

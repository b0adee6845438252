"""Acceptance: the slate written to the BigQuery + GCS emulators equals the DuckDB/local run of the date.

Runs ``props run`` in-process (FnApiRunner; the emulator patches reach in-process runners only) on the local
default date, once to DuckDB + a local folder and twice to BigQuery + gs://, then compares every slate
table (ignoring run_id) and every export file (ignoring generated_at), and checks the re-run kept the counts.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.io import cloud
from tests.emulators import bigquery_emulator, gcs_emulator

pytestmark = [pytest.mark.emulator, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[1]
PROJECT = "test-project"
IGNORED = {"run_id", "generated_at", "changed_at"}


def _normalise(doc):
    if isinstance(doc, dict):
        return {k: _normalise(v) for k, v in doc.items() if k not in IGNORED}
    if isinstance(doc, list):
        return [_normalise(v) for v in doc]
    return doc


def _value(v):
    """One comparable form per value whatever the backend returns (lists vs arrays, Timestamps, NaN)."""
    import math

    import numpy as np
    import pandas as pd

    if isinstance(v, (list, tuple, np.ndarray)):
        return tuple(_value(x) for x in v)
    if v is None or (isinstance(v, float) and math.isnan(v)) or v is pd.NaT:
        return None
    if isinstance(v, pd.Timestamp):
        return v.tz_convert("UTC").isoformat() if v.tzinfo else v.isoformat()
    if hasattr(v, "isoformat"):
        return v.isoformat()
    if isinstance(v, (float, np.floating)):
        return round(float(v), 6)
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, np.bool_):
        return bool(v)
    return v


def _table(warehouse, table: str) -> list[tuple]:
    df = warehouse.read_table(table).drop(columns=["run_id"], errors="ignore")
    df = df[sorted(df.columns)]
    rows = (tuple(_value(v) for v in row) for row in df.astype(object).itertuples(index=False, name=None))
    return sorted(rows, key=repr)


def test_slate_to_bigquery_and_gcs_equals_the_local_run(tmp_path):
    from pipeline.commands import run
    from pipeline.io.warehouse import SLATE_TABLES, open_warehouse

    local_wh, local_exports = f"duckdb://{tmp_path}/props.duckdb", tmp_path / "exports"
    assert run.main(["--warehouse", local_wh, "--exports", str(local_exports)]) == 0
    with gcs_emulator() as gcs, bigquery_emulator(project=PROJECT, gcs_root=gcs.root) as bq:
        cloud.use_emulators(bigquery_endpoint=bq.endpoint, gcs_endpoint=gcs.endpoint, project=PROJECT)
        from pipeline.io import gcs as gcs_mod

        gcs_mod.ensure_bucket("props-exports")
        argv = ["--warehouse", f"bigquery://{PROJECT}.props", "--exports", "gs://props-exports/v1",
                "--project", PROJECT, "--bigquery_endpoint", bq.endpoint, "--gcs_endpoint", gcs.endpoint]
        assert run.main(argv) == 0
        remote = open_warehouse(f"bigquery://{PROJECT}.props")
        first = {t: remote.row_count(t) for t in SLATE_TABLES}
        assert run.main(argv) == 0
        assert {t: remote.row_count(t) for t in SLATE_TABLES} == first  # a re-run never duplicates
        local = open_warehouse(local_wh)
        for t in SLATE_TABLES:
            assert _table(remote, t) == _table(local, t), t
        from apache_beam.io.filesystems import FileSystems

        local_files = sorted(p.relative_to(local_exports).as_posix() for p in local_exports.rglob("*.json"))
        remote_files = sorted(m.path[len("gs://props-exports/v1/"):] for m in FileSystems.match(
            ["gs://props-exports/v1/**"])[0].metadata_list)
        assert remote_files == local_files
        for rel in local_files:
            with FileSystems.open(f"gs://props-exports/v1/{rel}") as f:
                remote_doc = json.loads(f.read())
            assert _normalise(remote_doc) == _normalise(json.loads((local_exports / rel).read_text())), rel

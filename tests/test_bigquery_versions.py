"""``BigQueryWarehouse.upsert_versions`` against the local bqemulator (real client, real SQL; no mocks):
the BigQuery twin of the DuckDB versioned-row upsert the stream writes through."""

from __future__ import annotations

import datetime as dt

import pytest

from pipeline import schemas
from pipeline.io import cloud
from tests.emulators import bigquery_emulator

pytestmark = pytest.mark.emulator

PROJECT = "test-project"
D1 = dt.date(2026, 2, 22)
TS = dt.datetime(2026, 2, 22, 23, 0, 5, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def warehouse():
    from pipeline.io.bigquery import BigQueryWarehouse

    with bigquery_emulator(project=PROJECT) as emu:
        cloud.use_emulators(bigquery_endpoint=emu.endpoint, project=PROJECT)
        yield BigQueryWarehouse(PROJECT, "wh_versions")


def test_upsert_versions_is_idempotent_per_player_game_version(warehouse):
    gate = schemas.GateDecision(D1, "20260222_LAL_BOS", "a", "RETRY", True, "quality_sufficient", 90.0,
                                version=1, scored_at=TS, run_id="s1", policy_version="p1")
    warehouse.replace_dates([D1], {"gate_decisions": [gate._replace(version=0, scored_at=None)]},
                            tables=("gate_decisions",))
    assert warehouse.upsert_versions({"gate_decisions": [gate]}) == {"gate_decisions": 1}
    warehouse.upsert_versions({"gate_decisions": [gate._replace(reason="injury_out", viable=False)]})
    warehouse.upsert_versions({"gate_decisions": [gate._replace(version=2)]})
    table = warehouse._ref("gate_decisions")
    rows = warehouse.query(f"SELECT version, reason FROM `{table}` ORDER BY version")
    assert [(r["version"], r["reason"]) for r in rows] == [
        (0, "quality_sufficient"), (1, "injury_out"), (2, "quality_sufficient")]

"""BigQuery warehouse and inputs against the local bqemulator (real client, real SQL; no mocks)."""

from __future__ import annotations

import datetime as dt
import json

import apache_beam as beam
import pytest
from apache_beam.options.pipeline_options import PipelineOptions

from pipeline import schemas
from pipeline.io import cloud
from tests.emulators import bigquery_emulator

pytestmark = pytest.mark.emulator

PROJECT = "test-project"
D1, D2 = dt.date(2026, 2, 22), dt.date(2026, 2, 23)
TS = dt.datetime(2026, 2, 22, 23, 0, 5, 123456, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def bq():
    with bigquery_emulator(project=PROJECT) as emu:
        cloud.use_emulators(bigquery_endpoint=emu.endpoint, project=PROJECT)
        yield emu


@pytest.fixture()
def warehouse(bq, request):
    from pipeline.io.bigquery import BigQueryWarehouse

    return BigQueryWarehouse(PROJECT, f"wh_{request.node.name[:40].replace('[', '_').replace(']', '_')}")


def pick(game_id: str, player: str, d: dt.date = D1, version: int = 1, rank: int = 1) -> schemas.Pick:
    return schemas.Pick(
        pick_id=f"{player}-{d}", game_date=d, game_id=game_id, player_lookup=player, player_name=player,
        team_abbr="LAL", opponent_team_abbr="BOS", tipoff_utc=TS, rank=rank, direction="OVER", line=24.5,
        line_book="draftkings", line_snapshot_ts=TS, consensus_edge=5.25, predicted_points=29.75,
        agreement=1.0, n_families=3, n_models=4, dispersion=0.5, confidence=0.8,
        model_ids=("m1", "m2"), signals=("rest_edge",), signal_details='{"rest_edge": 1}',
        filter_audit="{}", pick_angles=("angle a",), ultra_tier=False, ultra_criteria="{}", status="active",
        version=version, run_id="r1", policy_version="p1")


def summary(d: dt.date = D1, passed: int = 2) -> schemas.FilterSummary:
    return schemas.FilterSummary(d, 10, passed, json.dumps({"edge_floor": 8 - passed}), "r1", "p1")


def test_tables_are_partitioned_and_clustered(warehouse):
    table = warehouse.client.get_table(warehouse._ref("predictions"))
    assert table.time_partitioning.field == "game_date"
    assert table.clustering_fields == ["model_id", "player_lookup"]
    assert [f.name for f in table.schema] == list(schemas.Prediction._fields)
    assert {f.name: f.field_type for f in table.schema}["line_snapshot_ts"] == "TIMESTAMP"
    assert warehouse.client.get_table(warehouse._ref("runs")).time_partitioning is None


def test_replace_dates_round_trips_types_and_rerun_never_duplicates(warehouse):
    rows = {"best_bets": [pick("20260222_LAL_BOS", "a"), pick("20260222_NYK_MIA", "b", rank=2)],
            "filter_summary": [summary()]}
    warehouse.replace_dates([D1], rows)
    warehouse.replace_dates([D1], rows)
    stored = sorted(warehouse.read_rows("best_bets", [D1]))
    assert stored == sorted(rows["best_bets"])  # DATE, TIMESTAMP (microseconds), REPEATED, floats
    assert warehouse.row_count("best_bets") == 2 and warehouse.row_count("filter_summary") == 1


def test_zero_pick_rerun_clears_only_its_date_and_keeps_protected_picks(warehouse):
    warehouse.replace_dates([D1], {"best_bets": [pick("20260222_LAL_BOS", "a"),
                                                 pick("20260222_NYK_MIA", "b", rank=2)]})
    warehouse.replace_dates([D2], {"best_bets": [pick("20260223_LAL_BOS", "c", d=D2)]})
    counts = warehouse.replace_dates(
        [D1], {"best_bets": [pick("20260222_LAL_BOS", "a", version=2)]},
        protected_pick_game_ids={"20260222_LAL_BOS"})
    assert counts["best_bets_protected_skipped"] == 1
    kept = warehouse.read_rows("best_bets", [D1])
    assert [(p.player_lookup, p.version) for p in kept] == [("a", 1)]  # the started game's pick stands
    assert len(warehouse.read_rows("best_bets", [D2])) == 1  # another date untouched


def test_runs_and_query_params(warehouse):
    run = schemas.RunRecord("r1", "run", "{}", "p1", "d1", TS, None, "running", "{}", D1)
    warehouse.insert_run(run)
    warehouse.finish_run("r1", TS + dt.timedelta(minutes=3), "succeeded", '{"picks": 2}')
    (row,) = warehouse.query(f"SELECT * FROM `{warehouse._ref('runs')}` WHERE run_id = ?", ["r1"])
    assert row["status"] == "succeeded" and row["finished_at"] == TS + dt.timedelta(minutes=3)


def test_best_bets_latest_view_has_one_row_per_pick(warehouse):
    history = [schemas.BestBetHistory("created" if v == 1 else "updated", TS + dt.timedelta(minutes=v),
                                      *pick("20260222_LAL_BOS", "a", version=v)) for v in (1, 2, 3)]
    warehouse.append("best_bets_history", history)
    warehouse.append("best_bets_history", [history[0]])  # an at-least-once redelivery
    latest = warehouse.query(f"SELECT pick_id, version FROM `{warehouse._ref('best_bets_latest')}`")
    assert latest == [{"pick_id": "a-2026-02-22", "version": 3}]


def test_replace_validates_rows_before_touching_tables(warehouse):
    warehouse.replace_dates([D1], {"filter_summary": [summary()]})
    with pytest.raises(ValueError, match="outside the replaced dates"):
        warehouse.replace_dates([D1], {"filter_summary": [summary(D2)]})
    with pytest.raises(TypeError, match="takes FilterSummary"):
        warehouse.replace_dates([D1], {"filter_summary": [pick("20260222_LAL_BOS", "a")]})
    assert warehouse.row_count("filter_summary") == 1


def test_inputs_one_query_per_kind_numeric_to_float_and_dead_letters(bq):
    from pipeline.io.bigquery import load_raw_inputs, read_rows_bigquery

    uri = f"bigquery://{PROJECT}.raw_inputs"
    odds = [schemas.OddsSnapshot("lebronjames", "LeBron James", "20260222_LAL_BOS", d, "draftkings", 24.5,
                                 -110, -115, TS, "odds_api") for d in (D1, D2)]
    load_raw_inputs(uri, "odds", odds)
    rows, dead = read_rows_bigquery(uri, "odds", [D1])
    assert rows == [odds[0]] and dead == []  # NUMERIC 24.5 came back as Decimal, parsed to float
    assert isinstance(rows[0].line, float)
    cloud.bigquery_client(PROJECT).query(
        f"INSERT INTO `{PROJECT}.raw_inputs.odds` (player_lookup, player_name, game_id, game_date, book,"
        " line, over_price, under_price, snapshot_ts, source_api) VALUES ('x', 'X', 'bad-id',"
        " DATE '2026-02-22', 'fanduel', NUMERIC '20.5', -110, -110, TIMESTAMP '2026-02-22 20:00:00+00',"
        " 'odds_api')").result()
    rows, dead = read_rows_bigquery(uri, "odds", [D1])
    assert len(rows) == 1 and len(dead) == 1 and "game_id" in dead[0].error


def test_features_inputs_map_named_columns_to_the_feature_tuple(bq):
    from pipeline.io.bigquery import load_raw_inputs, read_rows_bigquery

    uri = f"bigquery://{PROJECT}.raw_features"
    feats = tuple(float(i) if i != 18 else None for i in range(55))
    row = schemas.FeatureRow("a", "20260222_LAL_BOS", D1, "LAL", "BOS", "v12", feats, 91.5, "green", 100.0, 0,
                             (18,), 22.5)
    load_raw_inputs(uri, "features", [row])
    assert read_rows_bigquery(uri, "features", [D1]) == ([row], [])


def test_beam_read_inputs_transform(bq):
    from apache_beam.testing.util import assert_that, equal_to

    from pipeline.io.bigquery import ReadBigQueryInputs, load_raw_inputs

    uri = f"bigquery://{PROJECT}.raw_beam"
    rep = schemas.InjuryReport("a", D1, "Out", "knee", TS)
    load_raw_inputs(uri, "injuries", [rep, rep._replace(game_date=D2)])
    with beam.Pipeline(options=PipelineOptions(["--runner=FnApiRunner"])) as p:
        out = p | ReadBigQueryInputs(uri, "injuries", [D1])
        assert_that(out.rows, equal_to([rep]), label="Rows")
        assert_that(out.dead_letters, equal_to([]), label="Dead")


def test_beam_sink_writes_with_write_to_bigquery_and_replaces_dates(warehouse):
    from pipeline.io.bigquery import WriteToBigQueryWarehouse

    warehouse.replace_dates([D1], {"best_bets": [pick("20260222_OLD_OLD", "stale")]})
    pairs = [("best_bets", pick("20260222_LAL_BOS", "a")), ("filter_summary", summary()),
             ("dead_letters", schemas.DeadLetter("odds", "parse", "bad", "{}", None))]
    for _ in range(2):  # a re-run leaves the same rows
        with beam.Pipeline(options=PipelineOptions(["--runner=FnApiRunner", f"--project={PROJECT}"])) as p:
            _ = (p | beam.Create(pairs)
                 | WriteToBigQueryWarehouse(warehouse.uri, [D1], tables=("best_bets", "filter_summary",
                                                                          "dead_letters")))
    assert [b.player_lookup for b in warehouse.read_rows("best_bets", [D1])] == ["a"]
    assert warehouse.read_rows("filter_summary") == [summary()]
    assert [d.game_date for d in warehouse.read_rows("dead_letters")] == [D1]
    leftovers = [t.table_id for t in warehouse.client.list_tables(f"{PROJECT}.{warehouse.dataset}")
                 if t.table_id.startswith("_staging_")]
    assert leftovers == []


def test_streaming_upsert_is_idempotent_and_the_view_shows_the_latest_version(warehouse):
    """The stream's sink: a redelivered change (same pick_id, version) never duplicates a row."""
    from pipeline.domain.lifecycle import PickChange

    now = dt.datetime(2026, 2, 22, 20, 0, tzinfo=dt.UTC)
    v1 = pick("20260222_LAL_BOS", "alpha", version=1)
    v2 = v1._replace(version=2, line=25.5)
    changes = [PickChange("created", v1, now), PickChange("updated", v2, now + dt.timedelta(minutes=5))]
    from pipeline.io.stream_sinks import apply_changes

    assert apply_changes(warehouse, changes) == 2
    assert apply_changes(warehouse, changes[1:]) == 1  # redelivered
    rows = warehouse.query(f"SELECT pick_id, version, line FROM `{warehouse._ref('best_bets')}`")
    assert [(r["pick_id"], r["version"], r["line"]) for r in rows] == [(v1.pick_id, 2, 25.5)]
    hist = warehouse.query(f"SELECT version FROM `{warehouse._ref('best_bets_history')}` ORDER BY version")
    assert [r["version"] for r in hist] == [1, 2]
    latest = warehouse.query(f"SELECT version, `change` FROM `{warehouse._ref('best_bets_latest')}`")
    assert [(r["version"], r["change"]) for r in latest] == [(2, "updated")]

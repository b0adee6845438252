"""Tests for pipeline.io.exports: the numeric policy, the documents, the writers."""

from __future__ import annotations

import datetime as dt
import json
import os
from decimal import Decimal

import apache_beam as beam
import numpy as np
import pandas as pd
import pytest
from apache_beam.testing.test_pipeline import TestPipeline

from pipeline import schemas
from pipeline.io.exports import (
    ADMIN_FIELDS,
    BEST_BETS_FIELDS,
    PUBLIC_PICK_FIELDS,
    admin_picks_document,
    best_bets_document,
    dumps,
    edge_distribution,
    latest_moves_forward,
    remove_orphan_temp_files,
    temp_path,
    to_jsonable,
    write_json,
)

os.environ.setdefault("NO_GCE_CHECK", "true")

UTC = dt.UTC
D1 = dt.date(2026, 2, 22)
D2 = dt.date(2026, 2, 23)
GENERATED = dt.datetime(2026, 2, 22, 17, 0, tzinfo=UTC)


def pick(pick_id: str, rank: int = 1, status: str = "active", edge: float = 5.56) -> schemas.Pick:
    return schemas.Pick(
        pick_id=pick_id, game_date=D1, game_id="20260222_LAL_BOS", player_lookup=f"p{pick_id}",
        player_name=f"Player {pick_id}", team_abbr="LAL", opponent_team_abbr="BOS",
        tipoff_utc=dt.datetime(2026, 2, 23, 0, 30, tzinfo=UTC), rank=rank, direction="OVER", line=24.5,
        line_book="draftkings", line_snapshot_ts=None, consensus_edge=edge, predicted_points=30.061,
        agreement=0.8, n_families=3, n_models=5, dispersion=0.4, confidence=0.8, model_ids=("m1", "m2"),
        signals=("high_edge",), signal_details='{"high_edge": {"confidence": 0.56}}',
        filter_audit='{"edge_floor": "pass"}',
        pick_angles=("High conviction: edge 5.6 pts", "Ultra: v12_mae and consensus both 6+ OVER"),
        ultra_tier=True, ultra_criteria='{"v12_mae_edge": 6.5}', status=status, version=1)


def consensus(edge: float | None, line: float | None = 20.5) -> schemas.Consensus:
    return schemas.Consensus(
        game_date=D1, game_id="20260222_LAL_BOS", player_lookup="x", line=line, line_book=None,
        line_snapshot_ts=None, consensus_edge=edge, consensus_prediction=None, direction=None, n_families=1,
        n_models=1, agreement=None, dispersion=None, max_edge_model_id=None, max_edge=None,
        family_edges='{"v12_mae": 1.0}', model_ids=("m1",), mean_confidence=None, method="mean")


SUMMARY = schemas.FilterSummary(game_date=D1, total_candidates=12, passed=1, rejected='{"edge_floor": 11}')


def test_numeric_policy_round_trip():
    value = {
        "dec": Decimal("1.50"), "dec_int": Decimal("2.000"), "nan": float("nan"), "inf": float("-inf"),
        "dec_nan": Decimal("NaN"), "np_f": np.float64(2.5), "np_i": np.int64(3), "np_nan": np.float32("nan"),
        "np_arr": np.array([1, 2]), "date": D1, "naive": dt.datetime(2026, 2, 22, 18, 0),
        "offset": dt.datetime(2026, 2, 22, 13, 0, tzinfo=dt.timezone(dt.timedelta(hours=-5))),
        "pd_ts": pd.Timestamp("2026-02-22 18:00:00.5", tz="UTC"), "na": pd.NA, "nat": pd.NaT,
        "tuple": (1, "a"), date_key(): 1,
    }
    text = dumps(value)
    assert "NaN" not in text and "Infinity" not in text
    back = json.loads(text)
    assert back == {
        "dec": 1.5, "dec_int": 2, "nan": None, "inf": None, "dec_nan": None, "np_f": 2.5, "np_i": 3,
        "np_nan": None, "np_arr": [1, 2], "date": "2026-02-22", "naive": "2026-02-22T18:00:00Z",
        "offset": "2026-02-22T18:00:00Z", "pd_ts": "2026-02-22T18:00:00.500000Z", "na": None, "nat": None,
        "tuple": [1, "a"], "2026-02-23": 1,
    }
    assert type(back["dec_int"]) is int and type(back["np_i"]) is int


def date_key():
    return D2


def test_namedtuple_json_fields_parsed():
    out = to_jsonable(pick("a"))
    assert out["signal_details"] == {"high_edge": {"confidence": 0.56}}
    assert out["ultra_criteria"] == {"v12_mae_edge": 6.5} and out["model_ids"] == ["m1", "m2"]
    assert out["tipoff_utc"] == "2026-02-23T00:30:00Z" and out["game_date"] == "2026-02-22"
    assert to_jsonable(consensus(1.0))["family_edges"] == {"v12_mae": 1.0}
    assert to_jsonable(SUMMARY)["rejected"] == {"edge_floor": 11}
    with pytest.raises(TypeError, match="cannot export"):
        to_jsonable(object())


def test_empty_date_document_is_complete():
    doc = best_bets_document(D1, [], None, generated_at=GENERATED, policy_version="p1", record=None,
                             ultra_public=False, consensus=None)
    assert list(doc) == list(BEST_BETS_FIELDS)
    assert doc["picks"] == [] and doc["total_picks"] == 0 and doc["record"] is None
    assert doc["date"] == "2026-02-22" and doc["generated_at"] == "2026-02-22T17:00:00Z"
    assert doc["edge_distribution"] == {"0-2": 0, "2-3": 0, "3-5": 0, "5-7": 0, "7+": 0}
    json.dumps(doc, allow_nan=False)


def test_best_bets_document_contract_fields():
    picks = [pick("b", rank=2, edge=-7.25), pick("a", rank=1), pick("w", rank=3, status="withdrawn")]
    doc = best_bets_document(D1, picks, SUMMARY, generated_at=GENERATED, policy_version="p1",
                             record={"season": {"w": 10, "l": 5}}, ultra_public=False,
                             consensus=[consensus(5.56), consensus(-7.25), consensus(1.0, line=None)])
    assert list(doc) == list(BEST_BETS_FIELDS)
    assert doc["total_picks"] == 2 and [p["pick_id"] for p in doc["picks"]] == ["a", "b"]
    first = doc["picks"][0]
    assert tuple(first) == PUBLIC_PICK_FIELDS
    assert first["player"] == "Player a" and first["team"] == "LAL" and first["opponent"] == "BOS"
    assert first["game_time"] == "2026-02-23T00:30:00Z" and first["edge"] == 5.56
    assert first["prediction"] == 30.06 and first["angles"] == ["High conviction: edge 5.6 pts"]
    assert doc["filter_summary"] == {"total_candidates": 12, "passed": 1, "rejected": {"edge_floor": 11}}
    assert doc["edge_distribution"] == {"0-2": 0, "2-3": 0, "3-5": 0, "5-7": 1, "7+": 1}
    assert doc["record"] == {"season": {"w": 10, "l": 5}}
    public = best_bets_document(D1, picks, SUMMARY, generated_at=GENERATED, policy_version="p1",
                                record=None, ultra_public=True, consensus=None)
    assert public["picks"][0]["ultra_tier"] is True
    # The tier (and any angle naming it) is public only once the gate holds.
    assert "Ultra: v12_mae and consensus both 6+ OVER" in public["picks"][0]["angles"]
    assert "ultra_tier" not in first and not any("Ultra" in a for a in first["angles"])


def test_edge_distribution_bucket_bounds():
    rows = [consensus(e) for e in (0.0, 1.99, 2.0, -2.99, 3.0, 4.99, 5.0, -6.99, 7.0, 12.0)]
    rows += [consensus(None), consensus(float("nan"))]
    assert edge_distribution(rows) == {"0-2": 2, "2-3": 2, "3-5": 2, "5-7": 2, "7+": 2}


def test_admin_document_has_every_pick_field():
    doc = admin_picks_document(D1, [pick("w", status="withdrawn"), pick("a")], SUMMARY,
                               gate_counts={"viable": 10, "injury_out": 2},
                               diagnostics_counts={"NO_PROP_LINE": 3}, generated_at=GENERATED,
                               policy_version="p1")
    assert list(doc) == list(ADMIN_FIELDS)
    assert doc["total_picks"] == 2 and set(doc["picks"][0]) == set(schemas.Pick._fields)
    assert doc["picks"][1]["filter_audit"] == {"edge_floor": "pass"}
    assert doc["gate_counts"] == {"viable": 10, "injury_out": 2}
    empty = admin_picks_document(D1, [], None, gate_counts={}, diagnostics_counts={}, generated_at=GENERATED,
                                 policy_version="p1")
    assert empty["picks"] == [] and empty["filter_summary"] is None


def test_write_json_local_atomic(tmp_path):
    uri = str(tmp_path / "best-bets" / "latest.json")
    write_json(uri, {"a": Decimal("1.5"), "d": D1}, cache_control="public, max-age=60")
    write_json(uri, {"a": 2})
    assert json.loads(open(uri).read()) == {"a": 2}
    assert os.listdir(tmp_path / "best-bets") == ["latest.json"]  # no temporary files left


def _write_slate(warehouse, exports, dates, pairs, protected=None):
    from pipeline.io.slate_sink import WriteSlateOutputs
    from pipeline.io.warehouse import SLATE_TABLES

    with TestPipeline(runner="FnApiRunner") as p:
        _ = (p | beam.Create(pairs)
             | WriteSlateOutputs(warehouse_uri=warehouse, exports_uri=exports, dates=dates,
                                 tables=SLATE_TABLES, protected_pick_game_ids=protected or {},
                                 policy_version="p1"))


def _read(exports, rel):
    with open(os.path.join(exports, rel)) as f:
        return json.load(f)


def test_exports_equal_the_committed_tables_after_a_rerun_past_tipoff(tmp_path):
    """The re-run after game 1 tipped off keeps game 1's stored pick (protected) and exports it too."""
    from pipeline.io.warehouse import open_warehouse

    wh, exports = f"duckdb://{tmp_path}/w.duckdb", str(tmp_path / "exports")
    started, later = pick("a", rank=1), pick("b", rank=2)._replace(game_id="20260222_NYK_MIA")
    _write_slate(wh, exports, [D1], [("best_bets", started), ("best_bets", later),
                                     ("filter_summary", SUMMARY)])
    assert [p["pick_id"] for p in _read(exports, "best-bets/2026-02-22.json")["picks"]] == ["a", "b"]
    moved = later._replace(line=25.5, rank=1)  # the re-run: game 1 is out of the universe, b's line moved
    _write_slate(wh, exports, [D1], [("best_bets", moved), ("filter_summary", SUMMARY._replace(passed=1))],
                 protected={D1: ("20260222_LAL_BOS",)})
    table = sorted(open_warehouse(wh).read_rows("best_bets", [D1]), key=lambda p: p.pick_id)
    assert [(p.pick_id, p.line) for p in table] == [("a", 24.5), ("b", 25.5)]
    doc, admin = _read(exports, "best-bets/2026-02-22.json"), _read(exports, "admin/picks/2026-02-22.json")
    assert sorted((p["pick_id"], p["line"]) for p in doc["picks"]) == [("a", 24.5), ("b", 25.5)]
    assert doc["total_picks"] == admin["total_picks"] == len(table) == 2
    assert _read(exports, "best-bets/latest.json") == doc


def test_latest_json_only_moves_forward(tmp_path):
    wh, exports = f"duckdb://{tmp_path}/w.duckdb", str(tmp_path / "exports")
    p2 = pick("late")._replace(game_date=D2, game_id="20260223_LAL_BOS")
    _write_slate(wh, exports, [D2], [("best_bets", p2)])
    assert _read(exports, "best-bets/latest.json")["date"] == "2026-02-23"
    _write_slate(wh, exports, [D1], [("best_bets", pick("early"))])  # an earlier date's run (or backfill)
    assert _read(exports, "best-bets/2026-02-22.json")["picks"][0]["pick_id"] == "early"
    latest = _read(exports, "best-bets/latest.json")
    assert latest["date"] == "2026-02-23" and latest["picks"][0]["pick_id"] == "late"
    _write_slate(wh, exports, [D1, D2], [("best_bets", pick("early"))])  # a backfill ending on D2: D2 wins
    assert _read(exports, "best-bets/latest.json") == _read(exports, "best-bets/2026-02-23.json")
    assert _read(exports, "best-bets/latest.json")["picks"] == []  # D2 re-run with no picks refreshes it


def test_latest_moves_forward_rule():
    assert latest_moves_forward(None, D1) and latest_moves_forward({"date": "garbage"}, D1)
    assert latest_moves_forward({"date": "2026-02-22"}, D1)  # a re-run of the same date refreshes
    assert not latest_moves_forward({"date": "2026-02-23"}, D1)


def test_orphan_temp_files_of_gone_processes_are_removed(tmp_path):
    import socket
    import subprocess
    import sys

    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    folder = tmp_path / "best-bets"
    folder.mkdir()
    host = socket.gethostname().replace(".", "_")
    dead = folder / f".latest.json.{host}.{gone.pid}.{'a' * 32}.tmp"
    mine = folder / f".latest.json.{host}.{os.getpid()}.{'b' * 32}.tmp"
    other = folder / f".latest.json.otherhost.{gone.pid}.{'c' * 32}.tmp"
    keep = folder / "2026-02-22.json"
    for f in (dead, mine, other, keep):
        f.write_text("{}")
    assert remove_orphan_temp_files(str(tmp_path)) == [str(dead)]
    assert sorted(os.listdir(folder)) == sorted([mine.name, other.name, keep.name])
    assert temp_path(str(keep)).startswith(str(folder / f".2026-02-22.json.{host}.{os.getpid()}."))


def test_the_sink_groups_a_bundles_rows_by_date_and_refuses_a_date_outside_the_run():
    """GroupInBundleFn keyed by DateOfPair: one ``(date, RowGroup)`` per date and bundle carries every pair
    once, in order (one pickle per group at the shuffle instead of one per row); a row of a date the run
    does not replace fails the run (a planning bug) instead of being written under another date or
    dropped."""
    from pipeline.io.files import GroupInBundleFn, RowGroup, rows_of_groups
    from pipeline.io.slate_sink import DateOfPair

    p2 = pick("late")._replace(game_date=D2, game_id="20260223_LAL_BOS")
    pairs = [("best_bets", pick("a")), ("best_bets", p2), ("filter_summary", SUMMARY),
             ("best_bets", pick("b"))]
    fn = GroupInBundleFn(DateOfPair([D1.isoformat(), D2.isoformat()]))
    fn.start_bundle()
    for pair in pairs:
        assert list(fn.process(pair, timestamp=0, window="w")) == []
    out = {wv.value[0]: wv.value[1] for wv in fn.finish_bundle()}
    assert set(out) == {"2026-02-22", "2026-02-23"} and all(type(g) is RowGroup for g in out.values())
    assert out["2026-02-22"] == [pairs[0], pairs[2], pairs[3]] and out["2026-02-23"] == [pairs[1]]
    assert rows_of_groups([out["2026-02-22"], None, RowGroup([pairs[1]])]) == [*out["2026-02-22"], pairs[1]]

    # A group is emitted once it holds max_rows (bounded memory), the rest at the bundle's end.
    fn = GroupInBundleFn(DateOfPair([D1.isoformat(), D2.isoformat()]), max_rows=2)
    fn.start_bundle()
    early = [out.value for pair in pairs for out in fn.process(pair, timestamp=0, window="w")]
    assert early == [("2026-02-22", [pairs[0], pairs[2]])]
    rest = sorted(wv.value for wv in fn.finish_bundle())
    assert rest == [("2026-02-22", [pairs[3]]), ("2026-02-23", [pairs[1]])]

    fn = GroupInBundleFn(DateOfPair([D1.isoformat()]))
    fn.start_bundle()
    with pytest.raises(ValueError, match="not a date of this run"):
        list(fn.process(("best_bets", p2), timestamp=0, window="w"))


def test_rows_of_several_dates_through_the_sink_land_on_their_dates(tmp_path):
    from pipeline.io.warehouse import open_warehouse

    wh, exports = f"duckdb://{tmp_path}/w.duckdb", str(tmp_path / "exports")
    p2 = pick("late")._replace(game_date=D2, game_id="20260223_LAL_BOS")
    _write_slate(wh, exports, [D1, D2], [("best_bets", pick("a")), ("best_bets", p2),
                                         ("best_bets", pick("b", rank=2)), ("filter_summary", SUMMARY)])
    w = open_warehouse(wh)
    assert sorted(p.pick_id for p in w.read_rows("best_bets", [D1])) == ["a", "b"]
    assert [p.pick_id for p in w.read_rows("best_bets", [D2])] == ["late"]
    assert [p["pick_id"] for p in _read(exports, "best-bets/2026-02-23.json")["picks"]] == ["late"]


def test_the_dates_of_a_bundle_share_one_warehouse_connection_released_when_it_ends(tmp_path, first_args):
    """Each DuckDB open reads the catalog and each close checkpoints (~90 ms a date in a backfill): the
    sink opens one connection for the dates of a bundle, and the file is free for another process as
    soon as the bundle ends."""
    import subprocess
    import sys

    import duckdb

    wh, exports = tmp_path / "w.duckdb", str(tmp_path / "exports")
    opened = first_args(duckdb, "connect")
    dates = [D1, D2, dt.date(2026, 2, 24)]
    _write_slate(f"duckdb://{wh}", exports, dates, [("filter_summary", SUMMARY)])
    # one to create the tables when the sink's DoFn is set up, one for the bundle's three dates
    assert list(map(str, opened)).count(str(wh)) == 2, opened
    other = subprocess.run([sys.executable, "-c", f"import duckdb; duckdb.connect({str(wh)!r}).close()"],
                           capture_output=True, text=True)
    assert other.returncode == 0, other.stderr
    assert all(os.path.exists(os.path.join(exports, f"best-bets/{d}.json")) for d in dates)

"""The old website's files (issue #11 item 2) validate against the old contract and carry its units.

A graded multi-week range (wins, losses, a push, a void, an ultra pick, today's pending picks) is written
into a real DuckDB warehouse through the warehouse API, then ``write_legacy_exports`` writes the four files
into a folder; each is validated against the JSON Schema written from legacy.md (tests/legacy_schemas/).
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import jsonschema
import pytest

from pipeline import schemas
from pipeline.io import legacy_exports as lx
from pipeline.io.warehouse import open_warehouse
from pipeline.options import OptionsError

SCHEMAS = Path(__file__).parent / "legacy_schemas"


def _decimals(validator, places, instance, schema):
    """``x-decimals: N``: a number with at most N decimals (JSON Schema's float multipleOf is inexact)."""
    number = isinstance(instance, (int, float)) and not isinstance(instance, bool)
    if number and round(instance, places) != instance:
        yield jsonschema.ValidationError(f"{instance} has more than {places} decimal(s)")


LegacyValidator = jsonschema.validators.extend(jsonschema.Draft202012Validator, {"x-decimals": _decimals})


def validator_for(name: str):
    return LegacyValidator(json.loads((SCHEMAS / name).read_text()))
TODAY = dt.date(2026, 2, 23)  # a Monday: today's picks open a new week
NOW = dt.datetime(2026, 2, 23, 20, 0, 5, 123456, tzinfo=dt.UTC)

# (date, rank, player, direction, line, edge, result, actual, ultra)
ROWS = [
    (dt.date(2026, 2, 10), 1, "alphaone", "OVER", 20.5, 5.4, "WIN", 25, False),
    (dt.date(2026, 2, 10), 2, "betatwo", "UNDER", 24.5, -6.2, "LOSS", 27, False),
    (dt.date(2026, 2, 12), 1, "gammathree", "OVER", 18.5, 7.1, "WIN", 22, True),
    (dt.date(2026, 2, 12), 2, "deltafour", "UNDER", 30.5, -5.0, "WIN", 28, False),
    (dt.date(2026, 2, 17), 1, "epsilonfive", "OVER", 22.0, 5.5, "PUSH", 22, False),
    (dt.date(2026, 2, 17), 2, "zetasix", "OVER", 15.5, 6.0, "VOID", 0, False),
    (dt.date(2026, 2, 19), 1, "etaseven", "UNDER", 26.5, -5.8, "WIN", 20, True),
    (dt.date(2026, 2, 19), 2, "thetaeight", "OVER", 12.5, 5.2, "WIN", 16, False),
    (dt.date(2026, 2, 21), 1, "iotanine", "OVER", 19.5, 5.9, "WIN", 24, False),
    (TODAY, 1, "kappaten", "UNDER", 28.5, -6.4, None, None, False),
    (TODAY, 2, "lambdaeleven", "OVER", 10.5, 5.1, None, None, True),
]


def _pick(d, rank, lookup, direction, line, edge, ultra) -> schemas.Pick:
    return schemas.Pick(
        pick_id=f"{d:%Y%m%d}_{lookup}", game_date=d, game_id=f"{d:%Y%m%d}_LAL_BOS", player_lookup=lookup,
        player_name=lookup.title(), team_abbr="LAL", opponent_team_abbr="BOS",
        tipoff_utc=dt.datetime.combine(d, dt.time(0, 30), tzinfo=dt.UTC) + dt.timedelta(days=1), rank=rank,
        direction=direction, line=line, line_book="draftkings", line_snapshot_ts=None, consensus_edge=edge,
        predicted_points=line + edge, agreement=1.0, n_families=2, n_models=3, dispersion=0.5, confidence=0.8,
        model_ids=("m1",), signals=("edge",), signal_details="{}", filter_audit="{}",
        pick_angles=("Angle one", "Angle two", "Angle three", "Angle four"), ultra_tier=ultra,
        ultra_criteria="{}", status="active", version=1, run_id="r1", policy_version="p1")


def _result(p: schemas.Pick, result: str, actual) -> schemas.BestBetResult:
    return schemas.BestBetResult(
        pick_id=p.pick_id, game_date=p.game_date, game_id=p.game_id, player_lookup=p.player_lookup,
        direction=p.direction, line=p.line, consensus_edge=p.consensus_edge,
        actual_points=None if result == "VOID" else float(actual), minutes=None if result == "VOID" else 30.0,
        result=result, void_reason="DNP" if result == "VOID" else None,
        margin=None, closing_line=None, clv=None, ultra_tier=p.ultra_tier, run_id="g1")


@pytest.fixture()
def warehouse(tmp_path):
    wh = open_warehouse(f"duckdb://{tmp_path / 'wh.duckdb'}")
    by_date: dict[dt.date, tuple[list, list]] = {}
    for d, rank, lookup, direction, line, edge, result, actual, ultra in ROWS:
        p = _pick(d, rank, lookup, direction, line, edge, ultra)
        picks, results = by_date.setdefault(d, ([], []))
        picks.append(p)
        if result is not None:
            results.append(_result(p, result, actual))
    for d, (picks, results) in by_date.items():
        wh.replace_dates([d], {"best_bets": picks}, tables=("best_bets",))
        wh.replace_dates([d], {"best_bets_results": results}, tables=("best_bets_results",))
    for run_id, command, finished in (("g1", "grade", NOW - dt.timedelta(hours=10)),
                                      ("r1", "run", NOW - dt.timedelta(hours=1))):
        wh.insert_run(schemas.RunRecord(run_id=run_id, command=command, options="{}", policy_version="p1",
                                        registry_digest=None, started_at=finished - dt.timedelta(minutes=5),
                                        finished_at=None, status="running", counts="{}", game_date=TODAY))
        wh.finish_run(run_id, finished, "succeeded", "{}")
    return wh


@pytest.fixture()
def written(warehouse, tmp_path):
    out = tmp_path / "v1"
    uris = lx.write_legacy_exports(warehouse, str(out), TODAY, algorithm_version="p1", now=NOW)
    assert len(uris) == 4
    return {path: json.loads((out / path).read_text()) for path in lx.LEGACY_FILES}


@pytest.mark.parametrize("path,schema", [
    ("best-bets/all.json", "all.schema.json"), ("best-bets/record.json", "record.schema.json"),
    ("best-bets/today.json", "today.schema.json"), ("status.json", "status.schema.json"),
])
def test_legacy_files_validate_against_the_old_contract(written, path, schema):
    validator = validator_for(schema)
    errors = sorted(validator.iter_errors(written[path]), key=lambda e: list(e.path))
    assert not errors, [f"{list(e.path)}: {e.message}" for e in errors]


def test_schema_rejects_the_shapes_the_old_site_cannot_read(written):
    """The schema is strict enough to fail: a fraction pct, a signed edge, a missing stat are refused."""
    validator = validator_for("all.schema.json")
    doc = json.loads(json.dumps(written["best-bets/all.json"]))
    doc["record"]["season"]["pct"] = 0.714
    doc["record"]["month"]["pct"] = 85.714
    doc["today"][0]["edge"] = -6.4
    del doc["weeks"][0]["days"][0]["picks"][0]["stat"]
    bad = {tuple(e.path) for e in validator.iter_errors(doc)}
    assert ("record", "season", "pct") in bad and ("record", "month", "pct") in bad
    assert ("today", 0, "edge") in bad
    assert ("weeks", 0, "days", 0, "picks", 0) in bad


def test_all_json_counts_units_and_nulls(written):
    doc = written["best-bets/all.json"]
    # 7 W/L graded picks: 6 wins, 1 loss; the push and the void are neither; the void is not a pick.
    assert doc["record"]["season"] == {"wins": 6, "losses": 1, "total": 7, "pct": 85.7}
    assert doc["record"]["week"] == {"wins": 0, "losses": 0, "total": 0, "pct": 0.0}
    assert doc["record"]["month"]["total"] == 7 and doc["record"]["last_10"] == {"wins": 6, "losses": 1,
                                                                                  "pct": 85.7}
    assert doc["graded"] == 7 and doc["voided"] == 1 and doc["total_picks"] == len(ROWS) - 1
    # Per pick, newest first and by rank within a day: Feb 10's rank-1 win precedes its rank-2 loss.
    assert doc["streak"] == {"type": "W", "count": 6}
    assert doc["best_streak"] == {"type": "W", "count": 6, "start": "2026-02-10", "end": "2026-02-21"}
    assert doc["ultra_record"]["total"] == 2 and doc["ultra_record"]["pct"] == 100.0
    assert doc["ultra_record"]["over"]["wins"] == 1 and doc["ultra_record"]["under"]["wins"] == 1
    assert doc["season"] == "2025-26" and doc["generated_at"] == "2026-02-23T20:00:05.123456+00:00"
    # today: ranked, edge a magnitude, tip-off in +00:00, pending nulls, three angles at most.
    assert [p["rank"] for p in doc["today"]] == [1, 2] and doc["total_today"] == 2
    assert doc["today"][0]["edge"] == 6.4 and doc["today"][0]["direction"] == "UNDER"
    assert doc["today"][0]["game_time"] == "2026-02-24T00:30:00+00:00"
    assert doc["today"][0]["result"] is None and doc["today"][0]["actual"] is None
    assert len(doc["today"][0]["angles"]) == 3 and doc["today"][1]["ultra_tier"] is True
    assert "ultra_tier" not in doc["today"][0]
    # weeks newest first (Monday starts), today's week first; days newest first.
    assert [w["week_start"] for w in doc["weeks"]] == ["2026-02-23", "2026-02-16", "2026-02-09"]
    assert doc["weeks"][0]["record"] == {"wins": 0, "losses": 0, "pending": 2, "pct": None}
    assert doc["weeks"][0]["days"][0]["status"] == "pending"
    mid = doc["weeks"][1]
    assert [d["date"] for d in mid["days"]] == ["2026-02-21", "2026-02-19", "2026-02-17"]
    assert mid["record"] == {"wins": 3, "losses": 0, "pending": 0, "pct": 100.0}
    day17 = mid["days"][2]
    assert day17["record"] == {"wins": 0, "losses": 0, "pending": 0, "voided": 1}
    push, void = day17["picks"]
    assert push["result"] is None and push["actual"] == 22 and "void_reason" not in push
    assert void["result"] == "VOID" and void["void_reason"] == "DNP" and void["actual"] is None
    first = doc["weeks"][2]
    assert first["days"][1]["status"] == "split" and first["days"][0]["status"] == "sweep"
    assert first["record"]["pct"] == 75.0
    assert all("rank" not in p and "game_time" not in p and p["stat"] == "PTS"
               for w in doc["weeks"] for d in w["days"] for p in d["picks"])


def test_sibling_files_share_the_record(written):
    all_doc, rec, today = (written[p] for p in ("best-bets/all.json", "best-bets/record.json",
                                                 "best-bets/today.json"))
    assert rec["record"] == all_doc["record"] and rec["streak"] == all_doc["streak"]
    assert today["total_picks"] == 2 and [p["player_lookup"] for p in today["picks"]] == ["kappaten",
                                                                                        "lambdaeleven"]
    assert set(today["picks"][0]) == {"rank", "player", "player_lookup", "team", "opponent", "direction",
                                      "line", "edge", "angles"}


def test_status_json_from_the_runs_table(written):
    st = written["status.json"]
    assert st["overall_status"] == "healthy" and st["maintenance_windows"] == []
    assert st["services"]["best_bets"]["status"] == "healthy"
    assert st["services"]["best_bets"]["total_picks"] == 2
    assert st["services"]["grading"]["last_update"] == "2026-02-23T10:00:05.123456+00:00"
    assert st["services"]["live_data"]["status"] == "unknown"


def test_rewriting_gives_the_same_files(warehouse, tmp_path, written):
    out = tmp_path / "v1"
    lx.write_legacy_exports(warehouse, str(out), TODAY, algorithm_version="p1", now=NOW)
    again = {path: json.loads((out / path).read_text()) for path in lx.LEGACY_FILES}
    assert again == written


def test_empty_season_gives_zero_percent_and_null_ultra_pct(tmp_path):
    wh = open_warehouse(f"duckdb://{tmp_path / 'empty.duckdb'}")
    docs = lx.build_from_warehouse(wh, TODAY, algorithm_version="p1", now=NOW)
    doc = docs["best-bets/all.json"]
    assert doc["record"]["season"]["pct"] == 0.0 and doc["ultra_record"]["pct"] is None
    assert doc["today"] == [] and doc["weeks"] == [] and "voided" not in doc
    assert doc["streak"] == {"type": "N/A", "count": 0}
    validator = validator_for("all.schema.json")
    assert validator.is_valid(doc)


@pytest.mark.parametrize("exports,legacy", [
    ("./exports", "./exports"), ("./exports", "./exports/v1"), ("gs://b/v1/props", "gs://b/v1"),
    ("gs://b/v1", "gs://b/v1/"),
])
def test_overlapping_prefixes_are_refused(exports, legacy):
    with pytest.raises(OptionsError, match="overlap"):
        lx.check_prefixes(exports, legacy)


def test_separate_prefixes_are_accepted():
    lx.check_prefixes("gs://b/props", "gs://b/v1")
    lx.check_prefixes("./exports", "./exports-v1")


def test_missing_markers_of_a_warehouse_frame_become_null():
    import numpy as np
    import pandas as pd

    frame = pd.DataFrame({"a": pd.array([1, None], dtype="Int64"), "b": [np.nan, 2.0],
                          "c": [pd.NaT, pd.Timestamp("2026-02-22T23:00:00Z")],
                          "d": [np.array(["x"]), np.array([])]})
    rows = lx._records_of(frame)
    assert rows[0]["b"] is None and rows[0]["c"] is None and rows[1]["a"] is None
    assert rows[0]["a"] == 1 and rows[1]["b"] == 2.0 and list(rows[0]["d"]) == ["x"]

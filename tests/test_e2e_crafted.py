"""End to end on the crafted fixture (tests/crafted.py): `props run` and `props grade` over two dates whose
picks are known in advance, through the real default policy, real CatBoost models, a real DuckDB file and
real export files.

Every comparison first asserts that what it compares is not empty (at least 8 picks, both directions), so
no test here can pass by comparing two empty lists. The multi-run tests copy the day-1 warehouse and
exports of one shared run and re-run from there: a re-run past a tip-off, a zero-pick re-run of a date
that really had picks, graded history feeding the next day's blacklist, and a failing history read.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import duckdb
import pytest

from pipeline.commands import grade as grade_command
from pipeline.commands import run as run_command
from pipeline.graph import SLATE_TABLES
from tests import crafted

pytestmark = pytest.mark.slow

DAY1, DAY2 = crafted.DAY1, crafted.DAY2
VOLATILE = {"run_id", "generated_at"}


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    return crafted.build(tmp_path_factory.mktemp("crafted-inputs"))


@pytest.fixture(scope="module")
def day1(inputs, tmp_path_factory) -> dict:
    """One `props run` of day 1 at the normal decision time, shared read-only (tests copy its outputs)."""
    work = tmp_path_factory.mktemp("crafted-day1")
    code, out, err = _run(inputs, work, DAY1)
    assert code == 0, out + err
    return {"work": work, "out": out, "err": err}


def _run(inputs: Path, work: Path, day, *extra: str, as_of=None) -> tuple[int, str, str]:
    """`props run` in this process; returns (exit code, stdout, stderr)."""
    import contextlib
    import io

    argv = ["--inputs", str(inputs), "--registry", crafted.registry().uri, "--game-date", day.isoformat(),
            "--as-of", crafted.iso(as_of or crafted.as_of(day)), "--warehouse", str(work / "props.duckdb"),
            "--exports", str(work / "exports"), *extra]
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = run_command.main(argv)
    return code, out.getvalue(), err.getvalue()


def _copy(src: Path, dst: Path) -> Path:
    """A private copy of a run's warehouse and exports (the next run of a test writes into it)."""
    dst.mkdir(parents=True, exist_ok=True)
    shutil.copy(src / "props.duckdb", dst / "props.duckdb")
    shutil.copytree(src / "exports", dst / "exports")
    return dst


def _query(work: Path, sql: str, params=None) -> list[dict]:
    con = duckdb.connect(str(work / "props.duckdb"), read_only=True)
    try:
        cur = con.execute(sql, params or [])
        names = [d[0] for d in cur.description]
        return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
    finally:
        con.close()


def _stable(rows: list[dict]) -> list[tuple]:
    """Rows without their run ids, as sortable tuples (for before/after comparisons)."""
    return sorted(tuple((k, str(v)) for k, v in r.items() if k not in VOLATILE) for r in rows)


def _picks(work: Path, day) -> list[dict]:
    return _query(work, "SELECT * FROM best_bets WHERE game_date = ? ORDER BY rank, player_lookup", [day])


def _export(work: Path, day) -> dict:
    return json.loads((work / "exports" / "best-bets" / f"{day.isoformat()}.json").read_text())


def _rejected(work: Path, day) -> dict[str, int]:
    row = _query(work, "SELECT rejected FROM filter_summary WHERE game_date = ?", [day])
    assert len(row) == 1, row
    return json.loads(row[0]["rejected"])


def _assert_tables_equal_exports(work: Path, day) -> list[dict]:
    """best_bets of the date == best-bets/{date}.json == admin picks (ids, ranks, lines, directions)."""
    picks = _picks(work, day)
    doc = _export(work, day)
    admin = json.loads((work / "exports" / "admin" / "picks" / f"{day.isoformat()}.json").read_text())
    table = sorted((p["pick_id"], p["rank"], p["line"], p["direction"], p["player_lookup"]) for p in picks)
    public = sorted((p["pick_id"], p["rank"], p["line"], p["direction"], p["player_lookup"])
                    for p in doc["picks"])
    assert public == table
    assert doc["total_picks"] == len(picks)
    assert sorted(p["pick_id"] for p in admin["picks"]) == sorted(p["pick_id"] for p in picks)
    return picks


# --------------------------------------------------------------------------------------------
# One run of day 1
# --------------------------------------------------------------------------------------------


def test_crafted_day_yields_picks_in_both_directions_and_tables_equal_exports(day1):
    work = day1["work"]
    picks = _picks(work, DAY1)
    assert len(picks) >= 8, [p["player_lookup"] for p in picks]
    directions = [p["direction"] for p in picks]
    assert directions.count("OVER") >= 4 and directions.count("UNDER") >= 4
    assert {p["player_lookup"] for p in picks} == crafted.DAY1_PICKS
    assert all(5.0 <= abs(p["consensus_edge"]) < 7.0 for p in picks)  # the crafted edges, within model error
    assert all(p["n_families"] == len(crafted.FAMILIES) and p["agreement"] == 1.0 for p in picks)
    assert [p["rank"] for p in picks] == list(range(1, len(picks) + 1))

    _assert_tables_equal_exports(work, DAY1)
    latest = json.loads((work / "exports" / "best-bets" / "latest.json").read_text())
    assert latest == _export(work, DAY1)
    # Candidates are the scored players with a line: the picks and the small edge the floor rejects.
    summary = _query(work, "SELECT total_candidates, passed FROM filter_summary")
    assert summary == [{"total_candidates": len(crafted.DAY1_PICKS) + 1, "passed": len(picks)}]
    rejected = _rejected(work, DAY1)
    assert rejected["edge_floor"] == 1 and sum(rejected.values()) == 1
    run = _query(work, "SELECT status, counts FROM runs")
    assert [r["status"] for r in run] == ["succeeded"]


def test_no_feature_player_is_gated_not_dead_lettered(day1):
    """domain.md section 4: a lined player with no feature row is in the universe, gated
    `no_features_available` (a new call-up is a normal case, not an unknown player)."""
    work = day1["work"]
    gate = _query(work, "SELECT * FROM gate_decisions WHERE player_lookup = ?", [crafted.NO_FEATURE_PLAYER])
    decisions = [(g["reason"], g["viable"], g["has_line"]) for g in gate]
    assert decisions == [("no_features_available", False, True)]
    dead = _query(work, "SELECT * FROM dead_letters")
    assert not [d for d in dead if crafted.NO_FEATURE_PLAYER in (d["payload"] or "")], dead
    assert dead == []  # the crafted inputs are clean: nothing else may be dead-lettered either
    assert not _query(work, "SELECT * FROM predictions WHERE player_lookup = ?", [crafted.NO_FEATURE_PLAYER])


def test_no_line_player_is_scored_no_line_and_never_picked(day1):
    work = day1["work"]
    gate = _query(work, "SELECT reason, viable, has_line FROM gate_decisions WHERE player_lookup = ?",
                  [crafted.NO_LINE_PLAYER])
    assert gate == [{"reason": "quality_sufficient", "viable": True, "has_line": False}]
    preds = _query(work, "SELECT * FROM predictions WHERE player_lookup = ?", [crafted.NO_LINE_PLAYER])
    assert len(preds) == len(crafted.FAMILIES)
    assert {p["recommendation"] for p in preds} == {"NO_LINE"}
    assert all(p["line"] is None and p["edge"] is None for p in preds)
    assert all(abs(p["predicted_points"] - crafted.NO_LINE_AVG) < 1.0 for p in preds)  # really scored
    diag = _query(work, "SELECT code FROM line_diagnostics WHERE player_lookup = ?", [crafted.NO_LINE_PLAYER])
    assert {d["code"] for d in diag} == {"NO_PROP_LINE"}
    assert crafted.NO_LINE_PLAYER not in {p["player_lookup"] for p in _picks(work, DAY1)}
    assert crafted.NO_LINE_PLAYER not in {p["player_lookup"] for p in _export(work, DAY1)["picks"]}


# --------------------------------------------------------------------------------------------
# Re-runs
# --------------------------------------------------------------------------------------------


def test_same_rerun_is_idempotent_on_every_table_and_export(inputs, day1, tmp_path):
    work = _copy(day1["work"], tmp_path / "again")
    first = {t: _stable(_query(work, f'SELECT * FROM "{t}"')) for t in SLATE_TABLES}
    assert len(first["best_bets"]) >= 8 and len(first["predictions"]) >= 8
    doc = _export(work, DAY1)

    code, out, err = _run(inputs, work, DAY1)
    assert code == 0, out + err
    assert {t: _stable(_query(work, f'SELECT * FROM "{t}"')) for t in SLATE_TABLES} == first
    again = _export(work, DAY1)
    doc.pop("generated_at"), again.pop("generated_at")
    assert again == doc and len(again["picks"]) >= 8
    assert [r["status"] for r in _query(work, "SELECT status FROM runs")] == ["succeeded", "succeeded"]


def test_rerun_after_a_tipoff_keeps_the_started_games_picks_in_tables_and_exports(inputs, day1, tmp_path):
    work = _copy(day1["work"], tmp_path / "rerun")
    started = crafted.game_id(DAY1, "A")
    before = _picks(work, DAY1)
    before_doc = _export(work, DAY1)
    started_rows = [p for p in before if p["game_id"] == started]
    started_public = [p for p in before_doc["picks"] if p["game_id"] == started]
    assert len(before) >= 8 and len(started_rows) >= 4 and len(started_public) == len(started_rows)

    code, out, err = _run(inputs, work, DAY1, as_of=crafted.after_tipoff(DAY1))
    assert code == 0, out + err

    after = _picks(work, DAY1)
    assert _stable([p for p in after if p["game_id"] == started]) == _stable(started_rows)
    # The open game was re-scored from the same inputs: the same picks (its ranks may move).
    open_before = sorted((p["pick_id"], p["line"], p["direction"]) for p in before if p["game_id"] != started)
    open_after = sorted((p["pick_id"], p["line"], p["direction"]) for p in after if p["game_id"] != started)
    assert open_after == open_before and open_after
    assert len(after) == len(before)
    # The started game's players are out of the re-run's universe (nothing re-scored after tip-off).
    gate = _query(work, "SELECT viable, reason FROM gate_decisions WHERE game_id = ?", [started])
    assert gate and {(g["viable"], g["reason"]) for g in gate} == {(False, "game_started")}
    # The export shows what the tables hold: the started game's picks exactly as published before.
    after_doc = _export(work, DAY1)
    assert [p for p in after_doc["picks"] if p["game_id"] == started] == started_public
    _assert_tables_equal_exports(work, DAY1)


def test_zero_pick_rerun_clears_picks_that_really_existed(inputs, day1, tmp_path):
    work = _copy(day1["work"], tmp_path / "zero")
    before = _picks(work, DAY1)
    assert len(before) >= 8
    assert len(_export(work, DAY1)["picks"]) == len(before)
    strict = crafted.policy_file(tmp_path / "strict.json", edge_floor=59.0)

    code, out, err = _run(inputs, work, DAY1, "--policy", str(strict))
    assert code == 0, out + err
    assert _picks(work, DAY1) == []
    doc = _export(work, DAY1)
    assert doc["picks"] == [] and doc["total_picks"] == 0
    summary = _query(work, "SELECT total_candidates, passed, policy_version FROM filter_summary")
    assert summary == [{"total_candidates": len(crafted.DAY1_PICKS) + 1, "passed": 0,
                        "policy_version": doc["policy_version"]}]
    assert _rejected(work, DAY1)["edge_floor"] == len(crafted.DAY1_PICKS) + 1
    assert _query(work, "SELECT DISTINCT policy_version FROM predictions") == [
        {"policy_version": doc["policy_version"]}]


def test_graded_history_feeds_the_next_days_blacklist(inputs, day1, tmp_path):
    """Day 1 is run and graded; the victim's only graded edge-3+ prediction lost, so with a policy that
    blacklists from one graded prediction he is rejected by `blacklist` on day 2. The same day-2 run
    before grading (no history) picks him: the history is what rejects him."""
    world = tmp_path / "inputs"
    shutil.copytree(inputs, world)
    work = _copy(day1["work"], tmp_path / "history")
    assert crafted.VICTIM in {p["player_lookup"] for p in _picks(work, DAY1)}
    policy = crafted.policy_file(tmp_path / "blacklist1.json", blacklist_min_graded=1)
    crafted.write_box_scores(world, DAY1)

    code, out, err = _run(world, work, DAY2, "--policy", str(policy))
    assert code == 0, out + err
    ungraded = {p["player_lookup"] for p in _picks(work, DAY2)}
    assert ungraded == crafted.DAY1_PICKS and _rejected(work, DAY2)["blacklist"] == 0

    code = grade_command.main(["--date", DAY1.isoformat(), "--inputs", str(world),
                               "--warehouse", str(work / "props.duckdb"), "--exports", str(work / "exports")])
    assert code == 0
    graded = _query(work, "SELECT player_lookup, prediction_correct, edge FROM prediction_accuracy "
                          "WHERE family = 'v12_mae' AND prediction_correct IS NOT NULL AND abs(edge) >= 3")
    losers = sorted(g["player_lookup"] for g in graded if not g["prediction_correct"])
    assert losers == [crafted.VICTIM]
    assert len(graded) == len(crafted.DAY1_PICKS)  # every pick player graded, all but the victim won

    code, out, err = _run(world, work, DAY2, "--policy", str(policy))
    assert code == 0, out + err
    picks = {p["player_lookup"] for p in _picks(work, DAY2)}
    assert picks == crafted.DAY1_PICKS - {crafted.VICTIM}
    assert len(picks) >= 8
    assert _rejected(work, DAY2)["blacklist"] == 1
    victim = _query(work, "SELECT direction, consensus_edge FROM consensus WHERE player_lookup = ? "
                          "AND game_date = ?", [crafted.VICTIM, DAY2])
    assert victim and victim[0]["direction"] == "OVER" and victim[0]["consensus_edge"] >= 5.0
    _assert_tables_equal_exports(work, DAY2)


def test_a_failing_history_read_stops_the_run_or_is_recorded_in_runs(inputs, tmp_path):
    """A warehouse whose prediction_accuracy cannot be read (an incompatible `edge` column): the run must
    not silently run without the blacklist and model health: it fails at launch with the reason, or its
    `runs` row records the failed read."""
    work = tmp_path / "broken"
    crafted.broken_history_warehouse(work / "props.duckdb")

    code, out, err = _run(inputs, work, DAY1)
    runs = _query(work, "SELECT status, counts FROM runs") if (work / "props.duckdb").exists() else []
    if code != 0:
        assert "prediction_accuracy" in err or "history" in err.lower(), err[-2000:]
        assert all(r["status"] != "succeeded" for r in runs), runs
    else:
        assert len(runs) == 1, runs
        full = _query(work, "SELECT * FROM runs")[0]
        # Any column may carry the record (status, counts, a warning); the process argv and the paths
        # (named after this test) are taken out so they cannot match.
        options = json.loads(full["options"] or "{}")
        options.pop("argv", None)
        full["options"] = options
        recorded = json.dumps(full, default=str).replace(str(tmp_path), "<tmp>").replace(str(inputs), "<in>")
        assert "prediction_accuracy" in recorded or "history" in recorded.lower(), recorded


def test_slate_tables_of_the_crafted_day_are_all_written(day1):
    """Guards the comparisons above: every slate table has rows for the date."""
    work = day1["work"]
    for table in SLATE_TABLES:
        if table == "dead_letters":
            continue
        rows = _query(work, f'SELECT count(*) AS n FROM "{table}" WHERE game_date = ?', [DAY1])
        assert rows[0]["n"] > 0, table

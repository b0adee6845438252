"""Tests for pipeline.io.warehouse: idempotent per-date replacement in DuckDB, typed reads, runs (and the
runs that died). The Beam sink of slates is tested in test_io_exports.py (WriteSlateOutputs)."""

from __future__ import annotations

import datetime as dt
import json
import multiprocessing
import os
import subprocess
import sys

import duckdb
import pytest

from pipeline import schemas
from pipeline.io.warehouse import (
    DuckDBWarehouse,
    WarehouseLockTimeout,
    open_warehouse,
    rows_to_arrow,
)

os.environ.setdefault("NO_GCE_CHECK", "true")

UTC = dt.UTC
D1 = dt.date(2026, 2, 22)
D2 = dt.date(2026, 2, 23)


def pick(pick_id: str, game_date: dt.date = D1, game_id: str = "20260222_LAL_BOS", rank: int = 1,
         run_id: str = "r1") -> schemas.Pick:
    return schemas.Pick(
        pick_id=pick_id, game_date=game_date, game_id=game_id, player_lookup=f"p_{pick_id}",
        player_name="P", team_abbr="LAL", opponent_team_abbr="BOS",
        tipoff_utc=dt.datetime(2026, 2, 23, 0, 30, tzinfo=UTC), rank=rank, direction="OVER", line=24.5,
        line_book="draftkings", line_snapshot_ts=dt.datetime(2026, 2, 22, 17, 59, 59, 123456, tzinfo=UTC),
        consensus_edge=5.5, predicted_points=30.0, agreement=1.0, n_families=3, n_models=5, dispersion=0.4,
        confidence=0.8, model_ids=("m1", "m2"), signals=("high_edge", "book_disagreement"),
        signal_details='{"high_edge": 0.55}', filter_audit="{}", pick_angles=(), ultra_tier=False,
        ultra_criteria="{}", status="active", version=1, run_id=run_id)


def summary(game_date: dt.date = D1, passed: int = 1) -> schemas.FilterSummary:
    return schemas.FilterSummary(game_date=game_date, total_candidates=10, passed=passed,
                                 rejected=json.dumps({"edge_floor": 10 - passed}), run_id="r1")


@pytest.fixture()
def wh(tmp_path) -> DuckDBWarehouse:
    return open_warehouse(f"duckdb://{tmp_path}/sub/props.duckdb")


def _count(wh, table, where="true"):
    return wh.query(f"SELECT count(*) AS n FROM {table} WHERE {where}")[0]["n"]


def test_open_creates_every_table(wh, tmp_path):
    assert os.path.exists(tmp_path / "sub" / "props.duckdb")
    names = {r["table_name"] for r in wh.query("SELECT table_name FROM information_schema.tables")}
    assert set(schemas.TABLES) <= names
    assert isinstance(open_warehouse(str(tmp_path / "bare.duckdb")), DuckDBWarehouse)


def test_open_warehouse_uris(tmp_path):
    with pytest.raises(ValueError, match="PROJECT.DATASET"):
        open_warehouse("bigquery://proj")
    with pytest.raises(ValueError, match="unsupported warehouse URI"):
        open_warehouse("s3://bucket/x.duckdb")


def test_rerun_replaces_without_duplicates(wh):
    rows = {"best_bets": [pick("a"), pick("b", rank=2)], "filter_summary": [summary(passed=2)]}
    first = wh.replace_dates([D1], rows)
    before = wh.read_table("best_bets", [D1]).sort_values("pick_id").reset_index(drop=True)
    second = wh.replace_dates([D1], rows)
    after = wh.read_table("best_bets", [D1]).sort_values("pick_id").reset_index(drop=True)
    assert first == second and first["best_bets"] == 2 and first["predictions"] == 0
    assert before.equals(after)
    assert _count(wh, "best_bets") == 2 and _count(wh, "filter_summary") == 1


def test_zero_pick_rerun_clears_only_that_date(wh):
    other = pick("z", game_date=D2, game_id="20260223_NYK_MIA")
    wh.replace_dates([D1, D2], {"best_bets": [pick("a"), other]})
    counts = wh.replace_dates([D1], {"filter_summary": [summary(passed=0)]})
    assert counts["best_bets"] == 0
    assert _count(wh, "best_bets", f"game_date = DATE '{D1}'") == 0
    assert _count(wh, "best_bets", f"game_date = DATE '{D2}'") == 1  # another date untouched
    assert wh.read_table("filter_summary", [D1])["passed"].tolist() == [0]


def test_protected_picks_survive(wh):
    started, later = "20260222_LAL_BOS", "20260222_NYK_MIA"
    wh.replace_dates([D1], {"best_bets": [pick("a", game_id=started), pick("b", game_id=later)]})
    counts = wh.replace_dates([D1], {"best_bets": [pick("a2", game_id=started, run_id="r2")]},
                              protected_pick_game_ids=[started])
    got = wh.query("SELECT pick_id, run_id FROM best_bets ORDER BY pick_id")
    assert got == [{"pick_id": "a", "run_id": "r1"}]  # locked pick kept, unprotected b cleared
    assert counts["best_bets"] == 0 and counts["best_bets_protected_skipped"] == 1


def test_types_round_trip(wh):
    p = pick("a")
    wh.replace_dates([D1], {"best_bets": [p]})
    row = wh.query("SELECT * FROM best_bets")[0]
    assert row["model_ids"] == ["m1", "m2"] and row["pick_angles"] == []
    assert row["game_date"] == D1
    assert row["line_snapshot_ts"] == p.line_snapshot_ts  # microseconds and UTC kept
    assert row["line_snapshot_ts"].utcoffset() == dt.timedelta(0)
    df = wh.read_table("best_bets", [D1])
    assert list(df.loc[0, "signals"]) == ["high_edge", "book_disagreement"]
    assert df.loc[0, "tipoff_utc"].to_pydatetime() == p.tipoff_utc
    assert df.loc[0, "game_date"] == D1


def test_bad_rows_rejected_before_writing(wh):
    wh.replace_dates([D1], {"best_bets": [pick("a")]})
    with pytest.raises(TypeError, match="takes Pick rows"):
        wh.replace_dates([D1], {"best_bets": [summary()]})
    with pytest.raises(ValueError, match="outside the replaced dates"):
        wh.replace_dates([D1], {"best_bets": [pick("x", game_date=D2)]})
    with pytest.raises(ValueError, match="not being replaced"):
        wh.replace_dates([D1], {"runs": []})
    assert _count(wh, "best_bets") == 1  # nothing changed


def test_runs_insert_and_finish(wh):
    started = dt.datetime(2026, 2, 22, 18, tzinfo=UTC)
    wh.insert_run(schemas.RunRecord(run_id="r1", command="run", options="{}", policy_version="p1",
                                    registry_digest=None, started_at=started, finished_at=None,
                                    status="running", counts="{}", game_date=D1))
    wh.finish_run("r1", started + dt.timedelta(minutes=3), "succeeded", '{"best_bets": 2}')
    row = wh.query("SELECT * FROM runs WHERE run_id = ?", ["r1"])[0]
    assert row["status"] == "succeeded" and json.loads(row["counts"]) == {"best_bets": 2}
    assert row["finished_at"] == started + dt.timedelta(minutes=3)
    assert len(wh.read_table("runs")) == 1


def test_migration_adds_new_columns(tmp_path):
    path = str(tmp_path / "old.duckdb")
    con = duckdb.connect(path)
    con.execute('CREATE TABLE filter_summary ("game_date" DATE, "total_candidates" BIGINT)')
    con.execute("INSERT INTO filter_summary VALUES (DATE '2026-02-21', 5)")
    con.close()
    wh = open_warehouse(path)
    cols = {r["column_name"] for r in wh.query(
        "SELECT column_name FROM information_schema.columns WHERE table_name = 'filter_summary'")}
    assert set(schemas.FilterSummary._fields) <= cols
    wh.replace_dates([D1], {"filter_summary": [summary()]})
    assert _count(wh, "filter_summary") == 2


def _concurrent_writer(path: str, run_id: str) -> None:
    """One writer process: replaces D1's predictions three times with its own rows."""
    wh = open_warehouse(path)
    rows = [schemas.Prediction(D1, "20260222_LAL_BOS", f"p{i}", "m1", "v12_mae", "v12", 20.0 + i % 7, 20.5,
                               "draftkings", None, -0.5, "UNDER", 0.7, run_id=run_id) for i in range(20000)]
    for _ in range(3):
        wh.replace_dates([D1], {"predictions": rows})


@pytest.mark.slow
def test_two_concurrent_writers_end_with_one_set(wh):
    # Two OS processes (forked, so they skip the imports) write the same date at the same time.
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_concurrent_writer, args=(wh.path, run_id)) for run_id in ("A", "B")]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(timeout=120)
        assert proc.exitcode == 0
    got = wh.query("SELECT run_id, count(*) AS n, count(DISTINCT player_lookup) AS players "
                   "FROM predictions GROUP BY run_id")
    assert len(got) == 1 and got[0]["n"] == 20000 and got[0]["players"] == 20000


def test_lock_timeout_is_clear(tmp_path):
    path = str(tmp_path / "locked.duckdb")
    open_warehouse(path)
    holder = subprocess.Popen(
        [sys.executable, "-c", "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); "
         "print('locked', flush=True); time.sleep(30)", path], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(WarehouseLockTimeout, match="locked by another process"):
            DuckDBWarehouse(path, lock_timeout_s=0.5)
    finally:
        holder.kill()
        holder.wait()


def test_rows_to_arrow_empty_and_typed():
    table = rows_to_arrow("best_bets", [])
    assert table.num_rows == 0 and table.schema.field("model_ids").type.value_type.equals(
        rows_to_arrow("best_bets", [pick("a")]).schema.field("model_ids").type.value_type)


def test_read_rows_returns_the_typed_rows_of_a_date(wh):
    stored = [pick("a"), pick("b", rank=2), pick("c", game_date=D2, game_id="20260223_NYK_MIA")]
    wh.replace_dates([D1, D2], {"best_bets": stored, "filter_summary": [summary()]})
    got = sorted(wh.read_rows("best_bets", [D1]), key=lambda p: p.pick_id)
    assert got == stored[:2]  # tuples, tz-aware timestamps, floats: the same rows
    assert wh.read_rows("filter_summary") == [summary()]
    assert wh.read_rows("best_bets", []) == []


def _run(run_id: str, *, host: str, pid: int | None, started: dt.datetime, status: str = "running"):
    return schemas.RunRecord(run_id=run_id, command="run", options="{}", policy_version="p1",
                             registry_digest=None, started_at=started, finished_at=None, status=status,
                             counts="{}", game_date=D1, host=host, pid=pid)


def test_running_rows_of_gone_processes_are_abandoned(wh):
    import socket

    from pipeline.io.warehouse import abandon_dead_runs, run_is_abandoned

    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()  # a pid that existed and is gone
    host, now = socket.gethostname(), dt.datetime.now(UTC)
    rows = [
        _run("dead-here", host=host, pid=gone.pid, started=now),
        _run("alive-here", host=host, pid=os.getpid(), started=now),
        _run("old-elsewhere", host="other-host", pid=1, started=now - dt.timedelta(hours=25)),
        _run("recent-elsewhere", host="other-host", pid=1, started=now - dt.timedelta(hours=1)),
        _run("done", host=host, pid=gone.pid, started=now, status="succeeded"),
    ]
    for r in rows:
        wh.insert_run(r)
    assert abandon_dead_runs(wh, host=host, now=now) == ["dead-here", "old-elsewhere"]
    status = {r["run_id"]: r["status"] for r in wh.query("SELECT run_id, status FROM runs")}
    assert status == {"dead-here": "abandoned", "alive-here": "running", "old-elsewhere": "abandoned",
                      "recent-elsewhere": "running", "done": "succeeded"}
    note = json.loads(wh.query("SELECT counts FROM runs WHERE run_id = 'dead-here'")[0]["counts"])
    assert f"pid {gone.pid}" in note["abandoned"]
    assert abandon_dead_runs(wh, host=host, now=now) == []  # idempotent
    assert not run_is_abandoned(rows[0], host=host, now=now, alive=lambda pid: True)


def test_upsert_picks_replaces_latest_and_is_idempotent_on_pick_version(tmp_path):
    from pipeline.io.warehouse import DuckDBWarehouse

    wh = DuckDBWarehouse(str(tmp_path / "w.duckdb"))
    now = dt.datetime(2026, 2, 22, 20, 0, tzinfo=dt.UTC)
    base = pick("p1")
    v1, v2 = base._replace(version=1), base._replace(version=2, line=25.5)
    hist = [schemas.BestBetHistory("created", now, *v1), schemas.BestBetHistory("updated", now, *v2)]
    assert wh.upsert_picks([v1], hist[:1]) == 1
    assert wh.upsert_picks([v2], hist[1:]) == 1
    assert wh.upsert_picks([v2], hist[1:]) == 1  # redelivered: same rows, no duplicate
    assert wh.query("SELECT pick_id, version, line FROM best_bets") == [
        {"pick_id": "p1", "version": 2, "line": 25.5}]
    versions = wh.query("SELECT version FROM best_bets_history ORDER BY version")
    assert [r["version"] for r in versions] == [1, 2]


def test_session_shares_one_connection_and_releases_the_file(tmp_path, monkeypatch):
    """Inside ``session()`` every call of this thread uses one DuckDB connection (a launch's dozen small
    reads); nested sessions share it; after the block the file is free for another process again."""
    import threading

    wh = DuckDBWarehouse(str(tmp_path / "w.duckdb"))
    opened = []
    real_connect = duckdb.connect
    monkeypatch.setattr(duckdb, "connect", lambda *a, **k: opened.append(a) or real_connect(*a, **k))
    with wh.session() as same:
        assert same is wh
        assert wh.table_exists("runs") and wh.query("SELECT 1 AS one") == [{"one": 1}]
        with wh.session():
            assert wh.read_rows("runs") == []
        assert len(opened) == 1
        other: list = []
        worker = threading.Thread(target=lambda: other.append(wh.query("SELECT 2 AS two")))
        worker.start()
        worker.join()
        assert other == [[{"two": 2}]] and len(opened) == 2  # another thread: its own connection
    wh.query("SELECT 1 AS one")
    assert len(opened) == 3  # outside a session: one connection per call, as before
    code = "import duckdb, sys; duckdb.connect(sys.argv[1]).close()"
    subprocess.run([sys.executable, "-c", code, wh.path], check=True)  # the file lock was released


def test_opening_a_file_creates_missing_tables_and_adds_missing_columns(tmp_path):
    """A file written by an older version (a table without a column added since, a table missing) is
    brought up to the current schema when opened; opening a current file changes nothing."""
    path = tmp_path / "old.duckdb"
    spec = schemas.TABLES["prediction_accuracy"]
    ddl = schemas.duckdb_ddl(spec)
    con = duckdb.connect(str(path))
    con.execute(ddl.replace(', "clv" DOUBLE', ""))
    con.close()
    assert '"clv" DOUBLE' in ddl
    DuckDBWarehouse(str(path))
    con = duckdb.connect(str(path))
    columns = {name: [r[0] for r in con.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_name = ? ORDER BY ordinal_position",
        [name]).fetchall()] for name in schemas.TABLES}
    con.close()
    assert columns["prediction_accuracy"][-1] == "clv"
    assert all(columns[name] == [c[0] for c in schemas.columns(schemas.TABLES[name].row_type)]
               for name in schemas.TABLES if name != "prediction_accuracy")
    before = path.stat().st_mtime_ns, path.read_bytes()
    DuckDBWarehouse(str(path))
    assert (path.stat().st_mtime_ns, path.read_bytes()) == before

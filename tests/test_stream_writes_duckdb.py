"""The streaming warehouse methods on DuckDB (the local twin of BigQuery's insertAll history, the
``best_bets_latest`` view and batched dead letters): same answers, so the stream can call them anywhere."""

from __future__ import annotations

import datetime as dt

from pipeline import schemas
from pipeline.io.warehouse import DuckDBWarehouse
from tests.test_bigquery import pick

D = dt.date(2026, 2, 22)
TS = dt.datetime(2026, 2, 22, 20, 0, tzinfo=dt.UTC)


def test_history_append_is_idempotent_and_latest_picks_is_one_row_per_pick(tmp_path):
    wh = DuckDBWarehouse(str(tmp_path / "w.duckdb"))
    v1 = pick("20260222_LAL_BOS", "a")
    hist = [schemas.BestBetHistory("created", TS, *v1),
            schemas.BestBetHistory("updated", TS + dt.timedelta(minutes=1),
                                   *v1._replace(version=2, line=25.5))]
    wh.append_pick_history(hist)
    wh.append_pick_history(hist[1:])  # redelivered
    assert sorted(h.version for h in wh.read_rows("best_bets_history")) == [1, 2]
    assert [(h.pick_id, h.version, h.line) for h in wh.latest_picks([D])] == [(v1.pick_id, 2, 25.5)]
    assert wh.latest_picks([D + dt.timedelta(days=1)]) == []


def test_dead_letter_batches_are_clipped_and_deduplicated(tmp_path):
    wh = DuckDBWarehouse(str(tmp_path / "w.duckdb"))
    big = schemas.DeadLetter("stream", "score", "e" * 9_000, "p" * 9_000, None, D, "s1")
    assert wh.append_dead_letters([big, big]) == 1
    (row,) = wh.read_rows("dead_letters")
    assert row.payload == schemas.clip_text("p" * 9_000) and row.error == schemas.clip_text("e" * 9_000)


# -- the local stream keeps the file open between its sinks' writes (stream_sinks.KeepOpenDuckDBWarehouse)

def _other_process_reads(path) -> str:
    """What another process gets when it opens the file read-only: the best_bets count, or 'locked'."""
    import subprocess
    import sys

    code = ("import duckdb, sys\n"
            "try:\n"
            "    con = duckdb.connect(sys.argv[1], read_only=True)\n"
            "except duckdb.IOException as e:\n"
            "    print('locked' if 'lock' in str(e).lower() else 'error ' + str(e)); sys.exit(0)\n"
            "print(con.execute('SELECT count(*) FROM best_bets').fetchone()[0])\n")
    out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=120)
    return out.stdout.strip() or out.stderr[-500:]


def _wait_until(predicate, timeout_s: float = 60.0) -> bool:
    import time

    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_the_stream_keeps_the_file_open_while_it_writes_and_releases_it_when_idle(tmp_path):
    from pipeline.io.stream_sinks import KeepOpenDuckDBWarehouse, open_sink_warehouse

    path = tmp_path / "w.duckdb"
    assert not isinstance(open_sink_warehouse(str(path)), KeepOpenDuckDBWarehouse)  # default: per write
    held = open_sink_warehouse(f"duckdb://{path}", keep_open_s=600.0)
    assert isinstance(held, KeepOpenDuckDBWarehouse)
    v1 = pick("20260222_LAL_BOS", "a")
    assert held.upsert_picks([v1], [schemas.BestBetHistory("created", TS, *v1)]) == 1
    assert held.pin.held
    # In this process every warehouse reads what was committed; another process waits for the lock.
    assert len(DuckDBWarehouse(str(path)).read_rows("best_bets")) == 1
    assert _other_process_reads(path) == "locked"
    held.pin.release()
    assert _other_process_reads(path) == "1"
    # Released by itself keep_open_s after the last write.
    path = tmp_path / "idle.duckdb"
    wh = open_sink_warehouse(f"duckdb://{path}", keep_open_s=0.3)
    assert wh.upsert_picks([v1], [schemas.BestBetHistory("created", TS, *v1)]) == 1
    assert wh.pin.held
    assert _wait_until(lambda: not wh.pin.held)
    assert _other_process_reads(path) == "1"
    wh.upsert_picks([v1], [schemas.BestBetHistory("created", TS, *v1)])  # a replay: idempotent
    assert wh.pin.held and len(wh.read_rows("best_bets_history")) == 1


def test_a_pin_held_too_long_is_released_for_a_gap(tmp_path):
    from pipeline.io.stream_sinks import KeepOpenDuckDBWarehouse, _DatabasePin

    wh = KeepOpenDuckDBWarehouse(str(tmp_path / "w.duckdb"), keep_open_s=600.0)
    wh.pin = _DatabasePin(wh.path, keep_open_s=600.0, max_hold_s=0.2, gap_s=600.0)
    wh.append_dead_letters([schemas.DeadLetter("stream", "score", "e", "p", None, D, "s1")])
    assert wh.pin.held
    assert _wait_until(lambda: not wh.pin.held)  # max_hold_s, although writes are "recent"
    wh.append_dead_letters([schemas.DeadLetter("stream", "score", "e", "p2", None, D, "s1")])
    assert not wh.pin.held  # the gap: writes open and close the file as without keep-open
    assert _other_process_reads(tmp_path / "w.duckdb") == "0"
    assert len(wh.read_rows("dead_letters")) == 2


def test_a_job_killed_while_it_keeps_the_file_open_loses_no_committed_write(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    path = tmp_path / "w.duckdb"
    code = ("import datetime as dt, os, signal, sys\n"
            "from pipeline import schemas\n"
            "from pipeline.io.stream_sinks import open_sink_warehouse\n"
            "from tests.test_bigquery import pick\n"
            "wh = open_sink_warehouse(sys.argv[1], keep_open_s=600.0)\n"
            "ts = dt.datetime(2026, 2, 22, 20, 0, tzinfo=dt.UTC)\n"
            "for n in range(1, 4):\n"
            "    p = pick('20260222_LAL_BOS', 'a')._replace(version=n, line=20.5 + n)\n"
            "    wh.upsert_picks([p], [schemas.BestBetHistory('updated', ts, *p)])\n"
            "assert wh.pin.held\n"
            "os.kill(os.getpid(), signal.SIGKILL)\n")
    repo = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, "-c", code, str(path)], cwd=repo, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == -9, out.stderr[-2000:]
    wh = DuckDBWarehouse(str(path))  # the next open replays the killed job's log
    assert [(p.version, p.line) for p in wh.read_rows("best_bets")] == [(3, 23.5)]
    assert sorted(h.version for h in wh.read_rows("best_bets_history")) == [1, 2, 3]


# -- the local stream writes its versioned rows off the runner's worker thread (stream_sinks.VersionWriter)

def _gate(player: str, version: int, reason: str = "quality_sufficient") -> schemas.GateDecision:
    return schemas.GateDecision(D, "20260222_LAL_BOS", player, "RETRY", reason == "quality_sufficient",
                                reason, 90.0, version=version, scored_at=TS)


def _diag(player: str, version: int, book: str) -> schemas.LineDiagnostic:
    return schemas.LineDiagnostic(D, "20260222_LAL_BOS", player, "LINE_SOURCE", book, 20.5, "{}",
                                  "priority_book", TS, version=version, scored_at=TS)


def _tables(wh) -> dict:
    return {t: sorted(map(repr, wh.read_rows(t))) for t in ("gate_decisions", "line_diagnostics")}


def test_queued_version_batches_written_at_once_leave_what_writing_them_in_order_leaves(tmp_path):
    from pipeline.io.stream_sinks import merge_version_batches

    batches = [
        {"gate_decisions": [_gate("a", 1)], "line_diagnostics": [_diag("a", 1, "draftkings"),
                                                                  _diag("a", 1, "fanduel")]},
        {"gate_decisions": [_gate("b", 1)]},
        # version 1 of "a" again (a replay after a restart), with one diagnostic row fewer: replaces it
        {"gate_decisions": [_gate("a", 1, "injury_out")], "line_diagnostics": [_diag("a", 1, "betmgm")]},
        {"gate_decisions": [_gate("a", 2)]},
    ]
    in_order = DuckDBWarehouse(str(tmp_path / "in_order.duckdb"))
    for batch in batches:
        in_order.upsert_versions(batch)
    at_once = DuckDBWarehouse(str(tmp_path / "at_once.duckdb"))
    merged = merge_version_batches(batches)
    assert len(merged["line_diagnostics"]) == 1 and len(merged["gate_decisions"]) == 3
    at_once.upsert_versions(merged)
    assert _tables(at_once) == _tables(in_order)
    assert [r.reason for r in at_once.read_rows("gate_decisions") if r.version == 1 and
            r.player_lookup == "a"] == ["injury_out"]


def test_the_version_writer_writes_what_it_was_given_and_a_failing_write_stops_the_next_bundle(tmp_path):
    import pytest

    from pipeline.io.stream_sinks import VersionWriter

    path = tmp_path / "w.duckdb"
    DuckDBWarehouse(str(path))
    writer = VersionWriter(f"duckdb://{path}", keep_open_s=0.2)
    for v in (1, 2, 3):
        writer.put({"gate_decisions": [_gate("a", v)], "line_diagnostics": [_diag("a", v, "draftkings")]})
    assert writer.flush(60.0) and writer.pending() == 0
    assert writer.written == 6 and 1 <= writer.transactions <= 3
    assert _wait_until(lambda: _other_process_reads(path) != "locked")  # the pin is released when idle
    assert sorted(r.version for r in DuckDBWarehouse(str(path)).read_rows("gate_decisions")) == [1, 2, 3]

    # A row the table cannot take: retried, kept first in the queue, then the next put raises.
    writer.RETRIES = 0
    writer.put({"gate_decisions": [_gate("a", 4)._replace(feature_quality_score="not a number")]})
    assert not writer.flush(60.0)
    assert writer.pending() == 1
    with pytest.raises(RuntimeError, match="could not be written"):
        writer.put({"gate_decisions": [_gate("a", 5)]})


def test_rows_queued_for_the_writer_are_written_before_the_process_exits(tmp_path):
    import subprocess
    import sys

    path = tmp_path / "w.duckdb"
    DuckDBWarehouse(str(path))
    code = ("import sys, datetime as dt\n"
            "from tests.test_stream_writes_duckdb import _gate\n"
            "from pipeline.io.stream_sinks import version_writer\n"
            "w = version_writer(sys.argv[1], keep_open_s=600.0)\n"
            "for v in range(1, 201):\n"
            "    w.put({'gate_decisions': [_gate('p%d' % v, v)]})\n"
            "print(w.pending())\n")  # the process ends right away: the exit writes the queue out
    out = subprocess.run([sys.executable, "-c", code, f"duckdb://{path}"], capture_output=True, text=True,
                         timeout=300, cwd=str(__import__("pathlib").Path(__file__).resolve().parents[1]))
    assert out.returncode == 0, out.stderr[-2000:]
    assert int(out.stdout.strip()) > 0  # something was still queued when the script ended
    assert len(DuckDBWarehouse(str(path)).read_rows("gate_decisions")) == 200

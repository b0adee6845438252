"""Hostile input at every source: files (JSON Lines and Parquet), BigQuery rows and Pub/Sub messages.

A small simulated slate (real sim files, tiny real CatBoost models, a real DuckDB file) runs once clean and
once with hostile rows planted next to the good ones: timestamps out of range, far-future event times,
stray rows of another game date, huge payloads, NaN/inf, wrong types, bad ids. Every run must complete
(exit 0), every hostile row must be exactly one dead letter with the expected reason code
(``pipeline.io.parse.REASONS``), and every good player-game must come out exactly as without the hostile
rows (same gate decisions, predictions, consensus and picks). The BigQuery part uses the bqemulator
(``tests/emulators.py``); the Pub/Sub part feeds ``PubsubMessage`` objects to the stream's ``ParseEventsFn``.

Also here: a run killed mid-run (SIGKILL, SIGTERM) leaves no ``running`` row and no temporary export files.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import apache_beam as beam
import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from apache_beam.io.gcp.pubsub import PubsubMessage
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

import sim
from pipeline.commands import run as run_command
from pipeline.io.files import read_rows_local
from pipeline.io.parse import error_code
from tests.slate_fixtures import tiny_registry

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
GAME_DATE = "2026-01-13"
D = dt.date(2026, 1, 13)
PROJECT = "test-project"
FAR_FUTURE = "2031-01-13T18:00:00+00:00"
OUT_OF_RANGE = "0001-01-01T00:00:00+01:00"  # overflows UTC: OverflowError before the parse boundary


@pytest.fixture(scope="module")
def season_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("season")
    s = sim.simulate(seed=11, teams=("LAL", "BOS", "DEN", "MIA", "NYK", "PHX"), start="2026-01-10", days=6)
    s.write(out)
    return out


def _argv(inputs: str, work: Path, *extra: str) -> list[str]:
    return ["--inputs", inputs, "--registry", tiny_registry().uri, "--game-date", GAME_DATE,
            "--warehouse", str(work / "props.duckdb"), "--exports", str(work / "exports"), *extra]


def _run(inputs: str, work: Path, *extra: str) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = run_command.main(_argv(inputs, work, *extra))
    return code, out.getvalue()


def _select(db: Path, sql: str) -> list[tuple]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return sorted(tuple(str(v) for v in r) for r in con.execute(sql).fetchall())
    finally:
        con.close()


def _outcome(work: Path) -> dict[str, list[tuple]]:
    """Every good player-game's results (run ids aside)."""
    db = work / "props.duckdb"
    return {
        "gate": _select(db, "SELECT game_id, player_lookup, viable, reason FROM gate_decisions"),
        "predictions": _select(db, "SELECT game_id, player_lookup, model_id, predicted_points, line, edge, "
                                   "recommendation FROM predictions"),
        "consensus": _select(db, "SELECT game_id, player_lookup, line, consensus_edge FROM consensus"),
        "picks": _select(db, "SELECT pick_id, rank, line, consensus_edge FROM best_bets"),
        "diagnostics": _select(db, "SELECT game_id, player_lookup, code, book, reason FROM line_diagnostics"),
    }


def _parse_dead(work: Path) -> Counter:
    rows = _select(work / "props.duckdb", "SELECT source, error FROM dead_letters WHERE step = 'parse'")
    return Counter((source, error_code(error)) for source, error in rows)


@pytest.fixture(scope="module")
def baseline(season_dir, tmp_path_factory) -> dict:
    work = tmp_path_factory.mktemp("clean")
    code, out = _run(str(season_dir), work)
    assert code == 0, out
    assert _parse_dead(work) == Counter()
    outcome = _outcome(work)
    assert outcome["gate"] and outcome["predictions"]
    return outcome


# --------------------------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------------------------


def _partition(root: Path, kind: str) -> Path:
    return root / kind / f"game_date={GAME_DATE}"


def _first_parquet_row(root: Path, kind: str) -> tuple[pa.Schema, dict]:
    table = pq.read_table(next(iter(sorted(_partition(root, kind).glob("*.parquet")))))
    return table.schema, table.slice(0, 1).to_pylist()[0]


def _first_jsonl_row(root: Path, kind: str) -> dict:
    path = next(iter(sorted(_partition(root, kind).glob("*.jsonl"))))
    return json.loads(path.read_text().splitlines()[0])


def _jsonl(path: Path, records: list) -> None:
    lines = [r if isinstance(r, str) else json.dumps(r, default=str) for r in records]
    path.write_text("\n".join(lines) + "\n")


def _plant_file_hostiles(root: Path) -> Counter:
    """Plants hostile rows next to good ones; returns the expected parse dead letters (source, reason)."""
    expected: Counter = Counter()
    schema, odds = _first_parquet_row(root, "odds")
    gid = odds["game_id"]
    other_day_gid = "20260114_" + gid.split("_", 1)[1]
    json_odds = [  # (record, reason)
        (dict(odds, snapshot_ts=OUT_OF_RANGE), "out_of_range"),
        (dict(odds, snapshot_ts=FAR_FUTURE), "event_time_outside_window"),
        (dict(odds, game_date="2026-01-14"), "game_date_mismatch"),  # a stray row of another date
        (dict(odds, game_id=other_day_gid), "game_date_mismatch"),  # the player's row of another game day
        (dict(odds, line=math.nan), "not_finite"),
        (dict(odds, line=math.inf), "not_finite"),
        (dict(odds, over_price="minus one ten"), "wrong_type"),
        (dict(odds, line=[24.5]), "wrong_type"),
        (dict(odds, game_id="20261399_" + gid.split("_", 1)[1]), "bad_id"),  # looks valid, not a date
        (dict(odds, player_lookup="LeBron James"), "bad_id"),
        (dict(odds, player_name="x" * 5_000), "too_long"),
        (dict(odds, player_name="x" * 400_000), "too_long"),  # the whole record is over the bound
        ('{"player_lookup": "broken", ', "malformed"),
        ("[1, 2, 3]", "malformed"),
    ]
    _jsonl(_partition(root, "odds") / "part-90000.jsonl", [r for r, _ in json_odds])
    expected.update(("odds", reason) for _, reason in json_odds)

    parquet_odds = [
        (dict(odds, snapshot_ts=dt.datetime(1, 1, 1, tzinfo=dt.UTC)), "out_of_range"),
        (dict(odds, snapshot_ts=dt.datetime(2031, 1, 13, 18, tzinfo=dt.UTC)), "event_time_outside_window"),
        (dict(odds, line=math.nan), "not_finite"),
        (dict(odds, line=-math.inf), "not_finite"),
        (dict(odds, game_id="20261399_" + gid.split("_", 1)[1]), "bad_id"),
        (dict(odds, game_date=dt.date(2026, 1, 14)), "game_date_mismatch"),
        (dict(odds, player_name="y" * 5_000), "too_long"),
    ]
    pq.write_table(pa.Table.from_pylist([r for r, _ in parquet_odds], schema=schema),
                   _partition(root, "odds") / "part-90001.parquet")
    expected.update(("odds", reason) for _, reason in parquet_odds)

    _, feat = _first_parquet_row(root, "features")
    feature_rows = [  # new players: had any been accepted, the universe would have changed
        (dict(feat, player_lookup="hostileinf", pace_score=math.inf), "not_finite"),
        (dict(feat, player_lookup="hostilenan", feature_quality_score=math.nan), "not_finite"),
        (dict(feat, player_lookup="hostilehuge", feature_quality_score=1e9), "out_of_range"),
        (dict(feat, player_lookup="hostiletype", required_default_count="none"), "wrong_type"),
    ]
    _jsonl(_partition(root, "features") / "part-90000.jsonl", [r for r, _ in feature_rows])
    expected.update(("features", reason) for _, reason in feature_rows)

    inj_player = odds["player_lookup"]
    injuries = [  # an `out` for a lined player: accepted, it would exclude him
        ({"player_lookup": inj_player, "game_date": GAME_DATE, "status": "out", "reason": "x",
          "report_ts": OUT_OF_RANGE}, "out_of_range"),
        ({"player_lookup": inj_player, "game_date": GAME_DATE, "status": "out", "reason": "x",
          "report_ts": FAR_FUTURE}, "event_time_outside_window"),
    ]
    _jsonl(_partition(root, "injuries") / "part-90000.jsonl", [r for r, _ in injuries])
    expected.update(("injuries", reason) for _, reason in injuries)

    sched = _first_jsonl_row(root, "schedule")
    schedule = [  # a `final` for a scheduled game: accepted, it would empty the game's universe
        (dict(sched, status="final", event_ts=FAR_FUTURE), "event_time_outside_window"),
        (dict(sched, status="final", event_ts=OUT_OF_RANGE), "out_of_range"),
        (dict(sched, tipoff_utc="2026-02-13T00:30:00+00:00"), "game_date_mismatch"),
    ]
    _jsonl(_partition(root, "schedule") / "part-90000.jsonl", [r for r, _ in schedule])
    expected.update(("schedule", reason) for _, reason in schedule)
    return expected


def test_hostile_files_are_dead_letters_and_good_player_games_unchanged(season_dir, baseline, tmp_path):
    hostile = tmp_path / "hostile"
    shutil.copytree(season_dir, hostile)
    expected = _plant_file_hostiles(hostile)
    code, out = _run(str(hostile), tmp_path)
    assert code == 0, out
    assert _parse_dead(tmp_path) == expected
    assert _outcome(tmp_path) == baseline


# --------------------------------------------------------------------------------------------
# BigQuery rows
# --------------------------------------------------------------------------------------------


def _load_raw(uri: str, kind: str, records: list[dict]) -> None:
    from google.cloud import bigquery

    from pipeline.io import cloud
    from pipeline.io.bigquery import raw_table_schema

    project, dataset = cloud.parse_bigquery_uri(uri)
    schema = [bigquery.SchemaField(f["name"], f["type"], mode=f["mode"]) for f in raw_table_schema(kind)]
    config = bigquery.LoadJobConfig(source_format=bigquery.SourceFormat.NEWLINE_DELIMITED_JSON, schema=schema,
                                    write_disposition=bigquery.WriteDisposition.WRITE_APPEND)
    data = "\n".join(json.dumps(r) for r in records).encode("utf-8")
    cloud.bigquery_client(project).load_table_from_file(io.BytesIO(data), f"{project}.{dataset}.{kind}",
                                                        job_config=config).result()


@pytest.mark.emulator
def test_hostile_bigquery_rows_are_dead_letters_and_good_player_games_unchanged(season_dir, baseline,
                                                                                 tmp_path):
    from pipeline.io import cloud
    from pipeline.io.bigquery import load_raw_inputs, raw_record
    from tests.emulators import bigquery_emulator

    uri = f"bigquery://{PROJECT}.raw_hostile"
    dates = [D - dt.timedelta(days=i) for i in range(4)]
    with bigquery_emulator(project=PROJECT) as bq:
        cloud.use_emulators(bigquery_endpoint=bq.endpoint, project=PROJECT)
        for kind in ("schedule", "odds", "injuries", "features", "box_scores"):
            rows, dead = read_rows_local(str(season_dir), kind, dates)
            assert not dead
            load_raw_inputs(uri, kind, rows)
        good = next(r for r in read_rows_local(str(season_dir), "odds", [D])[0])
        odds = raw_record("odds", good)
        tail = good.game_id.split("_", 1)[1]
        hostile_odds = [
            (dict(odds, snapshot_ts="0001-01-01T00:00:00Z"), "out_of_range"),
            (dict(odds, snapshot_ts="2031-01-13T18:00:00Z"), "event_time_outside_window"),
            (dict(odds, game_id="20260114_" + tail), "game_date_mismatch"),  # a stray row of another day
            (dict(odds, game_id="20261399_" + tail), "bad_id"),
            (dict(odds, player_lookup="LeBron James"), "bad_id"),
            (dict(odds, player_name="z" * 5_000), "too_long"),
        ]
        _load_raw(uri, "odds", [r for r, _ in hostile_odds])
        feat = read_rows_local(str(season_dir), "features", [D])[0][0]
        load_raw_inputs(uri, "features",
                        [feat._replace(player_lookup=p) for p in ("hostileinf", "hostilenan")])
        client = cloud.bigquery_client(PROJECT)
        table = f"`{PROJECT}.raw_hostile.features`"
        client.query(f"UPDATE {table} SET pace_score = CAST('inf' AS FLOAT64) "
                     "WHERE player_lookup = 'hostileinf'").result()
        client.query(f"UPDATE {table} SET feature_quality_score = CAST('NaN' AS FLOAT64) "
                     "WHERE player_lookup = 'hostilenan'").result()
        expected = Counter(("odds", reason) for _, reason in hostile_odds)
        expected.update({("features", "not_finite"): 2})

        code, out = _run(uri, tmp_path, "--project", PROJECT, "--bigquery_endpoint", bq.endpoint)
    assert code == 0, out
    assert _parse_dead(tmp_path) == expected
    assert _outcome(tmp_path) == baseline


# --------------------------------------------------------------------------------------------
# Pub/Sub messages
# --------------------------------------------------------------------------------------------


def test_hostile_pubsub_messages_are_dead_letters_and_good_events_pass(season_dir):
    from pipeline.io.pubsub import message_for
    from pipeline.stream_graph import ParseEventsFn
    from pipeline.transforms.streaming import StreamEvent

    odds_rows = read_rows_local(str(season_dir), "odds", [D])[0][:5]
    sched_row = read_rows_local(str(season_dir), "schedule", [D])[0][0]
    good = [("odds", r) for r in odds_rows] + [("schedule", sched_row)]
    messages = [PubsubMessage(*message_for(kind, row)) for kind, row in good]

    data, attrs = message_for("odds", odds_rows[0])
    record = json.loads(data)
    tail = record["game_id"].split("_", 1)[1]

    def body(**over) -> bytes:
        return json.dumps(dict(record, **over)).encode("utf-8")

    hostile = [
        (PubsubMessage(body(snapshot_ts=OUT_OF_RANGE), attrs), "out_of_range"),
        (PubsubMessage(body(snapshot_ts=FAR_FUTURE), attrs), "event_time_outside_window"),
        (PubsubMessage(body(game_date="2026-01-14"), attrs), "game_date_mismatch"),
        (PubsubMessage(body(line=math.nan), attrs), "not_finite"),
        (PubsubMessage(body(line=-math.inf), attrs), "not_finite"),
        (PubsubMessage(body(over_price={"american": -110}), attrs), "wrong_type"),
        (PubsubMessage(body(game_id="20261399_" + tail), attrs), "bad_id"),
        (PubsubMessage(body(player_lookup="DROP TABLE"), attrs), "bad_id"),
        (PubsubMessage(body(player_name="w" * 5_000), attrs), "too_long"),
        (PubsubMessage(body(player_name="w" * 400_000), attrs), "too_long"),
        (PubsubMessage(b'{"player_lookup": ', attrs), "malformed"),
        (PubsubMessage(b"\xff\xfe\x00", attrs), "malformed"),
        (PubsubMessage(data, dict(attrs, event_ts=OUT_OF_RANGE)), "bad_attribute"),
        (PubsubMessage(data, dict(attrs, kind="weather")), "bad_attribute"),
        (PubsubMessage(data, {}), "bad_attribute"),
    ]
    expected = sorted(reason for _, reason in hostile)
    with TestPipeline(runner="FnApiRunner") as p:
        parsed = (p | beam.Create(messages + [m for m, _ in hostile], reshuffle=False)
                  | beam.ParDo(ParseEventsFn((8760.0, 12.0))).with_outputs("dead_letters", main="events"))
        assert_that(parsed.events, equal_to([StreamEvent(kind, row) for kind, row in good]), label="Good")
        codes = (parsed.dead_letters
                 | beam.Map(lambda d: (error_code(d.error), len(d.payload) <= 4_000 and d.step == "parse"))
                 | beam.combiners.ToList()
                 | beam.Map(lambda pairs: sorted(pairs)))
        assert_that(codes, equal_to([[(reason, True) for reason in expected]]), label="DeadByReason")


def test_the_local_pubsub_reader_never_dies_on_an_event_ts_attribute():
    """The local runner's reader takes the element timestamp from ``event_ts``; a value it cannot take
    (it raised OverflowError and stopped the job) is flagged for ParseMessageFn to dead-letter."""
    from pipeline.io.pubsub import attribute_timestamp

    assert attribute_timestamp("2026-01-13T18:00:00Z").micros == 1768327200 * 10**6
    assert attribute_timestamp("1768327200000").micros == 1768327200 * 10**6
    for raw in (OUT_OF_RANGE, "9999-12-31T23:59:59-01:00", "99999999999999999999", "soon", ""):
        assert attribute_timestamp(raw) is None, raw


# --------------------------------------------------------------------------------------------
# Killed runs
# --------------------------------------------------------------------------------------------


def _launch(season: Path, work: Path) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.Popen([sys.executable, "-m", "pipeline", "run", *_argv(str(season), work)], cwd=work,
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)


def _runs(work: Path) -> list[tuple]:
    db = work / "props.duckdb"
    if not db.exists():
        return []
    try:
        con = duckdb.connect(str(db), read_only=True)
    except duckdb.IOException:  # the run holds the write lock right now
        return []
    try:
        return con.execute("SELECT run_id, status, pid FROM runs ORDER BY started_at").fetchall()
    except duckdb.CatalogException:
        return []
    finally:
        con.close()


def _wait_running(proc: subprocess.Popen, work: Path, timeout_s: float = 300.0) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        running = [r for r in _runs(work) if r[1] == "running" and r[2] == proc.pid]
        if running:
            return running[0][0]
        time.sleep(0.2)
    raise AssertionError("the run never recorded its running row")


def _temp_files(work: Path) -> list[str]:
    return sorted(str(p) for p in (work / "exports").rglob("*.tmp")) if (work / "exports").exists() else []


def test_a_killed_run_is_abandoned_by_the_next_and_its_temp_files_removed(season_dir, tmp_path):
    proc = _launch(season_dir, tmp_path)
    killed_id = _wait_running(proc, tmp_path)
    # The kill rarely lands inside the few milliseconds of a write, so the temporary file such a write
    # leaves is planted under the killed process's name (the name write_json gives it).
    folder = tmp_path / "exports" / "best-bets"
    folder.mkdir(parents=True, exist_ok=True)
    host = socket.gethostname().replace(".", "_")
    (folder / f".latest.json.{host}.{proc.pid}.{'0' * 32}.tmp").write_text("{")
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    assert ("running" in {s for _r, s, _p in _runs(tmp_path)}) and _temp_files(tmp_path)

    code, out = _run(str(season_dir), tmp_path)
    assert code == 0, out
    statuses = {run_id: status for run_id, status, _pid in _runs(tmp_path)}
    assert statuses[killed_id] == "abandoned"
    assert sorted(statuses.values()) == ["abandoned", "succeeded"]
    assert f"abandoned runs: {killed_id}" in out
    assert _temp_files(tmp_path) == []


def test_sigterm_finishes_the_run_as_killed(season_dir, tmp_path):
    proc = _launch(season_dir, tmp_path)
    run_id = _wait_running(proc, tmp_path)
    os.kill(proc.pid, signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, err.decode()[-2000:]
    assert [(r, s) for r, s, _p in _runs(tmp_path)] == [(run_id, "killed")]
    assert _temp_files(tmp_path) == []


def test_the_publisher_shaped_event_ts_reads_exactly_as_beams_rfc3339_parser():
    # The fast path for ``pubsub.rfc3339``'s shape must give Beam's own answer on every string it takes,
    # and leave every other string (other shapes, impossible dates) to the general path.
    import random

    from apache_beam.utils.timestamp import Timestamp

    from pipeline.io.pubsub import _publisher_shape_timestamp, attribute_timestamp, rfc3339

    rng = random.Random(14)
    start = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    for _ in range(3000):
        when = start + dt.timedelta(microseconds=rng.randrange(0, 200 * 365 * 86400 * 10**6))
        raw = rfc3339(when)
        fast = _publisher_shape_timestamp(raw)
        assert fast is not None and fast == Timestamp.from_rfc3339(raw) == attribute_timestamp(raw), raw
    for raw in ("2026-02-30T10:00:00.000000Z", "2026-01-13T24:00:00.000000Z", "0000-01-01T00:00:00.000000Z",
                "2026-01-13T18:00:00Z", "2026-01-13T18:00:00.000000+00:00", "2026-01-13 18:00:00.000000Z",
                "2026-01-13T18:00:00.0000000Z", "１２３４-01-13T18:00:00.000000Z"):
        assert _publisher_shape_timestamp(raw) is None, raw
    assert attribute_timestamp("2026-01-13T24:00:00.000000Z") == Timestamp.from_rfc3339(
        "2026-01-13T24:00:00.000000Z")  # dateutil's reading of hour 24 still decides that one

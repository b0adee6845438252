"""Tests for pipeline.io.files: partition listing, bulk reads, dead letters, the Beam source."""

from __future__ import annotations

import datetime as dt
import gzip
import json
import os
from pathlib import Path

import apache_beam as beam
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from pipeline import schemas
from pipeline.io import files
from pipeline.io.files import (
    ReadAllInputs,
    ReadInputs,
    file_batches,
    input_batches_by_kind,
    input_file_sizes,
    input_files,
    partition_date,
    read_rows_local,
)

os.environ.setdefault("NO_GCE_CHECK", "true")

UTC = dt.UTC
D1 = dt.date(2026, 2, 22)
D2 = dt.date(2026, 2, 23)


def _odds_table(n: int, game_date: dt.date, bad_game_id_at: int | None = None) -> pa.Table:
    ts0 = dt.datetime(game_date.year, game_date.month, game_date.day, 15, tzinfo=UTC)
    gid = f"{game_date:%Y%m%d}_LAL_BOS"
    return pa.table({
        "player_lookup": [f"player{i}" for i in range(n)],
        "player_name": [f"Player {i}" for i in range(n)],
        "game_id": ["bad" if i == bad_game_id_at else gid for i in range(n)],
        "game_date": pa.array([game_date] * n, pa.date32()),
        "book": ["draftkings"] * n,
        "line": [20.5 + i for i in range(n)],
        "over_price": pa.array([-110] * n, pa.int64()),
        "under_price": pa.array([-110] * n, pa.int64()),
        "snapshot_ts": pa.array([ts0 + dt.timedelta(minutes=i) for i in range(n)],
                                pa.timestamp("us", tz="UTC")),
        "source_api": ["odds_api"] * n,
    })


def _schedule_line(game_id: str, status: str = "scheduled") -> str:
    return json.dumps({
        "game_id": game_id, "game_date": "2026-02-22", "tipoff_utc": "2026-02-23T00:30:00Z",
        "home_team": "BOS", "away_team": "LAL", "status": status, "new_game_date": None,
        "event_ts": "2026-02-22T12:00:00Z",
    })


@pytest.fixture()
def inputs(tmp_path):
    root = tmp_path / "inputs"
    d1 = root / "odds" / "game_date=2026-02-22"
    d1.mkdir(parents=True)
    pq.write_table(_odds_table(3, D1, bad_game_id_at=2), d1 / "part-000.parquet")
    pq.write_table(_odds_table(2, D1), d1 / "part-001.parquet")
    # A truncated parquet file: one dead letter naming the file.
    (d1 / "part-002.parquet").write_bytes((d1 / "part-001.parquet").read_bytes()[:100])
    d2 = root / "odds" / "game_date=2026-02-23"
    d2.mkdir(parents=True)
    pq.write_table(_odds_table(4, D2), d2 / "part-000.parquet")

    s1 = root / "schedule" / "game_date=2026-02-22"
    s1.mkdir(parents=True)
    good = _schedule_line("20260222_LAL_BOS")
    (s1 / "part-000.jsonl").write_text(
        good + "\n"
        + "\n"  # blank lines are skipped
        + "{not json\n"
        + _schedule_line("20260222_LAL_BOS", status="xyz") + "\n"
        + good[: len(good) // 2]  # cut mid-line (a truncated file)
    )
    with gzip.open(s1 / "part-001.jsonl.gz", "wt") as f:
        f.write(_schedule_line("20260222_NYK_MIA", status="FINAL") + "\n")
    return str(root)


def test_input_files_lists_only_requested_dates(inputs):
    files = input_files(inputs, "odds", [D1])
    assert [os.path.basename(f) for f in files] == [f"part-00{i}.parquet" for i in range(3)]
    assert len(input_files(inputs, "odds", [D1, D2])) == 4
    assert input_files(inputs, "odds", [dt.date(2026, 3, 1)]) == []  # missing folder: no files
    assert input_files(inputs, "injuries", [D1]) == []
    assert partition_date(files[0]) == D1


def test_many_dates_are_listed_with_one_match_of_the_kind(tmp_path, monkeypatch, first_args):
    """Above WHOLE_KIND_MATCH_DATES dates a kind's files come from one match (one listing on GCS, not one
    per date), filtered to the requested dates: the same files as date by date."""
    from apache_beam.io.filesystems import FileSystems

    dates = [D1 + dt.timedelta(days=i) for i in range(12)]
    for d in dates + [D1 - dt.timedelta(days=1)]:  # one date not asked for
        part = tmp_path / "box_scores" / f"game_date={d.isoformat()}"
        part.mkdir(parents=True)
        (part / "part-000.jsonl").write_text("{}\n")
    (tmp_path / "box_scores" / "game_date=2026-02-23" / "nested").mkdir()
    (tmp_path / "box_scores" / "game_date=2026-02-23" / "nested" / "part-9.jsonl").write_text("{}\n")
    patterns = first_args(FileSystems, "match")
    asked = dates[:10]
    got = input_files(str(tmp_path), "box_scores", asked)
    assert len(patterns) == 1 and len(patterns[0]) == 1 and "game_date=*" in patterns[0][0]
    monkeypatch.setattr(files, "WHOLE_KIND_MATCH_DATES", 100)
    assert got == input_files(str(tmp_path), "box_scores", asked)
    assert len(patterns[1]) == 10
    assert [partition_date(p) for p in got] == asked


def test_input_files_rejects_unknown_suffix_and_kind(inputs):
    (open(os.path.join(inputs, "odds", "game_date=2026-02-22", "part-009.csv"), "w")).close()
    with pytest.raises(ValueError, match="unsupported input file"):
        input_files(inputs, "odds", [D1])
    with pytest.raises(ValueError, match="unknown input kind"):
        input_files(inputs, "bets", [D1])


def test_read_parquet_rows_and_dead_letters(inputs):
    rows, dead = read_rows_local(inputs, "odds", [D2])
    assert len(rows) == 4 and not dead
    assert all(isinstance(r, schemas.OddsSnapshot) for r in rows)
    assert rows[1].snapshot_ts == dt.datetime(2026, 2, 23, 15, 1, tzinfo=UTC)
    assert rows[0].snapshot_ts.tzinfo is UTC and rows[0].game_date == D2

    rows, dead = read_rows_local(inputs, "odds", [D1])
    assert len(rows) == 4
    errors = sorted(d.error for d in dead)
    assert len(dead) == 2
    assert errors[0] == "bad_id: game_id: expected YYYYMMDD_AWAY_HOME with a real date, got 'bad'"
    assert errors[1].startswith("malformed: unreadable parquet file") and "part-002.parquet" in errors[1]
    bad_row = next(d for d in dead if d.error.startswith("bad_id"))
    assert bad_row.source == "odds" and bad_row.step == "parse" and bad_row.game_date == D1
    assert json.loads(bad_row.payload)["player_lookup"] == "player2"
    assert bad_row.event_ts == dt.datetime(2026, 2, 22, 15, 2, tzinfo=UTC)


def test_read_jsonl_dead_letters(inputs):
    rows, dead = read_rows_local(inputs, "schedule", [D1])
    assert sorted(r.game_id for r in rows) == ["20260222_LAL_BOS", "20260222_NYK_MIA"]
    assert {r.status for r in rows} == {"scheduled", "final"}
    by_line = {d.error.rsplit("(", 1)[1].rstrip(")"): d for d in dead}
    assert set(by_line) == {"line 3", "line 4", "line 5"}
    assert by_line["line 3"].error.startswith("malformed: not JSON")
    assert by_line["line 3"].payload == "{not json"
    assert by_line["line 4"].error.startswith("bad_value: status: unknown 'xyz'")
    assert by_line["line 4"].event_ts == dt.datetime(2026, 2, 22, 12, tzinfo=UTC)
    assert by_line["line 5"].error.startswith("malformed: not JSON")  # the truncated last line
    assert all(d.game_date == D1 and d.source == "schedule" for d in dead)


def test_read_inputs_transform(inputs):
    with TestPipeline(runner="FnApiRunner") as p:
        rows, dead = p | ReadInputs(inputs, "odds", [D1, D2])
        stamped = rows | beam.Map(lambda r, ts=beam.DoFn.TimestampParam: (r.player_lookup, r.game_date,
                                                                            float(ts)))
        expected = [
            (f"player{i}", d, dt.datetime(d.year, d.month, d.day, 15, i, tzinfo=UTC).timestamp())
            for d, n, skip in ((D1, 3, 2), (D1, 2, None), (D2, 4, None)) for i in range(n) if i != skip
        ]
        assert_that(stamped, equal_to(expected), label="RowsAtEventTime")
        assert_that(dead | beam.Map(lambda d: (d.source, d.game_date, d.error.split(" ")[0])),
                    equal_to([("odds", D1, "bad_id:"), ("odds", D1, "malformed:")]), label="DeadLetters")
    metrics = p.result.metrics().query()["counters"]
    totals = {m.key.metric.name: m.committed for m in metrics}
    assert totals["odds_rows"] == 8 and totals["odds_dead_letters"] == 2


def test_read_all_inputs_groups_rows_per_key_and_batch_of_files(inputs):
    """Several kinds come out of one step; with key_fn the rows of a kind's small files (read together,
    up to READ_BATCH_BYTES per element) arrive as one (key, [rows]) group per key and batch (not one
    element per row, nor per file), and dead letters stay separate."""
    inputs_dir = Path(inputs) / "injuries" / "game_date=2026-02-22"
    inputs_dir.mkdir(parents=True)
    report = {"player_lookup": "player0", "game_date": "2026-02-22", "status": "Out", "reason": "",
              "report_ts": "2026-02-22T12:00:00Z"}
    (inputs_dir / "part-000.jsonl").write_text(json.dumps(report) + "\n")
    with TestPipeline(runner="FnApiRunner") as p:
        read = p | ReadAllInputs(inputs, {"odds": [D1, D2], "injuries": [D1]},
                                 key_fn=lambda r: type(r).__name__)
        assert_that(
            read.rows
            | beam.MapTuple(lambda key, rows: (key, len(rows), sorted({r.game_date for r in rows}))),
            equal_to([("OddsSnapshot", 8, [D1, D2]), ("InjuryReport", 1, [D1])]),
            label="OneGroupPerKeyAndBatch",
        )
        assert_that(read.dead_letters | beam.Map(lambda d: d.source), equal_to(["odds", "odds"]),
                    label="DeadLetters")
    totals = {m.key.metric.name: m.committed for m in p.result.metrics().query()["counters"]}
    assert totals["odds_rows"] == 8 and totals["injuries_rows"] == 1


def test_a_row_group_pickles_by_columns_and_comes_back_exactly():
    """A RowGroup of one row class crosses a shuffle as columns (the class once, equal strings and dates
    once) and comes back as equal rows of that class, every value of its exact type: -0.0 keeps its sign,
    None and NaN stay, timestamps keep their zone, tuples stay tuples. Mixed content pickles as a list."""
    import math
    import pickle

    east = dt.timezone(dt.timedelta(hours=-5))
    odds = _odds_table(4, D1).to_pylist()
    rows = [schemas.OddsSnapshot(**r) for r in odds]
    rows[1] = rows[1]._replace(line=-0.0, snapshot_ts=rows[1].snapshot_ts.astimezone(east))
    features = [schemas.FeatureRow("p1", "20260222_LAL_BOS", D1, "LAL", "BOS", "v2",
                                   (1.5, None, float("nan")), 90.0, "none", 100.0, 0, (), None),
                schemas.FeatureRow("p2", "20260222_LAL_BOS", D1, "LAL", "BOS", "v2", (2.5, 0.0, -1.0),
                                   80.0, "amber", 50.0, 1, (3,), 21.5)]
    for group in (files.RowGroup(rows), files.RowGroup(features)):
        data = pickle.dumps(group, pickle.HIGHEST_PROTOCOL)
        assert b"_rows_from_columns" in data
        back = pickle.loads(data)
        assert type(back) is files.RowGroup and repr(back) == repr(group)
        assert all(type(row) is type(group[0]) for row in back)
    back = pickle.loads(pickle.dumps(files.RowGroup(rows)))
    assert math.copysign(1.0, back[1].line) == -1.0 and back[1].snapshot_ts.tzinfo == east
    assert back[0].game_id is back[2].game_id  # one string, written once
    mixed = files.RowGroup([("odds", rows[0]), ("features", features[0]), rows[1]])
    assert b"_rows_from_columns" not in pickle.dumps(mixed)
    assert repr(pickle.loads(pickle.dumps(mixed))) == repr(mixed)
    assert pickle.loads(pickle.dumps(files.RowGroup())) == []


def test_file_batches_bound_the_bytes_per_read_element(inputs):
    """Consecutive files up to the budget share an element; a file over the budget is read alone."""
    assert file_batches([("a", 400), ("b", 400), ("c", 400), ("d", 2000), ("e", 10)], budget=1000) == [
        ("a", "b"), ("c",), ("d",), ("e",)]
    assert file_batches([]) == []
    files = input_file_sizes(inputs, "odds", [D1, D2])
    assert [path for path, _ in files] == input_files(inputs, "odds", [D1, D2])
    assert all(size > 0 for _, size in files)
    batches = input_batches_by_kind(inputs, {"odds": [D1, D2]})
    assert batches == [("odds", tuple(path for path, _ in files))]  # small files: one element
    assert len(input_batches_by_kind(inputs, {"odds": [D1, D2]}, budget=1)) == len(files)


def test_read_inputs_no_files(tmp_path):
    with TestPipeline(runner="FnApiRunner") as p:
        read = p | ReadInputs(str(tmp_path), "injuries", [D1])
        assert_that(read.rows, equal_to([]), label="NoRows")
        assert_that(read.dead_letters, equal_to([]), label="NoDead")


def test_rows_outside_their_partition_and_hostile_values_are_dead_letters(tmp_path):
    part = tmp_path / "odds" / "game_date=2026-02-22"
    part.mkdir(parents=True)
    good = _odds_table(2, D1).to_pylist()
    stray = dict(good[0], game_id="20260223_LAL_BOS", game_date=D2)  # another date's row in this partition
    lines = [json.dumps(r, default=str) for r in good + [stray]]
    lines.append(json.dumps(dict(good[1], snapshot_ts="0001-01-01T00:00:00+01:00"), default=str))
    lines.append(json.dumps(dict(good[1], player_name="x" * (schemas.MAX_RECORD_BYTES + 10)), default=str))
    (part / "part-000.jsonl").write_text("\n".join(lines) + "\n")
    rows, dead = read_rows_local(str(tmp_path), "odds", [D1])
    assert [r.player_lookup for r in rows] == ["player0", "player1"]
    assert [d.error.split(":")[0] for d in dead] == ["game_date_mismatch", "out_of_range", "too_long"]
    assert dead[0].error == ("game_date_mismatch: game_date 2026-02-23 in the partition game_date=2026-02-22 "
                             "(line 3)")
    assert len(dead[2].payload) == schemas.DEAD_LETTER_PAYLOAD_CHARS

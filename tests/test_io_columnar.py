"""The columnar check of Parquet odds (``parse.odds_rows_columnar``, used by ``files.iter_file``) must accept
exactly what the record parser accepts, with the same rows, and leave every other row to it (same dead
letters, same order). Each test compares a Parquet file read by ``iter_file`` with the same batch read record
by record (the path every other source takes), and checks that the columnar check did the work it should."""

from __future__ import annotations

import datetime as dt
import random

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline import schemas
from pipeline.io import files, parse

UTC = dt.UTC
D1 = dt.date(2026, 2, 22)
D2 = dt.date(2026, 2, 23)
GOOD = {
    "player_lookup": "lebronjames",
    "player_name": "LeBron James",
    "game_id": "20260222_LAL_BOS",
    "game_date": D1,
    "book": "draftkings",
    "line": 25.5,
    "over_price": -110,
    "under_price": 105,
    "snapshot_ts": dt.datetime(2026, 2, 22, 18, 30, tzinfo=UTC),
    "source_api": "odds_api",
}
LOW, HIGH = parse._event_window(D1, parse.DEFAULT_EVENT_WINDOW_HOURS)
ONE_US = dt.timedelta(microseconds=1)

# One field changed per row: values the parser accepts and values it rejects, side by side.
VARIANTS: dict[str, list] = {
    "player_lookup": ["LeBron", "lebron\n", "", None, "x" * 64, "x" * 65, "l\u00e9bron", "\u0663abc",
                      "le bron"],
    "player_name": [None, "", " ", "x" * schemas.MAX_FIELD_CHARS, "x" * (schemas.MAX_FIELD_CHARS + 1),
                    "J\u00f6kic \u00e9"],
    "game_id": ["20260222_LAL_BOS\n", "\u0662\u0660\u0662\u0666\u0660\u0662\u0662\u0662_LAL_BOS",
                "20260223_LAL_BOS", "20260230_LAL_BOS", "bad", None, "20260222_LA_BOSTN", "20260222_lal_bos"],
    "game_date": [None, D2, dt.date(1999, 12, 31), dt.date(2100, 1, 1)],
    "book": ["DraftKings", "_dk", "dk-1", None, "dk_1", "x" * 64, "x" * 65],
    "line": [float("nan"), float("inf"), float("-inf"), None, -0.0, 1e308, 0.5],
    "over_price": [None, 2**63 - 1, -(2**63), 0],
    "snapshot_ts": [None, LOW, HIGH, LOW - ONE_US, HIGH + ONE_US, dt.datetime(1999, 12, 31, tzinfo=UTC),
                    dt.datetime(2026, 2, 22, 18, 30, 0, 123456, tzinfo=UTC)],
    "source_api": ["", "   ", "\u00a0", " api ", "x" * (schemas.MAX_FIELD_CHARS + 1), None, "\tx"],
}
TYPES = {
    "player_lookup": pa.string(), "player_name": pa.string(), "game_id": pa.string(),
    "game_date": pa.date32(), "book": pa.string(), "line": pa.float64(), "over_price": pa.int64(),
    "under_price": pa.int64(), "snapshot_ts": pa.timestamp("us", tz="UTC"), "source_api": pa.string(),
}


def _table(records: list[dict], types: dict | None = None) -> pa.Table:
    """The records as a table of ``TYPES``, then cast (unsafely: values may wrap) to ``types``."""
    names = [n for n in TYPES if any(n in r for r in records)]
    table = pa.table({n: pa.array([r.get(n) for r in records], TYPES[n]) for n in names})
    for name, type_ in (types or {}).items():
        table = table.set_column(table.schema.get_field_index(name), name,
                                 table.column(name).cast(type_, safe=False))
    return table


def _by_records(table: pa.Table, game_date: dt.date | None, window) -> list[str]:
    """The reference: the same batch, record by record (``files._batch_records`` + ``parse_record``)."""
    out = []
    for batch in table.to_batches(max_chunksize=65536):
        out += [repr(item) for item in files._iter_records("odds", files._batch_records(batch), game_date,
                                                           window)]
    return out


def _read(tmp_path, table: pa.Table, window=None, name="part-0.parquet") -> list[str]:
    part = tmp_path / "odds" / f"game_date={D1.isoformat()}"
    part.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, part / name)
    return [repr(item) for item in files.iter_file(str(part / name), "odds", window)]


def _variant_records() -> list[dict]:
    records = [dict(GOOD)]
    for name, values in VARIANTS.items():
        for value in values:
            records.append(dict(GOOD, **{name: value}))
            records.append(dict(GOOD))  # a good row between each, so the merge order is exercised
    records.append(dict(GOOD, game_id="20260223_LAL_BOS", game_date=D2))  # a sound row, another partition's
    return records


def test_every_one_field_defect_reads_as_the_record_parser_reads_it(tmp_path):
    table = _table(_variant_records())
    got = _read(tmp_path, table)
    assert got == _by_records(table, D1, None)
    dead = [item for item in got if item.startswith("DeadLetter")]
    assert len(dead) >= 40, "the variants must include the defects they name"


def test_the_columnar_check_vouches_for_the_good_rows_and_only_for_rows_the_parser_accepts():
    records = _variant_records()
    batch = _table(records).to_batches()[0]
    fast = parse.odds_rows_columnar(batch, parse.DEFAULT_EVENT_WINDOW_HOURS, D1)
    assert fast is not None and len(fast) == len(records)
    for record, row in zip(records, fast, strict=True):
        try:
            expected = files._in_partition(parse.parse_record("odds", record), D1)
        except parse.ParseError:
            expected = None
        if row is not None:  # vouched for: exactly the parser's row, types included
            assert repr(row) == repr(expected), record
    vouched = sum(row is not None for row in fast)
    good = sum(record == GOOD for record in records)
    assert vouched >= good  # every untouched row took the columnar way (not the record fallback)


@pytest.mark.parametrize("window", [None, (2.0, 1.0), (0.0, 0.0)])
def test_random_mixes_of_good_and_bad_values_read_the_same_both_ways(tmp_path, window):
    rng = random.Random(f"columnar-{window}")
    records = []
    for _ in range(3000):
        shift = dt.timedelta(seconds=rng.randint(-90_000, 90_000))
        record = dict(GOOD, snapshot_ts=GOOD["snapshot_ts"] + shift)
        for name, values in VARIANTS.items():
            if rng.random() < 0.04:
                record[name] = rng.choice(values)
        records.append(record)
    table = _table(records)
    got = _read(tmp_path, table, window)
    assert got == _by_records(table, D1, window)
    assert sum(item.startswith("OddsSnapshot") for item in got) > 1000
    assert sum(item.startswith("DeadLetter") for item in got) > 100


@pytest.mark.parametrize("types", [
    {"snapshot_ts": pa.timestamp("ns", tz="America/New_York")},
    {"snapshot_ts": pa.timestamp("ms")},
    {"over_price": pa.int32(), "under_price": pa.int16()},
    {"player_lookup": pa.large_string(), "source_api": pa.large_string()},
    {"over_price": pa.float64()},  # not the plain type: every row the record way
    {"line": pa.float32()},
])
def test_other_column_types_read_the_same_both_ways(tmp_path, types):
    table = _table(_variant_records(), types)
    assert _read(tmp_path, table) == _by_records(table, D1, None)


def test_a_missing_or_text_column_falls_back_to_the_record_parser(tmp_path):
    records = [dict(GOOD) for _ in range(3)]
    table = _table(records).drop_columns(["source_api"])
    assert parse.odds_rows_columnar(table.to_batches()[0]) is None
    got = _read(tmp_path, table)
    assert got == _by_records(table, D1, None) and all("missing_field: 'source_api'" in g for g in got)
    text_dates = _table(records).set_column(3, "game_date", pa.array(["2026-02-22"] * 3))
    assert parse.odds_rows_columnar(text_dates.to_batches()[0]) is None
    assert _read(tmp_path, text_dates, name="part-1.parquet") == _by_records(text_dates, D1, None)

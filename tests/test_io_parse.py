"""Tests for pipeline.io.parse: typed rows from raw records, precise reasons for bad ones."""

from __future__ import annotations

import datetime as dt
import json
import math
from decimal import Decimal

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from pipeline import schemas
from pipeline.io.parse import (
    DEFAULT_EVENT_WINDOW_HOURS,
    ParseError,
    dead_letter,
    error_code,
    event_time,
    event_time_in_window,
    parse_json_record,
    parse_record,
    raw_event_time,
)
from pipeline.policy import Policy

UTC = dt.UTC


def odds(**over):
    rec = {
        "player_lookup": "lebronjames", "player_name": "LeBron James", "game_id": "20260222_LAL_BOS",
        "game_date": "2026-02-22", "book": "draftkings", "line": 24.5, "over_price": -110,
        "under_price": -110, "snapshot_ts": "2026-02-22T18:00:00Z", "source_api": "odds_api",
    }
    rec.update(over)
    return rec


def schedule(**over):
    rec = {
        "game_id": "20260222_LAL_BOS", "game_date": "2026-02-22", "tipoff_utc": "2026-02-23T00:30:00Z",
        "home_team": "BOS", "away_team": "LAL", "status": "scheduled", "new_game_date": None,
        "event_ts": "2026-02-20T12:00:00+00:00",
    }
    rec.update(over)
    return rec


def features(**over):
    rec = {name: float(i) for i, name in enumerate(schemas.FEATURE_NAMES)}
    rec.update({
        "player_lookup": "lebronjames", "game_id": "20260222_LAL_BOS", "game_date": dt.date(2026, 2, 22),
        "team_abbr": "LAL", "opponent_team_abbr": "BOS", "feature_version": "v2_55",
        "feature_quality_score": 92.5, "quality_alert_level": "green", "matchup_quality_pct": 100.0,
        "required_default_count": 0, "default_feature_indices": [18, 19],
    })
    rec.update(over)
    return rec


def reason(kind, record):
    with pytest.raises(ParseError) as e:
        parse_record(kind, record)
    return e.value.reason


def test_odds_row_typed_and_utc():
    row = parse_record("odds", odds(line=Decimal("24.5"), over_price="-115", under_price=-105.0))
    assert isinstance(row, schemas.OddsSnapshot)
    assert row.line == 24.5 and type(row.line) is float
    assert (row.over_price, row.under_price) == (-115, -105)
    assert type(row.under_price) is int
    assert row.game_date == dt.date(2026, 2, 22)
    assert row.snapshot_ts == dt.datetime(2026, 2, 22, 18, tzinfo=UTC)
    assert row.snapshot_ts.tzinfo is UTC


@pytest.mark.parametrize("value", [
    "2026-02-22T13:00:00-05:00",
    dt.datetime(2026, 2, 22, 18, 0),  # naive -> UTC
    pd.Timestamp("2026-02-22 18:00", tz="UTC"),
    pd.Timestamp("2026-02-22 13:00", tz="America/New_York"),
    np.datetime64("2026-02-22T18:00:00"),
    pa.scalar(dt.datetime(2026, 2, 22, 18, tzinfo=UTC), pa.timestamp("us", tz="UTC")),
])
def test_timestamp_inputs_normalised_to_utc(value):
    row = parse_record("odds", odds(snapshot_ts=value))
    assert row.snapshot_ts == dt.datetime(2026, 2, 22, 18, tzinfo=UTC)
    assert type(row.snapshot_ts) is dt.datetime and row.snapshot_ts.tzinfo is UTC


@pytest.mark.parametrize("value", ["2026-02-22", dt.date(2026, 2, 22), pd.Timestamp("2026-02-22"),
                                   pa.scalar(dt.date(2026, 2, 22), pa.date32())])
def test_date_inputs(value):
    assert parse_record("odds", odds(game_date=value)).game_date == dt.date(2026, 2, 22)


@pytest.mark.parametrize("record, expected", [
    ({k: v for k, v in odds().items() if k != "line"}, "missing_field: 'line'"),
    (odds(line="abc"), "wrong_type: line: expected number, got 'abc'"),
    (odds(line=None), "null_field: line: required, got null"),
    (odds(line=float("nan")), "not_finite: line: required, got NaN"),
    (odds(line=float("inf")), "not_finite: line: expected a finite number, got inf"),
    (odds(line="-Infinity"), "not_finite: line: expected a finite number, got -inf"),
    (odds(line=Decimal("NaN")), "not_finite: line: required, got NaN"),
    (odds(line=True), "wrong_type: line: expected number, got True"),
    (odds(line=[24.5]), "wrong_type: line: expected number, got [24.5]"),
    (odds(game_id="LAL_BOS"), "bad_id: game_id: expected YYYYMMDD_AWAY_HOME with a real date, got 'LAL_BOS'"),
    (odds(game_id="20261399_LAL_BOS", game_date="2026-12-13"),
     "bad_id: game_id: expected YYYYMMDD_AWAY_HOME with a real date, got '20261399_LAL_BOS'"),
    (odds(game_id="20260223_LAL_BOS"),
     "game_date_mismatch: game_id '20260223_LAL_BOS' names 2026-02-23, the row's game_date is 2026-02-22"),
    (odds(snapshot_ts="yesterday"), "wrong_type: snapshot_ts: not a timestamp: 'yesterday'"),
    (odds(snapshot_ts="0001-01-01T00:00:00+01:00"),
     "out_of_range: snapshot_ts: '0001-01-01T00:00:00+01:00' outside 2000-01-01..2099-12-31"),
    (odds(snapshot_ts="9999-12-31T23:59:59-01:00"),
     "out_of_range: snapshot_ts: '9999-12-31T23:59:59-01:00' outside 2000-01-01..2099-12-31"),
    (odds(snapshot_ts=dt.datetime(1, 1, 1)), "out_of_range: snapshot_ts: datetime.datetime(1, 1, 1, 0, 0) "
                                             "outside 2000-01-01..2099-12-31"),
    (odds(snapshot_ts="2029-02-22T18:00:00Z"),
     "event_time_outside_window: snapshot_ts 2029-02-22T18:00:00+00:00 is more than 8760 h before or 12 h "
     "after game_date 2026-02-22 (policy event_time_window_hours)"),
    (odds(over_price="-110.5"), "wrong_type: over_price: expected integer, got '-110.5'"),
    (odds(over_price="even"), "wrong_type: over_price: expected integer, got 'even'"),
    (odds(over_price=2**70), "out_of_range: over_price: integer beyond 64 bits: 1180591620717411303424"),
    (odds(over_price=float("inf")), "not_finite: over_price: expected integer, got inf"),
    (odds(book="DraftKings"),
     "bad_id: book: expected a lower-case key (letters, digits, _), got 'DraftKings'"),
    (odds(book=""), "bad_id: book: expected a lower-case key (letters, digits, _), got ''"),
    (odds(player_lookup="LeBronJames"),
     "bad_id: player_lookup: expected lower-case letters and digits, got 'LeBronJames'"),
    (odds(player_lookup="lebron james"),
     "bad_id: player_lookup: expected lower-case letters and digits, got 'lebron james'"),
    (odds(player_lookup="léo"), "bad_id: player_lookup: expected lower-case letters and digits, got 'léo'"),
    (odds(player_lookup=12), "wrong_type: player_lookup: expected string, got 12"),
    # Ids are ASCII and whole: no trailing newline (Python's "$" would allow one), no Unicode digits.
    (odds(player_lookup="lebronjames\n"),
     "bad_id: player_lookup: expected lower-case letters and digits, got 'lebronjames\\n'"),
    (odds(book="draftkings\n"),
     "bad_id: book: expected a lower-case key (letters, digits, _), got 'draftkings\\n'"),
    (odds(game_id="20260222_LAL_BOS\n"),
     "bad_id: game_id: expected YYYYMMDD_AWAY_HOME with a real date, got '20260222_LAL_BOS\\n'"),
    (odds(game_id="\u0662\u0660\u0662\u0666\u0660\u0662\u0662\u0662_LAL_BOS"),
     "bad_id: game_id: expected YYYYMMDD_AWAY_HOME with a real date, got "
     "'\u0662\u0660\u0662\u0666\u0660\u0662\u0662\u0662_LAL_BOS'"),
    (odds(player_name="x" * 5000), "too_long: player_name: 5000 characters (at most 1000)"),
    (odds(game_date="22/02/2026"), "wrong_type: game_date: not a date: '22/02/2026'"),
    (odds(game_date="0001-01-01"), "out_of_range: game_date: 0001-01-01 outside 2000-01-01..2099-12-31"),
])
def test_odds_reasons(record, expected):
    assert reason("odds", record) == expected


def test_error_text_never_carries_a_huge_value():
    text = reason("odds", odds(line="9" * 100_000 + "x"))
    assert text.startswith("wrong_type: line: expected number, got '999") and len(text) < 200
    assert error_code(text) == "wrong_type"


def test_event_window_is_the_policy_setting():
    # 30 hours after the game date's UTC day: rejected by default (12 h), accepted with a 48 h window.
    late = odds(snapshot_ts="2026-02-24T06:00:00Z")
    assert reason("odds", late).startswith("event_time_outside_window: snapshot_ts")
    assert parse_record("odds", late, event_window_hours=(8760.0, 48.0)).snapshot_ts.day == 24
    early = odds(snapshot_ts="2026-02-19T00:00:00Z")  # 72 h before: fine by default, not with a 24 h window
    assert parse_record("odds", early).snapshot_ts.day == 19
    with pytest.raises(ParseError, match="event_time_outside_window"):
        parse_record("odds", early, event_window_hours=(24.0, 12.0))
    assert event_time_in_window(dt.datetime(2026, 2, 23, 12, tzinfo=UTC), dt.date(2026, 2, 22))
    assert not event_time_in_window(dt.datetime(2026, 2, 23, 12, 0, 1, tzinfo=UTC), dt.date(2026, 2, 22))
    assert Policy().event_time_window_hours == DEFAULT_EVENT_WINDOW_HOURS == (8760.0, 12.0)


def test_injury_and_schedule_event_times_are_windowed_too():
    inj = {"player_lookup": "a", "game_date": "2026-02-22", "status": "out", "reason": "",
           "report_ts": "2027-02-22T15:00:00Z"}
    assert error_code(reason("injuries", inj)) == "event_time_outside_window"
    late = schedule(event_ts="2026-03-22T00:00:00Z")
    assert error_code(reason("schedule", late)) == "event_time_outside_window"


def test_schedule_tipoff_must_be_on_the_game_date():
    assert reason("schedule", schedule(tipoff_utc="2026-03-23T00:30:00Z")) == (
        "game_date_mismatch: tipoff_utc 2026-03-23T00:30:00+00:00 is not on game_date 2026-02-22")
    assert parse_record("schedule", schedule(tipoff_utc="2026-02-23T06:30:00Z")).tipoff_utc.hour == 6


def test_line_and_price_ranges_are_not_parse_errors():
    row = parse_record("odds", odds(line=150.0, over_price=5, under_price=0))
    assert (row.line, row.over_price, row.under_price) == (150.0, 5, 0)


def test_schedule_status_any_case_stored_lower_and_unknown_rejected():
    row = parse_record("schedule", schedule(status="Postponed", new_game_date="2026-03-01"))
    assert row.status == "postponed" and row.new_game_date == dt.date(2026, 3, 1)
    assert row.tipoff_utc == dt.datetime(2026, 2, 23, 0, 30, tzinfo=UTC)
    assert reason("schedule", schedule(status="xyz")).startswith("bad_value: status: unknown 'xyz'")
    assert reason("schedule", schedule(tipoff_utc="soon")) == (
        "wrong_type: tipoff_utc: not a timestamp: 'soon'")


def test_injury_status_kept_raw_case():
    row = parse_record("injuries", {"player_lookup": "lebronjames", "game_date": "2026-02-22",
                                    "status": "OUT", "reason": None, "report_ts": "2026-02-22T15:00:00Z"})
    assert row.status == "OUT" and row.reason == ""


def test_features_named_columns_to_tuple():
    rec = features(points_avg_last_5=float("nan"), prev_game_closing_line=Decimal("22.5"),
                   default_feature_indices=np.array([18, 19, 20]))
    del rec["pct_three"]
    row = parse_record("features", rec)
    assert isinstance(row, schemas.FeatureRow) and len(row.features) == 55
    assert row.features[0] is None  # NaN
    assert row.features[schemas.FEATURE_INDEX["pct_three"]] is None  # missing column
    assert row.features[1] == 1.0 and row.features[54] == 54.0
    assert row.default_feature_indices == (18, 19, 20)
    assert row.prev_game_closing_line == 22.5
    assert parse_record("features", features(default_feature_indices=None)).default_feature_indices == ()
    assert parse_record("features", features()).prev_game_closing_line is None


def test_features_bad_value_rejected():
    assert reason("features", features(pace_score="fast")) == (
        "wrong_type: pace_score: expected number, got 'fast'")
    assert reason("features", features(required_default_count=1.5)) == (
        "wrong_type: required_default_count: expected integer, got 1.5")


@pytest.mark.parametrize("over, expected", [
    ({"pace_score": float("inf")}, "not_finite: pace_score: expected a finite number, got inf"),
    ({"pace_score": np.float64("-inf")}, "not_finite: pace_score: expected a finite number, got -inf"),
    ({"feature_quality_score": float("nan")}, "not_finite: feature_quality_score: required, got NaN"),
    ({"feature_quality_score": 1e9}, "out_of_range: feature_quality_score: 1000000000.0 outside [0, 100]"),
    ({"matchup_quality_pct": -1.0}, "out_of_range: matchup_quality_pct: -1.0 outside [0, 100]"),
    ({"required_default_count": -3}, "out_of_range: required_default_count: -3 outside [0, 55]"),
    ({"default_feature_indices": [3, 99]}, "out_of_range: default_feature_indices[1]: 99 outside [0, 54]"),
    ({"default_feature_indices": list(range(80))},
     "too_long: default_feature_indices: 80 items (at most 55)"),
    ({"game_date": dt.date(2026, 2, 21)},
     "game_date_mismatch: game_id '20260222_LAL_BOS' names 2026-02-22, the row's game_date is 2026-02-21"),
])
def test_features_out_of_range(over, expected):
    assert reason("features", features(**over)) == expected


def test_box_score_optional_numbers_and_bools():
    row = parse_record("box_scores", {
        "player_lookup": "lebronjames", "game_id": "20260222_LAL_BOS", "game_date": "2026-02-22",
        "team_abbr": "LAL", "points": None, "minutes": float("nan"), "is_dnp": "true", "starter": 0,
        "plus_minus": Decimal("-3"), "fg3a": 4,
    })
    assert row.points is None and row.minutes is None
    assert row.is_dnp is True and row.starter is False
    assert row.plus_minus == -3.0 and row.fg3a == 4.0 and row.fg3m is None
    assert math.isclose(row.fg3a, 4.0)


def test_not_a_mapping():
    assert reason("odds", ["a"]) == "malformed: expected a JSON object, got list"


def test_json_records_are_bounded_and_decoded():
    with pytest.raises(ParseError, match=r"too_long: record of \d+ bytes"):
        parse_json_record("odds", b'{"x": "' + b"a" * (schemas.MAX_RECORD_BYTES + 1) + b'"}')
    with pytest.raises(ParseError, match="malformed: not UTF-8"):
        parse_json_record("odds", b"\xff\xfe")
    # invalid UTF-8 inside well-formed JSON (an encoded surrogate, an overlong form, beyond U+10FFFF, a
    # cut sequence; with and without a 19-digit run): the decoder's own error, as bytes.decode gives it
    for bad in (b'{"a": "\xed\xa0\x80"}', b'{"a": "\xc0\xaf"}', b'{"a": "\xf4\x90\x80\x80"}',
                b'{"a": "\xe2\x82"}', b'{"a": "\xe2\x82", "n": 1234567890123456789}'):
        with pytest.raises(UnicodeDecodeError):
            bad.decode("utf-8")
        with pytest.raises(ParseError, match="malformed: not UTF-8: 'utf-8' codec can't decode"):
            parse_json_record("odds", bad)
    with pytest.raises(ParseError, match="malformed: not JSON") as e:
        parse_json_record("odds", b"[" * 100_000)
    with pytest.raises(ParseError, match="bad_id") as e:
        parse_json_record("odds", json.dumps(odds(game_id="x")).encode())
    assert e.value.record["game_id"] == "x"  # the decoded record rides on the error (its dead letter)


def test_box_score_negative_points_rejected():
    rec = {"player_lookup": "a", "game_id": "20260222_LAL_BOS", "game_date": "2026-02-22", "team_abbr": "LAL",
           "points": -4, "minutes": 20, "is_dnp": False, "starter": True}
    assert reason("box_scores", rec) == "out_of_range: points: -4.0 outside >= 0"


def test_dead_letter_payloads_are_clipped_by_one_function():
    big = {"player_lookup": "a", "blob": "z" * 50_000}
    d = dead_letter("odds", "too_long: x", big)
    assert len(d.payload) == schemas.DEAD_LETTER_PAYLOAD_CHARS and d.payload.endswith("chars]")
    assert d.payload == schemas.clip_text(json.dumps(big, sort_keys=True))
    assert schemas.clip_text("short") == "short"


def test_event_times():
    row = parse_record("odds", odds())
    assert event_time("odds", row) == dt.datetime(2026, 2, 22, 18, tzinfo=UTC)
    frow = parse_record("features", features())
    assert event_time("features", frow) == dt.datetime(2026, 2, 22, tzinfo=UTC)
    assert raw_event_time("odds", odds(line="abc")) == dt.datetime(2026, 2, 22, 18, tzinfo=UTC)
    assert raw_event_time("odds", odds(snapshot_ts="bad")) is None
    assert raw_event_time("odds", "not a dict") is None
    assert raw_event_time("odds", odds(snapshot_ts="0001-01-01T00:00:00+01:00")) is None


def _json_outcome(decode, doc):
    """(value with its types) or (the error's type and message) of decoding ``doc``."""

    def typed(v):
        if isinstance(v, dict):
            return {k: typed(x) for k, x in v.items()}
        if isinstance(v, list):
            return [typed(x) for x in v]
        if isinstance(v, float) and math.isnan(v):
            return ("nan",)
        return (type(v).__name__, v)

    try:
        return "ok", typed(decode(doc))
    except (ValueError, RecursionError) as exc:
        return "error", type(exc).__name__, str(exc)


DOCS = [
    b'{"points": 16.0, "is_dnp": false, "game_id": "20251021_ATL_MEM", "minutes": null}',
    b'{"a": NaN}', b'{"a": Infinity}', b'{"a": -Infinity}', b'{"a": 1e400}', b'{"a": 1.7976931348623157e309}',
    b'{"a": "\\ud800"}', b'\xef\xbb\xbf{"a": 1}', b'{"a": 1, "a": 2}', b'-0', b'{"a": -0.0}', b'1E2',
    b'{"a": 123456789012345678901234567890}', b'-9223372036854775809', b'18446744073709551616',
    b'9999999999999999999', b'{"id": "1234567890123456789012"}', b'{"a": 5E-324}', b'{"a": 1.0e-400}',
    b'{"a": "x\ny"}', b'{"a":1}garbage', b'', b'   ', b'00', b'{"a": 01}', b'{"a": .5}', b'{"a": +5}',
    b'[' * 5000, b'{"a": "\\u0000\\u00e9"}', '{"a": "\u00e9"}'.encode(), b'[1, 2.5, true, null, "s"]',
    b'{"nested": {"deep": [1, {"x": -12.5e-3}]}}', b' {"a": 1} \n', b'"just a string"', b'{"a": 1,}',
]


@pytest.mark.parametrize("doc", DOCS + [d.decode("utf-8", "surrogatepass") for d in DOCS[:6]])
def test_decode_json_gives_the_standard_librarys_value_or_error(doc):
    from pipeline.io.parse import decode_json

    expected = _json_outcome(json.loads, doc.decode("utf-8") if isinstance(doc, bytes) else doc)
    assert _json_outcome(decode_json, doc) == expected


CHARS = "ab\u00e9\u4e2d\"\\/\n\t0123456789"


def test_decode_json_agrees_with_json_loads_on_random_documents():
    import random

    from pipeline.io.parse import decode_json

    rng = random.Random(14)
    atoms = [lambda: rng.randint(-10**25, 10**25), lambda: rng.randint(-1000, 1000),
             lambda: rng.uniform(-1e6, 1e6), lambda: rng.choice([True, False, None]),
             lambda: "".join(rng.choice(CHARS) for _ in range(rng.randint(0, 25))),
             lambda: float(rng.choice(["nan", "inf", "-inf", "1e308", "-0.0", "5e-324"]))]

    def value(depth=0):
        if depth < 3 and rng.random() < 0.3:
            if rng.random() < 0.5:
                return [value(depth + 1) for _ in range(rng.randint(0, 4))]
            return {f"k{rng.randint(0, 5)}": value(depth + 1) for _ in range(rng.randint(0, 5))}
        return rng.choice(atoms)()

    for _ in range(3000):
        text = json.dumps(value())
        assert _json_outcome(decode_json, text.encode()) == _json_outcome(json.loads, text), text
        assert _json_outcome(decode_json, text) == _json_outcome(json.loads, text), text

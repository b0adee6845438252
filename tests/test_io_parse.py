"""Tests for pipeline.io.parse: typed rows from raw records, precise reasons for bad ones."""

from __future__ import annotations

import datetime as dt
import math
from decimal import Decimal

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from pipeline import schemas
from pipeline.io.parse import ParseError, event_time, parse_record, raw_event_time

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
    ({k: v for k, v in odds().items() if k != "line"}, "missing field 'line'"),
    (odds(line="abc"), "line: expected number, got 'abc'"),
    (odds(line=None), "line: required, got null"),
    (odds(line=float("nan")), "line: required, got null"),
    (odds(line=True), "line: expected number, got True"),
    (odds(game_id="LAL_BOS"), "game_id: expected YYYYMMDD_AWAY_HOME, got 'LAL_BOS'"),
    (odds(snapshot_ts="yesterday"), "snapshot_ts: not a timestamp: 'yesterday'"),
    (odds(over_price="-110.5"), "over_price: expected integer, got '-110.5'"),
    (odds(over_price="even"), "over_price: expected integer, got 'even'"),
    (odds(book="DraftKings"), "book: expected lower case without spaces at the ends, got 'DraftKings'"),
    (odds(book=""), "book: empty"),
    (odds(player_lookup="LeBronJames"),
     "player_lookup: expected lower case without spaces at the ends, got 'LeBronJames'"),
    (odds(game_date="22/02/2026"), "game_date: not a date: '22/02/2026'"),
])
def test_odds_reasons(record, expected):
    assert reason("odds", record) == expected


def test_line_and_price_ranges_are_not_parse_errors():
    row = parse_record("odds", odds(line=150.0, over_price=5, under_price=0))
    assert (row.line, row.over_price, row.under_price) == (150.0, 5, 0)


def test_schedule_status_any_case_stored_lower_and_unknown_rejected():
    row = parse_record("schedule", schedule(status="Postponed", new_game_date="2026-03-01"))
    assert row.status == "postponed" and row.new_game_date == dt.date(2026, 3, 1)
    assert row.tipoff_utc == dt.datetime(2026, 2, 23, 0, 30, tzinfo=UTC)
    assert reason("schedule", schedule(status="xyz")).startswith("status: unknown 'xyz'")
    assert reason("schedule", schedule(tipoff_utc="soon")) == "tipoff_utc: not a timestamp: 'soon'"


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
    assert reason("features", features(pace_score="fast")) == "pace_score: expected number, got 'fast'"
    assert reason("features", features(required_default_count=1.5)) == (
        "required_default_count: expected integer, got 1.5")


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
    assert reason("odds", ["a"]) == "expected a JSON object, got list"


def test_event_times():
    row = parse_record("odds", odds())
    assert event_time("odds", row) == dt.datetime(2026, 2, 22, 18, tzinfo=UTC)
    frow = parse_record("features", features())
    assert event_time("features", frow) == dt.datetime(2026, 2, 22, tzinfo=UTC)
    assert raw_event_time("odds", odds(line="abc")) == dt.datetime(2026, 2, 22, 18, tzinfo=UTC)
    assert raw_event_time("odds", odds(snapshot_ts="bad")) is None
    assert raw_event_time("odds", "not a dict") is None

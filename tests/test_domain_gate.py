"""Tests for pipeline.domain.gate: universe exclusions, the quality-gate table, latest injury status."""

import datetime as dt

import pytest

from pipeline.domain.gate import gate, latest_injury_status, universe_exclusion
from pipeline.policy import Policy
from pipeline.schemas import FeatureRow, InjuryReport

P = Policy()
AS_OF = dt.datetime(2026, 2, 22, 22, 0, tzinfo=dt.UTC)
TIP = AS_OF + dt.timedelta(hours=2)


def row(score=90.0, alert="green", matchup=80.0, defaults=0):
    return FeatureRow("p", "20260222_LAL_BOS", dt.date(2026, 2, 22), "LAL", "BOS", "v2", (1.0,) * 55,
                      score, alert, matchup, defaults, ())


@pytest.mark.parametrize("status, tip, injury, reason", [
    ("scheduled", TIP, None, None),
    ("SCHEDULED", TIP, "questionable", None),
    (None, TIP, None, "not_on_schedule"),
    ("postponed", TIP, None, "game_postponed"),
    ("cancelled", TIP, None, "game_cancelled"),
    ("in_progress", TIP, None, "game_started"),
    ("final", TIP, None, "game_started"),
    ("scheduled", AS_OF, None, "game_started"),  # tip-off exactly at as_of has started
    ("scheduled", AS_OF + dt.timedelta(seconds=1), None, None),
    ("scheduled", TIP, "OUT", "injury_out"),
    ("scheduled", TIP, "Doubtful", "injury_doubtful"),
    ("scheduled", TIP, "out", "injury_out"),
    ("scheduled", TIP, "Probable", None),
    ("postponed", TIP, "out", "game_postponed"),  # schedule reasons come first
])
def test_universe_exclusion(status, tip, injury, reason):
    assert universe_exclusion(status, tip, AS_OF, injury, P) == reason


def test_unknown_game_status_is_an_error():
    with pytest.raises(ValueError):
        universe_exclusion("delayed", TIP, AS_OF, None, P)


@pytest.mark.parametrize("r, mode, expected", [
    (None, "FIRST", (False, "no_features_available")),
    (row(alert="red"), "FIRST", (False, "hard_floor_red_alert")),
    (row(alert="RED", matchup=10.0), "FIRST", (False, "hard_floor_red_alert")),  # first rule wins
    (row(matchup=50.0), "FIRST", (True, "quality_sufficient")),
    (row(matchup=49.9), "FIRST", (False, "hard_floor_matchup_49.9")),
    (row(matchup=45.0), "FIRST", (False, "hard_floor_matchup_45")),
    (row(matchup=45.0, defaults=2), "FIRST", (False, "hard_floor_matchup_45")),
    (row(defaults=1), "FIRST", (False, "zero_tolerance_defaults_1")),
    (row(score=85.0), "FIRST", (True, "quality_sufficient")),
    (row(score=84.9), "FIRST", (False, "quality_below_threshold_85")),
    (row(score=84.9), "RETRY", (False, "quality_below_threshold_85")),
    (row(score=80.0), "FINAL_RETRY", (True, "quality_sufficient")),
    (row(score=79.9), "FINAL_RETRY", (False, "quality_below_threshold_80")),
    (row(score=70.0), "LAST_CALL", (True, "quality_sufficient")),
    (row(score=69.9), "BACKFILL", (False, "quality_below_threshold_70")),
    (row(alert="yellow", score=84.9), "LAST_CALL", (True, "quality_sufficient")),
])
def test_gate_table(r, mode, expected):
    assert gate(r, mode, P) == expected


def test_gate_streaming_mode_and_unknown_mode():
    assert gate(row(score=84.9), P.streaming_run_mode, P) == (False, "quality_below_threshold_85")
    with pytest.raises(ValueError):
        gate(row(), "STREAM", P)
    with pytest.raises(ValueError):
        gate(None, "first", P)


def test_gate_nan_matchup_fails_the_floor():
    viable, reason = gate(row(matchup=float("nan")), "FIRST", P)
    assert not viable and reason.startswith("hard_floor_matchup_")


def test_latest_injury_status_at_or_before_as_of():
    def rep(status, hours):
        return InjuryReport("p", dt.date(2026, 2, 22), status, "knee", AS_OF + dt.timedelta(hours=hours))
    reports = [rep("Questionable", -5), rep("OUT", 0), rep("Available", 1)]
    assert latest_injury_status(reports, AS_OF) == "out"
    assert latest_injury_status(reports, AS_OF - dt.timedelta(hours=1)) == "questionable"
    assert latest_injury_status(reports, AS_OF - dt.timedelta(hours=6)) is None
    assert latest_injury_status([], AS_OF) is None

"""The grading transforms (pipeline.transforms.grading) on a handful of inline rows."""

from __future__ import annotations

import datetime as dt

import apache_beam as beam
import pytest
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from pipeline.domain import grading as g
from pipeline.policy import Policy
from pipeline.schemas import BoxScore, DeadLetter, InjuryReport, OddsSnapshot, Pick, Prediction, ScheduleEvent
from pipeline.transforms.grading import (
    ComputeModelPerformance,
    GradePlayerDates,
    NewDeadLetters,
    ResolveTipoffs,
)

D = dt.date(2026, 2, 22)
GAME = "20260222_LAL_BOS"
TIP = dt.datetime(2026, 2, 23, 0, 30, tzinfo=dt.UTC)
PENDING_GAME = "20260222_NYK_MIA"


def _pred(player: str, game: str, rec: str, line: float | None, predicted: float) -> Prediction:
    edge = None if line is None else round(predicted - line, 1)
    return Prediction(D, game, player, "m1", "v12_mae", "v12", predicted, line, "draftkings",
                      TIP - dt.timedelta(hours=2), edge, rec, 0.8)


def _pick(player: str, game: str, direction: str, line: float) -> Pick:
    return Pick(f"pk-{player}", D, game, player, None, None, None, TIP, 1, direction, line, "draftkings",
                None, 5.5, 26.0, 0.8, 5, 8, 1.0, 0.8, ("m1",), (), "{}", "{}", (), False, "{}", "active", 1)


BOXES = [
    BoxScore("aa", GAME, D, "LAL", 25.0, 34.0, False, True, 4.0),
    BoxScore("bb", GAME, D, "LAL", 0.0, 0.0, True, False, None),
]
INJURIES = [InjuryReport("bb", D, "OUT", "ankle", TIP - dt.timedelta(hours=3))]
ODDS = [OddsSnapshot("aa", "A A", GAME, D, "draftkings", 21.5, -110, -110, TIP - dt.timedelta(minutes=10),
                     "odds_api")]
PREDS = [_pred("aa", GAME, "OVER", 20.5, 26.0), _pred("bb", GAME, "UNDER", 10.5, 5.0),
         _pred("cc", PENDING_GAME, "OVER", 10.5, 16.0), _pred("aa", GAME, "NO_LINE", None, 20.0)._replace(
             model_id="m2")]
PICKS = [_pick("aa", GAME, "OVER", 20.5), _pick("bb", GAME, "UNDER", 10.5),
         _pick("cc", PENDING_GAME, "OVER", 10.5)]


@pytest.fixture(autouse=True)
def _anonymous_gcp(monkeypatch):
    """No Google Cloud credential lookups (beam-notes.md: ~24 s of retries otherwise)."""
    import google.auth
    from google.auth.credentials import AnonymousCredentials

    monkeypatch.setenv("NO_GCE_CHECK", "true")
    monkeypatch.setattr(google.auth, "default", lambda *a, **k: (AnonymousCredentials(), None))


def test_grade_transforms_match_the_domain_function():
    policy = Policy()
    tipoffs = {GAME: TIP}
    expected = g.grade_player_date(PREDS[:1], PICKS[:1], BOXES[:1], [], ODDS, tipoffs=tipoffs,
                                   played_game_ids={GAME}, policy=policy, run_id="r1")
    schedule = [ScheduleEvent(GAME, D, TIP - dt.timedelta(hours=1), "BOS", "LAL", "scheduled", None,
                              TIP - dt.timedelta(days=1)),
                ScheduleEvent(GAME, D, TIP, "BOS", "LAL", "final", None, TIP + dt.timedelta(hours=3))]
    with TestPipeline(runner="FnApiRunner") as p:
        tips = p | "Schedule" >> beam.Create(schedule) | "ResolveTipoffs" >> ResolveTipoffs()
        graded = {
            "predictions": p | "Preds" >> beam.Create(PREDS), "picks": p | "Picks" >> beam.Create(PICKS),
            "box_scores": p | "Boxes" >> beam.Create(BOXES),
            "injuries": p | "Injuries" >> beam.Create(INJURIES),
            "odds": p | "Odds" >> beam.Create(ODDS),
        } | "GradePlayerDates" >> GradePlayerDates(tips, policy=policy, run_id="r1")
        assert_that(tips, equal_to([(GAME, TIP)]), label="LatestTipoff")
        assert_that(graded.accuracy | "AccSummary" >> beam.Map(
            lambda a: (a.player_lookup, a.model_id, a.prediction_correct, a.void_reason, a.clv)),
            equal_to([("aa", "m1", True, None, 1.0), ("bb", "m1", None, "dnp_injury_confirmed", None),
                      ("aa", "m2", None, None, None)]), label="Acc")  # NO_LINE graded, no result
        assert_that(
            graded.results | "ResSummary" >> beam.Map(lambda r: (r.player_lookup, r.result, r.void_reason)),
            equal_to([("aa", "WIN", None), ("bb", "VOID", "dnp_injury_confirmed"), ("cc", "PENDING", None)]),
            label="Res")
        assert_that(graded.results | "ResAA" >> beam.Filter(lambda r: r.player_lookup == "aa"),
                    equal_to(expected.results), label="SameAsDomain")
        assert_that(graded.dead_letters, equal_to([]), label="NoDead")
        perf = (graded.accuracy,) | "ComputeModelPerformance" >> ComputeModelPerformance([D], policy=policy,
                                                                                          run_id="r1")
        assert_that(perf | "PerfSummary" >> beam.Map(lambda m: (m.model_id, m.n_7d, m.hr_7d, m.state)),
                    equal_to([("m1", 1, 1.0, "INSUFFICIENT_DATA"), ("m2", 0, None, "INSUFFICIENT_DATA")]),
                    label="Perf")


def test_new_dead_letters_drop_the_stored_ones_and_duplicates():
    old = DeadLetter("files", "parse", "bad json", "{x", None, D)
    new = DeadLetter("files", "parse", "bad json", "{y", None, D)
    with TestPipeline(runner="FnApiRunner") as p:
        stored = p | "Stored" >> beam.Create([old._replace(run_id="before")])
        out = (p | "Dead" >> beam.Create([old, new, new])) | "NewDeadLetters" >> NewDeadLetters(stored,
                                                                                                run_id="r2")
        assert_that(out, equal_to([new._replace(run_id="r2")]))

"""Grading transforms: predictions and picks joined with box scores, injury reports and odds, graded.

``GradePredictions`` and ``GradePicks`` wrap the pure ``pipeline.domain.grading.grade_player_date`` (they
never re-implement a rule): every input is keyed by ``(game_date ISO, player_lookup)``, joined with one
``CoGroupByKey``, and each group is graded in one call. The games that were played (have box scores) are
a side input, so a prediction of a game without box scores stays ungraded (pending) and a pick gets
``PENDING``. Failures become ``DeadLetter`` rows on the ``dead_letters`` output, never exceptions.

Usage::

    graded = predictions | "GradePredictions" >> GradePredictions(
        box_scores, injuries, odds, tipoffs=tipoffs, policy=policy, run_id=run_id)
    graded.accuracy, graded.dead_letters
    results = picks | "GradePicks" >> GradePicks(box_scores, injuries, odds, tipoffs=..., policy=...)
    results.results, results.dead_letters

``props grade`` grades its bulk-read rows with the same domain function in plain Python (see
``pipeline/commands/grade.py`` for why); these transforms serve a Dataflow grading graph and are tested
with ``TestPipeline``.
"""

from __future__ import annotations

import datetime as dt
import traceback
from collections.abc import Mapping
from typing import NamedTuple

import apache_beam as beam
from apache_beam.metrics import Metrics

from pipeline.domain import grading as grading_lib
from pipeline.policy import Policy
from pipeline.schemas import DeadLetter

METRICS_NAMESPACE = "props_grading"
MAIN, RESULTS, DEAD = "accuracy", "results", "dead_letters"


def player_date_key(row) -> tuple[str, str]:
    """The join key of every grading input: (game_date ISO, player_lookup)."""
    return row.game_date.isoformat(), row.player_lookup


class GradePlayerDateFn(beam.DoFn):
    """Grades one joined (game_date, player) group; emits PredictionAccuracy (main), BestBetResult
    (``results``) and DeadLetter (``dead_letters``) rows."""

    def __init__(self, *, tipoffs: Mapping[str, dt.datetime], policy: Policy, run_id: str | None):
        self._tipoffs = dict(tipoffs)
        self._policy = policy
        self._run_id = run_id
        self.accuracy_counter = Metrics.counter(METRICS_NAMESPACE, "predictions_graded")
        self.pending_counter = Metrics.counter(METRICS_NAMESPACE, "predictions_pending")
        self.results_counter = Metrics.counter(METRICS_NAMESPACE, "picks_graded")
        self.dead_counter = Metrics.counter(METRICS_NAMESPACE, "dead_letters")

    def process(self, element, played_game_ids):
        (date_iso, player), grouped = element
        try:
            out = grading_lib.grade_player_date(
                grouped.get("predictions", ()), grouped.get("picks", ()), grouped["box_scores"],
                grouped["injuries"], grouped["odds"], tipoffs=self._tipoffs,
                played_game_ids=frozenset(played_game_ids), policy=self._policy, run_id=self._run_id)
        except Exception as exc:  # a bad row must not fail the whole grading run
            self.dead_counter.inc()
            yield beam.pvalue.TaggedOutput(DEAD, DeadLetter(
                source="grading", step="grade", error=f"{type(exc).__name__}: {exc}",
                payload=f"{date_iso}|{player}: {traceback.format_exc(limit=3)}"[:4000], event_ts=None,
                game_date=dt.date.fromisoformat(date_iso), run_id=self._run_id))
            return
        self.accuracy_counter.inc(len(out.accuracy))
        self.pending_counter.inc(out.pending_predictions)
        self.results_counter.inc(len(out.results))
        yield from out.accuracy
        for r in out.results:
            yield beam.pvalue.TaggedOutput(RESULTS, r)


class _GradeJoined(beam.PTransform):
    """Shared plumbing: key, join, grade (subclasses name the graded input)."""

    INPUT = ""

    def __init__(self, box_scores, injuries, odds, *, tipoffs: Mapping[str, dt.datetime], policy: Policy,
                 run_id: str | None = None):
        super().__init__()
        self._box_scores, self._injuries, self._odds = box_scores, injuries, odds
        self._tipoffs, self._policy, self._run_id = dict(tipoffs), policy, run_id

    def expand(self, rows):
        played = (self._box_scores
                  | "PlayedGameIds" >> beam.Map(lambda b: b.game_id)
                  | "DistinctGames" >> beam.Distinct())
        keyed = {
            self.INPUT: rows | f"Key{self.INPUT.title()}" >> beam.Map(lambda r: (player_date_key(r), r)),
            "box_scores": self._box_scores | "KeyBoxScores" >> beam.Map(lambda r: (player_date_key(r), r)),
            "injuries": self._injuries | "KeyInjuries" >> beam.Map(lambda r: (player_date_key(r), r)),
            "odds": self._odds | "KeyOdds" >> beam.Map(lambda r: (player_date_key(r), r)),
        }
        return (
            keyed
            | "JoinByPlayerDate" >> beam.CoGroupByKey()
            | f"Only{self.INPUT.title()}" >> beam.Filter(lambda kv: len(kv[1][self.INPUT]) > 0)
            | "GradePlayerDate" >> beam.ParDo(
                GradePlayerDateFn(tipoffs=self._tipoffs, policy=self._policy, run_id=self._run_id),
                played_game_ids=beam.pvalue.AsList(played)).with_outputs(RESULTS, DEAD, main=MAIN)
        )


class GradedPredictions(NamedTuple):
    accuracy: beam.PCollection
    dead_letters: beam.PCollection


class GradedPicks(NamedTuple):
    results: beam.PCollection
    dead_letters: beam.PCollection


class GradePredictions(_GradeJoined):
    """Predictions -> ``prediction_accuracy`` rows (latest prediction per model with a line, played games).

    Args:
        box_scores, injuries, odds: PCollections of ``BoxScore``, ``InjuryReport``, ``OddsSnapshot`` of
            the graded dates.
        tipoffs: game_id -> tip-off (UTC) from the schedule: injury status and closing line are taken as
            of tip-off.
        policy: the selection policy (line sanity rules for the closing line).
        run_id: stamped on every output row.

    Returns:
        ``GradedPredictions(accuracy, dead_letters)``.
    """

    INPUT = "predictions"

    def expand(self, predictions):
        out = super().expand(predictions)
        return GradedPredictions(out[MAIN], out[DEAD])


class GradePicks(_GradeJoined):
    """Picks (``best_bets`` rows) -> ``best_bets_results`` rows; withdrawn picks are not graded.

    Args: as :class:`GradePredictions`. Returns: ``GradedPicks(results, dead_letters)``.
    """

    INPUT = "picks"

    def expand(self, picks):
        out = super().expand(picks)
        return GradedPicks(out[RESULTS], out[DEAD])

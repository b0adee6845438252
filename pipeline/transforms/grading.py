"""Grading transforms: the steps of the ``props grade`` job (``pipeline/grade_graph.py``).

Each wraps a pure function of ``pipeline.domain.grading`` (never re-implementing a rule):

* ``ResolveTipoffs``: schedule events -> ``(game_id, tip-off)`` from each game's latest event;
* ``GradePlayerDates``: predictions, picks, box scores, injury reports and odds keyed by
  ``(game_date ISO, player_lookup)``, joined with ONE ``CoGroupByKey``; each group is graded in one
  ``grade_player_date`` call (latest prediction per model, NO_LINE included; every pick not withdrawn;
  injury status and closing line as of tip-off). Games without box scores are pending (predictions not
  graded, picks ``PENDING``). Failures become ``DeadLetter`` rows, never exceptions;
* ``ComputeModelPerformance``: graded rows (new and the stored 30-day lookback) keyed by model ->
  ``model_performance_series`` (rolling 7/14/30-day edge-3+ HR, edge 5+, OVER/UNDER, MAE, bias, state);
* ``NewDeadLetters``: dead letters not stored yet (same source, step, payload), so a re-grade never
  duplicates them.

Usage::

    tipoffs = schedule | "ResolveTipoffs" >> ResolveTipoffs()
    graded = {"predictions": preds, "picks": picks, "box_scores": boxes, "injuries": injuries,
              "odds": odds} | "GradePlayerDates" >> GradePlayerDates(tipoffs, policy=policy, run_id=run_id)
    graded.accuracy, graded.results, graded.dead_letters
    performance = (graded.accuracy, lookback) | "ComputeModelPerformance" >> ComputeModelPerformance(
        dates, policy=policy, run_id=run_id)

Counters (namespace ``props_grading``) feed the ``props grade`` summary line: ``predictions_graded``,
``predictions_no_line`` (graded without a result), ``predictions_pending``, ``picks_<result>``,
``picks_withdrawn``, ``model_performance_rows``, ``grading_failures``, ``dead_letters`` (all seen).
"""

from __future__ import annotations

import datetime as dt
import traceback
from collections.abc import Iterable, Sequence
from typing import NamedTuple

import apache_beam as beam
from apache_beam.metrics import Metrics

from pipeline.domain import grading as grading_lib
from pipeline.policy import Policy
from pipeline.schemas import DeadLetter, clip_text

METRICS_NAMESPACE = "props_grading"
MAIN, RESULTS, DEAD = "accuracy", "results", "dead_letters"
GRADED_INPUTS: tuple[str, ...] = ("predictions", "picks", "box_scores", "injuries", "odds")
PICK_RESULTS: tuple[str, ...] = (grading_lib.WIN, grading_lib.LOSS, grading_lib.PUSH, grading_lib.VOID,
                                 grading_lib.PENDING)


def player_date_key(row) -> tuple[str, str]:
    """The join key of every grading input: (game_date ISO, player_lookup)."""
    return row.game_date.isoformat(), row.player_lookup


def _tipoff_of(item) -> Iterable[tuple[str, dt.datetime]]:
    from pipeline.domain.schedule import latest_games  # the one "game state from its events" rule

    game_id, events = item
    game = latest_games(list(events)).get(game_id)
    if game is not None and game.tipoff_utc is not None:
        yield game_id, game.tipoff_utc


class ResolveTipoffs(beam.PTransform):
    """Schedule events -> ``(game_id, tip-off UTC)`` from each game's latest event (games without a
    tip-off are left out: their injury status is the date's latest report, no closing line)."""

    def expand(self, events):
        return (events
                | "KeyByGame" >> beam.Map(lambda e: (e.game_id, e))
                | "GroupByGame" >> beam.GroupByKey()
                | "LatestTipoff" >> beam.FlatMap(_tipoff_of))


class GradePlayerDateFn(beam.DoFn):
    """Grades one joined (game_date, player) group; emits PredictionAccuracy (main), BestBetResult
    (``results``) and DeadLetter (``dead_letters``) rows."""

    def __init__(self, *, policy: Policy, run_id: str | None):
        self._policy = policy
        self._run_id = run_id
        self.accuracy_counter = Metrics.counter(METRICS_NAMESPACE, "predictions_graded")
        self.no_line_counter = Metrics.counter(METRICS_NAMESPACE, "predictions_no_line")
        self.pending_counter = Metrics.counter(METRICS_NAMESPACE, "predictions_pending")
        self.withdrawn_counter = Metrics.counter(METRICS_NAMESPACE, "picks_withdrawn")
        self.result_counters = {r: Metrics.counter(METRICS_NAMESPACE, f"picks_{r.lower()}")
                                for r in PICK_RESULTS}
        self.dead_counter = Metrics.counter(METRICS_NAMESPACE, "grading_failures")

    def process(self, element, tipoffs, played_game_ids):
        (date_iso, player), grouped = element
        picks = list(grouped.get("picks", ()))
        try:
            out = grading_lib.grade_player_date(
                grouped.get("predictions", ()), picks, grouped.get("box_scores", ()),
                grouped.get("injuries", ()), grouped.get("odds", ()), tipoffs=tipoffs,
                played_game_ids=played_game_ids, policy=self._policy, run_id=self._run_id)
        except Exception as exc:  # a bad row must not fail the whole grading run
            self.dead_counter.inc()
            yield beam.pvalue.TaggedOutput(DEAD, DeadLetter(
                source="grading", step="grade", error=f"{type(exc).__name__}: {exc}",
                payload=clip_text(f"{date_iso}|{player}: {traceback.format_exc(limit=3)}"), event_ts=None,
                game_date=dt.date.fromisoformat(date_iso), run_id=self._run_id))
            return
        self.accuracy_counter.inc(len(out.accuracy))
        self.no_line_counter.inc(out.no_line_predictions)
        self.pending_counter.inc(out.pending_predictions)
        self.withdrawn_counter.inc(sum(1 for k in picks if k.status == "withdrawn"))
        yield from out.accuracy
        for r in out.results:
            self.result_counters[r.result].inc()
            yield beam.pvalue.TaggedOutput(RESULTS, r)


class GradedRows(NamedTuple):
    accuracy: beam.PCollection  # PredictionAccuracy
    results: beam.PCollection  # BestBetResult
    dead_letters: beam.PCollection  # DeadLetter


class GradePlayerDates(beam.PTransform):
    """Grades predictions and picks against box scores, injury reports and odds (one join).

    Args:
        tipoffs: a PCollection of ``(game_id, tip-off)`` (:class:`ResolveTipoffs`): injury status and
            closing line are taken as of tip-off.
        policy: the selection policy (line sanity rules of the closing line).
        run_id: stamped on every output row.

    Input: a dict of PCollections keyed by :data:`GRADED_INPUTS` (``Prediction``, ``Pick``, ``BoxScore``,
    ``InjuryReport``, ``OddsSnapshot`` rows of the graded dates).

    Returns:
        ``GradedRows(accuracy, results, dead_letters)``.
    """

    def __init__(self, tipoffs, *, policy: Policy, run_id: str | None = None):
        super().__init__()
        self._tipoffs, self._policy, self._run_id = tipoffs, policy, run_id

    def expand(self, inputs):
        missing = set(GRADED_INPUTS) - set(inputs)
        if missing:
            raise ValueError(f"GradePlayerDates needs {sorted(missing)}")
        played = (inputs["box_scores"]
                  | "PlayedGameIds" >> beam.Map(lambda b: (b.game_id, True))
                  | "DistinctGames" >> beam.Distinct())
        keyed = {name: inputs[name] | f"Key_{name}" >> beam.Map(lambda r: (player_date_key(r), r))
                 for name in GRADED_INPUTS}
        out = (
            keyed
            | "JoinByPlayerDate" >> beam.CoGroupByKey()
            | "OnlyGraded" >> beam.Filter(lambda kv: len(kv[1]["predictions"]) > 0 or len(kv[1]["picks"]) > 0)
            | "GradePlayerDate" >> beam.ParDo(
                GradePlayerDateFn(policy=self._policy, run_id=self._run_id),
                tipoffs=beam.pvalue.AsDict(self._tipoffs),
                played_game_ids=beam.pvalue.AsDict(played)).with_outputs(RESULTS, DEAD, main=MAIN)
        )
        return GradedRows(out[MAIN], out[RESULTS], out[DEAD])


class ModelPerformanceFn(beam.DoFn):
    """``(model_id, graded rows)`` -> that model's ``ModelPerformanceDaily`` rows for the graded dates."""

    def __init__(self, dates: Sequence[dt.date], *, policy: Policy, run_id: str | None):
        self._dates, self._policy, self._run_id = sorted(set(dates)), policy, run_id
        self.rows_counter = Metrics.counter(METRICS_NAMESPACE, "model_performance_rows")

    def process(self, element):
        _model_id, rows = element
        out = grading_lib.model_performance_series(rows, self._dates, policy=self._policy,
                                                   run_id=self._run_id)
        self.rows_counter.inc(len(out))
        yield from out


class ComputeModelPerformance(beam.PTransform):
    """Graded rows -> ``model_performance_daily`` rows of ``dates``.

    Input: a tuple of PCollections of ``PredictionAccuracy`` (the new rows and the stored lookback: the
    30 days before the first date that are not graded now). Output: ``ModelPerformanceDaily`` rows, one
    per (date, model with a graded row in the 30 days ending at the date).
    """

    def __init__(self, dates: Sequence[dt.date], *, policy: Policy, run_id: str | None = None):
        super().__init__()
        self._dates, self._policy, self._run_id = sorted(set(dates)), policy, run_id

    def expand(self, accuracy_pcolls):
        return (
            tuple(accuracy_pcolls)
            | "AllGradedRows" >> beam.Flatten()
            | "KeyByModel" >> beam.Map(lambda a: (a.model_id, a))
            | "GroupByModel" >> beam.GroupByKey()
            | "PerformanceSeries" >> beam.ParDo(ModelPerformanceFn(self._dates, policy=self._policy,
                                                                   run_id=self._run_id))
        )


def dead_letter_key(d: DeadLetter) -> tuple[str, str, str | None]:
    """What makes a dead letter the same one on a re-grade: (source, step, payload)."""
    return d.source, d.step, d.payload


class NewDeadLettersFn(beam.DoFn):
    """Drops dead letters already stored (``stored`` side input) and duplicates; stamps the run id."""

    def __init__(self, run_id: str):
        self._run_id = run_id
        self.seen_counter = Metrics.counter(METRICS_NAMESPACE, "dead_letters")

    def process(self, element, stored):
        _, dead = element
        known = {dead_letter_key(d) for d in stored}
        seen = set()
        for d in sorted(dead, key=lambda d: (d.source, d.step, d.payload or "")):
            self.seen_counter.inc()
            k = dead_letter_key(d)
            if k not in known and k not in seen:
                seen.add(k)
                yield d._replace(run_id=d.run_id or self._run_id)


class NewDeadLetters(beam.PTransform):
    """Dead letters of this run that are not stored yet (idempotent re-grades).

    Args:
        stored: a PCollection of the ``dead_letters`` rows already stored for the graded dates.
        run_id: stamped on rows that carry none.
    """

    def __init__(self, stored, *, run_id: str):
        super().__init__()
        self._stored, self._run_id = stored, run_id

    def expand(self, dead):
        return (dead
                | "KeyAll" >> beam.Map(lambda d: ("", d))
                | "GroupAll" >> beam.GroupByKey()
                | "DropStored" >> beam.ParDo(NewDeadLettersFn(self._run_id),
                                             stored=beam.pvalue.AsList(self._stored)))

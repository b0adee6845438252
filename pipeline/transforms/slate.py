"""The slate transforms: line book, universe + quality gate, scoring, consensus, best bets.

Each transform wraps the pure domain functions of ``pipeline/domain`` (it never re-implements a rule) and
works on typed rows with event timestamps, so the same transforms serve a slate, a backfill (many dates in
one graph, every step keyed by date) and the streaming job.

Shapes (``pg_key`` = ``"{game_id}|{player_lookup}"``, a player-game):

    odds, features, box scores, injuries --JoinPlayerGames (one shuffle by player)-->
        PlayerGame (viable) + gate_decisions + line_diagnostics
    PlayerGame --ScorePlayers--> (RunInference over every eligible model) --> predictions + Scored
    Scored --SelectBestBets--> picks + filter_summary (per game_date)

Failures never escape a DoFn: they become ``DeadLetter`` rows on the ``dead_letters`` output.
"""

from __future__ import annotations

import datetime as dt
import traceback
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import NamedTuple

import apache_beam as beam
import numpy as np
from apache_beam.ml.inference.base import RunInference

from pipeline.domain import consensus as consensus_lib
from pipeline.domain import context as context_lib
from pipeline.domain import gate as gate_lib
from pipeline.domain import linebook as linebook_lib
from pipeline.domain import scoring as scoring_lib
from pipeline.domain import selection as selection_lib
from pipeline.domain.grading import is_dnp
from pipeline.domain.schedule import DatePlan
from pipeline.io import files
from pipeline.policy import Policy
from pipeline.schemas import (
    BoxScore,
    Consensus,
    DeadLetter,
    FeatureRow,
    GateDecision,
    InjuryReport,
    LineBook,
    OddsSnapshot,
    clip_text,
)

METRICS_NAMESPACE = "props"
DEAD = "dead_letters"
DIAGNOSTICS = "line_diagnostics"
GATE = "gate_decisions"
PREDICTIONS = "predictions"


def pg_key(game_id: str, player_lookup: str) -> str:
    return f"{game_id}|{player_lookup}"


class PlayerGame(NamedTuple):
    """A viable player-game ready to score."""

    key: str
    game_date: dt.date
    game_id: str
    player_lookup: str
    player_name: str | None
    feature_row: FeatureRow
    book: LineBook
    context: object  # pipeline.domain.context.PlayerContext | None
    tipoff_utc: dt.datetime | None
    version: int = 0  # batch: 0; stream: the player-game's version (its n-th change), stamped on its rows
    scored_at: dt.datetime | None = None  # stream: the event time the version was decided at


class Scored(NamedTuple):
    """A scored player-game: its consensus plus what best-bet selection needs."""

    consensus: Consensus
    player_game: PlayerGame


def dead_letter(
    source: str, step: str, error: str, payload: object, *, event_ts=None, game_date=None
) -> DeadLetter:
    text = payload if isinstance(payload, str) else repr(payload)
    return DeadLetter(
        source=source, step=step, error=clip_text(error), payload=clip_text(text), event_ts=event_ts,
        game_date=game_date,
    )


def _counter(name: str):
    return beam.metrics.Metrics.counter(METRICS_NAMESPACE, name)


# --------------------------------------------------------------------------------------------
# Grouping a player's rows
# --------------------------------------------------------------------------------------------

ROW_KINDS: dict[type, str] = {
    OddsSnapshot: "odds",
    FeatureRow: "features",
    BoxScore: "box_scores",
    InjuryReport: "injuries",
}


def player_key(row) -> str:
    """The join key of an input row (``JoinPlayerGames``): its player."""
    return row.player_lookup


def rows_by_kind(groups: Iterable[list]) -> dict[str, list]:
    """A player's groups of input rows (one per file) -> ``{kind: [rows]}`` (kinds of ``ROW_KINDS``).
    Row order inside a kind is not meaningful (the domain functions do not depend on it)."""
    out: dict[str, list] = {}
    for rows in groups:
        for row in rows:
            kind = ROW_KINDS[type(row)]
            same = out.get(kind)
            if same is None:
                out[kind] = [row]
            else:
                same.append(row)
    return out


def _team_game_dates(keyed_rows) -> set[tuple[str, dt.date]]:
    """The box scores' ``(team, game_date)`` pairs of a ``(key, [rows])`` group (DNP rows count: the team
    played); nothing for other rows."""
    return {(row.team_abbr, row.game_date) for row in keyed_rows[1] if type(row) is BoxScore}


class ComputeTeamGameDates(beam.PTransform):
    """``(key, [input rows])`` groups -> ``(team, sorted game dates)`` from the box scores among them
    (``domain.context.team_game_dates``' rule, as a combiner): the rest-days side input of the join."""

    def expand(self, rows):
        return (
            rows
            | "TeamGameDate" >> beam.FlatMap(_team_game_dates)
            | "DatesPerTeam" >> beam.CombinePerKey(beam.combiners.ToSetCombineFn())
            | "SortTeamDates" >> beam.MapTuple(lambda team, dates: (team, tuple(sorted(dates))))
        )


# --------------------------------------------------------------------------------------------
# Line book + universe + gate
# --------------------------------------------------------------------------------------------


def gate_decision_row(
    game_date: dt.date,
    game_id: str,
    player: str,
    run_mode: str,
    decision: tuple[bool, str],
    feature_row: FeatureRow | None,
    book: LineBook,
    *,
    version: int = 0,
    scored_at: dt.datetime | None = None,
) -> GateDecision:
    """The ``gate_decisions`` row of one decision (batch: version 0; stream: the player-game's version)."""
    viable, reason = decision
    return GateDecision(
        game_date=game_date,
        game_id=game_id,
        player_lookup=player,
        run_mode=run_mode,
        viable=viable,
        reason=reason,
        feature_quality_score=feature_row.feature_quality_score if feature_row else None,
        team_abbr=feature_row.team_abbr if feature_row else None,
        has_line=book.line is not None,
        version=version,
        scored_at=scored_at,
    )


def stray_odds_dead_letters(stray: Iterable[tuple[OddsSnapshot, str]], step: str) -> list[DeadLetter]:
    """One dead letter per stray odds row (``linebook.split_player_game``), with its reason."""
    return [
        dead_letter("odds", step, reason, snap._asdict(), event_ts=snap.snapshot_ts, game_date=snap.game_date)
        for snap, reason in stray
    ]


class JoinPlayerGameFn(beam.DoFn):
    """One player's rows -> for each of his player-games: line book, gate decision, PlayerGame.

    The element is ``(player, [groups of rows])`` (one group per input file, ``rows_by_kind``): his
    odds, feature rows, season box scores and injury reports. Each player-game (``pg_key``) among his odds
    and feature rows is joined with its context (``domain.context.context_for_row``: his box scores
    strictly before the date, DNP games excluded by ``domain.grading.is_dnp``) and his injury status at
    the date's decision time (``domain.gate.latest_injury_status`` over that date's reports).

    A lined player without a feature row is in the universe (domain.md section 4): he gets the gate
    decision ``no_features_available``, his line book and diagnostics. Odds of a game that is not on the
    schedule are a dead letter; so is a stray odds row whose ``game_date`` is not the game's (only that
    row: the line book is built from the others).
    """

    def __init__(self, plans: Mapping[dt.date, DatePlan], policy: Policy):
        self._plans = dict(plans)
        self._games = {gid: g for plan in plans.values() for gid, g in plan.games.items()}
        self._policy = policy

    def setup(self):
        self._universe = _counter("players")
        self._lined = _counter("lined")
        self._viable = _counter("viable")
        self._dead = _counter("dead_letters")

    def process(self, element, team_dates):
        player, groups = element
        by_kind = rows_by_kind(groups)
        odds_by_key: dict[str, list[OddsSnapshot]] = defaultdict(list)
        for o in by_kind.get("odds", ()):
            odds_by_key[pg_key(o.game_id, player)].append(o)
        features_by_key: dict[str, list[FeatureRow]] = defaultdict(list)
        for r in by_kind.get("features", ()):
            features_by_key[pg_key(r.game_id, player)].append(r)
        # box scores or injury reports only: not in any run date's universe (the loop below is empty)
        reports_by_date: dict[dt.date, list] = defaultdict(list)
        for r in by_kind.get("injuries", ()):
            reports_by_date[r.game_date].append(r)
        history = [b for b in by_kind.get("box_scores", ()) if not is_dnp(b)]
        for key in sorted(set(odds_by_key) | set(features_by_key)):
            yield from self._join(key, odds_by_key.get(key, []), features_by_key.get(key, []),
                                  history, team_dates, reports_by_date)

    def _join(self, key: str, odds: list[OddsSnapshot], features: list[FeatureRow], history: list[BoxScore],
              team_dates: Mapping[str, Sequence[dt.date]], reports_by_date: Mapping[dt.date, list]):
        game_id, player = key.split("|", 1)
        if len(features) > 1:
            features = sorted(features, key=lambda r: (r.feature_version, r.feature_quality_score))
            for extra in features[:-1]:
                self._dead.inc()
                yield beam.pvalue.TaggedOutput(
                    DEAD,
                    dead_letter(
                        "features",
                        "universe",
                        f"duplicate feature row for {key}; the last one is used",
                        extra._asdict(),
                        game_date=extra.game_date,
                    ),
                )
        feature_row = features[-1] if features else None
        game = self._games.get(game_id)
        if game is None:
            game_date = feature_row.game_date if feature_row else min(o.game_date for o in odds)
            if game_date not in self._plans:  # a game of another date (e.g. the new date of a postponement)
                return
            self._dead.inc()
            source = "odds" if odds else "features"
            sample = (odds[0] if odds else feature_row)._asdict()
            yield beam.pvalue.TaggedOutput(
                DEAD,
                dead_letter(
                    source,
                    "universe",
                    f"unknown game {game_id!r}: not on the schedule of {game_date}",
                    sample,
                    game_date=game_date,
                ),
            )
            return
        game_date = game.game_date
        plan = self._plans.get(game_date)
        if plan is None:
            return
        odds, stray = linebook_lib.split_player_game(odds, game_date, game_id, player)
        for row in stray_odds_dead_letters(stray, "line_book"):
            self._dead.inc()
            yield beam.pvalue.TaggedOutput(DEAD, row)
        if feature_row is None and not odds:
            return  # nothing but stray rows: not in the universe

        prev_close = feature_row.prev_game_closing_line if feature_row else None
        book, diagnostics = linebook_lib.build_line_book(
            odds,
            plan.as_of,
            self._policy,
            prev_game_closing_line=prev_close,
            key=(game_date, game_id, player),
        )
        for diag in diagnostics:
            yield beam.pvalue.TaggedOutput(DIAGNOSTICS, diag)

        self._universe.inc()
        if book.line is not None:
            self._lined.inc()
        decision = gate_lib.decide_player_game(
            feature_row,
            game_status=game.status,
            tipoff_utc=game.tipoff_utc,
            as_of=plan.as_of,
            injury_status=gate_lib.latest_injury_status(reports_by_date.get(game_date, ()), plan.as_of),
            run_mode=plan.run_mode,
            policy=self._policy,
        )
        yield beam.pvalue.TaggedOutput(
            GATE, gate_decision_row(game_date, game_id, player, plan.run_mode, decision, feature_row, book)
        )
        if not decision[0]:
            return
        self._viable.inc()
        yield PlayerGame(
            key=key,
            game_date=game_date,
            game_id=game_id,
            player_lookup=player,
            player_name=book.player_name,
            feature_row=feature_row,
            book=book,
            context=context_lib.context_for_row(feature_row, history, team_dates),
            tipoff_utc=game.tipoff_utc,
        )


class JoinPlayerGames(beam.PTransform):
    """Input rows -> viable PlayerGames, with gate decisions and line diagnostics.

    Args:
      plans: the run's DatePlans by game_date (decision time, run mode, games).
      policy: the selection policy.
    Input: one PCollection of ``(player, [typed input rows])`` groups of every kind the join reads
      (``ROW_KINDS``: odds and feature rows and injury reports of the run dates, box scores of the season
      before the last run date), as one source read returns them
      (``io.sources.ReadSources(..., key_fn=player_key)``: one group per player and batch of files).
      One GroupByKey by player brings a player's groups together (the reader's per-batch grouping already
      cut the shuffle to one element per player and batch of files; a lifted combiner holds every row of
      a bundle in memory until the
      bundle ends: 1.2 GB instead of 0.96 GB peak on the 10x slate of bench/bench_scale.py); the teams'
      game dates are a small side input.
    Returns: a DoOutputsTuple: main (PlayerGame), ``gate_decisions``, ``line_diagnostics``, ``dead_letters``.
    """

    def __init__(self, plans: Mapping[dt.date, DatePlan], policy: Policy):
        super().__init__()
        self._plans, self._policy = plans, policy

    def expand(self, rows):
        team_dates = rows | "TeamGameDates" >> ComputeTeamGameDates()
        return (
            rows
            | "GroupByPlayer" >> beam.GroupByKey()
            | "LineBookAndGate"
            >> beam.ParDo(
                JoinPlayerGameFn(self._plans, self._policy),
                team_dates=beam.pvalue.AsDict(team_dates),
            ).with_outputs(GATE, DIAGNOSTICS, DEAD, main="player_games")
        )


# --------------------------------------------------------------------------------------------
# Scoring: RunInference over every eligible model, predictions, consensus
# --------------------------------------------------------------------------------------------


class ModelInfo(NamedTuple):
    model_id: str
    family: str
    feature_set: str
    min_edge: float
    # Registry holdout vegas bias (mean predicted - line); used by the consensus only when the policy's
    # ``consensus_bias_correction`` is on; None = not recorded (corrected by 0).
    holdout_bias: float | None = None


class FeatureVectorsFn(beam.DoFn):
    """PlayerGame -> ``(model_id, (pg_key, vector))`` for every model eligible on its date."""

    def __init__(self, models: Sequence[ModelInfo], plans: Mapping[dt.date, DatePlan]):
        self._models = {m.model_id: m for m in models}
        self._eligible = {d: plan.model_ids for d, plan in plans.items()}

    def process(self, pg: PlayerGame):
        vectors: dict[str, np.ndarray] = {}
        for model_id in self._eligible.get(pg.game_date, ()):
            model = self._models[model_id]
            vec = vectors.get(model.feature_set)
            if vec is None:
                vec = scoring_lib.build_feature_vector(pg.feature_row, pg.book, model.feature_set)
                vectors[model.feature_set] = vec
            yield model_id, (pg.key, vec)


class InferenceFailureFn(beam.DoFn):
    """RunInference's failed batches ``(batch, exception)`` -> one dead letter per player-game x model."""

    def process(self, element):
        batch, exc = element
        error = inference_error_text(exc)
        items = (
            batch if isinstance(batch, (list, tuple)) and batch and isinstance(batch[0], tuple) else [batch]
        )
        for item in items:
            _counter("dead_letters").inc()
            model_id, key = None, None
            if isinstance(item, tuple) and len(item) == 2:
                model_id = item[0]
                if isinstance(item[1], tuple) and item[1]:
                    key = item[1][0]
            # No date is read from the key's game id (it may look like a date and not be one); the
            # incomplete model set that follows is dead-lettered with its date by the scoring join.
            yield dead_letter("models", "inference", error, {"model_id": model_id, "pg_key": key})


def inference_error_text(exc: object) -> str:
    """The error of a failed inference batch: Beam hands over an exception, a string, or (as Beam 2.77's
    ``with_exception_handling`` does) a tuple ``(exception type, repr, traceback lines)``."""
    if isinstance(exc, BaseException):
        return format_exception(exc)
    if isinstance(exc, tuple) and len(exc) >= 2 and isinstance(exc[1], str):
        return exc[1]
    return str(exc)


class ScoredVersion(NamedTuple):
    """The outcome of scoring one player-game version with the date's eligible models."""

    predictions: tuple  # Prediction, one per expected model (empty when incomplete)
    consensus: Consensus | None  # None when incomplete
    missing: tuple[str, ...]  # expected models without a raw prediction (non-empty: a dead letter)


def score_player_game(
    pg: PlayerGame,
    raws: Iterable[tuple[str, float]],
    expected: Sequence[str],
    models: Mapping[str, ModelInfo],
    policy: Policy,
) -> ScoredVersion:
    """Predictions and consensus of one player-game from every expected model's raw prediction.

    The one scoring rule of batch and stream: all or nothing. When a model of ``expected`` (the date's
    eligible models) has no raw prediction the version is incomplete: no prediction and no consensus
    (never a consensus of some of the models); the caller dead-letters it with ``missing``. Rows carry
    the player-game's ``version`` / ``scored_at``.
    """
    by_model = {}
    for model_id, raw in raws:
        by_model.setdefault(model_id, raw)
    missing = tuple(sorted(m for m in expected if m not in by_model))
    if missing or not expected:
        return ScoredVersion((), None, missing or ("<no eligible model>",))
    preds = []
    for model_id in sorted(expected):
        m = models[model_id]
        pred = scoring_lib.make_prediction(
            float(by_model[model_id]),
            model_id=m.model_id,
            family=m.family,
            feature_set=m.feature_set,
            min_edge=m.min_edge,
            feature_row=pg.feature_row,
            book=pg.book,
            policy=policy,
        )
        preds.append(pred._replace(version=pg.version, scored_at=pg.scored_at))
    family_of = {m.model_id: m.family for m in models.values()}
    bias_of = {m.model_id: m.holdout_bias for m in models.values()}
    cons = consensus_lib.compute_consensus(preds, policy, family_of=family_of, bias_of=bias_of)
    return ScoredVersion(tuple(preds), cons._replace(version=pg.version, scored_at=pg.scored_at), ())


def incomplete_dead_letter(pg: PlayerGame | None, key: str, missing: Sequence[str], got: Sequence[str],
                           why: str) -> DeadLetter:
    """The dead letter of a player-game version that could not be scored with every expected model."""
    payload = {"pg_key": key, "missing_models": list(missing), "got_models": sorted(got)}
    return dead_letter(
        "models",
        "scoring",
        f"incomplete model set for {key}: {why}; missing {', '.join(missing) or '-'}",
        payload,
        event_ts=pg.scored_at if pg else None,
        game_date=pg.game_date if pg else None,
    )


class PredictAndCombineFn(beam.DoFn):
    """A player-game and every model's raw prediction -> Prediction rows and its Consensus (batch join:
    the CoGroupByKey is complete by construction; a model whose inference failed makes the set
    incomplete -> a dead letter, never a partial consensus)."""

    def __init__(self, models: Sequence[ModelInfo], plans: Mapping[dt.date, DatePlan], policy: Policy):
        self._models = {m.model_id: m for m in models}
        self._eligible = {d: plan.model_ids for d, plan in plans.items()}
        self._policy = policy

    def setup(self):
        self._predictions = _counter("predictions")
        self._dead = _counter("dead_letters")

    def process(self, element):
        key, grouped = element
        pgs: list[PlayerGame] = grouped["player_games"]
        raws = sorted(grouped["raw"])
        if not pgs:
            self._dead.inc()
            yield beam.pvalue.TaggedOutput(
                DEAD, incomplete_dead_letter(None, key, (), [m for m, _ in raws], "no player-game")
            )
            return
        pg = pgs[0]
        expected = self._eligible.get(pg.game_date, ())
        if not expected and not raws:
            # A date no model is eligible for is not scored (as the stream sends no scoring request):
            # the launch and the summary name such dates (`run.no_scoring_note`, backfill's
            # `dates_without_models`); its player-games are not dead letters.
            return
        out = score_player_game(pg, raws, expected, self._models, self._policy)
        if out.missing:
            self._dead.inc()
            yield beam.pvalue.TaggedOutput(
                DEAD, incomplete_dead_letter(pg, key, out.missing, [m for m, _ in raws], "inference failed")
            )
            return
        for pred in out.predictions:
            self._predictions.inc()
            yield beam.pvalue.TaggedOutput(PREDICTIONS, pred)
        yield Scored(consensus=out.consensus, player_game=pg)


def raw_by_player_game(kv) -> tuple[str, tuple[str, float]]:
    """RunInference's ``(model_id, PredictionResult)`` -> ``(pg key, (model_id, raw prediction))``."""
    return kv[1].example[0], (kv[0], float(np.asarray(kv[1].inference).reshape(-1)[0]))


class InferRawPredictions(beam.PTransform):
    """PlayerGames -> ``(pg key, (model_id, raw))`` for every eligible model (RunInference), and the
    dead letters of failed inference batches. The scorer of batch and stream alike.

    Returns: a dict ``raw`` and ``dead_letters``.
    """

    def __init__(self, models, plans, model_handler):
        super().__init__()
        self._models, self._plans, self._handler = list(models), plans, model_handler

    def expand(self, player_games):
        vectors = player_games | "FeatureVectors" >> beam.ParDo(FeatureVectorsFn(self._models, self._plans))
        results, dlq = vectors | "RunInference" >> RunInference(self._handler).with_exception_handling()
        failures = dlq.failed_inferences | "InferenceFailures" >> beam.ParDo(InferenceFailureFn())
        raw = results | "RawByPlayerGame" >> beam.Map(raw_by_player_game)
        return {"raw": raw, DEAD: failures}


class ScorePlayers(beam.PTransform):
    """Viable PlayerGames -> predictions (every eligible model) and Scored consensus rows (batch).

    Args:
      models: every enabled registry model that any date of the run may use.
      plans: DatePlans by date (which models are eligible on which date: the leakage guard).
      model_handler: a KeyedModelHandler over those models (models.handler.build_keyed_handler).
      policy: the selection policy.
    Returns: a dict: ``scored`` (Scored), ``predictions``, ``dead_letters`` (failed inference batches and
      player-games whose model set is incomplete: they get no prediction and no consensus).
    """

    def __init__(self, models, plans, model_handler, policy):
        super().__init__()
        self._models, self._plans, self._handler, self._policy = list(models), plans, model_handler, policy

    def expand(self, player_games):
        inferred = player_games | "Infer" >> InferRawPredictions(self._models, self._plans, self._handler)
        combined = (
            {
                "player_games": player_games | "PlayerGameByKey" >> beam.Map(lambda pg: (pg.key, pg)),
                "raw": inferred["raw"],
            }
            | "GroupPredictions" >> beam.CoGroupByKey()
            | "PredictAndCombine"
            >> beam.ParDo(PredictAndCombineFn(self._models, self._plans, self._policy)).with_outputs(
                PREDICTIONS, DEAD, main="scored"
            )
        )
        dead = (inferred[DEAD], combined[DEAD]) | "ScoringDeadLetters" >> beam.Flatten()
        return {"scored": combined.scored, PREDICTIONS: combined[PREDICTIONS], DEAD: dead}


# --------------------------------------------------------------------------------------------
# Best bets per game date
# --------------------------------------------------------------------------------------------


class SelectBestBetsFn(beam.DoFn):
    def __init__(self, policy: Policy):
        self._policy = policy

    def setup(self):
        self._picks = _counter("picks")
        self._candidates = _counter("candidates")

    def process(self, element, history):
        date_iso, scored_rows = element
        game_date = dt.date.fromisoformat(date_iso)
        scored_rows = sorted(scored_rows, key=lambda s: s.consensus.player_lookup)
        # Graded history as of this date (point in time): built at launch by commands.common.graded_history.
        day = (history or {}).get("by_date", {}).get(game_date, {})
        player_graded = day.get("player_graded", {})
        family_state = day.get("family_state", {})
        ref_state = family_state.get(self._policy.reference_family)
        candidates = []
        for s in scored_rows:
            if s.consensus.line is None:
                continue
            pg = s.player_game
            graded = player_graded.get(pg.player_lookup)
            candidates.append(
                selection_lib.Candidate(
                    consensus=s.consensus,
                    book=pg.book,
                    feature_row=pg.feature_row,
                    context=pg.context,
                    player_name=pg.player_name,
                    tipoff_utc=pg.tipoff_utc,
                    player_graded=tuple(graded) if graded is not None else None,
                    reference_family_state=ref_state,
                )
            )
        self._candidates.inc(len(candidates))
        picks, summary = selection_lib.select_best_bets(candidates, self._policy, game_date=game_date)
        self._picks.inc(len(picks))
        yield from picks
        yield beam.pvalue.TaggedOutput("filter_summary", summary)


def scored_date(s: Scored) -> str:
    """A scored row's game date (ISO: ``datetime.date`` has no deterministic coder for GroupByKey)."""
    return s.consensus.game_date.isoformat()


class SelectBestBets(beam.PTransform):
    """Scored rows -> picks and one filter summary per game date (dates with no candidates included).

    Args:
      dates: every date of the run (a date with nothing scored still gets a filter summary).
      policy: the selection policy.
      history: a singleton PCollection of the graded history dict (player_graded, family_state).
    Returns: a DoOutputsTuple: main (Pick), ``filter_summary``.
    """

    def __init__(self, dates: Iterable[dt.date], policy: Policy, history):
        super().__init__()
        self._dates, self._policy, self._history = sorted(dates), policy, history

    def expand(self, scored):
        # A bundle's rows of one date travel as one group (files.GroupInBundleFn), markers as None.
        by_date = scored | "ScoredByDate" >> beam.ParDo(files.GroupInBundleFn(scored_date))
        all_dates = scored.pipeline | "RunDates" >> beam.Create([(d.isoformat(), None) for d in self._dates])
        return (
            (by_date, all_dates)
            | "MergeDates" >> beam.Flatten()
            | "GroupByDate" >> beam.GroupByKey()
            | "DropMarkers" >> beam.MapTuple(lambda d, groups: (d, files.rows_of_groups(groups)))
            | "Select"
            >> beam.ParDo(
                SelectBestBetsFn(self._policy), history=beam.pvalue.AsSingleton(self._history)
            ).with_outputs("filter_summary", main="picks")
        )


def stamp(row, run_id: str, policy_version: str):
    """Sets run_id / policy_version on a row that has them."""
    updates = {}
    if "run_id" in row._fields:
        updates["run_id"] = run_id
    if "policy_version" in row._fields:
        updates["policy_version"] = policy_version
    return row._replace(**updates) if updates else row


def format_exception(exc: BaseException) -> str:
    return "".join(traceback.format_exception_only(type(exc), exc)).strip()

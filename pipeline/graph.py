"""Builds the batch slate graph (``props run`` and ``props backfill``); never runs it.

``build_pipeline(p, plan)`` wires the sources of ``pipeline/io`` through the transforms of
``pipeline/transforms/slate.py`` into the warehouse and export sinks, and returns the named output
PCollections so tests can assert on them. A plan covers one date (a slate) or many (a backfill): every
step is keyed by game date, each date has its own decision time, and each date is replaced atomically.

    plan = commands.common.build_plan(...)
    with beam.Pipeline(options=...) as p:
        outputs = build_pipeline(p, plan)
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any, NamedTuple

import apache_beam as beam

from pipeline import schemas
from pipeline.domain.schedule import DatePlan, started_game_ids
from pipeline.io import sources
from pipeline.io.warehouse import SLATE_TABLES  # the tables one slate run replaces per date
from pipeline.policy import Policy
from pipeline.transforms import slate
from pipeline.transforms.slate import DEAD, DIAGNOSTICS, GATE, PREDICTIONS, ModelInfo


class RunPlan(NamedTuple):
    """Everything a run resolved at launch (preflight done): the graph is a pure function of this."""

    run_id: str
    command: str
    inputs: str
    warehouse: str | None  # None: do not write (tests, dry runs)
    exports: str | None
    policy: Policy
    models: tuple[ModelInfo, ...]
    model_handler: Any  # a KeyedModelHandler over `models`, or None when no model is eligible
    date_plans: Mapping[dt.date, DatePlan]
    schedule: tuple[schemas.ScheduleEvent, ...]  # read once at launch (decision times come from it)
    schedule_dead_letters: tuple[schemas.DeadLetter, ...]
    history: Mapping[str, Any]  # graded history: player_graded, family_state, record, ultra_public
    box_score_dates: tuple[dt.date, ...]  # the season's dates before the run's last date

    @property
    def dates(self) -> list[dt.date]:
        return sorted(self.date_plans)

    def protected_pick_game_ids(self) -> dict[dt.date, tuple[str, ...]]:
        """Games already started at each date's decision time (``schedule.game_started``): their picks
        are never touched."""
        return {d: started_game_ids(plan) for d, plan in self.date_plans.items()}


def _dead_letter_date(row: schemas.DeadLetter, run_dates: set, first: dt.date) -> schemas.DeadLetter:
    """A dead letter belongs to a run date: its own when it is one, else the run's first date (e.g. a bad
    box score of an earlier date read for history), so re-runs replace it instead of piling it up."""
    if row.game_date in run_dates:
        return row
    return row._replace(game_date=first)


class StampRowsFn(beam.DoFn):
    """Stamps run_id / policy_version on a table's rows, counts them (``rows_<table>``) and pairs them
    with their table name for the sink."""

    def __init__(self, table: str, run_id: str, policy_version: str):
        self._table, self._run_id, self._version = table, run_id, policy_version

    def setup(self):
        self._counter = beam.metrics.Metrics.counter(slate.METRICS_NAMESPACE, f"rows_{self._table}")

    def process(self, row):
        self._counter.inc()
        yield self._table, slate.stamp(row, self._run_id, self._version)


def build_pipeline(p: beam.Pipeline, plan: RunPlan) -> dict[str, beam.PCollection]:
    """Builds the slate graph for ``plan`` on ``p`` and returns its named outputs.

    Returns:
      A dict of PCollections: ``line_diagnostics``, ``gate_decisions``, ``predictions``, ``consensus``,
      ``best_bets``, ``filter_summary``, ``dead_letters`` (all rows stamped with run_id and policy
      version) and, when the plan writes, ``written`` (per-date table counts from the warehouse sink).
    """
    dates = plan.dates
    policy = plan.policy
    run_id, version = plan.run_id, policy.version

    window = policy.event_time_window_hours
    # One read for every kind the join needs, grouped by player per batch of files: files come out of one
    # step, so the join's single shuffle (keyed by player) takes them without a Flatten, one element per
    # player and batch of files.
    read = p | "ReadInputs" >> sources.ReadSources(
        plan.inputs,
        {"odds": dates, "features": dates, "injuries": dates, "box_scores": plan.box_score_dates},
        window,
        key_fn=slate.player_key,
    )
    schedule_dead = p | "ScheduleDeadLetters" >> beam.Create(list(plan.schedule_dead_letters))
    joined = read.rows | "JoinPlayerGames" >> slate.JoinPlayerGames(plan.date_plans, policy)

    if plan.model_handler is not None and plan.models:
        scored = joined.player_games | "ScorePlayers" >> slate.ScorePlayers(
            plan.models, plan.date_plans, plan.model_handler, policy
        )
        scored_rows, predictions, inference_dead = scored["scored"], scored[PREDICTIONS], scored[DEAD]
    else:
        scored_rows = p | "NoScored" >> beam.Create([])
        predictions = p | "NoPredictions" >> beam.Create([])
        inference_dead = p | "NoInferenceFailures" >> beam.Create([])

    history = p | "History" >> beam.Create([dict(plan.history)])
    selected = scored_rows | "SelectBestBets" >> slate.SelectBestBets(dates, policy, history)
    consensus = scored_rows | "ConsensusRows" >> beam.Map(lambda s: s.consensus)

    dead = (
        (
            read.dead_letters,
            schedule_dead,
            joined[DEAD],
            inference_dead,
        )
        | "AllDeadLetters" >> beam.Flatten()
        | "DeadLetterDates" >> beam.Map(_dead_letter_date, set(dates), dates[0])
    )

    outputs = {
        "line_diagnostics": joined[DIAGNOSTICS],
        "gate_decisions": joined[GATE],
        "predictions": predictions,
        "consensus": consensus,
        "best_bets": selected.picks,
        "filter_summary": selected.filter_summary,
        "dead_letters": dead,
    }
    pairs = [
        pcoll | f"Stamp_{name}" >> beam.ParDo(StampRowsFn(name, run_id, version))
        for name, pcoll in outputs.items()
    ]
    if plan.warehouse or plan.exports:
        from pipeline.io.slate_sink import WriteSlateOutputs

        rows = tuple(pairs)  # flattened once, by the sink, together with the run's dates
        committed = None
        if sources.is_bigquery(plan.warehouse):
            rows = pairs | "AllTableRows" >> beam.Flatten()
            # Production: Beam's own BigQuery sink stages the rows, then one transaction per date replaces
            # them; the exports below wait for it (side input), so they never describe uncommitted rows.
            from pipeline.io.bigquery import WriteToBigQueryWarehouse

            committed = rows | "WriteBigQuery" >> WriteToBigQueryWarehouse(
                plan.warehouse, dates, protected_pick_game_ids=plan.protected_pick_game_ids(),
                tables=SLATE_TABLES)
        # The one write path: replace each date (unless BigQuery committed it), then export what the
        # warehouse holds for the date (kept picks of started games included).
        outputs["written"] = rows | "WriteOutputs" >> WriteSlateOutputs(
            warehouse_uri=plan.warehouse,
            replace=committed is None,
            exports_uri=plan.exports,
            dates=dates,
            tables=SLATE_TABLES,
            protected_pick_game_ids=plan.protected_pick_game_ids(),
            policy_version=version,
            record=plan.history.get("record"),
            ultra_public=bool(plan.history.get("ultra_public")),
            after=committed,
        )
    return outputs


def plan_summary(plan: RunPlan) -> dict[str, Any]:
    """The resolved plan as a dict (printed by --dry-run, stored in the runs table)."""
    return {
        "run_id": plan.run_id,
        "command": plan.command,
        "dates": [d.isoformat() for d in plan.dates],
        "as_of": {d.isoformat(): dp.as_of.isoformat() for d, dp in sorted(plan.date_plans.items())},
        "run_modes": sorted({dp.run_mode for dp in plan.date_plans.values()}),
        "games": {d.isoformat(): len(dp.games) for d, dp in sorted(plan.date_plans.items())},
        "inputs": plan.inputs,
        "warehouse": plan.warehouse,
        "exports": plan.exports,
        "tables": list(SLATE_TABLES),
        "policy_version": plan.policy.version,
        "models": [m.model_id for m in plan.models],
    }

"""What every batch command shares: option parsing, the local defaults, preflight, the run plan, running
the graph, the runs table and the closing summary.

A launch resolves everything it can before a graph exists (policy, registry, dates, decision times,
eligible models, graded history) so that bad input stops the launch with one clear message instead of
failing inside a running pipeline.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import sys
import time
import uuid
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

from pipeline import schemas
from pipeline.domain.calendar import season_start
from pipeline.domain.schedule import DatePlan, decision_time, is_played, latest_games
from pipeline.options import (
    DEFAULT_SEASON,
    DataOptions,
    OptionsError,
    registry_uri,
    validate_uri,
)
from pipeline.transforms.slate import ModelInfo

log = logging.getLogger("props")

SIM_CACHE = Path("data") / "sim"


class LaunchError(RuntimeError):
    """The launch cannot go on; the message says what is wrong and how to fix it."""


# --------------------------------------------------------------------------------------------
# Local environment and options
# --------------------------------------------------------------------------------------------


class _BeamNoiseFilter(logging.Filter):
    """Drops a warning Beam 2.77's RunInference logs per batch when torch is not installed (its optional
    model manager import fails, so it believes the ``resource`` module is missing). Nothing else."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Resource module is not available")


def quiet_beam_logs() -> None:
    root = logging.getLogger()
    if not any(isinstance(f, _BeamNoiseFilter) for f in root.filters):
        root.addFilter(_BeamNoiseFilter())


def prepare_local_environment() -> None:
    """Keeps local runs offline and quiet: no GCE metadata probe, no Prism download attempt; makes the
    process exit without a last walk over its heap (:func:`skip_exit_collections`); and memoises Beam's
    inspection of DoFn methods for the graph and stages this process builds
    (``direct_runner.memoise_dofn_inspection``: ~0.3 s of the 11-game slate) and its pipeline options'
    views (``options.memoise_option_views``)."""
    from pipeline.io.direct_runner import memoise_dofn_inspection
    from pipeline.options import memoise_option_views

    os.environ.setdefault("NO_GCE_CHECK", "true")
    logging.getLogger("apache_beam").setLevel(logging.WARNING)
    logging.getLogger("absl").setLevel(logging.ERROR)
    quiet_beam_logs()
    skip_exit_collections()
    memoise_dofn_inspection()
    memoise_option_views()


def _freeze_heap() -> None:
    import gc

    gc.freeze()


def skip_exit_collections() -> None:
    """At interpreter exit, moves every live object to the collector's permanent generation first.

    Python's finalization runs full garbage collections over the whole heap while it tears the modules
    down; after a pipeline (Beam, pandas, CatBoost, a few hundred thousand objects) that took ~1 s of the
    11-game slate's wall time (bench/bench_slate.py; notes/h-slate.md). Frozen objects are skipped by
    those collections; the memory goes back to the system with the process anyway. Registered once, as
    an ``atexit`` hook, so a caller that runs a command in its own process (tests) keeps normal
    collection until it exits.
    """
    import atexit

    atexit.unregister(_freeze_heap)  # once, however many commands a process runs
    atexit.register(_freeze_heap)


def parse_options(argv: Sequence[str]) -> PipelineOptions:
    """PipelineOptions of argv; a flag that no options class knows is an error (no silent typos)."""
    from apache_beam.options.pipeline_options import _BeamArgumentParser

    import pipeline.options  # noqa: F401 - registers the props options classes

    parser = _BeamArgumentParser(allow_abbrev=False)
    subset = {}
    for cls in PipelineOptions.__subclasses__():
        subset.setdefault(str(cls), cls)
    for cls in subset.values():
        cls._add_argparse_args(parser)
    _known, unknown = parser.parse_known_args(list(argv))
    if unknown:
        raise OptionsError(f"unknown option(s): {' '.join(unknown)}; see --help")
    options = PipelineOptions(list(argv))
    # Local emulator endpoints (--bigquery_endpoint / --gcs_endpoint) apply only when set explicitly.
    from pipeline.io import cloud

    cloud.configure(options)
    standard = options.view_as(StandardOptions)
    if standard.runner is None:
        standard.runner = "FnApiRunner"  # batch default: skips the Prism download attempt (beam-notes)
    return options


def print_help(title: str, classes: Iterable[type]) -> None:
    import argparse

    parser = argparse.ArgumentParser(
        prog=f"props {title}",
        add_help=False,
        description="Also accepts Beam pipeline options (--runner, --project, ...).",
    )
    for cls in classes:
        group = parser.add_argument_group(
            cls.__doc__.strip().splitlines()[0] if cls.__doc__ else cls.__name__
        )
        cls._add_argparse_args(group)
    parser.print_help()


# One rule, one place: pipeline.options decides remote from local (io/cloud.py's preflight needs it too).
from pipeline.options import REMOTE_RUNNERS, is_remote_runner  # noqa: E402, F401 - re-exported


def default_inputs(options: PipelineOptions) -> str:
    """--inputs, or the simulated season cached under ./data/sim/ (simulated on first use)."""
    data = options.view_as(DataOptions)
    if data.inputs:
        return data.inputs
    import sim

    path = SIM_CACHE / f"{DEFAULT_SEASON}-seed-{data.seed}"
    watch = Stopwatch()

    def progress(message: str) -> None:  # only called when the season is simulated (first use)
        eprint(f"[simulate {watch.seconds:5.1f}s] {message}")

    return str(sim.ensure_season(path, DEFAULT_SEASON, data.seed, progress=progress))


def warehouse_uri(options: PipelineOptions) -> str:
    uri = options.view_as(DataOptions).warehouse
    validate_uri(uri, "warehouse", ("duckdb://", "bigquery://"))
    return uri


def exports_uri(options: PipelineOptions) -> str:
    uri = options.view_as(DataOptions).exports
    validate_uri(uri, "exports", ("gs://",))
    return uri


def new_run_id(command: str) -> str:
    return f"{command}-{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"


# --------------------------------------------------------------------------------------------
# Policy, registry, schedule
# --------------------------------------------------------------------------------------------


def load_policy(options: PipelineOptions):
    from pipeline.policy import PolicyError
    from pipeline.policy import load_policy as _load

    try:
        return _load(options.view_as(DataOptions).policy)
    except PolicyError as exc:
        raise LaunchError(f"policy: {exc}") from None


def load_registry(options: PipelineOptions):
    from models.registry import RegistryError
    from models.registry import load_registry as _load

    uri = registry_uri(options)
    try:
        return _load(uri).validate()
    except RegistryError as exc:
        raise LaunchError(f"model registry {uri}: {exc}") from None
    except OSError as exc:
        raise LaunchError(f"model registry {uri}: cannot read it ({exc}); pass --registry PATH") from None


def read_schedule(inputs: str, dates: Iterable[dt.date]):
    from pipeline.io.sources import read_local

    return read_local(inputs, "schedule", sorted(set(dates)))


def date_plans(
    events: Sequence[schemas.ScheduleEvent],
    dates: Iterable[dt.date],
    *,
    run_mode: str,
    as_of: dt.datetime | None,
    offset_minutes: int,
    registry,
) -> dict[dt.date, DatePlan]:
    """A DatePlan per date: decision time, the games as of it, the eligible models."""
    by_date: dict[dt.date, list[schemas.ScheduleEvent]] = defaultdict(list)
    for ev in events:
        by_date[ev.game_date].append(ev)
    plans = {}
    for d in sorted(set(dates)):
        evs = by_date.get(d, [])
        final_games = latest_games(evs)
        when = as_of or decision_time(final_games.values(), offset_minutes)
        if when is None:
            continue  # no game that date
        games = {gid: g for gid, g in latest_games(evs, when).items() if g.game_date == d}
        models = tuple(sorted(m.model_id for m in registry.eligible_for(d)))
        plans[d] = DatePlan(game_date=d, as_of=when, run_mode=run_mode, games=games, model_ids=models)
    return plans


def trained_until(registry) -> dt.date | None:
    """The end of the models' training windows that a local default date must come after: the latest
    ``training_end`` over the enabled models or, when none is enabled, over every registered model (so the
    default date never falls inside a sample model's window, even when nothing will be scored)."""
    models = registry.enabled() or registry.models
    return max((m.training_end for m in models), default=None)


def busiest_date(inputs: str, after: dt.date | None) -> dt.date:
    """The date with the most games (ties: the earliest) after ``after``, from the inputs' manifest or
    the schedule folders."""
    manifest = Path(inputs) / "manifest.json"
    counts: dict[dt.date, int] = {}
    if manifest.exists():
        meta = json.loads(manifest.read_text())
        for key in ("games_per_date", "games_by_date"):
            if isinstance(meta.get(key), dict):
                counts = {dt.date.fromisoformat(k): int(v) for k, v in meta[key].items()}
                break
    if not counts:
        sched = Path(inputs) / "schedule"
        dates = sorted(dt.date.fromisoformat(p.name.split("=", 1)[1]) for p in sched.glob("game_date=*"))
        events, _ = read_schedule(inputs, dates)
        games = latest_games(events)
        for g in games.values():
            if is_played(g.status):
                counts[g.game_date] = counts.get(g.game_date, 0) + 1
    candidates = {d: n for d, n in counts.items() if after is None or d > after}
    if not candidates:
        raise LaunchError(f"no game dates in {inputs} after {after}; pass --game-date")
    return max(candidates, key=lambda d: (candidates[d], -d.toordinal()))


# --------------------------------------------------------------------------------------------
# Graded history (blacklist, model health, record, ultra gate) read once at launch
# --------------------------------------------------------------------------------------------

# The tables graded history comes from; a warehouse that has none of them yet has no graded history.
HISTORY_TABLES: tuple[str, ...] = (
    "prediction_accuracy", "model_performance_daily", "best_bets_results", "runs")
HISTORY_NONE, HISTORY_EMPTY, HISTORY_OK = "none", "empty", "ok"


def warehouse_session(warehouse):
    """``warehouse.session()`` (one DuckDB connection for a launch's burst of small calls); a no-op for
    no warehouse (a dry run) or one without sessions."""
    import contextlib

    session = getattr(warehouse, "session", None)
    return session() if session is not None else contextlib.nullcontext(warehouse)


def _table_sql(warehouse, table: str) -> str:
    """The table as written in the warehouse's SQL (dataset-qualified on BigQuery)."""
    return warehouse.table_sql(table) if hasattr(warehouse, "table_sql") else table


def _history_query(warehouse, table: str, sql: str, params: list) -> list[dict]:
    """One graded-history read; any failure stops the launch naming the table and the error."""
    try:
        return warehouse.query(sql, params)
    except Exception as exc:  # noqa: BLE001 - re-raised as a launch error with the table named
        raise LaunchError(f"graded history: reading {table} from {getattr(warehouse, 'uri', warehouse)} "
                          f"failed: {type(exc).__name__}: {exc}") from exc


def _table_exists(warehouse, table: str) -> bool:
    """Whether the table exists; a failing check (permissions, network) is a LaunchError naming it."""
    try:
        return bool(warehouse.table_exists(table))
    except Exception as exc:  # noqa: BLE001 - re-raised as a launch error with the table named
        where = getattr(warehouse, "uri", warehouse)
        raise LaunchError(f"graded history: cannot check table {table} in {where}: "
                          f"{type(exc).__name__}: {exc}") from exc


def live_run_ids(warehouse) -> frozenset[str]:
    """The ids of the live runs (``runs.command`` in ``records.LIVE_COMMANDS``): their picks count toward
    the ultra public gate. No ``runs`` table yet: none. A failing read is a LaunchError."""
    from pipeline.domain import records

    if not _table_exists(warehouse, "runs"):
        return frozenset()
    marks = ", ".join("?" for _ in records.LIVE_COMMANDS)
    rows = _history_query(warehouse, "runs", f"SELECT run_id, command FROM {_table_sql(warehouse, 'runs')} "
                                             f"WHERE command IN ({marks})", sorted(records.LIVE_COMMANDS))
    return records.live_run_ids(rows)


def graded_history(warehouse, dates: Sequence[dt.date], policy) -> dict[str, Any]:
    """Per date: players' graded reference-family W/L at "edge 3+" (the stored ``edge_correct`` of the
    edge rule, ``|edge| >= policy.edge_buckets[0]``) this season before the date, and the latest model
    state per family; plus the best-bets record and the ultra public gate (``records.ultra_public_gate``,
    live runs from the ``runs`` table).

    ``status`` says what was found, and the run summary and the ``runs`` row show it: ``none`` (the
    grading tables do not exist yet: a brand-new warehouse; ``missing_tables`` lists them), ``empty``
    (they exist with no graded rows before the dates) or ``ok``. A read that fails for any other reason
    raises LaunchError naming the table and the error: the blacklist, model health, record and ultra
    gate never switch off silently.
    """
    from pipeline.domain import records

    history: dict[str, Any] = {"by_date": {}, "record": None, "ultra_public": False, "status": HISTORY_NONE}
    if not dates or warehouse is None:
        return history
    missing = [t for t in HISTORY_TABLES if not _table_exists(warehouse, t)]
    if missing:
        history["missing_tables"] = missing
        return history
    first, last = min(dates), max(dates)
    start = season_start(first)
    acc = _history_query(
        warehouse, "prediction_accuracy",
        f"SELECT game_date, player_lookup, edge_correct FROM {_table_sql(warehouse, 'prediction_accuracy')} "
        "WHERE family = ? AND game_date >= ? AND game_date < ? AND edge_correct IS NOT NULL "
        "AND abs(edge) >= ?",
        [policy.reference_family, start, last, float(policy.edge_buckets[0])])
    perf = _history_query(
        warehouse, "model_performance_daily",
        f"SELECT game_date, family, state FROM {_table_sql(warehouse, 'model_performance_daily')} "
        "WHERE game_date < ? AND game_date >= ? ORDER BY game_date", [last, start])
    results = _history_query(
        warehouse, "best_bets_results",
        f"SELECT * FROM {_table_sql(warehouse, 'best_bets_results')} WHERE game_date < ?", [last])
    live = live_run_ids(warehouse)
    for d in dates:
        graded: dict[str, list[int]] = {}
        for r in acc:
            if r["game_date"] < d:
                wl = graded.setdefault(r["player_lookup"], [0, 0])
                wl[0 if r["edge_correct"] else 1] += 1
        states: dict[str, str] = {}
        for r in perf:
            if r["game_date"] < d and r["family"]:
                states[r["family"]] = r["state"]
        history["by_date"][d] = {
            "player_graded": {k: tuple(v) for k, v in graded.items()},
            "family_state": states,
        }
    as_of = last - dt.timedelta(days=1)
    if results:
        history["record"] = records.best_bets_record(results, as_of, live_run_ids=live, policy=policy)
        history["ultra_public"] = records.ultra_public_gate(results, as_of, live_run_ids=live, policy=policy)
    history["status"] = HISTORY_OK if (acc or perf or results) else HISTORY_EMPTY
    history["graded_rows"] = len(acc) + len(results)
    return history


# --------------------------------------------------------------------------------------------
# Running and summarising
# --------------------------------------------------------------------------------------------


def model_infos(registry, dates: Iterable[dt.date], policy) -> tuple[list, tuple[ModelInfo, ...]]:
    """The models eligible for any of ``dates`` (sorted by id) and their ModelInfo; a model's minimum edge
    for an OVER/UNDER recommendation is the policy's for its loss (``Policy.min_edge``), its holdout bias
    the registry's. With ``policy.consensus_bias_correction`` on, a launch line names the biases the
    consensus removes and how many models have none recorded (corrected by 0)."""
    specs = {}
    for d in dates:
        for s in registry.eligible_for(d):
            specs[s.model_id] = s
    ordered = [specs[k] for k in sorted(specs)]
    infos = tuple(
        ModelInfo(model_id=s.model_id, family=s.family, feature_set=s.feature_set,
                  min_edge=policy.min_edge(s.loss), holdout_bias=s.holdout_vegas_bias)
        for s in ordered
    )
    if policy.consensus_bias_correction and infos:
        known = ", ".join(f"{m.model_id} {m.holdout_bias:+.2f}" for m in infos if m.holdout_bias is not None)
        unknown = [m.model_id for m in infos if m.holdout_bias is None]
        eprint(f"consensus bias correction on: holdout vegas bias removed per model ({known or 'none'}); "
               f"{len(unknown)} model(s) without a recorded bias, corrected by 0"
               + (f" ({', '.join(unknown)})" if unknown else ""))
    return ordered, infos


METRICS_ERROR = "metrics_error"  # key of counts when the job's metrics could not be read
RUN_STATUS_NO_METRICS = "succeeded_unverified"  # runs.status of a finished job whose counts are unknown


def run_or_submit(p, options, what: str):
    """Runs pipeline ``p`` to completion on a local runner and returns its result; on a remote runner
    (Dataflow) submits it and returns ``{"submitted": 1, "job_id": ...}`` at once: a flex-template launcher
    must exit after ``run()`` (waiting would hold the launcher VM until its timeout); the job's counts are
    in Dataflow's metrics."""
    result = p.run()
    if is_remote_runner(options):
        job_id = getattr(result, "job_id", lambda: None)()
        eprint(f"submitted Dataflow job {job_id} ({what})")
        return {"submitted": 1, "job_id": job_id}
    result.wait_until_finish()
    return result


def metric_counts(result) -> dict[str, Any]:
    """The job's counters summed by name. If the runner's metrics cannot be read, the only key is
    ``metrics_error`` (the error text): the run is then recorded ``succeeded_unverified`` with that error
    in its counts and the summary line says ``metrics UNAVAILABLE`` (see :func:`run_status`)."""
    from apache_beam.metrics.metric import MetricsFilter

    out: dict[str, int] = defaultdict(int)
    try:
        counters = result.metrics().query(MetricsFilter())["counters"]
    except Exception as exc:  # noqa: BLE001 - recorded visibly, never a silent "succeeded"
        log.warning("job metrics unavailable: %s", exc)
        return {METRICS_ERROR: f"{type(exc).__name__}: {exc}"}
    for c in counters:
        value = c.committed if c.committed is not None else c.attempted
        out[c.key.metric.name] += int(value or 0)
    return dict(out)


SUMMARY_FIELDS = ("players", "lined", "viable", "predictions", "candidates", "picks", "dead_letters")


def summary_counts(metrics: dict[str, Any], history: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The summary counts of a slate job from its metrics, plus ``history`` (the graded-history status
    of :func:`graded_history`) and ``metrics_error`` when the metrics could not be read."""
    out: dict[str, Any] = {
        "players": metrics.get("rows_gate_decisions", 0),
        "lined": metrics.get("lined", 0),
        "viable": metrics.get("viable", 0),
        "predictions": metrics.get("rows_predictions", 0),
        "candidates": metrics.get("candidates", 0),
        "picks": metrics.get("rows_best_bets", 0),
        "dead_letters": metrics.get("rows_dead_letters", 0),
    }
    if history is not None:
        out["history"] = history.get("status", HISTORY_NONE)
    if METRICS_ERROR in metrics:
        out[METRICS_ERROR] = metrics[METRICS_ERROR]
    return out


def run_status(counts: Mapping[str, Any]) -> str:
    """The ``runs.status`` of a finished launch: ``submitted`` (remote runner), ``succeeded_unverified``
    (the job ran but its metrics could not be read: the counts hold ``metrics_error``) or ``succeeded``."""
    if counts.get("submitted"):
        return "submitted"
    if counts.get(METRICS_ERROR):
        return RUN_STATUS_NO_METRICS
    return "succeeded"


def format_summary(label: str, counts: dict[str, Any], seconds: float) -> str:
    parts = [f"{k.replace('_', ' ')} {counts.get(k, 0)}" for k in SUMMARY_FIELDS]
    if "history" in counts:
        parts.append(f"history: {counts['history']}")
    if counts.get(METRICS_ERROR):
        parts = [f"metrics UNAVAILABLE ({counts[METRICS_ERROR]})"] + parts[len(SUMMARY_FIELDS):]
    return f"{label}: " + ", ".join(parts) + f", {seconds:.1f} s"


def eprint(*args) -> None:
    print(*args, file=sys.stderr, flush=True)


class Stopwatch:
    def __init__(self):
        self.start = time.perf_counter()

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self.start

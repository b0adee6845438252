"""Pipeline options: every flag of every mode, with help text, validated before the graph is built.

Each mode reads one ``PipelineOptions`` subclass view (``options.view_as(SlateOptions)``). Every flag is
accepted with a dash or an underscore (``--game-date`` / ``--game_date``) because Dataflow flex templates
pass parameters as ``--name=value`` with the metadata's name, which uses underscores; the flex template
metadata files in ``launch_templates/`` mirror these options one to one (checked by a test).

Nothing here reads the environment: a setting is a flag or a policy field, validated at launch and
stamped on every output row (domain.md section 10).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable
from pathlib import Path

from apache_beam.options.pipeline_options import PipelineOptions

from pipeline.schemas import RUN_MODES

DEFAULT_WAREHOUSE = "./warehouse/props.duckdb"
DEFAULT_EXPORTS = "./exports"
DEFAULT_SIM_SEED = 42
DEFAULT_SEASON = "2025-26"
# The packaged sample models (setup.py ships models/sample/*), used when --registry is not given.
SAMPLE_REGISTRY = Path(__file__).resolve().parents[1] / "models" / "sample" / "registry.json"

DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class OptionsError(ValueError):
    """A flag failed validation; the message names the flag and shows a valid example."""


def _add(parser, name: str, **kwargs) -> None:
    """Adds ``--a-b`` and ``--a_b`` spellings of one option (dest ``a_b``)."""
    dashed = "--" + name.replace("_", "-")
    underscored = "--" + name
    flags = [dashed] if dashed == underscored else [dashed, underscored]
    parser.add_argument(*flags, dest=name, **kwargs)


class DataOptions(PipelineOptions):
    """Where the data lives: inputs, warehouse, exports, model registry and selection policy."""

    @classmethod
    def _add_argparse_args(cls, parser):
        _add(
            parser,
            "inputs",
            default=None,
            help="Input files: a local folder or gs:// prefix laid out KIND/game_date=YYYY-MM-DD/part-*"
            ".{jsonl,parquet}, or bigquery://PROJECT.DATASET for the production raw tables. Default: "
            "the simulated season cached under ./data/sim/ (simulated once on first use).",
        )
        _add(
            parser,
            "warehouse",
            default=DEFAULT_WAREHOUSE,
            help="Warehouse: duckdb:///path/props.duckdb (default ./warehouse/props.duckdb) or "
            "bigquery://PROJECT.DATASET.",
        )
        _add(
            parser,
            "exports",
            default=DEFAULT_EXPORTS,
            help="JSON exports: a local folder (default ./exports) or gs://BUCKET/PREFIX.",
        )
        _add(
            parser,
            "registry",
            default=None,
            help="Model registry file (JSON), local or gs://. Default: the packaged sample models "
            "(models/sample/registry.json).",
        )
        _add(
            parser,
            "policy",
            default=None,
            help="Selection policy file (JSON), local or gs://. Default: the packaged policy "
            "(pipeline/policies/default.json). Its version is stamped on every output row.",
        )
        _add(
            parser,
            "seed",
            type=int,
            default=DEFAULT_SIM_SEED,
            help="Seed of the simulated season used when --inputs is not given.",
        )
        # Beam's TestOptions already owns --dry_run (it takes a value), so the dashed --dry-run is ours and
        # its underscore spelling (flex templates) is --preflight_only.
        parser.add_argument(
            "--dry-run",
            "--preflight-only",
            "--preflight_only",
            dest="preflight_only",
            action="store_true",
            default=False,
            help="Print the resolved plan (sources, tables, dates, models, policy) and run "
            "the preflight checks without writing anything.",
        )
        # Emulator endpoints (pipeline/io/cloud.py): tests and local runs only; production leaves them unset.
        _add(
            parser,
            "bigquery_endpoint",
            default=None,
            help="Local BigQuery emulator endpoint, e.g. http://127.0.0.1:9050 (tests only; unset in "
            "production). Setting it switches the job to anonymous credentials.",
        )
        _add(
            parser,
            "gcs_endpoint",
            default=None,
            help="Local GCS emulator endpoint, e.g. http://127.0.0.1:9023 (tests only; unset in "
            "production). Setting it switches the job to anonymous credentials.",
        )


class LegacyOptions(PipelineOptions):
    """The old Cloud Run system's website files (issue #11): ``props run``, ``props grade`` and the
    stream. In both flex templates' metadata (``launch_templates/metadata.py``)."""

    @classmethod
    def _add_argparse_args(cls, parser):
        _add(
            parser,
            "legacy_exports",
            default=None,
            help="Also write the old Cloud Run website's files (best-bets/all.json, record.json, "
            "today.json, status.json in the old shapes) under this folder or gs://BUCKET/v1 after each "
            "committed run or grade and on each streaming picks change. Must not overlap --exports.",
        )


class SlateOptions(PipelineOptions):
    """One slate: ``props run``."""

    @classmethod
    def _add_argparse_args(cls, parser):
        _add(
            parser,
            "game_date",
            default=None,
            help="Game date (US Eastern), YYYY-MM-DD. Default (local): the busiest simulated date after "
            "the sample models' training window.",
        )
        _add(
            parser,
            "as_of",
            default=None,
            help="Decision time, ISO-8601 UTC (e.g. 2026-02-22T23:00:00Z). Default: one hour before the "
            "date's first tip-off.",
        )
        _add(
            parser,
            "run_mode",
            default="FIRST",
            type=str.upper,
            help="Quality-gate mode: FIRST, RETRY, FINAL_RETRY, LAST_CALL or BACKFILL (thresholds in the "
            "policy).",
        )


class RangeOptions(PipelineOptions):
    """Dates: ``props backfill`` (--start/--end), ``props grade`` and ``props report`` (--date or a range)."""

    @classmethod
    def _add_argparse_args(cls, parser):
        _add(parser, "start", default=None, help="First game date of a range, YYYY-MM-DD (inclusive).")
        _add(parser, "end", default=None, help="Last game date of a range, YYYY-MM-DD (inclusive).")
        _add(parser, "date", default=None, help="One game date (grade, report), YYYY-MM-DD.")
        _add(
            parser,
            "decision_offset_minutes",
            type=int,
            default=60,
            help="Backfill: each date is decided this many minutes before its first tip-off (default 60).",
        )
        _add(
            parser,
            "dates_per_pipeline",
            type=int,
            default=7,
            help="Backfill: dates per Beam pipeline (progress is shown per chunk; 0 = all in one).",
        )


# Beam registers every option once across all classes: the modes share RangeOptions.
BackfillOptions = RangeOptions
GradeOptions = RangeOptions


class StreamOptions(PipelineOptions):
    """The streaming job: ``props stream`` and ``props replay``."""

    @classmethod
    def _add_argparse_args(cls, parser):
        _add(
            parser,
            "pubsub_project",
            default=None,
            help="Project of the Pub/Sub topics and subscriptions. Default: --project (on Dataflow); "
            "props-local for a local run without --pubsub-project.",
        )
        _add(
            parser,
            "events_topic",
            default="props-events",
            help="Topic carrying odds, schedule and injury events (message attribute 'kind').",
        )
        _add(
            parser,
            "events_subscription",
            default="props-events-sub",
            help="Subscription the streaming job reads events from.",
        )
        _add(
            parser,
            "features_topic",
            default="props-features",
            help="Topic carrying feature-store row updates (refreshes the features state).",
        )
        _add(
            parser,
            "picks_changes_topic",
            default="props-picks-changes",
            help="Topic each pick change (created/updated/withdrawn/locked) is published to.",
        )
        _add(
            parser,
            "feature_refresh_seconds",
            type=float,
            default=300.0,
            help="Streaming on Dataflow: re-read the served dates' feature-store rows this often (the "
            "slowly-changing feature store); only rows that changed re-score their player. 0 = off. The "
            "local runner cannot run the periodic source: send changed rows as kind=features messages.",
        )
        _add(
            parser,
            "debounce_seconds",
            type=float,
            default=1.0,
            help="Best bets of a date are recomputed at most once per this many seconds.",
        )
        _add(parser, "state_grace_seconds", type=float, default=None,
             help="Seconds a date's stream state is kept after its last game is done, then cleared "
             "(default: windows.STATE_GRACE_S, 6 hours).")
        _add(
            parser,
            "pubsub_emulator",
            default=None,
            help="Local runs only: a Pub/Sub emulator HOST:PORT (started with 'gcloud beta emulators pubsub "
            "start' when nothing listens there; topics and subscriptions are created if missing), or 'none' "
            "for the real Pub/Sub of --pubsub-project. Unset: the local default (127.0.0.1:8085) only when "
            "the runner is local and no --pubsub-project is given; never on Dataflow (an emulator there "
            "is an error).",
        )
        _add(
            parser,
            "rebuild_as_of",
            default=None,
            help="Stream restart: rebuild the line book, injury and schedule state from --inputs with the "
            "events up to this ISO-8601 UTC time (original event time) before reading the "
            "subscription. Default: no rebuild (fresh start).",
        )
        _add(
            parser,
            "speed",
            type=float,
            default=0.0,
            help="Replay: event-time seconds per wall second (60 = one hour per minute); 0 = as fast as "
            "possible.",
        )
        _add(
            parser,
            "until",
            default=None,
            help="Replay: publish only events at or before this ISO-8601 UTC time (original event time).",
        )
        _add(
            parser,
            "since",
            default=None,
            help="Replay: publish only events after this ISO-8601 UTC time (original event time), e.g. to "
            "resume after a restart.",
        )


REMOTE_RUNNERS = ("dataflowrunner", "dataflow", "testdataflowrunner")
LOCAL_PUBSUB_EMULATOR = "127.0.0.1:8085"
LOCAL_PUBSUB_PROJECT = "props-local"


def memoise_option_views() -> None:
    """Makes ``PipelineOptions.view_as`` return one view per options object and view class.

    Beam builds each view anew: a new argparse parser with every option of the class, then a parse of the
    command line (~0.4-0.5 ms), though a view only exposes the object's shared ``_all_options`` dict
    through the class's names. Beam asks for views constantly: ~360 times in the 11-game slate, and the
    local stream's Pub/Sub read asked for ``GoogleCloudOptions`` on every read cycle (py-spy: ~7 % of the
    worker thread under 1,000 odds updates/s). The view kept is the one Beam built the first time, so it
    reads and writes the same ``_all_options`` as any new one would, and the flags a view parses never
    change after construction; a view is built again if either was replaced. Idempotent."""
    import weakref

    original = PipelineOptions.view_as
    if getattr(original, "_props_memoised", False):
        return
    views: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

    def view_as(self, cls):
        try:
            per_class = views.get(self)
            if per_class is None:
                per_class = views[self] = {}
        except TypeError:  # not weak-referenceable: as Beam does
            return original(self, cls)
        view = per_class.get(cls)
        if (view is None or view._all_options is not self._all_options
                or view._flags is not self._flags):
            view = per_class[cls] = original(self, cls)
        return view

    view_as._props_memoised = True
    view_as.__doc__ = original.__doc__
    PipelineOptions.view_as = view_as


def is_remote_runner(options: PipelineOptions) -> bool:
    """Whether the job runs elsewhere (Dataflow): the launcher submits it and exits."""
    from apache_beam.options.pipeline_options import StandardOptions

    runner = options.view_as(StandardOptions).runner
    name = runner if isinstance(runner, str) else type(runner).__name__ if runner is not None else ""
    return name.lower() in REMOTE_RUNNERS


def pubsub_target(options: PipelineOptions) -> tuple[str | None, str | None]:
    """(emulator HOST:PORT or None, Pub/Sub project) of the streaming job and ``props replay``.

    The one place that decides whether a Pub/Sub emulator is used (issue 10: never unless asked for):

    * ``--pubsub-emulator HOST`` asks for one explicitly; on a remote runner that is an OptionsError
      (Dataflow workers cannot reach a laptop's emulator);
    * ``--pubsub-emulator none``: real Pub/Sub;
    * unset: the local default emulator only when the runner is local and no ``--pubsub-project`` is
      given (``props stream`` / ``props replay`` with no flags); otherwise real Pub/Sub.

    The project is ``--pubsub-project``, else the emulator's ``props-local``, else ``--project``
    (None when none is known: the caller's preflight names the flag).
    """
    from apache_beam.options.pipeline_options import GoogleCloudOptions

    stream = options.view_as(StreamOptions)
    asked = (stream.pubsub_emulator or "").strip()
    remote = is_remote_runner(options)
    if asked.lower() == "none":
        host = None
    elif asked:
        if remote:
            raise OptionsError(f"--pubsub-emulator {asked}: an emulator cannot serve a job on a remote "
                               "runner; drop the flag (the job uses the real Pub/Sub of --pubsub-project)")
        host = asked
    else:
        host = LOCAL_PUBSUB_EMULATOR if not remote and not stream.pubsub_project else None
    project = stream.pubsub_project or (LOCAL_PUBSUB_PROJECT if host else None)
    project = project or options.view_as(GoogleCloudOptions).project
    return host, project


def registry_uri(options: PipelineOptions) -> str:
    """--registry, or the packaged sample registry: the one place that knows the default."""
    return options.view_as(DataOptions).registry or str(SAMPLE_REGISTRY)


def parse_date(value: str | None, flag: str) -> dt.date | None:
    if value is None:
        return None
    if not DATE_RE.match(str(value)):
        raise OptionsError(f"--{flag.replace('_', '-')}: expected YYYY-MM-DD, e.g. 2026-02-22; got {value!r}")
    try:
        return dt.date.fromisoformat(value)
    except ValueError as exc:
        raise OptionsError(f"--{flag.replace('_', '-')}: {exc}; e.g. 2026-02-22") from None


def parse_timestamp(value: str | None, flag: str) -> dt.datetime | None:
    if value is None:
        return None
    text = str(value).strip().replace("Z", "+00:00")
    try:
        ts = dt.datetime.fromisoformat(text)
    except ValueError:
        raise OptionsError(
            f"--{flag.replace('_', '-')}: expected an ISO-8601 time, e.g. 2026-02-22T23:00:00Z; got {value!r}"
        ) from None
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=dt.UTC)
    return ts.astimezone(dt.UTC)


def validate_run_mode(value: str) -> str:
    mode = (value or "").upper()
    if mode not in RUN_MODES:
        raise OptionsError(f"--run-mode: expected one of {', '.join(RUN_MODES)}; got {value!r}")
    return mode


def date_range(start: dt.date, end: dt.date) -> list[dt.date]:
    if end < start:
        raise OptionsError(f"--end ({end}) is before --start ({start})")
    return [start + dt.timedelta(days=i) for i in range((end - start).days + 1)]


def validate_uri(value: str | None, flag: str, schemes: Iterable[str]) -> None:
    if value is None:
        return
    allowed = tuple(schemes)
    if "://" in value and not value.startswith(allowed):
        raise OptionsError(
            f"--{flag}: unsupported location {value!r}; expected a local path or one of {', '.join(allowed)}"
        )

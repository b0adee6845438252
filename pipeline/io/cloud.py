"""Google Cloud plumbing: credentials and emulator endpoints, the dry-run plan and the preflight checks.

Production never calls into the endpoint helpers: with ``--bigquery_endpoint`` and ``--gcs_endpoint``
unset, the BigQuery and GCS clients (ours and Beam's) use the job's service account through Application
Default Credentials. The endpoint options exist for the local emulators in tests and local runs; each
command calls :func:`configure` once, before it builds the graph::

    from pipeline.io import cloud
    cloud.configure(options)                 # no-op unless an emulator endpoint is given
    if options.view_as(DataOptions).preflight_only:
        print(json.dumps(cloud.plan(options), indent=2)); problems = cloud.preflight(options)

What :func:`configure` does when an endpoint is given (and only then), all measured in beam-notes.md:

* ``NO_GCE_CHECK=true`` and ``google.auth.default`` -> ``AnonymousCredentials`` (without it Beam retries
  ADC for ~24 s; Beam's credential cache is never seeded with ``None``, which would start an OAuth flow);
* GCS: ``STORAGE_EMULATOR_HOST`` (honoured by google-cloud-storage, hence Beam's ``FileSystems``);
* BigQuery: ``BIGQUERY_EMULATOR_HOST`` (the client library) and the apitools ``BigqueryV2.BASE_URL``
  (Beam's connector). The patches reach in-process runners (FnApiRunner, the streaming DirectRunner);
  the environment variables also reach multi-processing workers.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from collections.abc import Iterable
from typing import Any

from pipeline.options import OptionsError

log = logging.getLogger(__name__)

_configured: dict[str, str] = {}


def _anonymous_default(*_args: Any, **_kwargs: Any):
    from google.auth.credentials import AnonymousCredentials

    return AnonymousCredentials(), os.environ.get("GOOGLE_CLOUD_PROJECT")


def use_emulators(*, bigquery_endpoint: str | None = None, gcs_endpoint: str | None = None,
                  project: str | None = None) -> None:
    """Points the BigQuery and/or GCS clients of this process (and its children) at local emulators.

    Args:
      bigquery_endpoint: e.g. ``http://127.0.0.1:9050`` (bqemulator's REST port).
      gcs_endpoint: e.g. ``http://127.0.0.1:9023`` (gcp-storage-emulator).
      project: the job's ``--project``; clients created without one (Beam's streaming-insert client)
        take it from ``GOOGLE_CLOUD_PROJECT``, which Dataflow workers get from the metadata server.
    """
    if not bigquery_endpoint and not gcs_endpoint:
        return
    import google.auth

    os.environ["NO_GCE_CHECK"] = "true"
    if project:
        os.environ["GOOGLE_CLOUD_PROJECT"] = project
    google.auth.default = _anonymous_default
    if gcs_endpoint:
        os.environ["STORAGE_EMULATOR_HOST"] = gcs_endpoint.rstrip("/")
        _configured["gcs"] = gcs_endpoint
    if bigquery_endpoint:
        endpoint = bigquery_endpoint.rstrip("/")
        os.environ["BIGQUERY_EMULATOR_HOST"] = endpoint
        from apache_beam.io.gcp.internal.clients.bigquery import bigquery_v2_client

        bigquery_v2_client.BigqueryV2.BASE_URL = f"{endpoint}/bigquery/v2/"
        _configured["bigquery"] = endpoint
    log.warning("using local emulators (anonymous credentials): %s", _configured)


def configure(options: Any) -> None:
    """Applies ``--bigquery_endpoint`` / ``--gcs_endpoint`` from a PipelineOptions (no-op when unset)."""
    from apache_beam.options.pipeline_options import GoogleCloudOptions

    from pipeline.options import DataOptions

    data = options.view_as(DataOptions)
    use_emulators(bigquery_endpoint=getattr(data, "bigquery_endpoint", None),
                  gcs_endpoint=getattr(data, "gcs_endpoint", None),
                  project=options.view_as(GoogleCloudOptions).project)


def bigquery_client(project: str, *, location: str | None = None):
    """A google-cloud-bigquery client: ADC in production, anonymous against the emulator."""
    from google.cloud import bigquery

    endpoint = os.environ.get("BIGQUERY_EMULATOR_HOST") if "bigquery" in _configured else None
    if endpoint:
        from google.api_core.client_options import ClientOptions
        from google.auth.credentials import AnonymousCredentials

        return bigquery.Client(project=project, location=location, credentials=AnonymousCredentials(),
                               client_options=ClientOptions(api_endpoint=endpoint))
    return bigquery.Client(project=project, location=location)


def storage_client(project: str | None = None):
    """A google-cloud-storage client: ADC in production, anonymous against the emulator."""
    from google.cloud import storage

    if "gcs" in _configured:
        from google.auth.credentials import AnonymousCredentials

        return storage.Client(project=project or "local", credentials=AnonymousCredentials(),
                              client_options={"api_endpoint": os.environ["STORAGE_EMULATOR_HOST"]})
    return storage.Client(project=project)


def parse_bigquery_uri(uri: str) -> tuple[str, str]:
    """``bigquery://PROJECT.DATASET`` -> (project, dataset); ValueError with an example otherwise."""
    if not uri.startswith("bigquery://"):
        raise ValueError(f"expected bigquery://PROJECT.DATASET (e.g. bigquery://my-proj.props), got {uri!r}")
    project, _, dataset = uri[len("bigquery://"):].partition(".")
    if not project or not dataset or "." in dataset:
        raise ValueError(f"expected bigquery://PROJECT.DATASET (e.g. bigquery://my-proj.props), got {uri!r}")
    return project, dataset


# ------------------------------------------------------------------------------------------------
# --dry-run: the plan and the preflight checks
# ------------------------------------------------------------------------------------------------


def _run_dates(options: Any) -> list[dt.date]:
    from pipeline import options as opts

    view = options.get_all_options()
    if view.get("date"):
        return [opts.parse_date(view["date"], "date")]
    if view.get("game_date"):
        return [opts.parse_date(view["game_date"], "game_date")]
    if view.get("start") and view.get("end"):
        return opts.date_range(opts.parse_date(view["start"], "start"), opts.parse_date(view["end"], "end"))
    return []


def plan(options: Any, *, command: str | None = None, dates: Iterable[dt.date] | None = None) -> dict:
    """The resolved plan of a run, printed by ``--dry-run``: sources, tables, dates, models, policy."""
    from pipeline import schemas
    from pipeline.options import DataOptions

    data = options.view_as(DataOptions)
    run_dates = sorted(set(dates)) if dates is not None else _run_dates(options)
    out: dict[str, Any] = {
        "command": command,
        "dates": [d.isoformat() for d in run_dates],
        "inputs": data.inputs,
        "sources": {k: _source_location(data.inputs, k) for k in schemas.INPUT_KINDS},
        "warehouse": data.warehouse,
        "tables": {name: _table_location(data.warehouse, name) for name in schemas.TABLES},
        "exports": data.exports,
        "registry": data.registry,
        "policy": data.policy,
        "runner": options.get_all_options().get("runner"),
    }
    try:
        from pipeline.policy import load_policy

        policy = load_policy(data.policy)
        out["policy_version"] = getattr(policy, "version", None)
    except Exception as exc:  # noqa: BLE001 - the plan reports, preflight fails
        out["policy_version"] = f"unreadable: {exc}"
    try:
        from models.registry import load_registry

        registry = load_registry(_registry_uri(options))
        models = registry.enabled()
        out["models"] = [getattr(m, "model_id", str(m)) for m in models]
        out["registry_digest"] = getattr(registry, "digest", None)
    except Exception as exc:  # noqa: BLE001
        out["models"] = f"unreadable: {exc}"
    return out


def _registry_uri(options: Any) -> str:
    from pipeline.options import registry_uri  # the one place that knows the sample default

    return registry_uri(options)


def _source_location(inputs: str | None, kind: str) -> str:
    if inputs and inputs.startswith("bigquery://"):
        project, dataset = parse_bigquery_uri(inputs)
        return f"{project}.{dataset}.{kind} (one query, WHERE game_date IN UNNEST(@dates))"
    return f"{inputs or '(simulated)'}/{kind}/game_date=YYYY-MM-DD/part-*"


def _table_location(warehouse: str, table: str) -> str:
    if warehouse.startswith("bigquery://"):
        project, dataset = parse_bigquery_uri(warehouse)
        return f"{project}.{dataset}.{table}"
    return f"{warehouse}#{table}"


def preflight(options: Any, *, command: str | None = None,
              dates: Iterable[dt.date] | None = None) -> list[str]:
    """Checks a run can start, writing nothing; returns the problems found (empty = ok).

    Registry readable and valid, policy valid, warehouse reachable with every table present (or its
    dataset present so the tables can be created), inputs present for the run dates, and for the
    streaming job the Pub/Sub topics and subscription present.
    """
    from pipeline.options import DataOptions

    data = options.view_as(DataOptions)
    problems: list[str] = []
    run_dates = sorted(set(dates)) if dates is not None else _run_dates(options)

    try:
        from pipeline.policy import load_policy

        load_policy(data.policy)
    except Exception as exc:  # noqa: BLE001
        problems.append(f"policy {data.policy or '(default)'}: {exc}")

    try:
        from models.registry import load_registry

        registry = load_registry(_registry_uri(options))
        registry.validate()
    except Exception as exc:  # noqa: BLE001
        problems.append(f"registry {data.registry or '(sample)'}: {exc}")

    problems += _check_warehouse(data.warehouse)
    if data.inputs:
        problems += _check_inputs(data.inputs, run_dates)
    from apache_beam.options.pipeline_options import GoogleCloudOptions

    problems += bucket_problems(options, options.view_as(GoogleCloudOptions).project)
    view = options.get_all_options()
    if command == "stream" or view.get("streaming"):
        problems += pubsub_problems(options)
    return problems


def _check_warehouse(uri: str) -> list[str]:
    if not uri.startswith("bigquery://"):
        return []
    from pipeline import schemas

    try:
        project, dataset = parse_bigquery_uri(uri)
        client = bigquery_client(project)
        from google.api_core import exceptions as gexc

        try:
            client.get_dataset(f"{project}.{dataset}")
        except gexc.NotFound:
            return [f"warehouse {uri}: dataset {project}.{dataset} does not exist (create it: bq mk)"]
        present = {t.table_id for t in client.list_tables(f"{project}.{dataset}")}
        missing = sorted(set(schemas.TABLES) - present)
        if missing:
            log.info("warehouse %s: tables %s will be created on first write", uri, missing)
        return warehouse_table_problems(uri, client)
    except Exception as exc:  # noqa: BLE001
        return [f"warehouse {uri}: unreachable: {exc}"]


# ------------------------------------------------------------------------------------------------
# Never damage another system's tables (issue #11 item 5)
# ------------------------------------------------------------------------------------------------

# BigQuery's legacy type names (the API's ``field_type``) -> the GoogleSQL names schemas.py uses.
_TYPE_NAMES = {"INTEGER": "INT64", "FLOAT": "FLOAT64", "BOOLEAN": "BOOL", "RECORD": "STRUCT"}
OWN_DATASET_FIX = ("use a dataset of this pipeline's own, e.g. --warehouse bigquery://PROJECT.props "
                   "(never the old system's nba_predictions)")


def _sql_type(field_type: str) -> str:
    return _TYPE_NAMES.get(field_type.upper(), field_type.upper())


def table_schema_differences(table: str, fields: Iterable[Any]) -> list[str]:
    """Why an existing table named like one of ours is NOT ours (empty: compatible).

    ``fields`` are the existing table's ``SchemaField``s (name, field_type, mode). Compatible means an
    earlier version of our own table: every one of our key columns (``TableSpec.key``) present, every
    shared column of the same type, never REPEATED where ours is not (or the reverse), never REQUIRED
    where ours may be NULL. Columns of ours it lacks are fine (``ensure_tables`` adds them as NULLABLE);
    columns it has that ours does not are listed only next to a real difference (the hint that it is
    another system's table, e.g. the old ``prediction_accuracy`` with ``system_id`` / ``line_value``).
    """
    from pipeline import schemas

    ours = {f["name"]: f for f in schemas.bigquery_schema(schemas.TABLES[table].row_type)}
    theirs = {f.name: f for f in fields}
    differences = []
    missing_keys = [k for k in schemas.TABLES[table].key if k not in theirs]
    if missing_keys:
        differences.append(f"missing our key columns {', '.join(missing_keys)}")
    for name, field in theirs.items():
        if name not in ours:
            continue
        want = ours[name]
        have_type, have_mode = _sql_type(field.field_type), (field.mode or "NULLABLE").upper()
        if have_type != want["type"]:
            differences.append(f"{name} is {have_type} (ours {want['type']})")
        elif (have_mode == "REPEATED") != (want["mode"] == "REPEATED"):
            differences.append(f"{name} is {have_mode} (ours {want['mode']})")
        elif have_mode == "REQUIRED" and want["mode"] != "REQUIRED":
            differences.append(f"{name} is REQUIRED (ours may be NULL)")
    foreign = sorted(set(theirs) - set(ours))
    if differences and foreign:
        more = " ..." if len(foreign) > 12 else ""
        differences.append(f"columns not ours: {', '.join(foreign[:12])}{more}")
    return differences


def warehouse_table_problems(uri: str, client: Any = None) -> list[str]:
    """One problem per table of the warehouse dataset that has one of our table names but a schema that
    is not ours (:func:`table_schema_differences`): writing there (or migrating it by adding columns)
    would damage another system's table, e.g. the old system's ``nba_predictions.prediction_accuracy``
    or ``model_performance_daily``. Empty for a missing dataset or table (created on first write)."""
    from google.api_core import exceptions as gexc

    from pipeline import schemas

    project, dataset = parse_bigquery_uri(uri)
    client = client or bigquery_client(project)
    try:
        present = {t.table_id for t in client.list_tables(f"{project}.{dataset}")}
    except gexc.NotFound:
        return []
    problems = []
    for table in sorted(set(schemas.TABLES) & present):
        existing = client.get_table(f"{project}.{dataset}.{table}")
        differences = table_schema_differences(table, existing.schema)
        if differences:
            problems.append(
                f"warehouse {uri}: table {project}.{dataset}.{table} already exists with a schema that is "
                f"not this pipeline's ({'; '.join(differences)}): it belongs to another system and would "
                f"be written into; {OWN_DATASET_FIX}")
    return problems


def _check_inputs(inputs: str, dates: list[dt.date]) -> list[str]:
    from pipeline import schemas

    problems = []
    if inputs.startswith("bigquery://"):
        try:
            project, dataset = parse_bigquery_uri(inputs)
            client = bigquery_client(project)
            present = {t.table_id for t in client.list_tables(f"{project}.{dataset}")}
        except Exception as exc:  # noqa: BLE001
            return [f"inputs {inputs}: unreachable: {exc}"]
        for kind in ("schedule", "odds", "features"):
            if kind not in present:
                problems.append(f"inputs {inputs}: table {kind} missing")
        return problems
    if not dates:
        return []
    from pipeline.io.files import input_files

    for kind in ("schedule", "odds", "features"):
        try:
            if not input_files(inputs, kind, dates):
                problems.append(f"inputs {inputs}: no {kind} files for {', '.join(map(str, dates))}")
        except Exception as exc:  # noqa: BLE001
            problems.append(f"inputs {inputs}: {kind}: {exc}")
    assert set(schemas.INPUT_KINDS) >= {"schedule", "odds", "features"}
    return problems


# ------------------------------------------------------------------------------------------------
# The launch preflight: local paths on a remote runner, credentials, resources (every launch)
# ------------------------------------------------------------------------------------------------

CREDENTIALS_TIMEOUT_S = 20.0
RESOURCE_TIMEOUT_S = 10.0
CREDENTIALS_FIX = (
    "fix: `gcloud auth application-default login` (a person), or GOOGLE_APPLICATION_CREDENTIALS=KEY.json "
    "for the props-dataflow service account that launch_templates/setup.sh creates; a template launch "
    "uses --service_account_email")
SETUP_FIX = "create it with `PROJECT=... bash launch_templates/setup.sh`"
_preflight_passed: set[tuple[bool, str]] = set()  # launches of this process that passed (a launcher)


class PreflightError(RuntimeError):
    """A launch cannot start; ``problems`` lists each missing piece with the command that fixes it.

    The credentials problem, when there is one, is always the last (the launch's last output line)."""

    def __init__(self, problems: list[str]):
        super().__init__("; ".join(problems))
        self.problems = list(problems)


class IncompatibleWarehouseError(PreflightError, OptionsError):
    """The warehouse dataset holds a same-named table of another system (:func:`warehouse_table_problems`).

    A PreflightError (``problems``) and an OptionsError (a ValueError), so every command's usual launch
    error handling prints it and exits 2."""


def check_warehouse_tables(uri: str, client: Any = None) -> None:
    """Raises IncompatibleWarehouseError when :func:`warehouse_table_problems` finds any: called before
    a BigQuery warehouse creates or migrates its tables (``BigQueryWarehouse.ensure_tables``)."""
    problems = warehouse_table_problems(uri, client)
    if problems:
        raise IncompatibleWarehouseError(problems)


def _is_cloud(uri: str | None) -> bool:
    return bool(uri) and uri.startswith(("gs://", "bigquery://"))


def local_path_problems(options: Any) -> list[str]:
    """On a remote runner every location must be in Google Cloud: a local path (or a local default)
    would be read from, or written to, the launcher's or a worker's disk and lost."""
    from pipeline.options import DataOptions, is_remote_runner

    if not is_remote_runner(options):
        return []
    data = options.view_as(DataOptions)
    problems = []
    checks = (
        ("inputs", data.inputs, "the simulated season on the launcher's disk",
         "--inputs=bigquery://PROJECT.props_raw (or gs://BUCKET/inputs)"),
        ("warehouse", data.warehouse, None, "--warehouse=bigquery://PROJECT.props"),
        ("exports", data.exports, None, "--exports=gs://BUCKET/exports"),
        ("registry", data.registry, "the packaged sample models",
         "--registry=gs://BUCKET/models/registry.json"),
    )
    for flag, value, default_is, example in checks:
        if value is None:
            problems.append(f"--{flag} is not set: on a remote runner the default ({default_is}) is not "
                            f"production data; pass {example}")
        elif flag == "warehouse" and not value.startswith("bigquery://"):
            problems.append(f"--warehouse {value} is a local path: on a remote runner it would be written "
                            f"on a worker's disk and lost; pass {example}")
        elif not _is_cloud(value):
            problems.append(f"--{flag} {value} is a local path: on a remote runner it would be read from or "
                            f"written to a worker's disk; pass {example}")
    # The packaged policy (no --policy) ships in the image and is versioned: allowed. A path is not.
    if data.policy is not None and not data.policy.startswith("gs://"):
        problems.append(f"--policy {data.policy} is a local path: on a remote runner pass "
                        "--policy=gs://BUCKET/policies/default.json (or omit it for the packaged policy)")
    return problems


def uses_google_cloud(options: Any, *, streaming: bool = False) -> bool:
    """Whether the launch touches Google Cloud (so needs credentials): a remote runner, a gs:// or
    bigquery:// location not served by a configured emulator, or real Pub/Sub for the stream."""
    from pipeline.options import DataOptions, is_remote_runner, pubsub_target

    if is_remote_runner(options):
        return True
    data = options.view_as(DataOptions)
    for uri in (data.inputs, data.warehouse, data.exports, data.registry, data.policy):
        if uri and uri.startswith("gs://") and "gcs" not in _configured:
            return True
        if uri and uri.startswith("bigquery://") and "bigquery" not in _configured:
            return True
    return streaming and pubsub_target(options)[0] is None and not os.environ.get("PUBSUB_EMULATOR_HOST")


def credentials_problem(timeout_s: float = CREDENTIALS_TIMEOUT_S) -> str | None:
    """None when Application Default Credentials are found, else what is missing and how to fix it.

    ``google.auth.default`` looks at GOOGLE_APPLICATION_CREDENTIALS, the gcloud ADC file, then the GCE
    metadata server (probed with google-auth's own short timeouts unless NO_GCE_CHECK=true). It runs in a
    daemon thread joined for at most ``timeout_s``: the launch fails in seconds, never in Beam's
    credential retries (which start only after this check has passed).
    """
    import threading

    import google.auth
    from google.auth import exceptions as gauth

    outcome: dict[str, Any] = {}

    def lookup() -> None:
        try:
            outcome["credentials"] = google.auth.default(
                scopes=["https://www.googleapis.com/auth/cloud-platform"])[0]
        except gauth.DefaultCredentialsError as exc:
            outcome["missing"] = exc
        except Exception as exc:  # noqa: BLE001 - reported, the launch stops
            outcome["error"] = exc

    thread = threading.Thread(target=lookup, name="props-adc-lookup", daemon=True)
    thread.start()
    thread.join(timeout_s)
    where = ("no GOOGLE_APPLICATION_CREDENTIALS, no gcloud application-default credentials file"
             + (", NO_GCE_CHECK=true (metadata server not asked)" if os.environ.get("NO_GCE_CHECK") == "true"
                else ", no GCE metadata server"))
    if thread.is_alive():
        return (f"missing Google Cloud credentials: the Application Default Credentials lookup did not "
                f"finish in {timeout_s:.0f} s (unreachable metadata server?); {CREDENTIALS_FIX}")
    if "missing" in outcome:
        return (f"missing Google Cloud credentials: no Application Default Credentials ({where}); "
                f"{CREDENTIALS_FIX}")
    if "error" in outcome:
        exc = outcome["error"]
        return (f"unusable Google Cloud credentials: {type(exc).__name__}: {exc}; {CREDENTIALS_FIX}")
    return None


def _bucket_of(uri: str) -> str:
    return uri[len("gs://"):].split("/", 1)[0]


def _forbidden_hint(exc: Exception, role: str) -> str:
    from google.api_core import exceptions as gexc

    if isinstance(exc, gexc.Forbidden):
        return f"permission denied ({exc.message}); grant {role} to the job's service account (setup.sh)"
    return f"unreachable: {type(exc).__name__}: {str(exc)[:300]}"


def bucket_problems(options: Any, project: str | None) -> list[str]:
    """Every gs:// bucket the job reads or writes exists and is reachable."""
    from apache_beam.options.pipeline_options import GoogleCloudOptions

    from pipeline.options import DataOptions

    data = options.view_as(DataOptions)
    gco = options.view_as(GoogleCloudOptions)
    uses: dict[str, list[str]] = {}
    for flag, uri in (("inputs", data.inputs), ("exports", data.exports), ("registry", data.registry),
                      ("policy", data.policy), ("temp_location", gco.temp_location),
                      ("staging_location", gco.staging_location)):
        if uri and uri.startswith("gs://"):
            uses.setdefault(_bucket_of(uri), []).append(f"--{flag}")
    if not uses:
        return []
    problems = []
    client = storage_client(project)
    for bucket, flags in sorted(uses.items()):
        try:
            if not client.bucket(bucket).exists(timeout=RESOURCE_TIMEOUT_S, retry=None):
                problems.append(f"bucket gs://{bucket} ({', '.join(flags)}) does not exist: {SETUP_FIX}")
        except Exception as exc:  # noqa: BLE001
            problems.append(f"bucket gs://{bucket} ({', '.join(flags)}): "
                            f"{_forbidden_hint(exc, 'roles/storage.objectAdmin')}")
    return problems


def dataset_problems(options: Any) -> list[str]:
    """Every bigquery://PROJECT.DATASET the job reads or writes exists and is reachable."""
    from pipeline.options import DataOptions

    data = options.view_as(DataOptions)
    problems = []
    for flag, uri in (("warehouse", data.warehouse), ("inputs", data.inputs)):
        if not uri or not uri.startswith("bigquery://"):
            continue
        try:
            project, dataset = parse_bigquery_uri(uri)
        except ValueError as exc:
            problems.append(f"--{flag}: {exc}")
            continue
        try:
            from google.api_core import exceptions as gexc

            bigquery_client(project).get_dataset(f"{project}.{dataset}", retry=None,
                                                 timeout=RESOURCE_TIMEOUT_S)
        except gexc.NotFound:
            problems.append(f"dataset {project}.{dataset} (--{flag}) does not exist: {SETUP_FIX}")
        except Exception as exc:  # noqa: BLE001
            problems.append(f"dataset {project}.{dataset} (--{flag}): "
                            f"{_forbidden_hint(exc, 'roles/bigquery.dataEditor and roles/bigquery.jobUser')}")
    return problems


def pubsub_problems(options: Any) -> list[str]:
    """The streaming job's topics and subscription exist (created by setup.sh, never by the job)."""
    from google.api_core import exceptions as gexc
    from google.cloud import pubsub_v1

    from pipeline.io.pubsub import subscription_path, topic_path
    from pipeline.options import StreamOptions, pubsub_target

    stream = options.view_as(StreamOptions)
    _host, project = pubsub_target(options)
    if not project:
        return ["Pub/Sub project unknown: pass --pubsub_project (or --project)"]
    problems = []
    publisher = pubsub_v1.PublisherClient()
    for flag in ("events_topic", "features_topic", "picks_changes_topic"):
        path = topic_path(project, getattr(stream, flag))
        try:
            publisher.get_topic(request={"topic": path}, retry=None, timeout=RESOURCE_TIMEOUT_S)
        except gexc.NotFound:
            problems.append(f"topic {path} (--{flag}) does not exist: {SETUP_FIX}")
        except Exception as exc:  # noqa: BLE001
            problems.append(f"topic {path} (--{flag}): "
                            f"{_forbidden_hint(exc, 'roles/pubsub.editor')}")
    path = subscription_path(project, stream.events_subscription)
    subscriber = pubsub_v1.SubscriberClient()
    with subscriber:
        try:
            subscriber.get_subscription(request={"subscription": path}, retry=None,
                                        timeout=RESOURCE_TIMEOUT_S)
        except gexc.NotFound:
            problems.append(f"subscription {path} (--events_subscription) does not exist: {SETUP_FIX}")
        except Exception as exc:  # noqa: BLE001
            problems.append(f"subscription {path} (--events_subscription): "
                            f"{_forbidden_hint(exc, 'roles/pubsub.subscriber')}")
    return problems


def _warehouse_problems(options: Any) -> list[str]:
    from pipeline.options import DataOptions

    uri = options.view_as(DataOptions).warehouse
    if not uri or not uri.startswith("bigquery://"):
        return []
    try:
        return warehouse_table_problems(uri)
    except Exception as exc:  # noqa: BLE001 - reported with the others, the launch stops
        return [f"warehouse {uri}: its tables could not be checked: {type(exc).__name__}: {str(exc)[:300]}"]


def launch_preflight(options: Any, *, streaming: bool = False) -> None:
    """Checks a launch can work before anything touches Beam's Google Cloud clients; raises
    PreflightError listing every problem (each with the command that fixes it), in seconds.

    1. On a remote runner, no local path or local default for inputs, warehouse, exports, registry,
       policy (:func:`local_path_problems`).
    2. When the launch touches Google Cloud: Application Default Credentials present
       (:func:`credentials_problem`); without them nothing else can be checked and the credentials
       problem is the last one reported.
    3. The buckets, datasets and (streaming, real Pub/Sub) the topics and subscription exist and are
       reachable with those credentials.
    4. The BigQuery warehouse dataset holds no same-named table of another system
       (:func:`warehouse_table_problems`; also checked against an emulator-served warehouse).
    """
    from apache_beam.options.pipeline_options import GoogleCloudOptions

    from pipeline.options import OptionsError, pubsub_target

    # ``streaming`` is set by the stream command after main.py's check: not part of what was checked.
    key = (streaming, repr(sorted((k, v) for k, v in options.get_all_options().items() if k != "streaming")))
    if key in _preflight_passed:  # main.py checks every template launch, then the command again
        return
    problems = local_path_problems(options)
    try:
        host, _project = pubsub_target(options) if streaming else (None, None)
    except OptionsError as exc:
        problems.append(str(exc))
        host = None
    if not uses_google_cloud(options, streaming=streaming):
        problems += _warehouse_problems(options)  # a warehouse served by the BigQuery emulator
        if problems:
            raise PreflightError(problems)
        _preflight_passed.add(key)
        return
    missing = credentials_problem()
    if missing:
        raise PreflightError([*problems, missing])
    if problems:  # local paths on a remote runner: nothing to check remotely until they are fixed
        raise PreflightError(problems)
    project = options.view_as(GoogleCloudOptions).project
    problems += bucket_problems(options, project)
    datasets = dataset_problems(options)
    problems += datasets
    if not any("--warehouse" in p for p in datasets):  # reachable: are its same-named tables ours?
        problems += _warehouse_problems(options)
    if streaming and host is None:
        problems += pubsub_problems(options)
    if problems:
        raise PreflightError(problems)
    _preflight_passed.add(key)

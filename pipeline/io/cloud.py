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
    problems += _check_exports(data.exports)
    view = options.get_all_options()
    if command == "stream" or view.get("streaming"):
        problems += _check_pubsub(view)
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
        return []
    except Exception as exc:  # noqa: BLE001
        return [f"warehouse {uri}: unreachable: {exc}"]


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


def _check_exports(exports: str) -> list[str]:
    if not exports.startswith("gs://"):
        return []
    bucket = exports[len("gs://"):].split("/", 1)[0]
    try:
        if not storage_client().bucket(bucket).exists():
            return [f"exports {exports}: bucket {bucket} does not exist"]
    except Exception as exc:  # noqa: BLE001
        return [f"exports {exports}: unreachable: {exc}"]
    return []


def _check_pubsub(view: dict) -> list[str]:
    problems = []
    try:
        from google.cloud import pubsub_v1

        project = view.get("pubsub_project")
        publisher, subscriber = pubsub_v1.PublisherClient(), pubsub_v1.SubscriberClient()
        for key in ("events_topic", "features_topic", "picks_changes_topic"):
            if view.get(key):
                try:
                    publisher.get_topic(topic=publisher.topic_path(project, view[key]))
                except Exception as exc:  # noqa: BLE001
                    problems.append(f"topic {view[key]} ({key}): {exc}")
        if view.get("events_subscription"):
            try:
                subscriber.get_subscription(
                    subscription=subscriber.subscription_path(project, view["events_subscription"]))
            except Exception as exc:  # noqa: BLE001
                problems.append(f"subscription {view['events_subscription']}: {exc}")
    except Exception as exc:  # noqa: BLE001
        problems.append(f"pubsub: {exc}")
    return problems

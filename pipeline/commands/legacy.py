"""``props legacy``: tools for switching over from the old Cloud Run system (issue #11).

    props legacy import-registry --source bigquery://nba-props-platform.nba_predictions \\
        --out models/registry.json [--artifacts gs://nba-props-platform-models/catboost] [--append]

``import-registry`` turns the old ``nba_predictions.model_registry`` rows into our registry file. The rows
are read from the table directly (``bigquery://PROJECT.DATASET``, whose ``model_registry`` is read, or
``bigquery://PROJECT.DATASET.TABLE``), or from a JSON export of it (``bq query --format=json 'SELECT *
FROM nba_predictions.model_registry'`` or ``bq extract`` as newline-delimited JSON); both map the same
way (table values are first written as the export writes them: ``legacy.export_value``). Each row's
artifact is its ``gcs_path``, or, with ``--artifacts DIR``, the file of the same name under DIR (models
copied elsewhere, e.g. locally); its sha256 is computed from the bytes. The mapping rules (family,
enabled, status) are in ``pipeline.io.legacy``. The written registry is validated like any other
(artifacts loaded, feature names checked) before it is written; a row that cannot be imported is listed
with its reason and the command exits 1 (the other rows are still written).
"""

from __future__ import annotations

import argparse
import posixpath
import sys

from pipeline.commands.common import eprint


def _artifact_uri(gcs_path: str, artifacts: str | None) -> str:
    if not artifacts:
        return gcs_path
    name = posixpath.basename(gcs_path)
    if "://" in artifacts:
        return artifacts.rstrip("/") + "/" + name
    import os

    return os.path.abspath(os.path.join(artifacts, name))


def import_registry(source: str, out: str, *, artifacts: str | None = None,
                    append: bool = False) -> tuple[object, list[str]]:
    """Imports the rows of ``source`` into the registry file ``out``; returns (registry, problems)."""
    from models.registry import Registry, RegistryError, load_registry, read_bytes, sha256_of
    from pipeline.io.legacy import (
        LegacyRowError,
        read_registry_export,
        read_registry_table,
        registry_spec_from_legacy,
    )

    if source.startswith("bigquery://"):
        rows = read_registry_table(source)
    else:
        rows = read_registry_export(read_bytes(source).decode())
    registry = load_registry(out) if append else Registry([], out)
    problems: list[str] = []
    for row in rows:
        model_id = row.get("model_id", "?")
        gcs_path = row.get("gcs_path")
        if not gcs_path:
            problems.append(f"model {model_id}: no gcs_path")
            continue
        uri = _artifact_uri(str(gcs_path), artifacts)
        try:
            digest = sha256_of(uri)
        except Exception as e:  # noqa: BLE001 - any I/O failure: the artifact is not there
            problems.append(f"model {model_id}: artifact {uri} unreadable ({type(e).__name__}: {e})")
            continue
        try:
            spec = registry_spec_from_legacy(row, artifact_uri=uri, sha256=digest)
            Registry([spec], out).validate()
        except (LegacyRowError, RegistryError, ValueError) as e:
            problems.append(str(e))
            continue
        registry = registry.upsert(spec)
    registry.validate()
    registry.write(out)
    return registry, problems


def create_views_main(args: argparse.Namespace) -> int:
    """``props legacy create-views``: CREATE OR REPLACE VIEW for each input kind (idempotent)."""
    import datetime as dt

    from pipeline.io import cloud
    from pipeline.io.legacy import VIEW_KINDS, create_views

    try:
        project, dataset = cloud.parse_bigquery_uri(args.views)
        if args.bigquery_endpoint:
            cloud.use_emulators(bigquery_endpoint=args.bigquery_endpoint, project=project)
        check = dt.date.fromisoformat(args.check_date) if args.check_date else None
        notes = create_views(args.source_project, args.views, check_date=check)
    except Exception as e:  # noqa: BLE001 - a launch-time tool: say why and exit
        eprint(f"props legacy create-views: {type(e).__name__}: {e}")
        return 2
    for note in notes:
        eprint(f"note: {note}")
    print(f"created views {', '.join(VIEW_KINDS)} in {project}.{dataset} over the old tables of "
          f"{args.source_project}; read them with --inputs {args.views}")
    return 0


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="props legacy", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="action", required=True)
    imp = sub.add_parser("import-registry", help="old model_registry rows -> our registry file")
    imp.add_argument("--source", required=True,
                     help="bigquery://PROJECT.DATASET (its model_registry table, read directly), "
                     "bigquery://PROJECT.DATASET.TABLE, or a JSON export of nba_predictions.model_registry "
                     "(array or newline-delimited)")
    imp.add_argument("--out", required=True, help="Registry file to write (local or gs://)")
    imp.add_argument("--artifacts", default=None,
                     help="Folder (local or gs://) holding the .cbm files by name; default: each gcs_path")
    imp.add_argument("--append", action="store_true",
                     help="Add to the existing --out registry instead of replacing it")
    imp.add_argument("--bigquery-endpoint", "--bigquery_endpoint", dest="bigquery_endpoint", default=None,
                     help="Local BigQuery emulator endpoint (tests only; unset in production)")
    views = sub.add_parser("create-views", help="the old tables as one SQL view per input kind")
    views.add_argument("--source-project", "--source_project", dest="source_project", required=True,
                       help="Project of the old tables (nba_raw, nba_orchestration, nba_predictions, "
                       "nba_analytics), e.g. nba-props-platform")
    views.add_argument("--views", required=True,
                       help="bigquery://PROJECT.DATASET to create the views in (created if missing); then "
                       "--inputs bigquery://PROJECT.DATASET")
    views.add_argument("--check-date", "--check_date", dest="check_date", default=None,
                       help="Game date (YYYY-MM-DD) of the dry-run read of each view (default: today)")
    views.add_argument("--bigquery-endpoint", "--bigquery_endpoint", dest="bigquery_endpoint", default=None,
                       help="Local BigQuery emulator endpoint (tests only; unset in production)")
    args = parser.parse_args(argv)
    if args.action == "create-views":
        return create_views_main(args)
    try:
        if args.bigquery_endpoint:
            from pipeline.io import cloud
            from pipeline.io.legacy import registry_table

            cloud.use_emulators(bigquery_endpoint=args.bigquery_endpoint,
                                project=registry_table(args.source).split(".")[0])
        registry, problems = import_registry(args.source, args.out, artifacts=args.artifacts,
                                             append=args.append)
    except Exception as e:  # noqa: BLE001 - a launch-time tool: say why and exit
        eprint(f"props legacy import-registry: {type(e).__name__}: {e}")
        return 2
    for p in problems:
        eprint(f"not imported: {p}")
    enabled = sum(m.enabled for m in registry.models)
    print(f"imported {len(registry.models)} models ({enabled} enabled) into {args.out}; "
          f"{len(problems)} not imported")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Generates the flex template metadata files from the pipeline options (one to one).

``batch_metadata.json`` (``command`` = run | backfill | grade) and ``streaming_metadata.json`` list every
option of the classes their modes read (``pipeline/options.py``), with the option's help text, a label, a
validating regex and a ``paramType``. Options that only make sense on a laptop (the simulated-data seed,
the emulator endpoints) are excluded by name in ``LOCAL_ONLY``; an option without an entry in ``PARAMS``
fails generation, so a new option cannot silently miss the templates. ``tests/test_templates.py`` checks
the committed files equal the generated ones and validate against ``metadata.schema.json``.

Usage (after changing an option)::

    .venv/bin/python launch_templates/metadata.py          # rewrites both files
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

HERE = Path(__file__).resolve().parent

LOCAL_ONLY = ("seed", "bigquery_endpoint", "gcs_endpoint",
              # streaming, local only (emulator, restart rebuild, replay pacing): issue 5
              "pubsub_emulator", "rebuild_as_of", "speed", "until", "since")

DATE = r"^\d{4}-\d{2}-\d{2}$"
INT = r"^\d+$"
NUMBER = r"^\d+(\.\d+)?$"
GCS_OR_LOCAL = r"^gs://[a-z0-9][a-z0-9._-]{1,221}[a-z0-9](/.*)?$"
BIGQUERY = r"^bigquery://[a-z][a-z0-9-]{4,28}[a-z0-9]\.[A-Za-z0-9_]{1,1024}$"
RESOURCE_ID = r"^[A-Za-z][A-Za-z0-9._~+%-]{2,254}$"

# option name -> (label, regex, paramType)
PARAMS: dict[str, tuple[str, str, str]] = {
    "inputs": ("Inputs", f"{BIGQUERY}|{GCS_OR_LOCAL}", "TEXT"),
    "warehouse": ("Warehouse", BIGQUERY, "TEXT"),
    "exports": ("JSON exports folder", GCS_OR_LOCAL, "GCS_WRITE_FOLDER"),
    "legacy_exports": ("Old website files folder (switch-over)", GCS_OR_LOCAL, "GCS_WRITE_FOLDER"),
    "registry": ("Model registry file", r"^gs://[a-z0-9][a-z0-9._-]{1,221}[a-z0-9]/.+\.(json|ya?ml)$",
                 "GCS_READ_FILE"),
    "policy": ("Selection policy file", r"^gs://[a-z0-9][a-z0-9._-]{1,221}[a-z0-9]/.+\.json$",
               "GCS_READ_FILE"),
    "preflight_only": ("Dry run", r"^(true|false)$", "BOOLEAN"),
    "game_date": ("Game date", DATE, "TEXT"),
    "as_of": ("Decision time (UTC)", r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})$",
              "TEXT"),
    "run_mode": ("Quality-gate mode", r"^(FIRST|RETRY|FINAL_RETRY|LAST_CALL|BACKFILL)$", "ENUM"),
    "start": ("First game date", DATE, "TEXT"),
    "end": ("Last game date", DATE, "TEXT"),
    "date": ("Game date to grade", DATE, "TEXT"),
    "decision_offset_minutes": ("Decision offset (minutes)", INT, "NUMBER"),
    "dates_per_pipeline": ("Dates per pipeline", INT, "NUMBER"),
    "pubsub_project": ("Pub/Sub project", r"^[a-z][a-z0-9-]{4,28}[a-z0-9]$", "TEXT"),
    "events_topic": ("Events topic", RESOURCE_ID, "TEXT"),
    "events_subscription": ("Events subscription", RESOURCE_ID, "TEXT"),
    "features_topic": ("Features topic", RESOURCE_ID, "TEXT"),
    "picks_changes_topic": ("Picks-changes topic", RESOURCE_ID, "TEXT"),
    "debounce_seconds": ("Debounce (seconds)", NUMBER, "NUMBER"),
    "feature_refresh_seconds": ("Feature-store refresh (seconds)", NUMBER, "NUMBER"),
    "state_grace_seconds": ("State grace period (seconds)", NUMBER, "NUMBER"),
}
ENUM_VALUES = {
    "run_mode": ["FIRST", "RETRY", "FINAL_RETRY", "LAST_CALL", "BACKFILL"],
}
COMMAND_HELP = {
    "batch": ("Mode of the batch job: run (one slate: game_date, as_of, run_mode), backfill (start, end) "
              "or grade (date, or start and end)."),
    "streaming": "Mode of the streaming job: always stream (the parameter exists so main.py knows the mode).",
}
COMMANDS = {"batch": ["run", "backfill", "grade"], "streaming": ["stream"]}


def option_help(classes: tuple[type, ...]) -> dict[str, str]:
    """dest -> help text of every option the given PipelineOptions classes add (in declaration order)."""
    parser = argparse.ArgumentParser(add_help=False)
    for cls in classes:
        cls._add_argparse_args(parser)
    return {a.dest: " ".join((a.help or "").split()) for a in parser._actions}


def mode_options() -> dict[str, tuple[type, ...]]:
    from pipeline import options as o

    return {
        "batch": (o.DataOptions, o.LegacyOptions, o.SlateOptions, o.RangeOptions),
        "streaming": (o.DataOptions, o.LegacyOptions, o.StreamOptions),
    }


def template_options(mode: str) -> dict[str, str]:
    """The options a template exposes (dest -> help), local-only options removed."""
    helps = option_help(mode_options()[mode])
    return {name: text for name, text in helps.items() if name not in LOCAL_ONLY}


def command_parameter(mode: str) -> dict:
    """The ``command`` parameter main.py dispatches on (its values differ per template)."""
    values = COMMANDS[mode]
    return {"name": "command", "label": "Mode", "helpText": COMMAND_HELP[mode], "isOptional": False,
            "regexes": [f"^({'|'.join(values)})$"], "paramType": "ENUM",
            "enumOptions": [{"value": v} for v in values]}


def parameter(name: str, help_text: str) -> dict:
    if name not in PARAMS:
        raise KeyError(f"option {name!r} has no flex template entry: add it to PARAMS (or LOCAL_ONLY) in "
                       f"{Path(__file__).name}")
    label, regex, param_type = PARAMS[name]
    out = {"name": name, "label": label, "helpText": help_text, "isOptional": True,
           "regexes": [regex], "paramType": param_type}
    if param_type == "ENUM":
        out["enumOptions"] = [{"value": v} for v in ENUM_VALUES[name]]
    return out


def build_metadata(mode: str) -> dict:
    params = [command_parameter(mode)]
    if mode == "batch":
        description = ("Props pipeline batch job: one slate (run), a date range (backfill) or grading "
                       "(grade). Reads bigquery:// inputs, writes the BigQuery warehouse and gs:// JSON "
                       "exports.")
        name = "props-batch"
    else:
        description = ("Props pipeline streaming job: odds, schedule and injury events from Pub/Sub; picks "
                       "to BigQuery and the picks-changes topic; JSON exports to gs://.")
        name = "props-streaming"
    params += [parameter(n, h) for n, h in template_options(mode).items()]
    return {"name": name, "description": description, "streaming": mode == "streaming",
            "supportsAtLeastOnce": False, "supportsExactlyOnce": True, "parameters": params}


def render(mode: str) -> str:
    return json.dumps(build_metadata(mode), indent=2) + "\n"


FILES = {"batch": HERE / "batch_metadata.json", "streaming": HERE / "streaming_metadata.json"}


if __name__ == "__main__":
    for mode, path in FILES.items():
        path.write_text(render(mode))
        print(f"wrote {path}")

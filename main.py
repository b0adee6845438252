"""Flex template launcher: the thin entry point Dataflow runs (FLEX_TEMPLATE_PYTHON_PY_FILE=main.py).

Dataflow calls it with the template parameters as ``--name=value`` (underscore names, see
launch_templates/*_metadata.json) plus its own options (``--runner``, ``--project``, ``--region``,
``--temp_location``, ``--sdk_container_image``, ...). It picks the mode from the ``command`` parameter (batch
template: run | backfill | grade; streaming template: stream), turns boolean parameters (``--x=true``)
into flags, and hands everything to the ``props`` CLI (``pipeline.cli.main``), which builds and submits the
pipeline. Locally: ``python main.py --command=run --game_date=2026-02-22``.
"""

from __future__ import annotations

import sys

COMMANDS = ("run", "backfill", "grade", "stream")
BOOLEAN_FLAGS = ("preflight_only",)


def launcher_argv(argv: list[str]) -> list[str]:
    """The ``props`` argv for a template launch: [command, *options]."""
    command = None
    rest: list[str] = []
    args = iter(argv)
    for arg in args:
        if arg.startswith("--command="):
            command = arg.split("=", 1)[1]
        elif arg == "--command":
            command = next(args, None)
        elif any(arg.startswith(f"--{flag}=") for flag in BOOLEAN_FLAGS):
            name, value = arg.split("=", 1)
            if value.strip().lower() in ("true", "1", "yes"):
                rest.append(name)
            elif value.strip().lower() not in ("false", "0", "no", ""):
                raise SystemExit(f"{name}: expected true or false, got {value!r}")
        else:
            rest.append(arg)
    if command not in COMMANDS:
        raise SystemExit(f"--command: expected one of {', '.join(COMMANDS)}, got {command!r}")
    if not any(a == "--runner" or a.startswith("--runner=") for a in rest):
        rest.append("--runner=DataflowRunner")  # a template launch always submits to Dataflow
    return [command, *rest]


def main(argv: list[str] | None = None) -> int:
    from pipeline.cli import main as props

    return props(launcher_argv(list(sys.argv[1:] if argv is None else argv)))


if __name__ == "__main__":
    sys.exit(main())

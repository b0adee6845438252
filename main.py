"""Flex template launcher: the thin entry point Dataflow runs (FLEX_TEMPLATE_PYTHON_PY_FILE=main.py).

Dataflow calls it with the template parameters as ``--name=value`` (underscore names, see
launch_templates/*_metadata.json) plus its own options (``--runner``, ``--project``, ``--region``,
``--temp_location``, ``--sdk_container_image``, ...). It picks the mode from the ``command`` parameter (batch
template: run | backfill | grade; streaming template: stream), turns boolean parameters (``--x=true``)
into flags, and hands everything to the ``props`` CLI (``pipeline.cli.main``), which builds and submits the
pipeline. Locally: ``python main.py --command=run --game_date=2026-02-22``.

Before it hands over, :func:`preflight` runs ``pipeline.io.cloud.launch_preflight`` for every command
(the commands run it again; a passed check is remembered): no local paths on the remote runner,
Application Default Credentials present, buckets, datasets, topics and subscription reachable. A launch
that cannot work exits 2 in seconds with one line per problem, the missing credentials last, each naming
the command that fixes it. The launcher never starts or uses an emulator (a remote runner refuses one).
"""

from __future__ import annotations

import os
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


def preflight(props_argv: list[str]) -> list[str]:
    """The launch preflight of ``props_argv`` ([command, *options]); the problems found (empty = ok).

    Options the command would reject are left to the command (it prints its own error)."""
    from pipeline.commands import common
    from pipeline.io import cloud
    from pipeline.options import OptionsError

    command, rest = props_argv[0], props_argv[1:]
    try:
        options = common.parse_options(rest)
    except (OptionsError, SystemExit):
        return []
    try:
        cloud.launch_preflight(options, streaming=command == "stream")
    except cloud.PreflightError as exc:
        return [f"props {command}: {p}" for p in exc.problems]
    return []


def main(argv: list[str] | None = None) -> int:
    # The launcher runs on a Compute Engine VM whose service account is found through the metadata server:
    # keep google-auth's metadata lookup on (the commands turn it off for local runs with setdefault).
    os.environ.setdefault("NO_GCE_CHECK", "false")
    from pipeline.cli import main as props
    from pipeline.commands import common

    props_argv = launcher_argv(list(sys.argv[1:] if argv is None else argv))
    common.prepare_local_environment()
    problems = preflight(props_argv)
    for problem in problems:
        print(problem, file=sys.stderr, flush=True)
    if problems:
        return 2
    return props(props_argv)


if __name__ == "__main__":
    sys.exit(main())

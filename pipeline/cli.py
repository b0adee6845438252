"""The ``props`` command line: one sub-command per mode (contract.md "Commands").

Each sub-command lives in its own module and exposes ``main(argv: list[str]) -> int``; this module only
dispatches, so importing the CLI stays cheap (Beam, CatBoost and pandas load only for the command run).
Every command also accepts Beam pipeline options (``--runner``, ``--project``, ...).
"""

from __future__ import annotations

import importlib
import sys

COMMANDS: dict[str, tuple[str, str]] = {
    "run": ("pipeline.commands.run", "one slate, end to end (no arguments: the local default)"),
    "backfill": ("pipeline.commands.backfill", "every date in a range at its decision time"),
    "stream": ("pipeline.commands.stream", "the streaming job (Pub/Sub in; picks and picks-changes out)"),
    "replay": ("pipeline.commands.replay", "publish a simulated day's events to the streaming topics"),
    "grade": ("pipeline.commands.grade", "grading, model performance, best-bets record"),
    "report": ("pipeline.commands.report", "an HTML report with plots"),
    "simulate": ("sim.cli", "write a synthetic season in the input formats"),
    "train": ("models.train", "train a family, run the promotion gates, register"),
    "legacy": ("pipeline.commands.legacy", "switch-over from the old system (import-registry)"),
    "bridge": ("pipeline.commands.bridge", "publish rows new in the old system's tables to the events topic"),
}


def usage() -> str:
    lines = ["usage: props COMMAND [options]", "", "commands:"]
    lines += [f"  {name:<10} {help_}" for name, (_, help_) in COMMANDS.items()]
    lines += ["", "Run 'props COMMAND --help' for a command's options."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"props: unknown command {name!r}\n\n{usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[name][0])
    return int(module.main(rest) or 0)

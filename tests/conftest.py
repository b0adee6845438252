"""Shared pytest setup: offline Google Cloud defaults for every test (beam-notes.md)."""

import os

# Without credentials, Google auth probes the GCE metadata server first (about 24 s per call offline).
os.environ.setdefault("NO_GCE_CHECK", "true")

from pipeline.commands.common import quiet_beam_logs  # noqa: E402

quiet_beam_logs()

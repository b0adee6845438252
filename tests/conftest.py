"""Shared pytest setup: offline Google Cloud defaults for every test (beam-notes.md), state cells encoded
on every write, and under CI (``CI=true``, as ``.ci/run`` runs) a skipped emulator test is reported as a
failure."""

import os

import pytest

# Without credentials, Google auth probes the GCE metadata server first (about 24 s per call offline).
os.environ.setdefault("NO_GCE_CHECK", "true")
# The local stream's write-through state cells encode every write, as Dataflow does, so every stream test
# also proves each value it stores can be encoded (io.direct_runner._write_through; the job itself
# encodes one value per cell spec, and tests/test_direct_runner.py covers that mode).
os.environ.setdefault("PROPS_ENCODE_EVERY_STATE_WRITE", "1")

from pipeline.commands.common import quiet_beam_logs  # noqa: E402
from tests.emulators import under_ci  # noqa: E402

quiet_beam_logs()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Under CI, a test marked ``emulator`` that ends skipped (for any reason, also a skip raised outside
    ``tests.emulators.unavailable``) fails: CI must prove the emulator paths, not step around them."""
    outcome = yield
    report = outcome.get_result()
    if report.skipped and under_ci() and item.get_closest_marker("emulator") is not None:
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"emulator test skipped under CI (CI is set, so this is a failure): {reason}"


@pytest.fixture()
def first_args(monkeypatch):
    """``first_args(owner, name)``: replaces ``owner.name`` with a wrapper that calls it and records each
    call's first argument; returns the list the calls are recorded in (counting connections, matches)."""

    def record(owner, name: str) -> list:
        calls: list = []
        real = getattr(owner, name)

        def wrapper(first, *args, **kwargs):
            calls.append(first)
            return real(first, *args, **kwargs)

        monkeypatch.setattr(owner, name, wrapper)
        return calls

    return record

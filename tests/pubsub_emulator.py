"""Pytest fixtures: the real Pub/Sub emulator and a streaming job run as a subprocess.

``pubsub_emulator`` (session scope) starts ``gcloud beta emulators pubsub start`` on a free port in its own
process group, waits until it serves, sets ``PUBSUB_EMULATOR_HOST`` for the clients of this process and of
child processes, and stops gcloud and its Java child at the end. Without gcloud (or when the emulator does
not start) the tests are skipped with the reason locally and FAIL under CI (``CI=true``; see
``tests.emulators.unavailable``). ``StreamJob`` starts ``props stream`` in a subprocess (beam-notes:
``cancel()`` blocks and ``wait_until_finish(duration)`` is not implemented) and kills it by PID.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from tests.emulators import unavailable

REPO = Path(__file__).resolve().parents[1]
PROJECT = "props-test"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fresh_id(prefix: str) -> str:
    """A topic / subscription id no other test uses (the emulator needs >= 3 characters)."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="session")
def pubsub_emulator():
    from pipeline.io import pubsub

    host = f"127.0.0.1:{free_port()}"
    old = os.environ.get(pubsub.EMULATOR_ENV)
    proc = start_or_give_up(host)
    pubsub.use_emulator(host)
    try:
        yield host
    finally:
        pubsub.stop_emulator(proc)
        if old is None:
            os.environ.pop(pubsub.EMULATOR_ENV, None)
        else:
            os.environ[pubsub.EMULATOR_ENV] = old


INSTALL_HINT = ("install the Google Cloud CLI with the Pub/Sub emulator component and a Java runtime, "
                "e.g. `gcloud components install pubsub-emulator` (apt: google-cloud-cli-pubsub-emulator, "
                "default-jre-headless)")


def start_or_give_up(host: str, timeout_s: float = 90.0) -> subprocess.Popen:
    """Starts the Pub/Sub emulator on ``host``; if gcloud is missing or the emulator does not come up, the
    calling test is skipped locally and fails under CI (``tests.emulators.unavailable``)."""
    from pipeline.io import pubsub

    if shutil.which("gcloud") is None:
        unavailable(f"gcloud is not installed (the Pub/Sub emulator tests need it): {INSTALL_HINT}")
    try:
        return pubsub.start_emulator(host, PROJECT, timeout_s=timeout_s)
    except RuntimeError as exc:
        unavailable(f"the Pub/Sub emulator did not start: {exc}; {INSTALL_HINT}")


class StreamJob:
    """``props stream`` in a subprocess (its own process group), logging to a file; ``stop()`` kills it."""

    def __init__(self, args: list[str], log_path: Path):
        self.log_path = log_path
        self._log = open(log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "pipeline", "stream", *args], cwd=REPO, stdout=self._log,
            stderr=subprocess.STDOUT, start_new_session=True, env=dict(os.environ))

    def alive(self) -> bool:
        return self.proc.poll() is None

    def wait_running(self, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                raise AssertionError(f"props stream exited: {self.log()[-3000:]}")
            if "running (Ctrl-C to stop)" in self.log():
                time.sleep(3.0)  # the runner starts its Pub/Sub reader after the launch line
                return
            time.sleep(0.3)
        raise AssertionError(f"props stream did not start in {timeout} s: {self.log()[-3000:]}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        """A hard kill (SIGKILL to the job's process group): what a crash does."""
        if self.alive():
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(timeout=30)
        self._log.close()

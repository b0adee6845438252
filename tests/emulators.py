"""Local Google Cloud emulators for tests: BigQuery (bqemulator) and GCS (gcp-storage-emulator).

Each emulator lives in its own venv under ``./.emu/`` (installed by ``bash .ci/emulators.sh``) and is
started here as a subprocess on a free loopback port, in its own process group, waited on until it answers,
and stopped (the whole group killed) on exit. Nothing is mocked: the tests talk to the emulators through
the real google-cloud-bigquery / google-cloud-storage clients and Beam's connectors.

Usage in tests::

    from tests.emulators import bigquery_emulator, gcs_emulator   # context managers
    with gcs_emulator() as gcs, bigquery_emulator(gcs_root=gcs.root) as bq:
        ...  # gcs.endpoint == "http://127.0.0.1:PORT", bq.endpoint, bq.grpc_endpoint

or the pytest fixtures ``gcs_endpoint`` / ``bq_endpoint`` re-exported by a test module. A missing
emulator venv skips the test with the command that installs it, except under CI (``CI=true``, as
``.ci/run`` runs): there an emulator test that cannot run FAILS with the reason (:func:`unavailable`),
since a green CI run whose emulator tests were all skipped proves nothing.

This file is also the wrapper that starts bqemulator (run by the bq venv's python, so it imports nothing
from the project at module level)::

    .emu/bq-venv/bin/python tests/emulators.py bqemulator start --rest-port 9050 ...

bqemulator 1.4 insists on ``INSTALL spatial`` at start-up, which downloads a DuckDB extension (no network
here); the wrapper makes that load optional (GEOGRAPHY is then unavailable, which this project never uses).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

REPO_ROOT = Path(__file__).resolve().parents[1]
EMU_DIR = REPO_ROOT / ".emu"
BQ_PYTHON = EMU_DIR / "bq-venv" / "bin" / "python"
GCS_PYTHON = EMU_DIR / "gcs-venv" / "bin" / "python"
INSTALL_HINT = "run `bash .ci/emulators.sh` to install the emulators into ./.emu/"
START_TIMEOUT_S = 60.0


@dataclasses.dataclass(frozen=True)
class Emulator:
    """A running emulator: its HTTP endpoint, optional gRPC endpoint and storage folder."""

    endpoint: str
    root: Path
    pid: int
    grpc_endpoint: str | None = None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_http(url: str, proc: subprocess.Popen, log: Path, timeout: float = START_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"emulator exited with {proc.returncode}: {log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:  # noqa: S310 - loopback only
                if resp.status < 500:
                    return
        except urllib.error.HTTPError as exc:
            if exc.code < 500:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"emulator did not answer {url} within {timeout:.0f}s: {log.read_text()[-3000:]}")


def _stop(proc: subprocess.Popen) -> None:
    """Kills the emulator's process group (the server and any children it forked)."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def under_ci() -> bool:
    """True when the tests run under CI (``CI`` set to true/1/yes, as CI services and ``.ci/run`` do)."""
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def unavailable(reason: str) -> NoReturn:
    """An emulator the calling test needs cannot run: skip locally, FAIL under CI (the reason either way)."""
    import pytest

    if under_ci():
        pytest.fail(f"{reason} (CI is set: an emulator test must run, not skip)", pytrace=False)
    pytest.skip(reason)


def require(python: Path) -> None:
    """Stops the calling test when an emulator venv is missing (and only then): see :func:`unavailable`."""
    if not python.exists():
        unavailable(f"emulator venv {python.parent.parent} missing: {INSTALL_HINT}")


@contextlib.contextmanager
def gcs_emulator(root: Path | None = None) -> Iterator[Emulator]:
    """Starts gcp-storage-emulator on a free loopback port; objects live under ``root/.cloudstorage``."""
    require(GCS_PYTHON)
    owned = root is None
    root = Path(tempfile.mkdtemp(prefix="gcs-emu-")) if root is None else root
    port = free_port()
    log = root / "gcs-emulator.log"
    env = {**os.environ, "STORAGE_BASE": str(root)}
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [str(GCS_PYTHON), "-m", "gcp_storage_emulator", "-d", str(root), "start",
             "--host", "127.0.0.1", "--port", str(port), "--quiet"],
            stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True,
        )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        _wait_http(f"{endpoint}/storage/v1/b?project=test", proc, log)
        yield Emulator(endpoint=endpoint, root=root / ".cloudstorage", pid=proc.pid)
    finally:
        _stop(proc)
        if owned:
            shutil.rmtree(root, ignore_errors=True)


@contextlib.contextmanager
def bigquery_emulator(project: str = "test-project", gcs_root: Path | None = None) -> Iterator[Emulator]:
    """Starts bqemulator (REST + gRPC Storage API) on free loopback ports, in memory.

    Args:
      project: the default project id.
      gcs_root: the GCS emulator's object folder; ``gs://`` URIs in load jobs resolve under it, so Beam's
        FILE_LOADS (files staged on the GCS emulator) load.
    """
    require(BQ_PYTHON)
    work = Path(tempfile.mkdtemp(prefix="bq-emu-"))
    rest, grpc = free_port(), free_port()
    log = work / "bqemulator.log"
    env = {**os.environ, "BQEMU_LOG_LEVEL": "warning"}
    if gcs_root is not None:
        env["BQEMU_GCS_LOCAL_ROOT"] = str(gcs_root)
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [str(BQ_PYTHON), str(Path(__file__).resolve()), "bqemulator", "start", "--ephemeral",
             "--rest-port", str(rest), "--grpc-port", str(grpc), "--project", project],
            stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True, cwd=str(work),
        )
    endpoint = f"http://127.0.0.1:{rest}"
    try:
        _wait_http(f"{endpoint}/bigquery/v2/projects/{project}/datasets", proc, log)
        yield Emulator(endpoint=endpoint, root=work, pid=proc.pid, grpc_endpoint=f"127.0.0.1:{grpc}")
    finally:
        _stop(proc)
        shutil.rmtree(work, ignore_errors=True)


def _run_bqemulator(argv: list[str]) -> None:
    """Runs bqemulator's CLI with the spatial extension made optional (offline machines)."""
    from bqemulator.storage import engine

    original = engine.DuckDBEngine._load_spatial

    def optional_spatial(self) -> None:
        try:
            original(self)
        except Exception as exc:  # noqa: BLE001 - offline: GEOGRAPHY unavailable, everything else works
            print(f"bqemulator wrapper: spatial extension unavailable, GEOGRAPHY disabled ({exc})",
                  file=sys.stderr)

    engine.DuckDBEngine._load_spatial = optional_spatial
    from bqemulator.cli import main

    main(argv, prog_name="bqemulator")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "bqemulator":
        _run_bqemulator(sys.argv[2:])
    else:
        sys.exit("usage: python tests/emulators.py bqemulator start [bqemulator options]")

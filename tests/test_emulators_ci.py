"""Under CI an emulator test that cannot run fails instead of skipping; locally it still skips.

The "missing" emulators here are real absences (a venv path that does not exist, a PATH without gcloud)
or a real executable named ``gcloud`` that exits at once (the emulator that does not come up): no mocks
of the helpers under test.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from tests import emulators
from tests.pubsub_emulator import REPO, start_or_give_up


def _ci(monkeypatch, value: str | None) -> None:
    if value is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", value)


def test_missing_emulator_venv_fails_under_ci_and_skips_locally(monkeypatch, tmp_path):
    missing = tmp_path / "bq-venv" / "bin" / "python"
    _ci(monkeypatch, "true")
    with pytest.raises(pytest.fail.Exception, match="missing.*CI is set"):
        emulators.require(missing)
    _ci(monkeypatch, None)
    with pytest.raises(pytest.skip.Exception, match="emulators.sh"):
        emulators.require(missing)


def test_missing_gcloud_fails_under_ci(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # no gcloud on this PATH
    _ci(monkeypatch, "true")
    with pytest.raises(pytest.fail.Exception, match="gcloud is not installed"):
        start_or_give_up("127.0.0.1:9")
    _ci(monkeypatch, "false")
    with pytest.raises(pytest.skip.Exception, match="gcloud is not installed"):
        start_or_give_up("127.0.0.1:9")


def test_pubsub_emulator_that_does_not_start_fails_under_ci(monkeypatch, tmp_path):
    gcloud = tmp_path / "gcloud"
    gcloud.write_text("#!/bin/sh\necho 'no java runtime' >&2\nexit 3\n")
    gcloud.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ.get('PATH', '')}")
    _ci(monkeypatch, "true")
    with pytest.raises(pytest.fail.Exception, match="did not start.*exited with code 3"):
        start_or_give_up("127.0.0.1:9", timeout_s=20)


def test_a_skipped_emulator_test_fails_the_run_under_ci(tmp_path):
    """The conftest hook: a skip raised anywhere in an ``emulator`` test is a failure under CI."""
    test_file = tmp_path / "test_skips.py"
    test_file.write_text(textwrap.dedent("""
        import pytest

        @pytest.mark.emulator
        def test_emulator_skips():
            pytest.skip("emulator not here")

        def test_plain_skip_is_still_a_skip():
            pytest.skip("not an emulator test")
    """))

    def run(ci: str | None) -> subprocess.CompletedProcess:
        env = {k: v for k, v in os.environ.items() if k != "CI"}
        if ci is not None:
            env["CI"] = ci
        return subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "tests.conftest",
             "-W", "ignore::pytest.PytestUnknownMarkWarning", str(test_file)],
            cwd=REPO, env=env, capture_output=True, text=True, timeout=300)

    ci = run("true")
    assert ci.returncode == 1, ci.stdout
    assert "1 failed, 1 skipped" in ci.stdout and "emulator test skipped under CI" in ci.stdout
    local = run(None)
    assert local.returncode == 0, local.stdout
    assert "2 skipped" in local.stdout

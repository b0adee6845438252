"""The launch path (issue 10 item 1): the flex-template entry point without gcloud, credentials or network,
the preflight (local paths on a remote runner, credentials, buckets and datasets) and the one rule that
decides whether a Pub/Sub emulator is used."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.commands.common import parse_options
from pipeline.io import cloud
from pipeline.options import LOCAL_PUBSUB_EMULATOR, LOCAL_PUBSUB_PROJECT, OptionsError, pubsub_target

REPO = Path(__file__).resolve().parents[1]
PROJECT = "props-prod-1"
BUCKET = f"{PROJECT}-props"
IMAGE = f"us-central1-docker.pkg.dev/{PROJECT}/props/props-pipeline:abc1234"
EXIT_LIMIT_S = 30  # issue 10 "Done means": a polling limit for the subprocess, not a speed measurement

TEMPLATES = REPO / "launch_templates"


def fake_cloud_cli(tmp_path: Path) -> Path:
    """A bin folder whose ``gcloud`` and ``bq`` print their arguments (one per line) and fail every
    describe/show (nothing exists yet): the launch scripts run without Google Cloud."""
    bin_dir = tmp_path / "fake-bin"
    bin_dir.mkdir(exist_ok=True)
    for tool in ("gcloud", "bq"):
        script = bin_dir / tool
        script.write_text("#!/bin/bash\n"
                          "for a in \"$@\"; do case \"$a\" in describe|show) exit 1;; esac; done\n"
                          f"printf '{tool}\\n'; printf '%s\\n' \"$@\"\n")
        script.chmod(0o755)
    return bin_dir


def script_run(tmp_path: Path, script: str, *args: str) -> subprocess.CompletedProcess:
    env = {"PATH": f"{fake_cloud_cli(tmp_path)}:/usr/bin:/bin", "PROJECT": PROJECT, "HOME": str(tmp_path)}
    return subprocess.run(["bash", str(TEMPLATES / script), *args], env=env, capture_output=True, text=True,
                          timeout=60)


def launcher_args(tmp_path: Path, script: str, *args: str) -> list[str]:
    """What Dataflow's launcher passes main.py for a launch script: the script's --parameters as
    ``--name=value``, plus the options the launcher adds itself."""
    out = script_run(tmp_path, script, *args)
    assert out.returncode == 0, out.stderr
    params = next(a for a in out.stdout.splitlines() if a.startswith("--parameters="))
    pairs = params[len("--parameters="):].split(",")
    return [f"--{p}" for p in pairs] + [f"--project={PROJECT}", "--region=us-central1",
                                       "--job_name=props-launch-test"]


LAUNCHES = {
    "run": ("run_batch.sh", "run", "--game_date=2026-02-22"),
    "backfill": ("run_batch.sh", "backfill", "--start=2026-02-01", "--end=2026-02-03"),
    "grade": ("run_batch.sh", "grade", "--date=2026-02-22"),
    "stream": ("run_streaming.sh",),
}


def bare_env(tmp_path: Path) -> dict[str, str]:
    """A machine with no gcloud on PATH, no credentials and no GCE metadata server."""
    home = tmp_path / "home"
    sdk_config = tmp_path / "gcloud-config"
    bin_dir = tmp_path / "bin"
    for d in (home, sdk_config, bin_dir):  # PATH: only python (no gcloud, no bq)
        d.mkdir()
    (bin_dir / "python").symlink_to(sys.executable)
    env = {"PATH": str(bin_dir), "HOME": str(home), "CLOUDSDK_CONFIG": str(sdk_config), "LANG": "C.UTF-8",
           # no metadata server: a closed loopback port (google-auth's own probe, bounded)
           "GCE_METADATA_HOST": "127.0.0.1:9", "GCE_METADATA_IP": "127.0.0.1:9"}
    assert shutil.which("gcloud", path=env["PATH"]) is None
    assert "GOOGLE_APPLICATION_CREDENTIALS" not in env and "NO_GCE_CHECK" not in env
    return env


@pytest.mark.parametrize("command", sorted(LAUNCHES))
def test_template_launch_without_credentials_names_them_last_and_never_an_emulator(command, tmp_path):
    argv = launcher_args(tmp_path, *LAUNCHES[command])
    assert f"--command={command}" in argv
    out = subprocess.run([sys.executable, str(REPO / "main.py"), *argv], cwd=tmp_path,
                         env=bare_env(tmp_path), capture_output=True, text=True, timeout=EXIT_LIMIT_S)
    text = out.stdout + out.stderr
    lines = [line for line in text.splitlines() if line.strip()]
    assert out.returncode == 2, text[-3000:]
    assert "emulator" not in text.lower()
    assert "missing Google Cloud credentials" in lines[-1]
    assert "gcloud auth application-default login" in lines[-1]
    assert not (tmp_path / "warehouse").exists() and not (tmp_path / "data").exists()


@pytest.fixture()
def anonymous_credentials(monkeypatch):
    """ADC present (anonymous): the check that follows the credentials one is what the test looks at."""
    import google.auth
    from google.auth.credentials import AnonymousCredentials

    monkeypatch.setattr(google.auth, "default", lambda *a, **k: (AnonymousCredentials(), PROJECT))


def test_local_paths_on_a_remote_runner_are_named_one_by_one(anonymous_credentials):
    options = parse_options(["--runner=DataflowRunner", f"--project={PROJECT}", "--inputs=/data/inputs",
                             "--warehouse=duckdb:///tmp/props.duckdb", "--exports=./exports",
                             "--registry=/models/registry.json", "--policy=policies/mine.json"])
    with pytest.raises(cloud.PreflightError) as err:
        cloud.launch_preflight(options)
    problems = err.value.problems
    for flag, value in (("inputs", "/data/inputs"), ("warehouse", "duckdb:///tmp/props.duckdb"),
                        ("exports", "./exports"), ("registry", "/models/registry.json"),
                        ("policy", "policies/mine.json")):
        assert any(p.startswith(f"--{flag} {value} is a local path") for p in problems), (flag, problems)
    assert len(problems) == 5


def test_local_defaults_on_a_remote_runner_are_preflight_errors(anonymous_credentials):
    options = parse_options(["--runner=DataflowRunner", f"--project={PROJECT}"])
    with pytest.raises(cloud.PreflightError) as err:
        cloud.launch_preflight(options)
    text = "\n".join(err.value.problems)
    assert "--inputs is not set" in text and "--registry is not set" in text
    assert "--warehouse ./warehouse/props.duckdb is a local path" in text
    assert "--exports ./exports is a local path" in text
    assert "--policy" not in text  # the packaged policy ships in the image and is versioned


def test_local_runs_with_local_paths_need_no_credentials(monkeypatch, tmp_path):
    import google.auth

    def no_lookup(*_a, **_k):
        raise AssertionError("a local run must not look up credentials")

    monkeypatch.setattr(google.auth, "default", no_lookup)
    cloud.launch_preflight(parse_options([f"--warehouse={tmp_path}/w.duckdb", f"--exports={tmp_path}/x"]))
    cloud.launch_preflight(parse_options([]), streaming=True)  # the local default stream: an emulator


def test_missing_credentials_come_last_after_the_local_path_problems(monkeypatch):
    import google.auth
    from google.auth.exceptions import DefaultCredentialsError

    def missing(*_a, **_k):
        raise DefaultCredentialsError("Your default credentials were not found.")

    monkeypatch.setattr(google.auth, "default", missing)
    options = parse_options(["--runner=DataflowRunner", f"--project={PROJECT}", "--exports=/tmp/x"])
    with pytest.raises(cloud.PreflightError) as err:
        cloud.launch_preflight(options)
    assert any("--exports /tmp/x" in p for p in err.value.problems[:-1])
    assert err.value.problems[-1].startswith("missing Google Cloud credentials")


def test_a_hanging_credentials_lookup_is_cut_short(monkeypatch):
    import threading

    import google.auth

    release = threading.Event()
    monkeypatch.setattr(google.auth, "default", lambda *a, **k: release.wait(30))
    try:
        problem = cloud.credentials_problem(timeout_s=0.5)
    finally:
        release.set()
    assert problem.startswith("missing Google Cloud credentials") and "did not finish in" in problem


@pytest.mark.parametrize(
    "command, dates",
    [("grade", ["--date=2026-02-22"]), ("backfill", ["--start=2026-02-01", "--end=2026-02-03"])],
)
def test_grade_and_backfill_on_dataflow_run_the_launch_preflight_like_run(
    monkeypatch, tmp_path, capsys, command, dates
):
    """`props grade` / `props backfill --runner DataflowRunner` (not only the template entry point) call
    launch_preflight before they open a warehouse or read anything: local defaults are named, credentials
    last."""
    import importlib

    import google.auth
    from google.auth.exceptions import DefaultCredentialsError

    module = importlib.import_module(f"pipeline.commands.{command}")
    calls = []

    def missing(*_a, **_k):
        calls.append(1)
        raise DefaultCredentialsError("Your default credentials were not found.")

    monkeypatch.setattr(google.auth, "default", missing)
    monkeypatch.chdir(tmp_path)
    code = module.main(["--runner=DataflowRunner", f"--project={PROJECT}", *dates])
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert code == 2 and calls, err
    assert any("--warehouse ./warehouse/props.duckdb is a local path" in line for line in err), err
    assert any("--exports ./exports is a local path" in line for line in err), err
    assert err[-1].startswith(f"props {command}: missing Google Cloud credentials"), err
    assert not (tmp_path / "warehouse").exists() and not (tmp_path / "exports").exists()


@pytest.mark.emulator
def test_missing_bucket_and_dataset_are_named_with_the_setup_script(tmp_path):
    from google.cloud import bigquery

    from tests.emulators import bigquery_emulator, gcs_emulator

    with gcs_emulator() as gcs, bigquery_emulator(project=PROJECT) as bq:
        cloud.use_emulators(bigquery_endpoint=bq.endpoint, gcs_endpoint=gcs.endpoint, project=PROJECT)
        cloud.storage_client(PROJECT).create_bucket(BUCKET)
        cloud.bigquery_client(PROJECT).create_dataset(bigquery.Dataset(f"{PROJECT}.props"))
        good = ["--runner=DataflowRunner", f"--project={PROJECT}", f"--inputs=gs://{BUCKET}/inputs",
                f"--warehouse=bigquery://{PROJECT}.props", f"--exports=gs://{BUCKET}/exports",
                f"--registry=gs://{BUCKET}/models/registry.json", f"--temp_location=gs://{BUCKET}/temp"]
        cloud.launch_preflight(parse_options(good))
        bad = [*good[:3], f"--warehouse=bigquery://{PROJECT}.nowhere", "--exports=gs://no-such-bucket/x",
               *good[5:]]
        with pytest.raises(cloud.PreflightError) as err:
            cloud.launch_preflight(parse_options(bad))
    problems = err.value.problems
    assert len(problems) == 2, problems
    assert any(p.startswith("bucket gs://no-such-bucket (--exports) does not exist") for p in problems)
    assert any(p.startswith(f"dataset {PROJECT}.nowhere (--warehouse) does not exist") for p in problems)
    assert all("launch_templates/setup.sh" in p for p in problems)


# ---------------------------------------------------------------------------------------------
# The emulator rule: never unless asked for (options.pubsub_target)
# ---------------------------------------------------------------------------------------------


def test_local_default_stream_uses_the_local_emulator():
    assert pubsub_target(parse_options([])) == (LOCAL_PUBSUB_EMULATOR, LOCAL_PUBSUB_PROJECT)


def test_a_pubsub_project_means_real_pubsub_locally():
    assert pubsub_target(parse_options(["--pubsub-project", PROJECT])) == (None, PROJECT)
    explicit_none = parse_options(["--pubsub-emulator", "none", "--project", PROJECT])
    assert pubsub_target(explicit_none) == (None, PROJECT)


def test_an_explicit_emulator_is_used_locally():
    assert pubsub_target(parse_options(["--pubsub-emulator", "127.0.0.1:9999"])) == \
        ("127.0.0.1:9999", LOCAL_PUBSUB_PROJECT)


def test_a_remote_runner_never_uses_an_emulator():
    options = parse_options(["--runner=DataflowRunner", f"--project={PROJECT}"])
    assert pubsub_target(options) == (None, PROJECT)
    with pytest.raises(OptionsError, match="remote runner"):
        pubsub_target(parse_options(["--runner=DataflowRunner", "--pubsub-emulator=127.0.0.1:8085"]))


def test_the_launcher_keeps_the_metadata_server_lookup_on(tmp_path):
    """On the launcher VM the service account comes from the metadata server: main.py must not let the
    local-run default (NO_GCE_CHECK=true) switch that lookup off."""
    env = {k: v for k, v in os.environ.items() if k != "NO_GCE_CHECK"}
    code = ("import os, sys, main\n"
            "main.main(['--command=run', '--help'])\n"
            "print('NO_GCE_CHECK=' + os.environ['NO_GCE_CHECK'])\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True,
                         timeout=60)
    assert out.stdout.strip().splitlines()[-1] == "NO_GCE_CHECK=false", out.stdout[-2000:] + out.stderr


def test_setup_script_covers_what_the_streaming_launch_and_the_preflight_need(tmp_path):
    """setup.sh --check on an empty project lists every resource the launch scripts name as missing."""
    out = script_run(tmp_path, "setup.sh", "--check")
    assert out.returncode == 1, out.stdout + out.stderr
    missing = {line.split(None, 1)[1] for line in out.stdout.splitlines() if line.startswith("MISSING")}
    stream = dict(a[2:].split("=", 1) for a in launcher_args(tmp_path, "run_streaming.sh"))
    expected = {f"topic {stream[k]}" for k in ("events_topic", "features_topic", "picks_changes_topic")}
    expected |= {f"subscription {stream['events_subscription']}",
                 f"bucket gs://{stream['exports'][5:].split('/')[0]}",
                 f"dataset {stream['warehouse'][len('bigquery://'):]}",
                 f"dataset {stream['inputs'][len('bigquery://'):]}"}
    assert expected <= missing, (expected - missing, out.stdout)
    assert any(m.startswith("service account props-dataflow@") for m in missing)


def test_exit_skips_the_finalizer_collections_but_not_before():
    """prepare_local_environment freezes the heap only at interpreter exit (atexit), once however often
    it is called: while the process runs, garbage is collected as usual."""
    code = ("import atexit, gc; atexit.register(lambda: print('frozen at exit', gc.get_freeze_count() > 0)); "
            "from pipeline.commands import common; common.prepare_local_environment(); "
            "common.prepare_local_environment(); print('frozen while running', gc.get_freeze_count() > 0)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.splitlines() == ["frozen while running False", "frozen at exit True"]

"""Beam's real DataflowRunner submits the batch and the streaming job to loopback stand-ins (issue 10 item 5).

What production would receive, produced without Google Cloud (beam-notes "Submitting to Dataflow
offline"): ``python main.py --command=run|stream ...`` (the flex-template entry point, DataflowRunner) with

* GCS: the gcp-storage-emulator holds the inputs, the registry, the exports bucket and Beam's staging
  location (``pipeline.pb``, the runner API proto with every transform's unique name, is staged there);
* BigQuery: bqemulator holds the warehouse dataset (created first, as ``launch_templates/setup.sh`` does);
* Pub/Sub (streaming): the gcloud Pub/Sub emulator through ``PUBSUB_EMULATOR_HOST``, topics and
  subscription created first (setup.sh's job); nothing in the job's options points at it;
* Dataflow: :class:`DataflowStandIn`, a loopback HTTP server that records the job-create request
  (``POST /v1b3/projects/P/locations/R/jobs``) and answers with a job.

The launcher process gets the emulator endpoints the way tests do (``cloud.use_emulators`` in the
process, anonymous credentials), never as job options, so the assertions can check that the submitted
job carries no emulator or local-path option. Two submissions of each job must name the same steps
(the update contract of the streaming job). Only what the stand-ins cannot be is left to Google Cloud:
see notes/h-launch.md.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.emulators import bigquery_emulator, gcs_emulator
from tests.pubsub_emulator import pubsub_emulator  # noqa: F401 - fixture (session scope)

pytestmark = [pytest.mark.emulator, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[1]
PROJECT = "props-test-proj"  # Beam's validator wants >= 6 characters
REGION = "us-central1"
BUCKET = "props-test-proj-props"
DATASET = "props"
IMAGE = f"{REGION}-docker.pkg.dev/{PROJECT}/props/props-pipeline:test"
GAME_DATE = "2026-01-13"
LAUNCH_TIMEOUT_S = 300  # a polling limit for the subprocess, not a speed assertion
STAND_IN_LIFETIME_S = 900

# The launcher, as Dataflow runs it, with the emulators configured in-process (what a test may do).
LAUNCHER = """
import sys
from pipeline.io import cloud
cloud.use_emulators(bigquery_endpoint=sys.argv[1], gcs_endpoint=sys.argv[2], project=sys.argv[3])
import main
sys.exit(main.main(sys.argv[4:]))
"""


class DataflowStandIn:
    """A loopback Dataflow API: records every job-create body, answers with a job; stops itself after
    ``lifetime_s`` even if the test forgets to (context manager)."""

    def __init__(self, lifetime_s: float = STAND_IN_LIFETIME_S):
        self.jobs: list[dict] = []
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self, doc: dict) -> None:
                data = json.dumps(doc).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self):  # noqa: N802 - http.server's API
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                job = json.loads(body or b"{}")
                stand_in.jobs.append({"path": self.path, "body": job})
                self._answer({"id": f"stand-in-job-{len(stand_in.jobs)}", "projectId": PROJECT,
                              "name": job.get("name"), "type": job.get("type"),
                              "currentState": "JOB_STATE_PENDING"})

            def do_GET(self):  # noqa: N802
                self._answer({"id": self.path.rstrip("/").split("/")[-1].split("?")[0], "projectId": PROJECT,
                              "currentState": "JOB_STATE_RUNNING"})

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.2},
                                        daemon=True)
        self._timer = threading.Timer(lifetime_s, self.server.shutdown)
        self._timer.daemon = True

    @property
    def endpoint(self) -> str:
        return f"http://localhost:{self.port}"  # Beam skips its googleapis URL check only for localhost

    def __enter__(self) -> DataflowStandIn:
        self._thread.start()
        self._timer.start()
        return self

    def __exit__(self, *exc) -> None:
        self._timer.cancel()
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=10)


@pytest.fixture(scope="module")
def season(tmp_path_factory) -> Path:
    import sim

    out = tmp_path_factory.mktemp("season")
    s = sim.simulate(seed=11, teams=("LAL", "BOS", "DEN", "MIA", "NYK", "PHX"), start="2026-01-10", days=6)
    s.write(out)
    return out


@pytest.fixture(scope="module")
def cloud_stand_ins(season):
    """The GCS and BigQuery emulators with what setup.sh and the operators provide: the bucket, the
    inputs, the model registry, the warehouse dataset."""
    from google.cloud import bigquery

    from pipeline.io import cloud
    from tests.slate_fixtures import tiny_registry

    with gcs_emulator() as gcs, bigquery_emulator(project=PROJECT, gcs_root=gcs.root) as bq:
        cloud.use_emulators(bigquery_endpoint=bq.endpoint, gcs_endpoint=gcs.endpoint, project=PROJECT)
        storage = cloud.storage_client(PROJECT)
        bucket = storage.create_bucket(BUCKET)
        for path in sorted(p for p in season.rglob("*") if p.is_file()):
            bucket.blob(f"inputs/{path.relative_to(season).as_posix()}").upload_from_filename(str(path))
        for path in sorted(Path(tiny_registry().uri).parent.iterdir()):  # registry.json + artifacts
            bucket.blob(f"models/{path.name}").upload_from_filename(str(path))
        cloud.bigquery_client(PROJECT).create_dataset(bigquery.Dataset(f"{PROJECT}.{DATASET}"))
        yield {"gcs": gcs, "bq": bq}


def common_args(dataflow: DataflowStandIn) -> list[str]:
    """The parameters run_batch.sh / run_streaming.sh pass (env.sh layout) plus the stand-in options."""
    return [
        f"--inputs=gs://{BUCKET}/inputs",
        f"--warehouse=bigquery://{PROJECT}.{DATASET}",
        f"--exports=gs://{BUCKET}/exports",
        f"--registry=gs://{BUCKET}/models/registry.json",
        f"--sdk_container_image={IMAGE}",
        f"--temp_location=gs://{BUCKET}/temp",
        f"--staging_location=gs://{BUCKET}/staging",
        f"--project={PROJECT}",
        f"--region={REGION}",
        f"--dataflow_endpoint={dataflow.endpoint}",
        "--no_auth",
        "--sdk_location=container",
    ]


# A bug another branch fixes (issue 10 item 3): the stream's launch reads the published picks with a query
# that names no dataset, which real BigQuery (and bqemulator) reject. Only that exact failure is tolerated.


def launch(stand_ins: dict, argv: list[str], tmp: Path, env_extra: dict | None = None) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("GOOGLE_APPLICATION_CREDENTIALS",)}
    env.update({"HOME": str(tmp), "CLOUDSDK_CONFIG": str(tmp), "NO_GCE_CHECK": "true",
                "PYTHONPATH": str(REPO)})
    env.update(env_extra or {})
    out = subprocess.run(
        [sys.executable, "-c", LAUNCHER, stand_ins["bq"].endpoint, stand_ins["gcs"].endpoint, PROJECT, *argv],
        cwd=tmp, env=env, capture_output=True, text=True, timeout=LAUNCH_TIMEOUT_S)
    log = out.stdout + out.stderr
    assert out.returncode == 0, log[-4000:]
    return log


def staged_step_names(job: dict) -> list[str]:
    """Unique names of every transform of the pipeline proto the job staged (runner v2), in order."""
    from apache_beam.io.filesystems import FileSystems
    from apache_beam.portability.api import beam_runner_api_pb2

    staging = f"gs://{BUCKET}/staging/{job['name']}"
    matches = FileSystems.match([f"{staging}*/pipeline.pb"])[0].metadata_list
    assert matches, f"no pipeline.pb staged under {staging}"
    newest = max(matches, key=lambda m: m.path)  # one launch per job name here
    with FileSystems.open(newest.path) as f:
        proto = beam_runner_api_pb2.Pipeline.FromString(f.read())
    return sorted(t.unique_name for t in proto.components.transforms.values())


def pipeline_options(job: dict) -> dict:
    return job["environment"]["sdkPipelineOptions"]["options"]


OUR_LOCATIONS = ("inputs", "warehouse", "exports", "registry", "policy")
EMULATOR_OPTIONS = ("bigquery_endpoint", "gcs_endpoint", "pubsub_emulator")


def assert_production_job(job: dict, *, streaming: bool) -> None:
    opts = pipeline_options(job)
    for name in EMULATOR_OPTIONS:
        assert opts.get(name) in (None, ""), f"{name}={opts.get(name)!r} reached the job"
    for name in OUR_LOCATIONS:
        value = opts.get(name)
        assert value is None or str(value).startswith(("gs://", "bigquery://")), f"{name}={value!r}"
    for name, value in opts.items():
        if name == "dataflow_endpoint":  # the stand-in itself
            continue
        text = json.dumps(value)
        assert "emulator" not in text.lower() and "127.0.0.1" not in text, (name, value)
        assert not str(value).startswith(("/", "./")) or name in ("sdk_location",), (name, value)
    pools = job["environment"]["workerPools"]
    images = [i.get("containerImage") for p in pools for i in p.get("sdkHarnessContainerImages", [])]
    images += [p.get("workerHarnessContainerImage") for p in pools]
    assert IMAGE in images, pools
    # apitools sends the enum's number: JOB_TYPE_BATCH = 1, JOB_TYPE_STREAMING = 2
    assert job["type"] in (("JOB_TYPE_STREAMING", 2) if streaming else ("JOB_TYPE_BATCH", 1))
    assert "setup_file" not in opts or not opts["setup_file"]  # the image holds the package


def test_batch_job_request_is_production_shaped_and_its_steps_are_stable(cloud_stand_ins, tmp_path):
    with DataflowStandIn() as dataflow:
        argv = ["--command=run", f"--game_date={GAME_DATE}", *common_args(dataflow)]
        logs = [launch(cloud_stand_ins, argv, tmp_path) for _ in range(2)]
        jobs = [j["body"] for j in dataflow.jobs]
    (tmp_path / "jobs.json").write_text(json.dumps(jobs, indent=1))  # kept for a failing run's reader
    assert len(jobs) == 2, logs[-1][-3000:]
    assert all(j_path["path"].startswith(f"/v1b3/projects/{PROJECT}/locations/{REGION}/jobs")
               for j_path in dataflow.jobs)
    for job in jobs:
        assert_production_job(job, streaming=False)
    first, second = (staged_step_names(j) for j in jobs)
    assert first == second and len(first) > 20
    assert any("ScorePlayers" in n for n in first) and any("SelectBestBets" in n for n in first), first
    assert "submitted Dataflow job stand-in-job-1" in logs[0]


@pytest.fixture()
def stream_topics(pubsub_emulator):  # noqa: F811 - fixture from tests.pubsub_emulator
    """setup.sh's part on the Pub/Sub emulator: fresh topics and the events subscription."""
    from pipeline.io import pubsub
    from tests.pubsub_emulator import fresh_id

    names = {"events_topic": fresh_id("events"), "features_topic": fresh_id("features"),
             "picks_changes_topic": fresh_id("changes"), "events_subscription": fresh_id("events-sub")}
    pubsub.ensure_topics(PROJECT, [names["events_topic"], names["features_topic"],
                                   names["picks_changes_topic"]],
                         {names["events_subscription"]: names["events_topic"]})
    return pubsub_emulator, names


def test_streaming_job_request_is_production_shaped_and_its_steps_are_stable(cloud_stand_ins, stream_topics,
                                                                             tmp_path):
    host, names = stream_topics
    with DataflowStandIn() as dataflow:
        argv = ["--command=stream", f"--game_date={GAME_DATE}", f"--pubsub_project={PROJECT}",
                *(f"--{k}={v}" for k, v in names.items()), *common_args(dataflow),
                "--experiments=enable_streaming_engine"]
        logs = [launch(cloud_stand_ins, argv, tmp_path, {"PUBSUB_EMULATOR_HOST": host}) for _ in range(2)]
        jobs = [j["body"] for j in dataflow.jobs]
    assert len(jobs) == 2, logs[-1][-3000:]
    for job in jobs:
        assert_production_job(job, streaming=True)
        opts = pipeline_options(job)
        assert opts.get("pubsub_project") == PROJECT and opts.get("streaming") is True
    first, second = (staged_step_names(j) for j in jobs)
    assert first == second and len(first) > 10
    assert "props stream: submitted Dataflow job stand-in-job-1" in logs[0]


def test_stand_in_stops_itself():
    with DataflowStandIn(lifetime_s=0.2) as dataflow:
        dataflow._thread.join(timeout=10)  # the lifetime timer shut the server down
        assert not dataflow._thread.is_alive()

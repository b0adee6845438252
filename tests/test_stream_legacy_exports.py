"""``props stream --legacy-exports`` (issue 11 item 2 in the stream): the old website's four files are
rewritten from the committed warehouse tables after every applied change batch, like ``props run`` does
after its commit, and the launch refuses a prefix that overlaps ``--exports``.

The stream is the real graph (``build_stream_pipeline``) on the streaming DirectRunner under TestStream,
tiny real CatBoost models (tests/slate_fixtures.py), a DuckDB warehouse; the legacy files are validated
against tests/legacy_schemas/.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from pathlib import Path

import apache_beam as beam
from apache_beam.io.gcp.pubsub import PubsubMessage
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.test_stream import TestStream

from pipeline.domain.context import player_contexts
from pipeline.io.pubsub import message_for
from pipeline.policy import load_policy
from pipeline.schemas import ScheduleEvent
from pipeline.stream_graph import StreamPlan, build_stream_pipeline
from pipeline.transforms.streaming import DateReference, zero_clock
from tests import slate_fixtures as fx
from tests.test_legacy_exports import validator_for

REPO = Path(__file__).resolve().parents[1]
COLLECTED: list = []  # DateChanges (the DirectRunner runs in this process)


def msg(kind: str, row) -> PubsubMessage:
    data, attrs = message_for(kind, row)
    return PubsubMessage(data, attrs)


def at(minutes_before_asof: int) -> dt.datetime:
    return fx.AS_OF - dt.timedelta(minutes=minutes_before_asof)


def _collect(x):
    COLLECTED.append(x)


def test_a_streamed_pick_change_rewrites_the_legacy_files(tmp_path):
    COLLECTED.clear()
    policy = load_policy(None)
    features = [fx.feature_row("alpha", avg=30.0)]
    plan = StreamPlan(
        run_id="stream-legacy", policy=policy,
        reference=DateReference(policy, registry=fx.tiny_registry(), features=features,
                                contexts=player_contexts(features, [fx.box("alpha", 2)])),
        history={}, debounce_seconds=0.5, subscription=None, picks_changes_topic=None,
        warehouse=str(tmp_path / "props.duckdb"), exports=str(tmp_path / "exports"), clock=zero_clock,
        scoring_timeout_s=1000.0, legacy_exports=str(tmp_path / "v1"))
    schedule = ScheduleEvent(game_id=fx.GAME_ID, game_date=fx.GAME_DATE, tipoff_utc=fx.TIPOFF,
                             home_team="BOS", away_team="LAL", status="scheduled", new_game_date=None,
                             event_ts=at(600))
    script = (
        TestStream()
        .advance_watermark_to(0)
        .add_elements([msg("schedule", schedule), msg("odds", fx.odds("alpha", "draftkings", 13.5, 300))])
        .advance_processing_time(5)
        .add_elements([msg("odds", fx.odds("alpha", "draftkings", 14.5, 240))])  # the line moves
        .advance_processing_time(5)
        .advance_watermark_to_infinity()
    )
    options = PipelineOptions()
    options.view_as(StandardOptions).streaming = True
    p = TestPipeline(options=options)
    out = build_stream_pipeline(p, plan, messages=p | script)
    _ = out["changes"] | "Collect" >> beam.Map(_collect)
    result = p.run()
    result.wait_until_finish()

    changes = [(c.change, c.pick.line) for dc in COLLECTED for c in dc.changes]
    assert changes[0] == ("created", 13.5) and ("updated", 14.5) in changes, changes
    legacy = tmp_path / "v1"
    docs = {}
    for path, schema in (("best-bets/all.json", "all.schema.json"), ("status.json", "status.schema.json"),
                         ("best-bets/today.json", "today.schema.json"),
                         ("best-bets/record.json", "record.schema.json")):
        docs[path] = json.loads((legacy / path).read_text())
        assert validator_for(schema).is_valid(docs[path]), path
    today = docs["best-bets/today.json"]
    assert today["date"] == fx.GAME_DATE.isoformat()
    assert [(p["player_lookup"], p["line"]) for p in today["picks"]] == [("alpha", 14.5)]
    assert docs["best-bets/all.json"]["date"] == fx.GAME_DATE.isoformat()
    # the last change batch (the move to 14.5) is what the files show: rewritten after it, from the
    # committed best_bets (the first batch alone would have left 13.5)
    assert [p["line"] for p in docs["best-bets/all.json"]["today"]] == [14.5]
    from pipeline.io.warehouse import DuckDBWarehouse

    stored = DuckDBWarehouse(str(tmp_path / "props.duckdb")).read_rows("best_bets", [fx.GAME_DATE])
    assert [(b.player_lookup, b.line, b.version) for b in stored] == [("alpha", 14.5, len(changes))]


def test_stream_refuses_legacy_exports_overlapping_exports(tmp_path):
    """The same preflight refusal as ``props run``: nothing starts (no emulator, no job)."""
    exports = tmp_path / "exports"
    out = subprocess.run(
        [sys.executable, "-m", "pipeline", "stream", "--exports", str(exports), "--legacy-exports",
         str(exports / "v1"), "--warehouse", str(tmp_path / "w.duckdb"), "--pubsub-emulator", "127.0.0.1:9"],
        cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 2, out.stderr[-2000:]
    assert "--legacy-exports" in out.stderr and "overlap" in out.stderr
    assert "emulator" not in out.stderr.lower()
    assert not (tmp_path / "w.duckdb").exists()

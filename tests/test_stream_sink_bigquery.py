"""The streaming sink on BigQuery (issue 10 item 3, ``pipeline/io/stream_sinks.py``) against bqemulator.

The sink transforms run under TestStream on the streaming DirectRunner (in this process, so Beam's and the
client's calls reach the emulator), with the warehouse in its own dataset (never the client's default).
What the emulator receives is counted by wrapping the real ``google.cloud.bigquery.Client`` methods (the
calls go through unchanged; bqemulator's job list does not tell a staging load from another, and
``insertAll`` is not a job). Asserted: each change batch is ONE ``insertAll`` on ``best_bets_history``
and nothing else (no load job, no table created, no query/transaction); versioned rows and dead letters
are written once per batch window (processing time) and at the end of the window, one load job / one
transaction per table and window; a replayed change and a replayed version are not duplicated; the
restart read (``published_picks``) sees the latest version of
each pick through the ``best_bets_latest`` view, overlaid on the batch's ``best_bets``.
"""

from __future__ import annotations

import datetime as dt

import apache_beam as beam
import pytest
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.test_stream import TestStream

from pipeline import schemas
from pipeline.domain.lifecycle import PickChange
from pipeline.io import cloud
from pipeline.io.stream_sinks import WriteStreamOutputs, published_picks
from pipeline.transforms.streaming import DateChanges, zero_clock
from tests.emulators import bigquery_emulator
from tests.test_bigquery import D1, pick

pytestmark = pytest.mark.emulator

PROJECT = "test-project"
DATASET = "props_stream_sink"  # not the client's default: every statement must name it
NOW = dt.datetime(2026, 2, 22, 20, 0, tzinfo=dt.UTC)
BATCH_S = 300.0  # the production window (windows.WAREHOUSE_BATCH_S) on TestStream's processing clock
CALLS: list[tuple[str, str]] = []  # (client method, target): module-level, the runner is in-process


@pytest.fixture(scope="module")
def bq():
    with bigquery_emulator(project=PROJECT) as emu:
        cloud.use_emulators(bigquery_endpoint=emu.endpoint, project=PROJECT)
        yield emu


def _target(name: str, args, kwargs) -> str:
    if name == "query":
        return str(args[0] if args else kwargs.get("query"))
    if name == "load_table_from_file":
        return str(args[1] if len(args) > 1 else kwargs.get("destination"))
    table = args[0] if args else kwargs.get("table")
    return str(getattr(table, "table_id", table))


@pytest.fixture()
def counted(monkeypatch):
    """Counts the client calls (each one still reaches the emulator)."""
    from google.cloud import bigquery

    for name in ("insert_rows_json", "load_table_from_file", "create_table", "delete_table", "query",
                 "create_dataset", "update_table"):
        real = getattr(bigquery.Client, name)

        def wrapper(self, *args, _real=real, _name=name, **kwargs):
            CALLS.append((_name, _target(_name, args, kwargs)))
            return _real(self, *args, **kwargs)

        monkeypatch.setattr(bigquery.Client, name, wrapper)
    CALLS.clear()
    yield CALLS


def gate(player: str, version: int) -> schemas.GateDecision:
    return schemas.GateDecision(D1, "20260222_LAL_BOS", player, "RETRY", True, "quality_sufficient", 90.0,
                                version=version, scored_at=NOW, run_id="stream-1", policy_version="p1")


def dead(n: int) -> schemas.DeadLetter:
    return schemas.DeadLetter("pubsub:odds", "parse", f"bad message {n}", "{", None, D1)


def changes(*items: tuple[str, schemas.Pick], minute: int) -> DateChanges:
    at = NOW + dt.timedelta(minutes=minute)
    cs = tuple(PickChange(kind, p, at) for kind, p in items)
    return DateChanges(game_date=D1, changes=cs, picks=tuple(c.pick for c in cs),
                       filter_summary=None, consensus=(), now=at)


def run_sink(warehouse_uri: str, exports: str, script: TestStream, legacy: str | None = None) -> None:
    options = PipelineOptions()
    options.view_as(StandardOptions).streaming = True
    with TestPipeline(options=options) as p:
        ev = p | script
        inputs = {kind: ev | f"Only_{kind}" >> beam.Filter(lambda e, k=kind: e[0] == k)
                  | f"Rows_{kind}" >> beam.Map(lambda e: e[1])
                  for kind in ("changes", "dead_letters", "gate_decisions")}
        _ = inputs | WriteStreamOutputs(
            warehouse_uri=warehouse_uri, exports_uri=exports, picks_changes_topic=None, latest_date=None,
            policy_version="p1", run_id="stream-1", batch_s=BATCH_S, clock=zero_clock, legacy_exports=legacy)


def test_stream_sink_appends_history_per_change_and_batches_versions_and_dead_letters(bq, counted, tmp_path):
    from pipeline.io.bigquery import BigQueryWarehouse

    wh = BigQueryWarehouse(PROJECT, DATASET)
    alpha = pick("20260222_LAL_BOS", "alpha", version=1)
    beta, gamma = pick("20260222_NYK_MIA", "beta", rank=2), pick("20260222_DEN_PHX", "gamma", rank=3)
    wh.replace_dates([D1], {"best_bets": [beta, gamma]}, tables=("best_bets",))  # the batch run's picks
    batch_a = changes(("created", alpha), minute=0)
    batch_b = changes(("updated", alpha._replace(version=2, line=25.5)),
                      ("updated", beta._replace(version=2, line=23.5)), minute=1)
    CALLS.clear()
    script = (
        TestStream()
        .advance_watermark_to(0)
        .add_elements([("changes", batch_a), ("dead_letters", dead(1)), ("gate_decisions", gate("alpha", 1))])
        .advance_processing_time(10)
        # inside the same window: a second change batch, the first one redelivered, a replayed version
        .add_elements([("changes", batch_b), ("changes", batch_a), ("dead_letters", dead(2)),
                       ("dead_letters", dead(1)), ("gate_decisions", gate("alpha", 2)),
                       ("gate_decisions", gate("alpha", 1))])
        .advance_processing_time(BATCH_S + 100)  # the window's timer fires: one write per table
        .add_elements([("changes", changes(("created", gamma._replace(version=2, line=26.5)), minute=2)),
                       ("dead_letters", dead(3)), ("gate_decisions", gate("beta", 2))])
        .advance_watermark_to_infinity()  # end of the window (a drain): what is buffered is written
    )
    run_sink(wh.uri, str(tmp_path / "exports"), script, legacy=str(tmp_path / "v1"))

    # Per change batch: ONE insertAll on best_bets_history; nothing else per change.
    inserts = [t for m, t in CALLS if m == "insert_rows_json"]
    assert len(inserts) == 4 and all(t.endswith(f"{DATASET}.best_bets_history") for t in inserts), inserts
    loads = [t for m, t in CALLS if m == "load_table_from_file"]
    created = [t for m, t in CALLS if m == "create_table"]
    scripts = [t for m, t in CALLS if m == "query" and t.startswith("BEGIN TRANSACTION")]
    # Two windows (timer, end): dead letters one load job each; gate_decisions one staging table, one
    # load job and one transaction each. No DDL outside staging, no transaction on best_bets.
    assert sum(t.endswith(f"{DATASET}.dead_letters") for t in loads) == 2, loads
    assert sum("_staging_gate_decisions_" in t for t in loads) == 2, loads
    assert len(loads) == 4 and len(scripts) == 2, (loads, scripts)
    assert all(t.startswith("_staging_gate_decisions_") for t in created), created
    assert len(created) == 2
    assert not any(m in ("create_dataset", "update_table") for m, _t in CALLS)
    assert not any("best_bets`" in s or "best_bets_history" in s for s in scripts)

    # Rows: history idempotent on (pick_id, version); the batch's best_bets untouched by the stream.
    hist = wh.read_rows("best_bets_history", [D1])
    assert {(h.player_lookup, h.version) for h in hist} == {("alpha", 1), ("alpha", 2), ("beta", 2),
                                                            ("gamma", 2)}
    latest = wh.latest_picks([D1])  # the best_bets_latest view: one row per pick, its latest version
    assert sorted((h.player_lookup, h.version, h.change, h.line) for h in latest) == [
        ("alpha", 2, "updated", 25.5), ("beta", 2, "updated", 23.5), ("gamma", 2, "created", 26.5)]
    assert sorted((p.player_lookup, p.version) for p in wh.read_rows("best_bets", [D1])) == [
        ("beta", 1), ("gamma", 1)]
    # The restart read: the latest version of every pick (the view over the stream's history wins).
    published = published_picks(wh, [D1])[D1.isoformat()]
    assert sorted((p.player_lookup, p.version, p.line) for p in published.values()) == [
        ("alpha", 2, 25.5), ("beta", 2, 23.5), ("gamma", 2, 26.5)]
    # Grading reads best_bets through the same published view: the stream-only pick (alpha) and the
    # stream's moved lines are graded, not the batch's stale rows.
    from pipeline.grade_graph import ReadWarehouseRowsFn

    graded = list(ReadWarehouseRowsFn(wh.uri, "best_bets", [D1]).process(None))
    assert sorted((p.player_lookup, p.version, p.line) for p in graded) == [
        ("alpha", 2, 25.5), ("beta", 2, 23.5), ("gamma", 2, 26.5)]

    gates = wh.read_rows("gate_decisions", [D1])
    assert sorted((g.player_lookup, g.version) for g in gates) == [("alpha", 1), ("alpha", 2), ("beta", 2)]
    letters = wh.read_rows("dead_letters", [D1])
    assert sorted(d.error for d in letters) == ["bad message 1", "bad message 2", "bad message 3"]
    assert {d.run_id for d in letters} == {"stream-1"}
    # The exports stay immediate (written per change batch, not per window).
    assert (tmp_path / "exports" / "best-bets" / f"{D1.isoformat()}.json").exists()
    # The legacy files read the committed tables with the stream's latest versions (best_bets_latest).
    import json

    from tests.test_legacy_exports import validator_for

    today = json.loads((tmp_path / "v1" / "best-bets" / "today.json").read_text())
    assert validator_for("today.schema.json").is_valid(today)
    assert sorted((p["player_lookup"], p["line"]) for p in today["picks"]) == [
        ("alpha", 25.5), ("beta", 23.5), ("gamma", 26.5)]


def test_a_history_row_bigquery_rejects_becomes_a_dead_letter_and_the_stream_goes_on(bq, monkeypatch,
                                                                                      tmp_path):
    """Real BigQuery answers an insertAll with an invalid row with HTTP 200 and per-row ``insertErrors``;
    bqemulator answers HTTP 500 instead (retried as transient), so that answer is injected here by wrapping
    the real client's ``insert_rows_json`` for the rejected pick only; every other call reaches the
    emulator."""
    from google.cloud import bigquery

    from pipeline.io.bigquery import BigQueryWarehouse

    real = bigquery.Client.insert_rows_json

    def rejecting(self, table, rows, *args, **kwargs):
        if any(r.get("player_lookup") == "bad" for r in rows):
            error = {"reason": "invalid", "message": "Cannot convert value to INT64"}
            return [{"index": i, "errors": [error]} for i, r in enumerate(rows)
                    if r.get("player_lookup") == "bad"]
        return real(self, table, rows, *args, **kwargs)

    monkeypatch.setattr(bigquery.Client, "insert_rows_json", rejecting)
    wh = BigQueryWarehouse(PROJECT, "props_stream_rejects")
    good, bad = pick("20260222_LAL_BOS", "good"), pick("20260222_NYK_MIA", "bad", rank=2)
    script = (TestStream().advance_watermark_to(0)
              .add_elements([("changes", changes(("created", bad), minute=0))])
              .add_elements([("changes", changes(("created", good), minute=1))])
              .advance_watermark_to_infinity())
    run_sink(wh.uri, str(tmp_path / "exports"), script)
    assert [(h.player_lookup, h.version) for h in wh.latest_picks([D1])] == [("good", 1)]
    (letter,) = wh.read_rows("dead_letters", [D1])
    assert (letter.source, letter.step, letter.run_id) == ("bigquery", "stream_best_bets_history", "stream-1")
    assert "Cannot convert value to INT64" in letter.error
    assert '"player_lookup":"bad"' in letter.payload.replace(" ", "")

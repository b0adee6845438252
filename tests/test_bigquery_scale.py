"""BigQuery at scale, against the local bqemulator (real client, real SQL, Beam's real WriteToBigQuery):

- a backfill-shaped job of 14 dates commits ALL its dates in ONE transaction (the emulator's job list holds
  exactly one replace script, naming every date), a re-run leaves the same rows, a zero-row date is cleared;
- a row BigQuery rejects for good becomes a ``dead_letters`` row (error and payload clipped) and the job
  completes (``RETRY_ON_TRANSIENT_ERROR``, not Beam's default RETRY_ALWAYS);
- staging tables carry an expiry; the conflict retry is bounded.

The warehouse lives in its own dataset, never the client's default (every query names its dataset).
"""

from __future__ import annotations

import datetime as dt
import json

import apache_beam as beam
import pytest
from apache_beam.options.pipeline_options import PipelineOptions

from pipeline import schemas
from pipeline.io import cloud
from tests.emulators import bigquery_emulator
from tests.test_bigquery import pick, summary

pytestmark = pytest.mark.emulator

PROJECT = "test-project"
START = dt.date(2026, 1, 5)
DATES = [START + dt.timedelta(days=i) for i in range(14)]
OUTSIDE = START + dt.timedelta(days=20)
TABLES = ("best_bets", "filter_summary", "dead_letters")


@pytest.fixture(scope="module")
def bq():
    with bigquery_emulator(project=PROJECT) as emu:
        cloud.use_emulators(bigquery_endpoint=emu.endpoint, project=PROJECT)
        yield emu


@pytest.fixture()
def warehouse(bq, request):
    from pipeline.io.bigquery import BigQueryWarehouse

    return BigQueryWarehouse(PROJECT, f"scale_{request.node.name[:40]}")


def game(d: dt.date, n: int = 0) -> str:
    return f"{d:%Y%m%d}_G{n}_H{n}"


def run_sink(warehouse, pairs, dates, **kwargs) -> list:
    """Runs the Beam sink on FnApiRunner (the emulator patches reach in-process runners) and returns its
    output ``(date, counts)`` pairs (written to a file by the pipeline: DoFns run on pickled copies)."""
    import tempfile
    from pathlib import Path

    from pipeline.io.bigquery import WriteToBigQueryWarehouse

    with tempfile.TemporaryDirectory() as tmp:
        out_path = Path(tmp) / "out.jsonl"

        def record(outputs):
            out_path.write_text("".join(json.dumps([d.isoformat(), c]) + "\n" for d, c in outputs))

        with beam.Pipeline(options=PipelineOptions(["--runner=FnApiRunner", f"--project={PROJECT}"])) as p:
            out = (p | beam.Create(pairs)
                   | WriteToBigQueryWarehouse(warehouse.uri, dates, tables=TABLES, **kwargs))
            _ = (out | "All" >> beam.combiners.ToList() | "Record" >> beam.Map(record))
        lines = [json.loads(line) for line in out_path.read_text().splitlines()]
    return sorted((dt.date.fromisoformat(d), c) for d, c in lines)


def replace_scripts(warehouse) -> list[str]:
    """The replace transactions the emulator ran on this warehouse's dataset (its job history)."""
    marker = f"`{PROJECT}.{warehouse.dataset}.best_bets`"
    scripts = []
    for job in warehouse.client.list_jobs(all_users=True):
        sql = getattr(job, "query", None) or ""
        if sql.startswith("BEGIN TRANSACTION") and f"DELETE FROM {marker}" in sql:
            scripts.append(sql)
    return scripts


def test_a_14_date_backfill_commits_in_one_transaction_and_reruns_leave_the_same_rows(warehouse):
    stale = {"best_bets": [pick(game(d, 9), f"stale{i}", d=d) for i, d in enumerate(DATES + [OUTSIDE])],
             "filter_summary": [summary(d) for d in DATES + [OUTSIDE]]}
    warehouse.replace_dates(DATES + [OUTSIDE], stale, tables=TABLES)
    empty_day = DATES[-1]  # the job has no rows for it: its stale rows must be cleared
    pairs = [("best_bets", pick(game(d, 1), f"p{i}", d=d)) for i, d in enumerate(DATES) if d != empty_day]
    pairs += [("filter_summary", summary(d, passed=3)) for d in DATES if d != empty_day]
    before = len(replace_scripts(warehouse))

    first = run_sink(warehouse, pairs, DATES)
    scripts = replace_scripts(warehouse)[before:]
    assert len(scripts) == 1, "one transaction for the whole job"
    assert all(f"DATE '{d.isoformat()}'" in scripts[0] for d in DATES)
    assert [d for d, _ in first] == DATES
    assert {c["transaction_dates"] for _, c in first} == {14}
    assert dict(first)[empty_day]["best_bets"] == 0 and dict(first)[DATES[0]]["best_bets"] == 1

    def snapshot():
        return {t: sorted(map(repr, warehouse.read_rows(t))) for t in ("best_bets", "filter_summary")}

    stored = snapshot()
    second = run_sink(warehouse, pairs, DATES)  # a re-run of the chunk
    assert snapshot() == stored and second == first
    assert len(replace_scripts(warehouse)[before:]) == 2
    picks = {(p.game_date, p.player_lookup) for p in warehouse.read_rows("best_bets")}
    assert picks == {(d, f"p{i}") for i, d in enumerate(DATES) if d != empty_day} | {(OUTSIDE, "stale14")}
    assert warehouse.read_rows("filter_summary", [empty_day]) == []
    assert warehouse.read_rows("filter_summary", [OUTSIDE]) == [summary(OUTSIDE)]  # outside the job: kept
    leftovers = [t.table_id for t in warehouse.client.list_tables(f"{PROJECT}.{warehouse.dataset}")
                 if t.table_id.startswith("_staging_")]
    assert leftovers == []


def test_protected_picks_of_every_date_are_kept_in_the_one_transaction(warehouse):
    d1, d2 = DATES[0], DATES[1]
    warehouse.replace_dates([d1, d2], {"best_bets": [pick(game(d1), "a", d=d1), pick(game(d2), "b", d=d2)]},
                            tables=TABLES)
    pairs = [("best_bets", pick(game(d1), "a", d=d1, version=2)), ("best_bets", pick(game(d2), "b", d=d2,
                                                                                      version=2))]
    run_sink(warehouse, pairs, [d1, d2], protected_pick_game_ids={d2: (game(d2),)})
    assert sorted((p.player_lookup, p.version) for p in warehouse.read_rows("best_bets")) == [
        ("a", 2), ("b", 1)]  # d2's game had started: its pick stands


def test_a_row_bigquery_rejects_becomes_a_dead_letter_and_the_job_completes(warehouse):
    d = DATES[0]
    good = pick(game(d), "good", d=d)
    bad = pick(game(d, 2), "bad", d=d)._replace(rank="not-a-number")  # INT64 column: rejected for good
    out = run_sink(warehouse, [("best_bets", good), ("best_bets", bad), ("filter_summary", summary(d))], [d])
    assert out[0][1]["rejected_rows"] == 1
    assert [p.player_lookup for p in warehouse.read_rows("best_bets", [d])] == ["good"]
    (dead,) = warehouse.read_rows("dead_letters", [d])
    assert (dead.source, dead.step, dead.run_id) == ("bigquery", "stage_best_bets", "r1")
    assert "not-a-number" in dead.error or "Cannot convert" in dead.error
    assert json.loads(dead.payload)["pick_id"] == bad.pick_id
    assert len(dead.payload) <= schemas.DEAD_LETTER_PAYLOAD_CHARS
    assert [t.table_id for t in warehouse.client.list_tables(f"{PROJECT}.{warehouse.dataset}")
            if t.table_id.startswith("_staging_")] == []


def test_a_retried_promotion_stores_the_rejected_rows_once(warehouse):
    """Dataflow may retry the promoting bundle: the DoFn is called twice with the same side input."""
    from pipeline.io.bigquery import CreateStagingFn, PromoteDatesFn, rejected_dead_letter

    d = DATES[0]
    staging = {t: f"_staging_{t}_retry" for t in TABLES}
    rejected_staging = "_staging_dead_letters_retry_rejected"
    list(CreateStagingFn(warehouse.uri, [*staging.items(), ("dead_letters", rejected_staging)]).process(None))
    dead = [rejected_dead_letter((f"{PROJECT}:{warehouse.dataset}._staging_best_bets_retry",
                                  {"pick_id": "x", "game_date": d.isoformat(), "run_id": "r1"},
                                  [{"reason": "invalid", "message": "bad"}]), staging_tables={
        v: k for k, v in staging.items()}, dates=[d])]
    fn = PromoteDatesFn(warehouse.uri, staging, TABLES, {}, rejected_staging)
    fn.setup()
    for _ in range(2):
        (out,) = list(fn.process([d.isoformat()], dead, 4))
    assert out == (d, {"best_bets": 0, "filter_summary": 0, "dead_letters": 1, "transaction_dates": 1,
                       "rejected_rows": 1})
    assert [r.step for r in warehouse.read_rows("dead_letters", [d])] == ["stage_best_bets"]


def test_rejected_rows_are_clipped_and_dated():
    from pipeline.io.bigquery import rejected_dead_letter

    row = {"pick_id": "x", "game_date": "2030-01-01", "run_id": "r9", "blob": "z" * 20_000}
    errors = [{"reason": "invalid", "message": "m" * 10_000}]
    dead = rejected_dead_letter(("p:d._staging_best_bets_t", row, errors),
                                {"_staging_best_bets_t": "best_bets"}, DATES)
    assert dead.step == "stage_best_bets" and dead.game_date == DATES[0] and dead.run_id == "r9"
    assert dead.payload == schemas.clip_text(json.dumps(row, sort_keys=True))
    assert len(dead.error) == schemas.DEAD_LETTER_PAYLOAD_CHARS and "truncated" in dead.error


def test_staging_tables_are_created_with_an_expiry(warehouse):
    """bqemulator accepts ``expirationTime`` but does not keep it, so the created table's resource is
    checked on the request side: the one ``bigquery.Table`` every staging table is created from."""
    from pipeline.io.bigquery import STAGING_TTL

    before = dt.datetime.now(dt.UTC)
    spec = warehouse.staging_table("best_bets", "_staging_best_bets_x")
    assert spec.to_api_repr()["expirationTime"]
    slack = dt.timedelta(minutes=5)
    assert before + STAGING_TTL - slack <= spec.expires <= before + STAGING_TTL + slack
    staging = warehouse.create_staging("best_bets", "expiry")
    assert [f.name for f in warehouse.client.get_table(warehouse._ref(staging)).schema] == list(
        schemas.Pick._fields)
    warehouse.drop([staging])


def test_conflict_backoff_is_bounded_and_outlasts_another_jobs_transaction():
    from pipeline.io.bigquery import TXN_BACKOFF_MAX_S, TXN_RETRY_BUDGET_S, txn_backoff_caps

    caps = txn_backoff_caps()
    assert caps[:3] == [2.0, 4.0, 8.0] and max(caps) == TXN_BACKOFF_MAX_S
    assert sum(caps) <= TXN_RETRY_BUDGET_S and sum(caps) > TXN_RETRY_BUDGET_S - TXN_BACKOFF_MAX_S
    assert sum(caps) >= 20 * 60  # far beyond the ~15 s the old 6 attempts waited


def test_a_conflicting_transaction_is_retried_and_other_errors_are_not(warehouse):
    """The emulator serialises every write, so it never aborts a transaction on a conflict: the conflict is
    injected by wrapping the real client's ``query`` (the only stand-in in this file); the script itself
    runs on the emulator."""
    real_query = warehouse.client.query
    calls = {"n": 0}

    def flaky(sql, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] <= 2:
            raise RuntimeError("Transaction is aborted due to concurrent update against table x")
        return real_query(sql, *args, **kwargs)

    waits: list[float] = []
    warehouse.client.query = flaky
    try:
        attempts = warehouse._run_transaction(
            f"BEGIN TRANSACTION; DELETE FROM `{warehouse._ref('best_bets')}` WHERE FALSE; "
            "COMMIT TRANSACTION;", "test", sleep=waits.append)
        assert attempts == 3 and len(waits) == 2 and 0 <= waits[0] <= 2.0 and 0 <= waits[1] <= 4.0
        calls["n"] = 0
        with pytest.raises(Exception, match="nosuchtable|not found|Not found|does not exist"):
            warehouse._run_transaction("SELECT * FROM `nosuchproject.nosuchdataset.nosuchtable`", "test",
                                       sleep=waits.append)
    finally:
        warehouse.client.query = real_query


def _jobs(warehouse) -> dict[str, int]:
    counts: dict[str, int] = {}
    for job in warehouse.client.list_jobs(all_users=True):
        counts[job.job_type] = counts.get(job.job_type, 0) + 1
    return counts


def _tables(warehouse) -> set[str]:
    return {t.table_id for t in warehouse.client.list_tables(f"{PROJECT}.{warehouse.dataset}")}


def test_streamed_history_needs_no_load_job_ddl_or_transaction_and_the_view_serves_the_latest(warehouse):
    d = DATES[0]
    ts = dt.datetime(2026, 1, 5, 20, 0, tzinfo=dt.UTC)
    v1 = pick(game(d), "alpha", d=d)
    hist = [schemas.BestBetHistory("created", ts, *v1),
            schemas.BestBetHistory("updated", ts + dt.timedelta(minutes=1),
                                   *v1._replace(version=2, line=25.5)),
            schemas.BestBetHistory("created", ts, *pick(game(d, 3), "beta", d=d))]
    jobs, tables = _jobs(warehouse), _tables(warehouse)
    assert warehouse.append_pick_history(hist[:2]) == 2
    assert warehouse.append_pick_history(hist[1:]) == 2  # a redelivered bundle repeats version 2
    assert _jobs(warehouse).get("load", 0) == jobs.get("load", 0)  # no load job
    assert _tables(warehouse) == tables  # no staging table: no DDL
    latest = warehouse.latest_picks([d])
    assert [(h.pick_id, h.version, h.line) for h in latest] == [
        (v1.pick_id, 2, 25.5), (f"beta-{d}", 1, 24.5)]
    assert warehouse.latest_picks([DATES[1]]) == []


def test_stream_dead_letters_are_written_in_one_load_job_per_batch_and_clipped(warehouse):
    d = DATES[0]
    rows = [schemas.DeadLetter("stream", "parse", "bad json", "{x", None, d, "s1"),
            schemas.DeadLetter("stream", "parse", "bad json", "{x", None, d, "s1"),  # redelivered
            schemas.DeadLetter("stream", "score", "e" * 9_000, "p" * 9_000, None, d, "s1")]
    loads = _jobs(warehouse).get("load", 0)
    assert warehouse.append_dead_letters(rows) == 2
    assert _jobs(warehouse).get("load", 0) == loads + 1
    stored = sorted(warehouse.read_rows("dead_letters", [d]), key=lambda r: r.step)
    assert [r.step for r in stored] == ["parse", "score"]
    assert stored[1].payload == schemas.clip_text("p" * 9_000)
    assert stored[1].error == schemas.clip_text("e" * 9_000)

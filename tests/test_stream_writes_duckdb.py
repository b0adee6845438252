"""The streaming warehouse methods on DuckDB (the local twin of BigQuery's insertAll history, the
``best_bets_latest`` view and batched dead letters): same answers, so the stream can call them anywhere."""

from __future__ import annotations

import datetime as dt

from pipeline import schemas
from pipeline.io.warehouse import DuckDBWarehouse
from tests.test_bigquery import pick

D = dt.date(2026, 2, 22)
TS = dt.datetime(2026, 2, 22, 20, 0, tzinfo=dt.UTC)


def test_history_append_is_idempotent_and_latest_picks_is_one_row_per_pick(tmp_path):
    wh = DuckDBWarehouse(str(tmp_path / "w.duckdb"))
    v1 = pick("20260222_LAL_BOS", "a")
    hist = [schemas.BestBetHistory("created", TS, *v1),
            schemas.BestBetHistory("updated", TS + dt.timedelta(minutes=1),
                                   *v1._replace(version=2, line=25.5))]
    wh.append_pick_history(hist)
    wh.append_pick_history(hist[1:])  # redelivered
    assert sorted(h.version for h in wh.read_rows("best_bets_history")) == [1, 2]
    assert [(h.pick_id, h.version, h.line) for h in wh.latest_picks([D])] == [(v1.pick_id, 2, 25.5)]
    assert wh.latest_picks([D + dt.timedelta(days=1)]) == []


def test_dead_letter_batches_are_clipped_and_deduplicated(tmp_path):
    wh = DuckDBWarehouse(str(tmp_path / "w.duckdb"))
    big = schemas.DeadLetter("stream", "score", "e" * 9_000, "p" * 9_000, None, D, "s1")
    assert wh.append_dead_letters([big, big]) == 1
    (row,) = wh.read_rows("dead_letters")
    assert row.payload == schemas.clip_text("p" * 9_000) and row.error == schemas.clip_text("e" * 9_000)

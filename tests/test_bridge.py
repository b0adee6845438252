"""``props bridge`` (issue #11 item 4): rows new in the old scrapers' BigQuery tables reach a running stream.

* The read window and its SQL (pure), then the same SQL run on the BigQuery emulator against rows on
  both sides of every bound (partition dates, watermark, tie-break, a date entering the window).
* The watermarks and dead letters in a real DuckDB warehouse.
* End to end: a simulated day in the old shapes (the builders of ``tests/test_legacy_e2e.py``, plus the
  old tables' ``processed_at``) in the BigQuery emulator, ``props stream --inputs bigquery-legacy://``
  on the Pub/Sub emulator (features and box scores from the old feature store), ``props bridge --once``
  publishes the day; a second pass publishes nothing; a line move inserted into the old odds table is
  published by the next pass and moves the pick in the running stream.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from pathlib import Path
from unittest import mock

import pytest

from pipeline import schemas
from pipeline.io import bridge as br
from pipeline.io import legacy as lg
from tests.pubsub_emulator import pubsub_emulator  # noqa: F401 - the session fixture

UTC = dt.UTC
D = dt.date(2026, 2, 22)


# --------------------------------------------------------------------------------------------
# The read window (pure)
# --------------------------------------------------------------------------------------------


def test_first_pass_reads_every_date_of_the_window_in_full():
    w = br.read_window(None, D, lookback_days=1, days_ahead=1)
    assert (w.lo, w.hi) == (D - dt.timedelta(days=1), D + dt.timedelta(days=1))
    assert w.full_after < w.lo and w.wm_ts is None  # every date is "new": read in full


def test_window_runs_from_the_watermarks_date_to_today_plus_ahead_and_new_dates_in_full():
    mark = br.Watermark(ts=dt.datetime(2026, 2, 20, 23, 10, tzinfo=UTC), key="k", dates_to=D)
    w = br.read_window(mark, D, lookback_days=1, days_ahead=1)
    assert w.lo == dt.date(2026, 2, 19)  # a bridge down for two days catches up from its watermark
    assert w.hi == dt.date(2026, 2, 23) and w.full_after == D  # 02-23 enters the window: read in full
    assert (w.wm_ts, w.wm_key) == (mark.ts, "k")
    with pytest.raises(ValueError):
        br.read_window(mark, D, lookback_days=-1, days_ahead=1)


def test_window_sql_filters_partitions_and_the_watermark():
    mark = br.Watermark(ts=dt.datetime(2026, 2, 22, 20, tzinfo=UTC), key="k", dates_to=D)
    w = br.read_window(mark, D, lookback_days=1, days_ahead=1)
    sql, params = br.window_sql("p", br.BRIDGE_TABLES["odds"], w)
    values = {n: v for n, _t, v in params}
    assert "`p.nba_raw.odds_api_player_points_props`" in sql and "game_date BETWEEN @lo AND @hi" in sql
    assert "processed_at > @wm_ts" in sql and "processed_at = @wm_ts AND" in sql
    assert values["lo"] == dt.date(2026, 2, 21) and values["hi"] == dt.date(2026, 2, 23)
    assert values["full_after"] == D and values["wm_key"] == "k"
    first_sql, first = br.window_sql("p", br.BRIDGE_TABLES["odds"], br.read_window(None, D, lookback_days=1,
                                                                                      days_ahead=1))
    assert "@wm_ts" not in first_sql and {n for n, _t, _v in first} == {"lo", "hi", "full_after"}
    sql, params = br.window_sql("p", br.BRIDGE_TABLES["injuries"], w)
    assert "report_date BETWEEN @report_lo AND @hi" in sql  # the injury table's partition column
    assert dict((n, v) for n, _t, v in params)["report_lo"] == w.lo - dt.timedelta(
        days=lg.INJURY_REPORT_LOOKBACK_DAYS)
    assert "market_type = 'points'" in br.window_sql("p", br.BRIDGE_TABLES["odds_fallback"], w)[0]


@pytest.mark.parametrize("args,message", [
    (["--source", "bigquery://p.d"], "bigquery-legacy://PROJECT"),
    ([], "--source is required"),
    (["--source", "bigquery-legacy://p", "--once", "--every", "60"], "exclude each other"),
    (["--source", "bigquery-legacy://p", "--every", "0"], "--every"),
    (["--source", "bigquery-legacy://p", "--topic", "projects/p/subscriptions/x"], "projects/PROJECT/topics"),
    (["--source", "bigquery-legacy://p", "--lookback-days", "-1"], "--lookback-days"),
    (["--source", "bigquery-legacy://p", "--today", "22/02/2026"], "--today"),
])
def test_bad_options_stop_the_launch_with_the_reason(capsys, args, message):
    from pipeline.commands import bridge

    assert bridge.main(args) == 2
    assert message in capsys.readouterr().err


# --------------------------------------------------------------------------------------------
# Watermarks and dead letters in the warehouse (DuckDB)
# --------------------------------------------------------------------------------------------


def _pass(marks: dict[str, br.Watermark], counts=None) -> br.BridgePass:
    return br.BridgePass([], [], counts or {}, {}, marks)


def test_watermarks_round_trip_and_only_moves_are_appended(tmp_path):
    from pipeline.io.warehouse import open_warehouse

    wh = open_warehouse(str(tmp_path / "wh.duckdb"))
    src = "bigquery-legacy://old"
    assert br.read_watermarks(wh, src) == {}
    t1, t2 = dt.datetime(2026, 2, 22, 18, tzinfo=UTC), dt.datetime(2026, 2, 22, 19, tzinfo=UTC)
    first = {"odds": br.Watermark(t1, "b", D), "schedule": br.Watermark(None, None, D)}
    rows = br.watermark_rows(_pass(first, {"odds": br.TableCounts(5, 4, 1, 0)}), {}, src, "r1", t1)
    assert {r.source_table for r in rows} == {lg.LEGACY_TABLES["odds"], lg.LEGACY_TABLES["schedule"]}
    assert [r.rows_published for r in rows if r.source_table.endswith("props")] == [4]
    wh.append(br.WATERMARK_TABLE, rows)
    assert br.read_watermarks(wh, src) == first
    assert br.watermark_rows(_pass(first), first, src, "r2", t2) == []  # nothing moved: nothing appended
    # A later pass that appended an older position (two passes at once) never moves the watermark back.
    wh.append(br.WATERMARK_TABLE, br.watermark_rows(
        _pass({"odds": br.Watermark(t1, "a", D - dt.timedelta(days=1))}), {}, src, "r3", t2))
    wh.append(br.WATERMARK_TABLE, br.watermark_rows(
        _pass({"odds": br.Watermark(t2, "a", D)}), first, src, "r4", t2))
    now = br.read_watermarks(wh, src)
    assert now["odds"] == br.Watermark(t2, "a", D) and now["schedule"] == first["schedule"]
    assert br.read_watermarks(wh, "bigquery-legacy://other") == {}


def test_a_republished_rows_dead_letter_is_written_once(tmp_path):
    from pipeline.io.warehouse import open_warehouse

    wh = open_warehouse(str(tmp_path / "wh.duckdb"))
    bad = br._dead("odds", "bad_id: player_lookup 'Bad Name'", {"player_lookup": "Bad Name", "game_date": D},
                   D)
    assert bad.source == "bridge" and bad.game_date == D and "odds_api_player_points_props" in bad.payload
    assert br.new_dead_letters(wh, [bad]) == [bad]
    wh.append_dead_letters([bad])
    assert br.new_dead_letters(wh, [bad]) == []
    other = bad._replace(payload=bad.payload.replace("Bad Name", "Worse"))
    assert br.new_dead_letters(wh, [bad, other]) == [other]


# --------------------------------------------------------------------------------------------
# The BigQuery emulator: the window's SQL on real tables, then the whole bridge into a running stream
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bq():
    from pipeline.io import cloud
    from tests.emulators import bigquery_emulator

    with bigquery_emulator(project="old-bridge") as emu:
        cloud.use_emulators(bigquery_endpoint=emu.endpoint, project="old-bridge")
        yield emu


def _odds(day: dt.date, player: str, arrived: dt.datetime, **kw) -> dict:
    row = {"game_id": "0022500441", "game_date": day, "home_team_abbr": "BOS", "away_team_abbr": "LAL",
           "snapshot_timestamp": arrived - dt.timedelta(seconds=30), "minutes_before_tipoff": 120,
           "bookmaker": "draftkings", "player_name": player, "player_lookup": player, "points_line": 20.5,
           "over_price": 1.91, "under_price": 1.91, "processed_at": arrived}
    row.update(kw)
    return row


@pytest.mark.emulator
def test_watermark_query_bounds_on_the_emulator(bq):
    from pipeline.io import cloud
    from tests.test_legacy_bigquery import _create

    project = "bounds-proj"
    wm = dt.datetime(2026, 2, 22, 20, 0, tzinfo=UTC)
    early, late = wm - dt.timedelta(hours=2), wm + dt.timedelta(minutes=1)
    rows = [
        _odds(D - dt.timedelta(days=2), "beforelo", late),  # before lo: outside the partitions read
        _odds(D - dt.timedelta(days=1), "lonew", late),  # lo, arrived after the watermark
        _odds(D - dt.timedelta(days=1), "loold", early),  # lo, arrived before: already published
        _odds(D, "tiea", wm),  # at the watermark's time: the tie-break decides ("tiea..." <= key)
        _odds(D, "tiez", wm),
        _odds(D + dt.timedelta(days=1), "enters", early),  # a date entering the window: read in full
        _odds(D + dt.timedelta(days=2), "afterhi", late),  # after hi
    ]
    _create(cloud.bigquery_client(project), "odds", rows, project=project)
    run = br.bigquery_runner(project)
    key = run("SELECT " + br.BRIDGE_TABLES["odds"].tiebreak + " AS k FROM "
              f"`{project}.{lg.LEGACY_TABLES['odds']}` WHERE game_date = @d AND player_lookup = 'tiea'",
              [("d", "DATE", D)])[0]["k"]
    mark = br.Watermark(ts=wm, key=key, dates_to=D)
    window = br.read_window(mark, D, lookback_days=1, days_ahead=1)
    got = run(*br.window_sql(project, br.BRIDGE_TABLES["odds"], window))
    assert sorted(r["player_lookup"] for r in got) == ["enters", "lonew", "tiez"]
    moved = br._advance(mark, got, window)
    assert moved.ts == late and moved.dates_to == D + dt.timedelta(days=1)
    again = br.read_window(moved, D, lookback_days=1, days_ahead=1)
    assert run(*br.window_sql(project, br.BRIDGE_TABLES["odds"], again)) == []  # the next pass: nothing


# -- end to end ------------------------------------------------------------------------------

DATE = dt.date(2026, 1, 7)
UNTIL = dt.datetime(2026, 1, 7, 23, 30, tzinfo=UTC)  # before the first tip-off (00:30Z): every game open
MOVE_AT = UNTIL + dt.timedelta(minutes=15)
OLD_PROJECT = "old-bridge"


def _old_shapes(season: Path) -> dict[str, list[dict]]:
    """The simulated days in the old tables' shapes (``tests/test_legacy_e2e.py``'s builder) as they stood
    at UNTIL, each row with the ``processed_at`` the old processors write, plus one unmappable odds row."""
    from tests import test_legacy_e2e as e2e

    with mock.patch.object(e2e, "DATES", [DATE - dt.timedelta(days=2), DATE - dt.timedelta(days=1), DATE]):
        tables = e2e._old_tables(season, UNTIL)
    tables["odds"] = [dict(r, processed_at=r["snapshot_timestamp"] + dt.timedelta(seconds=20))
                      for r in tables["odds"] if r["snapshot_timestamp"] <= UNTIL]
    first = next(r for r in tables["odds"] if r["game_date"] == DATE)
    tables["odds"].append(dict(first, player_lookup="Bad Name!", player_name="Bad Name"))
    tables["odds_fallback"] = [dict(r, processed_at=r["created_at"]) for r in tables["odds_fallback"]]
    tables["schedule"] = [dict(r, processed_at=dt.datetime(2026, 1, 4, 12, tzinfo=UTC))
                          for r in tables["schedule"]]
    injuries = []
    for r in tables["injuries"]:
        at = lg.injury_report_time(r["report_date"], r["report_hour"])
        if at <= UNTIL:
            injuries.append(dict(r, processed_at=at + dt.timedelta(minutes=5)))
    tables["injuries"] = injuries
    return tables


def _read(db: Path, sql: str, timeout_s: float = 60.0) -> list[dict]:
    """Reads the stream's DuckDB file, retrying while the job holds its write lock."""
    import duckdb

    from tests.test_stream_emulator import _query

    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return _query(db, sql)
        except duckdb.Error:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)


def _bridge(capsys, *args: str) -> str:
    from pipeline.commands import bridge

    code = bridge.main(list(args))
    out = capsys.readouterr()
    assert code == 0, out.err[-3000:]
    return out.out


@pytest.mark.slow
@pytest.mark.emulator
def test_bridge_feeds_a_running_stream_and_a_line_move_moves_a_pick(tmp_path, bq, pubsub_emulator,  # noqa: F811
                                                                    capsys):
    import sim
    from pipeline.io import cloud, pubsub
    from tests.pubsub_emulator import PROJECT, StreamJob
    from tests.slate_fixtures import tiny_registry
    from tests.test_legacy_bigquery import _create
    from tests.test_stream_emulator import _topics, _wait_drained

    season = tmp_path / "season"
    sim.simulate(seed=4, teams=("LAL", "BOS", "DEN", "MIA"), start="2026-01-05", days=3).write(season)
    client = cloud.bigquery_client(OLD_PROJECT)
    tables = _old_shapes(season)
    for key, rows in tables.items():
        _create(client, key, rows, project=OLD_PROJECT)

    host, topics = pubsub_emulator, _topics(pubsub_emulator)
    wh, exports = tmp_path / "stream.duckdb", tmp_path / "exports"
    source = f"bigquery-legacy://{OLD_PROJECT}"
    registry = tiny_registry().uri
    job = StreamJob(["--inputs", source, "--bigquery-endpoint", bq.endpoint, "--registry", registry,
                     "--game-date", DATE.isoformat(), "--warehouse", f"duckdb://{wh}", "--exports",
                     str(exports), "--pubsub-emulator", host, "--pubsub-project", PROJECT, "--events-topic",
                     topics["events"], "--events-subscription", topics["sub"], "--picks-changes-topic",
                     topics["changes"], "--debounce-seconds", "0.3"], tmp_path / "stream.log")
    bridge_args = ["--source", source, "--bigquery-endpoint", bq.endpoint, "--topic",
                   f"projects/{PROJECT}/topics/{topics['events']}", "--pubsub-emulator", host,
                   "--warehouse", f"duckdb://{wh}", "--today", DATE.isoformat(), "--lookback-days", "0",
                   "--days-ahead", "0", "--once"]
    try:
        job.wait_running()
        first = _bridge(capsys, *bridge_args)
        n_odds = sum(1 for r in tables["odds"] if r["game_date"] == DATE)
        assert f"odds read {n_odds} published {n_odds - 1} " in first, first  # all but the bad row
        assert " events published" in first and "bridge pass: 0 events" not in first, first
        _wait_drained(job, wh, exports, topics)
        doc = json.loads((exports / "best-bets" / f"{DATE}.json").read_text())
        assert doc["total_picks"] > 0, "the bridged day must make picks for a line move to move one"

        second = _bridge(capsys, *bridge_args)  # the watermark: nothing new
        assert "bridge pass: 0 events published" in second, second

        active = _read(wh, "SELECT pick_id, player_lookup, game_id, direction, line, line_book, version "
                           "FROM best_bets WHERE status = 'active' ORDER BY pick_id")
        pick = active[0]
        base = max((r for r in tables["odds"] if r["player_lookup"] == pick["player_lookup"]
                    and r["bookmaker"] == pick["line_book"] and r["game_date"] == DATE),
                   key=lambda r: r["snapshot_timestamp"])
        step = 2.0 if pick["direction"] == "OVER" else -2.0  # against the pick: its edge shrinks
        moved = dict(base, snapshot_timestamp=MOVE_AT, processed_at=MOVE_AT + dt.timedelta(seconds=20),
                     points_line=pick["line"] + step, minutes_before_tipoff=int(
                         (base["snapshot_timestamp"] + dt.timedelta(minutes=base["minutes_before_tipoff"])
                          - MOVE_AT).total_seconds() // 60))
        errors = client.insert_rows_json(f"{OLD_PROJECT}.{lg.LEGACY_TABLES['odds']}", [
            {k: (v.isoformat() if isinstance(v, dt.date) else v) for k, v in moved.items()}])
        assert errors == []
        # The pass that publishes the move crashes after publishing, before its watermark is written (a
        # fault injected into the watermark write: a real kill cannot be timed to land between the two).
        from pipeline.commands import bridge as bridge_command
        from pipeline.io.warehouse import DuckDBWarehouse

        real_append = DuckDBWarehouse.append

        def crash(self, table, rows):
            if table == br.WATERMARK_TABLE:
                raise OSError("killed before the watermark was written")
            return real_append(self, table, rows)

        with mock.patch.object(DuckDBWarehouse, "append", crash):
            assert bridge_command.main(bridge_args) == 1
        crashed = capsys.readouterr()
        assert "bridge pass" not in crashed.out and "watermark not moved" in crashed.err, crashed.err[-2000:]
        _wait_drained(job, wh, exports, topics)
        history = _read(wh, "SELECT version, change, line FROM best_bets_history WHERE pick_id = "
                            f"'{pick['pick_id']}' ORDER BY version")
        changes = [json.loads(m.data) for m in pubsub.pull(PROJECT, topics["csub"], max_messages=1000)]
        all_versions = _read(wh, "SELECT pick_id, version FROM best_bets_history ORDER BY pick_id, version")

        # The next pass publishes the move again (its watermark never moved), then nothing.
        fourth = _bridge(capsys, *bridge_args)
        assert "bridge pass: 1 events published" in fourth and "odds read 1 published 1" in fourth, fourth
        _wait_drained(job, wh, exports, topics)
        again = pubsub.pull(PROJECT, topics["csub"], max_messages=1000)
        versions_again = _read(wh, "SELECT pick_id, version FROM best_bets_history ORDER BY pick_id, version")
        assert "bridge pass: 0 events published" in _bridge(capsys, *bridge_args)
        marks = _read(wh, "SELECT source_table, watermark_ts FROM bridge_watermarks")
        dead = _read(wh, "SELECT source, step, error FROM dead_letters WHERE source = 'bridge'")
    finally:
        job.stop()
    print(f"bridge e2e: pick {pick['pick_id']} {pick['direction']} {pick['line']} at {pick['line_book']}, "
          f"line moved to {moved['points_line']}: history {history}")
    # The line move reached the running stream and moved the pick: a new version, announced on the
    # picks-changes topic (updated with the new line, or withdrawn when its edge fell below the floor).
    assert history[-1]["version"] > pick["version"], history
    last = history[-1]
    assert last["change"] == "withdrawn" or (
        last["change"] == "updated" and last["line"] == moved["points_line"]), history
    mine = [c for c in changes if c.get("pick_id") == pick["pick_id"]]
    assert mine and mine[-1]["change"] == last["change"], mine
    # The republished snapshot is identical to the one the stream holds: no new version, no pick change.
    assert versions_again == all_versions and again == []
    # Watermarks moved to the line move's arrival; the unmappable row is one dead letter (five passes).
    odds_marks = [m["watermark_ts"] for m in marks if m["source_table"] == lg.LEGACY_TABLES["odds"]]
    assert max(odds_marks).astimezone(UTC) == moved["processed_at"]
    assert len(dead) == 1 and dead[0]["step"] == br.MAP_STEP and "player_lookup" in dead[0]["error"]
    assert schemas.TABLES[br.WATERMARK_TABLE].partition is None


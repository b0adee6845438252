"""Old tables -> our typed rows (issue #11 item 1): the pure mappings of pipeline/io/legacy.py, on rows
shaped as legacy.md section 1 describes, typed by the project's own parser (pipeline/io/parse.py)."""

from __future__ import annotations

import datetime as dt
import decimal

import pytest

from pipeline.io import legacy as lg
from pipeline.io.parse import ParseError, parse_record
from pipeline.schemas import FEATURE_INDEX, FEATURE_NAMES

UTC = dt.UTC
D = dt.date(2026, 2, 22)


def _odds_row(**kw):
    row = {"game_id": "0022500441", "odds_api_event_id": "a" * 32, "game_date": D,
           "game_start_time": dt.datetime(2026, 2, 23, 0, 30, tzinfo=UTC), "home_team_abbr": "BOS",
           "away_team_abbr": "LAL", "snapshot_timestamp": dt.datetime(2026, 2, 22, 20, 0, tzinfo=UTC),
           "minutes_before_tipoff": 270, "bookmaker": "draftkings", "player_name": "LeBron James",
           "player_lookup": "lebronjames", "points_line": 24.5, "over_price": 1.87, "under_price": 2.10,
           "over_price_american": -114, "under_price_american": 110, "data_source": "current"}
    row.update(kw)
    return row


@pytest.mark.parametrize("decimal_price,american", [(1.87, -115), (2.10, 110), (2.0, 100), (1.5, -200),
                                                    (3.25, 225), (1.0, None), (None, None)])
def test_american_from_decimal(decimal_price, american):
    assert lg.american_from_decimal(decimal_price) == american


def test_odds_rows_map_both_game_id_forms_to_ours_and_convert_decimal_prices():
    official = parse_record("odds", lg.odds_api_record(_odds_row()))
    dated = parse_record("odds", lg.odds_api_record(_odds_row(game_id="20260222_LAL_BOS")))
    assert official.game_id == dated.game_id == "20260222_LAL_BOS"
    assert (official.over_price, official.under_price) == (-115, 110)
    assert official.book == "draftkings" and official.source_api == "odds_api" and official.line == 24.5
    assert official.snapshot_ts == dt.datetime(2026, 2, 22, 20, 0, tzinfo=UTC)


def test_in_game_snapshots_are_ignored_and_missing_prices_fall_back_to_american():
    assert lg.odds_api_record(_odds_row(minutes_before_tipoff=-12)) is None
    assert lg.odds_api_record(_odds_row(minutes_before_tipoff=0)) is not None
    rec = lg.odds_api_record(_odds_row(over_price=None, under_price=None))
    assert (rec["over_price"], rec["under_price"]) == (-114, 110)
    with pytest.raises(ParseError):  # no price at all: a dead letter, never a made-up price
        parse_record("odds", lg.odds_api_record(_odds_row(over_price=None, over_price_american=None)))


def test_bettingpros_sides_pair_points_only_with_a_game_id_from_the_schedule():
    base = {"game_date": D, "market_type": "points", "player_lookup": "jaysontatum",
            "player_name": "Jayson Tatum", "player_team": "BOS", "bookmaker": "Caesars", "points_line": 27.5,
            "is_active": True,
            "created_at": dt.datetime(2026, 2, 22, 19, 0, tzinfo=UTC)}
    rows = [dict(base, bet_side="over", odds_american=-143), dict(base, bet_side="under", odds_american=105),
            dict(base, bet_side="over", odds_american=-120, market_type="assists"),
            dict(base, bet_side="over", odds_american=-110, is_active=False, bookmaker="FanDuel")]
    recs = lg.bettingpros_records(rows, {(D, "BOS"): "20260222_LAL_BOS"})
    assert len(recs) == 1
    snap = parse_record("odds", recs[0])
    assert (snap.book, snap.over_price, snap.under_price, snap.game_id, snap.source_api) == (
        "williamhill_us", -143, 105, "20260222_LAL_BOS", "bettingpros")
    lone = lg.bettingpros_records([dict(base, bet_side="over", odds_american=-143)], {})
    with pytest.raises(ParseError):  # no game in the schedule, no under side: a dead letter with a reason
        parse_record("odds", lone[0])


def _sched(**kw):
    row = {"game_id": "0022500441", "game_code": "20260222/LALBOS", "game_date": D,
           "game_date_est": dt.datetime(2026, 2, 23, 0, 30, tzinfo=UTC), "game_status": 1,
           "game_status_text": "Scheduled", "home_team_tricode": "BOS", "away_team_tricode": "LAL",
           "data_source": "api_stats"}
    row.update(kw)
    return row


def test_schedule_status_codes_and_ids():
    ev = parse_record("schedule", lg.schedule_record(_sched()))
    assert (ev.game_id, ev.status, ev.home_team, ev.away_team) == (
        "20260222_LAL_BOS", "scheduled", "BOS", "LAL")
    assert ev.tipoff_utc == dt.datetime(2026, 2, 23, 0, 30, tzinfo=UTC) and ev.event_ts < ev.tipoff_utc
    final = parse_record("schedule", lg.schedule_record(_sched(game_status=3, game_status_text="Final")))
    assert final.status == "final" and final.event_ts > final.tipoff_utc
    assert parse_record("schedule", lg.schedule_record(_sched(game_status=2))).status == "in_progress"
    with pytest.raises(ParseError):
        parse_record("schedule", lg.schedule_record(_sched(game_status=7)))


def test_schedule_before_the_utc_fix_is_eastern_wall_time():
    old = _sched(game_date=dt.date(2025, 12, 1), game_date_est=dt.datetime(2025, 12, 1, 19, 30, tzinfo=UTC))
    assert lg.schedule_record(old)["tipoff_utc"] == dt.datetime(2025, 12, 2, 0, 30, tzinfo=UTC)  # EST = UTC-5


def test_latest_schedule_row_wins_by_status():
    rows = [_sched(data_source="cdn_static"), _sched(game_status=3, game_status_text="Final")]
    assert [r["game_status"] for r in lg.latest_schedule_rows(rows)] == [3]


def test_postponements_from_the_table_and_the_status_text():
    p = {"sport": "NBA", "game_id": "0022500441", "original_date": D, "new_date": dt.date(2026, 3, 10),
         "status": "confirmed", "detected_at": dt.datetime(2026, 2, 22, 15, 0, tzinfo=UTC)}
    ev = parse_record("schedule", lg.schedule_record(_sched(), [p]))
    assert (ev.status, ev.new_game_date, ev.event_ts) == ("postponed", dt.date(2026, 3, 10), p["detected_at"])
    cancelled = lg.schedule_record(_sched(), [dict(p, new_date=None)])
    assert cancelled["status"] == "cancelled"
    assert lg.schedule_record(_sched(), [dict(p, status="resolved")])["status"] == "scheduled"
    assert lg.schedule_record(_sched(game_status_text="Rescheduled to Jan 25"))["status"] == "postponed"


def test_a_game_past_scheduled_was_scheduled_from_its_eve():
    """The old table keeps a game's last state (MERGE): a final game also yields its earlier scheduled
    event, so a run at the decision time over a finished date sees the game as scheduled."""
    from pipeline.domain.schedule import latest_games

    final = [parse_record("schedule", r)
             for r in lg.schedule_records(_sched(game_status=3, game_status_text="Final"))]
    assert [e.status for e in final] == ["scheduled", "final"]
    assert final[0].event_ts == dt.datetime(2026, 2, 21, 5, 0, tzinfo=UTC)  # the eve, 0:00 EST
    decision = dt.datetime(2026, 2, 22, 23, 30, tzinfo=UTC)
    assert latest_games(final, decision)["20260222_LAL_BOS"].status == "scheduled"
    assert latest_games(final)["20260222_LAL_BOS"].status == "final"
    assert [r["status"] for r in lg.schedule_records(_sched())] == ["scheduled"]
    p = {"game_id": "0022500441", "original_date": D, "new_date": None, "status": "detected",
         "detected_at": dt.datetime(2026, 2, 22, 15, 0, tzinfo=UTC)}
    assert [r["status"] for r in lg.schedule_records(_sched(), [p])] == ["scheduled", "cancelled"]


def test_injury_report_time_is_the_eastern_hour_with_daylight_saving():
    row = {"report_date": D, "report_hour": 17, "game_date": D, "game_id": "20260222_LAL_BOS",
           "player_lookup": "killianhayes", "injury_status": "questionable", "reason": "Knee",
           "reason_category": "injury"}
    rep = parse_record("injuries", lg.injury_record(row))
    assert rep.report_ts == dt.datetime(2026, 2, 22, 22, 0, tzinfo=UTC)  # 5 PM EST
    summer = lg.injury_report_time(dt.date(2026, 4, 20), 17)
    assert summer == dt.datetime(2026, 4, 20, 21, 0, tzinfo=UTC)  # 5 PM EDT
    assert rep.status == "questionable" and rep.reason == "Knee"


def _feature_row(**kw):
    row = {f"feature_{i}_value": float(i) for i in range(55)}
    row.update({"player_lookup": "lebronjames", "game_date": D, "game_id": "20260222_LAL_BOS",
                "opponent_team_abbr": "BOS", "is_home": False, "feature_version": "v2_54features",
                "feature_quality_score": decimal.Decimal("91.50"), "quality_alert_level": "green",
                "matchup_quality_pct": 88.0, "default_feature_indices": [25, 41],
                "features": [0.0] * 55})
    row.update(kw)
    return row


def test_feature_columns_map_by_index_and_null_stays_missing():
    row = _feature_row(feature_25_value=None, feature_7_value=None)
    fr = parse_record("features", lg.feature_record(row))
    assert fr.features[FEATURE_INDEX["vegas_points_line"]] is None and fr.features[7] is None
    assert fr.features[FEATURE_INDEX["prop_line_delta"]] == 54.0 and len(fr.features) == len(FEATURE_NAMES)
    assert fr.team_abbr == "LAL" and fr.opponent_team_abbr == "BOS"  # away: the game id's first team
    assert fr.feature_quality_score == 91.5 and fr.default_feature_indices == (25, 41)
    assert fr.required_default_count == 0  # 25 and 41 are not required features
    assert fr.prev_game_closing_line is None  # no line (feature 25 NULL): no previous line either
    assert parse_record("features", lg.feature_record(_feature_row())).prev_game_closing_line == 25.0 - 54.0
    home = parse_record("features", lg.feature_record(_feature_row(is_home=True, opponent_team_abbr="LAL")))
    assert home.team_abbr == "BOS"
    assert parse_record("features", lg.feature_record(_feature_row(default_feature_indices=[0, 5, 41]))
                        ).required_default_count == 2


def test_box_scores_from_player_game_summary():
    row = {"player_lookup": "lebronjames", "game_date": D, "game_id": "20260222_LAL_BOS", "points": 31,
           "minutes_played": decimal.Decimal("35.5"), "is_dnp": False, "team_abbr": "LAL",
           "opponent_team_abbr": "BOS"}
    box = parse_record("box_scores", lg.box_score_record(row))
    assert (box.points, box.minutes, box.is_dnp, box.team_abbr) == (31.0, 35.5, False, "LAL")
    assert box.fg3a is None and box.fg3m is None
    shooting = parse_record("box_scores",
                            lg.box_score_record(dict(row, three_pt_attempts=7, three_pt_makes=3)))
    assert (shooting.fg3a, shooting.fg3m) == (7.0, 3.0)  # the 3pt_bounce signal's inputs
    dnp = parse_record("box_scores", lg.box_score_record(dict(row, points=None, minutes_played=None,
                                                               is_dnp=True)))
    assert dnp.points is None and dnp.is_dnp


# -- the reader's assembly (fallback, postponements, versions), on an in-memory fetch ------------------


def _tables() -> dict[str, list[dict]]:
    other_day = D + dt.timedelta(days=1)
    return {
        "odds": [_odds_row(), _odds_row(minutes_before_tipoff=-5, points_line=30.5)],
        "odds_fallback": [
            {"game_date": D, "market_type": "points", "bet_side": side, "player_lookup": lookup,
             "player_name": lookup, "player_team": team, "bookmaker": "DraftKings", "points_line": 19.5,
             "odds_american": price, "is_active": True,
             "created_at": dt.datetime(2026, 2, 22, 18, tzinfo=UTC)}
            for lookup, team in (("lebronjames", "LAL"), ("jaylenbrown", "BOS"))
            for side, price in (("over", -110), ("under", -110))],
        "schedule": [_sched(), _sched(data_source="cdn_static"),
                     _sched(game_id="0022500450", away_team_tricode="MIA", home_team_tricode="DEN")],
        "postponements": [{"game_id": "0022500450", "original_date": D, "new_date": other_day,
                           "status": "detected", "detected_at": dt.datetime(2026, 2, 22, 12, tzinfo=UTC)}],
        "injuries": [{"report_date": D, "report_hour": 13, "game_date": D, "player_lookup": "lebronjames",
                      "injury_status": "probable", "reason": "Ankle"}],
        "features": [_feature_row(feature_version="v2_39features"), _feature_row(feature_3_value=None)],
        "box_scores": [{"player_lookup": "lebronjames", "game_date": D, "game_id": "20260222_LAL_BOS",
                        "points": 28, "minutes_played": 34.0, "is_dnp": False, "team_abbr": "LAL"}],
    }


def _fetch(tables):
    calls = []

    def query(project, key, dates):
        calls.append((project, key, tuple(dates)))
        return [dict(r) for r in tables[key]]
    return query, calls


def test_reader_uses_bettingpros_only_for_players_the_odds_api_lacks():
    query, calls = _fetch(_tables())
    rows, dead = lg.read_rows_legacy("bigquery-legacy://nba-props-platform", "odds", [D], query=query)
    assert dead == []
    by_player = {(r.player_lookup, r.source_api): r for r in rows}
    assert set(by_player) == {("lebronjames", "odds_api"), ("jaylenbrown", "bettingpros")}
    assert by_player[("lebronjames", "odds_api")].line == 24.5  # the in-game 30.5 snapshot is ignored
    assert by_player[("jaylenbrown", "bettingpros")].game_id == "20260222_LAL_BOS"
    assert {c[0] for c in calls} == {"nba-props-platform"} and all(c[2] == (D,) for c in calls)


def test_reader_schedule_dedupes_and_applies_postponements():
    query, _ = _fetch(_tables())
    rows, dead = lg.read_rows_legacy("bigquery-legacy://p", "schedule", [D], query=query)
    assert dead == [] and len(rows) == 3  # the postponed game was scheduled first (schedule_records)
    by_id = {r.game_id: r for r in sorted(rows, key=lambda r: r.event_ts)}
    assert by_id["20260222_MIA_DEN"].status == "postponed"
    assert by_id["20260222_MIA_DEN"].new_game_date == D + dt.timedelta(days=1)
    assert by_id["20260222_LAL_BOS"].status == "scheduled"


def test_reader_records_a_missing_postponements_table_as_a_dead_letter():
    tables = _tables()

    def query(project, key, dates):
        if key == "postponements":
            raise LookupError("Not found: Table p:nba_orchestration.game_postponements")
        return tables[key]
    rows, dead = lg.read_rows_legacy("bigquery-legacy://p", "schedule", [D], query=query)
    assert len(rows) == 2 and len(dead) == 1 and "postponements not applied" in dead[0].error


def test_reader_features_take_the_widest_version_and_bad_rows_become_dead_letters():
    tables = _tables()
    tables["features"].append(_feature_row(player_lookup="nobody", is_home=None))  # no team: dead letter
    query, _ = _fetch(tables)
    rows, dead = lg.read_rows_legacy("bigquery-legacy://p", "features", [D], query=query)
    assert [(r.player_lookup, r.feature_version) for r in rows] == [("lebronjames", "v2_54features")]
    assert rows[0].features[3] is None
    assert len(dead) == 1 and "team_abbr" in dead[0].error and '"player_lookup": "nobody"' in dead[0].payload


def test_reader_rejects_a_bad_uri():
    with pytest.raises(ValueError, match="bigquery-legacy://PROJECT"):
        lg.read_rows_legacy("bigquery-legacy://p.dataset", "odds", [D])

"""The old tables through plain BigQuery SQL views (issue #11 item 1): ``props legacy create-views``
creates one view per input kind over the old tables (BigQuery emulator, old dataset and table names,
old partitioning); ``--inputs bigquery://PROJECT.VIEWS`` read through the native reader then gives the
same typed rows as ``bigquery-legacy://PROJECT`` (the Python mapping), with zero dead letters. The SQL is
generated from the Python mapping's constants (pipeline/io/legacy.py), so the two cannot drift apart
unnoticed: this test compares them row for row."""

from __future__ import annotations

import datetime as dt

import pytest

from pipeline.commands import legacy as legacy_command
from pipeline.io import cloud
from pipeline.io import legacy as lg
from pipeline.io.bigquery import read_rows_bigquery
from pipeline.io.sources import read_local
from tests.emulators import bigquery_emulator
from tests.test_legacy_bigquery import _create
from tests.test_legacy_mapping import D, _feature_row, _odds_row, _sched, _tables

PROJECT = "nba-props-platform"
VIEWS = f"bigquery://{PROJECT}.props_legacy_views"
UTC = dt.UTC
LATER = D + dt.timedelta(days=2)


def _old_rows() -> dict[str, list[dict]]:
    """The mapping tests' old rows, plus the quirks the views must map the same way: a price with no
    decimal value (American column used), an even-money and a rounding price, a final game, a game of
    the old Eastern-labelled-UTC era, a cancelled game, an old report outside the injury window, an
    injury with only a reason category, a row with a NULL feature version width, and every row again on
    a later date (the date filter must leave them out)."""
    tables = _tables()
    tables["odds"] += [
        _odds_row(player_lookup="jaysontatum", player_name=None, over_price=None, under_price=2.0,
                  over_price_american=-125, points_line=27.5),
        _odds_row(player_lookup="derrickwhite", over_price=1.625, under_price=2.125, points_line=12.5,
                  bookmaker="fanduel", minutes_before_tipoff=None),
    ]
    tables["schedule"] += [
        _sched(game_id="0022500451", away_team_tricode="NYK", home_team_tricode="PHX", game_status=3,
               game_status_text="Final", game_date_est=dt.datetime(2026, 2, 22, 20, 0, tzinfo=UTC)),
        _sched(game_id="0022500452", away_team_tricode="MIL", home_team_tricode="CHI",
               game_status_text="Postponed"),
        _sched(game_id="0022500453", away_team_tricode="SAC", home_team_tricode="UTA"),
    ]
    tables["postponements"] += [
        {"game_id": "0022500453", "original_date": D, "new_date": None, "status": "confirmed",
         "detected_at": dt.datetime(2026, 2, 22, 14, tzinfo=UTC)},
        {"game_id": "0022500453", "original_date": D, "new_date": D + dt.timedelta(days=9),
         "status": "detected", "detected_at": dt.datetime(2026, 2, 22, 10, tzinfo=UTC)},
        {"game_id": "0022500451", "original_date": D, "new_date": D, "status": "resolved",
         "detected_at": dt.datetime(2026, 2, 21, 10, tzinfo=UTC)},
    ]
    tables["injuries"] += [
        {"report_date": D - dt.timedelta(days=1), "report_hour": 17, "game_date": D,
         "player_lookup": "jaysontatum", "injury_status": "QUESTIONABLE ", "reason": None,
         "reason_category": "rest"},
        {"report_date": D - dt.timedelta(days=5), "report_hour": 9, "game_date": D,
         "player_lookup": "jaysontatum", "injury_status": "out", "reason": "Knee"},
    ]
    tables["features"] += [
        _feature_row(player_lookup="jaysontatum", is_home=True, opponent_team_abbr="LAL",
                     default_feature_indices=[0, 5, 41], feature_54_value=0.125, feature_25_value=27.5),
        _feature_row(player_lookup="derrickwhite", feature_version="legacy", is_home=True),
        _feature_row(player_lookup="derrickwhite", feature_version="v2_37features", is_home=True,
                     feature_7_value=None),
    ]
    tables["box_scores"] += [
        {"player_lookup": "jaysontatum", "game_date": D, "game_id": "20260222_LAL_BOS", "points": None,
         "minutes_played": None, "is_dnp": True, "team_abbr": "BOS", "opponent_team_abbr": "LAL"},
        {"player_lookup": "derrickwhite", "game_date": D, "game_id": "20260222_LAL_BOS", "points": 14,
         "minutes_played": 31.0, "is_dnp": False, "team_abbr": "BOS", "opponent_team_abbr": "LAL",
         "three_pt_attempts": 7, "three_pt_makes": 3},  # the 3pt_bounce signal's inputs
    ]
    for key, rows in tables.items():
        extra = []
        for r in rows:
            moved = dict(r)
            for col in ("game_date", "original_date", "report_date"):
                if col in moved:
                    moved[col] = LATER
            extra.append(moved)
        tables[key] = rows + extra
    return tables


@pytest.fixture(scope="module")
def views():
    with bigquery_emulator(project=PROJECT) as emu:
        cloud.use_emulators(bigquery_endpoint=emu.endpoint, project=PROJECT)
        client = cloud.bigquery_client(PROJECT)
        for key, rows in _old_rows().items():
            _create(client, key, rows)
        code = legacy_command.main(["create-views", "--source-project", PROJECT, "--views", VIEWS,
                                    "--check-date", D.isoformat(), "--bigquery-endpoint", emu.endpoint])
        assert code == 0
        yield client


@pytest.mark.emulator
@pytest.mark.parametrize("kind", lg.VIEW_KINDS)
def test_views_give_the_rows_of_the_python_mapping(views, kind):
    through_views, dead = read_rows_bigquery(VIEWS, kind, [D])
    want, want_dead = lg.read_rows_legacy(f"bigquery-legacy://{PROJECT}", kind, [D])
    assert dead == [] and want_dead == []
    assert sorted(through_views) == sorted(want) and want
    assert {r.game_date for r in want} == {D}
    rows, dead = read_local(VIEWS, kind, [D])  # what props run reads
    assert sorted(rows) == sorted(through_views) and dead == []


@pytest.mark.emulator
def test_the_quirks_are_in_the_compared_rows(views):
    """The comparison above covers the rules, not just plain rows."""
    odds = {(r.player_lookup, r.source_api): r for r in read_rows_bigquery(VIEWS, "odds", [D])[0]}
    tatum, white = odds[("jaysontatum", "odds_api")], odds[("derrickwhite", "odds_api")]
    assert (tatum.over_price, tatum.under_price) == (-125, 100)  # no decimal price: the American column
    assert (white.over_price, white.under_price) == (-160, 113)  # 112.5 rounds half away from zero
    assert ("jaylenbrown", "bettingpros") in odds and ("lebronjames", "bettingpros") not in odds
    assert odds[("lebronjames", "odds_api")].line == 24.5  # the in-game 30.5 snapshot is not there
    events = sorted(read_rows_bigquery(VIEWS, "schedule", [D])[0], key=lambda r: r.event_ts)
    games = {r.game_id: r for r in events}  # each game's latest event
    assert games["20260222_SAC_UTA"].status == "cancelled"  # the latest detection wins
    assert games["20260222_MIL_CHI"].status == "postponed" and games["20260222_MIA_DEN"].new_game_date
    assert games["20260222_NYK_PHX"].event_ts == dt.datetime(2026, 2, 22, 23, tzinfo=UTC)
    # the final game was scheduled before (the table keeps its last state): known on its date's eve
    assert [(r.status, r.event_ts) for r in events if r.game_id == "20260222_NYK_PHX"] == [
        ("scheduled", dt.datetime(2026, 2, 21, 5, tzinfo=UTC)),
        ("final", dt.datetime(2026, 2, 22, 23, tzinfo=UTC))]
    injuries = read_rows_bigquery(VIEWS, "injuries", [D])[0]
    assert {(r.player_lookup, r.status, r.reason) for r in injuries} == {
        ("lebronjames", "probable", "Ankle"), ("jaysontatum", "questionable", "rest")}
    features = {r.player_lookup: r for r in read_rows_bigquery(VIEWS, "features", [D])[0]}
    assert features["jaysontatum"].required_default_count == 2
    assert features["jaysontatum"].prev_game_closing_line == 27.38  # 27.375, half away from zero
    assert features["derrickwhite"].feature_version == "v2_37features"
    box = {r.player_lookup: r for r in read_rows_bigquery(VIEWS, "box_scores", [D])[0]}
    assert (box["derrickwhite"].fg3a, box["derrickwhite"].fg3m) == (7.0, 3.0)  # 3pt_bounce's inputs
    assert box["jaysontatum"].fg3a is None and box["jaysontatum"].is_dnp


@pytest.mark.emulator
def test_create_views_is_idempotent_and_names_a_missing_table(views):
    before = sorted(read_rows_bigquery(VIEWS, "schedule", [D])[0])  # a view's row order is not defined
    notes = lg.create_views(PROJECT, VIEWS, check_date=D)
    assert notes == [] and sorted(read_rows_bigquery(VIEWS, "schedule", [D])[0]) == before
    views.delete_table(f"{PROJECT}.{lg.LEGACY_TABLES['postponements']}")
    try:
        notes = lg.create_views(PROJECT, VIEWS, check_date=D)
        assert notes == [f"view schedule: {PROJECT}.nba_orchestration.game_postponements does not exist, "
                         "read without it (re-run create-views once it does)"]
        games = {r.game_id: r.status for r in sorted(read_rows_bigquery(VIEWS, "schedule", [D])[0],
                                                     key=lambda r: r.event_ts)}
        assert games["20260222_SAC_UTA"] == "scheduled"  # no postponement applied, and said so
    finally:
        _create(views, "postponements", _old_rows()["postponements"])
        lg.create_views(PROJECT, VIEWS, check_date=D)


@pytest.mark.slow
@pytest.mark.emulator
def test_views_over_a_simulated_slate_in_the_old_shapes(tmp_path):
    """The end-to-end test's old-shape tables (simulated season, official game ids, decimal prices,
    Eastern report hours, an in-game snapshot): every kind over six dates, views == Python mapping."""
    import sim
    from pipeline.io.files import read_rows_local
    from tests.test_legacy_e2e import DATES, GAME_DATE, _hour_slots, _old_tables

    season = tmp_path / "season"
    sim.simulate(seed=11, teams=("LAL", "BOS", "DEN", "MIA", "NYK", "PHX"), start="2026-01-10",
                 days=6).write(season)
    _hour_slots(season)
    tipoffs = [e.tipoff_utc for e in read_rows_local(str(season), "schedule", [GAME_DATE])[0]]
    project, views = "old-props", "bigquery://old-props.views"
    with bigquery_emulator(project=project) as emu:
        cloud.use_emulators(bigquery_endpoint=emu.endpoint, project=project)
        client = cloud.bigquery_client(project)
        for key, rows in _old_tables(season, min(tipoffs) - dt.timedelta(hours=1)).items():
            _create(client, key, rows, project=project)
        assert lg.create_views(project, views, check_date=GAME_DATE) == []
        for kind in lg.VIEW_KINDS:
            got, dead = read_rows_bigquery(views, kind, DATES)
            want, want_dead = lg.read_rows_legacy(f"bigquery-legacy://{project}", kind, DATES)
            assert dead == want_dead == [], kind
            assert sorted(got) == sorted(want) and want, kind

"""End to end over a simulated season written in the old system's shapes (``props simulate --format
legacy``, :mod:`sim.legacy`): the files are loaded into the BigQuery emulator under their old dataset and
table names (schema and partitioning from the writer's manifest), then ``props run --inputs
bigquery-legacy://PROJECT`` and ``props run`` over the native files of the same simulation give the same
predictions, gate decisions and picks, with zero dead letters on both sides.

The season (8 teams, 2025-12-22 .. 2025-12-28) crosses both dates legacy.md gives: the schedule's Eastern
tip-off times labelled UTC before 2025-12-23 and the Odds API's official game ids from 2025-12-28. It is
run on 2025-12-22 (old forms) and 2025-12-28 (new forms; the injected postponement). The models are the
crafted fixture's real CatBoost models (trained to 2025-12-15, so eligible on both dates; their prediction
tracks ``points_avg_last_5``), which give picks on this season where the sample models give none: a
comparison of two empty pick lists would prove nothing, so the pick date must have at least two.

Quirks checked on the way: both game id forms in the loaded odds table, decimal prices next to truncated
American ones, Eastern report hours, NULL feature values, in-game snapshots (present in the table, not
read), the postponed game (no predictions on either side) and the BettingPros-only player (a prediction
with its line on both sides, read from BettingPros on the legacy side)."""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import json
from pathlib import Path

import duckdb
import pytest

import sim
from pipeline.commands import run as run_command
from pipeline.domain.schedule import latest_games
from pipeline.io import cloud
from pipeline.io import legacy as lg
from pipeline.io.files import read_rows_local
from sim import cli as sim_cli
from sim.legacy import ODDS_OFFICIAL_ID_SINCE, write_legacy
from tests import crafted
from tests.emulators import bigquery_emulator

pytestmark = [pytest.mark.slow, pytest.mark.emulator]

PROJECT = "old-props"
URI = f"bigquery-legacy://{PROJECT}"
SEED, TEAMS = 11, ("LAL", "BOS", "DEN", "MIA", "NYK", "PHX", "GSW", "CHI")
START, DAYS = dt.date(2025, 12, 22), 7
OLD_FORMS_DATE, PICK_DATE = dt.date(2025, 12, 22), dt.date(2025, 12, 28)
OFFICIAL = r"REGEXP_CONTAINS(game_id, r'^00225[0-9]{5}$')"
DATE_BASED = r"REGEXP_CONTAINS(game_id, r'^[0-9]{8}_[A-Z]{3}_[A-Z]{3}$')"


def _load(client, folder: Path) -> dict:
    """Creates every old table of the writer's manifest (schema, partitioning) and loads its file."""
    from google.cloud import bigquery

    manifest = json.loads((folder / "manifest.json").read_text())
    for name, spec in manifest["tables"].items():
        dataset = name.split(".")[0]
        client.create_dataset(bigquery.Dataset(f"{PROJECT}.{dataset}"), exists_ok=True)
        schema = [bigquery.SchemaField(f["name"], f["type"], mode=f["mode"]) for f in spec["schema"]]
        table = bigquery.Table(f"{PROJECT}.{name}", schema=schema)
        if spec["partition_field"]:
            table.time_partitioning = bigquery.TimePartitioning(
                type_=bigquery.TimePartitioningType.DAY, field=spec["partition_field"]
            )
            table.require_partition_filter = spec["require_partition_filter"]
        client.create_table(table)
        config = bigquery.LoadJobConfig(
            source_format=bigquery.SourceFormat.NEWLINE_DELIMITED_JSON, schema=schema
        )
        with open(folder / spec["file"], "rb") as fh:
            client.load_table_from_file(fh, table, job_config=config).result()
    return manifest


@pytest.fixture(scope="module")
def season(tmp_path_factory):
    """The native files and the old tables (in the emulator) of one simulation, and a registry."""
    work = tmp_path_factory.mktemp("legacy-sim")
    s = sim.simulate(seed=SEED, teams=TEAMS, start=START.isoformat(), days=DAYS)
    s.write(work / "native")
    write_legacy(s, work / "legacy", postpone_on=PICK_DATE)
    registry = crafted.registry()
    with bigquery_emulator(project=PROJECT) as emu:
        cloud.use_emulators(bigquery_endpoint=emu.endpoint, project=PROJECT)
        client = cloud.bigquery_client(PROJECT)
        manifest = _load(client, work / "legacy")
        yield {
            "work": work,
            "sim": s,
            "manifest": manifest,
            "registry": registry,
            "emu": emu,
            "client": client,
        }


def _query(season, sql: str) -> list[tuple]:
    return [tuple(r.values()) for r in season["client"].query(sql).result()]


def test_the_loaded_old_tables_carry_every_quirk(season):
    m, odds = season["manifest"], f"`{PROJECT}.nba_raw.odds_api_player_points_props`"
    # official ids in the schedule; in the odds from 2025-12-28 only, the date-based form before
    forms = _query(
        season,
        f"SELECT game_date >= '{ODDS_OFFICIAL_ID_SINCE}', COUNTIF({OFFICIAL}), "
        f"COUNTIF({DATE_BASED}), COUNT(*) FROM {odds} GROUP BY 1 ORDER BY 1",
    )
    assert [(new, n_off == n if new else n_date == n) for new, n_off, n_date, n in forms] == [
        (False, True),
        (True, True),
    ]
    assert _query(season, f"SELECT COUNTIF(NOT {OFFICIAL}) FROM `{PROJECT}.nba_raw.nbac_schedule`") == [(0,)]
    for table in (
        "nba_predictions.ml_feature_store_v2",
        "nba_raw.nbac_injury_report",
        "nba_analytics.player_game_summary",
    ):
        assert _query(season, f"SELECT COUNTIF(NOT {DATE_BASED}) FROM `{PROJECT}.{table}`") == [(0,)], table
    # decimal prices beside the truncating American columns (1.87 -> -114)
    prices = _query(
        season,
        f"SELECT COUNTIF(over_price = 1.87), COUNTIF(over_price = 1.87 AND "
        f"over_price_american = -114), COUNTIF(over_price BETWEEN 1.01 AND 4.0) FROM {odds}",
    )
    assert prices[0][0] == prices[0][1] > 0 and prices[0][2] > 1000
    # in-game snapshots: negative minutes before tip-off, a snapshot after the tip
    in_game = _query(
        season,
        f"SELECT COUNT(*), COUNTIF(snapshot_timestamp > game_start_time) FROM {odds} "
        "WHERE minutes_before_tipoff < 0",
    )
    assert in_game == [(m["quirks"]["in_game_snapshots"], m["quirks"]["in_game_snapshots"])] and in_game[0][0]
    # NULL feature values where the legacy array holds a default
    nulls = _query(
        season,
        f"SELECT COUNT(*) FROM `{PROJECT}.nba_predictions.ml_feature_store_v2` "
        "WHERE feature_25_value IS NULL AND features[OFFSET(25)] = 0.0",
    )
    assert nulls[0][0] > 0 and m["quirks"]["null_feature_values"] > 0
    # Eastern report hours: each old row's report time is its native report's hour slot (or the next)
    rows = _query(
        season,
        f"SELECT player_lookup, game_date, report_date, report_hour "
        f"FROM `{PROJECT}.nba_raw.nbac_injury_report`",
    )
    native = {}
    for r in season["sim"].injuries:
        native.setdefault((r.player_lookup, r.game_date), []).append(r.report_ts)
    for player, game_date, report_date, hour in rows:
        slot = lg.injury_report_time(report_date, hour)
        assert any(
            dt.timedelta(hours=-1) < slot - ts <= dt.timedelta(hours=1) for ts in native[(player, game_date)]
        ), (player, game_date, report_date, hour)
    # the postponement, in the schedule and in game_postponements
    (post,) = m["quirks"]["postponed_games"]
    assert post["game_date"] == PICK_DATE.isoformat()
    assert _query(
        season,
        f"SELECT game_status, game_status_text FROM `{PROJECT}.nba_raw.nbac_schedule` "
        f"WHERE game_id = '{post['official_id']}'",
    ) == [(1, "Postponed")]
    assert _query(
        season, f"SELECT status, original_date FROM `{PROJECT}.nba_orchestration.game_postponements`"
    ) == [("confirmed", PICK_DATE)]
    # the BettingPros-only player of each date: BettingPros rows, no Odds API row before tip-off
    bp = m["quirks"]["bettingpros_only"]
    assert {q["game_date"] for q in bp} == set(m["dates"])
    for q in bp:
        where = f"game_date = '{q['game_date']}' AND player_lookup = '{q['player_lookup']}'"
        assert _query(season, f"SELECT COUNTIF(minutes_before_tipoff >= 0) FROM {odds} WHERE {where}") == [
            (0,)
        ]
        assert (
            _query(
                season,
                "SELECT COUNT(*) FROM `old-props.nba_raw.bettingpros_player_points_props` "
                f"WHERE {where} AND market_type = 'points'",
            )[0][0]
            > 0
        )


def _even_money(price: int) -> int:
    """Decimal 2.0 is both +100 and -100: even money reads back as +100."""
    return abs(price) if abs(price) == 100 else price


def _latest_status(rows, as_of: dt.datetime) -> dict[str, str]:
    out = {}
    for r in sorted(rows, key=lambda r: r.report_ts):
        if r.report_ts <= as_of:
            out[r.player_lookup] = r.status.lower()
    return out


@pytest.mark.parametrize("kind", ["odds", "injuries", "features", "box_scores", "schedule"])
def test_every_date_reads_back_as_the_native_rows(season, kind):
    """Input level, every written date: the old tables read through ``bigquery-legacy://`` give the native
    rows, up to what the old tables cannot say (sim/legacy.py): the odds' source API and even-money sign,
    the feature version text, the previous game's line of a player without a current line (the old store
    keeps it only as feature 25 - feature 54), minutes to one decimal, whole-hour injury times (compared
    as each player's status at the decision time) and the schedule's event history (compared as the games
    at the decision time)."""
    s, native = season["sim"], str(season["work"] / "native")
    dates = [dt.date.fromisoformat(d) for d in s.meta["dates"]]
    legacy, dead = lg.read_rows_legacy(URI, kind, dates)
    want, want_dead = read_rows_local(native, kind, dates)
    assert dead == want_dead == [], dead[:3]
    assert want and {r.game_date for r in legacy} == {r.game_date for r in want} == set(dates)
    injected = {p["game_id"] for p in season["manifest"]["quirks"]["postponed_games"] if not p["in_native"]}
    for d in dates:
        got, exp = [r for r in legacy if r.game_date == d], [r for r in want if r.game_date == d]
        as_of = dt.datetime.fromisoformat(s.meta["decision_ts"][d.isoformat()])
        if kind == "odds":

            def norm(rows):
                return sorted(
                    r._replace(
                        source_api="",
                        over_price=_even_money(r.over_price),
                        under_price=_even_money(r.under_price),
                    )
                    for r in rows
                )

            assert norm(got) == norm(exp), d
        elif kind == "features":

            def norm(rows):
                return sorted(
                    r._replace(
                        feature_version="",
                        prev_game_closing_line=None if r.features[25] is None else r.prev_game_closing_line,
                    )
                    for r in rows
                )

            assert norm(got) == norm(exp), d
        elif kind == "box_scores":

            def norm(rows):
                return sorted(
                    r._replace(minutes=None if r.minutes is None else round(r.minutes, 1)) for r in rows
                )

            assert norm(got) == norm(exp), d
        elif kind == "injuries":
            assert _latest_status(got, as_of) == _latest_status(exp, as_of), d
        else:
            games = latest_games(got, as_of)
            assert {g: games.pop(g).status for g in injected if g in games} == (
                {g: "postponed" for g in injected if g.startswith(f"{d:%Y%m%d}")}
            )
            assert games == latest_games(exp, as_of), d


PREDICTIONS = (
    "SELECT game_id, player_lookup, model_id, round(predicted_points, 6), line, line_book, "
    "recommendation FROM predictions"
)
GATES = "SELECT game_id, player_lookup, viable, reason, has_line, team_abbr FROM gate_decisions"
PICKS = "SELECT game_id, player_lookup, direction, line, rank FROM best_bets"


def _rows(db: Path, sql: str) -> list[tuple]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return sorted(con.execute(sql).fetchall(), key=repr)
    finally:
        con.close()


def _run(season, day: dt.date, inputs: str, name: str) -> Path:
    work = season["work"] / f"{name}-{day}"
    argv = [
        "--inputs",
        inputs,
        "--registry",
        season["registry"].uri,
        "--game-date",
        day.isoformat(),
        "--warehouse",
        str(work / "props.duckdb"),
        "--exports",
        str(work / "exports"),
    ]
    if inputs.startswith(lg.LEGACY_SCHEME):
        argv += ["--bigquery-endpoint", season["emu"].endpoint]
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = run_command.main(argv)
    assert code == 0, out.getvalue() + err.getvalue()
    return work / "props.duckdb"


@pytest.mark.parametrize("day", [OLD_FORMS_DATE, PICK_DATE], ids=str)
def test_props_run_over_the_old_tables_equals_the_native_run(season, day):
    native = _run(season, day, str(season["work"] / "native"), "native")
    legacy = _run(season, day, URI, "legacy")
    for sql in (PREDICTIONS, GATES, PICKS):
        assert _rows(legacy, sql) == _rows(native, sql), sql
    for db in (native, legacy):
        assert _rows(db, "SELECT source, step, error FROM dead_letters") == []
    preds, picks = _rows(native, PREDICTIONS), _rows(native, PICKS)
    assert preds
    if day == PICK_DATE:
        assert len(picks) >= 2, picks
    quirks = season["manifest"]["quirks"]
    # the BettingPros-only player: a prediction with a line, read from BettingPros on the legacy side
    (bp,) = [q["player_lookup"] for q in quirks["bettingpros_only"] if q["game_date"] == day.isoformat()]
    lined = _rows(
        legacy, f"SELECT line, line_book FROM predictions WHERE player_lookup = '{bp}' AND line IS NOT NULL"
    )
    assert lined and lined == _rows(
        native, f"SELECT line, line_book FROM predictions WHERE player_lookup = '{bp}' AND line IS NOT NULL"
    )
    odds, _ = lg.read_rows_legacy(URI, "odds", [day])
    assert {r.source_api for r in odds if r.player_lookup == bp} == {"bettingpros"}
    # the postponed game: no predictions, no picks (on both sides)
    for p in quirks["postponed_games"]:
        if p["game_date"] == day.isoformat():
            for db in (native, legacy):
                assert _rows(db, f"SELECT * FROM predictions WHERE game_id = '{p['game_id']}'") == []
                assert _rows(db, f"SELECT * FROM best_bets WHERE game_id = '{p['game_id']}'") == []


def test_props_simulate_format_legacy_writes_the_old_tables(tmp_path, capsys):
    """The command: one file per old table, named ``<dataset>.<table>.jsonl``, and the manifest; the same
    simulation written twice gives the same bytes."""
    argv = [
        "--seed",
        "5",
        "--teams",
        "LAL,BOS,DEN,MIA",
        "--start",
        "2025-12-27",
        "--days",
        "2",
        "--no-realism",
        "--format",
        "legacy",
    ]
    assert sim_cli.main([*argv, "--out", str(tmp_path / "a")]) == 0
    assert sim_cli.main([*argv, "--out", str(tmp_path / "b")]) == 0
    capsys.readouterr()
    names = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert names == sorted([f"{t}.jsonl" for t in lg.LEGACY_TABLES.values()] + ["manifest.json"])
    for name in names:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    manifest = json.loads((tmp_path / "a" / "manifest.json").read_text())
    assert manifest["dates"] == ["2025-12-27", "2025-12-28"]
    assert not (tmp_path / "a" / "odds").exists()  # no native files in a legacy folder

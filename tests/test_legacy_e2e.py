"""End to end over the old tables: a simulated slate written in the old system's shapes into the BigQuery
emulator (old dataset and table names, decimal prices, official game ids, Eastern report hours,
``feature_N_value`` columns, an in-game snapshot), then ``props run --inputs bigquery-legacy://PROJECT``
gives the same predictions as ``props run`` over the native files, with zero dead letters.

The old-shape rows are built here from the simulator's typed rows (``props simulate --format legacy``
does not exist yet); the schedule is the old table as it stood at the decision time (one row per game)."""

from __future__ import annotations

import datetime as dt
import itertools
import json
from pathlib import Path

import duckdb
import pytest

import sim
from pipeline.commands import run as run_command
from pipeline.domain.calendar import EASTERN
from pipeline.io import cloud
from pipeline.io.files import read_rows_local
from pipeline.schemas import FEATURE_NAMES
from tests.emulators import bigquery_emulator
from tests.slate_fixtures import tiny_registry
from tests.test_legacy_bigquery import _create

pytestmark = [pytest.mark.slow, pytest.mark.emulator]

PROJECT = "old-props"
GAME_DATE = dt.date(2026, 1, 13)
DATES = [dt.date(2026, 1, 10) + dt.timedelta(days=i) for i in range(6)]


def _decimal(american: int) -> float | None:
    """The decimal price the old table stores; None where no decimal price exists (|american| < 100, the
    simulator's planted bad prices): the old table's ``*_american`` column then carries it."""
    if abs(american) < 100:
        return None
    return 1.0 + (american / 100.0 if american > 0 else 100.0 / -american)


def _old_tables(season: Path, as_of: dt.datetime) -> dict[str, list[dict]]:
    ids = (f"00225{n:05d}" for n in itertools.count(1))
    schedule = {}
    for ev in sorted(read_rows_local(str(season), "schedule", DATES)[0], key=lambda e: e.event_ts):
        if ev.event_ts <= as_of or ev.game_id not in schedule:
            schedule[ev.game_id] = ev
    official = {gid: next(ids) for gid in sorted(schedule)}
    kinds = ("odds", "schedule", "injuries", "features", "box_scores")
    tables: dict[str, list[dict]] = {k: [] for k in kinds}
    for gid, ev in schedule.items():
        tables["schedule"].append({
            "game_id": official[gid], "game_code": f"{ev.game_date:%Y%m%d}/{ev.away_team}{ev.home_team}",
            "game_date": ev.game_date, "game_date_est": ev.tipoff_utc,
            "game_status": {"scheduled": 1, "in_progress": 2, "final": 3}[ev.status],
            "game_status_text": ev.status.title(), "home_team_tricode": ev.home_team,
            "away_team_tricode": ev.away_team, "data_source": "api_stats"})
    for o in read_rows_local(str(season), "odds", DATES)[0]:
        ev = schedule[o.game_id]
        minutes = int((ev.tipoff_utc - o.snapshot_ts).total_seconds() / 60)
        tables["odds"].append({
            "game_id": official[o.game_id], "game_date": o.game_date, "home_team_abbr": ev.home_team,
            "away_team_abbr": ev.away_team, "snapshot_timestamp": o.snapshot_ts,
            "minutes_before_tipoff": minutes, "bookmaker": o.book, "player_name": o.player_name,
            "player_lookup": o.player_lookup, "points_line": o.line, "over_price": _decimal(o.over_price),
            "under_price": _decimal(o.under_price), "over_price_american": o.over_price,
            "under_price_american": o.under_price, "data_source": "current"})
    first = tables["odds"][0]
    tables["odds"].append(dict(first, minutes_before_tipoff=-20, points_line=first["points_line"] + 9.0,
                               snapshot_timestamp=first["snapshot_timestamp"] - dt.timedelta(seconds=1)))
    # BettingPros has a line for a player the Odds API covers (so it is not used), and an off-market row.
    bp = {"game_date": first["game_date"], "market_type": "points", "bet_side": "over",
          "player_lookup": first["player_lookup"], "player_name": first["player_name"], "player_team": "LAL",
          "bookmaker": "DraftKings", "points_line": first["points_line"] + 4.0, "odds_american": -110,
          "is_active": True, "created_at": first["snapshot_timestamp"]}
    tables["odds_fallback"] = [bp, dict(bp, market_type="assists", player_lookup="someoneelse")]
    # A postponement of another date's game (resolved): read, matched on nothing.
    tables["postponements"] = [{"sport": "NBA", "game_id": "0022500999", "original_date": GAME_DATE,
                                "new_date": GAME_DATE + dt.timedelta(days=30), "status": "resolved",
                                "detected_at": as_of - dt.timedelta(days=1)}]
    for r in read_rows_local(str(season), "injuries", DATES)[0]:
        local = r.report_ts.astimezone(EASTERN)  # the old table keeps the hour slot only
        tables["injuries"].append({
            "report_date": local.date(), "report_hour": local.hour, "game_date": r.game_date,
            "player_lookup": r.player_lookup, "injury_status": r.status, "reason": r.reason or None})
    for f in read_rows_local(str(season), "features", DATES)[0]:
        row = {f"feature_{i}_value": v for i, v in enumerate(f.features)}
        line = f.features[FEATURE_NAMES.index("vegas_points_line")]
        if line is not None and f.prev_game_closing_line is not None:
            row["feature_54_value"] = line - f.prev_game_closing_line
        away, home = f.game_id.split("_")[1:]
        row.update({"player_lookup": f.player_lookup, "game_date": f.game_date, "game_id": f.game_id,
                    "opponent_team_abbr": f.opponent_team_abbr, "is_home": f.team_abbr == home,
                    "feature_version": "v2_54features", "feature_quality_score": f.feature_quality_score,
                    "quality_alert_level": f.quality_alert_level,
                    "matchup_quality_pct": f.matchup_quality_pct,
                    "default_feature_indices": list(f.default_feature_indices)})
        assert f.team_abbr in (away, home)
        tables["features"].append(row)
    for b in read_rows_local(str(season), "box_scores", DATES)[0]:
        tables["box_scores"].append({
            "player_lookup": b.player_lookup, "game_date": b.game_date, "game_id": b.game_id,
            "points": None if b.points is None else int(b.points), "minutes_played": b.minutes,
            "is_dnp": b.is_dnp, "team_abbr": b.team_abbr, "opponent_team_abbr": b.opponent_team_abbr})
    return tables


def _hour_slots(season: Path) -> None:
    """The old injury table keeps the report's Eastern hour slot only: the simulator's report times are
    put on their hour (in the native files too) so both runs see the same reports at the decision time."""
    for path in season.glob("injuries/game_date=*/part-*.jsonl"):
        lines = []
        for line in path.read_text().splitlines():
            rec = json.loads(line)
            ts = dt.datetime.fromisoformat(rec["report_ts"].replace("Z", "+00:00"))
            rec["report_ts"] = ts.replace(minute=0, second=0, microsecond=0).isoformat()
            lines.append(json.dumps(rec))
        path.write_text("\n".join(lines) + "\n")


def _rows(db: Path, sql: str) -> list[tuple]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return sorted(con.execute(sql).fetchall())
    finally:
        con.close()


PREDICTIONS = ("SELECT game_id, player_lookup, model_id, round(predicted_points, 6), line, line_book, "
               "recommendation FROM predictions")
GATES = "SELECT game_id, player_lookup, viable, reason, has_line, team_abbr FROM gate_decisions"
PICKS = "SELECT game_id, player_lookup, direction, line, rank FROM best_bets"


def test_props_run_over_the_old_tables_matches_the_native_files(tmp_path, capsys):
    season = tmp_path / "season"
    sim.simulate(seed=11, teams=("LAL", "BOS", "DEN", "MIA", "NYK", "PHX"), start="2026-01-10",
                 days=6).write(season)
    _hour_slots(season)
    tipoffs = [e.tipoff_utc for e in read_rows_local(str(season), "schedule", [GAME_DATE])[0]]
    as_of = min(tipoffs) - dt.timedelta(hours=1)
    common = ["--registry", tiny_registry().uri, "--game-date", GAME_DATE.isoformat(),
              "--as-of", as_of.isoformat()]
    code = run_command.main(["--inputs", str(season), "--warehouse", str(tmp_path / "native.duckdb"),
                             "--exports", str(tmp_path / "native"), *common])
    assert code == 0, capsys.readouterr()
    with bigquery_emulator(project=PROJECT) as emu:
        cloud.use_emulators(bigquery_endpoint=emu.endpoint, project=PROJECT)
        client = cloud.bigquery_client(PROJECT)
        for key, rows in _old_tables(season, as_of).items():
            _create(client, key, rows, project=PROJECT)
        code = run_command.main(["--inputs", f"bigquery-legacy://{PROJECT}", "--bigquery-endpoint",
                                 emu.endpoint, "--warehouse", str(tmp_path / "legacy.duckdb"), "--exports",
                                 str(tmp_path / "legacy"), *common])
        out = capsys.readouterr()
        assert code == 0, out
    for sql in (PREDICTIONS, GATES, PICKS):
        native, legacy = _rows(tmp_path / "native.duckdb", sql), _rows(tmp_path / "legacy.duckdb", sql)
        assert legacy == native and (native or sql == PICKS), sql
    con = duckdb.connect(str(tmp_path / "legacy.duckdb"), read_only=True)
    dead = con.execute("SELECT source, step, error FROM dead_letters").fetchall()
    con.close()
    assert dead == []

"""Batch vs stream parity over every table the stream writes (TestStream, in process).

A small simulated day (4 teams, 2 games, real tiny CatBoost models) goes two ways:

* batch: ``props run --game-date D --as-of T --run-mode RETRY`` (the batch graph) into one DuckDB file;
* stream: the day's odds, schedule and injury events up to T as Pub/Sub messages through
  ``stream_graph.build_stream_pipeline`` (TestStream), plus one schedule re-announcement per game at T
  (the schedule feed re-posting its games: every player-game's clock reaches T, as batch's ``as_of``
  does), into another DuckDB file.

The stream writes versioned rows; its latest version of each player-game must equal the batch's rows in
``gate_decisions``, ``line_diagnostics``, ``predictions`` and ``consensus``, and its active picks the
batch's ``best_bets`` (modulo run_id / version / scored_at / status columns).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb
import pytest
from apache_beam.io.gcp.pubsub import PubsubMessage
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.test_stream import TestStream

from pipeline import schemas
from pipeline.domain.schedule import latest_games

pytestmark = pytest.mark.slow

DATE = dt.date(2026, 1, 7)
UNTIL = dt.datetime(2026, 1, 7, 23, 30, tzinfo=dt.UTC)  # before the first tip-off
VOLATILE = {"run_id", "version", "scored_at"}
PICK_VOLATILE = {"run_id", "version", "status", "withdrawn_reason"}


@pytest.fixture(scope="module")
def day(tmp_path_factory):
    import sim
    from tests import slate_fixtures as fx

    root = tmp_path_factory.mktemp("parity-day")
    # seed 4: a day whose batch run has a pick with the tiny models on the simulated market (seed 7 has none)
    s = sim.simulate(seed=4, teams=("LAL", "BOS", "DEN", "MIA"), start="2026-01-05", days=3)
    s.write(root / "season")
    return {"inputs": str(root / "season"), "registry": fx.tiny_registry().uri, "root": root}


def _args(day, name: str) -> list[str]:
    return ["--inputs", day["inputs"], "--registry", day["registry"], "--game-date", DATE.isoformat(),
            "--warehouse", f"duckdb://{day['root'] / name}.duckdb", "--exports", str(day["root"] / name)]


@pytest.fixture(scope="module")
def batch(day) -> Path:
    from pipeline.commands import run

    code = run.main([*_args(day, "batch"), "--as-of", UNTIL.isoformat().replace("+00:00", "Z"),
                     "--run-mode", "RETRY"])
    assert code == 0
    return day["root"] / "batch.duckdb"


def _msg(kind: str, row) -> PubsubMessage:
    from pipeline.io.pubsub import message_for

    data, attrs = message_for(kind, row)
    return PubsubMessage(data, attrs)


@pytest.fixture(scope="module")
def stream(day) -> Path:
    from pipeline.commands import common
    from pipeline.commands.stream import build_stream_plan, day_events
    from pipeline.io.warehouse import open_warehouse
    from pipeline.stream_graph import build_stream_pipeline
    from pipeline.transforms.streaming import zero_clock

    options = common.parse_options(_args(day, "stream"))
    warehouse = open_warehouse(common.warehouse_uri(options))
    plan = build_stream_plan(options, warehouse=warehouse, run_id="stream-parity")
    plan = plan._replace(clock=zero_clock, scoring_timeout_s=1000.0, subscription=None,
                         picks_changes_topic=None)
    events, _dead = day_events(day["inputs"], [DATE], until=UNTIL)
    games = latest_games(common.read_schedule(day["inputs"], [DATE])[0], UNTIL)
    heartbeat = [
        schemas.ScheduleEvent(game_id=g.game_id, game_date=g.game_date, tipoff_utc=g.tipoff_utc,
                              home_team=g.home_team, away_team=g.away_team, status=g.status,
                              new_game_date=g.new_game_date, event_ts=UNTIL)
        for g in games.values() if g.game_date == DATE
    ]
    assert heartbeat
    messages = [_msg(ev.kind, ev.row) for ev in events] + [_msg("schedule", h) for h in heartbeat]
    test_stream = (TestStream().advance_watermark_to(0).add_elements(messages)
                   .advance_processing_time(5).advance_processing_time(5).advance_watermark_to_infinity())
    options = PipelineOptions()
    options.view_as(StandardOptions).streaming = True
    with TestPipeline(options=options) as p:
        build_stream_pipeline(p, plan, messages=p | test_stream)
    return day["root"] / "stream.duckdb"


def _rows(db: Path, table: str, drop: set[str], where: str = "") -> list[dict]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        cur = con.execute(f'SELECT * FROM "{table}" {where}')
        names = [d[0] for d in cur.description]
        return [{n: v for n, v in zip(names, r, strict=True) if n not in drop} for r in cur.fetchall()]
    finally:
        con.close()


def _latest_versions(db: Path, table: str) -> list[dict]:
    """The stream's current rows: the latest version of each player-game."""
    where = ('t WHERE version = (SELECT max(g.version) FROM gate_decisions g WHERE g.game_date = t.game_date '
             "AND g.game_id = t.game_id AND g.player_lookup = t.player_lookup)")
    return _rows(db, table, VOLATILE, where)


def _key(row: dict) -> tuple:
    return tuple(sorted((k, str(v)) for k, v in row.items()))


@pytest.mark.parametrize("table", ["gate_decisions", "line_diagnostics", "predictions", "consensus"])
def test_latest_stream_versions_equal_the_batch_rows(batch, stream, table):
    expected = sorted(map(_key, _rows(batch, table, VOLATILE)))
    got = sorted(map(_key, _latest_versions(stream, table)))
    assert expected, f"the batch run wrote no {table}"
    assert got == expected


def test_stream_rows_are_versions_of_every_change(batch, stream):
    versions = _rows(stream, "gate_decisions", set())
    assert all(r["version"] >= 1 and r["scored_at"] is not None for r in versions)
    assert all(r["version"] == 0 for r in _rows(batch, "gate_decisions", set()))
    keys = [(r["game_id"], r["player_lookup"], r["version"]) for r in versions]
    assert len(keys) == len(set(keys))  # one gate decision per player-game version
    assert len(keys) > len({k[:2] for k in keys})  # the day moved: some player-games have several
    # every consensus version has the predictions of every eligible model, never some of them
    cons = _rows(stream, "consensus", set())
    preds = _rows(stream, "predictions", set())
    per_version: dict[tuple, int] = {}
    for pr in preds:
        k = (pr["game_id"], pr["player_lookup"], pr["version"])
        per_version[k] = per_version.get(k, 0) + 1
    assert cons and all(per_version[(c["game_id"], c["player_lookup"], c["version"])] == c["n_models"]
                        for c in cons)


def test_active_stream_picks_equal_the_batch_picks(batch, stream):
    expected = sorted(map(_key, _rows(batch, "best_bets", PICK_VOLATILE)))
    got = sorted(map(_key, _rows(stream, "best_bets", PICK_VOLATILE, "WHERE status = 'active'")))
    assert expected, "the batch run made no pick: the parity would compare empty lists"
    assert got == expected


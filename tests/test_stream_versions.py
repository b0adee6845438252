"""The stream's versioned rows and its hostile cases (TestStream, tiny real CatBoost models), with their
batch counterparts (TestPipeline):

* a lined player without a feature row is gated ``no_features_available`` (gate row, line book,
  diagnostics), never a dead letter;
* a viable player without a line is scored ``NO_LINE`` and never becomes a pick;
* a model whose inference fails makes the model set incomplete: one dead letter per version, never a
  consensus of the other models;
* a stray odds row of another game_date is dead-lettered alone; the player-game keeps its line and pick;
* a game id that looks like a date and is not one (``20261399_...``) is processed by its rows' dates;
* a replay of the same events into the same warehouse leaves the same rows (idempotent versions).
"""

from __future__ import annotations

import datetime as dt

import apache_beam as beam
import pytest
from apache_beam.io.gcp.pubsub import PubsubMessage
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.test_stream import TestStream
from apache_beam.testing.util import assert_that, equal_to

from pipeline.domain.context import player_contexts
from pipeline.domain.schedule import GameState
from pipeline.io.pubsub import message_for
from pipeline.policy import Policy, load_policy
from pipeline.schemas import ScheduleEvent
from pipeline.stream_graph import StreamPlan, build_stream_pipeline
from pipeline.transforms import slate
from pipeline.transforms.slate import ModelInfo
from pipeline.transforms.streaming import DateReference, zero_clock
from tests import slate_fixtures as fx

G1 = fx.GAME_ID
BAD = "20261399_NYK_MIA"  # looks like a date, is not one; its rows say 2026-02-22
POLICY = load_policy(None)
COLLECTED: dict[str, list] = {}


def sched(game_id: str, minutes_before_asof: int = 600) -> ScheduleEvent:
    away, home = game_id.split("_")[1:]
    return ScheduleEvent(game_id=game_id, game_date=fx.GAME_DATE, tipoff_utc=fx.TIPOFF, home_team=home,
                         away_team=away, status="scheduled", new_game_date=None,
                         event_ts=fx.AS_OF - dt.timedelta(minutes=minutes_before_asof))


def msg(kind: str, row) -> PubsubMessage:
    data, attrs = message_for(kind, row)
    return PubsubMessage(data, attrs)


def _collect(x, name):
    COLLECTED.setdefault(name, []).append(x)


def _models(broken: bool = False):
    registry = fx.tiny_registry()
    specs = registry.enabled()
    infos = []
    for s in specs:
        feature_set = s.feature_set
        if broken and s.family == "v9_mae":
            feature_set = "v12"  # 54 numbers for a 33-feature model: its inference fails, for real
        infos.append(ModelInfo(s.model_id, s.family, feature_set, Policy().min_edge(s.loss)))
    return specs, tuple(infos)


FEATURES = [
    fx.feature_row("alpha", avg=30.0),  # lined: a pick
    fx.feature_row("nolin", avg=30.0),  # viable, never lined: NO_LINE
    fx.feature_row("bady", avg=30.0, game_id=BAD, team="NYK", opp="MIA"),
]
STRAY = fx.odds("alpha", "fanduel", 40.5, 200)._replace(game_date=dt.date(2026, 2, 21))
EVENTS = [
    msg("schedule", sched(G1)), msg("schedule", sched(BAD)),
    msg("odds", fx.odds("alpha", "draftkings", 13.5, 300)),
    msg("odds", fx.odds("rookie", "draftkings", 9.5, 300)),  # lined, no feature row
    msg("odds", fx.odds("bady", "draftkings", 13.5, 300, game_id=BAD)),
    msg("odds", STRAY),  # a stray row of another game_date
    msg("odds", fx.odds("alpha", "draftkings", 14.5, 200)),
]


def _registry(broken: bool = False):
    """The tiny registry; ``broken``: v9_mae's entry names the v12 feature set (54 numbers for a
    33-feature model), so its inference fails for real."""
    import dataclasses

    from models.registry import Registry

    specs = fx.tiny_registry().enabled()
    if broken:
        specs = [dataclasses.replace(s, feature_set="v12") if s.family == "v9_mae" else s for s in specs]
    return Registry(specs)


def run_stream(warehouse: str | None, *, broken: bool = False) -> dict[str, list]:
    COLLECTED.clear()
    contexts = player_contexts(FEATURES, [fx.box("alpha", 2)])
    plan = StreamPlan(
        run_id="stream-versions", policy=POLICY,
        reference=DateReference(POLICY, registry=_registry(broken), features=FEATURES, contexts=contexts),
        history={}, debounce_seconds=0.5, subscription=None, picks_changes_topic=None, warehouse=warehouse,
        exports=None, clock=zero_clock,
        scoring_timeout_s=1000.0)
    stream = (TestStream().advance_watermark_to(0).add_elements(EVENTS)
              .advance_processing_time(5).advance_processing_time(5)
              .advance_processing_time(2000)  # past the scoring timeout: incomplete sets are dead letters
              .advance_watermark_to_infinity())
    options = PipelineOptions()
    options.view_as(StandardOptions).streaming = True
    with TestPipeline(options=options) as p:
        out = build_stream_pipeline(p, plan, messages=p | stream)
        for name in ("changes", "dead_letters", "gate_decisions", "line_diagnostics", "predictions",
                     "consensus"):
            _ = out[name] | f"Collect_{name}" >> beam.Map(_collect, name)
    return {k: list(v) for k, v in COLLECTED.items()}


@pytest.fixture(scope="module")
def outputs(tmp_path_factory):
    wh = tmp_path_factory.mktemp("stream-versions") / "props.duckdb"
    first = run_stream(f"duckdb://{wh}")
    return {"out": first, "warehouse": wh}


def _latest(rows, player):
    mine = [r for r in rows if r.player_lookup == player]
    top = max(r.version for r in mine)
    return [r for r in mine if r.version == top]


def test_lined_player_without_features_is_gated_not_dead_lettered(outputs):
    out = outputs["out"]
    gate = _latest(out["gate_decisions"], "rookie")
    assert [(g.viable, g.reason, g.has_line) for g in gate] == [(False, "no_features_available", True)]
    diags = _latest(out["line_diagnostics"], "rookie")
    assert [(d.code, d.book, d.line) for d in diags] == [("LINE_SOURCE", "draftkings", 9.5)]
    assert not [d for d in out.get("dead_letters", []) if "rookie" in d.payload]


def test_viable_player_without_a_line_is_scored_no_line_and_never_a_pick(outputs):
    out = outputs["out"]
    preds = _latest(out["predictions"], "nolin")
    assert len(preds) == 2 and {p.recommendation for p in preds} == {"NO_LINE"}
    (cons,) = _latest(out["consensus"], "nolin")
    assert cons.line is None and cons.n_models == 2
    assert not [c for dc in out["changes"] for c in dc.changes if c.pick.player_lookup == "nolin"]


def test_stray_odds_row_is_its_own_dead_letter_and_the_pick_stands(outputs):
    out = outputs["out"]
    # The parse boundary rejects it (its game id names another date than its game_date); the transforms'
    # own guard (linebook.split_player_game) is covered by the batch test below.
    stray = [d for d in out["dead_letters"] if d.source == "pubsub:odds" and "2026-02-21" in d.error]
    assert len(stray) == 1 and stray[0].error.startswith("game_date_mismatch") and "40.5" in stray[0].payload
    (gate,) = _latest(out["gate_decisions"], "alpha")
    assert gate.viable and gate.has_line
    (cons,) = _latest(out["consensus"], "alpha")
    assert (cons.line, cons.line_book) == (14.5, "draftkings")  # the stray fanduel 40.5 is not in the book
    picks = [c.pick for dc in out["changes"] for c in dc.changes if c.pick.player_lookup == "alpha"]
    assert picks and picks[-1].status == "active" and picks[-1].line == 14.5


def test_game_id_that_is_not_a_date_is_a_dead_letter_and_the_stream_goes_on(outputs):
    out = outputs["out"]
    bad = [d for d in out["dead_letters"] if d.step == "parse" and d.error.startswith("bad_id")]
    assert sorted(d.source for d in bad) == ["pubsub:odds", "pubsub:schedule"] and all(BAD in d.payload
                                                                                     for d in bad)
    assert not [g for g in out["gate_decisions"] if g.player_lookup == "bady"]
    (cons,) = _latest(out["consensus"], "alpha")
    assert cons.line == 14.5


def test_every_version_is_written_once_and_a_replay_duplicates_nothing(outputs):
    from pipeline.io.warehouse import open_warehouse

    wh = open_warehouse(str(outputs["warehouse"]))
    tables = ("gate_decisions", "line_diagnostics", "predictions", "consensus")

    def snapshot():
        out = {}
        for t in tables:
            df = wh.read_table(t).drop(columns=["run_id"])
            out[t] = sorted(map(str, df.astype(str).itertuples(index=False)))
        return out

    before = snapshot()
    assert all(before[t] for t in tables)
    gate = wh.query("SELECT game_id, player_lookup, version, count(*) AS n FROM gate_decisions "
                    "GROUP BY ALL HAVING count(*) > 1")
    assert gate == []
    run_stream(str(outputs["warehouse"]))  # the same events again
    assert snapshot() == before


def test_incomplete_model_set_is_a_dead_letter_never_a_partial_consensus():
    out = run_stream(None, broken=True)
    assert not out.get("consensus") and not out.get("predictions") and not out.get("changes")
    incomplete = [d for d in out["dead_letters"] if d.step == "scoring"]
    broken = next(m.model_id for m in _models(True)[1] if m.family == "v9_mae")
    assert incomplete and all("incomplete model set" in d.error and broken in d.error for d in incomplete)
    # one per scored version: alpha 3 (no line, 13.5, 14.5; its stray row never gets past the parse
    # boundary), nolin 1 (bady's game id is rejected at the parse boundary)
    assert sorted(d.payload.split("#")[0].split("|")[-1] for d in incomplete) == [
        "alpha", "alpha", "alpha", "nolin"]
    assert [d for d in out["dead_letters"] if d.step == "inference"]


def test_batch_incomplete_model_set_is_a_dead_letter_never_a_partial_consensus():
    from apache_beam.testing.util import is_not_empty

    from models.handler import build_keyed_handler
    from pipeline.domain.linebook import build_line_book

    specs, models = _models(broken=True)
    row = fx.feature_row("alpha")
    book, _ = build_line_book([fx.odds("alpha", "draftkings", 20.5)], fx.AS_OF, POLICY,
                              prev_game_closing_line=row.prev_game_closing_line)
    pg = slate.PlayerGame(key=slate.pg_key(G1, "alpha"), game_date=fx.GAME_DATE, game_id=G1,
                          player_lookup="alpha", player_name="Alpha", feature_row=row, book=book,
                          context=None, tipoff_utc=fx.TIPOFF)
    plan = fx.date_plan(tuple(m.model_id for m in models))
    with TestPipeline(options=PipelineOptions(["--runner=FnApiRunner"])) as p:
        out = p | beam.Create([pg]) | slate.ScorePlayers(models, {fx.GAME_DATE: plan},
                                                          build_keyed_handler(specs, batch_size=8), POLICY)
        assert_that(out["scored"], equal_to([]), label="NoConsensus")
        assert_that(out[slate.PREDICTIONS], equal_to([]), label="NoPredictions")
        assert_that(out[slate.DEAD] | beam.Map(lambda d: d.step), is_not_empty(), label="Dead")
        assert_that(out[slate.DEAD] | "Scoring" >> beam.Filter(lambda d: d.step == "scoring")
                    | beam.Map(lambda d: d.game_date), equal_to([fx.GAME_DATE]), label="OneIncomplete")


def test_batch_stray_odds_row_is_its_own_dead_letter_and_the_line_book_stands():
    from tests.test_transforms_slate import _join

    with TestPipeline(options=PipelineOptions(["--runner=FnApiRunner"])) as p:
        out = _join(p, [fx.odds("alpha", "draftkings", 22.5), STRAY], [fx.feature_row("alpha")])
        assert_that(out[slate.DEAD] | beam.Map(lambda d: (d.source, d.step, "2026-02-21" in d.error)),
                    equal_to([("odds", "line_book", True)]), label="Dead")
        assert_that(out.player_games | beam.Map(lambda pg: (pg.player_lookup, pg.book.line, pg.book.n_books)),
                    equal_to([("alpha", 22.5, 1)]), label="Viable")


def test_batch_game_id_that_is_not_a_date_is_scored():
    from tests.test_transforms_slate import _join

    game = GameState(game_id=BAD, game_date=fx.GAME_DATE, tipoff_utc=fx.TIPOFF, home_team="MIA",
                     away_team="NYK", status="scheduled", new_game_date=None)
    plan = fx.date_plan(())._replace(games={BAD: game})
    with TestPipeline(options=PipelineOptions(["--runner=FnApiRunner"])) as p:
        out = _join(p, [fx.odds("bady", "draftkings", 13.5, game_id=BAD)],
                    [fx.feature_row("bady", game_id=BAD, team="NYK", opp="MIA")], plan=plan)
        assert_that(out[slate.GATE] | beam.Map(lambda g: (g.game_id, g.viable)), equal_to([(BAD, True)]))



def test_latest_versions_keeps_the_highest_version_of_each_player_game():
    from pipeline.io.warehouse import latest_versions
    from pipeline.schemas import GateDecision

    def g(player, version):
        return GateDecision(fx.GAME_DATE, G1, player, "RETRY", True, "quality_sufficient", 90.0,
                            version=version)

    rows = [g("a", 0), g("a", 2), g("a", 1), g("b", 0)]
    assert sorted((r.player_lookup, r.version) for r in latest_versions(rows)) == [("a", 2), ("b", 0)]


def test_upsert_versions_replaces_a_version_per_table_and_refuses_batch_rows(tmp_path):
    from pipeline.io.warehouse import open_warehouse
    from pipeline.schemas import GateDecision, LineDiagnostic

    wh = open_warehouse(str(tmp_path / "w.duckdb"))
    ts = fx.AS_OF
    gate = GateDecision(fx.GAME_DATE, G1, "a", "RETRY", True, "quality_sufficient", 90.0, version=1,
                        scored_at=ts)
    diag = LineDiagnostic(fx.GAME_DATE, G1, "a", "LINE_SOURCE", "draftkings", 20.5, "{}", "priority_book", ts,
                          version=1, scored_at=ts)
    assert wh.upsert_versions({"gate_decisions": [gate], "line_diagnostics": [diag]}) == {
        "gate_decisions": 1, "line_diagnostics": 1}
    # the same version again (a replay), with a changed gate row: replaced, not duplicated; the
    # diagnostics of version 1 (not in this call) stay
    wh.upsert_versions({"gate_decisions": [gate._replace(reason="quality_below_threshold_85", viable=False)]})
    wh.upsert_versions({"gate_decisions": [gate._replace(version=2)]})
    rows = wh.query("SELECT version, reason FROM gate_decisions ORDER BY version")
    assert rows == [{"version": 1, "reason": "quality_below_threshold_85"},
                    {"version": 2, "reason": "quality_sufficient"}]
    assert wh.query("SELECT count(*) AS n FROM line_diagnostics") == [{"n": 1}]
    with pytest.raises(ValueError, match="version >= 1"):
        wh.upsert_versions({"gate_decisions": [gate._replace(version=0)]})
    with pytest.raises(ValueError, match="not versioned"):
        wh.upsert_versions({"best_bets": []})

"""Transform tests for pipeline/transforms/slate.py: TestPipeline + assert_that on small inline inputs.

The models are tiny real CatBoost models trained in a fixture (tests/slate_fixtures.py), not mocks.
"""

from __future__ import annotations

import datetime as dt

import apache_beam as beam
import numpy as np
import pytest
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from models.handler import build_keyed_handler
from pipeline.policy import load_policy
from pipeline.transforms import slate
from tests import slate_fixtures as fx

POLICY = load_policy(None)
OPTIONS = PipelineOptions(["--runner=FnApiRunner"])


def _join(p, odds_rows, feature_rows, injuries=(), box_rows=(), plan=None):
    plan = plan or fx.date_plan(())
    rows = (
        p | "Features" >> beam.Create(feature_rows),
        p | "Box" >> beam.Create(list(box_rows), reshuffle=False),
        p | "Inj" >> beam.Create(list(injuries), reshuffle=False),
        p | "Odds" >> beam.Create(odds_rows),
    ) | "AllRows" >> beam.Flatten() | "KeyByPlayer" >> beam.Map(lambda r: (slate.player_key(r), [r]))
    return rows | slate.JoinPlayerGames({fx.GAME_DATE: plan}, POLICY)


def test_gate_reasons_diagnostics_and_dead_letters():
    feature_rows = [
        fx.feature_row("alpha"),
        fx.feature_row("beta", alert="red"),
        fx.feature_row("gamma"),
        fx.feature_row("delta", matchup=45.0),
        fx.feature_row("eps", defaults=2),
        fx.feature_row("zeta", quality=84.9),
    ]
    odds_rows = [
        fx.odds("alpha", "fanduel", 21.5),
        fx.odds("alpha", "draftkings", 22.5),
        fx.odds("alpha", "betmgm", 150.5),  # absurd line -> LINE_SANITY_REJECT
        fx.odds("gamma", "draftkings", 18.5),
        fx.odds("ghost", "draftkings", 10.5),  # lined, no feature row -> gated no_features_available
        fx.odds("alpha", "draftkings", 20.5, game_id="20260222_NYK_CHI"),  # unknown game -> dead letter
    ]
    with TestPipeline(options=OPTIONS) as p:
        out = _join(p, odds_rows, feature_rows, injuries=[fx.injury("gamma", "OUT")])
        assert_that(
            out[slate.GATE] | beam.Map(lambda g: (g.player_lookup, g.viable, g.reason, g.has_line)),
            equal_to(
                [
                    ("alpha", True, "quality_sufficient", True),
                    ("beta", False, "hard_floor_red_alert", False),
                    ("gamma", False, "injury_out", True),
                    ("delta", False, "hard_floor_matchup_45", False),
                    ("eps", False, "zero_tolerance_defaults_2", False),
                    ("zeta", False, "quality_below_threshold_85", False),
                    ("ghost", False, "no_features_available", True),
                ]
            ),
            label="Gate",
        )
        assert_that(
            out[slate.DIAGNOSTICS]
            | "DiagAlpha" >> beam.Filter(lambda d: d.player_lookup == "alpha")
            | beam.Map(lambda d: (d.code, d.book)),
            equal_to([("LINE_SANITY_REJECT", "betmgm"), ("LINE_SOURCE", "draftkings")]),
            label="Diag",
        )
        assert_that(
            out[slate.DEAD] | beam.Map(lambda d: (d.step, d.error.split(":")[0])),
            equal_to([("universe", "unknown game '20260222_NYK_CHI'")]),
            label="Dead",
        )
        assert_that(
            out.player_games | beam.Map(lambda pg: (pg.player_lookup, pg.book.line, pg.book.line_book)),
            equal_to([("alpha", 22.5, "draftkings")]),
            label="Viable",
        )


def test_postponed_game_excludes_everyone():
    with TestPipeline(options=OPTIONS) as p:
        out = _join(
            p,
            [fx.odds("alpha", "draftkings", 20.5)],
            [fx.feature_row("alpha")],
            plan=fx.date_plan((), status="postponed"),
        )
        assert_that(out[slate.GATE] | beam.Map(lambda g: g.reason), equal_to(["game_postponed"]))


def _score(p, pgs, registry, plan):
    infos = [slate.ModelInfo(m.model_id, m.family, m.feature_set, POLICY.min_edge(m.loss))
             for m in registry.models]
    handler = build_keyed_handler(list(registry.models), batch_size=8)
    return p | beam.Create(pgs) | slate.ScorePlayers(infos, {fx.GAME_DATE: plan}, handler, POLICY)


def _player_games(players):
    from pipeline.domain.linebook import build_line_book

    out = []
    for name, line in players:
        row = fx.feature_row(name)
        snaps = [fx.odds(name, "draftkings", line)] if line is not None else []
        book, _ = build_line_book(
            snaps,
            fx.AS_OF,
            POLICY,
            prev_game_closing_line=row.prev_game_closing_line,
            key=(fx.GAME_DATE, fx.GAME_ID, name),
        )
        out.append(
            slate.PlayerGame(
                key=slate.pg_key(fx.GAME_ID, name),
                game_date=fx.GAME_DATE,
                game_id=fx.GAME_ID,
                player_lookup=name,
                player_name=name.title(),
                feature_row=row,
                book=book,
                context=None,
                tipoff_utc=fx.TIPOFF,
            )
        )
    return out


def test_score_players_every_model_and_consensus_matches_bare_predict():
    registry = fx.tiny_registry()
    ids = tuple(sorted(m.model_id for m in registry.models))
    pgs = _player_games([("alpha", 22.5), ("bravo", None), ("carl", 8.5)])
    # Expected raw predictions with a bare CatBoost predict on the same vectors.
    from catboost import CatBoostRegressor

    from pipeline.domain.scoring import build_feature_vector

    expected = {}
    for spec in registry.models:
        model = CatBoostRegressor()
        model.load_model(spec.artifact_uri)
        for pg in pgs:
            vec = build_feature_vector(pg.feature_row, pg.book, spec.feature_set)
            raw = float(model.predict(vec.reshape(1, -1))[0])
            expected[(pg.player_lookup, spec.model_id)] = round(min(max(raw, 0.0), 60.0), 1)
    with TestPipeline(options=OPTIONS) as p:
        out = _score(p, pgs, registry, fx.date_plan(ids))
        assert_that(
            out[slate.PREDICTIONS] | beam.Map(lambda r: (r.player_lookup, r.model_id, r.predicted_points)),
            equal_to([(k[0], k[1], v) for k, v in expected.items()]),
            label="Predictions",
        )
        assert_that(
            out[slate.PREDICTIONS]
            | "Recs" >> beam.Map(lambda r: (r.player_lookup, r.recommendation == "NO_LINE")),
            equal_to(
                [
                    ("alpha", False),
                    ("alpha", False),
                    ("bravo", True),
                    ("bravo", True),
                    ("carl", False),
                    ("carl", False),
                ]
            ),
            label="NoLine",
        )
        assert_that(
            out["scored"] | beam.Map(lambda s: (s.consensus.player_lookup, s.consensus.n_models)),
            equal_to([("alpha", 2), ("bravo", 2), ("carl", 2)]),
            label="Consensus",
        )
        assert_that(out[slate.DEAD], equal_to([]), label="NoDead")


def test_leakage_guard_models_not_eligible_score_nothing():
    registry = fx.tiny_registry()
    pgs = _player_games([("alpha", 22.5)])
    with TestPipeline(options=OPTIONS) as p:
        out = _score(p, pgs, registry, fx.date_plan(()))  # no model eligible on the date
        assert_that(out[slate.PREDICTIONS], equal_to([]), label="None")


def test_select_best_bets_zero_candidate_date_still_summarised():
    other = dt.date(2026, 2, 23)
    with TestPipeline(options=OPTIONS) as p:
        history = p | "H" >> beam.Create([{}])
        scored = p | beam.Create([])
        out = scored | slate.SelectBestBets([fx.GAME_DATE, other], POLICY, history)
        assert_that(out.picks, equal_to([]), label="NoPicks")
        assert_that(
            out.filter_summary | beam.Map(lambda s: (s.game_date, s.total_candidates, s.passed)),
            equal_to([(fx.GAME_DATE, 0, 0), (other, 0, 0)]),
            label="Summaries",
        )


def test_feature_vectors_one_per_model_and_set():
    pgs = _player_games([("alpha", 22.5)])
    plan = fx.date_plan(("m1", "m2", "m3"))
    models = [
        slate.ModelInfo("m1", "v12_mae", "v12", 3.0),
        slate.ModelInfo("m2", "v9_mae", "v9", 3.0),
        slate.ModelInfo("m3", "v12_noveg_mae", "v12_noveg", 3.0),
    ]
    out = list(slate.FeatureVectorsFn(models, {fx.GAME_DATE: plan}).process(pgs[0]))
    assert [(m, len(v[1])) for m, v in out] == [("m1", 54), ("m2", 33), ("m3", 50)]
    assert all(v[1].dtype == np.float32 for _, v in out)


@pytest.mark.parametrize("status", ["in_progress", "final"])
def test_started_game_is_out_of_universe(status):
    with TestPipeline(options=OPTIONS) as p:
        out = _join(
            p,
            [fx.odds("alpha", "draftkings", 20.5)],
            [fx.feature_row("alpha")],
            plan=fx.date_plan((), status=status),
        )
        assert_that(out[slate.GATE] | beam.Map(lambda g: g.reason), equal_to(["game_started"]))
        assert_that(out.player_games, equal_to([]), label="NoneViable")

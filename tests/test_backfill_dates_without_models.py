"""A backfill chunk that mixes dates with and without an eligible model: the model-less dates are not
scored (as a single-date run and the stream do not score them), named in the runs row and the summary,
and their player-games are never dead letters."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from pipeline.commands import backfill
from pipeline.io.warehouse import open_warehouse

START = dt.date(2025, 11, 19)  # tiny_registry's models train through 2025-11-20: eligible from 11-21


@pytest.fixture(autouse=True)
def _anonymous_gcp(monkeypatch):
    import google.auth
    from google.auth.credentials import AnonymousCredentials

    monkeypatch.setenv("NO_GCE_CHECK", "true")
    monkeypatch.setattr(google.auth, "default", lambda *a, **k: (AnonymousCredentials(), None))


@pytest.mark.slow
def test_dates_without_an_eligible_model_are_named_not_dead_lettered(tmp_path, capsys):
    import sim
    from tests.slate_fixtures import tiny_registry

    inputs = tmp_path / "inputs"
    season = sim.simulate(seed=7, teams=("LAL", "BOS", "DEN", "MIA"), start=START.isoformat(), days=5)
    season.write(str(inputs))
    registry = tiny_registry()
    uri = f"duckdb://{tmp_path / 'w.duckdb'}"
    end = START + dt.timedelta(days=4)
    argv = ["--start", START.isoformat(), "--end", end.isoformat(), "--inputs", str(inputs),
            "--warehouse", uri, "--exports", str(tmp_path / "exports"), "--registry", registry.uri,
            "--dates-per-pipeline", "5"]
    assert backfill.main(argv) == 0
    out = capsys.readouterr().out

    wh = open_warehouse(uri)
    scored = {r["game_date"] for r in wh.query("SELECT DISTINCT game_date FROM predictions")}
    viable = {r["game_date"] for r in wh.query("SELECT DISTINCT game_date FROM gate_decisions WHERE viable")}
    early = {d for d in viable if d <= dt.date(2025, 11, 20)}
    assert early and viable - early, "the fixture must hold dates on both sides of the training window"
    assert scored == viable - early
    dead = wh.query("SELECT error FROM dead_letters WHERE error LIKE '%incomplete model set%'")
    assert dead == []
    counts = json.loads(wh.query("SELECT counts FROM runs WHERE command = 'backfill'")[0]["counts"])
    assert set(counts["dates_without_models"]) == {str(d) for d in early}
    assert "not scored (no enabled model eligible" in out

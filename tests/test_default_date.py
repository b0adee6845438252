"""The local default date of ``props run`` / ``props stream`` and the plain "nothing will be scored" line.

The default date (no ``--inputs``, no ``--game-date``) is the busiest date after the models' training
windows: the latest ``training_end`` over the enabled models or, when none is enabled, over every
registered model (``pipeline.commands.common.trained_until``). A run that no model can score says so on
its launch line and after its summary.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os

import pytest

os.environ.setdefault("NO_GCE_CHECK", "true")

from models.registry import Registry, load_registry  # noqa: E402
from models.train import SAMPLE_DIR  # noqa: E402
from pipeline.commands import common, run, stream  # noqa: E402

D = dt.date


def _sample_specs():
    return load_registry(str(SAMPLE_DIR / "registry.json")).models


def _disabled(spec, end: dt.date):
    return dataclasses.replace(spec, training_end=end, enabled=False, status="failed_gates",
                               failed_gates=spec.failed_gates or ["edge3_hit_rate"])


def _enabled(spec, end: dt.date):
    return dataclasses.replace(spec, training_end=end, enabled=True, status="promoted", failed_gates=[])


@pytest.fixture()
def inputs(tmp_path):
    """A season folder whose manifest gives games per date: the opening week is the busiest."""
    games = {"2025-10-25": 14, "2025-12-20": 12, "2026-01-20": 9, "2026-02-03": 7}
    (tmp_path / "manifest.json").write_text(json.dumps({"games_per_date": games}))
    return str(tmp_path)


def test_trained_until_uses_enabled_models_else_every_registered_model():
    a, b, c = _sample_specs()[:3]
    none_enabled = Registry([_disabled(a, D(2025, 12, 31)), _disabled(b, D(2026, 1, 10))])
    assert common.trained_until(none_enabled) == D(2026, 1, 10)
    mixed = Registry([_enabled(a, D(2025, 12, 1)), _disabled(b, D(2026, 1, 10)),
                      _enabled(c, D(2025, 12, 31))])
    assert common.trained_until(mixed) == D(2025, 12, 31)  # a disabled model's window does not move it
    assert common.trained_until(Registry([])) is None


def test_default_date_is_after_the_training_window_even_with_no_enabled_model(inputs):
    """Before: with no enabled model the default fell back to the season's busiest date (opening week),
    inside the sample models' window, where nobody is viable."""
    a, b = _sample_specs()[:2]
    options = common.parse_options([])
    none_enabled = Registry([_disabled(a, D(2025, 12, 31)), _disabled(b, D(2025, 12, 31))])
    assert stream.served_dates(options, inputs, none_enabled) == [D(2026, 1, 20)]
    one_enabled = Registry([_disabled(a, D(2025, 12, 31)), _enabled(b, D(2026, 1, 25))])
    assert stream.served_dates(options, inputs, one_enabled) == [D(2026, 2, 3)]
    assert common.busiest_date(inputs, common.trained_until(none_enabled)) == D(2026, 1, 20)


def test_no_scoring_note_says_why_nothing_will_be_scored():
    a, b = _sample_specs()[:2]
    day = [D(2026, 1, 20)]
    assert run.no_scoring_note(Registry([_enabled(a, D(2025, 12, 31))]), ["a model"], day) is None
    all_disabled = Registry([_disabled(a, D(2025, 12, 31)), _disabled(b, D(2025, 12, 31))])
    note = run.no_scoring_note(all_disabled, [], day)
    assert note == "no enabled model (2 registered, all disabled): nothing will be scored"
    late = run.no_scoring_note(Registry([_enabled(a, D(2026, 2, 1))]), [], day)
    assert late.startswith("no enabled model eligible for 2026-01-20")
    assert late.endswith("nothing will be scored")


@pytest.mark.slow
def test_a_run_with_no_enabled_model_says_so_on_its_launch_and_summary_lines(tmp_path, capsys):
    """End to end on a small simulated day with a registry whose models are all disabled: the run
    succeeds, writes no prediction, and says plainly that nothing was scored."""
    import sim

    season = tmp_path / "season"
    sim.simulate(seed=7, teams=("LAL", "BOS", "DEN", "MIA"), start="2026-01-05", days=3).write(season)
    reg = Registry([_disabled(s, s.training_end) for s in _sample_specs()], str(tmp_path / "registry.json"))
    reg.write(reg.uri)
    code = run.main(["--inputs", str(season), "--registry", reg.uri, "--game-date", "2026-01-07",
                     "--warehouse", f"duckdb://{tmp_path}/wh.duckdb", "--exports", str(tmp_path / "exports")])
    out, err = capsys.readouterr()
    assert code == 0, err
    note = "no enabled model (6 registered, all disabled): nothing will be scored"
    assert "0 models, policy" in err and note in err  # the launch line
    summary = [line for line in out.splitlines() if line.startswith("run 2026-01-07")]
    assert "predictions 0" in summary[0] and "picks 0" in summary[0]
    assert summary[1] == f"run 2026-01-07: {note}"

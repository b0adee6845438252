"""The league simulator: a realistic synthetic NBA season in the pipeline's five input formats.

Command line: ``props simulate [--season 2025-26] [--seed N] --out DIR`` (:mod:`sim.cli`).

In-process API (fixtures for unit and pipeline tests)::

    import sim
    s = sim.simulate(seed=7, teams=("LAL", "BOS", "DEN", "MIA"), start="2026-01-05", days=10)
    s.schedule, s.odds, s.injuries, s.features, s.box_scores   # lists of pipeline.schemas rows
    s.df("odds")                                                # the same tables as pandas DataFrames
    s.write("/tmp/season")                                      # KIND/game_date=YYYY-MM-DD/part-00000.*
    sim.ensure_season("data/sim/2025-26-seed-7", "2025-26", 7)  # generate once, then reuse
    sim.realism_report(s)                                       # the realism bands of issue 2

A small league simulates from the season start (so feature rows have history) and keeps only the
requested window. ``FeatureRow.features`` holds 55 Optional[float] (None = missing).
Every line the simulator selects (the feature store's market features at the decision time, the closing
line at tip-off, the realism report) comes from the pipeline's rule,
:func:`pipeline.domain.linebook.build_line_book` with ``Policy()`` defaults (:func:`sim.odds.line_books`).
Modules: league (teams, players, schedule), engine (games, injuries, box scores, market view),
odds (multi-book snapshots, line book), features (feature-store rows), season (orchestration, files),
realism (metrics), cli.
"""

DEFAULT_SEED = 42  # the local default season (``props run`` with no --inputs; ``props train``)

from sim.realism import realism_report  # noqa: E402
from sim.season import GENERATOR_VERSION, Simulation, ensure_season, read_season, simulate  # noqa: E402

__all__ = [
    "DEFAULT_SEED",
    "GENERATOR_VERSION",
    "Simulation",
    "ensure_season",
    "read_season",
    "realism_report",
    "simulate",
]

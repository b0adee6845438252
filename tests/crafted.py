"""A crafted end-to-end fixture: two consecutive game dates whose picks are known in advance.

Unlike the simulated season (whose date may yield zero picks), every number here is chosen so that the
real default policy (domain.md section 8: edge floor 5, quality floor 85, agreement, signals, the UNDER
filters) lets a known set of players through. The models are REAL CatBoost models trained here on a
crafted frame whose label is ``points_avg_last_5`` (every other feature is constant in training, so the
trees split on nothing else): a player's prediction is his ``points_avg_last_5`` within a few tenths,
and his edge is what the fixture sets. Three MAE families (``v12_mae``, ``v9_mae``, ``v12_noveg_mae``)
give consensus and agreement something to combine; their holdout is crafted so they pass the promotion
gates honestly (status ``promoted``, no override).

Layout written by :func:`build` (contract.md "Input formats", JSON Lines for every kind)::

    ROOT/KIND/game_date=YYYY-MM-DD/part-00000.jsonl     KIND in schedule, odds, features, box_scores

Each date has two games: game A (``LAL @ BOS``, tips first) and game B (``DEN @ MIA``, 3 h later). Per
date and role (see :data:`ROLES`):

* 6 OVER players (edge +6) and 6 UNDER players (edge -6), split over both games: 12 picks;
* ``victimover`` (edge +6 OVER in game B): a pick on day 1 that LOSES (his day-1 box score is far
  under the line); with graded history and a small ``blacklist_min_graded`` he is rejected by
  ``blacklist`` on day 2;
* ``holdsmall`` (edge +1): a candidate the ``edge_floor`` rejects;
* ``newcallup`` (game B): a line but no feature row and no box score this season (a new call-up):
  domain.md section 4 gates him with ``no_features_available``;
* ``nolinekid`` (game B): a viable feature row but no odds at all: scored with ``NO_LINE``, never a pick.

:func:`broken_history_warehouse` makes the failing-history case (a warehouse whose graded history cannot
be read); :func:`policy_file` writes the default policy with a few fields changed.

Every pick player wins on day 1 except the victim, so day 1's graded history blacklists only him.
Times: the decision time :func:`as_of` is 2 h before game A; :func:`after_tipoff` is 30 min after game
A's tip-off and before game B's (game A has started, game B not).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.schemas import FEATURE_INDEX, FEATURE_NAMES

UTC = dt.UTC
DAY1 = dt.date(2026, 1, 12)
DAY2 = dt.date(2026, 1, 13)
DATES = (DAY1, DAY2)
EDGE = 6.0  # |consensus edge| of every pick player: clears the floor (5), below the UNDER cap (7)
FAMILIES = ("v12_mae", "v9_mae", "v12_noveg_mae")
TRAIN_WINDOW = (dt.date(2025, 11, 1), dt.date(2025, 12, 15))
HOLDOUT_WINDOW = (dt.date(2025, 12, 16), dt.date(2025, 12, 31))
BOOKS = ("draftkings", "fanduel")


@dataclasses.dataclass(frozen=True)
class Role:
    """One crafted player: his game (A or B), team, line and the offset of his form from the line."""

    player: str
    game: str  # "A" or "B"
    team: str
    line: float | None  # None: no odds at all (NO_LINE)
    offset: float  # points_avg_last_5 - line (the model's edge); ignored without a line
    features: bool = True  # False: no feature row (and no box score): a new call-up
    day1_points: float | None = None  # the day-1 box score's points (None: prediction = a win)


GAMES = {"A": ("LAL", "BOS"), "B": ("DEN", "MIA")}  # (away, home)
TIPOFF_HOUR_UTC = {"A": 0, "B": 3}  # the next UTC day: 19:00 and 22:00 US Eastern

ROLES: tuple[Role, ...] = (
    Role("overalpha", "A", "LAL", 22.5, +EDGE),
    Role("overbravo", "A", "BOS", 18.5, +EDGE),
    Role("overcharlie", "A", "LAL", 25.5, +EDGE),
    Role("overdelta", "B", "DEN", 20.5, +EDGE),
    Role("overecho", "B", "MIA", 16.5, +EDGE),
    Role("overfoxtrot", "B", "DEN", 27.5, +EDGE),
    Role("underalpha", "A", "BOS", 24.5, -EDGE),
    Role("underbravo", "A", "LAL", 19.5, -EDGE),
    Role("undercharlie", "A", "BOS", 28.5, -EDGE),
    Role("underdelta", "B", "MIA", 21.5, -EDGE),
    Role("underecho", "B", "DEN", 17.5, -EDGE),
    Role("underfoxtrot", "B", "MIA", 26.5, -EDGE),
    Role("victimover", "B", "DEN", 23.5, +EDGE, day1_points=9.0),
    Role("holdsmall", "A", "LAL", 21.5, +1.0),
    Role("newcallup", "B", "MIA", 14.5, 0.0, features=False),
    Role("nolinekid", "B", "DEN", None, 0.0),
)
OVER_PLAYERS = tuple(r.player for r in ROLES if r.player.startswith("over"))
UNDER_PLAYERS = tuple(r.player for r in ROLES if r.player.startswith("under"))
VICTIM = "victimover"
HOLD_PLAYER = "holdsmall"
NO_FEATURE_PLAYER = "newcallup"
NO_LINE_PLAYER = "nolinekid"
NO_LINE_AVG = 19.0  # the NO_LINE player's points_avg_last_5 (his prediction)
# Day 1 picks: 6 OVER + 6 UNDER + the victim (OVER); day 2 the same set unless the victim is blacklisted.
DAY1_PICKS = frozenset(OVER_PLAYERS + UNDER_PLAYERS + (VICTIM,))


def game_id(day: dt.date, game: str) -> str:
    away, home = GAMES[game]
    return f"{day:%Y%m%d}_{away}_{home}"


def tipoff(day: dt.date, game: str) -> dt.datetime:
    return dt.datetime.combine(day + dt.timedelta(days=1), dt.time(TIPOFF_HOUR_UTC[game]), tzinfo=UTC)


def as_of(day: dt.date) -> dt.datetime:
    """The decision time of a normal run: 2 h before the first tip-off (game A)."""
    return tipoff(day, "A") - dt.timedelta(hours=2)


def after_tipoff(day: dt.date) -> dt.datetime:
    """30 min after game A's tip-off, 2.5 h before game B's: game A has started, game B has not."""
    return tipoff(day, "A") + dt.timedelta(minutes=30)


def iso(value: dt.datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def opponent(role: Role) -> str:
    away, home = GAMES[role.game]
    return home if role.team == away else away


def avg_last_5(role: Role) -> float:
    return NO_LINE_AVG if role.line is None else role.line + role.offset


# --------------------------------------------------------------------------------------------
# Input records
# --------------------------------------------------------------------------------------------


def feature_values(avg5: float) -> dict[str, float | None]:
    """The 55 named features of a healthy starter whose recent form is ``avg5``."""
    values: dict[str, float | None] = {name: 1.0 for name in FEATURE_NAMES}
    values.update({
        "points_avg_last_5": avg5, "points_avg_last_10": avg5, "points_avg_season": avg5,
        "points_std_last_10": 3.5, "games_in_last_7_days": 3.0, "home_away": 1.0, "back_to_back": 0.0,
        "playoff_game": 0.0, "games_vs_opponent": 1.0, "minutes_avg_last_10": 32.0,
        "days_rest": 2.0, "dnp_rate": 0.0, "breakout_flag": 0.0,
    })
    return values


def feature_record(role: Role, day: dt.date) -> dict[str, Any]:
    return {
        "player_lookup": role.player, "game_id": game_id(day, role.game), "game_date": day.isoformat(),
        "team_abbr": role.team, "opponent_team_abbr": opponent(role), "feature_version": "v12_55",
        **feature_values(avg_last_5(role)),
        "feature_quality_score": 95.0, "quality_alert_level": "green", "matchup_quality_pct": 90.0,
        "required_default_count": 0, "default_feature_indices": [],
        "prev_game_closing_line": role.line,  # the line has not moved since his last game (delta 0)
    }


def odds_records(role: Role, day: dt.date) -> list[dict[str, Any]]:
    """An opening and a current snapshot per book, both at the same line (no move, no book spread)."""
    out = []
    for hours_before in (6, 3):
        for book in BOOKS:
            out.append({
                "player_lookup": role.player, "player_name": role.player.title(),
                "game_id": game_id(day, role.game), "game_date": day.isoformat(), "book": book,
                "line": role.line, "over_price": -110, "under_price": -110,
                "snapshot_ts": iso(tipoff(day, "A") - dt.timedelta(hours=hours_before)),
                "source_api": "odds_api",
            })
    return out


def schedule_records(day: dt.date) -> list[dict[str, Any]]:
    return [{
        "game_id": game_id(day, g), "game_date": day.isoformat(), "tipoff_utc": iso(tipoff(day, g)),
        "home_team": home, "away_team": away, "status": "scheduled", "new_game_date": None,
        "event_ts": iso(tipoff(day, g) - dt.timedelta(hours=30)),
    } for g, (away, home) in GAMES.items()]


def day1_points(role: Role) -> float:
    """The victim's crafted loss; every other pick player scores his prediction (a win either way)."""
    if role.day1_points is not None:
        return role.day1_points
    return avg_last_5(role)


def box_score_records(day: dt.date) -> list[dict[str, Any]]:
    """The played games of ``day`` (every player with a feature row), for grading and the next day."""
    out = []
    for role in ROLES:
        if not role.features:
            continue
        out.append({
            "player_lookup": role.player, "game_id": game_id(day, role.game), "game_date": day.isoformat(),
            "team_abbr": role.team, "points": day1_points(role), "minutes": 32.0, "is_dnp": False,
            "starter": True, "plus_minus": 4.0, "fg3a": 3.0, "fg3m": 1.0,
            "opponent_team_abbr": opponent(role),
        })
    return out


def _write(root: Path, kind: str, day: dt.date, records: list[dict[str, Any]]) -> None:
    folder = root / kind / f"game_date={day.isoformat()}"
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "part-00000.jsonl", "w", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r) + "\n")


def write_box_scores(root: Path, day: dt.date) -> None:
    """Writes ``day``'s box scores (what arrives after the games, before ``props grade``)."""
    _write(root, "box_scores", day, box_score_records(day))


def build(root: Path) -> Path:
    """Writes the schedule, odds and feature rows of both dates under ``root``; returns ``root``.

    Box scores are not written: a test writes a date's with :func:`write_box_scores` once its games are
    over (the runs of the same date never read them).
    """
    for day in DATES:
        _write(root, "schedule", day, schedule_records(day))
        _write(root, "odds", day, [rec for r in ROLES if r.line is not None for rec in odds_records(r, day)])
        _write(root, "features", day, [feature_record(r, day) for r in ROLES if r.features])
    return root


# --------------------------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------------------------


def _frame(rng: np.random.Generator, n: int, *, holdout: bool):
    """A labelled frame where the label is ``points_avg_last_5`` (every other feature is constant).

    The holdout carries a line 4 points on either side of the label (alternating), so the model is right
    on every edge-3+ bet in both directions with no vegas bias: the promotion gates pass on merit.
    """
    import pandas as pd

    avg5 = np.round(rng.uniform(6.0, 45.0, n), 1)
    cols: dict[str, Any] = {name: np.full(n, 1.0) for name in FEATURE_NAMES}
    cols["points_avg_last_5"] = avg5
    for name in ("vegas_points_line", "vegas_opening_line", "vegas_line_move", "multi_book_line_std",
                 "line_vs_season_avg", "prop_line_delta"):
        cols[name] = np.full(n, np.nan)  # market features carry no information in training
    if holdout:
        line = avg5 + np.where(np.arange(n) % 2 == 0, 4.0, -4.0)
        cols["vegas_points_line"] = line
        cols["points_avg_season"] = avg5  # scoring tiers by the player's level
    cols["points"] = avg5
    return pd.DataFrame(cols)


@functools.lru_cache(maxsize=1)
def registry():
    """Three real CatBoost models (one per family of :data:`FAMILIES`) whose prediction tracks
    ``points_avg_last_5``; trained once per process, registered in a temporary folder."""
    from models import train
    from models.registry import Registry

    assert FEATURE_INDEX["points_avg_last_5"] == 0
    out = tempfile.mkdtemp(prefix="props-crafted-models-")
    rng = np.random.default_rng(12)
    tr, ho = _frame(rng, 3000, holdout=False), _frame(rng, 400, holdout=True)
    params = train.TrainParams(iterations=300, depth=4, learning_rate=0.2, thread_count=1)
    specs = [train.train_family(fam, tr, ho, window=TRAIN_WINDOW, holdout_window=HOLDOUT_WINDOW,
                                out_dir=out, params=params) for fam in FAMILIES]
    reg = Registry(specs, f"{out}/registry.json")
    reg.write()
    return reg


def broken_history_warehouse(path: Path) -> Path:
    """A DuckDB warehouse file whose ``prediction_accuracy`` cannot be read as graded history: its ``edge``
    column is text (``abs(edge)`` does not bind), holding one graded row. Opening it as a warehouse adds
    the missing columns but keeps the incompatible one, as a hand-made or half-migrated table would."""
    import duckdb

    path.parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(path))
    try:
        con.execute("CREATE TABLE prediction_accuracy (game_date DATE, player_lookup VARCHAR, "
                    "family VARCHAR, prediction_correct BOOLEAN, edge VARCHAR)")
        con.execute("INSERT INTO prediction_accuracy VALUES "
                    "('2026-01-05', 'overalpha', 'v12_mae', false, 'n/a')")
    finally:
        con.close()
    return path


def policy_file(path: Path, **overrides: Any) -> Path:
    """The default policy with ``overrides`` (and a version naming them) written to ``path``."""
    from pipeline.policy import load_policy

    doc = json.loads(load_policy(None).to_json())
    unknown = set(overrides) - set(doc)
    if unknown:
        raise KeyError(f"not policy fields: {sorted(unknown)}")
    doc.update(overrides)
    doc["version"] = "crafted-" + "-".join(f"{k}{v}" for k, v in sorted(overrides.items()))
    path.write_text(json.dumps(doc))
    return path

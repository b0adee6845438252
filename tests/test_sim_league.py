"""Tests for sim.league on the cached full season: teams, rosters, the 1,230-game schedule, nightly
density, postponements, tip-off times and schedule status changes (issue 2).

The season is ``data/sim/2025-26-seed-42`` (generated once by :func:`sim.ensure_season` if missing).
:func:`load_kind` reads one input kind of it into a DataFrame with pyarrow (cached for the session, shared
by the other ``test_sim_*`` modules); frames are read-only for tests.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.json as pj
import pyarrow.parquet as pq
import pytest

import sim
from sim import league as L

SEASON_DIR = Path(__file__).resolve().parents[1] / "data" / "sim" / f"2025-26-seed-{sim.DEFAULT_SEED}"
ET = ZoneInfo("America/New_York")
NBA_TRICODES = {
    "ATL", "BOS", "BKN", "CHA", "CHI", "CLE", "DAL", "DEN", "DET", "GSW", "HOU", "IND", "LAC", "LAL", "MEM",
    "MIA", "MIL", "MIN", "NOP", "NYK", "OKC", "ORL", "PHI", "PHX", "POR", "SAC", "SAS", "TOR", "UTA", "WAS",
}  # fmt: skip
DATE_COLS = ("game_date", "new_game_date")
TS_COLS = ("tipoff_utc", "event_ts", "report_ts", "snapshot_ts")


@functools.cache
def season_dir() -> Path:
    """The cached full season (generated on first use, about 60 s)."""
    return sim.ensure_season(SEASON_DIR, "2025-26", sim.DEFAULT_SEED)


@functools.cache
def load_kind(kind: str) -> pd.DataFrame:
    """All files of one kind as a DataFrame: dates as ``datetime.date``, timestamps tz-aware UTC."""
    files = sorted((season_dir() / kind).glob("game_date=*/part-*"))
    assert files, f"no {kind} files under {season_dir()}"
    if files[0].suffix == ".parquet":
        table = pa.concat_tables([pq.read_table(f) for f in files])
    else:
        table = pa.concat_tables([pj.read_json(f) for f in files], promote_options="permissive")
    df = table.to_pandas()
    for c in DATE_COLS:
        if c in df.columns and not isinstance(df[c].dtype, np.dtypes.ObjectDType):
            df[c] = pd.to_datetime(df[c]).dt.date.where(df[c].notna(), None)
    for c in TS_COLS:
        if c in df.columns:
            df[c] = pd.to_datetime(df[c], utc=True)
    return df


@pytest.fixture(scope="module")
def schedule() -> pd.DataFrame:
    return load_kind("schedule")


@pytest.fixture(scope="module")
def played(schedule) -> pd.DataFrame:
    """One row per game that was played (its ``final`` event)."""
    return schedule[schedule["status"] == "final"].reset_index(drop=True)


@pytest.fixture(scope="module")
def features() -> pd.DataFrame:
    return load_kind("features")


def test_thirty_real_nba_teams_with_14_to_17_players(schedule, features):
    assert set(schedule["home_team"]) == NBA_TRICODES
    assert set(schedule["away_team"]) == NBA_TRICODES
    assert set(L.TRICODES) == NBA_TRICODES and len(L.TRICODES) == 30
    # every scheduled game lists each team's roster (DNPs included) in the feature store
    per_team_game = features.groupby(["game_id", "team_abbr"])["player_lookup"].nunique()
    assert per_team_game.between(14, 17).all(), per_team_game.describe()
    assert len(per_team_game) == 2 * schedule["game_id"].nunique()
    # a player is on one team per game, and every team has at least 14 distinct players over the season
    assert not features.duplicated(["player_lookup", "game_id"]).any()
    assert features.groupby("team_abbr")["player_lookup"].nunique().min() >= 14


def test_1230_games_82_per_team_41_at_home(schedule, played):
    assert played["game_id"].is_unique
    assert len(played) == 1230
    # a postponed game is played once, under its new date: the same matchup is not counted twice
    postponed = schedule[schedule["status"] == "postponed"]
    assert not set(postponed["game_id"]) & set(played["game_id"])
    home = played["home_team"].value_counts()
    away = played["away_team"].value_counts()
    total = home.add(away, fill_value=0)
    assert (total == 82).all(), total.to_dict()
    assert (home == 41).all() and (away == 41).all(), home.to_dict()
    pairs = played.apply(lambda r: tuple(sorted((r["home_team"], r["away_team"]))), axis=1).value_counts()
    assert len(pairs) == 30 * 29 // 2 and pairs.between(2, 4).all()


def test_game_id_is_date_away_home(schedule):
    pattern = re.compile(r"^(\d{8})_([A-Z]{3})_([A-Z]{3})$")
    for gid, d, away, home in schedule[["game_id", "game_date", "away_team", "home_team"]].itertuples(
        index=False
    ):
        m = pattern.match(gid)
        assert m, gid
        assert m.group(1) == f"{d:%Y%m%d}" and m.group(2) == away and m.group(3) == home, gid
    # one game_date and one pair of teams per game_id
    assert (schedule.groupby("game_id")[["game_date", "home_team", "away_team"]].nunique() == 1).all().all()


def test_no_team_twice_a_day_nor_three_days_in_a_row(played):
    long = pd.concat(
        [
            played[["game_date", "home_team"]].rename(columns={"home_team": "team"}),
            played[["game_date", "away_team"]].rename(columns={"away_team": "team"}),
        ]
    )
    assert not long.duplicated().any()
    for team, dates in long.groupby("team")["game_date"]:
        ds = sorted(dates)
        for a, c in zip(ds, ds[2:], strict=False):
            assert (c - a).days > 2, (team, a, c)


def test_nightly_density_quiet_and_busy_nights(schedule, played, features):
    per_date = played.groupby("game_date")["game_id"].nunique()
    assert per_date.max() <= 15
    assert (per_date.between(2, 4)).sum() >= 10, per_date.value_counts().sort_index().to_dict()
    assert (per_date.between(11, 15)).sum() >= 5, per_date.value_counts().sort_index().to_dict()
    # no games during the All-Star break; the season runs October to April
    assert not any(L.ALL_STAR_BREAK[0] <= d <= L.ALL_STAR_BREAK[1] for d in per_date.index)
    assert min(per_date.index).month == 10 and max(per_date.index).month == 4
    # at least one busy date with about 365 rostered players (the old system's 11-game day)
    rostered = features.groupby("game_date")["player_lookup"].nunique()
    busy = [d for d, n in per_date.items() if n >= 11 and 330 <= rostered.get(d, 0) <= 420]
    assert busy, {d: (n, int(rostered.get(d, 0))) for d, n in per_date.items() if n >= 11}


def test_postponed_games_are_rescheduled_with_the_same_teams(schedule, played):
    postponed = schedule[schedule["status"] == "postponed"]
    assert len(postponed) >= 1
    box = load_kind("box_scores")
    for r in postponed.itertuples(index=False):
        assert isinstance(r.new_game_date, dt.date) and r.new_game_date > r.game_date
        # the postponement is announced on the game date, before tip-off
        assert r.event_ts.tz_convert(ET).date() == r.game_date and r.event_ts < r.tipoff_utc
        # the original game never starts and has no box scores
        events = set(schedule.loc[schedule["game_id"] == r.game_id, "status"])
        assert events == {"scheduled", "postponed"}
        assert not (box["game_id"] == r.game_id).any()
        # the new date holds a played game between the same teams, under its own game_id
        again = played[
            (played["game_date"] == r.new_game_date)
            & (played["home_team"] == r.home_team)
            & (played["away_team"] == r.away_team)
        ]
        assert len(again) == 1, r
        assert again["game_id"].iloc[0] == f"{r.new_game_date:%Y%m%d}_{r.away_team}_{r.home_team}"
        assert (box["game_id"] == again["game_id"].iloc[0]).sum() >= 20
    # only postponed events carry a new date
    assert schedule.loc[schedule["status"] != "postponed", "new_game_date"].isna().all()


def test_a_handful_of_postponed_games(schedule):
    n = int((schedule["status"] == "postponed").sum())
    assert 3 <= n <= 10, n


def test_tipoffs_in_a_realistic_et_window(schedule, played):
    local = played["tipoff_utc"].dt.tz_convert(ET)
    minutes = local.dt.hour * 60 + local.dt.minute
    assert (local.dt.date == played["game_date"]).all()
    assert minutes.between(12 * 60, 22 * 60 + 30).all(), local[~minutes.between(12 * 60, 22 * 60 + 30)]
    evening = minutes >= 18 * 60
    assert evening.mean() >= 0.9
    assert minutes[evening].between(18 * 60, 22 * 60 + 30).all()
    # afternoon tip-offs are weekend matinees
    assert (local[~evening].dt.weekday >= 5).all()
    # several slots are used (east coast 19:00/19:30, west coast 22:00/22:30 ET, ...)
    assert local.dt.strftime("%H:%M").nunique() >= 6


def test_status_changes_through_the_day(schedule):
    assert set(schedule["status"]) <= {"scheduled", "in_progress", "final", "postponed", "cancelled"}
    seqs = schedule.sort_values(["game_id", "event_ts"], kind="stable").groupby("game_id")
    n_time_change = 0
    for gid, ev in seqs:
        st = list(ev["status"])
        ts = list(ev["event_ts"])
        assert ts == sorted(ts), gid
        assert st[0] == "scheduled" and ts[0].tz_convert(ET).date() < ev["game_date"].iloc[0], gid
        if "postponed" in st:
            assert st[-1] == "postponed", gid
            continue
        assert st[-2:] == ["in_progress", "final"], (gid, st)
        assert set(st[:-2]) == {"scheduled"} and len(st) <= 4, (gid, st)
        tip = ev["tipoff_utc"].iloc[-1]
        # the latest event carries the tip-off in force: in_progress at tip-off, final 2-3 h later
        assert ts[-2] == tip and dt.timedelta(hours=2) <= ts[-1] - tip <= dt.timedelta(hours=3), gid
        if len(st) == 4:  # a tip-off time change announced on the game date
            n_time_change += 1
            assert ev["tipoff_utc"].nunique() == 2 and ts[1].tz_convert(ET).date() == ev["game_date"].iloc[0]
    assert n_time_change >= 1


def test_matchups_and_rosters_from_the_generator():
    rng = np.random.default_rng(0)
    teams = L.make_teams(rng)
    games = L.nba_matchups(teams)
    assert len(games) == 1230
    home = pd.Series([h for _, h in games]).value_counts()
    away = pd.Series([a for a, _ in games]).value_counts()
    assert (home == 41).all() and (away == 41).all() and len(home) == 30
    players = L.make_rosters(rng, teams, L.NameFactory(rng), dt.date(2025, 10, 21))
    sizes = pd.Series([p.team for p in players]).value_counts()
    assert sizes.between(14, 17).all() and len(sizes) == 30
    assert len({p.lookup for p in players}) == len(players)
    assert L.player_lookup("Jalen O'Neal-Smith Jr.") == "jalenonealsmithjr"

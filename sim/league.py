"""The league: 30 NBA teams, generated players and rosters, and a regular-season schedule.

Everything here is drawn from one ``numpy.random.Generator`` so a seed fixes the league. The schedule
follows the NBA structure (4 games vs division rivals, 3 or 4 vs the other conference teams, 2 vs the
other conference: 82 games, 41 at home) and is packed greedily onto dates with a nightly density target
(quiet nights of 2-4 games, busy nights of 11-15, an All-Star break), guaranteeing at least one
February/March date with 11+ games. Used by :mod:`sim.engine`; no I/O.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

import numpy as np

ET = ZoneInfo("America/New_York")
UTC = dt.UTC

# tricode, conference, division, time zone offset class (0 east, 1 central, 2 mountain, 3 pacific)
TEAMS: tuple[tuple[str, str, str, int], ...] = (
    ("BOS", "E", "ATL", 0),
    ("BKN", "E", "ATL", 0),
    ("NYK", "E", "ATL", 0),
    ("PHI", "E", "ATL", 0),
    ("TOR", "E", "ATL", 0),
    ("CHI", "E", "CEN", 1),
    ("CLE", "E", "CEN", 0),
    ("DET", "E", "CEN", 0),
    ("IND", "E", "CEN", 0),
    ("MIL", "E", "CEN", 1),
    ("ATL", "E", "SE", 0),
    ("CHA", "E", "SE", 0),
    ("MIA", "E", "SE", 0),
    ("ORL", "E", "SE", 0),
    ("WAS", "E", "SE", 0),
    ("DEN", "W", "NW", 2),
    ("MIN", "W", "NW", 1),
    ("OKC", "W", "NW", 1),
    ("POR", "W", "NW", 3),
    ("UTA", "W", "NW", 2),
    ("GSW", "W", "PAC", 3),
    ("LAC", "W", "PAC", 3),
    ("LAL", "W", "PAC", 3),
    ("PHX", "W", "PAC", 2),
    ("SAC", "W", "PAC", 3),
    ("DAL", "W", "SW", 1),
    ("HOU", "W", "SW", 1),
    ("MEM", "W", "SW", 1),
    ("NOP", "W", "SW", 1),
    ("SAS", "W", "SW", 1),
)
TRICODES: tuple[str, ...] = tuple(t[0] for t in TEAMS)
TEAM_TZ: dict[str, int] = {t[0]: t[3] for t in TEAMS}

SEASONS: dict[str, tuple[dt.date, dt.date]] = {"2025-26": (dt.date(2025, 10, 21), dt.date(2026, 4, 12))}
ALL_STAR_BREAK = (dt.date(2026, 2, 13), dt.date(2026, 2, 18))
BUSY_DATE = dt.date(2026, 2, 22)  # the old system's 11-game reference date (domain.md section 4)

FIRST_NAMES = (
    "Aaron",
    "Adrian",
    "Alec",
    "Andre",
    "Anthony",
    "Ben",
    "Bobby",
    "Brandon",
    "Bruce",
    "Caleb",
    "Cam",
    "Carlos",
    "Chris",
    "Cody",
    "Cole",
    "Damian",
    "Dante",
    "Darius",
    "David",
    "Dean",
    "Derrick",
    "Devin",
    "Dillon",
    "Donovan",
    "Dwayne",
    "Eric",
    "Evan",
    "Felix",
    "Franz",
    "Gary",
    "Grant",
    "Hassan",
    "Isaac",
    "Isaiah",
    "Jalen",
    "Jamal",
    "Jaren",
    "Javon",
    "Jaylen",
    "Jerome",
    "Jordan",
    "Josh",
    "Julius",
    "Keegan",
    "Kelly",
    "Kevin",
    "Khris",
    "Kyle",
    "Lamar",
    "Luka",
    "Malik",
    "Marcus",
    "Mikal",
    "Miles",
    "Nate",
    "Nikola",
    "Norman",
    "Obi",
    "Paolo",
    "Pascal",
    "Quentin",
    "Reggie",
    "Rudy",
    "Scottie",
    "Shai",
    "Terry",
    "Tobias",
    "Trae",
    "Tre",
    "Tyler",
    "Victor",
    "Walker",
    "Xavier",
    "Zach",
    "Zion",
)
LAST_NAMES = (
    "Adams",
    "Allen",
    "Anderson",
    "Bailey",
    "Banks",
    "Barnes",
    "Bell",
    "Brooks",
    "Brown",
    "Bryant",
    "Carter",
    "Clark",
    "Coleman",
    "Collins",
    "Cooper",
    "Davis",
    "Diallo",
    "Dixon",
    "Edwards",
    "Ellis",
    "Evans",
    "Fisher",
    "Ford",
    "Foster",
    "Gibson",
    "Gordon",
    "Graham",
    "Grant",
    "Green",
    "Hall",
    "Harris",
    "Hayes",
    "Henderson",
    "Hill",
    "Holmes",
    "Howard",
    "Hughes",
    "Jackson",
    "James",
    "Johnson",
    "Jones",
    "Kelly",
    "King",
    "Lewis",
    "Lopez",
    "Martin",
    "Mason",
    "Miller",
    "Mitchell",
    "Moore",
    "Morris",
    "Murray",
    "Nelson",
    "Okafor",
    "Parker",
    "Payton",
    "Porter",
    "Price",
    "Reed",
    "Richards",
    "Robinson",
    "Ross",
    "Russell",
    "Sanders",
    "Scott",
    "Simmons",
    "Smith",
    "Stewart",
    "Thomas",
    "Thompson",
    "Turner",
    "Walker",
    "Wallace",
    "Ward",
    "Washington",
    "White",
    "Williams",
    "Wilson",
    "Wright",
    "Young",
)


def player_lookup(name: str) -> str:
    """Lower-case name with no separators: ``"Jalen O'Neal-Smith" -> "jalenonealsmith"``."""
    return "".join(ch for ch in name.lower() if ch.isalnum())


@dataclass
class Team:
    abbr: str
    conference: str
    division: str
    tz: int
    pace: float  # possessions per 48 min
    defense: float  # multiplier on opponents' scoring (1.0 = average)
    strength: float  # point-differential rating


@dataclass
class Player:
    pid: int
    name: str
    lookup: str
    team: str
    joined: dt.date  # first date on the current team (season start for the opening roster)
    tier: int  # 0 star, 1 starter, 2 rotation, 3 bench, 4 deep bench
    base_minutes: float
    ppm: float  # latent points per minute at the season start
    ppm_drift: float  # change of the latent rate over the season (breakouts and slumps)
    three_rate: float  # three-point attempts per minute
    three_pct: float
    zone: tuple[float, float, float]  # share of non-three points: paint, mid-range, free throws
    injury_prone: float
    prior_noise: float  # how wrong last season's view of the player is (market prior)
    history: list[tuple[dt.date, str]] = field(default_factory=list)  # (date, team) moves


_TIER_MINUTES = {0: (33.0, 37.0), 1: (27.0, 33.0), 2: (19.0, 26.0), 3: (10.0, 18.0), 4: (2.0, 9.0)}
_TIER_PPM = {0: (0.68, 0.86), 1: (0.45, 0.65), 2: (0.36, 0.55), 3: (0.30, 0.50), 4: (0.25, 0.45)}


def make_teams(rng: np.random.Generator, abbrs: tuple[str, ...] = TRICODES) -> list[Team]:
    meta = {t[0]: t for t in TEAMS}
    teams = []
    for a in abbrs:
        _, conf, div, tz = meta[a]
        teams.append(
            Team(
                a,
                conf,
                div,
                tz,
                pace=float(rng.normal(99.5, 2.2)),
                defense=float(np.clip(rng.normal(1.0, 0.03), 0.92, 1.08)),
                strength=float(rng.normal(0.0, 4.5)),
            )
        )
    return teams


class NameFactory:
    """Unique player names (and lookups) drawn from the seed."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng
        self.used: set[str] = set()

    def __call__(self) -> tuple[str, str]:
        while True:
            first = FIRST_NAMES[self.rng.integers(len(FIRST_NAMES))]
            name = f"{first} {LAST_NAMES[self.rng.integers(len(LAST_NAMES))]}"
            if self.rng.random() < 0.12:
                name += " Jr."
            look = player_lookup(name)
            if look not in self.used:
                self.used.add(look)
                return name, look


def make_player(
    rng: np.random.Generator, names: NameFactory, pid: int, team: str, tier: int, joined: dt.date
) -> Player:
    name, look = names()
    lo, hi = _TIER_MINUTES[tier]
    plo, phi = _TIER_PPM[tier]
    three_rate = float(np.clip(rng.normal(0.17, 0.08), 0.0, 0.38))
    paint = float(rng.uniform(0.35, 0.7))
    ft = float(rng.uniform(0.15, 0.3))
    mid = max(0.05, 1.0 - paint - ft)
    s = paint + mid + ft
    drift = float(rng.normal(0.0, 0.05)) if rng.random() < 0.8 else float(rng.normal(0.0, 0.15))
    return Player(
        pid=pid,
        name=name,
        lookup=look,
        team=team,
        joined=joined,
        tier=tier,
        base_minutes=float(rng.uniform(lo, hi)),
        ppm=float(rng.uniform(plo, phi)),
        ppm_drift=drift,
        three_rate=three_rate,
        three_pct=float(np.clip(rng.normal(0.35, 0.04), 0.2, 0.46)),
        zone=(paint / s, mid / s, ft / s),
        injury_prone=float(rng.lognormal(0.0, 0.5)),
        prior_noise=float(rng.normal(0.0, 0.10)),
    )


def make_rosters(
    rng: np.random.Generator, teams: list[Team], names: NameFactory, start: dt.date
) -> list[Player]:
    """14-17 players per team (mostly 16-17): 1-2 stars, starters, rotation, bench, deep bench."""
    players: list[Player] = []
    for team in teams:
        size = int(rng.choice([14, 15, 16, 17], p=[0.04, 0.12, 0.32, 0.52]))
        n_star = int(rng.choice([1, 2], p=[0.55, 0.45]))
        tiers = [0] * n_star + [1] * (5 - n_star) + [2] * 4 + [3] * 3
        tiers += [4] * (size - len(tiers))
        for tier in tiers:
            players.append(make_player(rng, names, len(players), team.abbr, tier, start))
    return players


# --------------------------------------------------------------------------------------------
# Schedule
# --------------------------------------------------------------------------------------------


def nba_matchups(teams: list[Team]) -> list[tuple[str, str]]:
    """(away, home) pairs of a full NBA regular season: 82 games per team, 41 at home."""
    games: list[tuple[str, str]] = []
    by_conf: dict[str, list[Team]] = {}
    for t in teams:
        by_conf.setdefault(t.conference, []).append(t)
    abbrs = [t.abbr for t in teams]
    conf_of = {t.abbr: t.conference for t in teams}
    div_of = {t.abbr: t.division for t in teams}
    for i, a in enumerate(abbrs):
        for b in abbrs[i + 1 :]:
            if conf_of[a] != conf_of[b]:
                games += [(a, b), (b, a)]
            elif div_of[a] == div_of[b]:
                games += [(a, b), (b, a), (a, b), (b, a)]
    for conf_teams in by_conf.values():
        divs = sorted({t.division for t in conf_teams})
        pos: dict[str, tuple[int, int]] = {}
        for di, d in enumerate(divs):
            for k, t in enumerate([x for x in conf_teams if x.division == d]):
                pos[t.abbr] = (di, k)
        names = sorted(pos)
        for i, a in enumerate(names):
            for b in names[i + 1 :]:
                (da, ka), (db, kb) = pos[a], pos[b]
                if da == db:
                    continue
                if db == (da + 1) % 3 and kb in (ka, (ka + 1) % 5):
                    games += [(b, a), (b, a), (a, b)]  # 3 games, 2 at a's home
                elif da == (db + 1) % 3 and ka in (kb, (kb + 1) % 5):
                    games += [(a, b), (a, b), (b, a)]  # 3 games, 2 at b's home
                else:
                    games += [(a, b), (b, a), (a, b), (b, a)]
    return games


def _density_targets(
    rng: np.random.Generator, dates: list[dt.date], n_games: int, n_teams: int, busy: dt.date | None
) -> np.ndarray:
    """Games wanted per date: weekday pattern, quiet and busy nights, scaled to the season total."""
    weekday_mean = np.array([8.0, 5.5, 9.0, 4.5, 8.5, 7.0, 6.5])  # Mon..Sun
    target = np.array([weekday_mean[d.weekday()] for d in dates]) * rng.uniform(0.6, 1.4, len(dates))
    quiet = rng.random(len(dates)) < 0.12
    target[quiet] = rng.integers(2, 5, quiet.sum())
    loud = rng.random(len(dates)) < 0.08
    target[loud] = rng.integers(11, 14, loud.sum())
    for i, d in enumerate(dates):
        if ALL_STAR_BREAK[0] <= d <= ALL_STAR_BREAK[1]:
            target[i] = 0
    target *= n_games / max(target.sum(), 1.0) * 1.03
    target = np.clip(np.round(target), 0, n_teams // 2)
    if busy is not None and busy in dates:
        bi = dates.index(busy)
        target[bi] = min(n_teams // 2, max(11, n_teams * 11 // 30))
        if bi > 0:
            target[bi - 1] = min(target[bi - 1], 2)
    return target.astype(int)


def pack_schedule(
    rng: np.random.Generator,
    matchups: list[tuple[str, str]],
    dates: list[dt.date],
    teams: list[str],
    busy: dt.date | None = None,
) -> list[tuple[dt.date, str, str]]:
    """Assigns every (away, home) matchup to a date; no team twice a day, no three days in a row.

    Greedy by date: games whose teams have the most games left per remaining date go first; a team
    that played yesterday is taken only when needed. Returns (date, away, home) sorted by date.
    """
    n_teams = len(teams)
    targets = _density_targets(rng, dates, len(matchups), n_teams, busy)
    remaining = list(matchups)
    rng.shuffle(remaining)
    left = {t: 0 for t in teams}
    for a, h in remaining:
        left[a] += 1
        left[h] += 1
    last_played: dict[str, list[dt.date]] = {t: [] for t in teams}
    out: list[tuple[dt.date, str, str]] = []
    playable_days = [i for i in range(len(dates)) if targets[i] > 0]
    for pos, i in enumerate(playable_days):
        d = dates[i]
        days_left = len(playable_days) - pos
        need = sum(left.values()) / 2.0
        want = int(targets[i])
        if pos >= len(playable_days) - 6:  # end of season: catch up
            want = max(want, int(np.ceil(need / days_left)))
        want = min(want, n_teams // 2)
        busy_today: set[str] = set()
        scored = []
        for idx, (a, h) in enumerate(remaining):
            s = 0.0
            for t in (a, h):
                lp = last_played[t]
                yday = bool(lp) and lp[-1] == d - dt.timedelta(days=1)
                three = yday and len(lp) > 1 and lp[-2] == d - dt.timedelta(days=2)
                if three:
                    s -= 1000.0
                s += left[t] / days_left * 10.0 - (3.0 if yday else 0.0)
            scored.append((s + rng.random(), idx))
        scored.sort(reverse=True)
        taken = []
        for s, idx in scored:
            if len(taken) >= want or s < -500:
                break
            a, h = remaining[idx]
            if a in busy_today or h in busy_today:
                continue
            busy_today.update((a, h))
            taken.append(idx)
        for idx in sorted(taken, reverse=True):
            a, h = remaining.pop(idx)
            out.append((d, a, h))
            left[a] -= 1
            left[h] -= 1
            last_played[a].append(d)
            last_played[h].append(d)
    if remaining:
        raise RuntimeError(f"schedule packing left {len(remaining)} games unscheduled")
    out.sort(key=lambda g: (g[0], g[2], g[1]))
    return out


def round_robin_matchups(teams: list[str], n_rounds: int) -> list[tuple[str, str]]:
    """(away, home) pairs for a small league: every pair meets ``n_rounds`` times, home alternating."""
    games = []
    for r in range(n_rounds):
        for i, a in enumerate(teams):
            for b in teams[i + 1 :]:
                games.append((a, b) if r % 2 == 0 else (b, a))
    return games


def tipoff_utc(rng: np.random.Generator, d: dt.date, home: Team) -> dt.datetime:
    """Tip-off as a UTC instant: 19:00-22:30 ET by the home team's time zone, some weekend matinees."""
    slots = {
        0: [(19, 0), (19, 30)],
        1: [(20, 0), (20, 30), (19, 30)],
        2: [(21, 0), (21, 30)],
        3: [(22, 0), (22, 30)],
    }[home.tz]
    hh, mm = slots[int(rng.integers(len(slots)))]
    if d.weekday() >= 5 and rng.random() < 0.15:
        hh, mm = (15, 30) if rng.random() < 0.5 else (13, 0)
    return dt.datetime(d.year, d.month, d.day, hh, mm, tzinfo=ET).astimezone(UTC)

"""The generative season: availability, injury reports, box scores and the market's pre-game view.

:func:`run_season` walks the schedule date by date. For each game it decides who is available (multi-game
injuries, new injuries reported early or as late scratches, questionable / doubtful / probable tags that
resolve before tip-off, coach's-decision DNPs), then draws box scores from a latent model:

    minutes  = base minutes, redistributed when teammates are out, cut for starters in blowouts
    points   = minutes x latent points-per-minute (drifting over the season) x usage shift (stars out)
               x pace x opponent defence x home court x rest / back-to-back x streaky form,
               drawn as 3 x three-point makes + an over-dispersed count for the rest

Alongside, the *market* forms a public pre-game estimate (the player's prior games with recent form,
last season's view, injuries known at the opening, the expected pace, defence, home, rest) and injury
news during the day becomes line-moving events; :mod:`sim.odds` adds the book's private information
and turns these into multi-book snapshots. Everything is drawn from one generator in a fixed order, so
a seed fixes the season.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from sim import league as L

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
HOUR = 3600
# the market's weight on recent form: games looked at, decay per game, weight of the recent rate
RECENT_GAMES, RECENT_DECAY, RECENT_WEIGHT = 12, 0.85, 0.45


def ts(x: dt.datetime) -> int:
    """Epoch seconds of a tz-aware datetime."""
    return int((x - EPOCH).total_seconds())


def et_ts(d: dt.date, hour: float) -> int:
    """Epoch seconds of ``hour`` (may be fractional or negative) ET on date ``d``."""
    base = dt.datetime(d.year, d.month, d.day, tzinfo=L.ET)
    return ts(base + dt.timedelta(hours=hour))


@dataclass
class SeasonData:
    """Raw season tables (pandas) produced by :func:`run_season`; times are epoch seconds (int64)."""

    games: pd.DataFrame
    schedule: pd.DataFrame
    box: pd.DataFrame
    injuries: pd.DataFrame
    roster: pd.DataFrame  # one row per rostered player per game (incl. postponed games)
    market: pd.DataFrame  # one row per lined player-game: base estimate, true mean, pull time, prominence
    news: pd.DataFrame  # line-moving events: market row, event time, delta in points
    players: dict[int, L.Player] = field(default_factory=dict)
    teams: dict[str, L.Team] = field(default_factory=dict)
    dates: list[dt.date] = field(default_factory=list)


_STATUS_CASES = {
    "out": ("out", "Out", "OUT"),
    "doubtful": ("doubtful", "Doubtful", "DOUBTFUL"),
    "questionable": ("questionable", "Questionable", "QUESTIONABLE", "Questionable"),
    "probable": ("probable", "Probable", "PROBABLE"),
    "available": ("available", "Available"),
}
_REASONS = (
    "Left ankle sprain",
    "Right knee soreness",
    "Low back tightness",
    "Illness",
    "Left hamstring strain",
    "Right calf strain",
    "Concussion protocol",
    "Right wrist sprain",
    "Left foot soreness",
    "Rest",
    "Personal reasons",
    "Right shoulder contusion",
)


def _season_dates(start: dt.date, end: dt.date) -> list[dt.date]:
    return [start + dt.timedelta(days=i) for i in range((end - start).days + 1)]


def build_schedule(
    rng: np.random.Generator, teams: list[L.Team], start: dt.date, end: dt.date, full: bool
) -> list[tuple[dt.date, str, str]]:
    dates = _season_dates(start, end)
    abbrs = [t.abbr for t in teams]
    if full:
        return L.pack_schedule(rng, L.nba_matchups(teams), dates, abbrs, busy=L.BUSY_DATE)
    # small league: about 3.4 games per team per week, every pair in turn
    n_games = int(round(len(dates) * len(abbrs) * 3.4 / 7 / 2))
    per_round = len(abbrs) * (len(abbrs) - 1) // 2
    matchups = L.round_robin_matchups(abbrs, max(1, int(np.ceil(n_games / per_round))))[:n_games]
    return L.pack_schedule(rng, matchups, dates, abbrs, busy=None)


def _crowded(team_days: set, day: dt.date) -> bool:
    """Whether a game on ``day`` would give a team two games that day or three days in a row."""
    one = dt.timedelta(days=1)
    return (
        day in team_days
        or (day - one in team_days and day + one in team_days)
        or (day - one in team_days and day - 2 * one in team_days)
        or (day + one in team_days and day + 2 * one in team_days)
    )


def run_season(
    seed: int,
    season: str = "2025-26",
    teams: tuple[str, ...] | None = None,
    end: dt.date | None = None,
    progress=None,
) -> SeasonData:
    """Simulates a season (all 30 teams, or a small league of ``teams``) from its first date to ``end``."""
    rng = np.random.default_rng(seed)
    start, season_end = L.SEASONS[season]
    full = teams is None or len(teams) == 30
    abbrs = L.TRICODES if teams is None else tuple(teams)
    unknown = [a for a in abbrs if a not in L.TRICODES]
    if unknown:
        raise ValueError(f"unknown team tricodes {unknown}; use NBA tricodes such as {L.TRICODES[:4]}")
    team_list = L.make_teams(rng, abbrs)
    team_by = {t.abbr: t for t in team_list}
    names = L.NameFactory(rng)
    players = L.make_rosters(rng, team_list, names, start)
    end = season_end if end is None else min(end, season_end)
    sched = build_schedule(rng, team_list, start, season_end, full)
    sched = [g for g in sched if g[0] <= end]

    # tip-offs, postponements (a handful, rescheduled to a later date where neither team would play twice
    # in a day or three days in a row)
    games = []
    for d, a, h in sched:
        games.append({"game_date": d, "away": a, "home": h, "tip": ts(L.tipoff_utc(rng, d, team_by[h]))})
    n_post = 5 if full else (1 if len(games) > 30 else 0)
    team_dates: dict[str, set] = defaultdict(set)
    for g in games:
        team_dates[g["away"]].add(g["game_date"])
        team_dates[g["home"]].add(g["game_date"])
    postponed = []
    candidates = [
        i
        for i, g in enumerate(games)
        if g["game_date"] >= start + dt.timedelta(days=20) and g["game_date"] <= end - dt.timedelta(days=25)
    ]
    for i in sorted(rng.choice(candidates, size=min(n_post, len(candidates)), replace=False).tolist()):
        g = games[i]
        for k in range(3, 40):
            nd = g["game_date"] + dt.timedelta(days=int(k))
            if nd > end or (L.ALL_STAR_BREAK[0] <= nd <= L.ALL_STAR_BREAK[1]):
                continue
            busy = any(_crowded(team_dates[t], nd) for t in (g["away"], g["home"]))
            if not busy:
                break
        else:
            continue
        for t in (g["away"], g["home"]):
            team_dates[t].add(nd)
        g["postponed_to"] = nd
        postponed.append(i)
    for i in postponed:
        g = games[i]
        games.append(
            {
                "game_date": g["postponed_to"],
                "away": g["away"],
                "home": g["home"],
                "tip": ts(L.tipoff_utc(rng, g["postponed_to"], team_by[g["home"]])),
                "rescheduled_from": g["game_date"],
            }
        )
    for g in games:
        g["game_id"] = f"{g['game_date']:%Y%m%d}_{g['away']}_{g['home']}"
        g["postponed"] = "postponed_to" in g
        g["postpone_ts"] = et_ts(g["game_date"], rng.uniform(11.0, 16.0)) if g["postponed"] else None
    games.sort(key=lambda g: (g["game_date"], g["tip"], g["game_id"]))
    dates = sorted({g["game_date"] for g in games})

    # roster moves: a few trades (rotation players swap teams) and signings of new players
    moves: dict[dt.date, list[tuple]] = defaultdict(list)
    mid = [d for d in dates if dt.date(2025, 12, 10) <= d <= dt.date(2026, 2, 5)]
    if mid and len(abbrs) >= 2:
        for _ in range(5 if full else 1):
            t1, t2 = rng.choice(list(abbrs), size=2, replace=False).tolist()
            moves[mid[int(rng.integers(len(mid)))]].append(("trade", t1, t2))
        late = [d for d in dates if d >= dt.date(2025, 11, 15)]
        for _ in range(14 if full else 1):
            moves[late[int(rng.integers(len(late)))]].append(("sign", str(rng.choice(list(abbrs)))))

    sim = _Sim(rng, players, team_by, start, season_end, names)
    for di, d in enumerate(dates):
        for mv in moves.get(d, []):
            sim.roster_move(d, mv)
        for g in (g for g in games if g["game_date"] == d):
            sim.play(g)
        if progress is not None and (di % 20 == 0 or di == len(dates) - 1):
            progress(f"simulated {d} ({di + 1}/{len(dates)} dates, {len(sim.box)} box-score rows)")
    return sim.finish(games, dates)


class _Sim:
    """Mutable state of the season walk (players' form, injuries, running stats, output rows)."""

    def __init__(self, rng, players, team_by, start, season_end, names) -> None:
        self.rng = rng
        self.players: dict[int, L.Player] = {p.pid: p for p in players}
        self.team_by = team_by
        self.start, self.season_end = start, season_end
        self.names = names
        self.form = defaultdict(float)
        self.out_games: dict[int, int] = defaultdict(int)
        self.injury_reason: dict[int, str] = {}
        self.was_out: dict[int, bool] = defaultdict(bool)
        self.played: dict[int, list[tuple[float, float]]] = defaultdict(list)  # (points, minutes)
        self.team_last: dict[str, dt.date] = {}
        self.box: list[dict] = []
        self.injuries: list[dict] = []
        self.roster_rows: list[dict] = []
        self.market: list[dict] = []
        self.news: list[dict] = []
        self.schedule: list[dict] = []

    # ---- roster moves
    def roster_move(self, d: dt.date, mv: tuple) -> None:
        rng = self.rng
        if mv[0] == "trade":
            _, t1, t2 = mv
            c1 = [p for p in self.players.values() if p.team == t1 and p.tier in (1, 2, 3)]
            c2 = [p for p in self.players.values() if p.team == t2 and p.tier in (1, 2, 3)]
            if c1 and c2:
                a = c1[int(rng.integers(len(c1)))]
                b = c2[int(rng.integers(len(c2)))]
                for p, t in ((a, t2), (b, t1)):
                    p.history.append((d, p.team))
                    p.team, p.joined = t, d
        else:
            team = mv[1]
            size = sum(1 for p in self.players.values() if p.team == team)
            if size < 17:
                pid = max(self.players) + 1
                p = L.make_player(rng, self.names, pid, team, int(rng.choice([3, 4])), d)
                self.players[pid] = p

    # ---- one game
    def play(self, g: dict) -> None:
        rng = self.rng
        d, tip = g["game_date"], g["tip"]
        home, away = self.team_by[g["home"]], self.team_by[g["away"]]
        progress = (d - self.start).days / max(1, (self.season_end - self.start).days)
        sched_ts = et_ts(d, -24.0 - rng.uniform(0, 48))
        ev = {
            "game_id": g["game_id"],
            "game_date": d,
            "tip": tip,
            "home_team": home.abbr,
            "away_team": away.abbr,
            "new_game_date": None,
        }
        self.schedule.append({**ev, "status": "scheduled", "event_ts": sched_ts})
        if rng.random() < 0.03 and not g["postponed"]:  # a tip-off time change through the day
            self.schedule[-1]["tip"] = tip - HOUR
            self.schedule.append({**ev, "status": "scheduled", "event_ts": et_ts(d, rng.uniform(9, 13))})
        if g["postponed"]:
            self.schedule.append(
                {
                    **ev,
                    "status": "postponed",
                    "new_game_date": g["postponed_to"],
                    "event_ts": g["postpone_ts"],
                }
            )
        else:
            self.schedule.append({**ev, "status": "in_progress", "event_ts": tip})
            self.schedule.append(
                {**ev, "status": "final", "event_ts": tip + int(rng.uniform(2.1, 2.6) * HOUR)}
            )

        margin_latent = 2.5 + home.strength - away.strength + rng.normal(0, 12.0)
        blowout = abs(margin_latent) > 17.0
        pace_f = ((home.pace + away.pace) / 2 + rng.normal(0, 2.0)) / 99.5
        sides = {}
        m0 = len(self.market)
        for team, opp, is_home in ((home, away, True), (away, home, False)):
            sides[team.abbr] = self._side(g, team, opp, is_home, d, tip, progress, pace_f, blowout)
        if g["postponed"]:
            # no box scores; every book pulls its lines when the postponement is announced
            for row in self.market[m0:]:
                row["pull"] = min(row["pull"], float(g["postpone_ts"]))
            return
        totals = {t: sum(r["points"] or 0 for r in s["rows"]) for t, s in sides.items()}
        for t, s in sides.items():
            o = away.abbr if t == home.abbr else home.abbr
            margin = totals[t] - totals[o]
            for r in s["rows"]:
                if not r["is_dnp"]:
                    r["plus_minus"] = float(round(margin * r["minutes"] / 48.0 + rng.normal(0, 5.0)))
                    self.played[r["pid"]].append((r["points"], r["minutes"]))
                self.box.append(r)
            self.team_last[t] = d

    def _side(self, g, team, opp, is_home, d, tip, progress, pace_f, blowout) -> dict:
        rng = self.rng
        roster = sorted(
            (p for p in self.players.values() if p.team == team.abbr and p.joined <= d),
            key=lambda p: -p.base_minutes,
        )
        prev = self.team_last.get(team.abbr)
        b2b = prev is not None and (d - prev).days == 1
        rest = (d - prev).days if prev is not None else 3
        status: dict[int, str] = {}
        plays: dict[int, bool] = {}
        known_out: dict[int, bool] = {}
        reports: list[tuple[int, str, float]] = []  # pid, status, ts
        for p in roster:
            pid = p.pid
            self.roster_rows.append(
                {
                    "game_id": g["game_id"],
                    "pid": pid,
                    "team_abbr": team.abbr,
                    "opponent_team_abbr": opp.abbr,
                    "game_date": d,
                    "is_home": is_home,
                }
            )
            if self.out_games[pid] > 0:
                known_out[pid] = self.was_out[pid]
                plays[pid] = False
                status[pid] = "injury"
                reports.append((pid, "out", tip - rng.uniform(3, 23) * HOUR))
                self.out_games[pid] -= 1
                continue
            known_out[pid] = False
            u = rng.random()
            prone = p.injury_prone
            if u < 0.007 * prone:
                plays[pid] = False
                status[pid] = "injury"
                self.injury_reason[pid] = _REASONS[int(rng.integers(len(_REASONS)))]
                self.out_games[pid] = int(rng.geometric(0.25) if rng.random() < 0.85 else rng.integers(8, 30))
                late = rng.random() < 0.25
                reports.append(
                    (pid, "out", tip - (rng.uniform(0.2, 0.95) if late else rng.uniform(2, 22)) * HOUR)
                )
            elif u < 0.007 * prone + 0.03:
                t0 = tip - rng.uniform(8, 23) * HOUR
                reports.append((pid, "questionable", t0))
                plays[pid] = rng.random() < 0.6
                if not plays[pid]:
                    status[pid] = "injury"
                    reports.append(
                        (
                            pid,
                            "out",
                            tip - (rng.uniform(0.2, 0.9) if rng.random() < 0.4 else rng.uniform(1, 6)) * HOUR,
                        )
                    )
            elif u < 0.007 * prone + 0.038:
                reports.append((pid, "doubtful", tip - rng.uniform(6, 22) * HOUR))
                plays[pid] = rng.random() < 0.25
                if not plays[pid]:
                    status[pid] = "injury"
                    if rng.random() < 0.5:
                        reports.append((pid, "out", tip - rng.uniform(0.5, 4) * HOUR))
            elif u < 0.007 * prone + 0.063:
                reports.append((pid, "probable", tip - rng.uniform(6, 22) * HOUR))
                plays[pid] = rng.random() < 0.95
                if not plays[pid]:
                    status[pid] = "injury"
                    reports.append((pid, "out", tip - rng.uniform(0.2, 0.95) * HOUR))
            else:
                plays[pid] = True
                if self.was_out[pid]:
                    reports.append(
                        (
                            pid,
                            "probable" if rng.random() < 0.7 else "available",
                            tip - rng.uniform(4, 20) * HOUR,
                        )
                    )
        for pid, st, t in reports:
            if g["postponed"] and t > g["postpone_ts"]:
                continue
            self.injuries.append(
                {
                    "pid": pid,
                    "game_date": d,
                    "game_id": g["game_id"],
                    "status": str(rng.choice(_STATUS_CASES[st])),
                    "reason": self.injury_reason.get(pid, _REASONS[int(rng.integers(len(_REASONS)))]),
                    "report_ts": int(t),
                }
            )
        # coach's decisions: deep bench sits when the roster is healthy
        avail = [p for p in roster if plays[p.pid]]
        for k, p in enumerate(avail):
            if k >= 11 and p.tier >= 3 and rng.random() < 0.7:
                plays[p.pid] = False
                status[p.pid] = "coach"
        avail = [p for p in roster if plays[p.pid]]

        def exp_pts(p: L.Player) -> float:
            return p.base_minutes * p.ppm

        avail_pts = sum(exp_pts(p) for p in avail) or 1.0
        missing = [p for p in roster if not plays[p.pid] and status.get(p.pid) == "injury"]
        missing_pts = sum(exp_pts(p) for p in missing)
        mean_ppm = float(np.mean([p.ppm for p in avail])) if avail else 0.5
        # minutes: base + noise, scaled to 240, capped
        mins = np.array([max(1.0, p.base_minutes + rng.normal(0, 3.0)) for p in avail])
        starters = np.zeros(len(avail), dtype=bool)
        starters[np.argsort(-np.array([p.base_minutes for p in avail]), kind="stable")[:5]] = True
        if blowout:
            mins = np.where(starters, mins * rng.uniform(0.72, 0.86), mins * 1.25)
        for _ in range(3):
            if mins.sum() > 0:
                mins = np.minimum(mins * 240.0 / mins.sum(), 42.0)
        mins = np.round(mins, 1)
        rows: list[dict] = []
        n_lined = 0
        def_f = opp.defense
        home_f = 1.015 if is_home else 0.985
        rest_f = 0.955 if b2b else (1.02 if rest >= 3 else 1.0)
        for k, p in enumerate(avail):
            pid = p.pid
            self.form[pid] = 0.8 * self.form[pid] + rng.normal(0, 0.09)
            ppm_t = p.ppm * (1 + p.ppm_drift * progress * 2)
            boost = min(1.4, 1 + 0.45 * missing_pts / avail_pts * (p.ppm / mean_ppm))
            mu = min(
                46.0, mins[k] * ppm_t * boost * pace_f * def_f * home_f * rest_f * np.exp(self.form[pid])
            )
            injured_in_game = rng.random() < 0.004
            m_k = float(mins[k] * (rng.uniform(0.2, 0.6) if injured_in_game else 1.0))
            if injured_in_game:
                mu *= m_k / max(mins[k], 1e-6)
                self.out_games[pid] = int(rng.geometric(0.3))
                self.injury_reason[pid] = _REASONS[int(rng.integers(len(_REASONS)))]
            fg3a = int(rng.poisson(m_k * p.three_rate * pace_f))
            fg3m = int(rng.binomial(fg3a, p.three_pct))
            other_mu = max(mu - 3 * fg3a * p.three_pct, 0.3 * mu)
            other = int(rng.poisson(other_mu * float(np.clip(rng.gamma(6.0, 1 / 6.0), 0.35, 1.6))))
            zone = rng.dirichlet(np.array(p.zone) * 30 + 0.1) * other
            rows.append(
                {
                    "pid": pid,
                    "game_id": g["game_id"],
                    "game_date": d,
                    "team_abbr": team.abbr,
                    "opponent_team_abbr": opp.abbr,
                    "points": float(3 * fg3m + other),
                    "minutes": m_k,
                    "is_dnp": False,
                    "starter": bool(starters[k]),
                    "plus_minus": None,
                    "fg3a": float(fg3a),
                    "fg3m": float(fg3m),
                    "paint_pts": float(zone[0]),
                    "mid_pts": float(zone[1]),
                    "ft_pts": float(zone[2]),
                    "dnp_reason": None,
                    "true_mu": float(mu),
                }
            )
        for p in roster:
            if not plays[p.pid]:
                coach = status.get(p.pid) == "coach"
                rows.append(
                    {
                        "pid": p.pid,
                        "game_id": g["game_id"],
                        "game_date": d,
                        "team_abbr": team.abbr,
                        "opponent_team_abbr": opp.abbr,
                        "points": 0.0 if coach else None,
                        "minutes": 0.0 if coach else None,
                        "is_dnp": True,
                        "starter": False,
                        "plus_minus": None,
                        "fg3a": None,
                        "fg3m": None,
                        "paint_pts": None,
                        "mid_pts": None,
                        "ft_pts": None,
                        "dnp_reason": "coach" if coach else "injury",
                        "true_mu": None,
                    }
                )
        true_mu = {r["pid"]: r["true_mu"] for r in rows}

        # ---- the market's view (public information only)
        known_missing = [p for p in roster if known_out[p.pid]]
        known_missing_pts = sum(exp_pts(p) for p in known_missing)
        avail_known = [p for p in roster if not known_out[p.pid]]
        avail_known_pts = sum(exp_pts(p) for p in avail_known) or 1.0
        opp_prev = self.team_last.get(opp.abbr)
        pace_exp = (team.pace + opp.pace) / 2 / 99.5  # the game's expected pace (the draw is unknown)
        mkt_rows = []
        for p in avail_known:
            hist = self.played[p.pid]
            gp = len(hist)
            prior_min = 0.92 * p.base_minutes * float(np.exp(p.prior_noise / 2))
            mins_seen = sum(m for _, m in hist)
            exp_min = (sum(m for _, m in hist[-15:]) + 5 * prior_min) / (min(gp, 15) + 5)
            if p.joined > self.start and gp == 0:
                exp_min = prior_min
            ppm_prior = p.ppm * float(np.exp(p.prior_noise))
            w = mins_seen / (mins_seen + 250.0)
            ppm_obs = sum(pt for pt, _ in hist) / mins_seen if mins_seen > 0 else ppm_prior
            ppm_m = w * ppm_obs + (1 - w) * ppm_prior
            # recent form (the latent rate drifts and streaks): recency-weighted points per minute
            recent = hist[-RECENT_GAMES:]
            wts = [RECENT_DECAY ** (len(recent) - 1 - i) * m for i, (_, m) in enumerate(recent)]
            if recent and sum(wts) > 0:
                pairs = zip(wts, recent, strict=True)
                ppm_recent = sum(wk * pt / max(m, 1e-6) for wk, (pt, m) in pairs) / sum(wts)
                ppm_m += RECENT_WEIGHT * w * (ppm_recent - ppm_m)
            boost_known = min(1.4, 1 + 0.45 * known_missing_pts / avail_known_pts * (p.ppm / mean_ppm))
            mkt = exp_min * ppm_m * pace_exp * def_f * home_f * rest_f * boost_known
            if mkt < 5.5 or exp_min < 14.0:
                continue
            prominence = float(np.clip((mkt - 3.0) / 9.0, 0.35, 1.0))
            mkt_rows.append(
                {
                    "pid": p.pid,
                    "game_id": g["game_id"],
                    "game_date": d,
                    "tip": tip,
                    "base": float(mkt),
                    "true_mu": true_mu.get(p.pid) or float(mkt),
                    "pull": float("inf"),
                    "prominence": prominence,
                }
            )
        start_idx = len(self.market)
        self.market.extend(mkt_rows)
        n_lined = len(mkt_rows)
        # ---- news: injury reports after the opening move lines
        opening_ts = et_ts(d, -6.0)
        idx_of = {r["pid"]: start_idx + i for i, r in enumerate(mkt_rows)}
        for pid, st, t in reports:
            if known_out.get(pid):
                continue
            if pid in idx_of:  # the player's own news
                row = self.market[idx_of[pid]]
                if st in ("out", "doubtful"):
                    row["pull"] = min(row["pull"], float(t))
                elif st == "questionable":
                    self.news.append({"m": idx_of[pid], "t": int(t), "delta": -0.08 * row["base"]})
            frac = {"out": 0.75, "doubtful": 0.5, "questionable": 0.2}.get(st)
            if frac is None:
                continue
            pj = self.players[pid]
            for qid, mi in idx_of.items():
                if qid == pid:
                    continue
                share = self.market[mi]["base"] / avail_known_pts
                delta = frac * 0.8 * exp_pts(pj) * share * 0.9
                if t > opening_ts - 3 * HOUR:
                    self.news.append({"m": mi, "t": int(t), "delta": float(delta)})
                else:
                    self.market[mi]["base"] += float(delta)
        del opp_prev
        for p in roster:
            self.was_out[p.pid] = (not plays[p.pid]) and status.get(p.pid) == "injury"
        return {"rows": rows, "n_lined": n_lined}

    def finish(self, games: list[dict], dates: list[dt.date]) -> SeasonData:
        gdf = pd.DataFrame(
            [
                {
                    k: g.get(k)
                    for k in ("game_id", "game_date", "away", "home", "tip", "postponed", "postpone_ts")
                }
                | {"new_game_date": g.get("postponed_to")}
                for g in games
            ]
        )
        look = {pid: p.lookup for pid, p in self.players.items()}
        name = {pid: p.name for pid, p in self.players.items()}
        box = pd.DataFrame(self.box)
        for df in (box,):
            df.insert(0, "player_lookup", df["pid"].map(look))
        roster = pd.DataFrame(self.roster_rows)
        roster["player_lookup"] = roster["pid"].map(look)
        inj = pd.DataFrame(self.injuries)
        inj["player_lookup"] = inj["pid"].map(look)
        market = pd.DataFrame(self.market)
        market["player_lookup"] = market["pid"].map(look)
        market["player_name"] = market["pid"].map(name)
        news = pd.DataFrame(self.news, columns=["m", "t", "delta"])
        sched = pd.DataFrame(self.schedule)
        return SeasonData(
            games=gdf,
            schedule=sched,
            box=box,
            injuries=inj,
            roster=roster,
            market=market,
            news=news,
            players=self.players,
            teams=self.team_by,
            dates=dates,
        )

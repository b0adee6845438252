"""Feature-store rows (55 features + quality fields), point in time.

:func:`build_features` walks the dates in order and, for every rostered player of every scheduled game
(DNP and postponed games included), computes the 55 catalogue features from the player's and the teams'
games strictly before the game date (the day's games are added to the history only after all of the
day's rows are built), injury reports filed before the date's decision time, the game-market model and
the line book at the decision time (:mod:`sim.odds`). Required features (``REQUIRED_FEATURE_INDICES``)
that need history the player or team does not have yet are filled with a league default and listed in
``default_feature_indices``; other missing values stay None (NaN). Quality fields follow a simple
upstream model: defaults, small samples and random processor gaps lower ``feature_quality_score``;
thin opponent data and random gaps lower ``matchup_quality_pct``.
"""

from __future__ import annotations

import datetime as dt
import math
from collections import defaultdict

import numpy as np
import pandas as pd

from pipeline.schemas import FEATURE_INDEX, REQUIRED_FEATURE_INDICES

FEATURE_VERSION = "v12_55"
_REQ = set(REQUIRED_FEATURE_INDICES)
# League defaults for required features when history is missing.
DEFAULTS: dict[int, float] = {
    0: 10.0,
    1: 10.0,
    2: 10.0,
    3: 5.0,
    6: 0.0,
    7: 0.0,
    8: 0.0,
    9: 0.0,
    11: 0.0,
    12: 0.0,
    13: 112.0,
    14: 99.5,
    21: 0.2,
    22: 99.5,
    23: 112.0,
    24: 0.5,
    29: 10.0,
    31: 20.0,
    32: 0.45,
    33: 0.1,
    34: 0.0,
    35: 0.0,
    36: 0.0,
}
F = FEATURE_INDEX


def _mean(xs) -> float:
    return sum(xs) / len(xs)


def _std(xs) -> float:
    mu = _mean(xs)
    return math.sqrt(sum((x - mu) ** 2 for x in xs) / len(xs))


def _slope(ys) -> float:
    n = len(ys)
    xm = (n - 1) / 2
    ym = _mean(ys)
    den = sum((i - xm) ** 2 for i in range(n))
    return sum((i - xm) * (y - ym) for i, y in enumerate(ys)) / den if den else 0.0


def game_pace(points_for: float, points_against: float) -> float:
    """Estimated possessions of a game from its score (box scores carry no possessions)."""
    return (points_for + points_against) / 2.0 / 1.12


def build_features(
    rng: np.random.Generator,
    roster: pd.DataFrame,
    box: pd.DataFrame,
    games: pd.DataFrame,
    injuries: pd.DataFrame,
    decision_ts: dict[dt.date, int],
    mkt_decision: dict,
    closing: dict,
    structural: dict[str, list[dt.date]],
    joined: dict[int, dt.date],
    progress=None,
) -> pd.DataFrame:
    """One row per roster row (player x game), in roster order.

    Args:
      roster: pid, player_lookup, game_id, game_date, team_abbr, opponent_team_abbr, is_home.
      box: the box scores (with the internal shot-zone point columns).
      games: game_id, game_date, home, away, postponed.
      injuries: pid, game_id, status, report_ts (epoch s).
      decision_ts: per date, epoch seconds of the decision time.
      mkt_decision: (pid, game_id) -> line book row at the decision time (dict with line, opening, ...).
      closing: (pid, game_id) -> closing line (float).
      structural: team -> dates of roster changes (trades); joined: pid -> date joined the current team.
    """
    # injury status known at the decision time, per (game_id, pid): latest report before decision
    inj_known: dict[tuple[str, int], str] = {}
    if len(injuries):
        inj = injuries.sort_values(["report_ts"], kind="stable")
        dts = inj["game_date"].map(decision_ts).to_numpy()
        inj = inj[inj["report_ts"].to_numpy() <= dts]
        for gid, pid, st in zip(inj["game_id"], inj["pid"], inj["status"], strict=True):
            inj_known[(gid, pid)] = st.lower()

    box_by_game: dict[str, list[dict]] = defaultdict(list)
    for r in box.to_dict("records"):
        r = {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()}
        box_by_game[r["game_id"]].append(r)
    games_by_date = defaultdict(list)
    for g in games.to_dict("records"):
        games_by_date[g["game_date"]].append(g)
    roster_by_game: dict[str, list[dict]] = defaultdict(list)
    for i, r in enumerate(roster.to_dict("records")):
        r["_i"] = i
        roster_by_game[r["game_id"]].append(r)

    p_hist: dict[int, list[dict]] = defaultdict(list)  # played + DNP rows, in date order
    t_hist: dict[str, list[tuple]] = defaultdict(list)  # (date, pf, pa, pace, win, game_id)
    out: list[dict | None] = [None] * len(roster)

    for di, d in enumerate(sorted(games_by_date)):
        day_games = games_by_date[d]
        # game-market model per game (public info only): total and spread from prior team results
        for g in day_games:
            g["_mkt"] = _game_market(rng, t_hist[g["home"]], t_hist[g["away"]])
        for g in day_games:
            gid = g["game_id"]
            rows = roster_by_game.get(gid, [])
            # team season scoring ranks for star_teammates_out / teammate_usage_available
            for r in rows:
                out[r["_i"]] = _row(
                    rng, r, g, d, p_hist, t_hist, inj_known, rows, mkt_decision, closing, structural, joined
                )
        # after the whole day: append the day's results to the histories
        for g in day_games:
            if g["postponed"]:
                continue
            gid = g["game_id"]
            brs = box_by_game.get(gid, [])
            pts = defaultdict(float)
            for r in brs:
                pts[r["team_abbr"]] += r["points"] or 0.0
            for team, opp in ((g["home"], g["away"]), (g["away"], g["home"])):
                t_hist[team].append(
                    (d, pts[team], pts[opp], game_pace(pts[team], pts[opp]), pts[team] > pts[opp], gid, opp)
                )
            for r in brs:
                r2 = dict(r)
                r2["closing"] = closing.get((r["pid"], gid))
                r2["team_pts"] = pts[r["team_abbr"]]
                p_hist[r["pid"]].append(r2)
        if progress is not None and di % 40 == 0:
            progress(f"features through {d}")
    return pd.DataFrame(out)


def _game_market(rng, home_hist, away_hist) -> tuple[float, float]:
    """(total, home spread as expected home margin) from prior results; a market guess, not the truth."""

    def rating(h):
        if not h:
            return 112.0, 0.0, 99.5
        pf = _mean([x[1] for x in h[-20:]])
        pa = _mean([x[2] for x in h[-20:]])
        return pf, pf - pa, _mean([x[3] for x in h[-20:]])

    hp, hm, _ = rating(home_hist)
    ap, am, _ = rating(away_hist)
    total = round((hp + ap + rng.normal(0, 2.0)) * 2) / 2
    spread = round((2.5 + (hm - am) / 2 + rng.normal(0, 1.0)) * 2) / 2
    return total, spread


def _row(rng, r, g, d, p_hist, t_hist, inj_known, rows, mkt_decision, closing, structural, joined) -> dict:
    pid, gid, team, opp = r["pid"], r["game_id"], r["team_abbr"], r["opponent_team_abbr"]
    f: list[float | None] = [None] * 55
    defaulted: list[int] = []
    A = p_hist[pid]
    H = [h for h in A if not h["is_dnp"]]
    pts = [h["points"] for h in H]
    mins = [h["minutes"] for h in H]
    g_n = len(H)
    th, oh = t_hist[team], t_hist[opp]

    def put(i: int, value: float | None, ok: bool) -> None:
        if ok:
            f[i] = float(value)
        elif i in _REQ and i not in (18, 19, 20):
            f[i] = DEFAULTS.get(i, 0.0)
            defaulted.append(i)
        else:
            f[i] = None

    last7 = [h for h in H if (d - h["game_date"]).days <= 7]
    load7 = sum(h["minutes"] for h in last7)
    prev_t = th[-1][0] if th else None
    prev_o = oh[-1][0] if oh else None
    rest = (d - prev_t).days if prev_t else None
    rest_o = (d - prev_o).days if prev_o else None
    b2b = rest == 1
    season_avg = _mean(pts) if g_n else None
    put(0, _mean(pts[-5:]) if g_n else None, g_n > 0)
    put(1, _mean(pts[-10:]) if g_n else None, g_n > 0)
    put(2, season_avg, g_n > 0)
    put(3, _std(pts[-10:]) if g_n >= 3 else None, g_n >= 3)
    put(4, len(last7), True)
    put(
        5,
        max(
            0.0, min(100.0, 100.0 - 1.2 * load7 - (15.0 if b2b else 0.0) + (5.0 if (rest or 0) >= 2 else 0.0))
        ),
        True,
    )
    tot_pts = sum(pts)
    paint = sum(h["paint_pts"] for h in H)
    mid = sum(h["mid_pts"] for h in H)
    ft = sum(h["ft_pts"] for h in H)
    three = sum(3 * h["fg3m"] for h in H)
    opp_def = _mean([100.0 * x[2] / x[3] for x in oh]) if oh else None
    opp_pace = _mean([x[3] for x in oh]) if oh else None
    team_pace = _mean([x[3] for x in th]) if th else None
    put(
        6,
        (paint / tot_pts - 0.5) * (opp_def - 112.0) / 5.0 if (tot_pts > 0 and oh) else None,
        tot_pts > 0 and bool(oh),
    )
    put(7, (team_pace + opp_pace) / 2 - 99.5 if (th and oh) else None, bool(th and oh))

    def usage(hs):
        return _mean([h["points"] / h["team_pts"] for h in hs if h["team_pts"] > 0]) if hs else 0.0

    put(8, usage(H[-5:]) - usage(H) if g_n else None, g_n > 0)
    put(9, min(rest, 4) - min(rest_o, 4) if (rest and rest_o) else None, bool(rest and rest_o))
    inj_dnp = [h for h in A[-20:] if h["is_dnp"] and h["dnp_reason"] == "injury"]
    put(10, len(inj_dnp) / len(A[-20:]) if A else 0.0, True)
    put(11, (_mean(pts[-5:]) - season_avg) if g_n else None, g_n > 0)
    put(12, (_mean(mins[-5:]) - _mean(mins)) if g_n else None, g_n > 0)
    put(13, opp_def, bool(oh))
    put(14, opp_pace, bool(oh))
    put(15, 1.0 if r["is_home"] else 0.0, True)
    put(16, 1.0 if b2b else 0.0, True)
    put(17, 0.0, True)
    zone_gap = rng.random() < 0.04
    put(18, paint / tot_pts if tot_pts > 0 else None, tot_pts > 0 and not zone_gap)
    put(19, mid / tot_pts if tot_pts > 0 else None, tot_pts > 0 and not zone_gap)
    put(20, three / tot_pts if tot_pts > 0 else None, tot_pts > 0 and not zone_gap)
    put(21, ft / tot_pts if tot_pts > 0 else None, tot_pts > 0)
    put(22, team_pace, bool(th))
    put(23, _mean([100.0 * x[1] / x[3] for x in th]) if th else None, bool(th))
    put(24, _mean([1.0 if x[4] else 0.0 for x in th]) if th else None, bool(th))
    vs = [h["points"] for h in H if h["opponent_team_abbr"] == opp]
    put(29, _mean(vs) if vs else season_avg, g_n > 0)
    put(30, len(vs), True)
    put(31, _mean(mins[-10:]) if g_n else None, g_n > 0)
    m10 = sum(mins[-10:])
    put(32, sum(pts[-10:]) / m10 if m10 > 0 else None, m10 > 0)
    put(33, sum(1 for h in A if h["is_dnp"]) / len(A) if A else None, bool(A))
    put(34, _slope(pts[-10:]) if g_n >= 3 else None, g_n >= 3)
    sd_all = _std(pts) if g_n >= 3 else 0.0
    put(
        35,
        (_mean(pts[-5:]) - season_avg) / sd_all if (g_n >= 3 and sd_all > 0) else (0.0 if g_n >= 3 else None),
        g_n >= 3,
    )
    put(36, 1.0 if (g_n >= 3 and pts[-1] > season_avg + 1.5 * sd_all) else 0.0, g_n >= 3)
    # teammates: season scoring leaders of the team (from prior games) and injury news known at decision
    cache = g.setdefault("_avgs", {})
    if team not in cache:
        avgs = []
        for tr in rows:
            if tr["team_abbr"] == team:
                th_p = [h["points"] for h in p_hist[tr["pid"]] if not h["is_dnp"]]
                avgs.append((_mean(th_p) if th_p else 0.0, len(th_p), tr["pid"]))
        cache[team] = avgs
    team_avgs = [x for x in cache[team] if x[2] != pid]
    team_avgs.sort(key=lambda x: (-x[0], x[2]))
    out_st = ("out", "doubtful")
    stars = [x for x in team_avgs[:3] if x[1] > 0]
    put(37, sum(1 for x in stars if inj_known.get((gid, x[2])) in out_st), True)
    total, home_spread = g["_mkt"]
    team_spread = home_spread if r["is_home"] else -home_spread
    put(38, total, True)
    put(39, rest, rest is not None)
    put(40, load7, True)
    put(41, abs(home_spread), True)
    put(42, total / 2 + team_spread / 2, True)
    put(43, _mean(pts[-3:]) if g_n else None, g_n > 0)
    put(44, _slope(pts[-5:]) if g_n >= 3 else None, g_n >= 3)
    put(45, (_mean(pts[-3:]) - season_avg) if g_n else None, g_n > 0)
    below = 0
    for p_ in reversed(pts):
        if p_ < season_avg:
            below += 1
        else:
            break
    put(46, below, g_n > 0)
    tot_avg = sum(x[0] for x in team_avgs) + (season_avg or 0.0)
    avail_avg = sum(x[0] for x in team_avgs if inj_known.get((gid, x[2])) not in out_st)
    put(47, avail_avg / tot_avg if tot_avg > 0 else None, tot_avg > 0)
    put(48, usage(H[-5:]) if g_n else None, g_n > 0)
    since = max([c for c in structural.get(team, []) if c <= d] + [joined.get(pid, d)])
    put(49, sum(1 for x in th if x[0] >= since), True)
    # streaks vs closing lines of previous lined games
    over_s = under_s = 0
    lined = [h for h in H if h.get("closing") is not None]
    for h in reversed(lined):
        if h["points"] > h["closing"] and under_s == 0:
            over_s += 1
        elif h["points"] < h["closing"] and over_s == 0:
            under_s += 1
        else:
            break
    put(51, over_s, True)
    put(52, under_s, True)
    prev_close = A[-1].get("closing") if A else None
    mk = mkt_decision.get((pid, gid))
    line = mk["line"] if mk is not None and not math.isnan(mk["line"]) else None
    if line is not None:
        put(25, line, True)
        put(26, mk["opening"], True)
        put(27, mk["move"], True)
        put(28, 1.0, True)
        put(50, mk["std"], not math.isnan(mk["std"]))
        put(53, line - season_avg if season_avg is not None else None, season_avg is not None)
        put(54, round(line - prev_close, 4) if prev_close is not None else None, prev_close is not None)
    else:
        for i in (25, 26, 27, 50, 53, 54):
            f[i] = None
        f[28] = 0.0

    # quality model
    score = 100.0 - 3.0 * len(defaulted)
    recent_team = th[-10:]
    played_recent = sum(1 for h in H if recent_team and h["game_date"] >= recent_team[0][0])
    if g_n < 10:
        score -= (10 - g_n) * 1.2
    if recent_team and played_recent < min(4, len(recent_team)):
        score -= 10.0
    if g_n and _mean(mins[-10:]) < 12.0:
        score -= 6.0
    if any(f[i] is None for i in (18, 19, 20)):
        score -= 6.0
    u = rng.random()
    if u < 0.52:
        score -= rng.uniform(8, 20)  # late play-by-play processing
    elif u < 0.66:
        score -= rng.uniform(3, 9)  # partial tracking data
    score = round(float(min(100.0, max(0.0, score + rng.normal(0, 1.5)))), 1)
    matchup = 100.0 - 6.0 * max(0, 8 - len(oh))
    if rng.random() < 0.06:
        matchup = rng.uniform(20, 49)
    matchup = round(float(max(0.0, min(100.0, matchup - abs(rng.normal(0, 3))))), 1)
    req_defaults = sorted(i for i in defaulted if i in _REQ)
    alert = (
        "red"
        if (len(req_defaults) >= 6 or score < 50)
        else ("yellow" if (req_defaults or score < 75 or matchup < 50) else "green")
    )
    row = {
        "player_lookup": r["player_lookup"],
        "game_id": gid,
        "game_date": d,
        "team_abbr": team,
        "opponent_team_abbr": opp,
        "feature_version": FEATURE_VERSION,
        "features": tuple(f),
        "feature_quality_score": score,
        "quality_alert_level": alert,
        "matchup_quality_pct": matchup,
        "required_default_count": len(req_defaults),
        "default_feature_indices": tuple(sorted(defaulted)),
        "prev_game_closing_line": prev_close,
        "pid": pid,
    }
    return row

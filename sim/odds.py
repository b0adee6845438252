"""Multi-book odds snapshots of a sharp market (vectorized), and the line book of every player-game.

:func:`generate_odds` turns the market's pre-game view of every lined player-game (:mod:`sim.engine`)
into per-book snapshots with numpy array operations (a full season is millions of rows): each book lists
a player with a probability that grows with his prominence, has its own small bias, noise and reaction
lag, posts its opening line the evening before (18:00-21:30 ET) and intraday snapshots from the morning
until tip-off every 15-60 minutes, and pulls the line when the player (or the game) is ruled out. About
0.7 % of snapshots are bad on purpose: absurd lines (0.5, 150.5, ten times the line), malformed prices
(0, +50, -50) and stale books (no snapshot after the opening).

The market is sharp (issue 13). A line is the median of the book's view of the player's points
(:func:`book_median`): points are right-skewed, so the median sits below the mean (:func:`median_gap`).
The book's view combines, by precision, the public estimate (history, injuries known so far, pace,
defence, rest) with a private signal of the player's expected points (rotation news, the minutes he
will really play, form: what the feature store does not see). The signal is noisy at the opening and
sharper after a refinement (sharp action, late news) at a random time, on average hours before tip-off,
so the closing line beats the opening one; books know the league better as the season goes (the signal
is softer in the first months). A book remembers its own read of a player (:func:`book_reads`): how far
its closing view of his previous games sat from the public estimate carries into the prior of his next
game (form and role persist from game to game), so a line does not forget what the book knew and then
revert (issue 13: before, lines moved >= 2 points on half the player-games and OVER won 55 % after a
drop). Injury news moves the public estimate during the day. Each book sees
the news and the refinement after its own lag, so books disagree slightly and lag one another.

Line book: the simulator has no rule of its own. :func:`line_books` calls the pipeline's
:func:`pipeline.domain.linebook.build_line_book` (``Policy()`` defaults) for the feature store's market
features at each date's decision time (one hour before the date's first tip-off), for the closing line
at each game's tip-off (``prev_game_closing_line``, the prop streaks) and for the realism report.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import numpy as np
import pandas as pd

from pipeline.domain.linebook import build_line_book, sanity_reason
from pipeline.policy import Policy
from pipeline.schemas import KNOWN_BOOKS, LineBook, OddsSnapshot

DEFAULT_POLICY = Policy()  # the line book's settings (range, staleness, book priority) come from here
OPENING_CANDIDATES = 2  # first snapshots per book handed to the line book for the opening line
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)

# The sharp market (issue 13). The public estimate's log error against the expected points (measured on
# the season: bias -0.03, sd 0.24); the book's private signal's log error at the opening and after the
# refinement; the gap between mean and median points (right skew: about 0.5 at 15 points, 1.2 at 30);
# a small upward shade of every line (the book's margin beyond the vig).
PUBLIC_LOG_BIAS, PUBLIC_LOG_SD = -0.065, 0.243
SIGNAL_SD_OPEN, SIGNAL_SD_CLOSE = 0.45, 0.10
SIGNAL_SD_SPREAD = 0.4  # log-sd of the private signal's precision across player-games
REFINE_MEAN_HOURS = 4.0
SOFT_EARLY, SOFT_DAYS = 5.0, 100.0  # early-season signal noise: up to 1 + 5 times; sharp after 100 days
MEDIAN_GAP_SLOPE, MEDIAN_GAP_INTERCEPT = 0.055, -0.2
BOOK_SHADE = 0.0
# The book's memory of a player (book_reads): the read carried into his next game is READ_WEIGHT times an
# average of its closing reads of his previous games (each read is its closing posterior minus the public
# prior; the average keeps READ_DECAY of the older reads per game); with it the public prior's log error
# falls from 0.243 to READ_PRIOR_SD. Measured on the season (seed 42, engine alone): a player's public
# log error regresses on the book's reads of his previous three games with 0.31 / 0.19 / 0.11; with these
# values the carried prior's error correlates at most 0.05 with each of the three previous reads (0.28
# with the last one without a memory), and its standard deviation is 0.232-0.233.
READ_WEIGHT, READ_DECAY, READ_PRIOR_SD = 0.5, 0.3, 0.232

# book: (coverage, bias in points, lag to news in minutes, mean snapshot interval in minutes, source_api)
BOOKS: dict[str, tuple[float, float, float, float, str]] = {
    "draftkings": (0.93, 0.00, 6, 20, "odds_api"),
    "fanduel": (0.93, 0.10, 8, 25, "odds_api"),
    "betmgm": (0.80, -0.10, 15, 35, "odds_api"),
    "williamhill_us": (0.75, 0.15, 20, 40, "odds_api"),
    "betrivers": (0.70, -0.15, 25, 45, "bettingpros"),
    "espnbet": (0.72, 0.05, 15, 35, "odds_api"),
    "hardrockbet": (0.50, 0.20, 30, 50, "bettingpros"),
    "bovada": (0.65, -0.20, 25, 40, "odds_api"),
    "fliff": (0.40, 0.30, 40, 55, "bettingpros"),
    "betonlineag": (0.55, -0.05, 20, 45, "odds_api"),
}
assert tuple(BOOKS) == KNOWN_BOOKS
BOOK_NAMES: tuple[str, ...] = tuple(BOOKS)
SOURCE_API: tuple[str, ...] = tuple(v[4] for v in BOOKS.values())


def median_gap(mean: np.ndarray) -> np.ndarray:
    """Mean minus median of a player's points for an expected ``mean`` (points are right-skewed)."""
    return np.maximum(0.0, MEDIAN_GAP_SLOPE * mean + MEDIAN_GAP_INTERCEPT)


def book_mean_log(
    public: np.ndarray,
    signal: np.ndarray,
    signal_sd: np.ndarray | float,
    read: np.ndarray | float = 0.0,
    prior_sd: np.ndarray | float = PUBLIC_LOG_SD,
) -> np.ndarray:
    """The book's posterior log expected points: its prior (the public estimate of the expected points,
    shifted by its carried ``read`` of the player, log error ``prior_sd``) and a private log-scale
    ``signal`` (standard deviation ``signal_sd``) combined by precision."""
    prior = np.log(np.maximum(public, 1.0)) + PUBLIC_LOG_BIAS + read
    w = np.asarray(prior_sd) ** 2 / (np.asarray(prior_sd) ** 2 + np.asarray(signal_sd) ** 2)
    return (1.0 - w) * prior + w * signal


def book_median(
    public: np.ndarray,
    signal: np.ndarray,
    signal_sd: np.ndarray | float,
    read: np.ndarray | float = 0.0,
    prior_sd: np.ndarray | float = PUBLIC_LOG_SD,
) -> np.ndarray:
    """The book's line value: the posterior median of the points from two views of the outcome.

    ``public`` is the public estimate of the expected points (the player's history, injuries known so
    far, pace, defence...); ``signal`` a private log-scale signal of the expected points with standard
    deviation ``signal_sd``; ``read`` the book's carried read of the player (:func:`book_reads`, log scale)
    and ``prior_sd`` its prior's log error. Both views are combined by precision (a calibrated estimate:
    the line is the best guess given what the book knows, so public information alone cannot beat it),
    then the expected points are turned into a median (:func:`median_gap`).
    """
    mean = np.exp(book_mean_log(public, signal, signal_sd, read, prior_sd))
    return mean - median_gap(mean)


def book_reads(
    player: np.ndarray, tip: np.ndarray, public_close: np.ndarray, signal: np.ndarray, signal_sd: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The book's carried read of each player-game and its prior's log error: (read, prior_sd).

    A player's first lined game has no read (prior error ``PUBLIC_LOG_SD``). For his next ones, the book
    looks back at its closing view of his previous lined games: each game's read is its closing
    posterior (:func:`book_mean_log` with the refined ``signal`` and the public estimate at tip-off
    ``public_close``) minus the public prior; the carried read is ``READ_WEIGHT`` times their average
    that keeps ``READ_DECAY`` of the older reads per game, and the prior's error is ``READ_PRIOR_SD``.
    Rows are any order; a player's games are ordered by ``tip``.
    """
    n = len(player)
    read, prior_sd = np.zeros(n), np.full(n, PUBLIC_LOG_SD)
    if n == 0:
        return read, prior_sd
    order = np.lexsort((tip, player))
    same = np.zeros(n, dtype=bool)
    same[1:] = player[order][1:] == player[order][:-1]
    start = np.maximum.accumulate(np.where(~same, np.arange(n), 0))
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n) - start
    prev = np.full(n, -1, dtype=np.int64)
    prev[order[1:][same[1:]]] = order[:-1][same[1:]]
    public_prior = np.log(np.maximum(public_close, 1.0)) + PUBLIC_LOG_BIAS
    memory, surprise = np.zeros(n), np.zeros(n)
    for k in range(int(rank.max()) + 1):  # one vectorized step per game of a player (about 80)
        idx = np.nonzero(rank == k)[0]
        if k > 0:
            p = prev[idx]
            memory[idx] = READ_DECAY * memory[p] + (1.0 - READ_DECAY) * surprise[p]
            read[idx] = READ_WEIGHT * memory[idx]
            prior_sd[idx] = READ_PRIOR_SD
        post = book_mean_log(public_close[idx], signal[idx], signal_sd[idx], read[idx], prior_sd[idx])
        surprise[idx] = post - public_prior[idx]
    return read, prior_sd


def american(p: np.ndarray) -> np.ndarray:
    """American odds (multiples of 5) for win probabilities ``p`` in (0, 1)."""
    fav = -100.0 * p / (1.0 - p)
    dog = 100.0 * (1.0 - p) / p
    v = np.where(p >= 0.5, np.minimum(np.round(fav / 5) * 5, -100), np.maximum(np.round(dog / 5) * 5, 100))
    return v.astype(np.int64)


def generate_odds(
    rng: np.random.Generator,
    market: pd.DataFrame,
    news: pd.DataFrame,
    open_ts: np.ndarray,
    morning_ts: np.ndarray,
    season_start: dt.date,
) -> dict[str, np.ndarray]:
    """Odds snapshots of every market row as column arrays, sorted by (market row, book, time).

    Args:
      market: one row per lined player-game with ``pid``, ``tip``, ``base``, ``true_mu``, ``pull``,
        ``prominence``.
      news: line-moving events (``m`` market row, ``t`` epoch seconds, ``delta`` points).
      open_ts / morning_ts: per market row, 18:00 ET the day before and 09:00 ET on the game date.

    Returns:
      {"m", "b" (book index into BOOK_NAMES), "t" (epoch s), "line", "over", "under"}.
    """
    n, nb = len(market), len(BOOK_NAMES)
    tip_m = market["tip"].to_numpy(np.int64)
    # the sharp book's private signal of the player's outcome (rotation news, minutes, form the feature
    # store does not see): noisy at the opening, sharper after a refinement (sharp action, late news)
    # at a random time between the morning and tip-off
    tau = np.log(np.maximum(market["true_mu"].to_numpy(np.float64), 0.5))
    # books learn the league as the season goes: their private view is softer in the first months
    days = np.array([(d - season_start).days for d in market["game_date"]], dtype=np.float64)
    early = 1.0 + SOFT_EARLY * np.clip(1.0 - days / SOFT_DAYS, 0.0, 1.0)
    sd_close = SIGNAL_SD_CLOSE * early * np.exp(rng.normal(0.0, SIGNAL_SD_SPREAD, n))  # unseen by bettors
    extra_sd = np.sqrt(SIGNAL_SD_OPEN**2 - SIGNAL_SD_CLOSE**2)
    sd_open = np.sqrt(sd_close**2 + extra_sd**2)
    signal = tau + rng.normal(0.0, 1.0, n) * sd_close
    signal_open = signal + rng.normal(0.0, extra_sd, n)
    t_ref = np.maximum(tip_m - 900 - rng.exponential(REFINE_MEAN_HOURS * 3600.0, n), morning_ts)
    public_close = market["base"].to_numpy() + _news_sum(news, np.arange(n), tip_m)
    read, prior_sd = book_reads(market["pid"].to_numpy(np.int64), tip_m, public_close, signal, sd_close)
    cov = np.array([v[0] for v in BOOKS.values()])
    prom = market["prominence"].to_numpy()
    listed = rng.random((n, nb)) < cov[None, :] * (0.55 + 0.45 * prom[:, None])
    m_idx, b_idx = np.nonzero(listed)
    mp = len(m_idx)
    offset = (
        np.array([v[1] for v in BOOKS.values()])[b_idx]
        + rng.normal(0, 0.25, mp)
        + (rng.random(mp) < 0.03) * rng.normal(0, 1.3, mp)
    )
    whole = rng.random(mp) < 0.1
    lag = np.array([v[2] for v in BOOKS.values()])[b_idx] * rng.uniform(0.5, 1.5, mp) * 60.0
    stale_pair = rng.random(mp) < 0.004
    tip = market["tip"].to_numpy(np.int64)[m_idx]
    pull = market["pull"].to_numpy(np.float64)[m_idx] + lag
    # the opening (and sometimes a second evening snapshot) the day before
    t_open = open_ts[m_idx] + rng.uniform(0, 3.5 * 3600, mp)
    t_open2 = t_open + rng.uniform(1800, 5400, mp)
    # intraday: from 09:00-11:00 ET every 15-60 minutes until tip-off (or until the line is pulled)
    k = 52
    mean_iv = np.array([v[3] for v in BOOKS.values()])[b_idx] * 60.0
    iv = np.clip(mean_iv[:, None] * rng.uniform(0.6, 1.4, (mp, k)), 900, 3600)
    start = morning_ts[m_idx] + rng.uniform(0, 7200, mp)
    times = start[:, None] + np.cumsum(iv, axis=1) - iv[:, :1]
    end = np.minimum(tip.astype(np.float64), pull)
    keep = (times < end[:, None]) & ~stale_pair[:, None]
    second = np.nonzero(rng.random(mp) < 0.4)[0]
    pair = np.concatenate([np.arange(mp), second, np.nonzero(keep)[0]])
    t = np.concatenate([t_open, t_open2[second], times[keep]])
    ok = t < np.minimum(pull, tip.astype(np.float64))[pair]
    pair, t = pair[ok], np.floor(t[ok]).astype(np.int64)
    m = m_idx[pair]
    b = b_idx[pair]

    # the book's view at (t - lag): a posterior median of the player's points, see book_median()
    seen = t - lag[pair].astype(np.int64)
    public = market["base"].to_numpy()[m] + _news_sum(news, m, seen)
    refined = seen >= t_ref[m]
    value = book_median(
        public,
        np.where(refined, signal[m], signal_open[m]),
        np.where(refined, sd_close[m], sd_open[m]),
        read[m],
        prior_sd[m],
    )
    value = value + BOOK_SHADE + offset[pair]
    line = np.where(whole[pair], np.round(value), np.floor(value) + 0.5)
    line = np.maximum(line, 0.5)
    r = np.clip(value - line, -0.5, 0.5)
    vig = rng.uniform(0.04, 0.05, len(t))
    over = american(0.5 + vig / 2 + 0.12 * r)
    under = american(0.5 + vig / 2 - 0.12 * r)
    # bad snapshots on purpose
    absurd = rng.random(len(t)) < 0.003
    choice = rng.integers(0, 3, len(t))
    line = np.where(absurd, np.select([choice == 0, choice == 1], [0.5, 150.5], line * 10), line)
    bad_price = rng.random(len(t)) < 0.003
    junk = np.array([0, 50, -50])[rng.integers(0, 3, len(t))]
    which = rng.random(len(t)) < 0.5
    over = np.where(bad_price & which, junk, over)
    under = np.where(bad_price & ~which, junk, under)
    order = np.lexsort((t, b, m))
    cols = {"m": m, "b": b, "t": t, "line": line, "over": over, "under": under}
    out = {k_: v[order] for k_, v in cols.items()}
    # one snapshot per (player-game, book, second)
    dup = np.zeros(len(order), dtype=bool)
    dup[1:] = (
        (out["m"][1:] == out["m"][:-1]) & (out["b"][1:] == out["b"][:-1]) & (out["t"][1:] == out["t"][:-1])
    )
    return {k_: v[~dup] for k_, v in out.items()}


def _news_sum(news: pd.DataFrame, m: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Sum of news deltas of market row ``m`` with event time <= ``t`` (vectorized)."""
    if news.empty:
        return np.zeros(len(m))
    nm = news["m"].to_numpy(np.int64)
    nt = news["t"].to_numpy(np.int64)
    order = np.lexsort((nt, nm))
    nm, nt, nd = nm[order], nt[order], news["delta"].to_numpy()[order]
    key = nm * (1 << 32) + nt
    csum = np.cumsum(nd)
    first = np.searchsorted(nm, nm, side="left")
    group_cum = csum - np.where(first > 0, csum[first - 1], 0.0)
    pos = np.searchsorted(key, m.astype(np.int64) * (1 << 32) + t, side="right") - 1
    hit = (pos >= 0) & (nm[np.maximum(pos, 0)] == m)
    return np.where(hit, group_cum[np.maximum(pos, 0)], 0.0)


def line_books(
    odds_df: pd.DataFrame,
    keys: pd.DataFrame,
    *as_of: np.ndarray,
    policy: Policy | None = None,
) -> list[list[LineBook]]:
    """The pipeline's line book of every player-game of ``keys`` at each time of ``as_of``.

    Every line is selected by :func:`pipeline.domain.linebook.build_line_book` (``Policy()`` defaults):
    the simulator has no line-book rule of its own.

    Args:
      odds_df: odds snapshots in the contract's columns (the simulated table or one read from files).
      keys: ``player_lookup``, ``game_id``, ``game_date`` per player-game (one row each).
      as_of: one or more arrays of epoch seconds, one entry per row of ``keys``.

    Returns:
      one list of LineBook (in ``keys`` order) per ``as_of`` array.

    A season has millions of snapshots, and building one typed row per snapshot for every call would
    take most of the simulation's time budget, so each call gets the snapshots that can decide its
    result: per book, the latest one at ``as_of`` (the book's current line) and its first
    ``OPENING_CANDIDATES`` (where the selected book's opening line is). When none of those first
    snapshots of the selected book passes the pipeline's sanity check (:func:`sanity_reason` at its own
    time), the opening may lie later, and that player-game is recomputed from all its snapshots; so the
    result always equals ``build_line_book`` on every snapshot (``tests/test_sim_odds.py`` checks it).
    """
    policy = policy or DEFAULT_POLICY
    n = len(keys)
    ki = pd.MultiIndex.from_frame(keys[["player_lookup", "game_id"]])
    m_all = ki.get_indexer(pd.MultiIndex.from_frame(odds_df[["player_lookup", "game_id"]]))
    known = m_all >= 0
    rows_all = np.nonzero(known)[0]
    m = m_all[known]
    b = pd.Categorical(odds_df["book"].to_numpy()[known]).codes.astype(np.int64)
    t = _epoch_seconds(odds_df["snapshot_ts"])[known]
    order = np.lexsort((t, b, m))
    m, b, t, rows_all = m[order], b[order], t[order], rows_all[order]
    new_pair = np.ones(len(m), dtype=bool)
    new_pair[1:] = (m[1:] != m[:-1]) | (b[1:] != b[:-1])
    pair_start = np.maximum.accumulate(np.where(new_pair, np.arange(len(m)), 0))
    pos = np.arange(len(m)) - pair_start  # rank of the snapshot within its (player-game, book) by time
    last_of_pair = np.ones(len(m), dtype=bool)
    last_of_pair[:-1] = new_pair[1:]
    keep = pos < OPENING_CANDIDATES
    times = [np.asarray(a, dtype=np.int64) for a in as_of]
    for a in times:
        vis = t <= a[m]
        nxt_vis = np.zeros(len(m), dtype=bool)
        nxt_vis[:-1] = vis[1:] & ~last_of_pair[:-1]
        keep |= vis & ~nxt_vis  # the latest visible snapshot of each book
    snaps = _snapshots(odds_df, rows_all[keep])
    bounds = np.searchsorted(m[keep], np.arange(n + 1))
    snaps_all: dict[int, list[OddsSnapshot]] = {}

    def all_snapshots(i: int) -> list[OddsSnapshot]:
        if i not in snaps_all:
            lo, hi = np.searchsorted(m, [i, i + 1])
            snaps_all[i] = _snapshots(odds_df, rows_all[lo:hi])
        return snaps_all[i]

    out: list[list[LineBook]] = []
    game_dates = keys["game_date"].tolist()
    players, games = keys["player_lookup"].tolist(), keys["game_id"].tolist()
    for a in times:
        books = []
        for i in range(n):
            group = snaps[bounds[i] : bounds[i + 1]]
            when = _utc(int(a[i]))
            key = (game_dates[i], games[i], players[i])
            book, _ = build_line_book(group, when, policy, key=key)
            if book.line is not None:
                first = [s for s in group if s.book == book.line_book][:OPENING_CANDIDATES]
                if all(sanity_reason(s, s.snapshot_ts, policy) is not None for s in first):
                    book, _ = build_line_book(all_snapshots(i), when, policy, key=key)
            books.append(book)
        out.append(books)
    return out


def _epoch_seconds(ts: pd.Series) -> np.ndarray:
    """UTC timestamps -> int64 epoch seconds, whatever their resolution (pandas keeps s/ms/us/ns)."""
    ts = pd.to_datetime(ts, utc=True)
    return ((ts - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(seconds=1)).to_numpy(np.int64)


def _utc(seconds: int) -> dt.datetime:
    return EPOCH + dt.timedelta(seconds=seconds)


def _snapshots(odds_df: pd.DataFrame, rows: np.ndarray) -> list[OddsSnapshot]:
    """Typed snapshots of the table's rows ``rows`` (positions), in that order."""
    part = odds_df.iloc[rows]
    stamps = _epoch_seconds(part["snapshot_ts"]).tolist()
    return list(
        map(
            OddsSnapshot,
            part["player_lookup"].tolist(),
            part["player_name"].tolist(),
            part["game_id"].tolist(),
            part["game_date"].tolist(),
            part["book"].tolist(),
            part["line"].astype(float).tolist(),
            part["over_price"].astype(np.int64).tolist(),
            part["under_price"].astype(np.int64).tolist(),
            [_utc(x) for x in stamps],
            part["source_api"].tolist(),
        )
    )


def line_book_frame(books: Sequence[LineBook]) -> pd.DataFrame:
    """Line books as columns (NaN where there is no sane line): line, opening, move, std, n_books."""

    def col(name: str) -> np.ndarray:
        return np.array([np.nan if getattr(b, name) is None else getattr(b, name) for b in books], float)

    return pd.DataFrame(
        {
            "line": col("line"),
            "opening": col("opening_line"),
            "move": col("line_move"),
            "std": col("multi_book_line_std"),
            "n_books": np.array([b.n_books for b in books], dtype=np.int64),
            "book": [b.line_book for b in books],
        }
    )

"""Multi-book odds snapshots (vectorized) and the line-book rule used for the market features.

:func:`generate_odds` turns the market's pre-game view of every lined player-game (:mod:`sim.engine`)
into per-book snapshots with numpy array operations (a full season is millions of rows): each book lists
a player with a probability that grows with his prominence, has its own bias, noise and reaction lag to
news, posts its opening line the evening before (18:00-21:30 ET) and intraday snapshots from the morning
until tip-off every 15-60 minutes; injury news moves the lines (after each book's lag), lines drift
slightly toward the truth as the day goes on (closing lines are sharper), and a book pulls the line when
the player (or the game) is ruled out. About 0.7 % of snapshots are bad on purpose: absurd lines
(0.5, 150.5, ten times the line), malformed prices (0, +50, -50) and stale books (no snapshot after
the opening).

The line book rule (domain.md section 3), as :func:`select_line` (one player-game, typed rows) and
:func:`line_book_arrays` (every player-game at once, same results):

* per book, the latest snapshot with ``snapshot_ts <= as_of``;
* sane: ``5.0 <= line <= 70.0``, both prices valid American odds (``<= -100`` or ``>= +100``), snapshot
  not older than 12 h before ``as_of``;
* selected: the first sane book in ``BOOK_PRIORITY``, then any other sane book in alphabetical order;
  ``fallback_depth`` = the selected book's index in that order among all books (7 for a non-priority book);
* ``opening_line``: the selected book's earliest snapshot at or before ``as_of`` whose line and prices
  pass the value checks (staleness does not apply to an opening);
* ``line_move`` = line - opening; ``n_books`` = books with a sane snapshot;
  ``multi_book_line_std`` = population standard deviation of those books' lines (None below 2 books),
  rounded to 4 decimals; min and max of the same lines.

The feature store holds the market at the date's decision time (one hour before the date's first
tip-off); the closing line of a game is the same rule at its tip-off.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import pandas as pd

from pipeline.schemas import BOOK_PRIORITY, KNOWN_BOOKS, OddsSnapshot

LINE_MIN, LINE_MAX, STALENESS_HOURS = 5.0, 70.0, 12.0

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
_OTHERS = sorted(b for b in BOOK_NAMES if b not in BOOK_PRIORITY)
# selection rank of each book: priority order, then the others alphabetically
BOOK_RANK = np.array(
    [
        BOOK_PRIORITY.index(b) if b in BOOK_PRIORITY else len(BOOK_PRIORITY) + _OTHERS.index(b)
        for b in BOOK_NAMES
    ]
)


def american(p: np.ndarray) -> np.ndarray:
    """American odds (multiples of 5) for win probabilities ``p`` in (0, 1)."""
    fav = -100.0 * p / (1.0 - p)
    dog = 100.0 * (1.0 - p) / p
    v = np.where(p >= 0.5, np.minimum(np.round(fav / 5) * 5, -100), np.maximum(np.round(dog / 5) * 5, 100))
    return v.astype(np.int64)


def valid_american(price: np.ndarray) -> np.ndarray:
    return (price <= -100) | (price >= 100)


def generate_odds(
    rng: np.random.Generator,
    market: pd.DataFrame,
    news: pd.DataFrame,
    open_ts: np.ndarray,
    morning_ts: np.ndarray,
) -> dict[str, np.ndarray]:
    """Odds snapshots of every market row as column arrays, sorted by (market row, book, time).

    Args:
      market: one row per lined player-game with ``tip``, ``base``, ``true_mu``, ``pull``, ``prominence``.
      news: line-moving events (``m`` market row, ``t`` epoch seconds, ``delta`` points).
      open_ts / morning_ts: per market row, 18:00 ET the day before and 09:00 ET on the game date.

    Returns:
      {"m", "b" (book index into BOOK_NAMES), "t" (epoch s), "line", "over", "under"}.
    """
    n, nb = len(market), len(BOOK_NAMES)
    cov = np.array([v[0] for v in BOOKS.values()])
    prom = market["prominence"].to_numpy()
    listed = rng.random((n, nb)) < cov[None, :] * (0.55 + 0.45 * prom[:, None])
    m_idx, b_idx = np.nonzero(listed)
    mp = len(m_idx)
    offset = (
        np.array([v[1] for v in BOOKS.values()])[b_idx]
        - 0.3
        + rng.normal(0, 0.3, mp)
        + (rng.random(mp) < 0.07) * rng.normal(0, 1.6, mp)
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

    # market value at (t - lag): base + news so far + drift toward the truth
    base = market["base"].to_numpy()
    true_mu = market["true_mu"].to_numpy()
    value = base[m] + _news_sum(news, m, t - lag[pair].astype(np.int64))
    o_ts = open_ts[m].astype(np.float64)
    frac = np.clip((t - o_ts) / np.maximum(tip[pair] - o_ts, 1.0), 0.0, 1.0)
    value = value + 0.15 * frac * (true_mu[m] - base[m]) + offset[pair]
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


class MarketView(NamedTuple):
    """The line book of one player-game at ``as_of`` (see the module docstring for the rule)."""

    line: float | None
    book: str | None
    source_api: str | None
    snapshot_ts: dt.datetime | None
    over_price: int | None
    under_price: int | None
    fallback_depth: int | None
    opening_line: float | None
    line_move: float | None
    n_books: int
    multi_book_line_std: float | None
    min_line: float | None
    max_line: float | None


NO_LINE = MarketView(None, None, None, None, None, None, None, None, None, 0, None, None, None)


def _value_ok(line: float, over: int, under: int) -> bool:
    return (
        (LINE_MIN <= line <= LINE_MAX) and (over <= -100 or over >= 100) and (under <= -100 or under >= 100)
    )


def select_line(
    snapshots: Sequence[OddsSnapshot], as_of: dt.datetime, staleness_hours: float = STALENESS_HOURS
) -> MarketView:
    """The line book rule for one player-game's snapshots at ``as_of`` (pure; see the module docstring)."""
    visible = sorted((s for s in snapshots if s.snapshot_ts <= as_of), key=lambda s: (s.book, s.snapshot_ts))
    latest: dict[str, OddsSnapshot] = {}
    for s in visible:
        latest[s.book] = s
    limit = dt.timedelta(hours=staleness_hours)
    sane = {
        b: s
        for b, s in latest.items()
        if _value_ok(s.line, s.over_price, s.under_price) and as_of - s.snapshot_ts <= limit
    }
    if not sane:
        return NO_LINE
    rank = {b: i for i, b in enumerate(BOOK_PRIORITY)}
    others = sorted(b for b in sane if b not in rank)
    order = [b for b in BOOK_PRIORITY if b in sane] + others
    chosen = order[0]
    depth = rank.get(chosen, len(BOOK_PRIORITY))
    snap = sane[chosen]
    opening = next(
        s.line for s in visible if s.book == chosen and _value_ok(s.line, s.over_price, s.under_price)
    )
    lines = [float(sane[b].line) for b in sorted(sane)]
    std = round(float(np.std(lines)), 4) if len(lines) >= 2 else None
    return MarketView(
        float(snap.line),
        chosen,
        snap.source_api,
        snap.snapshot_ts,
        int(snap.over_price),
        int(snap.under_price),
        depth,
        float(opening),
        round(float(snap.line) - float(opening), 4),
        len(lines),
        std,
        min(lines),
        max(lines),
    )


def line_book_arrays(
    odds: dict[str, np.ndarray], n_rows: int, as_of: np.ndarray, staleness_hours: float = STALENESS_HOURS
) -> pd.DataFrame:
    """:func:`select_line` for every market row at once; ``as_of`` is epoch seconds per market row.

    Returns a DataFrame indexed 0..n_rows-1 with line, book (index), snapshot t, opening, move, n_books,
    std, min, max, fallback_depth (NaN / -1 where there is no sane line).
    """
    m, b, t = odds["m"], odds["b"], odds["t"]
    line, over, under = odds["line"], odds["over"], odds["under"]
    vis = t <= as_of[m]
    same_next = np.zeros(len(m), dtype=bool)
    same_next[:-1] = (m[1:] == m[:-1]) & (b[1:] == b[:-1]) & vis[1:]
    latest = vis & ~same_next
    value_ok = (line >= LINE_MIN) & (line <= LINE_MAX) & valid_american(over) & valid_american(under)
    sane = latest & value_ok & (as_of[m] - t <= staleness_hours * 3600)
    si = np.nonzero(sane)[0]
    out = pd.DataFrame(
        {
            "line": np.full(n_rows, np.nan),
            "book": -1,
            "t": -1,
            "opening": np.nan,
            "move": np.nan,
            "n_books": 0,
            "std": np.nan,
            "min": np.nan,
            "max": np.nan,
            "depth": -1,
            "over": 0,
            "under": 0,
        }
    )
    if len(si) == 0:
        return out
    sm, sb, sl = m[si], b[si], line[si]
    n_books = np.bincount(sm, minlength=n_rows)
    s1 = np.bincount(sm, weights=sl, minlength=n_rows)
    mean = s1 / np.maximum(n_books, 1)
    dev = (sl - mean[sm]) ** 2
    std = np.sqrt(np.bincount(sm, weights=dev, minlength=n_rows) / np.maximum(n_books, 1))
    order = np.lexsort((BOOK_RANK[sb], sm))
    sel_rows = si[order]
    first = np.ones(len(order), dtype=bool)
    first[1:] = m[sel_rows][1:] != m[sel_rows][:-1]
    sel = sel_rows[first]
    rows = m[sel]
    vo = np.nonzero(vis & value_ok)[0]
    key_vo = m[vo].astype(np.int64) * 16 + b[vo]
    key_sel = m[sel].astype(np.int64) * 16 + b[sel]
    pos = np.searchsorted(key_vo, key_sel, side="left")  # odds sorted by (m, b, t): first = earliest
    opening = line[vo[pos]]
    mins = np.full(n_rows, np.inf)
    maxs = np.full(n_rows, -np.inf)
    np.minimum.at(mins, sm, sl)
    np.maximum.at(maxs, sm, sl)
    out.loc[rows, "line"] = line[sel]
    out.loc[rows, "book"] = b[sel]
    out.loc[rows, "t"] = t[sel]
    out.loc[rows, "over"] = over[sel]
    out.loc[rows, "under"] = under[sel]
    out.loc[rows, "opening"] = opening
    out.loc[rows, "move"] = np.round(line[sel] - opening, 4)
    out["n_books"] = n_books
    has2 = n_books >= 2
    out.loc[has2, "std"] = np.round(std[has2], 4)
    has1 = n_books >= 1
    out.loc[has1, "min"] = mins[has1]
    out.loc[has1, "max"] = maxs[has1]
    out.loc[rows, "depth"] = np.minimum(BOOK_RANK[b[sel]], len(BOOK_PRIORITY))
    return out


def is_nan(x: float | None) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))

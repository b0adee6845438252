"""Tests for sim.odds on the cached full season: books, coverage, opening and intraday snapshots, the rare
bad snapshots, injury news moving lines, and the vectorised line book (``line_book_arrays``) against the
row-by-row rule (``select_line``) (issue 2, domain.md section 3)."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pandas as pd
import pytest

import sim
from pipeline.schemas import BOOK_PRIORITY, FEATURE_INDEX, KNOWN_BOOKS, OddsSnapshot
from sim import odds as O
from tests.test_sim_league import ET, load_kind, season_dir

EPOCH = pd.Timestamp(0, tz="UTC")
UTC = dt.UTC


@pytest.fixture(scope="module")
def odds() -> pd.DataFrame:
    return load_kind("odds")


@pytest.fixture(scope="module")
def decision() -> dict[dt.date, pd.Timestamp]:
    meta = json.loads((season_dir() / "manifest.json").read_text())
    return {dt.date.fromisoformat(d): pd.Timestamp(v) for d, v in meta["decision_ts"].items()}


def _secs(ts: pd.Series) -> np.ndarray:
    return ((ts - EPOCH) // pd.Timedelta(seconds=1)).to_numpy(np.int64)


def _arrays(df: pd.DataFrame) -> tuple[dict[str, np.ndarray], pd.DataFrame]:
    """Odds rows as the column arrays of sim.odds (sorted by player-game, book, time) and the player-games."""
    pg = df[["player_lookup", "game_id", "game_date"]].drop_duplicates(["player_lookup", "game_id"])
    pg = pg.reset_index(drop=True)
    pg["m"] = np.arange(len(pg))
    j = df.merge(pg[["player_lookup", "game_id", "m"]], on=["player_lookup", "game_id"])
    m = j["m"].to_numpy(np.int64)
    b = j["book"].map({bk: i for i, bk in enumerate(O.BOOK_NAMES)}).to_numpy(np.int64)
    t = _secs(j["snapshot_ts"])
    order = np.lexsort((t, b, m))
    arrays = {
        "m": m[order],
        "b": b[order],
        "t": t[order],
        "line": j["line"].to_numpy(float)[order],
        "over": j["over_price"].to_numpy(np.int64)[order],
        "under": j["under_price"].to_numpy(np.int64)[order],
    }
    return arrays, pg


def _snapshots(df: pd.DataFrame) -> list[OddsSnapshot]:
    return [
        OddsSnapshot(
            r.player_lookup, r.player_name, r.game_id, r.game_date, r.book, float(r.line),
            int(r.over_price), int(r.under_price), r.snapshot_ts.to_pydatetime(), r.source_api,
        )
        for r in df.itertuples(index=False)
    ]  # fmt: skip


def _assert_same(mv: O.MarketView, row: pd.Series, key) -> None:
    if mv.line is None:
        assert np.isnan(row["line"]) and row["n_books"] == 0 and row["book"] == -1, key
        return
    assert row["line"] == mv.line and O.BOOK_NAMES[int(row["book"])] == mv.book, key
    assert row["opening"] == mv.opening_line and row["move"] == mv.line_move, key
    assert int(row["n_books"]) == mv.n_books and int(row["depth"]) == mv.fallback_depth, key
    assert row["min"] == mv.min_line and row["max"] == mv.max_line, key
    assert int(row["over"]) == mv.over_price and int(row["under"]) == mv.under_price, key
    assert int(row["t"]) == int(mv.snapshot_ts.timestamp()), key
    if mv.multi_book_line_std is None:
        assert np.isnan(row["std"]), key
    else:
        assert row["std"] == pytest.approx(mv.multi_book_line_std, abs=1e-9), key


@pytest.fixture(scope="module")
def cols(odds, decision) -> dict[str, np.ndarray]:
    """The odds table as integer/float arrays sorted by (player-game m, book b, time t), for fast checks.

    ``day`` / ``sec`` are the snapshot's ET calendar day (days since 1970-01-01) and ET second of day,
    ``game_day`` the game date, ``tip`` / ``as_of`` the tip-off and the date's decision time (epoch s).
    """
    p, _ = pd.factorize(odds["player_lookup"])
    g, games = pd.factorize(odds["game_id"])
    m, _ = pd.factorize(p.astype(np.int64) * len(games) + g)
    b = pd.Categorical(odds["book"], categories=O.BOOK_NAMES).codes.astype(np.int64)
    t = _secs(odds["snapshot_ts"])
    local = odds["snapshot_ts"].dt.tz_convert(ET).dt.tz_localize(None).to_numpy()
    day = local.astype("datetime64[D]")
    game_day = pd.to_datetime(pd.Series(odds["game_date"])).to_numpy().astype("datetime64[D]")
    sched = load_kind("schedule")
    tip = sched.sort_values("event_ts").groupby("game_id")["tipoff_utc"].last()
    tip_s = _secs(pd.Series(games).map(tip))[g]
    dec = {np.datetime64(d, "D"): int(v.timestamp()) for d, v in decision.items()}
    as_of = pd.Series(game_day).map(dec).to_numpy(np.int64)
    order = np.lexsort((t, b, m))
    out = {
        "m": m, "b": b, "t": t, "tip": tip_s, "as_of": as_of,
        "day": day.astype(np.int64), "game_day": game_day.astype(np.int64),
        "sec": ((local - day) // np.timedelta64(1, "s")).astype(np.int64),
        "line": odds["line"].to_numpy(float),
        "over": odds["over_price"].to_numpy(np.int64), "under": odds["under_price"].to_numpy(np.int64),
    }  # fmt: skip
    return {k: v[order] for k, v in out.items()}


def _same_pair_as_previous(c: dict[str, np.ndarray]) -> np.ndarray:
    same = np.zeros(len(c["m"]), dtype=bool)
    same[1:] = (c["m"][1:] == c["m"][:-1]) & (c["b"][1:] == c["b"][:-1])
    return same


def test_at_least_eight_known_books_with_their_source(odds, cols):
    books = set(odds["book"].unique())
    assert books <= set(KNOWN_BOOKS) and len(books) >= 8
    assert set(odds["source_api"].unique()) <= {"odds_api", "bettingpros"}
    src = pd.Categorical(odds["source_api"], categories=["odds_api", "bettingpros"]).codes.astype(np.int64)
    bk = pd.Categorical(odds["book"], categories=O.BOOK_NAMES).codes.astype(np.int64)
    pairs = np.unique(bk * 2 + src)
    assert len(pairs) == len(np.unique(bk))  # one source per book
    # one snapshot per (player-game, book, second)
    same = _same_pair_as_previous(cols)
    assert not (same[1:] & (cols["t"][1:] == cols["t"][:-1])).any()


def test_not_every_book_lists_every_player(cols):
    first = ~_same_pair_as_previous(cols)
    m, b = cols["m"][first], cols["b"][first]
    n_books = np.bincount(m)
    all_books = len(np.unique(b))
    share_all = float((n_books == all_books).mean())
    assert share_all < 0.5, share_all
    assert (n_books == 1).any() and 3.0 <= n_books.mean() <= 9.0, n_books.mean()
    # books differ in coverage: the priority books list far more player-games than the smallest ones
    per_book = np.bincount(b)[np.unique(b)]
    assert per_book.max() >= 1.5 * per_book.min(), per_book


def test_opening_the_day_before_and_intraday_every_15_to_60_minutes(cols):
    day, game_day = cols["day"], cols["game_day"]
    on_date = day == game_day
    assert (on_date | (day == game_day - 1)).all()
    # the opening: each book's first snapshot, the evening before the game (17:00-24:00 ET)
    same = _same_pair_as_previous(cols)
    first = ~same
    assert (day[first] == game_day[first] - 1).all()
    assert (cols["sec"][first] >= 17 * 3600).all()
    # intraday snapshots of the same book on the game date are 15 to 60 minutes apart
    intraday = np.zeros(len(day), dtype=bool)
    intraday[1:] = same[1:] & on_date[1:] & on_date[:-1]
    gap = (cols["t"][1:] - cols["t"][:-1])[intraday[1:]] / 60.0
    assert len(gap) > 100_000
    assert ((gap >= 15.0) & (gap <= 60.0 + 1 / 60)).all(), (gap.min(), gap.max())
    assert 20.0 <= float(np.median(gap)) <= 45.0
    # the first intraday snapshot comes in the morning; nothing after tip-off
    first_today = on_date & ~np.concatenate([[False], intraday[1:]])
    assert (cols["sec"][first_today] >= 9 * 3600).all()
    assert (cols["t"] < cols["tip"]).all()


def test_bad_snapshots_are_present_but_rare(cols):
    line, over, under = cols["line"], cols["over"], cols["under"]
    absurd = (line < O.LINE_MIN) | (line > O.LINE_MAX)
    bad_price = ~(O.valid_american(over) & O.valid_american(under))
    assert 0.0005 <= absurd.mean() <= 0.02, absurd.mean()
    assert (line >= 100).any() and (line <= 1.0).any()  # really absurd, not just low
    assert 0.0005 <= bad_price.mean() <= 0.02, bad_price.mean()
    assert 0 in set(over[bad_price]) | set(under[bad_price])
    # stale: a book whose latest snapshot at the decision time is older than the staleness limit
    vis = cols["t"] <= cols["as_of"]
    nxt_vis = np.zeros(len(vis), dtype=bool)
    nxt_vis[:-1] = ~_same_pair_as_previous(cols)[1:] | ~vis[1:]
    latest = vis & nxt_vis
    stale = (cols["as_of"] - cols["t"])[latest] > O.STALENESS_HOURS * 3600
    assert 0.0005 <= stale.mean() <= 0.02, stale.mean()


def test_line_book_arrays_equal_select_line_at_decision_time(odds, decision):
    """The vectorised line book behind the market features == select_line, row by row."""
    pgs = odds[["player_lookup", "game_id"]].drop_duplicates()
    sample = pgs.sample(n=300, random_state=7)
    sub = odds.merge(sample, on=["player_lookup", "game_id"])
    arrays, pg = _arrays(sub)
    as_of = pg["game_date"].map(decision)
    lb = O.line_book_arrays(arrays, len(pg), _secs(as_of))
    by_pg = {k: g for k, g in sub.groupby(["player_lookup", "game_id"])}
    feats = load_kind("features").set_index(["player_lookup", "game_id"])
    n_line = 0
    for i, r in pg.iterrows():
        key = (r["player_lookup"], r["game_id"])
        mv = sim.select_line(_snapshots(by_pg[key]), as_of[i].to_pydatetime())
        _assert_same(mv, lb.loc[i], key)
        # the feature store holds the same market view
        f = feats.loc[key]
        if mv.line is None:
            assert f["has_vegas_line"] == 0.0 and np.isnan(f["vegas_points_line"]), key
            continue
        n_line += 1
        assert f["has_vegas_line"] == 1.0 and f["vegas_points_line"] == mv.line, key
        assert f["vegas_opening_line"] == mv.opening_line and f["vegas_line_move"] == mv.line_move, key
        if mv.multi_book_line_std is not None:
            assert f["multi_book_line_std"] == pytest.approx(mv.multi_book_line_std), key
    assert n_line >= 250
    assert FEATURE_INDEX["vegas_points_line"] == 25


def _snap(book: str, minutes: int, line: float, over: int = -110, under: int = -110) -> OddsSnapshot:
    ts = dt.datetime(2026, 1, 10, 23, 0, tzinfo=UTC) + dt.timedelta(minutes=minutes)
    src = O.SOURCE_API[O.BOOK_NAMES.index(book)]
    return OddsSnapshot("p", "P", "20260110_BOS_LAL", dt.date(2026, 1, 10), book, line, over, under, ts, src)


AS_OF = dt.datetime(2026, 1, 10, 23, 0, tzinfo=UTC) + dt.timedelta(minutes=600)


@pytest.mark.parametrize(
    ("snaps", "book", "line", "opening", "n_books"),
    [
        # draftkings absurd now, fanduel bad price, betmgm stale (> 12 h): williamhill_us is selected
        (
            [
                _snap("draftkings", 0, 20.5),
                _snap("draftkings", 500, 205.0),
                _snap("fanduel", 100, 21.5),
                _snap("fanduel", 550, 21.5, over=50),
                _snap("betmgm", -200, 19.5),
                _snap("williamhill_us", 10, 4.5),
                _snap("williamhill_us", 20, 19.5),
                _snap("williamhill_us", 590, 21.0),
            ],
            "williamhill_us",
            21.0,
            19.5,
            1,
        ),
        # only non-priority books: alphabetical order, depth = len(BOOK_PRIORITY)
        (
            [_snap("fliff", 0, 10.5), _snap("bovada", 5, 11.5), _snap("bovada", 300, 12.5)],
            "bovada",
            12.5,
            11.5,
            2,
        ),
        # snapshots after as_of are invisible; a real 20.0 line is a line
        (
            [_snap("fanduel", 0, 20.0), _snap("fanduel", 700, 30.5), _snap("espnbet", 5, 20.5)],
            "fanduel",
            20.0,
            20.0,
            2,
        ),
        # nothing sane at all
        ([_snap("draftkings", 0, 0.5), _snap("fanduel", 0, 22.5, under=0)], None, None, None, 0),
    ],
)
def test_line_book_rule_on_crafted_snapshots(snaps, book, line, opening, n_books):
    mv = sim.select_line(snaps, AS_OF)
    assert (mv.book, mv.line, mv.opening_line, mv.n_books) == (book, line, opening, n_books)
    if book is not None:
        expected_depth = BOOK_PRIORITY.index(book) if book in BOOK_PRIORITY else len(BOOK_PRIORITY)
        assert mv.fallback_depth == expected_depth
    df = pd.DataFrame([s._asdict() for s in snaps])
    df["snapshot_ts"] = pd.to_datetime(df["snapshot_ts"], utc=True)
    arrays, pg = _arrays(df)
    lb = O.line_book_arrays(arrays, len(pg), np.array([int(AS_OF.timestamp())]))
    _assert_same(mv, lb.loc[0], book)


def test_injury_news_moves_teammates_lines(odds):
    """A lined player ruled out during the game day: his teammates' lines go up within the hour."""
    inj = load_kind("injuries")
    feats = load_kind("features")[["player_lookup", "game_date", "game_id", "team_abbr"]]
    outs = inj[inj["status"].str.lower() == "out"].merge(feats, on=["player_lookup", "game_date"])
    outs = outs.merge(odds[["player_lookup", "game_id"]].drop_duplicates(), on=["player_lookup", "game_id"])
    local = outs["report_ts"].dt.tz_convert(ET)
    outs = outs[(local.dt.date == outs["game_date"]) & local.dt.hour.between(10, 15)]
    assert len(outs) >= 30
    dk = odds[odds["game_id"].isin(set(outs["game_id"]))]
    dk = dk[(dk["book"] == "draftkings") & dk["line"].between(O.LINE_MIN, O.LINE_MAX)]
    dk = dk.merge(feats, on=["player_lookup", "game_date", "game_id"]).sort_values("snapshot_ts")
    by_team = {k: g for k, g in dk.groupby(["game_id", "team_abbr"])}
    moves = []
    for r in outs.itertuples(index=False):
        mates = by_team.get((r.game_id, r.team_abbr))
        if mates is None:
            continue
        for _, h in mates[mates["player_lookup"] != r.player_lookup].groupby("player_lookup"):
            before = h[h["snapshot_ts"] < r.report_ts]
            after = h[h["snapshot_ts"] >= r.report_ts + pd.Timedelta(hours=1)]
            if len(before) and len(after):
                moves.append(after["line"].iloc[0] - before["line"].iloc[-1])
    moves = np.array(moves)
    assert len(moves) >= 100
    assert moves.mean() > 0.2 and (moves > 0).mean() > 0.4 and (moves < 0).mean() < 0.1, (
        moves.mean(),
        (moves > 0).mean(),
        (moves < 0).mean(),
    )

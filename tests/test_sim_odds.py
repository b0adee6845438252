"""Tests for sim.odds on the cached full season: books, coverage, opening and intraday snapshots, the rare
bad snapshots, injury news moving lines (issue 2), and the parity of every line the simulator selects with
the pipeline's line book, ``pipeline.domain.linebook.build_line_book`` (issue 12, domain.md section 3)."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pandas as pd
import pytest

import sim
from pipeline.domain.linebook import build_line_book, is_valid_american
from pipeline.policy import Policy
from pipeline.schemas import FEATURE_INDEX, KNOWN_BOOKS, OddsSnapshot
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


def _snapshots(df: pd.DataFrame) -> list[OddsSnapshot]:
    return [
        OddsSnapshot(
            r.player_lookup, r.player_name, r.game_id, r.game_date, r.book, float(r.line),
            int(r.over_price), int(r.under_price), r.snapshot_ts.to_pydatetime(), r.source_api,
        )
        for r in df.itertuples(index=False)
    ]  # fmt: skip


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
    policy = Policy()
    absurd = (line < policy.line_min) | (line > policy.line_max)
    valid = np.vectorize(is_valid_american)
    bad_price = ~(valid(over) & valid(under))
    assert 0.0005 <= absurd.mean() <= 0.02, absurd.mean()
    assert (line >= 100).any() and (line <= 1.0).any()  # really absurd, not just low
    assert 0.0005 <= bad_price.mean() <= 0.02, bad_price.mean()
    assert 0 in set(over[bad_price]) | set(under[bad_price])
    # stale: a book whose latest snapshot at the decision time is older than the staleness limit
    vis = cols["t"] <= cols["as_of"]
    nxt_vis = np.zeros(len(vis), dtype=bool)
    nxt_vis[:-1] = ~_same_pair_as_previous(cols)[1:] | ~vis[1:]
    latest = vis & nxt_vis
    stale = (cols["as_of"] - cols["t"])[latest] > policy.staleness_hours * 3600
    assert 0.0005 <= stale.mean() <= 0.02, stale.mean()


def _book_tuple(b) -> tuple:
    return (b.line, b.line_book, b.opening_line, b.line_move, b.n_books, b.multi_book_line_std,
            b.fallback_depth, b.line_snapshot_ts, b.over_price, b.under_price, b.min_line, b.max_line)


def test_feature_store_market_equals_the_pipeline_line_book_on_the_season(odds, decision):
    """On 300 player-games of the full season: vegas features == build_line_book(every snapshot, decision
    time, Policy()), and prev_game_closing_line == build_line_book at the previous game's tip-off."""
    pgs = odds[["player_lookup", "game_id"]].drop_duplicates()
    sample = pgs.sample(n=300, random_state=7)
    sub = odds.merge(sample, on=["player_lookup", "game_id"])
    by_pg = {k: g for k, g in sub.groupby(["player_lookup", "game_id"])}
    feats = load_kind("features").set_index(["player_lookup", "game_id"])
    policy = Policy()
    n_line = 0
    for key, g in by_pg.items():
        book, _ = build_line_book(_snapshots(g), decision[g["game_date"].iloc[0]].to_pydatetime(), policy)
        f = feats.loc[key]
        if book.line is None:
            assert f["has_vegas_line"] == 0.0 and np.isnan(f["vegas_points_line"]), key
            continue
        n_line += 1
        assert f["has_vegas_line"] == 1.0 and f["vegas_points_line"] == book.line, key
        assert f["vegas_opening_line"] == book.opening_line and f["vegas_line_move"] == book.line_move, key
        if book.multi_book_line_std is None:
            assert np.isnan(f["multi_book_line_std"]), key
        else:
            assert f["multi_book_line_std"] == pytest.approx(book.multi_book_line_std), key
    assert n_line >= 250
    assert FEATURE_INDEX["vegas_points_line"] == 25


def test_simulator_lines_equal_the_pipeline_line_book_on_a_small_season():
    """Parity (issue 12): every player-game of a small simulated season; the simulator's selected line at
    the decision time (the feature store) and at tip-off (closing line, prev_game_closing_line) equal
    ``build_line_book`` on all of the player-game's snapshots at the same time."""
    small = sim.simulate(seed=5, teams=("LAL", "BOS", "DEN", "MIA"), start="2026-01-05", days=14)
    policy = Policy()
    by_pg: dict[tuple[str, str], list[OddsSnapshot]] = {}
    for o in small.odds:
        by_pg.setdefault((o.player_lookup, o.game_id), []).append(o)
    tips = {e.game_id: e.tipoff_utc for e in sorted(small.schedule, key=lambda e: e.event_ts)}
    closing: dict[tuple[str, str], float | None] = {}
    for key, snaps in by_pg.items():
        book, _ = build_line_book(snaps, tips[key[1]], policy)
        closing[key] = book.line
    mk = small.df("_market").set_index(["player_lookup", "game_id"])
    for key, line in closing.items():
        got = mk.loc[key, "closing_line"]
        assert (np.isnan(got) and line is None) or got == line, key
    n_line = n_none = n_prev = 0
    feats = sorted(small.features, key=lambda r: (r.player_lookup, r.game_date))
    full = small.df("box_scores")
    played_before = {}
    for r in full.sort_values("game_date").itertuples(index=False):
        played_before.setdefault(r.player_lookup, []).append((r.game_date, r.game_id))
    for fr in feats:
        as_of = dt.datetime.fromisoformat(small.meta["decision_ts"][fr.game_date.isoformat()])
        book, _ = build_line_book(by_pg.get((fr.player_lookup, fr.game_id), []), as_of, policy,
                                  key=(fr.game_date, fr.game_id, fr.player_lookup))
        f = fr.features
        if book.line is None:
            n_none += 1
            assert f[FEATURE_INDEX["has_vegas_line"]] == 0.0 and f[FEATURE_INDEX["vegas_points_line"]] is None
        else:
            n_line += 1
            assert f[FEATURE_INDEX["vegas_points_line"]] == book.line
            assert f[FEATURE_INDEX["vegas_opening_line"]] == book.opening_line
            assert f[FEATURE_INDEX["vegas_line_move"]] == book.line_move
            assert f[FEATURE_INDEX["multi_book_line_std"]] == book.multi_book_line_std
        prev = [g for d, g in played_before.get(fr.player_lookup, []) if d < fr.game_date]
        if prev:  # the previous game is in the window: its closing line (None without one)
            expected = closing.get((fr.player_lookup, prev[-1]))
            assert fr.prev_game_closing_line == expected, fr
            n_prev += expected is not None
    assert n_line > 50 and n_none > 50 and n_prev > 30


def _snap(book: str, minutes: int, line: float, over: int = -110, under: int = -110) -> OddsSnapshot:
    ts = dt.datetime(2026, 1, 10, 23, 0, tzinfo=UTC) + dt.timedelta(minutes=minutes)
    src = O.SOURCE_API[O.BOOK_NAMES.index(book)]
    return OddsSnapshot("p", "P", "20260110_BOS_LAL", dt.date(2026, 1, 10), book, line, over, under, ts, src)


AS_OF = dt.datetime(2026, 1, 10, 23, 0, tzinfo=UTC) + dt.timedelta(minutes=600)


@pytest.mark.parametrize(
    "snaps",
    [
        # the selected book's first snapshots are insane: the opening is a later one
        [_snap("draftkings", 0, 0.5), _snap("draftkings", 10, 21.5, over=50), _snap("draftkings", 20, 4.5),
         _snap("draftkings", 30, 19.5), _snap("draftkings", 500, 20.5), _snap("fanduel", 5, 22.5)],
        # the latest snapshot is insane, others stale or invisible; a non-priority book is selected
        [_snap("draftkings", 0, 20.5), _snap("draftkings", 500, 205.0), _snap("betmgm", -200, 19.5),
         _snap("bovada", 5, 11.5), _snap("bovada", 300, 12.5), _snap("fanduel", 700, 30.5)],
        # nothing sane at all
        [_snap("draftkings", 0, 0.5), _snap("fanduel", 0, 22.5, under=0)],
    ],
)
def test_line_books_equal_build_line_book_on_every_snapshot(snaps):
    """sim.odds.line_books hands the pipeline's rule a subset of the snapshots (the latest per book and the
    first few); the result is the rule's result on all of them, also when the opening lies further on."""
    df = pd.DataFrame([s._asdict() for s in snaps])
    df["snapshot_ts"] = pd.to_datetime(df["snapshot_ts"], utc=True)
    keys = df[["player_lookup", "game_id", "game_date"]].drop_duplicates()
    (got,) = O.line_books(df, keys, np.array([int(AS_OF.timestamp())]))
    expected, _ = build_line_book(snaps, AS_OF, Policy())
    assert _book_tuple(got[0]) == _book_tuple(expected)


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
    dk = dk[(dk["book"] == "draftkings") & dk["line"].between(Policy().line_min, Policy().line_max)]
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


def test_book_carries_its_read_of_a_player_into_his_next_game():
    """sim-1.3 (issue 13): a player's first game has no read; each later game carries READ_WEIGHT of the
    decayed average of the book's closing reads (closing posterior minus public prior) of his earlier
    games, in tip-off order whatever the row order, with the smaller prior error READ_PRIOR_SD."""
    player = np.array([7, 3, 7, 7, 3])
    tip = np.array([300, 100, 100, 200, 200])
    public = np.array([20.0, 10.0, 20.0, 20.0, 10.0])
    signal = np.log(public) + O.PUBLIC_LOG_BIAS + np.array([0.0, -0.2, 0.3, 0.1, 0.0])
    sd = np.full(5, 0.1)
    read, prior_sd = O.book_reads(player, tip, public, signal, sd)
    assert read[2] == read[1] == 0.0 and prior_sd[2] == prior_sd[1] == O.PUBLIC_LOG_SD
    assert (prior_sd[[0, 3, 4]] == O.READ_PRIOR_SD).all()

    def surprise(i: int) -> float:
        prior = np.log(public[i]) + O.PUBLIC_LOG_BIAS
        return float(O.book_mean_log(public[i], signal[i], sd[i], read[i], prior_sd[i]) - prior)

    m3 = (1 - O.READ_DECAY) * surprise(2)  # player 7: games at 100 (row 2), 200 (row 3), 300 (row 0)
    assert read[3] == pytest.approx(O.READ_WEIGHT * m3)
    assert read[0] == pytest.approx(O.READ_WEIGHT * (O.READ_DECAY * m3 + (1 - O.READ_DECAY) * surprise(3)))
    assert read[4] == pytest.approx(O.READ_WEIGHT * (1 - O.READ_DECAY) * surprise(1)) and read[4] < 0
    # the read moves the line the way the book's last view of the player did
    assert O.book_median(public[3:4], signal[3:4], 0.45, read[3:4], prior_sd[3:4])[0] > O.book_median(
        public[3:4], signal[3:4], 0.45)[0]

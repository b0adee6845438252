"""Tests for pipeline.domain.linebook: sanity boundaries, book priority, market context, closing line."""

import datetime as dt

import pytest

from pipeline.domain.linebook import build_line_book, closing_line, is_valid_american
from pipeline.policy import Policy
from pipeline.schemas import OddsSnapshot

P = Policy()
D = dt.date(2026, 2, 22)
AS_OF = dt.datetime(2026, 2, 22, 22, 0, tzinfo=dt.UTC)


def snap(book="draftkings", line=24.5, hours_before=1.0, over=-110, under=-110, player="lebronjames",
         source="odds_api"):
    return OddsSnapshot(player, "LeBron James", "20260222_LAL_BOS", D, book, line, over, under,
                        AS_OF - dt.timedelta(hours=hours_before), source)


def codes(diags):
    return [(d.code, d.book, d.reason) for d in diags]


@pytest.mark.parametrize("price, ok", [
    (-100, True), (-99, False), (100, True), (99, False), (0, False), (-110, True), (250, True),
    (None, False), (True, False), (-110.0, True), (-110.5, False), ("x", False), (float("nan"), False),
])
def test_is_valid_american(price, ok):
    assert is_valid_american(price) is ok


@pytest.mark.parametrize("line, sane", [(5.0, True), (4.9, False), (70.0, True), (70.5, False), (20.0, True)])
def test_line_range_boundaries(line, sane):
    book, diags = build_line_book([snap(line=line)], AS_OF, P)
    assert (book.line == line) is sane
    if not sane:
        assert codes(diags) == [("LINE_SANITY_REJECT", "draftkings", "line_out_of_range"),
                                ("NO_PROP_LINE", None, "no_sane_line")]
        assert book.n_books == 0 and book.line is None


@pytest.mark.parametrize("over, under, sane", [(-100, 100, True), (-99, -110, False), (-110, 0, False),
                                               (100, -100, True)])
def test_price_sanity(over, under, sane):
    book, diags = build_line_book([snap(over=over, under=under)], AS_OF, P)
    assert (book.line is not None) is sane
    if not sane:
        assert diags[0].reason == "invalid_price"


def test_staleness_exactly_12h_is_fresh_and_a_second_more_is_stale():
    book, _ = build_line_book([snap(hours_before=12.0)], AS_OF, P)
    assert book.line == 24.5
    book, diags = build_line_book([snap(hours_before=12.0 + 1 / 3600)], AS_OF, P)
    assert book.line is None and diags[0].reason == "stale" and diags[0].code == "LINE_SANITY_REJECT"


def test_priority_walk_and_fallback_depth():
    snaps = [snap("fanduel", 25.5), snap("betmgm", 24.5), snap("bovada", 23.5)]
    book, diags = build_line_book(snaps, AS_OF, P)
    assert (book.line_book, book.line, book.fallback_depth) == ("fanduel", 25.5, 1)
    src = [d for d in diags if d.code == "LINE_SOURCE"]
    assert len(src) == 1 and src[0].book == "fanduel" and '"fallback_depth":1' in src[0].value
    assert book.n_books == 3 and book.min_line == 23.5 and book.max_line == 25.5
    assert book.multi_book_line_std == pytest.approx(0.8165, abs=1e-4)  # population std


def test_draftkings_insane_falls_back_and_other_books_are_alphabetical():
    snaps = [snap("draftkings", 3.5), snap("fliff", 22.5), snap("bovada", 23.5), snap("prizepicks", 24.5)]
    book, diags = build_line_book(snaps, AS_OF, P)
    assert book.line_book == "bovada" and book.fallback_depth == len(P.book_priority)
    assert book.n_books == 2  # pick'em site and the insane draftkings do not count
    rejects = {(d.book, d.reason) for d in diags if d.code == "LINE_SANITY_REJECT"}
    assert rejects == {("draftkings", "line_out_of_range"), ("prizepicks", "pickem_site")}


def test_pickem_only_gives_no_line():
    book, diags = build_line_book([snap("prizepicks", 24.5)], AS_OF, P)
    assert book.line is None and diags[-1].code == "NO_PROP_LINE"


def test_latest_per_book_ignores_the_future_and_tracks_opening_and_move():
    snaps = [snap(line=22.5, hours_before=6), snap(line=23.5, hours_before=3),
             snap(line=24.5, hours_before=1), snap(line=30.5, hours_before=-1)]  # after as_of: invisible
    book, _ = build_line_book(list(reversed(snaps)), AS_OF, P)
    assert (book.line, book.opening_line, book.line_move) == (24.5, 22.5, 2.0)
    assert book.line_snapshot_ts == AS_OF - dt.timedelta(hours=1)
    assert book.multi_book_line_std is None  # one book


def test_latest_snapshot_insane_rejects_the_book_even_if_an_older_one_was_sane():
    book, diags = build_line_book([snap(line=24.5, hours_before=3), snap(line=0.5, hours_before=1)], AS_OF, P)
    assert book.line is None and diags[0].reason == "line_out_of_range"


def test_prop_line_delta_and_missing_previous():
    book, _ = build_line_book([snap(line=24.5)], AS_OF, P, prev_game_closing_line=22.5)
    assert book.prop_line_delta == 2.0
    book, _ = build_line_book([snap(line=24.5)], AS_OF, P)
    assert book.prop_line_delta is None


def test_no_snapshots_needs_a_key_and_mixed_player_games_fail():
    book, diags = build_line_book([], AS_OF, P, key=(D, "20260222_LAL_BOS", "x"))
    assert book.line is None and book.n_books == 0 and diags[0].reason == "no_snapshots"
    with pytest.raises(ValueError):
        build_line_book([], AS_OF, P)
    with pytest.raises(ValueError):
        build_line_book([snap(), snap(player="someoneelse")], AS_OF, P)


def test_diagnostics_stamp_policy_version_and_run_id():
    _, diags = build_line_book([snap()], AS_OF, P, run_id="r1")
    assert all(d.policy_version == P.version and d.run_id == "r1" for d in diags)


def test_closing_line_at_tipoff():
    tip = AS_OF + dt.timedelta(hours=2)
    snaps = [snap(line=24.5, hours_before=1), snap(line=25.5, hours_before=-1),
             snap(line=27.5, hours_before=-3)]
    assert closing_line(snaps, tip, P) == (25.5, "draftkings", AS_OF + dt.timedelta(hours=1))
    assert closing_line([snap(line=2.5)], tip, P) is None
    assert closing_line([], tip, P) is None


def test_population_std_agrees_with_numpy_at_the_line_books_precision():
    import random

    import numpy as np

    from pipeline.domain.linebook import _clean, population_std

    rng = random.Random(14)
    for trial in range(20_000):
        n = rng.randint(2, 12)
        if trial % 2:  # any line in range
            values = [rng.uniform(0.5, 60.0) for _ in range(n)]
        else:  # the half-point lines books post
            values = [rng.randint(1, 120) / 2 for _ in range(n)]
        assert _clean(population_std(values)) == _clean(float(np.std(values))), values
    assert population_std([10.5, 10.5]) == 0.0
    assert population_std([10.0, 11.0]) == 0.5

"""Tests for pipeline.domain.linebook.retained_snapshots: the bounded line-book state of the stream (at most
two snapshots per book) builds the same line book as every snapshot, at any later decision time."""

from __future__ import annotations

import datetime as dt
import random

import pytest

from pipeline.domain.linebook import build_line_book, retained_snapshots
from pipeline.policy import Policy
from pipeline.schemas import OddsSnapshot

P = Policy()
D = dt.date(2026, 2, 22)
T0 = dt.datetime(2026, 2, 22, 8, 0, tzinfo=dt.UTC)
BOOKS = ("draftkings", "fanduel", "betmgm", "bovada", "fliff", "espnbet")


def snap(book: str, line, minute: int, *, over=-110, under=-110, source="odds_api", name="LeBron James"):
    return OddsSnapshot("lebronjames", name, "20260222_LAL_BOS", D, book, line, over, under,
                        T0 + dt.timedelta(minutes=minute), source)


def random_snapshots(rng: random.Random, n: int) -> list[OddsSnapshot]:
    """Snapshots in arrival order (not time order), with equal times, invalid lines and prices, stale
    ones, pick'em sites and name changes: every branch of the line book."""
    out = []
    for _ in range(n):
        line = rng.choice([24.5, 25.0, 25.5, 23.5, 4.5, 71.0, None])
        over = rng.choice([-110, -105, 100, -99, None])
        out.append(snap(rng.choice(BOOKS), line, rng.randrange(0, 15 * 60, 7), over=over,
                        source=rng.choice(["odds_api", "bettingpros"]),
                        name=rng.choice(["LeBron James", "Lebron James"])))
    return out


@pytest.mark.parametrize("seed", range(40))
def test_retained_snapshots_build_the_same_line_book_at_every_later_decision_time(seed):
    rng = random.Random(seed)
    snaps = random_snapshots(rng, rng.randrange(1, 120))
    retained = retained_snapshots(snaps, P)
    assert len(retained) <= 2 * len({s.book for s in snaps})
    latest = max(s.snapshot_ts for s in snaps)
    for hours in (0, 3, 11.9, 12.5, 30):  # fresh, some books stale, every book stale
        as_of = latest + dt.timedelta(hours=hours)
        assert build_line_book(retained, as_of, P, prev_game_closing_line=22.5) == build_line_book(
            snaps, as_of, P, prev_game_closing_line=22.5)


def test_compacting_as_snapshots_arrive_equals_the_whole_history():
    """The stream compacts after every snapshot: compacting the compacted state plus the new snapshot
    gives the same line book as keeping everything."""
    rng = random.Random(7)
    state: list[OddsSnapshot] = []
    seen: list[OddsSnapshot] = []
    for s in random_snapshots(rng, 300):
        seen.append(s)
        state = retained_snapshots(state + [s], P)
        as_of = max(x.snapshot_ts for x in seen)
        assert build_line_book(state, as_of, P) == build_line_book(seen, as_of, P)
    assert len(state) <= 2 * len(BOOKS)


def test_the_opening_snapshot_of_a_book_is_kept_when_later_ones_move_the_line():
    snaps = [snap("draftkings", 4.0, 0), snap("draftkings", 24.5, 10), snap("draftkings", 25.5, 20),
             snap("draftkings", 26.5, 30)]
    retained = retained_snapshots(snaps, P)
    assert retained == [snaps[1], snaps[3]]  # the first valid one (the opening) and the latest
    book, _ = build_line_book(retained, T0 + dt.timedelta(hours=1), P)
    assert (book.line, book.opening_line, book.line_move) == (26.5, 24.5, 2.0)


@pytest.mark.parametrize("seed", range(20))
def test_changes_retained_answers_whether_the_whole_pass_would_change_the_cell(seed):
    from pipeline.domain.linebook import changes_retained

    rng = random.Random(1000 + seed)
    history = random_snapshots(rng, rng.randrange(0, 60))
    retained = retained_snapshots(history, P)
    assert retained_snapshots(retained, P) == retained  # the cell is its own fixed point
    candidates = random_snapshots(rng, 200) + history + [s._replace(player_name="Other") for s in retained]
    answers = []
    for s in candidates:
        changed = retained_snapshots(retained + [s], P) != retained
        assert changes_retained(retained, s, P) == changed, s
        answers.append(changed)
    assert any(answers) and not all(answers)  # both answers occur

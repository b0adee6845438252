"""Unit tests for pipeline/domain/lifecycle.py: every transition of the streaming pick lifecycle."""

from __future__ import annotations

import datetime as dt

from pipeline.domain import lifecycle
from pipeline.domain.lifecycle import diff_picks, lock_started, withdrawal_reason
from pipeline.schemas import Pick

UTC = dt.UTC
TIP = dt.datetime(2026, 2, 23, 0, 30, tzinfo=UTC)
BEFORE = TIP - dt.timedelta(hours=2)
AFTER = TIP + dt.timedelta(minutes=5)
GAME = "20260222_LAL_BOS"
TIPS = {GAME: TIP}


def pick(player="alpha", *, direction="OVER", line=20.5, edge=5.5, rank=1, status="active", version=1,
         game_id=GAME) -> Pick:
    return Pick(
        pick_id=f"{player}-{direction}", game_date=dt.date(2026, 2, 22), game_id=game_id,
        player_lookup=player, player_name=player.title(), team_abbr="LAL", opponent_team_abbr="BOS",
        tipoff_utc=TIP, rank=rank,
        direction=direction, line=line, line_book="draftkings", line_snapshot_ts=BEFORE, consensus_edge=edge,
        predicted_points=line + edge, agreement=1.0, n_families=2, n_models=2, dispersion=0.1, confidence=0.9,
        model_ids=("m1", "m2"), signals=("high_edge", "model_health"), signal_details="{}", filter_audit="[]",
        pick_angles=("High conviction",), ultra_tier=False, ultra_criteria="{}", status=status,
        version=version)


def test_new_pick_is_created_at_version_1():
    changes, latest = diff_picks({}, [pick()], now=BEFORE, tipoffs=TIPS)
    assert [(c.change, c.pick.version, c.pick.status) for c in changes] == [("created", 1, "active")]
    assert latest["alpha-OVER"].version == 1
    assert changes[0].changed_at == BEFORE


def test_line_move_updates_and_same_pick_is_no_change():
    prev = {"alpha-OVER": pick()}
    changes, latest = diff_picks(prev, [pick(line=21.0, edge=5.0)], now=BEFORE, tipoffs=TIPS)
    assert [(c.change, c.pick.version, c.pick.line) for c in changes] == [("updated", 2, 21.0)]
    again, _ = diff_picks(latest, [pick(line=21.0, edge=5.0)], now=BEFORE, tipoffs=TIPS)
    assert again == []
    # A fresh snapshot of the same line (new snapshot time, same numbers) is not news.
    same = pick(line=21.0, edge=5.0)._replace(line_snapshot_ts=BEFORE + dt.timedelta(minutes=9))
    assert diff_picks(latest, [same], now=BEFORE, tipoffs=TIPS)[0] == []


def test_no_longer_selected_is_withdrawn_with_reason():
    prev = {"alpha-OVER": pick()}
    changes, latest = diff_picks(prev, [], now=BEFORE, tipoffs=TIPS)
    assert [(c.change, c.pick.status, c.pick.version, c.pick.withdrawn_reason) for c in changes] == [
        ("withdrawn", "withdrawn", 2, "no_longer_passes")]
    # Withdrawn stays withdrawn without a new version.
    assert diff_picks(latest, [], now=BEFORE, tipoffs=TIPS)[0] == []


def test_withdrawn_pick_that_passes_again_is_created_as_next_version():
    prev = {"alpha-OVER": pick(status="withdrawn", version=2)}
    changes, _ = diff_picks(prev, [pick()], now=BEFORE, tipoffs=TIPS)
    assert [(c.change, c.pick.status, c.pick.version) for c in changes] == [("created", "active", 3)]


def test_postponed_injury_and_direction_flip_reasons():
    prev = {"alpha-OVER": pick("alpha"), "beta-OVER": pick("beta", rank=2),
            "gamma-OVER": pick("gamma", rank=3)}
    removed = {f"{GAME}|alpha": "game_postponed", f"{GAME}|beta": "injury_out"}
    flipped = pick("gamma", direction="UNDER", edge=-5.5)
    changes, latest = diff_picks(prev, [flipped], now=BEFORE, tipoffs=TIPS, removed=removed)
    reasons = {c.pick.pick_id: (c.change, c.pick.withdrawn_reason) for c in changes}
    assert reasons == {
        "alpha-OVER": ("withdrawn", "postponed"),
        "beta-OVER": ("withdrawn", "injury_out"),
        "gamma-OVER": ("withdrawn", "direction_flipped"),
        "gamma-UNDER": ("created", None),
    }
    assert [c.change for c in changes] == ["withdrawn", "withdrawn", "withdrawn", "created"]
    assert latest["gamma-UNDER"].version == 1


def test_tipoff_locks_and_locked_never_changes():
    prev = {"alpha-OVER": pick()}
    changes, latest = diff_picks(prev, [pick(line=25.5, edge=7.0)], now=AFTER, tipoffs=TIPS)
    assert [(c.change, c.pick.status, c.pick.version, c.pick.line) for c in changes] == [
        ("locked", "locked", 2, 20.5)]  # locked with the pre-tip-off line, not the late update
    # A late update (or a withdrawal) after tip-off changes nothing.
    assert diff_picks(latest, [pick(line=30.5)], now=AFTER, tipoffs=TIPS)[0] == []
    assert diff_picks(latest, [], now=AFTER, tipoffs=TIPS, removed={f"{GAME}|alpha": "injury_out"})[0] == []


def test_started_games_are_never_touched():
    # No creation after tip-off; a withdrawn pick stays withdrawn; the schedule can start a game early.
    assert diff_picks({}, [pick()], now=AFTER, tipoffs=TIPS)[0] == []
    withdrawn = {"alpha-OVER": pick(status="withdrawn", version=2)}
    assert diff_picks(withdrawn, [pick()], now=AFTER, tipoffs=TIPS)[0] == []
    changes, _ = diff_picks({"alpha-OVER": pick()}, [pick()], now=BEFORE, tipoffs=TIPS,
                            statuses={GAME: "in_progress"})
    assert [c.change for c in changes] == ["locked"]


def test_a_postponed_game_never_locks_its_picks_are_withdrawn():
    """schedule.game_started: a postponed game did not start, even once its old tip-off has passed."""
    prev = {"alpha-OVER": pick()}
    changes, latest = diff_picks(prev, [], now=AFTER, tipoffs=TIPS, statuses={GAME: "postponed"},
                                 removed={f"{GAME}|alpha": "game_postponed"})
    assert [(c.change, c.pick.withdrawn_reason) for c in changes] == [("withdrawn", "postponed")]
    assert lock_started(prev, now=AFTER, tipoffs=TIPS, statuses={GAME: "postponed"})[0] == []
    assert [c.change for c in lock_started(prev, now=AFTER, tipoffs=TIPS)[0]] == ["locked"]


def test_tipoff_falls_back_to_the_pick_and_lock_started():
    prev = {"alpha-OVER": pick(), "beta-OVER": pick("beta", game_id="20260222_NYK_MIA")}
    changes, latest = lock_started(prev, now=AFTER, tipoffs={})
    assert sorted(c.pick.pick_id for c in changes) == ["alpha-OVER", "beta-OVER"]
    assert all(p.status == "locked" for p in latest.values())
    assert lock_started(latest, now=AFTER, tipoffs={})[0] == []


def test_history_rows_and_public_picks():
    changes, latest = diff_picks({}, [pick(), pick("beta", rank=2)], now=BEFORE, tipoffs=TIPS)
    row = changes[0].history_row()
    assert (row.change, row.pick_id, row.version, row.changed_at) == ("created", "alpha-OVER", 1, BEFORE)
    latest["beta-OVER"] = latest["beta-OVER"]._replace(status="withdrawn")
    assert [p.pick_id for p in lifecycle.active_picks(latest)] == ["alpha-OVER"]


def test_withdrawal_reason_mapping():
    assert withdrawal_reason(None) == "no_longer_passes"
    assert withdrawal_reason("game_postponed") == "postponed"
    assert withdrawal_reason("game_cancelled") == "cancelled"
    assert withdrawal_reason("injury_doubtful") == "injury_doubtful"
    assert withdrawal_reason("quality_below_threshold_85") == "no_longer_passes"

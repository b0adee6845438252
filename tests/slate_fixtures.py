"""Small inline fixtures for the slate transforms and graph tests: one game, a few players, and a tiny
registry of real CatBoost models trained here on a synthetic frame (no mocks)."""

from __future__ import annotations

import datetime as dt
import functools
import tempfile

from pipeline.schemas import FEATURE_INDEX, BoxScore, FeatureRow, InjuryReport, OddsSnapshot, ScheduleEvent
from pipeline.transforms.slate import DatePlan, GameState

UTC = dt.UTC
GAME_DATE = dt.date(2026, 2, 22)
GAME_ID = "20260222_LAL_BOS"
TIPOFF = dt.datetime(2026, 2, 23, 0, 30, tzinfo=UTC)
AS_OF = TIPOFF - dt.timedelta(hours=1)


def feature_row(
    player: str,
    *,
    team="LAL",
    opp="BOS",
    quality=92.0,
    alert="green",
    matchup=80.0,
    defaults=0,
    avg=20.0,
    game_id=GAME_ID,
    game_date=GAME_DATE,
) -> FeatureRow:
    values: list[float | None] = [1.0] * 55
    values[FEATURE_INDEX["points_avg_last_5"]] = avg + 1
    values[FEATURE_INDEX["points_avg_last_10"]] = avg
    values[FEATURE_INDEX["points_avg_season"]] = avg
    values[FEATURE_INDEX["points_std_last_10"]] = 5.0
    values[FEATURE_INDEX["games_vs_opponent"]] = 1.0
    values[FEATURE_INDEX["minutes_avg_last_10"]] = 32.0
    return FeatureRow(
        player_lookup=player,
        game_id=game_id,
        game_date=game_date,
        team_abbr=team,
        opponent_team_abbr=opp,
        feature_version="v12_55",
        features=tuple(values),
        feature_quality_score=quality,
        quality_alert_level=alert,
        matchup_quality_pct=matchup,
        required_default_count=defaults,
        default_feature_indices=(),
        prev_game_closing_line=avg - 0.5,
    )


def odds(
    player: str,
    book: str,
    line: float,
    minutes_before_asof: int = 30,
    *,
    game_id=GAME_ID,
    over=-110,
    under=-110,
) -> OddsSnapshot:
    return OddsSnapshot(
        player_lookup=player,
        player_name=player.title(),
        game_id=game_id,
        game_date=GAME_DATE,
        book=book,
        line=line,
        over_price=over,
        under_price=under,
        snapshot_ts=AS_OF - dt.timedelta(minutes=minutes_before_asof),
        source_api="odds_api",
    )


def box(player: str, days_before: int, points=20.0, minutes=32.0, team="LAL") -> BoxScore:
    d = GAME_DATE - dt.timedelta(days=days_before)
    return BoxScore(
        player_lookup=player,
        game_id=f"{d:%Y%m%d}_LAL_MIA",
        game_date=d,
        team_abbr=team,
        points=points,
        minutes=minutes,
        is_dnp=False,
        starter=True,
        plus_minus=2.0,
        fg3a=5.0,
        fg3m=2.0,
        opponent_team_abbr="MIA",
    )


def schedule_event(status="scheduled", game_id=GAME_ID) -> ScheduleEvent:
    return ScheduleEvent(
        game_id=game_id,
        game_date=GAME_DATE,
        tipoff_utc=TIPOFF,
        home_team="BOS",
        away_team="LAL",
        status=status,
        new_game_date=None,
        event_ts=TIPOFF - dt.timedelta(hours=20),
    )


def injury(player: str, status: str) -> InjuryReport:
    return InjuryReport(
        player_lookup=player,
        game_date=GAME_DATE,
        status=status,
        reason="knee",
        report_ts=AS_OF - dt.timedelta(hours=3),
    )


def date_plan(model_ids: tuple[str, ...], status="scheduled", run_mode="FIRST") -> DatePlan:
    game = GameState(
        game_id=GAME_ID,
        game_date=GAME_DATE,
        tipoff_utc=TIPOFF,
        home_team="BOS",
        away_team="LAL",
        status=status,
        new_game_date=None,
    )
    return DatePlan(
        game_date=GAME_DATE, as_of=AS_OF, run_mode=run_mode, games={GAME_ID: game}, model_ids=model_ids
    )


@functools.lru_cache(maxsize=1)
def tiny_registry():
    """Two real tiny CatBoost models (v12_mae and v9_mae) trained on a synthetic frame; cached per process."""
    from models import governance, train
    from models.registry import Registry
    from models.synthetic import synthetic_frame

    out = tempfile.mkdtemp(prefix="props-tiny-models-")
    frame = synthetic_frame(dt.date(2025, 11, 1), 30, players=30, seed=3)
    frame = frame[~frame["is_dnp"]] if "is_dnp" in frame else frame
    cut = dt.date(2025, 11, 20)
    dates = frame["game_date"].map(lambda d: d if isinstance(d, dt.date) else d.date())
    tr, ho = frame[dates <= cut], frame[dates > cut]
    params = train.TrainParams(iterations=20, depth=4, thread_count=1)
    # fixture models must be enabled: gates that every model passes (there is no override, domain.md §9)
    lenient = governance.GateThresholds(edge=0.0, big_edge=0.0, min_hr=0.0, min_bets=0,
                                        max_abs_vegas_bias=1e9, max_abs_tier_error=1e9, min_direction_hr=0.0)
    specs = [
        train.train_family(
            fam,
            tr,
            ho,
            window=(dt.date(2025, 11, 1), cut),
            holdout_window=(dt.date(2025, 11, 21), dt.date(2025, 11, 30)),
            out_dir=out,
            params=params,
            thresholds=lenient,
        )
        for fam in ("v12_mae", "v9_mae")
    ]
    registry = Registry(specs, f"{out}/registry.json")
    registry.write()
    return registry

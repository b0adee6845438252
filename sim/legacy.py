"""A simulated season in the old Cloud Run system's table shapes (``props simulate --format legacy``).

The old system keeps its inputs in BigQuery tables whose shapes and quirks are described in
``shared/docs/legacy.md``; ``pipeline/io/legacy.py`` maps them to our rows (``--inputs
bigquery-legacy://PROJECT``). This module is the inverse of that mapping: it converts the simulator's
native records into the old tables, so a season can be loaded into BigQuery (or its emulator) and run
through ``bigquery-legacy://`` to check that the switch-over reads the same data::

    s = sim.simulate(seed=7, teams=("LAL", "BOS", "DEN", "MIA"), start="2026-01-05", days=5)
    s.write("season/")                      # the native files (unchanged by this module)
    write_legacy(s, "legacy/")              # one file per old table + manifest.json
    # bq load --source_format=NEWLINE_DELIMITED_JSON nba_raw.odds_api_player_points_props \
    #     legacy/nba_raw.odds_api_player_points_props.jsonl <schema from manifest.json>

Files: ``OUT/<dataset>.<table>.jsonl`` (newline-delimited JSON, BigQuery's load format) for every table of
``pipeline.io.legacy.LEGACY_TABLES``, and ``OUT/manifest.json`` (per table: file, rows, BigQuery schema,
partitioning; the simulation's seed and dates; where each quirk was put).

Every quirk of legacy.md is present, injected so the old tables say the same as the native files:

* **Game ids.** ``nbac_schedule`` and ``game_postponements`` hold official 10-digit ids (``00225NNNNN``,
  numbered by date; a postponed game keeps its id on its new date); ``odds_api_player_points_props`` holds
  them from :data:`ODDS_OFFICIAL_ID_SINCE` and the date-based form before; every other table holds the
  date-based ``YYYYMMDD_AWAY_HOME`` form.
* **Prices.** Odds API prices are decimal (``over_price``), with the truncating ``*_american`` columns
  beside them (1.87 -> -114). The decimal written is the shortest one (2 to 6 decimals) that the reader's
  conversion (:func:`pipeline.io.legacy.american_from_decimal`) turns back into the native American price,
  so both sources give the same price (two decimals such as 1.87 do not round-trip for every price, e.g.
  -300 -> 1.33 -> -303). A price that is not a valid American price (the simulator's planted bad prices)
  has no decimal form: the decimal is NULL and the ``*_american`` column carries it, as the reader expects.
  BettingPros prices are American.
* **Tip-off times.** ``game_date_est`` is true UTC from :data:`pipeline.io.legacy.SCHEDULE_UTC_SINCE`
  and Eastern wall time labelled UTC before it.
* **Game status.** One row per (game_id, game_date), the game's last state (the writer MERGEs): integer
  ``game_status`` (1/2/3, scores when final) and ``game_status_text``.
* **A postponement.** A game the native schedule postpones is ``Postponed`` on its original date, in
  ``game_postponements`` (``confirmed``, with its new date), and under the same id on the new date. When
  the written dates have none, one is injected on ``postpone_on`` (default: the last date with two idle
  teams): a game between two teams that do not play that day, which the native data lacks too (so it has
  no players), postponed to a date after the written ones.
* **Injury reports** keep the Eastern report hour only (``report_date`` + ``report_hour``). The hour slot
  is the report's hour, or the next hour when the slot's start would move the report across its game
  date's decision time (so a run at the decision time sees the same reports from both sources); of a
  player's reports in one slot the last is kept (the slot's report). Status lowercase.
* **Features** in ``feature_{i}_value`` columns, NULL where the simulator leaves a feature missing
  (the legacy ``features`` array holds 0.0 defaults there); feature 54 is the line delta the reader turns
  back into the previous game's line; ``feature_version`` ``v2_54features``, plus a narrower
  ``v2_39features`` row for one player a date (the reader keeps the widest).
* **In-game snapshots**: extra Odds API rows after tip-off (negative ``minutes_before_tipoff``, a moved
  line) for two players a game and for each BettingPros-only player; the native data has no snapshot
  after tip-off, and the reader ignores them.
* **A BettingPros-only player** a date: a native player whose odds rows move from the Odds API table to
  ``bettingpros_player_points_props`` (one row per side, Title-case books, American prices); BettingPros
  also has a consensus line for every other lined player (ignored by the reader, since the Odds API
  covers them) and rows of other markets.

What the old tables cannot say, so the two sources differ there (and nowhere else): the odds' source API
(every Odds API row reads back as ``odds_api``); the sign of even money (decimal 2.0 reads back as +100);
the feature version text; the previous game's line of a player without a current line (the old store keeps
it only as feature 25 - feature 54); minutes beyond one decimal (NUMERIC(5,1)); injury report times within
the hour; a schedule's event history (one row per game). None of these changes a prediction or a pick at
the decision time (``tests/test_legacy_sim_e2e.py``).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import os
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd

from pipeline.domain.calendar import EASTERN
from pipeline.io import legacy as lg
from pipeline.schemas import FEATURE_NAMES
from sim.season import Simulation

# The old odds processor writes official game ids from this date (legacy.md section 0, commit 176df395).
ODDS_OFFICIAL_ID_SINCE = dt.date(2025, 12, 28)
LEGACY_FEATURE_VERSION = "v2_54features"
NARROW_FEATURE_VERSION, NARROW_FEATURE_COUNT = "v2_39features", 39
FEATURE_QUALITY_COLUMNS = 54  # feature_{i}_quality / _source exist for i = 0..53 at the read commit
VEGAS_FEATURE_INDICES = tuple(
    FEATURE_NAMES.index(n)
    for n in ("vegas_points_line", "vegas_opening_line", "vegas_line_move", "has_vegas_line")
)
BETTINGPROS_POINTS_MARKET_ID = 156
# Title-case BettingPros names of the books the reader's table does not list (the reader lower-cases them).
BETTINGPROS_OTHER_NAMES = {
    "betrivers": "BetRivers",
    "espnbet": "ESPNBet",
    "hardrockbet": "HardRockBet",
    "bovada": "Bovada",
    "fliff": "Fliff",
    "betonlineag": "BetOnlineAG",
}
BETTINGPROS_CONSENSUS = "BettingPros Consensus"
IN_GAME_PLAYERS_PER_GAME = 2
IN_GAME_MINUTES = 12  # an in-game snapshot this long after tip-off
IN_GAME_LINE_MOVE = 3.5
POSTPONED_TIP_HOUR_ET = 19
INJECTED_RESCHEDULE_DAYS = 21  # the injected postponed game's new date: this long after the last date written
QUALITY_TIERS = ((95.0, "gold"), (85.0, "silver"), (70.0, "bronze"), (50.0, "poor"))

_STRING, _INT, _FLOAT, _BOOL = "STRING", "INT64", "FLOAT64", "BOOL"
_DATE, _TS, _NUM = "DATE", "TIMESTAMP", "NUMERIC"

# The old tables' columns (legacy.md section 1), as BigQuery schema triples; partition column and whether
# the old DDL requires a partition filter.
_FEATURE_COLUMNS = (
    [
        ("player_lookup", _STRING, "REQUIRED"),
        ("universal_player_id", _STRING, "NULLABLE"),
        ("game_date", _DATE, "REQUIRED"),
        ("game_id", _STRING, "NULLABLE"),
        ("opponent_team_abbr", _STRING, "NULLABLE"),
        ("is_home", _BOOL, "NULLABLE"),
        ("days_rest", _INT, "NULLABLE"),
        ("feature_version", _STRING, "REQUIRED"),
        ("feature_count", _INT, "NULLABLE"),
        ("features", _FLOAT, "REPEATED"),
        ("feature_names", _STRING, "REPEATED"),
    ]
    + [(f"feature_{i}_value", _FLOAT, "NULLABLE") for i in range(len(FEATURE_NAMES))]
    + [
        c
        for i in range(FEATURE_QUALITY_COLUMNS)
        for c in ((f"feature_{i}_quality", _FLOAT, "NULLABLE"), (f"feature_{i}_source", _STRING, "NULLABLE"))
    ]
    + [
        ("feature_quality_score", _NUM, "NULLABLE"),
        ("quality_tier", _STRING, "NULLABLE"),
        ("quality_alert_level", _STRING, "NULLABLE"),
        ("is_quality_ready", _BOOL, "NULLABLE"),
        ("is_training_ready", _BOOL, "NULLABLE"),
        ("is_production_ready", _BOOL, "NULLABLE"),
        ("default_feature_count", _INT, "NULLABLE"),
        ("default_feature_indices", _INT, "REPEATED"),
        ("matchup_quality_pct", _FLOAT, "NULLABLE"),
        ("vegas_line_source", _STRING, "NULLABLE"),
        ("data_source", _STRING, "NULLABLE"),
    ]
)
TABLE_SCHEMAS: dict[str, dict[str, Any]] = {
    "odds": {
        "partition": "game_date",
        "require_partition_filter": False,
        "columns": [
            ("game_id", _STRING, "REQUIRED"),
            ("odds_api_event_id", _STRING, "REQUIRED"),
            ("game_date", _DATE, "REQUIRED"),
            ("game_start_time", _TS, "NULLABLE"),
            ("home_team_abbr", _STRING, "REQUIRED"),
            ("away_team_abbr", _STRING, "REQUIRED"),
            ("snapshot_timestamp", _TS, "REQUIRED"),
            ("snapshot_tag", _STRING, "NULLABLE"),
            ("capture_timestamp", _TS, "NULLABLE"),
            ("minutes_before_tipoff", _INT, "NULLABLE"),
            ("bookmaker", _STRING, "REQUIRED"),
            ("player_name", _STRING, "NULLABLE"),
            ("player_lookup", _STRING, "NULLABLE"),
            ("points_line", _FLOAT, "REQUIRED"),
            ("over_price", _FLOAT, "NULLABLE"),
            ("under_price", _FLOAT, "NULLABLE"),
            ("over_price_american", _INT, "NULLABLE"),
            ("under_price_american", _INT, "NULLABLE"),
            ("bookmaker_last_update", _TS, "NULLABLE"),
            ("data_source", _STRING, "NULLABLE"),
        ],
    },
    "odds_fallback": {
        "partition": "game_date",
        "require_partition_filter": True,
        "columns": [
            ("game_date", _DATE, "REQUIRED"),
            ("market_type", _STRING, "REQUIRED"),
            ("market_id", _INT, "NULLABLE"),
            ("bet_side", _STRING, "REQUIRED"),
            ("player_lookup", _STRING, "NULLABLE"),
            ("player_name", _STRING, "NULLABLE"),
            ("player_team", _STRING, "NULLABLE"),
            ("bookmaker", _STRING, "REQUIRED"),
            ("points_line", _FLOAT, "REQUIRED"),
            ("odds_american", _INT, "REQUIRED"),
            ("is_active", _BOOL, "REQUIRED"),
            ("is_best_line", _BOOL, "REQUIRED"),
            ("opening_line", _FLOAT, "NULLABLE"),
            ("opening_odds", _INT, "NULLABLE"),
            ("created_at", _TS, "NULLABLE"),
        ],
    },
    "schedule": {
        "partition": "game_date",
        "require_partition_filter": True,
        "columns": [
            ("game_id", _STRING, "REQUIRED"),
            ("game_code", _STRING, "REQUIRED"),
            ("season", _STRING, "NULLABLE"),
            ("season_nba_format", _STRING, "NULLABLE"),
            ("season_year", _INT, "NULLABLE"),
            ("game_date", _DATE, "NULLABLE"),
            ("game_date_est", _TS, "NULLABLE"),
            ("game_status", _INT, "NULLABLE"),
            ("game_status_text", _STRING, "NULLABLE"),
            ("home_team_tricode", _STRING, "NULLABLE"),
            ("away_team_tricode", _STRING, "NULLABLE"),
            ("home_team_score", _INT, "NULLABLE"),
            ("away_team_score", _INT, "NULLABLE"),
            ("winning_team_tricode", _STRING, "NULLABLE"),
            ("data_source", _STRING, "NULLABLE"),
        ],
    },
    "postponements": {
        "partition": None,
        "require_partition_filter": False,
        "columns": [
            ("sport", _STRING, "NULLABLE"),
            ("game_id", _STRING, "NULLABLE"),
            ("original_date", _DATE, "NULLABLE"),
            ("new_date", _DATE, "NULLABLE"),
            ("reason", _STRING, "NULLABLE"),
            ("detection_source", _STRING, "NULLABLE"),
            ("detection_details", _STRING, "NULLABLE"),
            ("predictions_invalidated", _INT, "NULLABLE"),
            ("status", _STRING, "NULLABLE"),
            ("detected_at", _TS, "NULLABLE"),
            ("confirmed_at", _TS, "NULLABLE"),
            ("resolved_at", _TS, "NULLABLE"),
        ],
    },
    "injuries": {
        "partition": "report_date",
        "require_partition_filter": False,
        "columns": [
            ("report_date", _DATE, "NULLABLE"),
            ("report_hour", _INT, "NULLABLE"),
            ("game_date", _DATE, "NULLABLE"),
            ("game_time", _STRING, "NULLABLE"),
            ("game_id", _STRING, "NULLABLE"),
            ("matchup", _STRING, "NULLABLE"),
            ("away_team", _STRING, "NULLABLE"),
            ("home_team", _STRING, "NULLABLE"),
            ("team", _STRING, "NULLABLE"),
            ("player_name_original", _STRING, "NULLABLE"),
            ("player_full_name", _STRING, "NULLABLE"),
            ("player_lookup", _STRING, "NULLABLE"),
            ("injury_status", _STRING, "NULLABLE"),
            ("reason", _STRING, "NULLABLE"),
            ("reason_category", _STRING, "NULLABLE"),
        ],
    },
    "features": {"partition": "game_date", "require_partition_filter": True, "columns": _FEATURE_COLUMNS},
    "box_scores": {
        "partition": "game_date",
        "require_partition_filter": False,
        "columns": [
            ("player_lookup", _STRING, "REQUIRED"),
            ("universal_player_id", _STRING, "NULLABLE"),
            ("game_id", _STRING, "REQUIRED"),
            ("game_date", _DATE, "REQUIRED"),
            ("team_abbr", _STRING, "REQUIRED"),
            ("opponent_team_abbr", _STRING, "REQUIRED"),
            ("season_year", _INT, "NULLABLE"),
            ("points", _INT, "NULLABLE"),
            ("minutes_played", _NUM, "NULLABLE"),
            ("three_pt_attempts", _INT, "NULLABLE"),
            ("three_pt_makes", _INT, "NULLABLE"),
            ("plus_minus", _INT, "NULLABLE"),
            ("starter_flag", _BOOL, "NULLABLE"),
            ("is_dnp", _BOOL, "NULLABLE"),
        ],
    },
}
assert set(TABLE_SCHEMAS) == set(lg.LEGACY_TABLES)


# -- conversions ------------------------------------------------------------------------------------------


def decimal_from_american(price: Any) -> float | None:
    """The decimal price the old Odds API table stores for an American price: the shortest decimal (2 to
    6 places) that :func:`pipeline.io.legacy.american_from_decimal` turns back into ``price``; None for a
    price that is not a valid American price (|price| < 100)."""
    if price is None or abs(int(price)) < 100:
        return None
    a = int(price)
    exact = 1.0 + (a / 100.0 if a > 0 else 100.0 / -a)
    for places in range(2, 7):
        d = round(exact, places)
        if lg.american_from_decimal(d) == a:
            return d
    return exact


def truncated_american(decimal: float | None) -> int | None:
    """The old ``*_american`` column: decimal -> American truncated toward zero (1.87 -> -114)."""
    if decimal is None or decimal <= 1.0:
        return None
    return int((decimal - 1.0) * 100.0) if decimal >= 2.0 else int(-100.0 / (decimal - 1.0))


def _utc(ts: Any) -> dt.datetime:
    ts = ts.to_pydatetime() if isinstance(ts, pd.Timestamp) else ts
    return ts.astimezone(dt.UTC)


def _iso(ts: dt.datetime | None) -> str | None:
    return None if ts is None else _utc(ts).strftime("%Y-%m-%dT%H:%M:%SZ")


def _date(v: Any) -> dt.date:
    return (
        v if isinstance(v, dt.date) and not isinstance(v, dt.datetime) else dt.date.fromisoformat(str(v)[:10])
    )


def _none(v: Any) -> Any:
    if v is None or v is pd.NaT or (isinstance(v, float) and math.isnan(v)):
        return None
    return v


def game_date_est(game_date: dt.date, tipoff: dt.datetime) -> str:
    """``nbac_schedule.game_date_est``: true UTC from SCHEDULE_UTC_SINCE, Eastern wall time labelled UTC
    before (the reader re-reads those as Eastern)."""
    if game_date >= lg.SCHEDULE_UTC_SINCE:
        return _iso(tipoff)
    return _utc(tipoff).astimezone(EASTERN).strftime("%Y-%m-%dT%H:%M:%SZ")


def bettingpros_name(book: str) -> str:
    """The Title-case BettingPros name of one of our book keys (the inverse of the reader's mapping)."""
    inverse = {v: k for k, v in lg.BETTINGPROS_BOOKS.items()}
    name = inverse.get(book) or BETTINGPROS_OTHER_NAMES.get(book) or book.replace("_", " ").title()
    if lg.bettingpros_book(name) != book:
        raise ValueError(
            f"book {book!r}: BettingPros name {name!r} maps back to {lg.bettingpros_book(name)!r}"
        )
    return name


def reason_category(reason: str) -> str:
    """The old injury table's ``reason_category`` of a free-text reason."""
    text = (reason or "").lower()
    for word, category in (
        ("g league", "g_league"),
        ("suspen", "suspension"),
        ("protocol", "health_safety_protocol"),
        ("rest", "rest"),
        ("personal", "personal"),
    ):
        if word in text:
            return category
    return "injury" if text else "unknown"


def quality_tier(score: float | None) -> str | None:
    if score is None:
        return None
    return next((tier for floor, tier in QUALITY_TIERS if score > floor), "critical")


def _event_id(game_id: str) -> str:
    """A 32-hex Odds API event id, stable per game."""
    return hashlib.md5(game_id.encode(), usedforsecurity=False).hexdigest()


def _season_fields(d: dt.date) -> dict[str, Any]:
    year = d.year if d.month >= 8 else d.year - 1
    return {"season": str(year), "season_nba_format": f"{year}-{(year + 1) % 100:02d}", "season_year": year}


# -- the writer --------------------------------------------------------------------------------


class _Season:
    """The native frames of a simulation, indexed for the conversion."""

    def __init__(self, sim: Simulation, dates: Iterable[dt.date] | None):
        self.sim = sim
        frames = sim.frames
        all_dates = sorted({_date(d) for d in frames["schedule"]["game_date"]})
        self.dates = sorted(set(dates)) if dates is not None else all_dates
        self.date_set = set(self.dates)
        events = frames["schedule"].sort_values(["event_ts", "status"], kind="stable")
        # the last state of each (game_id, game_date): the old writer MERGEs
        self.games: dict[str, dict[str, Any]] = {}
        for rec in events.to_dict("records"):
            self.games[rec["game_id"]] = {**rec, "game_date": _date(rec["game_date"])}
        self.official = self._official_ids(all_dates)
        box = frames["box_scores"]
        self.scores: dict[tuple[str, str], int] = defaultdict(int)
        for gid, team, pts in zip(box["game_id"], box["team_abbr"], box["points"], strict=True):
            if _none(pts) is not None:
                self.scores[(gid, team)] += int(pts)
        self.names = dict(zip(frames["odds"]["player_lookup"], frames["odds"]["player_name"], strict=True))
        feats = frames["features"]
        self.team_of = {
            (p, _date(d)): t
            for p, d, t in zip(feats["player_lookup"], feats["game_date"], feats["team_abbr"], strict=True)
        }
        for p, d, t in zip(box["player_lookup"], box["game_date"], box["team_abbr"], strict=True):
            self.team_of.setdefault((p, _date(d)), t)
        self.decision = {
            dt.date.fromisoformat(d): dt.datetime.fromisoformat(v)
            for d, v in sim.meta.get("decision_ts", {}).items()
        }
        self.games_on: dict[dt.date, list[dict[str, Any]]] = defaultdict(list)
        for g in self.games.values():
            self.games_on[g["game_date"]].append(g)
        self.odds_on = self._by_date(frames["odds"])
        self.injuries_on = self._by_date(frames["injuries"].sort_values(["report_ts"], kind="stable"))
        self.reported = {
            (p, _date(d))
            for p, d in zip(frames["injuries"]["player_lookup"], frames["injuries"]["game_date"], strict=True)
        }
        self.features_on: dict[dt.date, list] = defaultdict(list)
        for f in sim.features:
            if f.game_date in self.date_set:
                self.features_on[f.game_date].append(f)
        self.box_on: dict[dt.date, list] = defaultdict(list)
        for b in sim.box_scores:
            if b.game_date in self.date_set:
                self.box_on[b.game_date].append(b)

    def _by_date(self, df: pd.DataFrame) -> dict[dt.date, pd.DataFrame]:
        empty = df.iloc[0:0]
        parts = {
            _date(d): part for d, part in df.groupby("game_date", sort=True) if _date(d) in self.date_set
        }
        return defaultdict(lambda: empty, parts)

    def _official_ids(self, dates: list[dt.date]) -> dict[str, str]:
        """Official ids numbered by (date, tip-off, id); a rescheduled game keeps its postponed game's id."""
        ordered = sorted(
            self.games.values(), key=lambda g: (g["game_date"], _utc(g["tipoff_utc"]), g["game_id"])
        )
        official: dict[str, str] = {}
        moved_to: dict[tuple[dt.date, str, str], str] = {}
        n = 0
        for g in ordered:
            key = (g["game_date"], g["away_team"], g["home_team"])
            if key in moved_to:
                official[g["game_id"]] = moved_to[key]
                continue
            n += 1
            yy = _season_fields(g["game_date"])["season_year"] % 100
            official[g["game_id"]] = f"002{yy:02d}{n:05d}"
            if g["status"] == "postponed" and _none(g.get("new_game_date")) is not None:
                moved_to[(_date(g["new_game_date"]), g["away_team"], g["home_team"])] = official[g["game_id"]]
        self.next_number = n + 1
        return official

    def in_dates(self, d: Any) -> bool:
        return _date(d) in self.date_set


def _schedule(s: _Season, postpone_on: dt.date | None) -> tuple[list[dict], list[dict], list[dict]]:
    rows, postponements, postponed = [], [], []
    for gid, g in s.games.items():
        if not s.in_dates(g["game_date"]):
            continue
        d, tip = g["game_date"], _utc(g["tipoff_utc"])
        code = {"scheduled": 1, "in_progress": 2, "final": 3, "postponed": 1}[g["status"]]
        row = {
            "game_id": s.official[gid],
            "game_code": f"{d:%Y%m%d}/{g['away_team']}{g['home_team']}",
            **_season_fields(d),
            "game_date": d.isoformat(),
            "game_date_est": game_date_est(d, tip),
            "game_status": code,
            "game_status_text": {1: "Scheduled", 2: "In Progress", 3: "Final"}[code],
            "home_team_tricode": g["home_team"],
            "away_team_tricode": g["away_team"],
            "data_source": "api_stats",
        }
        if g["status"] == "final":
            home, away = s.scores[(gid, g["home_team"])], s.scores[(gid, g["away_team"])]
            row.update(
                home_team_score=home,
                away_team_score=away,
                winning_team_tricode=g["home_team"] if home > away else g["away_team"],
            )
        if g["status"] == "postponed":
            new = _none(g.get("new_game_date"))
            row["game_status_text"] = "Postponed"
            postponements.append(
                _postponement(
                    s.official[gid],
                    g,
                    _date(new) if new is not None else None,
                    _utc(g["event_ts"]),
                    "schedule_anomaly",
                )
            )
            postponed.append(
                {
                    "game_date": d.isoformat(),
                    "game_id": gid,
                    "official_id": s.official[gid],
                    "new_date": None if new is None else _date(new).isoformat(),
                    "in_native": True,
                }
            )
        rows.append(row)
    if not postponed:
        injected = _injected_postponement(s, postpone_on)
        if injected is not None:
            row, post, info = injected
            rows.append(row)
            postponements.append(post)
            postponed.append(info)
    rows.sort(key=lambda r: (r["game_date"], r["game_date_est"], r["game_id"]))
    return rows, postponements, postponed


def _postponement(official: str, g: dict, new: dt.date | None, detected: dt.datetime, source: str) -> dict:
    return {
        "sport": "NBA",
        "game_id": official,
        "original_date": g["game_date"].isoformat(),
        "new_date": None if new is None else new.isoformat(),
        "reason": "Postponed (simulated)",
        "detection_source": source,
        "detection_details": json.dumps({"matchup": f"{g['away_team']}@{g['home_team']}"}),
        "predictions_invalidated": 0,
        "status": "confirmed",
        "detected_at": _iso(detected),
        "confirmed_at": _iso(detected),
        "resolved_at": None,
    }


def _injected_postponement(s: _Season, postpone_on: dt.date | None):
    """A postponed game the native data lacks (two idle teams on a written date, no new date)."""
    teams = sorted(
        s.sim.meta.get("teams") or {t for g in s.games.values() for t in (g["home_team"], g["away_team"])}
    )
    candidates = [postpone_on] if postpone_on is not None else sorted(s.dates, reverse=True)
    for d in candidates:
        busy = {t for g in s.games.values() if g["game_date"] == d for t in (g["home_team"], g["away_team"])}
        idle = [t for t in teams if t not in busy]
        if len(idle) < 2:
            continue
        away, home = idle[0], idle[1]
        tip = dt.datetime.combine(d, dt.time(POSTPONED_TIP_HOUR_ET), tzinfo=EASTERN).astimezone(dt.UTC)
        official = f"002{_season_fields(d)['season_year'] % 100:02d}{s.next_number:05d}"
        g = {"game_date": d, "away_team": away, "home_team": home}
        row = {
            "game_id": official,
            "game_code": f"{d:%Y%m%d}/{away}{home}",
            **_season_fields(d),
            "game_date": d.isoformat(),
            "game_date_est": game_date_est(d, tip),
            "game_status": 1,
            "game_status_text": "Postponed",
            "home_team_tricode": home,
            "away_team_tricode": away,
            "data_source": "api_stats",
        }
        detected = dt.datetime.combine(d, dt.time(11), tzinfo=EASTERN).astimezone(dt.UTC)
        # rescheduled after the written dates (its row on the new date is not written)
        new = max(s.dates) + dt.timedelta(days=INJECTED_RESCHEDULE_DAYS)
        post = _postponement(official, g, new, detected, "manual_fix")
        info = {
            "game_date": d.isoformat(),
            "game_id": lg.game_id_of(d, away, home),
            "official_id": official,
            "new_date": new.isoformat(),
            "in_native": False,
        }
        return row, post, info
    return None


def _bettingpros_player(s: _Season, d: dt.date) -> str | None:
    """The date's player whose Odds API rows move to BettingPros: a lined player of a played game with a
    feature row free of required defaults and no injury report, the best feature quality first."""
    odds = s.odds_on[d]
    books = odds.groupby(["player_lookup", "game_id"])["book"].nunique()
    n_books = {p: (n, gid) for (p, gid), n in books.items()}
    chosen: tuple | None = None
    for f in s.features_on[d]:
        if f.player_lookup not in n_books or (f.player_lookup, d) in s.reported or f.required_default_count:
            continue
        n, gid = n_books[f.player_lookup]
        if gid not in s.games or s.games[gid]["status"] == "postponed":
            continue
        key = (-float(f.feature_quality_score), -n, f.player_lookup)
        chosen = key if chosen is None or key < chosen else chosen
    return None if chosen is None else chosen[2]


ODDS_COLUMNS = [c[0] for c in TABLE_SCHEMAS["odds"]["columns"]]


def _odds_api(s: _Season, d: dt.date, bp_player: str | None) -> tuple[pd.DataFrame, int]:
    """The date's Odds API rows (vectorized: a full season has millions) and the in-game snapshot count."""
    odds = s.odds_on[d]
    games = odds["game_id"].map(s.games)
    tip = pd.to_datetime(games.map(lambda g: _utc(g["tipoff_utc"])), utc=True)
    frame = pd.DataFrame(
        {
            "game_id": odds["game_id"],
            "book": odds["book"],
            "name": odds["player_name"],
            "lookup": odds["player_lookup"],
            "line": odds["line"].astype(float),
            "over": odds["over_price"].astype(int),
            "under": odds["under_price"].astype(int),
            "snap": pd.to_datetime(odds["snapshot_ts"], utc=True),
            "tip": tip,
        }
    )
    # in-game snapshots: the last DraftKings line moved, after tip-off, for the BettingPros-only player and
    # the first players (by name) of each played game
    dk = frame[frame["book"] == "draftkings"].sort_values(["game_id", "lookup", "snap"], kind="stable")
    last = dk.groupby(["game_id", "lookup"], sort=True).tail(1)
    last = last[last["game_id"].map(lambda gid: s.games[gid]["status"] != "postponed")]
    picked = pd.concat(
        [
            last[last["lookup"] == bp_player],
            last[last["lookup"] != bp_player].groupby("game_id").head(IN_GAME_PLAYERS_PER_GAME),
        ]
    )
    in_game = picked.assign(
        snap=picked["tip"] + pd.Timedelta(minutes=IN_GAME_MINUTES),
        line=picked["line"] + IN_GAME_LINE_MOVE,
        over=-110,
        under=-110,
    )
    frame = pd.concat([frame[frame["lookup"] != bp_player], in_game], ignore_index=True)
    official = frame["game_id"].map(s.official) if d >= ODDS_OFFICIAL_ID_SINCE else frame["game_id"]
    iso = "%Y-%m-%dT%H:%M:%SZ"
    prices = {p: decimal_from_american(p) for p in set(frame["over"]) | set(frame["under"])}
    out = pd.DataFrame(
        {
            "game_id": official,
            "odds_api_event_id": frame["game_id"].map(_event_id),
            "game_date": d.isoformat(),
            "game_start_time": frame["tip"].dt.strftime(iso),
            "home_team_abbr": frame["game_id"].map(lambda gid: s.games[gid]["home_team"]),
            "away_team_abbr": frame["game_id"].map(lambda gid: s.games[gid]["away_team"]),
            "snapshot_timestamp": frame["snap"].dt.strftime(iso),
            "snapshot_tag": "snap-" + frame["snap"].dt.strftime("%H%M"),
            "capture_timestamp": (frame["snap"] + pd.Timedelta(seconds=40)).dt.strftime(iso),
            # whole minutes, truncated toward zero: negative in game
            "minutes_before_tipoff": ((frame["tip"] - frame["snap"]).dt.total_seconds() / 60).astype(int),
            "bookmaker": frame["book"],
            "player_name": frame["name"],
            "player_lookup": frame["lookup"],
            "points_line": frame["line"],
        }
    )
    for side, col in (("over", "over"), ("under", "under")):
        decimal = frame[col].map(prices)
        american = frame[col].map(lambda p: truncated_american(prices[p]) if prices[p] is not None else p)
        out[f"{side}_price"] = decimal.astype(float)
        out[f"{side}_price_american"] = american.astype("Int64")
    out["bookmaker_last_update"] = out["snapshot_timestamp"]
    out["data_source"] = "historical"
    out = out[ODDS_COLUMNS].sort_values(
        ["game_id", "player_lookup", "bookmaker", "snapshot_timestamp"], kind="stable"
    )
    return out.reset_index(drop=True), len(in_game)


def _bettingpros(s: _Season, d: dt.date, bp_player: str | None) -> list[dict]:
    odds = s.odds_on[d].sort_values(["snapshot_ts"], kind="stable")
    rows = []
    opening: dict[str, tuple[float, int]] = {}
    team = s.team_of.get((bp_player, d))
    mine = odds[odds["player_lookup"] == bp_player]
    for r in mine.itertuples(index=False):
        first = opening.setdefault(r.book, (float(r.line), int(r.over_price)))
        for side, price in (("over", r.over_price), ("under", r.under_price)):
            rows.append(
                _bp_row(
                    d,
                    side,
                    r.player_lookup,
                    r.player_name,
                    team,
                    bettingpros_name(r.book),
                    float(r.line),
                    int(price),
                    first,
                    _utc(r.snapshot_ts),
                )
            )
    if len(mine):  # the table holds every market: one row of another market
        r = mine.iloc[0]
        rows.append(
            dict(
                _bp_row(
                    d,
                    "over",
                    bp_player,
                    r["player_name"],
                    team,
                    "DraftKings",
                    4.5,
                    -120,
                    None,
                    _utc(r["snapshot_ts"]),
                ),
                market_type="assists",
                market_id=151,
            )
        )
    # a consensus line for each player the Odds API covers: never read (the fallback is for the others)
    played = odds["game_id"].map(lambda gid: s.games[gid]["status"] != "postponed")
    others = odds[(odds["player_lookup"] != bp_player) & played].groupby("player_lookup", sort=True).tail(1)
    for r in others.itertuples(index=False):
        for side in ("over", "under"):
            rows.append(
                _bp_row(
                    d,
                    side,
                    r.player_lookup,
                    r.player_name,
                    s.team_of.get((r.player_lookup, d)),
                    BETTINGPROS_CONSENSUS,
                    float(r.line) + 1.0,
                    -110,
                    None,
                    _utc(r.snapshot_ts),
                )
            )
    rows.sort(
        key=lambda r: (r["player_lookup"], r["bookmaker"], r["created_at"], r["market_type"], r["bet_side"])
    )
    return rows


def _bp_row(
    d: dt.date,
    side: str,
    lookup: str,
    name: str,
    team: str | None,
    book: str,
    line: float,
    price: int,
    first: tuple[float, int] | None,
    created: dt.datetime,
) -> dict[str, Any]:
    return {
        "game_date": d.isoformat(),
        "market_type": "points",
        "market_id": BETTINGPROS_POINTS_MARKET_ID,
        "bet_side": side,
        "player_lookup": lookup,
        "player_name": name,
        "player_team": team or "FA",
        "bookmaker": book,
        "points_line": line,
        "odds_american": price,
        "is_active": True,
        "is_best_line": False,
        "opening_line": first[0] if first else None,
        "opening_odds": first[1] if first else None,
        "created_at": _iso(created),
    }


def _slot(s: _Season, report: dt.datetime, game_date: dt.date) -> dt.datetime:
    """The Eastern hour slot of a report: its hour, or the next one when the hour's start would move the
    report across its game date's decision time."""
    local = report.astimezone(EASTERN)
    floor = local.replace(minute=0, second=0, microsecond=0)
    decision = s.decision.get(game_date)
    if decision is not None and floor <= decision < report and floor != report:
        return (floor.astimezone(dt.UTC) + dt.timedelta(hours=1)).astimezone(EASTERN)
    return floor


def _injuries(s: _Season, d: dt.date) -> list[dict]:
    by_slot: dict[tuple, dict] = {}
    for r in s.injuries_on[d].itertuples(index=False):
        slot = _slot(s, _utc(r.report_ts), d)
        team = s.team_of.get((r.player_lookup, d))
        g = next((g for g in s.games_on[d] if team in (g["home_team"], g["away_team"])), None)
        name = s.names.get(r.player_lookup) or r.player_lookup
        first, _, last = name.partition(" ")
        reason = _none(r.reason) or ""
        by_slot[(r.player_lookup, slot)] = {  # the slot's report: the player's last one in it
            "report_date": slot.date().isoformat(),
            "report_hour": slot.hour,
            "game_date": d.isoformat(),
            "game_time": _utc(g["tipoff_utc"]).astimezone(EASTERN).strftime("%I:%M") if g else None,
            "game_id": lg.game_id_of(d, g["away_team"], g["home_team"]) if g else None,
            "matchup": f"{g['away_team']}@{g['home_team']}" if g else None,
            "away_team": g["away_team"] if g else None,
            "home_team": g["home_team"] if g else None,
            "team": team,
            "player_name_original": f"{last}, {first}" if last else first,
            "player_full_name": name,
            "player_lookup": r.player_lookup,
            "injury_status": str(r.status).strip().lower(),
            "reason": reason or None,
            "reason_category": reason_category(reason),
        }
    return sorted(by_slot.values(), key=lambda r: (r["report_date"], r["report_hour"], r["player_lookup"]))


def _features(s: _Season, d: dt.date) -> list[dict]:
    """The date's feature-store rows, plus a narrower older version of its first row."""
    rows = []
    for f in s.features_on[d]:
        home = f.game_id.split("_")[2]
        values = list(f.features)
        defaults = set(f.default_feature_indices)
        rest = values[FEATURE_NAMES.index("days_rest")]
        ready = f.required_default_count == 0
        row: dict[str, Any] = {
            "player_lookup": f.player_lookup,
            "universal_player_id": f"{f.player_lookup}_001",
            "game_date": d.isoformat(),
            "game_id": f.game_id,
            "opponent_team_abbr": f.opponent_team_abbr,
            "is_home": f.team_abbr == home,
            "days_rest": None if rest is None else int(rest),
            "feature_version": LEGACY_FEATURE_VERSION,
            "feature_count": len(values),
            "features": [0.0 if v is None else v for v in values],
            "feature_names": list(FEATURE_NAMES),
        }
        row.update({f"feature_{i}_value": v for i, v in enumerate(values)})
        for i in range(FEATURE_QUALITY_COLUMNS):
            present = values[i] is not None
            row[f"feature_{i}_quality"] = 100.0 if present else 0.0
            row[f"feature_{i}_source"] = (
                ("vegas" if i in VEGAS_FEATURE_INDICES else "phase4")
                if present
                else ("default" if i in defaults else "missing")
            )
        row.update(
            {
                "feature_quality_score": round(f.feature_quality_score, 2),
                "quality_tier": quality_tier(f.feature_quality_score),
                "quality_alert_level": f.quality_alert_level,
                "is_quality_ready": ready,
                "is_training_ready": ready,
                "is_production_ready": ready,
                "default_feature_count": len(defaults),
                "default_feature_indices": sorted(defaults),
                "matchup_quality_pct": f.matchup_quality_pct,
                "vegas_line_source": "odds_api" if values[VEGAS_FEATURE_INDICES[0]] is not None else "none",
                "data_source": "phase4",
            }
        )
        rows.append(row)
    if rows:  # an older, narrower version of one row (the reader keeps the widest)
        old = dict(
            rows[0],
            feature_version=NARROW_FEATURE_VERSION,
            feature_count=NARROW_FEATURE_COUNT,
            features=rows[0]["features"][:NARROW_FEATURE_COUNT],
            feature_names=rows[0]["feature_names"][:NARROW_FEATURE_COUNT],
        )
        old.update({f"feature_{i}_value": None for i in range(NARROW_FEATURE_COUNT, len(FEATURE_NAMES))})
        rows.append(old)
    return rows


def _box_scores(s: _Season, d: dt.date) -> list[dict]:
    return [
        {
            "player_lookup": b.player_lookup,
            "universal_player_id": f"{b.player_lookup}_001",
            "game_id": b.game_id,
            "game_date": d.isoformat(),
            "team_abbr": b.team_abbr,
            "opponent_team_abbr": b.opponent_team_abbr,
            "season_year": _season_fields(d)["season_year"],
            "points": None if b.points is None else int(b.points),
            "minutes_played": None if b.minutes is None else round(b.minutes, 1),  # NUMERIC(5,1)
            "three_pt_attempts": None if b.fg3a is None else int(b.fg3a),
            "three_pt_makes": None if b.fg3m is None else int(b.fg3m),
            "plus_minus": None if b.plus_minus is None else int(b.plus_minus),
            "starter_flag": b.starter,
            "is_dnp": b.is_dnp,
        }
        for b in s.box_on[d]
    ]


def table_file(key: str) -> str:
    """The file name of an old table: ``<dataset>.<table>.jsonl``."""
    return f"{lg.LEGACY_TABLES[key]}.jsonl"


def bigquery_schema(key: str) -> list[dict[str, str]]:
    """The old table's columns as a BigQuery JSON schema (``bq load --schema``)."""
    return [{"name": n, "type": t, "mode": m} for n, t, m in TABLE_SCHEMAS[key]["columns"]]


class _TableFiles:
    """One newline-delimited JSON file per old table, rows in schema column order, counted."""

    def __init__(self, out: Path):
        self.handles = {
            k: open(out / table_file(k), "w", encoding="utf-8", newline="\n")  # noqa: SIM115
            for k in lg.LEGACY_TABLES
        }
        self.rows = dict.fromkeys(lg.LEGACY_TABLES, 0)
        self.columns = {k: [c[0] for c in TABLE_SCHEMAS[k]["columns"]] for k in lg.LEGACY_TABLES}

    def write(self, key: str, rows: list[dict[str, Any]]) -> None:
        columns, fh = self.columns[key], self.handles[key]
        for r in rows:
            unknown = set(r) - set(columns)
            if unknown:
                raise ValueError(f"{lg.LEGACY_TABLES[key]}: columns {sorted(unknown)} are not in its schema")
            fh.write(json.dumps({c: r[c] for c in columns if c in r}) + "\n")
        self.rows[key] += len(rows)

    def write_frame(self, key: str, frame: pd.DataFrame) -> None:
        if len(frame):
            assert list(frame.columns) == self.columns[key]
            self.handles[key].write(frame.to_json(orient="records", lines=True, double_precision=15))
        self.rows[key] += len(frame)

    def close(self) -> None:
        for fh in self.handles.values():
            fh.close()


def write_legacy(
    sim: Simulation,
    out: str | os.PathLike,
    *,
    dates: Iterable[dt.date] | None = None,
    postpone_on: dt.date | None = None,
    progress=None,
) -> Path:
    """Writes the old tables of a simulation's dates (default: all) to ``out``: one newline-delimited JSON
    file per table (``<dataset>.<table>.jsonl``) and ``manifest.json``. Same simulation, same bytes.

    Written date by date, so a full season (millions of odds rows) fits in memory."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    s = _Season(sim, dates)
    quirks: dict[str, Any] = {
        "odds_official_id_since": ODDS_OFFICIAL_ID_SINCE.isoformat(),
        "schedule_utc_since": lg.SCHEDULE_UTC_SINCE.isoformat(),
        "bettingpros_only": [],
        "in_game_snapshots": 0,
        "narrow_feature_rows": 0,
        "null_feature_values": 0,
    }
    files = _TableFiles(out)
    try:
        schedule, postponements, quirks["postponed_games"] = _schedule(s, postpone_on)
        files.write("schedule", schedule)
        files.write("postponements", postponements)
        for d in s.dates:
            bp_player = _bettingpros_player(s, d)
            if bp_player is not None:
                quirks["bettingpros_only"].append({"game_date": d.isoformat(), "player_lookup": bp_player})
            odds, in_game = _odds_api(s, d, bp_player)
            files.write_frame("odds", odds)
            quirks["in_game_snapshots"] += in_game
            files.write("odds_fallback", _bettingpros(s, d, bp_player))
            files.write("injuries", _injuries(s, d))
            features = _features(s, d)
            files.write("features", features)
            quirks["narrow_feature_rows"] += sum(
                1 for r in features if r["feature_version"] != LEGACY_FEATURE_VERSION
            )
            quirks["null_feature_values"] += sum(
                1
                for r in features
                if r["feature_version"] == LEGACY_FEATURE_VERSION
                for i in range(len(FEATURE_NAMES))
                if r[f"feature_{i}_value"] is None
            )
            files.write("box_scores", _box_scores(s, d))
            if progress:
                progress(f"wrote the old tables of {d} ({len(odds)} Odds API rows)")
    finally:
        files.close()
    manifest: dict[str, Any] = {
        "format": "legacy",
        "season": sim.meta.get("season"),
        "seed": sim.meta.get("seed"),
        "generator_version": sim.meta.get("generator_version"),
        "dates": sorted({r["game_date"] for r in schedule}),
        "quirks": quirks,
        "tables": {},
    }
    for key, spec in TABLE_SCHEMAS.items():
        manifest["tables"][lg.LEGACY_TABLES[key]] = {
            "key": key,
            "file": table_file(key),
            "rows": files.rows[key],
            "partition_field": spec["partition"],
            "require_partition_filter": spec["require_partition_filter"],
            "schema": bigquery_schema(key),
        }
    (out / "manifest.json").write_text(
        json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8"
    )
    if progress:
        progress(f"wrote {out}: {files.rows}")
    return out

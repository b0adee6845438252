"""Typed rows for every input and output of the props pipeline.

Every source is parsed into one of the input rows below at the boundary (``pipeline/io``); every
warehouse table and JSON export derives its columns from one of the output rows. Table schemas for
DuckDB and BigQuery are generated from the annotations by :func:`table_schema`, so a new column is
added in exactly one place.

Type conventions (one numeric policy at every boundary):
  * ``float`` for measured or computed numbers (never ``Decimal``: readers convert at the boundary);
  * ``datetime.date`` for ``game_date``; ``datetime.datetime`` (UTC, tz-aware) for timestamps;
  * ``Json`` (a ``str`` alias) for JSON documents stored as text (BigQuery ``JSON``/``STRING``);
  * ``tuple[str, ...]`` for repeated strings (BigQuery ``REPEATED STRING``, DuckDB ``VARCHAR[]``).
"""

from __future__ import annotations

import datetime as dt
import types
import typing
from typing import NamedTuple

# --------------------------------------------------------------------------------------------
# Feature catalogue (domain.md section 5): 55 named features, index 0-54, appended, never reordered.
# --------------------------------------------------------------------------------------------

FEATURE_NAMES: tuple[str, ...] = (
    "points_avg_last_5",
    "points_avg_last_10",
    "points_avg_season",
    "points_std_last_10",
    "games_in_last_7_days",
    "fatigue_score",
    "shot_zone_mismatch_score",
    "pace_score",
    "usage_spike_score",
    "rest_advantage",
    "injury_risk",
    "recent_trend",
    "minutes_change",
    "opponent_def_rating",
    "opponent_pace",
    "home_away",
    "back_to_back",
    "playoff_game",
    "pct_paint",
    "pct_mid_range",
    "pct_three",
    "pct_free_throw",
    "team_pace",
    "team_off_rating",
    "team_win_pct",
    "vegas_points_line",
    "vegas_opening_line",
    "vegas_line_move",
    "has_vegas_line",
    "avg_points_vs_opponent",
    "games_vs_opponent",
    "minutes_avg_last_10",
    "ppm_avg_last_10",
    "dnp_rate",
    "pts_slope_10g",
    "pts_vs_season_zscore",
    "breakout_flag",
    "star_teammates_out",
    "game_total_line",
    "days_rest",
    "minutes_load_last_7d",
    "spread_magnitude",
    "implied_team_total",
    "points_avg_last_3",
    "scoring_trend_slope",
    "deviation_from_avg_last3",
    "consecutive_games_below_avg",
    "teammate_usage_available",
    "usage_rate_last_5",
    "games_since_structural_change",
    "multi_book_line_std",
    "prop_over_streak",
    "prop_under_streak",
    "line_vs_season_avg",
    "prop_line_delta",
)
assert len(FEATURE_NAMES) == 55
FEATURE_INDEX: dict[str, int] = {name: i for i, name in enumerate(FEATURE_NAMES)}

VEGAS_FEATURE_INDICES: tuple[int, ...] = (25, 26, 27, 28)
# Features the pipeline sets from the line book at scoring time (domain.md section 5).
MARKET_FEATURES: tuple[str, ...] = (
    "vegas_points_line",
    "vegas_opening_line",
    "vegas_line_move",
    "has_vegas_line",
    "multi_book_line_std",
    "line_vs_season_avg",
    "prop_line_delta",
)

FEATURE_SETS: dict[str, tuple[int, ...]] = {
    "v9": tuple(range(0, 33)),
    "v12": tuple(range(0, 54)),
    "v12_noveg": tuple(i for i in range(0, 54) if i not in VEGAS_FEATURE_INDICES),
}
assert len(FEATURE_SETS["v9"]) == 33 and len(FEATURE_SETS["v12"]) == 54
assert len(FEATURE_SETS["v12_noveg"]) == 50

# Required for the quality gate: 0-24, 28, 29-36. Shot-zone features 18-20 may be missing.
REQUIRED_FEATURE_INDICES: tuple[int, ...] = tuple(range(0, 25)) + (28,) + tuple(range(29, 37))
OPTIONAL_MISSING_OK: tuple[int, ...] = (18, 19, 20)


def feature_names_for(feature_set: str) -> tuple[str, ...]:
    """Names of a feature set's columns in model order; KeyError for an unknown set."""
    return tuple(FEATURE_NAMES[i] for i in FEATURE_SETS[feature_set])


# --------------------------------------------------------------------------------------------
# Vocabulary
# --------------------------------------------------------------------------------------------

BOOK_PRIORITY: tuple[str, ...] = (
    "draftkings",
    "fanduel",
    "betmgm",
    "williamhill_us",
    "betrivers",
    "espnbet",
    "hardrockbet",
)
PICKEM_SITES: tuple[str, ...] = ("prizepicks", "underdog", "sleeper", "pick6")
KNOWN_BOOKS: tuple[str, ...] = BOOK_PRIORITY + ("bovada", "fliff", "betonlineag")

GAME_STATUSES: tuple[str, ...] = ("scheduled", "in_progress", "final", "postponed", "cancelled")
INJURY_STATUSES: tuple[str, ...] = ("out", "doubtful", "questionable", "probable", "available")
RUN_MODES: tuple[str, ...] = ("FIRST", "RETRY", "FINAL_RETRY", "LAST_CALL", "BACKFILL")
SOURCE_APIS: tuple[str, ...] = ("odds_api", "bettingpros")

Json = str  # a JSON document stored as text


# --------------------------------------------------------------------------------------------
# Input rows (contract.md "Input formats")
# --------------------------------------------------------------------------------------------


class ScheduleEvent(NamedTuple):
    game_id: str
    game_date: dt.date
    tipoff_utc: dt.datetime
    home_team: str
    away_team: str
    status: str
    new_game_date: dt.date | None
    event_ts: dt.datetime


class OddsSnapshot(NamedTuple):
    player_lookup: str
    player_name: str
    game_id: str
    game_date: dt.date
    book: str
    line: float
    over_price: int
    under_price: int
    snapshot_ts: dt.datetime
    source_api: str


class InjuryReport(NamedTuple):
    player_lookup: str
    game_date: dt.date
    status: str
    reason: str
    report_ts: dt.datetime


class FeatureRow(NamedTuple):
    """One feature-store row; ``features`` holds the 55 values in catalogue order (None = missing)."""

    player_lookup: str
    game_id: str
    game_date: dt.date
    team_abbr: str
    opponent_team_abbr: str
    feature_version: str
    features: tuple[float | None, ...]
    feature_quality_score: float
    quality_alert_level: str
    matchup_quality_pct: float
    required_default_count: int
    default_feature_indices: tuple[int, ...]
    # Extra column: the selected book's closing line of the player's previous game (public before this
    # game); the line book needs it for prop_line_delta without reading earlier dates' odds.
    prev_game_closing_line: float | None = None


class BoxScore(NamedTuple):
    player_lookup: str
    game_id: str
    game_date: dt.date
    team_abbr: str
    points: float | None
    minutes: float | None
    is_dnp: bool
    starter: bool
    plus_minus: float | None
    fg3a: float | None = None  # three-point attempts (extra column, for the 3pt_bounce signal)
    fg3m: float | None = None  # three-point makes
    opponent_team_abbr: str | None = None


INPUT_KINDS: dict[str, type] = {
    "schedule": ScheduleEvent,
    "odds": OddsSnapshot,
    "injuries": InjuryReport,
    "features": FeatureRow,
    "box_scores": BoxScore,
}

# Field in each input kind that carries its event time.
EVENT_TIME_FIELD: dict[str, str] = {
    "schedule": "event_ts",
    "odds": "snapshot_ts",
    "injuries": "report_ts",
    "features": "game_date",
    "box_scores": "game_date",
}


# --------------------------------------------------------------------------------------------
# Output rows (contract.md "Warehouse tables"); the table name is the key in TABLES below.
# --------------------------------------------------------------------------------------------


class DeadLetter(NamedTuple):
    source: str
    step: str
    error: str
    payload: str
    event_ts: dt.datetime | None
    game_date: dt.date | None = None
    run_id: str | None = None


# Statuses of a ``runs`` row: ``running`` until the launcher finishes it; ``killed`` when SIGTERM/SIGINT
# stopped it; ``abandoned`` when a later launch found it ``running`` with its process gone.
RUN_STATUSES: tuple[str, ...] = (
    "running", "succeeded", "succeeded_unverified", "failed", "submitted", "killed", "abandoned")

# --------------------------------------------------------------------------------------------
# Input limits (the parse boundary, pipeline.io.parse) and the one dead-letter payload bound
# --------------------------------------------------------------------------------------------

# Dates and timestamps of every input field must lie in [EARLIEST_INPUT_DATE, LATEST_INPUT_DATE]; anything
# else (e.g. ``0001-01-01T00:00:00+01:00``, which overflows UTC) is a dead letter ``out_of_range``.
EARLIEST_INPUT_DATE = dt.date(2000, 1, 1)
LATEST_INPUT_DATE = dt.date(2099, 12, 31)
# Longest string field of an input row, and longest raw record (a JSON line or a Pub/Sub message body):
# longer ones are dead letters ``too_long`` (a record over the limit is not even decoded).
MAX_FIELD_CHARS = 1_000
MAX_RECORD_BYTES = 256 * 1024
# A schedule event's tip-off must lie within this many hours of its game date's UTC day (covers every
# US time zone and games abroad); otherwise ``game_date_mismatch``.
TIPOFF_SLACK_HOURS = 12
# Every dead letter's payload (and error text) is cut to this many characters by clip_text.
DEAD_LETTER_PAYLOAD_CHARS = 4_000


def clip_text(text: str, limit: int = DEAD_LETTER_PAYLOAD_CHARS) -> str:
    """``text`` cut to ``limit`` characters with a marker saying how long it was: the ONE truncation of
    dead-letter payloads and errors (parse, slate, stream and grading dead letters all use it)."""
    if len(text) <= limit:
        return text
    marker = f"...[truncated, {len(text)} chars]"
    return text[: max(0, limit - len(marker))] + marker


class TableSpec(NamedTuple):
    """How a row type is stored: its table, the columns that identify a row, and the partition."""

    name: str
    row_type: type
    key: tuple[str, ...]
    partition: str | None = "game_date"
    cluster: tuple[str, ...] = ()


PY_TO_SQL: dict[object, tuple[str, str]] = {
    # python type: (duckdb type, bigquery type)
    str: ("VARCHAR", "STRING"),
    int: ("BIGINT", "INT64"),
    float: ("DOUBLE", "FLOAT64"),
    bool: ("BOOLEAN", "BOOL"),
    dt.date: ("DATE", "DATE"),
    dt.datetime: ("TIMESTAMPTZ", "TIMESTAMP"),
}


def _unwrap(tp: object) -> tuple[object, bool, bool]:
    """Returns (base type, nullable, repeated) of an annotation."""
    nullable = False
    origin = typing.get_origin(tp)
    if origin is typing.Union or origin is types.UnionType:
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        nullable = len(args) != len(typing.get_args(tp))
        tp = args[0]
        origin = typing.get_origin(tp)
    if origin is tuple:
        inner = typing.get_args(tp)[0]
        base, _, _ = _unwrap(inner)
        return base, True, True
    return tp, nullable, False


# The tables the stream writes as versioned rows (one set of rows per player-game version).
VERSIONED_TABLES: tuple[str, ...] = ("line_diagnostics", "gate_decisions", "predictions", "consensus")
VERSION_KEY: tuple[str, ...] = ("game_date", "game_id", "player_lookup", "version")


def columns(row_type: type) -> list[tuple[str, object, bool, bool]]:
    """(name, python base type, nullable, repeated) for each field of a NamedTuple row type."""
    hints = typing.get_type_hints(row_type)
    out = []
    for name in row_type._fields:
        base, nullable, repeated = _unwrap(hints[name])
        out.append((name, base, nullable, repeated))
    return out


def duckdb_ddl(spec: TableSpec) -> str:
    cols = []
    for name, base, _nullable, repeated in columns(spec.row_type):
        sql = PY_TO_SQL[base][0]
        cols.append(f'"{name}" {sql}{"[]" if repeated else ""}')
    return f'CREATE TABLE IF NOT EXISTS "{spec.name}" ({", ".join(cols)})'


def bigquery_schema(row_type: type) -> list[dict]:
    """BigQuery JSON schema fields for a row type (used by WriteToBigQuery and table creation)."""
    fields = []
    for name, base, nullable, repeated in columns(row_type):
        fields.append(
            {
                "name": name,
                "type": PY_TO_SQL[base][1],
                "mode": "REPEATED" if repeated else ("NULLABLE" if nullable else "REQUIRED"),
            }
        )
    return fields


class LineDiagnostic(NamedTuple):
    game_date: dt.date
    game_id: str
    player_lookup: str
    code: str  # LINE_SANITY_REJECT | LINE_SOURCE | NO_PROP_LINE
    book: str | None
    line: float | None
    value: str | None
    reason: str
    snapshot_ts: dt.datetime | None
    run_id: str | None = None
    policy_version: str | None = None
    # Versioning (streaming): 0 for a batch run; the stream writes version n of a player-game (its n-th
    # change) with ``scored_at`` = the event time it was decided at; the latest version is the current row.
    version: int | None = 0
    scored_at: dt.datetime | None = None


class LineBook(NamedTuple):
    """The line book of one player-game at the decision time (internal row, not a table)."""

    game_date: dt.date
    game_id: str
    player_lookup: str
    player_name: str | None
    line: float | None
    line_book: str | None
    line_source_api: str | None
    line_snapshot_ts: dt.datetime | None
    over_price: int | None
    under_price: int | None
    fallback_depth: int | None
    opening_line: float | None
    line_move: float | None
    n_books: int
    multi_book_line_std: float | None
    min_line: float | None
    max_line: float | None
    prop_line_delta: float | None


class GateDecision(NamedTuple):
    game_date: dt.date
    game_id: str
    player_lookup: str
    run_mode: str
    viable: bool
    reason: str
    feature_quality_score: float | None
    team_abbr: str | None = None
    has_line: bool = False
    run_id: str | None = None
    policy_version: str | None = None
    # Versioning (streaming): 0 for a batch run; the stream writes version n of a player-game (its n-th
    # change) with ``scored_at`` = the event time it was decided at; the latest version is the current row.
    version: int | None = 0
    scored_at: dt.datetime | None = None


class Prediction(NamedTuple):
    game_date: dt.date
    game_id: str
    player_lookup: str
    model_id: str
    family: str
    feature_set: str
    predicted_points: float
    line: float | None
    line_book: str | None
    line_snapshot_ts: dt.datetime | None
    edge: float | None
    recommendation: str  # OVER | UNDER | HOLD | NO_LINE
    confidence: float
    feature_quality_score: float | None = None
    team_abbr: str | None = None
    opponent_team_abbr: str | None = None
    run_id: str | None = None
    policy_version: str | None = None
    # Versioning (streaming): 0 for a batch run; the stream writes version n of a player-game (its n-th
    # change) with ``scored_at`` = the event time it was decided at; the latest version is the current row.
    version: int | None = 0
    scored_at: dt.datetime | None = None


class Consensus(NamedTuple):
    game_date: dt.date
    game_id: str
    player_lookup: str
    line: float | None
    line_book: str | None
    line_snapshot_ts: dt.datetime | None
    consensus_edge: float | None
    consensus_prediction: float | None
    direction: str | None  # OVER | UNDER | None without a line
    n_families: int
    n_models: int
    agreement: float | None
    dispersion: float | None
    max_edge_model_id: str | None
    max_edge: float | None
    family_edges: Json
    model_ids: tuple[str, ...]
    mean_confidence: float | None
    method: str
    feature_quality_score: float | None = None
    team_abbr: str | None = None
    opponent_team_abbr: str | None = None
    run_id: str | None = None
    policy_version: str | None = None
    # Versioning (streaming): 0 for a batch run; the stream writes version n of a player-game (its n-th
    # change) with ``scored_at`` = the event time it was decided at; the latest version is the current row.
    version: int | None = 0
    scored_at: dt.datetime | None = None


class Pick(NamedTuple):
    """A best bet (table ``best_bets``: latest version of each pick)."""

    pick_id: str
    game_date: dt.date
    game_id: str
    player_lookup: str
    player_name: str | None
    team_abbr: str | None
    opponent_team_abbr: str | None
    tipoff_utc: dt.datetime | None
    rank: int
    direction: str
    line: float
    line_book: str | None
    line_snapshot_ts: dt.datetime | None
    consensus_edge: float
    predicted_points: float | None
    agreement: float | None
    n_families: int
    n_models: int
    dispersion: float | None
    confidence: float | None
    model_ids: tuple[str, ...]
    signals: tuple[str, ...]
    signal_details: Json
    filter_audit: Json
    pick_angles: tuple[str, ...]
    ultra_tier: bool
    ultra_criteria: Json
    status: str  # active | withdrawn | locked
    version: int
    withdrawn_reason: str | None = None
    run_id: str | None = None
    policy_version: str | None = None


BestBetHistory = NamedTuple(  # type: ignore[misc]
    "BestBetHistory",
    [("change", str), ("changed_at", dt.datetime)]
    + [(f, typing.get_type_hints(Pick)[f]) for f in Pick._fields],
)
BestBetHistory.__doc__ = "One version of a pick (table ``best_bets_history``): change + the pick fields."


class FilterSummary(NamedTuple):
    game_date: dt.date
    total_candidates: int
    passed: int
    rejected: Json  # {"edge_floor": 12, ...} in filter order
    run_id: str | None = None
    policy_version: str | None = None


class PredictionAccuracy(NamedTuple):
    game_date: dt.date
    game_id: str
    player_lookup: str
    model_id: str
    family: str | None
    line: float | None
    recommendation: str
    predicted_points: float | None
    edge: float | None
    actual_points: float | None
    minutes: float | None
    prediction_correct: bool | None  # NULL for push / void / no result
    is_push: bool
    is_voided: bool
    void_reason: str | None
    absolute_error: float | None
    signed_error: float | None
    within_3: bool | None
    within_5: bool | None
    margin: float | None  # actual - line
    run_id: str | None = None
    # Extra columns (grading): the selected book's line at tip-off and CLV in points (positive = the
    # recommendation beat the close; OVER: closing - line, UNDER: line - closing); None without a bet.
    closing_line: float | None = None
    clv: float | None = None
    # The "edge N+" rule (domain.grading.edge_outcome): the result of the edge's direction (OVER when
    # edge > 0) against the line, whatever the recommendation; NULL for push / void / no line / edge 0.
    # Every "edge 3+" / "edge 5+" hit rate reads it with ``abs(edge) >= bucket``.
    edge_correct: bool | None = None


class BestBetResult(NamedTuple):
    pick_id: str
    game_date: dt.date
    game_id: str
    player_lookup: str
    direction: str
    line: float
    consensus_edge: float | None
    actual_points: float | None
    minutes: float | None
    result: str  # WIN | LOSS | PUSH | VOID | PENDING
    void_reason: str | None
    margin: float | None
    closing_line: float | None
    clv: float | None
    ultra_tier: bool
    run_id: str | None = None
    # Extra columns (grading): the pick's rank and the run that produced it (live vs backfill picks for
    # the ultra public gate), the closing line's book.
    rank: int | None = None
    pick_run_id: str | None = None
    closing_book: str | None = None


class ModelPerformanceDaily(NamedTuple):
    game_date: dt.date
    model_id: str
    family: str | None
    hr_7d: float | None
    hr_14d: float | None
    hr_30d: float | None
    n_7d: int
    n_14d: int
    n_30d: int
    hr_edge5_30d: float | None
    n_edge5_30d: int
    over_hr_30d: float | None
    under_hr_30d: float | None
    mae_30d: float | None
    vegas_bias_30d: float | None
    state: str  # INSUFFICIENT_DATA | BLOCKED | DEGRADING | WATCH | HEALTHY
    run_id: str | None = None


class RunRecord(NamedTuple):
    run_id: str
    command: str
    options: Json
    policy_version: str | None
    registry_digest: str | None
    started_at: dt.datetime
    finished_at: dt.datetime | None
    status: str  # running | succeeded | failed | submitted | killed | abandoned
    counts: Json
    game_date: dt.date | None = None
    host: str | None = None  # where the launching process runs (a `running` row of a gone pid is abandoned)
    pid: int | None = None


class BridgeWatermark(NamedTuple):
    """``props bridge`` (issue #11 item 4): how far one old table has been published to the events topic.

    One row per pass that moved it (append-only); the current watermark of a table is its largest
    ``(watermark_ts, watermark_key)`` and largest ``dates_to`` (``pipeline.io.bridge.read_watermarks``).
    """

    source: str  # bigquery-legacy://PROJECT
    source_table: str  # the old table, e.g. nba_raw.odds_api_player_points_props
    watermark_ts: dt.datetime | None  # the largest arrival time (the old table's processed_at) published
    watermark_key: str | None  # tie-break among the rows of that arrival time
    dates_to: dt.date  # the last game date read; a later date is read in full when it enters the window
    advanced_at: dt.datetime
    run_id: str
    rows_read: int
    rows_published: int
    dead_letters: int


TABLES: dict[str, TableSpec] = {
    spec.name: spec
    for spec in (
        TableSpec("runs", RunRecord, ("run_id",), partition=None),
        TableSpec(
            "line_diagnostics", LineDiagnostic,
            ("game_date", "game_id", "player_lookup", "version", "code", "book")
        ),
        TableSpec("gate_decisions", GateDecision, ("game_date", "game_id", "player_lookup", "version")),
        TableSpec(
            "predictions",
            Prediction,
            ("game_date", "game_id", "player_lookup", "version", "model_id", "line_snapshot_ts"),
            cluster=("model_id", "player_lookup"),
        ),
        TableSpec(
            "consensus", Consensus, ("game_date", "game_id", "player_lookup", "version"),
            cluster=("player_lookup",)
        ),
        TableSpec("best_bets", Pick, ("pick_id",), cluster=("pick_id",)),
        TableSpec("best_bets_history", BestBetHistory, ("pick_id", "version"), cluster=("pick_id",)),
        TableSpec("filter_summary", FilterSummary, ("game_date",)),
        TableSpec(
            "prediction_accuracy",
            PredictionAccuracy,
            ("game_date", "game_id", "player_lookup", "model_id"),
            cluster=("model_id",),
        ),
        TableSpec("best_bets_results", BestBetResult, ("pick_id",)),
        TableSpec(
            "model_performance_daily", ModelPerformanceDaily, ("game_date", "model_id"), cluster=("model_id",)
        ),
        TableSpec("dead_letters", DeadLetter, ("source", "step", "payload"), partition="game_date"),
        TableSpec("bridge_watermarks", BridgeWatermark, ("source", "source_table", "advanced_at"),
                  partition=None),
    )
}

"""The old Cloud Run system's data, mapped to ours in one place (issue #11; facts in legacy.md).

Pure mapping functions, so every reader (the registry import, the ``bigquery-legacy://`` table reader)
shares them. The table mappers turn one old row into a raw record in our input contract's field names;
``pipeline.io.parse.parse_record`` then types and validates it (validation stays in one place), so a row
that maps to something invalid becomes a dead letter with the parser's reason::

    record = odds_api_record(old_row)               # None: an in-game snapshot (ignored by rule)
    row = parse_record("odds", record)              # OddsSnapshot, or ParseError -> dead letter

Old tables -> our kinds (legacy.md section 1): ``nba_raw.odds_api_player_points_props`` and
``nba_raw.bettingpros_player_points_props`` (fallback) -> odds; ``nba_raw.nbac_schedule`` +
``nba_orchestration.game_postponements`` -> schedule; ``nba_raw.nbac_injury_report`` -> injuries;
``nba_predictions.ml_feature_store_v2`` -> features; ``nba_analytics.player_game_summary`` -> box scores.

The same mapping is also generated as BigQuery SQL views, one per input kind (:func:`create_views`,
``props legacy create-views``), for owners who prefer ``--inputs bigquery://PROJECT.VIEWS_DATASET``: the
SQL is built from this module's constants and rule functions (``american_sql`` next to
``american_from_decimal``, ...) and tests/test_legacy_views.py asserts the views give the same typed rows.

Model registry (legacy.md section 3): an old ``nba_predictions.model_registry`` row becomes one of our
registry entries (:class:`models.registry.ModelSpec`)::

    rows = read_registry_export("model_registry.json")          # bq JSON (array) or newline-delimited
    rows = read_registry_table("bigquery://PROJECT.nba_predictions")  # or the table itself, directly
    spec = registry_spec_from_legacy(rows[0], artifact_uri="/models/x.cbm", sha256="...")

The family comes from the row's feature set + loss + quantile alpha, never from its id or its
``model_family`` text alone: the old ``v12_q43`` / ``v12_q45`` names a quantile model on the full v12 set
(with the Vegas features), which this project calls ``v12_vegas_q43`` / ``v12_vegas_q45``, while the old
notes also call noveg quantile models "v12_q43"; the ``feature_set`` column decides. The old
``model_family`` is kept only when it is one of our families and agrees with the fields
(``v9_low_vegas``). A row imports enabled only when the old row is ``enabled`` and ``status = 'active'``;
the old system had no promotion gates, so an imported model carries no gate results and an enabled one is
``promoted`` (the old owners' decision stands); every other row imports disabled with status ``retired``.
The old row's metadata is kept under ``training_params["legacy"]``.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from collections.abc import Iterable, Mapping
from typing import Any

import apache_beam as beam

from models.registry import FAMILIES, ModelSpec
from pipeline.domain.calendar import EASTERN
from pipeline.schemas import FEATURE_NAMES, FEATURE_SETS, REQUIRED_FEATURE_INDICES, feature_names_for

# Old feature counts -> feature set (legacy.md section 3: 33 v9, 50 v12_noveg, 54 v12).
FEATURE_SET_BY_COUNT: dict[int, str] = {len(v): k for k, v in FEATURE_SETS.items()}
# The old status of a model that may serve (shadow models: enabled AND status = 'active').
LEGACY_ACTIVE_STATUS = "active"
_ALPHA_RE = re.compile(r"alpha\s*=\s*([0-9.]+)", re.IGNORECASE)


class LegacyRowError(ValueError):
    """An old row that cannot be mapped; the message names the row and why."""


def _bool(value: Any) -> bool:
    """BigQuery JSON exports write BOOL as true/false or "true"/"false"; NULL is false."""
    if isinstance(value, bool):
        return value
    if value is None:
        return False
    return str(value).strip().lower() in ("true", "1", "t", "yes")


def _float(value: Any) -> float | None:
    if value is None or value == "":
        return None
    return float(value)


def _date(value: Any, field: str, model_id: str) -> dt.date:
    try:
        return dt.date.fromisoformat(str(value)[:10])
    except (TypeError, ValueError):
        raise LegacyRowError(f"model {model_id}: {field} {value!r} is not a date (YYYY-MM-DD)") from None


def legacy_loss(row: Mapping[str, Any]) -> tuple[str, float | None]:
    """(our loss text, quantile alpha) from ``loss_function`` and ``quantile_alpha``."""
    model_id = row.get("model_id", "?")
    text = str(row.get("loss_function") or "").strip()
    alpha = _float(row.get("quantile_alpha"))
    if alpha is None and text.lower().startswith("quantile"):
        m = _ALPHA_RE.search(text)
        alpha = float(m.group(1)) if m else None
    if text.lower().startswith("quantile") or alpha is not None:
        if alpha is None:
            raise LegacyRowError(f"model {model_id}: quantile loss {text!r} without an alpha")
        return f"Quantile:alpha={alpha}", alpha
    if text.upper() in ("", "MAE"):
        return "MAE", None
    raise LegacyRowError(f"model {model_id}: loss_function {text!r} has no family here (MAE or Quantile)")


def legacy_feature_set(row: Mapping[str, Any]) -> str:
    """The row's feature set: ``feature_set``, else by ``feature_count``; checked against features_json."""
    model_id = row.get("model_id", "?")
    fs = row.get("feature_set")
    count = int(row["feature_count"]) if row.get("feature_count") not in (None, "") else None
    if not fs:
        fs = FEATURE_SET_BY_COUNT.get(count) if count is not None else None
    if fs not in FEATURE_SETS:
        raise LegacyRowError(f"model {model_id}: feature set {fs!r} (feature_count {count}) is not one of "
                             f"{sorted(FEATURE_SETS)}")
    if count is not None and count != len(FEATURE_SETS[fs]):
        raise LegacyRowError(f"model {model_id}: feature_count {count} but feature set {fs} has "
                             f"{len(FEATURE_SETS[fs])} features")
    names = row.get("features_json")
    if isinstance(names, str) and names.strip():
        names = json.loads(names)
    if names and tuple(names) != feature_names_for(fs):
        raise LegacyRowError(f"model {model_id}: features_json differs from feature set {fs} (names or "
                             "order); the contract is index 0-54 by name")
    return fs


def legacy_family(row: Mapping[str, Any]) -> str:
    """Our family of an old row, from feature set + loss + alpha (see the module docstring)."""
    fs = legacy_feature_set(row)
    loss, alpha = legacy_loss(row)
    old = str(row.get("model_family") or "")
    fam = FAMILIES.get(old)
    if fam is not None and fam.feature_set == fs and fam.loss == loss and fam.quantile_alpha == alpha:
        return old
    candidates = sorted(name for name, f in FAMILIES.items()
                        if f.feature_set == fs and f.loss == loss and f.quantile_alpha == alpha
                        and name != "v9_low_vegas")
    if len(candidates) != 1:
        raise LegacyRowError(f"model {row.get('model_id', '?')}: no single family for feature set {fs}, "
                             f"loss {loss} (old model_family {old!r}); candidates {candidates}")
    return candidates[0]


def registry_spec_from_legacy(row: Mapping[str, Any], *, artifact_uri: str, sha256: str) -> ModelSpec:
    """One old ``model_registry`` row as our registry entry (artifact located and hashed by the caller)."""
    model_id = str(row.get("model_id") or "").strip()
    if not model_id:
        raise LegacyRowError("a model_registry row without model_id")
    if row.get("sha256_hash") and str(row["sha256_hash"]).lower() != sha256:
        raise LegacyRowError(f"model {model_id}: artifact {artifact_uri} sha256 {sha256} differs from the "
                             f"old registry's sha256_hash {row['sha256_hash']}; restore the registered file")
    fs = legacy_feature_set(row)
    loss, alpha = legacy_loss(row)
    family = legacy_family(row)
    old_status = str(row.get("status") or "")
    enabled = _bool(row.get("enabled")) and old_status == LEGACY_ACTIVE_STATUS
    config = row.get("training_config_json")
    if isinstance(config, str) and config.strip():
        config = json.loads(config)
    legacy_meta = {k: row.get(k) for k in (
        "model_version", "model_family", "status", "is_production", "enabled", "gcs_path", "training_samples",
        "evaluation_mae", "evaluation_hit_rate", "evaluation_hit_rate_edge_3plus",
        "evaluation_hit_rate_edge_5plus", "evaluation_n_edge_3plus", "experiment_id", "git_commit", "notes",
        "created_at", "created_by") if row.get(k) is not None}
    return ModelSpec(
        model_id=model_id, family=family, feature_set=fs, loss=loss, quantile_alpha=alpha,
        training_start=_date(row.get("training_start_date"), "training_start_date", model_id),
        training_end=_date(row.get("training_end_date"), "training_end_date", model_id),
        artifact_uri=artifact_uri, sha256=sha256, feature_count=len(FEATURE_SETS[fs]), enabled=enabled,
        status="promoted" if enabled else "retired",
        training_params={"legacy": legacy_meta, "legacy_training_config": config or {}},
    )


def read_registry_export(text: str) -> list[dict[str, Any]]:
    """Rows of a JSON export of ``model_registry``: a JSON array (``bq query --format=json``) or
    newline-delimited JSON (``bq extract``)."""
    stripped = text.strip()
    if not stripped:
        return []
    if stripped.startswith("["):
        rows = json.loads(stripped)
    else:
        rows = [json.loads(line) for line in stripped.splitlines() if line.strip()]
    if not all(isinstance(r, dict) for r in rows):
        raise LegacyRowError("model_registry export: expected JSON objects, one per row")
    return rows


REGISTRY_TABLE = "nba_predictions.model_registry"


def registry_table(uri: str) -> str:
    """``bigquery://PROJECT.DATASET`` (its ``model_registry`` table) or ``bigquery://PROJECT.DATASET.TABLE``
    -> ``PROJECT.DATASET.TABLE``; ValueError with an example otherwise."""
    parts = uri[len("bigquery://"):].split(".") if uri.startswith("bigquery://") else []
    if len(parts) == 2:
        parts.append(REGISTRY_TABLE.split(".")[1])
    if len(parts) != 3 or not all(parts):
        raise ValueError(f"expected bigquery://PROJECT.DATASET or bigquery://PROJECT.DATASET.TABLE (e.g. "
                         f"bigquery://nba-props-platform.nba_predictions), got {uri!r}")
    return ".".join(parts)


def export_value(value: Any) -> Any:
    """A BigQuery result value as ``bq query --format=json`` writes it (dates, timestamps and NUMERIC as
    text; JSON columns as their document), so a table read and a JSON export map the same way."""
    if isinstance(value, dt.datetime):
        return (value if value.tzinfo else value.replace(tzinfo=dt.UTC)).astimezone(dt.UTC).isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, (list, dict)) or value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)  # Decimal and anything else textual


def read_registry_table(uri: str) -> list[dict[str, Any]]:
    """The rows of the old ``model_registry`` table read directly (one query), as export rows."""
    from pipeline.io import cloud

    table = registry_table(uri)
    client = cloud.bigquery_client(table.split(".")[0])
    rows = client.query(f"SELECT * FROM `{table}` ORDER BY model_id").result()
    return [{k: export_value(v) for k, v in row.items()} for row in rows]


# -- old tables -> our raw records ---------------------------------------------------------------------

# The old tables, by our input kind (the reader queries these; bettingpros is the odds fallback).
LEGACY_TABLES: dict[str, str] = {
    "odds": "nba_raw.odds_api_player_points_props",
    "odds_fallback": "nba_raw.bettingpros_player_points_props",
    "schedule": "nba_raw.nbac_schedule",
    "postponements": "nba_orchestration.game_postponements",
    "injuries": "nba_raw.nbac_injury_report",
    "features": "nba_predictions.ml_feature_store_v2",
    "box_scores": "nba_analytics.player_game_summary",
}
# The day the old schedule writer began storing true UTC tip-offs (cf4a200a); older rows hold Eastern
# wall time labelled UTC (legacy.md 1.3).
SCHEDULE_UTC_SINCE = dt.date(2025, 12, 23)
GAME_STATUS_CODES: dict[int, str] = {1: "scheduled", 2: "in_progress", 3: "final"}
ACTIVE_POSTPONEMENT_STATUSES: tuple[str, ...] = ("detected", "confirmed")
# BettingPros' Title-case book names -> Odds API keys (ours); others are lower-cased, spaces to "_".
BETTINGPROS_BOOKS: dict[str, str] = {
    "DraftKings": "draftkings", "FanDuel": "fanduel", "BetMGM": "betmgm", "Caesars": "williamhill_us",
    "PointsBet": "pointsbet", "BettingPros Consensus": "bettingpros_consensus",
}
# Assumed event times where the old tables keep none (documented in notes/h-legacy.md): a final result
# becomes known this long after tip-off; a scheduled game is known from the start of its date's eve.
FINAL_AFTER_TIPOFF = dt.timedelta(hours=3)
SCHEDULED_KNOWN_BEFORE = dt.timedelta(days=1)
# ``game_status_text`` values a manual fix sets on a postponed game (lower-cased, stripped).
POSTPONED_TEXT = "postponed"
RESCHEDULED_TEXT_PREFIX = "rescheduled"
# Decimal prices at or above even money are underdogs (American = (d - 1) * 100), below favourites.
EVEN_DECIMAL_PRICE = 2.0
# Odds snapshots with fewer minutes before tip-off than this are in-game (ignored by rule).
IN_GAME_BELOW_MINUTES = 0
# The feature store's version names carry their width: v2_54features.
FEATURE_VERSION_WIDTH_RE = r"(\d+)features"


def round_half_away(value: float, digits: int = 0) -> float:
    """Rounding as BigQuery's ROUND does it (half away from zero), so the views round like this module."""
    scale = 10.0 ** digits
    return math.copysign(math.floor(abs(value) * scale + 0.5) / scale, value)


def _utc(value: Any) -> dt.datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, dt.datetime):
        ts = value
    else:
        ts = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00").replace(" UTC", "+00:00"))
    return ts.replace(tzinfo=dt.UTC) if ts.tzinfo is None else ts.astimezone(dt.UTC)


def as_date(value: Any) -> dt.date | None:
    if value is None or value == "":
        return None
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(str(value)[:10])


def american_from_decimal(price: Any) -> int | None:
    """Decimal odds -> American, rounded to the nearest integer (1.87 -> -115, 2.10 -> 110); the old
    ``*_american`` columns truncate (1.87 -> -114), so the decimal price is the one converted here."""
    d = _float(price)
    if d is None or d <= 1.0:
        return None
    if d >= EVEN_DECIMAL_PRICE:
        return int(round_half_away((d - 1.0) * 100.0))
    return -int(round_half_away(100.0 / (d - 1.0)))


def game_id_of(game_date: Any, away: Any, home: Any) -> str | None:
    """Our game id ``YYYYMMDD_AWAY_HOME`` rebuilt from the Eastern date and the tricodes (both old id
    forms, official 10-digit and date-based, map to it)."""
    d = as_date(game_date)
    if d is None or not away or not home:
        return None
    return f"{d:%Y%m%d}_{str(away).upper()}_{str(home).upper()}"


def _teams_of_game_id(game_id: Any) -> tuple[str, str] | None:
    parts = str(game_id or "").split("_")
    return (parts[1], parts[2]) if len(parts) == 3 and len(parts[0]) == 8 else None


def odds_api_record(row: Mapping[str, Any]) -> dict[str, Any] | None:
    """An ``odds_api_player_points_props`` row as our odds record; None for an in-game snapshot
    (``minutes_before_tipoff < 0``), which the pipeline never uses."""
    mbt = row.get("minutes_before_tipoff")
    if mbt is not None and mbt != "" and int(mbt) < IN_GAME_BELOW_MINUTES:
        return None
    over = american_from_decimal(row.get("over_price"))
    under = american_from_decimal(row.get("under_price"))
    return {
        "player_lookup": row.get("player_lookup"),
        "player_name": row.get("player_name") or row.get("player_lookup"),
        "game_id": game_id_of(row.get("game_date"), row.get("away_team_abbr"), row.get("home_team_abbr")),
        "game_date": as_date(row.get("game_date")),
        "book": row.get("bookmaker"),
        "line": row.get("points_line"),
        "over_price": over if over is not None else row.get("over_price_american"),
        "under_price": under if under is not None else row.get("under_price_american"),
        "snapshot_ts": _utc(row.get("snapshot_timestamp")),
        "source_api": "odds_api",
    }


def bettingpros_book(name: Any) -> str:
    text = str(name or "")
    return BETTINGPROS_BOOKS.get(text, text.strip().lower().replace(" ", "_"))


def bettingpros_records(rows: Iterable[Mapping[str, Any]],
                        game_ids: Mapping[tuple[dt.date, str], str]) -> list[dict[str, Any]]:
    """BettingPros rows (one per side, every market) as our odds records: points market, active rows,
    the over and under rows of one player x book x line x time paired. ``game_ids`` maps
    (game_date, team) to our game id (from the schedule; the table has no game id). A side without its
    partner still yields a record (its missing price makes it a dead letter, never a silent drop)."""
    pairs: dict[tuple, dict[str, Any]] = {}
    for row in rows:
        if str(row.get("market_type") or "") != "points" or not _bool(row.get("is_active", True)):
            continue
        d = as_date(row.get("game_date"))
        key = (row.get("player_lookup"), bettingpros_book(row.get("bookmaker")),
               _float(row.get("points_line")), d, str(row.get("created_at")))
        rec = pairs.setdefault(key, {
            "player_lookup": row.get("player_lookup"),
            "player_name": row.get("player_name") or row.get("player_lookup"),
            "game_id": game_ids.get((d, str(row.get("player_team") or "").upper())),
            "game_date": d, "book": key[1], "line": row.get("points_line"), "over_price": None,
            "under_price": None, "snapshot_ts": _utc(row.get("created_at")), "source_api": "bettingpros",
        })
        side = str(row.get("bet_side") or "").lower()
        if side in ("over", "under"):
            rec[f"{side}_price"] = row.get("odds_american")
    return list(pairs.values())


def schedule_tipoff(row: Mapping[str, Any]) -> dt.datetime | None:
    """The tip-off instant: ``game_date_est`` is true UTC from 2025-12-23; older rows hold Eastern wall
    time labelled UTC, re-read as Eastern here."""
    ts = _utc(row.get("game_date_est"))
    d = as_date(row.get("game_date"))
    if ts is None or d is None or d >= SCHEDULE_UTC_SINCE:
        return ts
    return ts.replace(tzinfo=None).replace(tzinfo=EASTERN).astimezone(dt.UTC)


def latest_schedule_rows(rows: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """One row per (game_id, game_date), the highest status winning (the old ``v_nbac_schedule_latest``);
    a tie goes to the first ``data_source`` by name (``api_stats`` before ``cdn_static``)."""
    best: dict[tuple, Mapping[str, Any]] = {}
    for row in sorted(rows, key=lambda r: (-int(r.get("game_status") or 0), str(r.get("data_source") or ""))):
        best.setdefault((row.get("game_id"), str(as_date(row.get("game_date")))), row)
    return list(best.values())


def scheduled_known_at(game_date: dt.date | None) -> dt.datetime | None:
    """When a game's ``scheduled`` state is known: its date's Eastern midnight less
    ``SCHEDULED_KNOWN_BEFORE`` (the schedule view's ``eve``)."""
    if game_date is None:
        return None
    midnight = dt.datetime.combine(game_date, dt.time(0), tzinfo=EASTERN).astimezone(dt.UTC)
    return midnight - SCHEDULED_KNOWN_BEFORE


def schedule_record(row: Mapping[str, Any],
                    postponements: Iterable[Mapping[str, Any]] = ()) -> dict[str, Any]:
    """An ``nbac_schedule`` row (+ its active ``game_postponements`` rows, matched on the official id and
    the original date) as our schedule event."""
    d = as_date(row.get("game_date"))
    tipoff = schedule_tipoff(row)
    code = int(row["game_status"]) if row.get("game_status") not in (None, "") else None
    status = GAME_STATUS_CODES.get(code, f"unknown status code {code}")
    text = str(row.get("game_status_text") or "").strip().lower()
    new_date = None
    event_ts = scheduled_known_at(d)
    if text == POSTPONED_TEXT or text.startswith(RESCHEDULED_TEXT_PREFIX):
        status = "postponed"
    active = [p for p in postponements
              if (str(p.get("game_id")) == str(row.get("game_id")) and as_date(p.get("original_date")) == d
                  and str(p.get("status") or "") in ACTIVE_POSTPONEMENT_STATUSES)]
    if active:  # the latest detection wins
        p = max(active, key=lambda p: _utc(p.get("detected_at")) or dt.datetime.min.replace(tzinfo=dt.UTC))
        new_date = as_date(p.get("new_date"))
        status = "postponed" if new_date is not None else "cancelled"
        event_ts = _utc(p.get("detected_at")) or event_ts
    if status == "final" and tipoff is not None:
        event_ts = tipoff + FINAL_AFTER_TIPOFF
    elif status == "in_progress" and tipoff is not None:
        event_ts = tipoff
    return {
        "game_id": game_id_of(d, row.get("away_team_tricode"), row.get("home_team_tricode")),
        "game_date": d, "tipoff_utc": tipoff, "home_team": row.get("home_team_tricode"),
        "away_team": row.get("away_team_tricode"), "status": status, "new_game_date": new_date,
        "event_ts": event_ts,
    }


def schedule_records(row: Mapping[str, Any],
                     postponements: Iterable[Mapping[str, Any]] = ()) -> list[dict[str, Any]]:
    """The schedule events an ``nbac_schedule`` row stands for. The old writer MERGEs, so the table keeps
    a game's last state only: a game already in progress, final or postponed was scheduled before, and
    that ``scheduled`` event (known from its date's eve, like a scheduled row) comes first; without it a
    run at the decision time over a finished date would see no games."""
    record = schedule_record(row, postponements)
    eve = scheduled_known_at(record["game_date"])
    event_ts = record["event_ts"]
    if record["status"] == "scheduled" or eve is None or event_ts is None or event_ts <= eve:
        return [record]
    return [dict(record, status="scheduled", new_game_date=None, event_ts=eve), record]


def injury_report_time(report_date: Any, report_hour: Any) -> dt.datetime | None:
    """The report instant: the report date at the Eastern hour (daylight saving time included), in UTC."""
    d = as_date(report_date)
    if d is None or report_hour is None or report_hour == "":
        return None
    return dt.datetime.combine(d, dt.time(int(report_hour)), tzinfo=EASTERN).astimezone(dt.UTC)


def injury_record(row: Mapping[str, Any]) -> dict[str, Any]:
    """An ``nbac_injury_report`` row as our injury report (status lowercase, as the old table has it)."""
    return {
        "player_lookup": row.get("player_lookup"), "game_date": as_date(row.get("game_date")),
        "status": str(row.get("injury_status") or "").strip().lower() or None,
        "reason": row.get("reason") or row.get("reason_category") or "",
        "report_ts": injury_report_time(row.get("report_date"), row.get("report_hour")),
    }


def _team_from_context(row: Mapping[str, Any]) -> str | None:
    teams = _teams_of_game_id(row.get("game_id"))
    if teams is None or row.get("is_home") in (None, ""):
        return None
    away, home = teams
    return home if _bool(row.get("is_home")) else away


def feature_record(row: Mapping[str, Any]) -> dict[str, Any]:
    """An ``ml_feature_store_v2`` row as our feature row: ``feature_{i}_value`` -> the catalogue names
    (NULL stays missing; the legacy arrays with defaults are not read), team from the date-based game id
    and ``is_home``, required defaults counted from ``default_feature_indices``."""
    record: dict[str, Any] = {name: row.get(f"feature_{i}_value") for i, name in enumerate(FEATURE_NAMES)}
    defaults = [int(i) for i in (row.get("default_feature_indices") or [])]
    record.update({
        "player_lookup": row.get("player_lookup"), "game_id": row.get("game_id"),
        "game_date": as_date(row.get("game_date")), "team_abbr": _team_from_context(row),
        "opponent_team_abbr": row.get("opponent_team_abbr"), "feature_version": row.get("feature_version"),
        "feature_quality_score": _float(row.get("feature_quality_score")),
        "quality_alert_level": row.get("quality_alert_level"),
        "matchup_quality_pct": _float(row.get("matchup_quality_pct")),
        "required_default_count": sum(1 for i in defaults if i in REQUIRED_FEATURE_INDICES),
        "default_feature_indices": defaults,
        "prev_game_closing_line": previous_game_line(row),
    })
    return record


def previous_game_line(row: Mapping[str, Any]) -> float | None:
    """The previous game's line, which the line book needs for ``prop_line_delta``: the old store keeps
    ``vegas_points_line`` (25) and ``prop_line_delta`` (54, current line - previous game's line), so it
    is feature 25 - feature 54 when both are present."""
    line, delta = _float(row.get("feature_25_value")), _float(row.get("feature_54_value"))
    return None if line is None or delta is None else round_half_away(line - delta, 2)


def box_score_record(row: Mapping[str, Any]) -> dict[str, Any]:
    """A ``player_game_summary`` row as our box score (``starter_flag``, ``plus_minus`` and the three-point
    ``three_pt_attempts`` / ``three_pt_makes`` of the old DDL when present; missing: starter false, the
    others missing)."""
    return {
        "player_lookup": row.get("player_lookup"), "game_id": row.get("game_id"),
        "game_date": as_date(row.get("game_date")), "team_abbr": row.get("team_abbr"),
        "points": row.get("points"), "minutes": _float(row.get("minutes_played")),
        "is_dnp": _bool(row.get("is_dnp")), "starter": _bool(row.get("starter_flag")),
        "plus_minus": row.get("plus_minus"), "opponent_team_abbr": row.get("opponent_team_abbr"),
        "fg3a": row.get("three_pt_attempts"), "fg3m": row.get("three_pt_makes"),
    }


# -- the bigquery-legacy:// reader -------------------------------------------------------------------

LEGACY_SCHEME = "bigquery-legacy://"
# Injury reports for a game date are issued on that date or the days just before it; the table is
# partitioned by report_date, so the read is bounded to this many days before the first date.
INJURY_REPORT_LOOKBACK_DAYS = 3


def injury_window_sql() -> str:
    """The report dates read for a row's game date (the reader's query and the injuries view)."""
    return (f"report_date BETWEEN DATE_SUB(game_date, INTERVAL {INJURY_REPORT_LOOKBACK_DAYS} DAY) "
            "AND game_date")


def is_legacy(location: str | None) -> bool:
    return bool(location) and location.startswith(LEGACY_SCHEME)


def parse_legacy_uri(uri: str) -> str:
    """``bigquery-legacy://PROJECT`` -> PROJECT; ValueError with an example otherwise."""
    project = uri[len(LEGACY_SCHEME):] if uri.startswith(LEGACY_SCHEME) else ""
    if not project or "." in project or "/" in project:
        raise ValueError(f"expected bigquery-legacy://PROJECT (e.g. bigquery-legacy://nba-props-platform), "
                         f"got {uri!r}")
    return project


def legacy_sql(project: str, table_key: str) -> str:
    """The one partition-filtered query of an old table (parameters ``@dates``; injuries also
    ``@report_from`` / ``@report_to`` on their ``report_date`` partitions)."""
    table = f"`{project}.{LEGACY_TABLES[table_key]}`"
    if table_key == "injuries":
        return (f"SELECT * FROM {table} WHERE report_date BETWEEN @report_from AND @report_to "
                f"AND game_date IN UNNEST(@dates) AND {injury_window_sql()}")
    if table_key == "postponements":
        return f"SELECT * FROM {table} WHERE original_date IN UNNEST(@dates)"
    if table_key == "odds_fallback":
        return f"SELECT * FROM {table} WHERE game_date IN UNNEST(@dates) AND market_type = 'points'"
    return f"SELECT * FROM {table} WHERE game_date IN UNNEST(@dates)"


def _query(project: str, table_key: str, dates: list[dt.date]) -> list[dict[str, Any]]:
    from google.cloud import bigquery

    from pipeline.io import cloud

    params = [bigquery.ArrayQueryParameter("dates", "DATE", dates)]
    if table_key == "injuries":
        params += [bigquery.ScalarQueryParameter("report_from", "DATE",
                                                 min(dates) - dt.timedelta(days=INJURY_REPORT_LOOKBACK_DAYS)),
                   bigquery.ScalarQueryParameter("report_to", "DATE", max(dates))]
    config = bigquery.QueryJobConfig(query_parameters=params)
    job = cloud.bigquery_client(project).query(legacy_sql(project, table_key), job_config=config)
    return [dict(r.items()) for r in job.result(page_size=50_000)]


def _dead(kind: str, step: str, error: str, payload: Mapping[str, Any], game_date: Any = None):
    from pipeline import schemas

    return schemas.DeadLetter(source=kind, step=step, error=error,
                              payload=json.dumps(dict(payload), sort_keys=True, default=str),
                              event_ts=None, game_date=as_date(game_date))


def _typed(kind: str, pairs: Iterable[tuple[Mapping[str, Any], dict[str, Any] | None]]) -> tuple[list, list]:
    """(typed rows, dead letters) of (old row, mapped record) pairs; a None record is an ignored row."""
    from pipeline.io.parse import ParseError, parse_record

    rows, dead = [], []
    for old, record in pairs:
        if record is None:
            continue
        try:
            rows.append(parse_record(kind, record))
        except ParseError as exc:
            dead.append(_dead(kind, "legacy_map", exc.reason, old, old.get("game_date")))
    return rows, dead


def latest_feature_rows(rows: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """One feature-store row per player x game date: the feature version with the most features
    (``v2_54features`` over ``v2_39features``), as the old worker's auto-detection prefers."""
    def order(row: Mapping[str, Any]) -> tuple[int, str]:
        m = re.search(FEATURE_VERSION_WIDTH_RE, str(row.get("feature_version") or ""))
        return -(int(m.group(1)) if m else 0), str(row.get("feature_version") or "")

    best: dict[tuple, Mapping[str, Any]] = {}
    for row in sorted(rows, key=order):
        best.setdefault((row.get("player_lookup"), str(as_date(row.get("game_date")))), row)
    return list(best.values())


def read_rows_legacy(inputs: str, kind: str, dates: Iterable[dt.date], *, query=None) -> tuple[list, list]:
    """(typed rows, dead letters) of one of our input kinds read from the old tables of ``inputs``
    (``bigquery-legacy://PROJECT``) for some dates: partition-filtered queries, mapped here, typed by
    io/parse.py. ``query(project, table_key, dates)`` is the fetch (default: BigQuery)."""
    project = parse_legacy_uri(inputs)
    dates = sorted(set(dates))
    if not dates:
        return [], []
    query = query or _query
    if kind == "odds":
        old = query(project, "odds", dates)
        rows, dead = _typed(kind, ((r, odds_api_record(r)) for r in old))
        covered = {(r.game_date, r.player_lookup) for r in rows}
        sched, _ = read_rows_legacy(inputs, "schedule", dates, query=query)
        game_ids = {}
        for ev in sched:
            game_ids[(ev.game_date, ev.home_team)] = ev.game_id
            game_ids[(ev.game_date, ev.away_team)] = ev.game_id
        fallback = [r for r in query(project, "odds_fallback", dates)
                    if (as_date(r.get("game_date")), r.get("player_lookup")) not in covered]
        more, more_dead = _typed(kind, ((r, r) for r in bettingpros_records(fallback, game_ids)))
        return rows + more, dead + more_dead
    if kind == "schedule":
        dead = []
        try:
            postponements = query(project, "postponements", dates)
        except Exception as exc:  # noqa: BLE001 - the table has no known DDL: its absence is recorded
            postponements = []
            dead.append(_dead(kind, "legacy_postponements",
                              f"{LEGACY_TABLES['postponements']} unreadable ({type(exc).__name__}); "
                              "postponements not applied", {"dates": [d.isoformat() for d in dates]}))
        old = latest_schedule_rows(query(project, "schedule", dates))
        rows, more = _typed(kind, ((r, rec) for r in old for rec in schedule_records(r, postponements)))
        return rows, dead + more
    if kind == "injuries":
        return _typed(kind, ((r, injury_record(r)) for r in query(project, "injuries", dates)))
    if kind == "features":
        return _typed(kind, ((r, feature_record(r)) for r in latest_feature_rows(query(project, "features",
                                                                                       dates))))
    if kind == "box_scores":
        return _typed(kind, ((r, box_score_record(r)) for r in query(project, "box_scores", dates)))
    raise ValueError(f"unknown input kind {kind!r}")


class ReadLegacyFn(beam.DoFn):
    """Reads one kind for the dates (the element) from the old tables; emits rows at their event time."""

    DEAD_LETTERS = "dead_letters"

    def __init__(self, inputs: str, kind: str):
        self.inputs, self.kind = inputs, kind
        self.rows_counter = beam.metrics.Metrics.counter("props.io", f"legacy_{kind}_rows")
        self.dead_counter = beam.metrics.Metrics.counter("props.io", f"legacy_{kind}_dead_letters")

    def process(self, dates: list[dt.date]):
        from pipeline.io.parse import event_time

        rows, dead = read_rows_legacy(self.inputs, self.kind, dates)
        for d in dead:
            self.dead_counter.inc()
            yield beam.pvalue.TaggedOutput(self.DEAD_LETTERS, d)
        for row in rows:
            self.rows_counter.inc()
            yield beam.window.TimestampedValue(row, event_time(self.kind, row).timestamp())


class ReadLegacyInputs(beam.PTransform):
    """Reads one input kind for some dates from ``bigquery-legacy://PROJECT`` (the old tables).

    Returns a ``DoOutputsTuple`` like ``files.ReadInputs``: ``.rows`` and ``.dead_letters``.
    """

    def __init__(self, inputs: str, kind: str, dates: Iterable[dt.date]):
        super().__init__()
        parse_legacy_uri(inputs)
        self.inputs, self.kind, self.dates = inputs, kind, sorted(set(dates))

    def expand(self, pbegin):
        return (
            pbegin
            | "Dates" >> beam.Create([self.dates])
            | "QueryLegacyTables" >> beam.ParDo(ReadLegacyFn(self.inputs, self.kind)).with_outputs(
                ReadLegacyFn.DEAD_LETTERS, main="rows")
        )


# -- the same mapping as BigQuery SQL views (``props legacy create-views``) ----------------------------
#
# One view per input kind in a dataset of the owner's choice, named as ``bigquery://PROJECT.DATASET``
# inputs name their tables (``odds``, ``schedule``, ``injuries``, ``features``, ``box_scores``), so
# ``--inputs bigquery://PROJECT.VIEWS_DATASET`` reads the old tables through them with the native reader.
# The SQL is GENERATED here from the constants and rules above (price conversion, id rebuild, status
# codes and postponement texts, Eastern times, the feature catalogue of pipeline/schemas.py, the
# tie-breaks), never written by hand, and tests/test_legacy_views.py asserts that the typed rows read
# through the views equal those of ``bigquery-legacy://``. A column the old table lacks is NULL, as
# ``row.get`` is None above. One difference by construction: the reader treats a player as covered by
# the Odds API when one of his Odds API rows parses, the odds view when one exists (not in-game); the
# BettingPros fallback can differ only for a player whose Odds API rows are all dead letters.
#
# Dates: the native reader filters ``game_date IN UNNEST(@dates)`` on each view. Every view keeps the
# base table's ``game_date`` as a plain column and only projects, groups or windows by it (QUALIFY
# partitions and GROUP BY keys include it; the schedule lookup of BettingPros joins on it), so the filter
# reaches the partitioned tables. The injuries table is partitioned by ``report_date``: its view reads the
# reports of ``injury_window_sql`` per row, which prunes no partition (that table has no required filter);
# ``create-views`` dry-runs each view for one date, so a view whose date filter would not satisfy a table's
# required partition filter fails at creation with BigQuery's own message. QUALIFY always follows a WHERE
# (BigQuery has required one with it).

VIEW_KINDS: tuple[str, ...] = ("odds", "schedule", "injuries", "features", "box_scores")
_TZ = EASTERN.key


def _lit(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def american_sql(price: str) -> str:
    """:func:`american_from_decimal` in GoogleSQL (FLOOR(x + 0.5) is the half-away rounding of positives)."""
    return (f"CASE WHEN {price} IS NULL OR {price} <= 1.0 THEN NULL "
            f"WHEN {price} >= {EVEN_DECIMAL_PRICE} THEN CAST(FLOOR(({price} - 1.0) * 100.0 + 0.5) AS INT64) "
            f"ELSE -CAST(FLOOR(100.0 / ({price} - 1.0) + 0.5) AS INT64) END")


def game_id_sql(game_date: str, away: str, home: str) -> str:
    """:func:`game_id_of` in GoogleSQL (NULL when a part is missing)."""
    return (f"CONCAT(FORMAT_DATE('%Y%m%d', {game_date}), '_', UPPER(NULLIF({away}, '')), '_', "
            f"UPPER(NULLIF({home}, '')))")


def bettingpros_book_sql(name: str) -> str:
    """:func:`bettingpros_book` in GoogleSQL."""
    cases = " ".join(f"WHEN {_lit(k)} THEN {_lit(v)}" for k, v in BETTINGPROS_BOOKS.items())
    return f"CASE {name} {cases} ELSE REPLACE(LOWER(TRIM({name})), ' ', '_') END"


def game_status_sql(code: str) -> str:
    """``GAME_STATUS_CODES`` in GoogleSQL (an unknown code keeps the reader's text, a dead letter)."""
    cases = " ".join(f"WHEN {k} THEN {_lit(v)}" for k, v in GAME_STATUS_CODES.items())
    return (f"CASE {code} {cases} ELSE CONCAT('unknown status code ', "
            f"IFNULL(CAST({code} AS STRING), 'None')) END")


def _eastern_wall_time(date: str, time: str = "TIME(0, 0, 0)") -> str:
    return f"TIMESTAMP(DATETIME({date}, {time}), {_lit(_TZ)})"


class _Columns:
    """The columns of one old table (from its schema): ``c(name)`` is the column, or a typed NULL where
    the table lacks it (as the Python mapping's ``row.get`` is None)."""

    def __init__(self, columns: Mapping[str, str] | None, alias: str = ""):
        self.columns, self.alias = dict(columns or {}), alias

    def __call__(self, name: str, sql_type: str = "STRING") -> str:
        if name in self.columns:
            return f"{self.alias}{name}"
        return f"CAST(NULL AS {sql_type})"


def _table(project: str, key: str) -> str:
    return f"`{project}.{LEGACY_TABLES[key]}`"


def odds_view_sql(project: str, columns: Mapping[str, Mapping[str, str]]) -> str:
    """The odds view: Odds API rows (in-game snapshots ignored, decimal prices converted, the American
    columns as the fallback) and, for players without an Odds API row that date, BettingPros points rows
    with their over and under sides paired and the game id from the schedule."""
    a = _Columns(columns.get("odds"))
    api = (
        f"SELECT {a('player_lookup')} AS player_lookup, "
        f"COALESCE(NULLIF({a('player_name')}, ''), {a('player_lookup')}) AS player_name, "
        f"{game_id_sql('game_date', a('away_team_abbr'), a('home_team_abbr'))} AS game_id, "
        f"game_date, {a('bookmaker')} AS book, {a('points_line', 'FLOAT64')} AS line, "
        f"COALESCE({american_sql(a('over_price', 'FLOAT64'))}, {a('over_price_american', 'INT64')}) "
        "AS over_price, "
        f"COALESCE({american_sql(a('under_price', 'FLOAT64'))}, {a('under_price_american', 'INT64')}) "
        "AS under_price, "
        f"{a('snapshot_timestamp', 'TIMESTAMP')} AS snapshot_ts, 'odds_api' AS source_api "
        f"FROM {_table(project, 'odds')} "
        f"WHERE {a('minutes_before_tipoff', 'INT64')} IS NULL "
        f"OR {a('minutes_before_tipoff', 'INT64')} >= {IN_GAME_BELOW_MINUTES}")
    if "odds_fallback" not in columns:
        return api
    b = _Columns(columns["odds_fallback"])
    s = _Columns(columns.get("schedule"))
    book = bettingpros_book_sql(b("bookmaker"))
    side = f"LOWER({b('bet_side')})"
    pairs = (
        f"SELECT {b('player_lookup')} AS player_lookup, "
        f"ANY_VALUE(COALESCE(NULLIF({b('player_name')}, ''), {b('player_lookup')})) AS player_name, "
        f"ANY_VALUE(UPPER(IFNULL({b('player_team')}, ''))) AS player_team, game_date, {book} AS book, "
        f"{b('points_line', 'FLOAT64')} AS line, "
        f"MAX(IF({side} = 'over', {b('odds_american', 'INT64')}, NULL)) AS over_price, "
        f"MAX(IF({side} = 'under', {b('odds_american', 'INT64')}, NULL)) AS under_price, "
        f"{b('created_at', 'TIMESTAMP')} AS snapshot_ts "
        f"FROM {_table(project, 'odds_fallback')} "
        f"WHERE {b('market_type')} = 'points' AND {b('is_active', 'BOOL')} "
        "GROUP BY player_lookup, game_date, book, line, snapshot_ts")
    games = ("SELECT DISTINCT game_date, "
             f"{game_id_sql('game_date', s('away_team_tricode'), s('home_team_tricode'))} AS game_id, "
             f"{s('home_team_tricode')} AS home_team, {s('away_team_tricode')} AS away_team "
             f"FROM {_table(project, 'schedule')}") if "schedule" in columns else (
             "SELECT CAST(NULL AS DATE) AS game_date, CAST(NULL AS STRING) AS game_id, "
             "CAST(NULL AS STRING) AS home_team, CAST(NULL AS STRING) AS away_team")
    return (
        f"WITH api AS ({api}), bp AS ({pairs}), games AS ({games}) "
        "SELECT * FROM api UNION ALL "
        "SELECT bp.player_lookup, bp.player_name, games.game_id, bp.game_date, bp.book, bp.line, "
        "bp.over_price, bp.under_price, bp.snapshot_ts, 'bettingpros' AS source_api "
        "FROM bp LEFT JOIN games ON games.game_date = bp.game_date "
        "AND bp.player_team IN (games.home_team, games.away_team) "
        "WHERE NOT EXISTS (SELECT 1 FROM api WHERE api.game_date = bp.game_date "
        "AND api.player_lookup = bp.player_lookup)")


def schedule_view_sql(project: str, columns: Mapping[str, Mapping[str, str]]) -> str:
    """The schedule view: one row per (game_id, game_date) by :func:`latest_schedule_rows`' order, the
    latest active postponement applied, tip-offs before ``SCHEDULE_UTC_SINCE`` re-read as Eastern, event
    times as :func:`schedule_record` sets them."""
    s = _Columns(columns.get("schedule"), "s.")
    latest = (f"SELECT * FROM {_table(project, 'schedule')} WHERE TRUE QUALIFY ROW_NUMBER() OVER ("
              "PARTITION BY game_id, game_date ORDER BY "
              f"IFNULL({_Columns(columns.get('schedule'))('game_status', 'INT64')}, 0) DESC, "
              f"IFNULL({_Columns(columns.get('schedule'))('data_source')}, '') ASC) = 1")
    if "postponements" in columns:
        p = _Columns(columns["postponements"])
        active = ", ".join(_lit(x) for x in ACTIVE_POSTPONEMENT_STATUSES)
        post = (f"SELECT {p('game_id')} AS game_id, {p('original_date', 'DATE')} AS original_date, "
                f"{p('new_date', 'DATE')} AS new_date, {p('detected_at', 'TIMESTAMP')} AS detected_at "
                f"FROM {_table(project, 'postponements')} WHERE {p('status')} IN ({active}) "
                "QUALIFY ROW_NUMBER() OVER (PARTITION BY game_id, original_date "
                "ORDER BY detected_at DESC) = 1")
    else:
        post = ("SELECT CAST(NULL AS STRING) AS game_id, CAST(NULL AS DATE) AS original_date, "
                "CAST(NULL AS DATE) AS new_date, CAST(NULL AS TIMESTAMP) AS detected_at")
    est = s("game_date_est", "TIMESTAMP")
    tipoff = (f"IF(s.game_date < DATE '{SCHEDULE_UTC_SINCE.isoformat()}', "
              f"TIMESTAMP(DATETIME({est}, 'UTC'), {_lit(_TZ)}), {est})")
    text = f"LOWER(TRIM(IFNULL({s('game_status_text')}, '')))"
    status = (f"CASE WHEN p.game_id IS NOT NULL THEN IF(p.new_date IS NULL, 'cancelled', 'postponed') "
              f"WHEN {text} = {_lit(POSTPONED_TEXT)} OR STARTS_WITH({text}, {_lit(RESCHEDULED_TEXT_PREFIX)}) "
              f"THEN 'postponed' ELSE {game_status_sql(s('game_status', 'INT64'))} END")
    eve = (f"TIMESTAMP_SUB({_eastern_wall_time('s.game_date')}, "
           f"INTERVAL {int(SCHEDULED_KNOWN_BEFORE.total_seconds())} SECOND)")
    mapped = (
        f"SELECT {game_id_sql('s.game_date', s('away_team_tricode'), s('home_team_tricode'))} AS game_id, "
        f"s.game_date AS game_date, {tipoff} AS tipoff_utc, {s('home_team_tricode')} AS home_team, "
        f"{s('away_team_tricode')} AS away_team, {status} AS status, p.new_date AS new_game_date, "
        f"COALESCE(p.detected_at, {eve}) AS known_ts, {eve} AS eve "
        f"FROM latest AS s LEFT JOIN post AS p ON p.game_id = s.game_id AND p.original_date = s.game_date")
    after = int(FINAL_AFTER_TIPOFF.total_seconds())
    cols = "game_id, game_date, tipoff_utc, home_team, away_team"
    # As :func:`schedule_records`: a game the table keeps in a later state (the old writer MERGEs) was
    # scheduled before; that event, known on its date's eve, comes first.
    return (
        f"WITH latest AS ({latest}), post AS ({post}), mapped AS ({mapped}), "
        f"events AS (SELECT {cols}, status, new_game_date, eve, "
        "CASE WHEN status = 'final' AND tipoff_utc IS NOT NULL "
        f"THEN TIMESTAMP_ADD(tipoff_utc, INTERVAL {after} SECOND) "
        "WHEN status = 'in_progress' AND tipoff_utc IS NOT NULL THEN tipoff_utc "
        "ELSE known_ts END AS event_ts FROM mapped) "
        f"SELECT {cols}, status, new_game_date, event_ts FROM events "
        f"UNION ALL SELECT {cols}, 'scheduled' AS status, CAST(NULL AS DATE) AS new_game_date, "
        "eve AS event_ts FROM events WHERE status != 'scheduled' AND eve IS NOT NULL "
        "AND event_ts IS NOT NULL AND event_ts > eve")


def injuries_view_sql(project: str, columns: Mapping[str, Mapping[str, str]]) -> str:
    """The injuries view: :func:`injury_record` per row, the reports of :func:`injury_window_sql`."""
    i = _Columns(columns.get("injuries"))
    hour = f"TIME({i('report_hour', 'INT64')}, 0, 0)"
    return (
        f"SELECT {i('player_lookup')} AS player_lookup, game_date, "
        f"NULLIF(LOWER(TRIM({i('injury_status')})), '') AS status, "
        f"COALESCE(NULLIF({i('reason')}, ''), NULLIF({i('reason_category')}, ''), '') AS reason, "
        f"{_eastern_wall_time('report_date', hour)} AS report_ts "
        f"FROM {_table(project, 'injuries')} WHERE {injury_window_sql()}")


def features_view_sql(project: str, columns: Mapping[str, Mapping[str, str]]) -> str:
    """The features view: one row per player x date by :func:`latest_feature_rows`' order, the
    ``feature_{i}_value`` columns under the catalogue's names, :func:`feature_record`'s other fields."""
    f = _Columns(columns.get("features"))
    values = ", ".join(f"{f(f'feature_{i}_value', 'FLOAT64')} AS {name}"
                       for i, name in enumerate(FEATURE_NAMES))
    width = (f"IFNULL(CAST(REGEXP_EXTRACT(IFNULL({f('feature_version')}, ''), "
             f"r'{FEATURE_VERSION_WIDTH_RE}') AS INT64), 0)")
    required = ", ".join(str(i) for i in REQUIRED_FEATURE_INDICES)
    parts = f"SPLIT({f('game_id')}, '_')"
    team = (f"CASE WHEN {f('is_home', 'BOOL')} IS NULL "
            f"OR NOT REGEXP_CONTAINS(IFNULL({f('game_id')}, ''), r'^[^_]{{8}}_[^_]*_[^_]*$') THEN NULL "
            f"WHEN {f('is_home', 'BOOL')} THEN {parts}[OFFSET(2)] ELSE {parts}[OFFSET(1)] END")
    defaults = "default_feature_indices" in (columns.get("features") or {})
    default_count = (f"(SELECT COUNT(*) FROM UNNEST(default_feature_indices) AS i WHERE i IN ({required}))"
                     if defaults else "0")
    default_list = "default_feature_indices" if defaults else "ARRAY<INT64>[]"
    line = f"{f('feature_25_value', 'FLOAT64')} - {f('feature_54_value', 'FLOAT64')}"
    return (
        f"SELECT {f('player_lookup')} AS player_lookup, {f('game_id')} AS game_id, game_date, "
        f"{team} AS team_abbr, {f('opponent_team_abbr')} AS opponent_team_abbr, "
        f"{f('feature_version')} AS feature_version, {values}, "
        f"{f('feature_quality_score', 'NUMERIC')} AS feature_quality_score, "
        f"{f('quality_alert_level')} AS quality_alert_level, "
        f"{f('matchup_quality_pct', 'FLOAT64')} AS matchup_quality_pct, "
        f"{default_count} AS required_default_count, {default_list} AS default_feature_indices, "
        f"ROUND({line}, 2) AS prev_game_closing_line "
        f"FROM {_table(project, 'features')} WHERE TRUE QUALIFY ROW_NUMBER() OVER ("
        f"PARTITION BY player_lookup, game_date ORDER BY {width} DESC, "
        f"IFNULL({f('feature_version')}, '')) = 1")


def box_scores_view_sql(project: str, columns: Mapping[str, Mapping[str, str]]) -> str:
    """The box-scores view: :func:`box_score_record` per row."""
    b = _Columns(columns.get("box_scores"))
    return (
        f"SELECT {b('player_lookup')} AS player_lookup, {b('game_id')} AS game_id, game_date, "
        f"{b('team_abbr')} AS team_abbr, {b('points', 'INT64')} AS points, "
        f"CAST({b('minutes_played', 'NUMERIC')} AS FLOAT64) AS minutes, "
        f"IFNULL({b('is_dnp', 'BOOL')}, FALSE) AS is_dnp, "
        f"IFNULL({b('starter_flag', 'BOOL')}, FALSE) AS starter, "
        f"{b('plus_minus', 'INT64')} AS plus_minus, {b('opponent_team_abbr')} AS opponent_team_abbr, "
        f"CAST({b('three_pt_attempts', 'INT64')} AS FLOAT64) AS fg3a, "
        f"CAST({b('three_pt_makes', 'INT64')} AS FLOAT64) AS fg3m "
        f"FROM {_table(project, 'box_scores')}")


VIEW_SQL = {"odds": odds_view_sql, "schedule": schedule_view_sql, "injuries": injuries_view_sql,
            "features": features_view_sql, "box_scores": box_scores_view_sql}
# The old tables each view reads (the first is required).
VIEW_TABLES: dict[str, tuple[str, ...]] = {
    "odds": ("odds", "odds_fallback", "schedule"), "schedule": ("schedule", "postponements"),
    "injuries": ("injuries",), "features": ("features",), "box_scores": ("box_scores",),
}


def old_table_columns(project: str, client: Any = None) -> dict[str, dict[str, str]]:
    """{table key: {column: type}} of the old tables that exist in ``project`` (missing ones left out)."""
    from google.api_core import exceptions as gexc

    from pipeline.io import cloud

    client = client or cloud.bigquery_client(project)
    out = {}
    for key, name in LEGACY_TABLES.items():
        try:
            table = client.get_table(f"{project}.{name}")
        except gexc.NotFound:
            continue
        out[key] = {f.name: f.field_type for f in table.schema}
    return out


def create_views(source_project: str, views_uri: str, *, client: Any = None,
                 check_date: dt.date | None = None) -> list[str]:
    """Creates (CREATE OR REPLACE VIEW, idempotent) the five views over ``source_project``'s old tables in
    ``views_uri`` (``bigquery://PROJECT.DATASET``, created if missing) and dry-runs each for one date (the
    date filter must reach the partitioned tables). Returns notes for the operator: tables missing
    (a view without its fallback table, e.g. no postponements applied). Raises when a view's main table
    is missing or BigQuery refuses a view."""
    from google.cloud import bigquery

    from pipeline.io import cloud

    project, dataset = cloud.parse_bigquery_uri(views_uri)
    client = client or cloud.bigquery_client(project)
    client.create_dataset(bigquery.Dataset(f"{project}.{dataset}"), exists_ok=True)
    columns = old_table_columns(source_project, client)
    notes = []
    for kind in VIEW_KINDS:
        main, *others = VIEW_TABLES[kind]
        if main not in columns:
            raise LegacyRowError(f"view {kind}: table {source_project}.{LEGACY_TABLES[main]} does not exist")
        notes += [f"view {kind}: {source_project}.{LEGACY_TABLES[o]} does not exist, read without it "
                  "(re-run create-views once it does)" for o in others if o not in columns]
        sql = VIEW_SQL[kind](source_project, columns)
        client.query(f"CREATE OR REPLACE VIEW `{project}.{dataset}.{kind}` AS {sql}").result()
        probe = bigquery.QueryJobConfig(dry_run=True, use_query_cache=False, query_parameters=[
            bigquery.ArrayQueryParameter("dates", "DATE", [check_date or dt.date.today()])])
        client.query(f"SELECT * FROM `{project}.{dataset}.{kind}` WHERE game_date IN UNNEST(@dates)",
                     job_config=probe)
    return notes

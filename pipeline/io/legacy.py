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

Model registry (legacy.md section 3): an old ``nba_predictions.model_registry`` row becomes one of our
registry entries (:class:`models.registry.ModelSpec`)::

    rows = read_registry_export("model_registry.json")          # bq JSON (array) or newline-delimited
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


def _utc(value: Any) -> dt.datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, dt.datetime):
        ts = value
    else:
        ts = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00").replace(" UTC", "+00:00"))
    return ts.replace(tzinfo=dt.UTC) if ts.tzinfo is None else ts.astimezone(dt.UTC)


def _day(value: Any) -> dt.date | None:
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
    if d >= 2.0:
        return int(round((d - 1.0) * 100.0))
    return -int(round(100.0 / (d - 1.0)))


def game_id_of(game_date: Any, away: Any, home: Any) -> str | None:
    """Our game id ``YYYYMMDD_AWAY_HOME`` rebuilt from the Eastern date and the tricodes (both old id
    forms, official 10-digit and date-based, map to it)."""
    d = _day(game_date)
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
    if mbt is not None and mbt != "" and int(mbt) < 0:
        return None
    over = american_from_decimal(row.get("over_price"))
    under = american_from_decimal(row.get("under_price"))
    return {
        "player_lookup": row.get("player_lookup"),
        "player_name": row.get("player_name") or row.get("player_lookup"),
        "game_id": game_id_of(row.get("game_date"), row.get("away_team_abbr"), row.get("home_team_abbr")),
        "game_date": _day(row.get("game_date")),
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
        d = _day(row.get("game_date"))
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
    d = _day(row.get("game_date"))
    if ts is None or d is None or d >= SCHEDULE_UTC_SINCE:
        return ts
    return ts.replace(tzinfo=None).replace(tzinfo=EASTERN).astimezone(dt.UTC)


def latest_schedule_rows(rows: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """One row per (game_id, game_date), the highest status winning (the old ``v_nbac_schedule_latest``)."""
    best: dict[tuple, Mapping[str, Any]] = {}
    for row in rows:
        key = (row.get("game_id"), str(_day(row.get("game_date"))))
        status = int(row.get("game_status") or 0)
        if key not in best or status > int(best[key].get("game_status") or 0):
            best[key] = row
    return list(best.values())


def schedule_record(row: Mapping[str, Any],
                    postponements: Iterable[Mapping[str, Any]] = ()) -> dict[str, Any]:
    """An ``nbac_schedule`` row (+ its active ``game_postponements`` rows, matched on the official id and
    the original date) as our schedule event."""
    d = _day(row.get("game_date"))
    tipoff = schedule_tipoff(row)
    code = int(row["game_status"]) if row.get("game_status") not in (None, "") else None
    status = GAME_STATUS_CODES.get(code, f"unknown status code {code}")
    text = str(row.get("game_status_text") or "").strip().lower()
    new_date = None
    event_ts = (dt.datetime.combine(d, dt.time(0), tzinfo=EASTERN).astimezone(dt.UTC) - dt.timedelta(days=1)
                if d else None)
    if text == "postponed" or text.startswith("rescheduled"):
        status = "postponed"
    for p in postponements:
        if (str(p.get("game_id")) == str(row.get("game_id")) and _day(p.get("original_date")) == d
                and str(p.get("status") or "") in ACTIVE_POSTPONEMENT_STATUSES):
            new_date = _day(p.get("new_date"))
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
    eve = (dt.datetime.combine(record["game_date"], dt.time(0), tzinfo=EASTERN).astimezone(dt.UTC)
           - dt.timedelta(days=1)) if record["game_date"] else None
    event_ts = record["event_ts"]
    if record["status"] == "scheduled" or eve is None or event_ts is None or event_ts <= eve:
        return [record]
    return [dict(record, status="scheduled", new_game_date=None, event_ts=eve), record]


def injury_report_time(report_date: Any, report_hour: Any) -> dt.datetime | None:
    """The report instant: the report date at the Eastern hour (daylight saving time included), in UTC."""
    d = _day(report_date)
    if d is None or report_hour is None or report_hour == "":
        return None
    return dt.datetime.combine(d, dt.time(int(report_hour)), tzinfo=EASTERN).astimezone(dt.UTC)


def injury_record(row: Mapping[str, Any]) -> dict[str, Any]:
    """An ``nbac_injury_report`` row as our injury report (status lowercase, as the old table has it)."""
    return {
        "player_lookup": row.get("player_lookup"), "game_date": _day(row.get("game_date")),
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
        "game_date": _day(row.get("game_date")), "team_abbr": _team_from_context(row),
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
    return None if line is None or delta is None else round(line - delta, 2)


def box_score_record(row: Mapping[str, Any]) -> dict[str, Any]:
    """A ``player_game_summary`` row as our box score (``starter_flag``, ``plus_minus`` and the three-point
    ``three_pt_attempts`` / ``three_pt_makes`` of the old DDL when present; missing: starter false, the
    others missing)."""
    return {
        "player_lookup": row.get("player_lookup"), "game_id": row.get("game_id"),
        "game_date": _day(row.get("game_date")), "team_abbr": row.get("team_abbr"),
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
                "AND game_date IN UNNEST(@dates)")
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
                              event_ts=None, game_date=_day(game_date))


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
    def width(row: Mapping[str, Any]) -> int:
        m = re.search(r"(\d+)features", str(row.get("feature_version") or ""))
        return int(m.group(1)) if m else 0

    best: dict[tuple, Mapping[str, Any]] = {}
    for row in rows:
        key = (row.get("player_lookup"), str(_day(row.get("game_date"))))
        if key not in best or width(row) > width(best[key]):
            best[key] = row
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
                    if (_day(r.get("game_date")), r.get("player_lookup")) not in covered]
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

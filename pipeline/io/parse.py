"""Parse raw input records into the typed rows of ``pipeline.schemas`` (pure, no Beam).

Every source (JSON Lines, Parquet, Pub/Sub messages, warehouse rows) hands each record to
:func:`parse_record`, which returns the input kind's NamedTuple or raises :class:`ParseError` with a
precise, human-readable reason (the reason becomes a dead letter's ``error``).

Conversions (the one numeric and time policy at this boundary):
  * numbers: ``int``/``float``/``Decimal``/numeric strings -> ``float``; NaN and None -> None where the
    field is optional, an error where it is required; booleans are not numbers;
  * integers (prices, counts): integral numbers or integer strings -> ``int`` ("-110.5" is an error);
  * timestamps: ISO-8601 strings ("Z" or an offset; a naive value is taken as UTC), ``datetime``
    (pandas ``Timestamp`` included), numpy ``datetime64`` and pyarrow scalars -> tz-aware UTC ``datetime``;
  * dates: "YYYY-MM-DD", ``date``, ``datetime`` (its UTC date) -> ``datetime.date``.

Validation beyond types: ``game_id`` is ``YYYYMMDD_AWAY_HOME``; ``book`` and ``player_lookup`` are
non-empty lower case; a schedule ``status`` is one of ``schemas.GAME_STATUSES`` (any case accepted,
stored lower case). Injury status is kept as given (comparisons elsewhere are case-insensitive). Line
ranges and price ranges are *not* checked here: the line book rejects them with a diagnostic.

Usage::

    row = parse_record("odds", {"player_lookup": "lebronjames", ...})
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import math
import re
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

from pipeline import schemas

_GAME_ID = re.compile(r"^\d{8}_[A-Z0-9]{2,4}_[A-Z0-9]{2,4}$")
_MISSING = object()
_PLAIN = frozenset({str, int, bool, dt.date, dt.datetime})  # types that are never null


class ParseError(ValueError):
    """A record that cannot become a typed row; ``reason`` says which field and why."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


# --------------------------------------------------------------------------------------------
# Scalar converters: each takes (field name, raw value) and returns the typed value or raises.
# --------------------------------------------------------------------------------------------


def _is_null(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    if isinstance(value, Decimal) and value.is_nan():
        return True
    if type(value).__name__ in ("NAType", "NaTType"):  # pandas.NA / NaT
        return True
    # numpy NaN scalars
    try:
        return bool(value != value)
    except (TypeError, ValueError):
        return False


def _as_py(value: Any) -> Any:
    """Unwraps pyarrow / numpy scalars to python objects."""
    as_py = getattr(value, "as_py", None)
    if as_py is not None:
        return as_py()
    if type(value).__module__ == "numpy":
        if getattr(value, "ndim", 0) > 0:  # arrays
            return value.tolist()
        if hasattr(value, "dtype") and value.dtype.kind == "M":  # datetime64
            return value
        item = getattr(value, "item", None)
        if item is not None:
            return item()
    return value


def to_float(name: str, value: Any) -> float:
    if type(value) is float and value == value:  # the hot path
        return value
    value = _as_py(value)
    if isinstance(value, bool):
        raise ParseError(f"{name}: expected number, got {value!r}")
    if isinstance(value, float):
        if math.isnan(value):
            raise ParseError(f"{name}: required, got NaN")
        return value
    if isinstance(value, (int, Decimal)):
        out = float(value)
        if math.isnan(out):
            raise ParseError(f"{name}: required, got NaN")
        return out
    if isinstance(value, str):
        try:
            out = float(value.strip())
        except ValueError:
            raise ParseError(f"{name}: expected number, got {value!r}") from None
        if math.isnan(out):
            raise ParseError(f"{name}: required, got NaN")
        return out
    raise ParseError(f"{name}: expected number, got {value!r}")


def to_int(name: str, value: Any) -> int:
    if type(value) is int:  # the hot path
        return value
    value = _as_py(value)
    if isinstance(value, bool):
        raise ParseError(f"{name}: expected integer, got {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        text = value.strip()
        try:
            return int(text)
        except ValueError:
            raise ParseError(f"{name}: expected integer, got {value!r}") from None
    if isinstance(value, (float, Decimal)):
        if not math.isfinite(value) or value != int(value):
            raise ParseError(f"{name}: expected integer, got {value!r}")
        return int(value)
    raise ParseError(f"{name}: expected integer, got {value!r}")


def to_str(name: str, value: Any) -> str:
    if type(value) is str:  # the hot path
        return value
    value = _as_py(value)
    if not isinstance(value, str):
        raise ParseError(f"{name}: expected string, got {value!r}")
    return value


def to_bool(name: str, value: Any) -> bool:
    value = _as_py(value)
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in ("true", "false", "1", "0"):
        return value.strip().lower() in ("true", "1")
    raise ParseError(f"{name}: expected boolean, got {value!r}")


def to_timestamp(name: str, value: Any) -> dt.datetime:
    if type(value) is dt.datetime:  # the hot path (Parquet columns arrive naive UTC or UTC-aware)
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        if value.tzinfo is dt.UTC:
            return value
    value = _as_py(value)
    if isinstance(value, dt.datetime):
        out = value
    elif isinstance(value, str):
        text = value.strip()
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        try:
            out = dt.datetime.fromisoformat(text)
        except ValueError:
            raise ParseError(f"{name}: not a timestamp: {value!r}") from None
    elif isinstance(value, dt.date):
        out = dt.datetime(value.year, value.month, value.day)
    elif type(value).__module__ == "numpy" and getattr(value, "dtype", None) is not None:
        import numpy as np  # only reached for numpy datetime64 values

        if np.isnat(value):
            raise ParseError(f"{name}: required, got NaT")
        micros = int(value.astype("datetime64[us]").astype("int64"))
        out = dt.datetime(1970, 1, 1) + dt.timedelta(microseconds=micros)
    else:
        raise ParseError(f"{name}: not a timestamp: {value!r}")
    if out.tzinfo is None:
        out = out.replace(tzinfo=dt.UTC)
    elif out.tzinfo is not dt.UTC:
        out = out.astimezone(dt.UTC)
    if type(out) is not dt.datetime:  # pandas Timestamp -> plain datetime (microseconds)
        out = dt.datetime(out.year, out.month, out.day, out.hour, out.minute, out.second, out.microsecond,
                          tzinfo=dt.UTC)
    return out


def to_date(name: str, value: Any) -> dt.date:
    if type(value) is dt.date:  # the hot path
        return value
    value = _as_py(value)
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(dt.UTC)
        return dt.date(value.year, value.month, value.day)
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str):
        text = value.strip()
        try:
            return dt.date.fromisoformat(text[:10]) if len(text) >= 10 else dt.date.fromisoformat(text)
        except ValueError:
            raise ParseError(f"{name}: not a date: {value!r}") from None
    if type(value).__module__ == "numpy" and getattr(value, "dtype", None) is not None:
        return to_timestamp(name, value).date()
    raise ParseError(f"{name}: not a date: {value!r}")


def _required(record: Mapping, name: str, conv: Callable[[str, Any], Any]) -> Any:
    value = record.get(name, _MISSING)
    if value is _MISSING:
        raise ParseError(f"missing field {name!r}")
    if value is None or (type(value) not in _PLAIN and _is_null(value)):
        raise ParseError(f"{name}: required, got null")
    return conv(name, value)


def _optional(record: Mapping, name: str, conv: Callable[[str, Any], Any]) -> Any:
    value = record.get(name)
    if value is None or _is_null(value):
        return None
    return conv(name, value)


# --------------------------------------------------------------------------------------------
# Field validators
# --------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=65536)
def _game_id_ok(text: str) -> bool:
    return _GAME_ID.match(text) is not None


@functools.lru_cache(maxsize=65536)
def _lower_key_ok(text: str) -> bool:
    return bool(text) and text == text.lower() and text == text.strip()


def _game_id(name: str, value: Any) -> str:
    text = to_str(name, value)
    if not _game_id_ok(text):
        raise ParseError(f"{name}: expected YYYYMMDD_AWAY_HOME, got {text!r}")
    return text


def _lower_key(name: str, value: Any) -> str:
    text = to_str(name, value)
    if _lower_key_ok(text):
        return text
    if not text:
        raise ParseError(f"{name}: empty")
    raise ParseError(f"{name}: expected lower case without spaces at the ends, got {text!r}")


def _non_empty(name: str, value: Any) -> str:
    text = to_str(name, value)
    if not text.strip():
        raise ParseError(f"{name}: empty")
    return text


def _game_status(name: str, value: Any) -> str:
    text = to_str(name, value).strip().lower()
    if text not in schemas.GAME_STATUSES:
        raise ParseError(f"{name}: unknown {value!r} (expected one of {', '.join(schemas.GAME_STATUSES)})")
    return text


def _int_tuple(name: str, value: Any) -> tuple[int, ...]:
    value = _as_py(value)
    if isinstance(value, str):
        try:
            value = json.loads(value) if value.strip() else []
        except ValueError:
            raise ParseError(f"{name}: expected a list of integers, got {value!r}") from None
    if hasattr(value, "tolist"):  # numpy array
        value = value.tolist()
    if not isinstance(value, (list, tuple)):
        raise ParseError(f"{name}: expected a list of integers, got {value!r}")
    return tuple(to_int(f"{name}[{i}]", v) for i, v in enumerate(value))


def _optional_float(record: Mapping, name: str) -> float | None:
    value = record.get(name)
    if value is None:
        return None
    if isinstance(value, float):  # the hot path for Parquet feature columns
        return None if value != value else value
    if _is_null(value):
        return None
    return to_float(name, value)


# --------------------------------------------------------------------------------------------
# Per-kind parsers
# --------------------------------------------------------------------------------------------


def parse_schedule(r: Mapping) -> schemas.ScheduleEvent:
    return schemas.ScheduleEvent(
        game_id=_required(r, "game_id", _game_id),
        game_date=_required(r, "game_date", to_date),
        tipoff_utc=_required(r, "tipoff_utc", to_timestamp),
        home_team=_required(r, "home_team", _non_empty),
        away_team=_required(r, "away_team", _non_empty),
        status=_required(r, "status", _game_status),
        new_game_date=_optional(r, "new_game_date", to_date),
        event_ts=_required(r, "event_ts", to_timestamp),
    )


def parse_odds(r: Mapping) -> schemas.OddsSnapshot:
    return schemas.OddsSnapshot(
        player_lookup=_required(r, "player_lookup", _lower_key),
        player_name=_required(r, "player_name", to_str),
        game_id=_required(r, "game_id", _game_id),
        game_date=_required(r, "game_date", to_date),
        book=_required(r, "book", _lower_key),
        line=_required(r, "line", to_float),
        over_price=_required(r, "over_price", to_int),
        under_price=_required(r, "under_price", to_int),
        snapshot_ts=_required(r, "snapshot_ts", to_timestamp),
        source_api=_required(r, "source_api", _non_empty),
    )


def parse_injury(r: Mapping) -> schemas.InjuryReport:
    reason = r.get("reason")
    return schemas.InjuryReport(
        player_lookup=_required(r, "player_lookup", _lower_key),
        game_date=_required(r, "game_date", to_date),
        status=_required(r, "status", _non_empty),
        reason="" if reason is None or _is_null(reason) else to_str("reason", reason),
        report_ts=_required(r, "report_ts", to_timestamp),
    )


def parse_features(r: Mapping) -> schemas.FeatureRow:
    features = tuple(_optional_float(r, name) for name in schemas.FEATURE_NAMES)
    defaults = r.get("default_feature_indices")
    return schemas.FeatureRow(
        player_lookup=_required(r, "player_lookup", _lower_key),
        game_id=_required(r, "game_id", _game_id),
        game_date=_required(r, "game_date", to_date),
        team_abbr=_required(r, "team_abbr", _non_empty),
        opponent_team_abbr=_required(r, "opponent_team_abbr", _non_empty),
        feature_version=_required(r, "feature_version", to_str),
        features=features,
        feature_quality_score=_required(r, "feature_quality_score", to_float),
        quality_alert_level=_required(r, "quality_alert_level", to_str),
        matchup_quality_pct=_required(r, "matchup_quality_pct", to_float),
        required_default_count=_required(r, "required_default_count", to_int),
        default_feature_indices=() if defaults is None else _int_tuple("default_feature_indices", defaults),
        prev_game_closing_line=_optional_float(r, "prev_game_closing_line"),
    )


def parse_box_score(r: Mapping) -> schemas.BoxScore:
    return schemas.BoxScore(
        player_lookup=_required(r, "player_lookup", _lower_key),
        game_id=_required(r, "game_id", _game_id),
        game_date=_required(r, "game_date", to_date),
        team_abbr=_required(r, "team_abbr", _non_empty),
        points=_optional_float(r, "points"),
        minutes=_optional_float(r, "minutes"),
        is_dnp=_required(r, "is_dnp", to_bool),
        starter=_required(r, "starter", to_bool),
        plus_minus=_optional_float(r, "plus_minus"),
        fg3a=_optional_float(r, "fg3a"),
        fg3m=_optional_float(r, "fg3m"),
        opponent_team_abbr=_optional(r, "opponent_team_abbr", to_str),
    )


PARSERS: dict[str, Callable[[Mapping], tuple]] = {
    "schedule": parse_schedule,
    "odds": parse_odds,
    "injuries": parse_injury,
    "features": parse_features,
    "box_scores": parse_box_score,
}
assert set(PARSERS) == set(schemas.INPUT_KINDS)


def parse_record(kind: str, record: Mapping) -> tuple:
    """Parses one raw record of ``kind`` (a key of ``schemas.INPUT_KINDS``) into its typed row.

    Raises:
        ParseError: the record is not a mapping, a required field is missing or null, or a field has
            the wrong type or format; ``reason`` names the field.
        KeyError: ``kind`` is not an input kind (a programming error, not a data error).
    """
    parser = PARSERS[kind]
    if not isinstance(record, Mapping):
        raise ParseError(f"expected a JSON object, got {type(record).__name__}")
    return parser(record)


def event_time(kind: str, row: tuple) -> dt.datetime:
    """The event time of a parsed row (``schemas.EVENT_TIME_FIELD``) as a UTC datetime.

    Date-only event times (features, box scores) map to midnight UTC of the date.
    """
    value = getattr(row, schemas.EVENT_TIME_FIELD[kind])
    if isinstance(value, dt.datetime):
        return value
    return dt.datetime(value.year, value.month, value.day, tzinfo=dt.UTC)


def raw_event_time(kind: str, record: Any) -> dt.datetime | None:
    """Best-effort event time of a raw record that failed to parse (for its dead letter), else None."""
    if not isinstance(record, Mapping):
        return None
    value = record.get(schemas.EVENT_TIME_FIELD[kind])
    if value is None:
        return None
    try:
        if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
            return dt.datetime(value.year, value.month, value.day, tzinfo=dt.UTC)
        return to_timestamp("event_ts", value)
    except (ParseError, ValueError, TypeError, OverflowError):
        return None

"""Parse raw input records into the typed rows of ``pipeline.schemas`` (pure, no Beam).

Every source (JSON Lines, Parquet, Pub/Sub messages, BigQuery rows) hands each record to
:func:`parse_record`, which returns the input kind's NamedTuple or raises :class:`ParseError` with a reason
code (``ParseError.code``, one of :data:`REASONS`) and a precise, human-readable detail; the dead letter's
``error`` is ``"<code>: <detail>"`` (:func:`error_code` reads the code back) and its payload is cut by the
one truncation, ``schemas.clip_text`` (:func:`dead_letter` builds every parse dead letter).

Conversions (the one numeric and time policy at this boundary):
  * numbers: ``int``/``float``/``Decimal``/numeric strings -> ``float``; None -> None where the field is
    optional (NaN too: a missing feature), an error where it is required; NaN in a required number and
    +-inf anywhere are ``not_finite``; booleans are not numbers;
  * integers (prices, counts): integral numbers or integer strings -> ``int`` ("-110.5" is an error), within
    64 bits;
  * timestamps: ISO-8601 strings ("Z" or an offset; a naive value is taken as UTC), ``datetime``
    (pandas ``Timestamp`` included), numpy ``datetime64`` and pyarrow scalars -> tz-aware UTC ``datetime``;
  * dates: "YYYY-MM-DD", ``date``, ``datetime`` (its UTC date) -> ``datetime.date``;
  * every date and timestamp within ``schemas.EARLIEST_INPUT_DATE`` .. ``LATEST_INPUT_DATE`` (a value that
    overflows UTC, e.g. ``0001-01-01T00:00:00+01:00``, is ``out_of_range``, never an OverflowError);
  * every string at most ``schemas.MAX_FIELD_CHARS`` long (``too_long``).

Validation beyond types:
  * ids (``bad_id``): ``game_id`` is ``YYYYMMDD_AWAY_HOME`` whose date is a real calendar date;
    ``player_lookup`` is lower-case ASCII letters and digits (``lebronjames``); ``book`` is lower-case
    letters, digits and ``_``;
  * ``game_date_mismatch``: the date of ``game_id`` must equal the row's ``game_date`` (every kind with
    both; a rescheduled game gets a new id); a schedule tip-off must fall within
    ``schemas.TIPOFF_SLACK_HOURS`` of its game date's UTC day;
  * ``event_time_outside_window``: an odds ``snapshot_ts``, injury ``report_ts`` or schedule ``event_ts``
    more than ``Policy.event_time_window_hours[0]`` hours before its game date's UTC day starts or more
    than ``[1]`` hours after it ends (the stream's clock never trusts a far-future time);
  * ``out_of_range``: quality score and matchup percentage in [0, 100], ``required_default_count`` and
    default feature indices within the 55 features, box-score points, minutes and 3-pointers >= 0;
  * ``bad_value``: a schedule ``status`` outside ``schemas.GAME_STATUSES`` (any case accepted, stored
    lower case), an empty required text.
Injury status is kept as given (comparisons elsewhere are case-insensitive). Line ranges and price ranges
are *not* checked here: the line book rejects them with a diagnostic.

Usage::

    row = parse_record("odds", {"player_lookup": "lebronjames", ...},
                       event_window_hours=policy.event_time_window_hours)
"""

from __future__ import annotations

import datetime as dt
import functools
import itertools
import json
import math
import re
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

from pipeline import schemas
from pipeline.policy import Policy

# The id rules, one pattern each: whole-text matches with Python's ``re`` here and with Arrow's RE2 in the
# columnar check of Parquet odds (:func:`odds_rows_columnar`). ASCII only: a Unicode digit or a trailing
# newline is not an id.
GAME_ID_PATTERN = r"([0-9]{8})_[A-Z0-9]{2,4}_[A-Z0-9]{2,4}"
PLAYER_LOOKUP_PATTERN = r"[a-z0-9]{1,64}"
BOOK_PATTERN = r"[a-z0-9][a-z0-9_]{0,63}"
_GAME_ID = re.compile(GAME_ID_PATTERN)
_PLAYER_LOOKUP = re.compile(PLAYER_LOOKUP_PATTERN)
_BOOK = re.compile(BOOK_PATTERN)
_MISSING = object()
_PLAIN = frozenset({str, int, bool, dt.date, dt.datetime})  # types that are never null
_INT64 = (-(2**63), 2**63 - 1)
_TS_MIN = dt.datetime.combine(schemas.EARLIEST_INPUT_DATE, dt.time(), tzinfo=dt.UTC)
_TS_MAX = dt.datetime.combine(schemas.LATEST_INPUT_DATE, dt.time.max, tzinfo=dt.UTC)
_SHOW_CHARS = 80

# The default event-time window: the policy's default (a run passes its own policy's value).
DEFAULT_EVENT_WINDOW_HOURS: tuple[float, float] = Policy().event_time_window_hours

# Dead-letter reason codes of the parse boundary (the ``error`` column starts with one of them).
MISSING_FIELD = "missing_field"
NULL_FIELD = "null_field"
WRONG_TYPE = "wrong_type"
NOT_FINITE = "not_finite"
OUT_OF_RANGE = "out_of_range"
BAD_ID = "bad_id"
GAME_DATE_MISMATCH = "game_date_mismatch"
EVENT_TIME_OUTSIDE_WINDOW = "event_time_outside_window"
TOO_LONG = "too_long"
BAD_VALUE = "bad_value"
MALFORMED = "malformed"
BAD_ATTRIBUTE = "bad_attribute"
REASONS: tuple[str, ...] = (
    MISSING_FIELD, NULL_FIELD, WRONG_TYPE, NOT_FINITE, OUT_OF_RANGE, BAD_ID, GAME_DATE_MISMATCH,
    EVENT_TIME_OUTSIDE_WINDOW, TOO_LONG, BAD_VALUE, MALFORMED, BAD_ATTRIBUTE,
)


class ParseError(ValueError):
    """A record that cannot become a typed row: ``code`` (one of REASONS), ``detail`` (which field and
    why) and ``reason`` = ``"code: detail"`` (a dead letter's ``error``)."""

    def __init__(self, code: str, detail: str):
        reason = f"{code}: {detail}"
        super().__init__(reason)
        self.code, self.detail, self.reason = code, detail, reason


def error_code(error: str) -> str:
    """The reason code a parse dead letter's ``error`` starts with (``"bad_id: ..."`` -> ``bad_id``)."""
    return error.split(":", 1)[0]


def _show(value: Any) -> str:
    """A value for an error message, never longer than a line (huge payloads stay out of errors)."""
    text = repr(value)
    return text if len(text) <= _SHOW_CHARS else text[: _SHOW_CHARS - 20] + f"...({len(text)} chars)"


def payload_text(record: Any) -> str:
    """A raw record as dead-letter payload text (JSON when possible), cut by ``schemas.clip_text``."""
    if isinstance(record, str):
        return schemas.clip_text(record)
    try:
        text = json.dumps(record, default=str, sort_keys=True)
    except (TypeError, ValueError):
        text = repr(record)
    return schemas.clip_text(text)


def dead_letter(source: str, error: str, payload: Any, *, event_ts: dt.datetime | None = None,
                game_date: dt.date | None = None, step: str = "parse") -> schemas.DeadLetter:
    """The one constructor of parse dead letters (files, BigQuery rows, Pub/Sub messages): the payload
    (a raw text, or a record rendered as JSON) and the error are cut by ``schemas.clip_text``."""
    return schemas.DeadLetter(source=source, step=step, error=schemas.clip_text(error),
                              payload=payload_text(payload), event_ts=event_ts, game_date=game_date)


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


def _is_nan_number(value: Any) -> bool:
    """A NaN that is a number (float, Decimal, numpy float), as opposed to a null (None, NA, NaT)."""
    if isinstance(value, (float, Decimal)):
        return True
    return type(value).__module__ == "numpy" and getattr(getattr(value, "dtype", None), "kind", "") == "f"


def _as_py(value: Any) -> Any:
    """Unwraps pyarrow / numpy scalars to python objects."""
    as_py = getattr(value, "as_py", None)
    if as_py is not None:
        try:
            return as_py()
        except (OverflowError, ValueError) as exc:  # e.g. an Arrow timestamp beyond datetime's range
            raise ParseError(OUT_OF_RANGE, f"value beyond the supported range: {exc}") from None
    if type(value).__module__ == "numpy":
        if getattr(value, "ndim", 0) > 0:  # arrays
            return value.tolist()
        if hasattr(value, "dtype") and value.dtype.kind == "M":  # datetime64
            return value
        item = getattr(value, "item", None)
        if item is not None:
            return item()
    return value


def _finite(name: str, out: float) -> float:
    if math.isnan(out):
        raise ParseError(NOT_FINITE, f"{name}: required, got NaN")
    if math.isinf(out):
        raise ParseError(NOT_FINITE, f"{name}: expected a finite number, got {out!r}")
    return out


def to_float(name: str, value: Any) -> float:
    if type(value) is float and value == value and value not in (math.inf, -math.inf):  # the hot path
        return value
    value = _as_py(value)
    if isinstance(value, bool):
        raise ParseError(WRONG_TYPE, f"{name}: expected number, got {_show(value)}")
    if isinstance(value, float):
        return _finite(name, value)
    if isinstance(value, (int, Decimal)):
        try:
            return _finite(name, float(value))
        except OverflowError:
            raise ParseError(OUT_OF_RANGE, f"{name}: number too large: {_show(value)}") from None
    if isinstance(value, str):
        try:
            out = float(value.strip())
        except ValueError:
            raise ParseError(WRONG_TYPE, f"{name}: expected number, got {_show(value)}") from None
        return _finite(name, out)
    raise ParseError(WRONG_TYPE, f"{name}: expected number, got {_show(value)}")


def _int64(name: str, out: int) -> int:
    if not _INT64[0] <= out <= _INT64[1]:
        raise ParseError(OUT_OF_RANGE, f"{name}: integer beyond 64 bits: {_show(out)}")
    return out


def to_int(name: str, value: Any) -> int:
    if type(value) is int and _INT64[0] <= value <= _INT64[1]:  # the hot path
        return value
    value = _as_py(value)
    if isinstance(value, bool):
        raise ParseError(WRONG_TYPE, f"{name}: expected integer, got {_show(value)}")
    if isinstance(value, int):
        return _int64(name, value)
    if isinstance(value, str):
        text = value.strip()
        try:
            return _int64(name, int(text))
        except ValueError:
            raise ParseError(WRONG_TYPE, f"{name}: expected integer, got {_show(value)}") from None
    if isinstance(value, (float, Decimal)):
        if not math.isfinite(value):
            raise ParseError(NOT_FINITE, f"{name}: expected integer, got {_show(value)}")
        if value != int(value):
            raise ParseError(WRONG_TYPE, f"{name}: expected integer, got {_show(value)}")
        return _int64(name, int(value))
    raise ParseError(WRONG_TYPE, f"{name}: expected integer, got {_show(value)}")


def to_str(name: str, value: Any) -> str:
    if type(value) is str and len(value) <= schemas.MAX_FIELD_CHARS:  # the hot path
        return value
    value = _as_py(value)
    if not isinstance(value, str):
        raise ParseError(WRONG_TYPE, f"{name}: expected string, got {_show(value)}")
    if len(value) > schemas.MAX_FIELD_CHARS:
        raise ParseError(TOO_LONG, f"{name}: {len(value)} characters (at most {schemas.MAX_FIELD_CHARS})")
    return value


def to_bool(name: str, value: Any) -> bool:
    value = _as_py(value)
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in ("true", "false", "1", "0"):
        return value.strip().lower() in ("true", "1")
    raise ParseError(WRONG_TYPE, f"{name}: expected boolean, got {_show(value)}")


def _ts_in_range(name: str, out: dt.datetime, raw: Any) -> dt.datetime:
    if not _TS_MIN <= out <= _TS_MAX:
        raise ParseError(OUT_OF_RANGE, f"{name}: {_show(raw)} outside {schemas.EARLIEST_INPUT_DATE}.."
                                       f"{schemas.LATEST_INPUT_DATE}")
    return out


def to_timestamp(name: str, value: Any) -> dt.datetime:
    if type(value) is dt.datetime:  # the hot path (Parquet columns arrive naive UTC or UTC-aware)
        if value.tzinfo is None:
            return _ts_in_range(name, value.replace(tzinfo=dt.UTC), value)
        if value.tzinfo is dt.UTC:
            return _ts_in_range(name, value, value)
    raw = value
    try:
        return _ts_in_range(name, _to_utc(name, value), raw)
    except (OverflowError, OSError):  # e.g. 0001-01-01T00:00:00+01:00 is before datetime.min in UTC
        raise ParseError(OUT_OF_RANGE, f"{name}: {_show(raw)} outside {schemas.EARLIEST_INPUT_DATE}.."
                                       f"{schemas.LATEST_INPUT_DATE}") from None


def _to_utc(name: str, value: Any) -> dt.datetime:
    value = _as_py(value)
    if isinstance(value, dt.datetime):
        out = value
    elif isinstance(value, str):
        text = value.strip()
        if len(text) > 64:
            raise ParseError(TOO_LONG, f"{name}: {len(text)} characters is not a timestamp")
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        try:
            out = dt.datetime.fromisoformat(text)
        except ValueError:
            raise ParseError(WRONG_TYPE, f"{name}: not a timestamp: {_show(value)}") from None
    elif isinstance(value, dt.date):
        out = dt.datetime(value.year, value.month, value.day)
    elif type(value).__module__ == "numpy" and getattr(value, "dtype", None) is not None:
        import numpy as np  # only reached for numpy datetime64 values

        if np.isnat(value):
            raise ParseError(NULL_FIELD, f"{name}: required, got NaT")
        micros = int(value.astype("datetime64[us]").astype("int64"))
        out = dt.datetime(1970, 1, 1) + dt.timedelta(microseconds=micros)
    else:
        raise ParseError(WRONG_TYPE, f"{name}: not a timestamp: {_show(value)}")
    if out.tzinfo is None:
        out = out.replace(tzinfo=dt.UTC)
    elif out.tzinfo is not dt.UTC:
        out = out.astimezone(dt.UTC)
    if type(out) is not dt.datetime:  # pandas Timestamp -> plain datetime (microseconds)
        out = dt.datetime(out.year, out.month, out.day, out.hour, out.minute, out.second, out.microsecond,
                          tzinfo=dt.UTC)
    return out


def _date_in_range(name: str, out: dt.date) -> dt.date:
    if not schemas.EARLIEST_INPUT_DATE <= out <= schemas.LATEST_INPUT_DATE:
        raise ParseError(OUT_OF_RANGE, f"{name}: {out.isoformat()} outside {schemas.EARLIEST_INPUT_DATE}.."
                                       f"{schemas.LATEST_INPUT_DATE}")
    return out


def to_date(name: str, value: Any) -> dt.date:
    if type(value) is dt.date:  # the hot path
        return _date_in_range(name, value)
    value = _as_py(value)
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            return to_timestamp(name, value).date()
        return _date_in_range(name, dt.date(value.year, value.month, value.day))
    if isinstance(value, dt.date):
        return _date_in_range(name, value)
    if isinstance(value, str):
        text = value.strip()
        if len(text) > 64:
            raise ParseError(TOO_LONG, f"{name}: {len(text)} characters is not a date")
        try:
            out = dt.date.fromisoformat(text[:10]) if len(text) >= 10 else dt.date.fromisoformat(text)
        except ValueError:
            raise ParseError(WRONG_TYPE, f"{name}: not a date: {_show(value)}") from None
        return _date_in_range(name, out)
    if type(value).__module__ == "numpy" and getattr(value, "dtype", None) is not None:
        return to_timestamp(name, value).date()
    raise ParseError(WRONG_TYPE, f"{name}: not a date: {_show(value)}")


def _required(record: Mapping, name: str, conv: Callable[[str, Any], Any]) -> Any:
    value = record.get(name, _MISSING)
    kind = type(value)
    if kind in _PLAIN or (kind is float and value == value):  # the hot path: never null
        return conv(name, value)
    if value is _MISSING:
        raise ParseError(MISSING_FIELD, f"{name!r}")
    if value is None:
        raise ParseError(NULL_FIELD, f"{name}: required, got null")
    if type(value) not in _PLAIN and _is_null(value):
        if _is_nan_number(value):
            raise ParseError(NOT_FINITE, f"{name}: required, got NaN")
        raise ParseError(NULL_FIELD, f"{name}: required, got null")
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
def game_id_date(text: str) -> dt.date | None:
    """The calendar date a ``YYYYMMDD_AWAY_HOME`` game id names, or None when it is not one."""
    m = _GAME_ID.fullmatch(text)
    if m is None:
        return None
    digits = m.group(1)
    try:
        day = dt.date(int(digits[:4]), int(digits[4:6]), int(digits[6:]))
    except ValueError:
        return None
    return day if schemas.EARLIEST_INPUT_DATE <= day <= schemas.LATEST_INPUT_DATE else None


def _game_id(name: str, value: Any) -> str:
    text = to_str(name, value)
    if game_id_date(text) is None:
        raise ParseError(BAD_ID, f"{name}: expected YYYYMMDD_AWAY_HOME with a real date, got {_show(text)}")
    return text


def _player_lookup(name: str, value: Any) -> str:
    text = to_str(name, value)
    if _PLAYER_LOOKUP.fullmatch(text) is None:
        raise ParseError(BAD_ID, f"{name}: expected lower-case letters and digits, got {_show(text)}")
    return text


def _book(name: str, value: Any) -> str:
    text = to_str(name, value)
    if _BOOK.fullmatch(text) is None:
        raise ParseError(BAD_ID, f"{name}: expected a lower-case key (letters, digits, _), got {_show(text)}")
    return text


def _non_empty(name: str, value: Any) -> str:
    text = to_str(name, value)
    if not text.strip():
        raise ParseError(BAD_VALUE, f"{name}: empty")
    return text


def _game_status(name: str, value: Any) -> str:
    text = to_str(name, value).strip().lower()
    if text not in schemas.GAME_STATUSES:
        raise ParseError(BAD_VALUE, f"{name}: unknown {_show(value)} "
                                    f"(expected one of {', '.join(schemas.GAME_STATUSES)})")
    return text


def _int_tuple(name: str, value: Any) -> tuple[int, ...]:
    value = _as_py(value)
    if isinstance(value, str):
        if len(value) > schemas.MAX_FIELD_CHARS:
            raise ParseError(TOO_LONG, f"{name}: {len(value)} characters (at most {schemas.MAX_FIELD_CHARS})")
        try:
            value = json.loads(value) if value.strip() else []
        except ValueError:
            raise ParseError(WRONG_TYPE, f"{name}: expected a list of integers, got {_show(value)}") from None
    if hasattr(value, "tolist"):  # numpy array
        value = value.tolist()
    if not isinstance(value, (list, tuple)):
        raise ParseError(WRONG_TYPE, f"{name}: expected a list of integers, got {_show(value)}")
    if len(value) > len(schemas.FEATURE_NAMES):
        raise ParseError(TOO_LONG, f"{name}: {len(value)} items (at most {len(schemas.FEATURE_NAMES)})")
    return tuple(to_int(f"{name}[{i}]", v) for i, v in enumerate(value))


def _optional_float(record: Mapping, name: str) -> float | None:
    value = record.get(name)
    if value is None:
        return None
    if isinstance(value, float):  # the hot path for Parquet feature columns
        if value != value:
            return None
        if value in (math.inf, -math.inf):
            raise ParseError(NOT_FINITE, f"{name}: expected a finite number, got {float(value)!r}")
        return value
    if _is_null(value):
        return None
    return to_float(name, value)


def _in_range(name: str, value: float | int | None, low: float, high: float | None) -> None:
    if value is not None and (value < low or (high is not None and value > high)):
        bound = f"[{low:g}, {high:g}]" if high is not None else f">= {low:g}"
        raise ParseError(OUT_OF_RANGE, f"{name}: {value!r} outside {bound}")


def _check_game_id_date(game_id: str, game_date: dt.date) -> None:
    id_date = game_id_date(game_id)
    if id_date != game_date:
        raise ParseError(GAME_DATE_MISMATCH, f"game_id {game_id!r} names {id_date}, the row's game_date is "
                                             f"{game_date.isoformat()}")


def _day_bounds(game_date: dt.date) -> tuple[dt.datetime, dt.datetime]:
    start = dt.datetime(game_date.year, game_date.month, game_date.day, tzinfo=dt.UTC)
    return start, start + dt.timedelta(days=1)


def event_time_in_window(event_ts: dt.datetime, game_date: dt.date,
                         window_hours: tuple[float, float] = DEFAULT_EVENT_WINDOW_HOURS) -> bool:
    """Whether an event time lies within ``(before, after)`` hours of its game date's UTC day
    (``Policy.event_time_window_hours``)."""
    low, high = _event_window(game_date, tuple(window_hours))
    return low <= event_ts <= high


@functools.lru_cache(maxsize=4096)
def _event_window(game_date: dt.date, window_hours: tuple[float, float]) -> tuple[dt.datetime, dt.datetime]:
    """The first and last event time :func:`event_time_in_window` accepts for a game date (computed once
    per date and window: every odds snapshot of a date asks)."""
    start, end = _day_bounds(game_date)
    before, after = window_hours
    return start - dt.timedelta(hours=before), end + dt.timedelta(hours=after)


def _check_event_window(name: str, event_ts: dt.datetime, game_date: dt.date,
                        window_hours: tuple[float, float]) -> None:
    if not event_time_in_window(event_ts, game_date, window_hours):
        before, after = window_hours
        raise ParseError(EVENT_TIME_OUTSIDE_WINDOW, (
            f"{name} {event_ts.isoformat()} is more than {before:g} h before or {after:g} h after "
            f"game_date {game_date.isoformat()} (policy event_time_window_hours)"))


# --------------------------------------------------------------------------------------------
# Per-kind parsers
# --------------------------------------------------------------------------------------------


def parse_schedule(r: Mapping, window_hours: tuple[float, float] = DEFAULT_EVENT_WINDOW_HOURS
                   ) -> schemas.ScheduleEvent:
    row = schemas.ScheduleEvent(
        game_id=_required(r, "game_id", _game_id),
        game_date=_required(r, "game_date", to_date),
        tipoff_utc=_required(r, "tipoff_utc", to_timestamp),
        home_team=_required(r, "home_team", _non_empty),
        away_team=_required(r, "away_team", _non_empty),
        status=_required(r, "status", _game_status),
        new_game_date=_optional(r, "new_game_date", to_date),
        event_ts=_required(r, "event_ts", to_timestamp),
    )
    _check_game_id_date(row.game_id, row.game_date)
    start, end = _day_bounds(row.game_date)
    slack = dt.timedelta(hours=schemas.TIPOFF_SLACK_HOURS)
    if not start - slack <= row.tipoff_utc <= end + slack:
        raise ParseError(GAME_DATE_MISMATCH, f"tipoff_utc {row.tipoff_utc.isoformat()} is not on game_date "
                                             f"{row.game_date.isoformat()}")
    _check_event_window("event_ts", row.event_ts, row.game_date, window_hours)
    return row


def parse_odds(r: Mapping, window_hours: tuple[float, float] = DEFAULT_EVENT_WINDOW_HOURS
               ) -> schemas.OddsSnapshot:
    row = schemas.OddsSnapshot(
        player_lookup=_required(r, "player_lookup", _player_lookup),
        player_name=_required(r, "player_name", to_str),
        game_id=_required(r, "game_id", _game_id),
        game_date=_required(r, "game_date", to_date),
        book=_required(r, "book", _book),
        line=_required(r, "line", to_float),
        over_price=_required(r, "over_price", to_int),
        under_price=_required(r, "under_price", to_int),
        snapshot_ts=_required(r, "snapshot_ts", to_timestamp),
        source_api=_required(r, "source_api", _non_empty),
    )
    _check_game_id_date(row.game_id, row.game_date)
    _check_event_window("snapshot_ts", row.snapshot_ts, row.game_date, window_hours)
    return row


_ODDS_STRINGS = ("player_lookup", "player_name", "game_id", "book", "source_api")


def odds_rows_columnar(batch: Any, window_hours: tuple[float, float] = DEFAULT_EVENT_WINDOW_HOURS,
                       partition_date: dt.date | None = None) -> list[schemas.OddsSnapshot | None] | None:
    """The odds rows of an Arrow record batch that :func:`parse_odds` certainly accepts, checked column
    by column (a season's odds are millions of Parquet rows; per record they cost ~15 us, mostly Arrow
    -> Python conversion and one call per field).

    Returns one entry per row: its ``OddsSnapshot`` (equal to what ``parse_odds`` returns for the row's
    record) or None, for a row any check fails; such a row goes through :func:`parse_record`, which
    accepts it or names its error. The checks are the same rules, never looser: every field present and
    not null, the id patterns (``*_PATTERN``, RE2 here), strings within ``schemas.MAX_FIELD_CHARS``, a
    ``source_api`` with a visible character, a finite ``line``, ``game_date`` and ``snapshot_ts`` within
    the input range, the game id's date equal to ``game_date`` (and to ``partition_date``), the snapshot
    within the event-time window. Returns None for the whole batch when a column is missing or not of
    the plain type (string, date32, float64, signed integer prices, a timestamp): then every row goes
    through ``parse_record``.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    fields = schemas.OddsSnapshot._fields
    schema = batch.schema
    if any(schema.get_field_index(name) < 0 for name in fields):
        return None
    col = {name: batch.column(schema.get_field_index(name)) for name in fields}
    types = {name: c.type for name, c in col.items()}
    if not (all(types[n] in (pa.string(), pa.large_string()) for n in _ODDS_STRINGS)
            and types["game_date"] == pa.date32() and types["line"] == pa.float64()
            and pa.types.is_signed_integer(types["over_price"])
            and pa.types.is_signed_integer(types["under_price"])
            and pa.types.is_timestamp(types["snapshot_ts"])):
        return None
    # The same cast as the record path (files._batch_records): Arrow stores UTC instants.
    ts = col["snapshot_ts"].cast(pa.timestamp("us"), safe=False)
    game_date = col["game_date"]

    def naive(value: dt.datetime) -> pa.Scalar:
        return pa.scalar(value.replace(tzinfo=None), pa.timestamp("us"))

    def whole(name: str, pattern: str) -> Any:
        return pc.match_substring_regex(col[name], f"^(?:{pattern})$")

    checks = [pc.is_valid(c) for c in col.values()]
    checks += [
        whole("player_lookup", PLAYER_LOOKUP_PATTERN),
        whole("game_id", GAME_ID_PATTERN),
        whole("book", BOOK_PATTERN),
        pc.less_equal(pc.utf8_length(col["player_name"]), schemas.MAX_FIELD_CHARS),
        pc.less_equal(pc.utf8_length(col["source_api"]), schemas.MAX_FIELD_CHARS),
        pc.match_substring_regex(col["source_api"], "[!-~]"),  # str.strip() never removes these
        pc.is_finite(col["line"]),
        pc.greater_equal(ts, naive(_TS_MIN)),
        pc.less_equal(ts, naive(_TS_MAX)),
    ]
    if partition_date is not None:
        checks.append(pc.equal(game_date, pa.scalar(partition_date, pa.date32())))
    in_range = pc.and_(pc.greater_equal(game_date, pa.scalar(schemas.EARLIEST_INPUT_DATE, pa.date32())),
                       pc.less_equal(game_date, pa.scalar(schemas.LATEST_INPUT_DATE, pa.date32())))
    in_window = None
    for day in pc.unique(pc.filter(game_date, pc.fill_null(in_range, False))).to_pylist():
        low, high = _event_window(day, tuple(window_hours))
        on_day = pc.and_(pc.equal(game_date, pa.scalar(day, pa.date32())),
                         pc.starts_with(col["game_id"], f"{day:%Y%m%d}"))  # the id names the row's date
        on_day = pc.and_(on_day, pc.and_(pc.greater_equal(ts, naive(low)), pc.less_equal(ts, naive(high))))
        in_window = on_day if in_window is None else pc.or_(in_window, on_day)
    if in_window is None:
        return [None] * len(batch)
    ok = in_window
    for check in checks:
        ok = pc.and_(ok, check)
    ok = pc.fill_null(ok, False).to_numpy(zero_copy_only=False).tolist()
    # Columns to Python via numpy: ~30x faster than to_pylist() for dates and timestamps (the values of
    # the rows kept are the same; the others are not used).
    col["snapshot_ts"] = ts
    for name in ("over_price", "under_price"):  # a null would make numpy turn the column into floats
        col[name] = col[name].fill_null(0)
    values = [col[name].to_numpy(zero_copy_only=False).tolist() for name in fields]
    at = fields.index("snapshot_ts")
    values[at] = [value.replace(tzinfo=dt.UTC) if keep else None
                  for keep, value in zip(ok, values[at], strict=True)]
    rows = list(map(tuple.__new__, itertools.repeat(schemas.OddsSnapshot), zip(*values, strict=True)))
    return rows if all(ok) else [row if keep else None for keep, row in zip(ok, rows, strict=True)]


def parse_injury(r: Mapping, window_hours: tuple[float, float] = DEFAULT_EVENT_WINDOW_HOURS
                 ) -> schemas.InjuryReport:
    reason = r.get("reason")
    row = schemas.InjuryReport(
        player_lookup=_required(r, "player_lookup", _player_lookup),
        game_date=_required(r, "game_date", to_date),
        status=_required(r, "status", _non_empty),
        reason="" if reason is None or _is_null(reason) else to_str("reason", reason),
        report_ts=_required(r, "report_ts", to_timestamp),
    )
    _check_event_window("report_ts", row.report_ts, row.game_date, window_hours)
    return row


def parse_features(r: Mapping, window_hours: tuple[float, float] = DEFAULT_EVENT_WINDOW_HOURS
                   ) -> schemas.FeatureRow:
    features = tuple(_optional_float(r, name) for name in schemas.FEATURE_NAMES)
    defaults = r.get("default_feature_indices")
    row = schemas.FeatureRow(
        player_lookup=_required(r, "player_lookup", _player_lookup),
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
    _check_game_id_date(row.game_id, row.game_date)
    n = len(schemas.FEATURE_NAMES)
    _in_range("feature_quality_score", row.feature_quality_score, 0.0, 100.0)
    _in_range("matchup_quality_pct", row.matchup_quality_pct, 0.0, 100.0)
    _in_range("required_default_count", row.required_default_count, 0, n)
    for i, index in enumerate(row.default_feature_indices):
        _in_range(f"default_feature_indices[{i}]", index, 0, n - 1)
    return row


def parse_box_score(r: Mapping, window_hours: tuple[float, float] = DEFAULT_EVENT_WINDOW_HOURS
                    ) -> schemas.BoxScore:
    row = schemas.BoxScore(
        player_lookup=_required(r, "player_lookup", _player_lookup),
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
    _check_game_id_date(row.game_id, row.game_date)
    for name in ("points", "minutes", "fg3a", "fg3m"):
        _in_range(name, getattr(row, name), 0.0, None)
    return row


PARSERS: dict[str, Callable[..., tuple]] = {
    "schedule": parse_schedule,
    "odds": parse_odds,
    "injuries": parse_injury,
    "features": parse_features,
    "box_scores": parse_box_score,
}
assert set(PARSERS) == set(schemas.INPUT_KINDS)


def parse_record(kind: str, record: Mapping, *,
                 event_window_hours: tuple[float, float] | None = None) -> tuple:
    """Parses one raw record of ``kind`` (a key of ``schemas.INPUT_KINDS``) into its typed row.

    Args:
        kind: the input kind.
        record: the raw record (a mapping of field name -> raw value).
        event_window_hours: ``Policy.event_time_window_hours`` of the run (default: the policy default).

    Raises:
        ParseError: the record is not a mapping, a required field is missing or null, a field has the
            wrong type, format or range, or fields disagree (see the module docstring); ``code`` is one of
            ``REASONS`` and ``reason`` names the field.
        KeyError: ``kind`` is not an input kind (a programming error, not a data error).
    """
    parser = PARSERS[kind]
    if not isinstance(record, Mapping):
        raise ParseError(MALFORMED, f"expected a JSON object, got {type(record).__name__}")
    return parser(record, event_window_hours or DEFAULT_EVENT_WINDOW_HOURS)


_DIGITS_TO_NINE = bytes.maketrans(b"012345678", b"999999999")
_NINETEEN_DIGITS = b"9" * 19  # a run of digits as long as the longest int64 (orjson: a float beyond it)


def decode_json(data: bytes | str) -> Any:
    """``json.loads`` of one JSON document (UTF-8 bytes, or text), decoded by orjson where it gives the same
    value: 1.5 against 4.4 us a box-score line, this check included (json.loads was most of reading the
    season's box scores, ~0.2 s of the 11-game slate; and the stream's messages). orjson rejects what
    the standard library accepts beyond JSON (NaN, Infinity, numbers that overflow a double, lone
    surrogates, a BOM) and reads an integer beyond 64 bits as a float: a document orjson rejects, or
    with a run of 19 digits anywhere (an integer that may not fit 64 bits, or not), is decoded by
    ``json.loads``, so the value, or the error, is always the standard library's. Bytes that are not
    UTF-8 (orjson rejects them too) raise ``bytes.decode``'s UnicodeDecodeError."""
    import orjson

    raw = data
    if not isinstance(raw, bytes):
        try:
            raw = data.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate: JSON text orjson would reject
            return json.loads(data)
    if _NINETEEN_DIGITS not in raw.translate(_DIGITS_TO_NINE):
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            pass
    return json.loads(data.decode("utf-8") if isinstance(data, bytes) else data)


def parse_json_record(kind: str, data: bytes | str, *,
                      event_window_hours: tuple[float, float] | None = None) -> tuple[Any, tuple]:
    """Decodes one JSON record (a JSON line, a Pub/Sub message body) and parses it.

    Returns ``(decoded record, typed row)``. Raises ParseError: ``too_long`` over
    ``schemas.MAX_RECORD_BYTES`` (not decoded at all), ``malformed`` when not UTF-8 or not JSON, else as
    :func:`parse_record`. The decoded record rides on the error as ``record`` (None when not decoded).
    """
    if len(data) > schemas.MAX_RECORD_BYTES:
        raise ParseError(TOO_LONG, f"record of {len(data)} bytes (at most {schemas.MAX_RECORD_BYTES})")
    try:
        record = decode_json(data)
    except UnicodeDecodeError as exc:  # checked by orjson, raised by the decode of its fallback
        raise ParseError(MALFORMED, f"not UTF-8: {exc}") from None
    except (ValueError, RecursionError) as exc:
        raise ParseError(MALFORMED, f"not JSON: {schemas.clip_text(str(exc), 200)}") from None
    try:
        return record, parse_record(kind, record, event_window_hours=event_window_hours)
    except ParseError as exc:
        exc.record = record
        raise


def event_time(kind: str, row: tuple) -> dt.datetime:
    """The event time of a parsed row (``schemas.EVENT_TIME_FIELD``) as a UTC datetime.

    Date-only event times (features, box scores) map to midnight UTC of the date.
    """
    value = getattr(row, schemas.EVENT_TIME_FIELD[kind])
    if isinstance(value, dt.datetime):
        return value
    return dt.datetime(value.year, value.month, value.day, tzinfo=dt.UTC)


def raw_event_time(kind: str, record: Any) -> dt.datetime | None:
    """Best-effort event time of a raw record that failed to parse (for its dead letter), else None
    (also when it is out of range)."""
    if not isinstance(record, Mapping):
        return None
    value = record.get(schemas.EVENT_TIME_FIELD[kind])
    if value is None:
        return None
    try:
        if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
            value = dt.datetime(value.year, value.month, value.day)
        return to_timestamp("event_ts", value)
    except (ParseError, ValueError, TypeError, OverflowError):
        return None


def raw_game_date(record: Any) -> dt.date | None:
    """Best-effort ``game_date`` of a raw record that failed to parse (for its dead letter), else None."""
    if not isinstance(record, Mapping) or record.get("game_date") is None:
        return None
    try:
        return to_date("game_date", record["game_date"])
    except (ParseError, ValueError, TypeError, OverflowError):
        return None

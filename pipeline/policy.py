"""The selection policy: every number of the domain rules (domain.md sections 3, 4, 6, 7, 8) as a field.

A policy is a JSON file (local path or ``gs://`` URI) holding an object whose keys are the fields of
:class:`Policy`; missing keys take the documented defaults, unknown keys, wrong types and out-of-range
values raise :class:`PolicyError` naming the field and showing a valid example. With no file, the
packaged ``pipeline/policies/default.json`` is used (it equals ``Policy()``).

Usage::

    policy = load_policy("gs://bucket/policies/2026.11-1.json")   # validated at launch
    policy.version, policy.digest                                    # stamped on every output row

The module also holds :func:`json_text`, the one way JSON documents stored in rows are written.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import typing
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from pipeline.schemas import BOOK_PRIORITY, PICKEM_SITES, RUN_MODES

CONSENSUS_METHODS: tuple[str, ...] = ("median_of_families", "mean_of_families", "max_abs_edge")
# The signal table of domain.md section 8, in table order (pipeline.domain.selection evaluates them).
SIGNAL_TAGS: tuple[str, ...] = (
    "model_health", "high_edge", "edge_spread_optimal", "combo_he_ms", "combo_3way", "b2b_fatigue_under",
    "rest_advantage_2d", "bench_under", "prop_line_drop_over", "book_disagreement", "3pt_bounce",
    "blowout_recovery",
)
MODEL_STATES: tuple[str, ...] = ("HEALTHY", "WATCH", "DEGRADING", "BLOCKED", "INSUFFICIENT_DATA")
DEFAULT_POLICY_RESOURCE = "policies/default.json"


class PolicyError(ValueError):
    """A policy file or value is invalid; the message names the field and shows a valid example."""


def _clean(obj: Any, ndigits: int) -> Any:
    if isinstance(obj, bool) or obj is None or isinstance(obj, (int, str)):
        return obj
    if isinstance(obj, float):
        if math.isnan(obj) or math.isinf(obj):
            return None
        return round(obj, ndigits)
    if isinstance(obj, dict):
        return {str(k): _clean(v, ndigits) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v, ndigits) for v in obj]
    if hasattr(obj, "isoformat"):
        return obj.isoformat()
    if hasattr(obj, "item"):  # numpy scalar
        return _clean(obj.item(), ndigits)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def json_text(obj: Any, *, sort_keys: bool = True, ndigits: int = 4) -> str:
    """Compact JSON text for a row column: floats rounded to ``ndigits``, NaN/inf -> null, dates ISO.

    ``sort_keys=False`` keeps insertion order (used where the order is meaningful, e.g. filter counters).
    """
    return json.dumps(_clean(obj, ndigits), sort_keys=sort_keys, separators=(",", ":"), allow_nan=False)


def _default_gate_thresholds() -> dict[str, float]:
    return {"FIRST": 85.0, "RETRY": 85.0, "FINAL_RETRY": 80.0, "LAST_CALL": 70.0, "BACKFILL": 70.0}


def _default_model_health_confidence() -> dict[str, float]:
    # domain.md: 1.0 HEALTHY or unknown, 0.7 WATCH, 0.3 below breakeven (BLOCKED). DEGRADING (52.4-55 %)
    # is above breakeven, so it gets the WATCH value.
    return {"HEALTHY": 1.0, "WATCH": 0.7, "DEGRADING": 0.7, "BLOCKED": 0.3, "INSUFFICIENT_DATA": 1.0}


Tiers = tuple[tuple[float, float], ...]


@dataclass(frozen=True)
class Policy:
    """Every setting of the domain rules, with the documented defaults (domain.md)."""

    version: str = "2026.11-1"
    # Section 3: line book.
    line_min: float = 5.0
    line_max: float = 70.0
    staleness_hours: float = 12.0
    # Input validity (pipeline.io.parse): (before, after) hours an event time (odds snapshot, injury report,
    # schedule event) may lie before its game date's UTC day starts / after it ends; further out the row is
    # a dead letter ``event_time_outside_window`` (a far-future time would advance the stream's clock).
    event_time_window_hours: tuple[float, float] = (8760.0, 12.0)
    book_priority: tuple[str, ...] = BOOK_PRIORITY
    pickem_sites: tuple[str, ...] = PICKEM_SITES
    # Section 4: universe and quality gate.
    gate_thresholds: dict[str, float] = field(default_factory=_default_gate_thresholds)
    matchup_floor: float = 50.0
    streaming_run_mode: str = "RETRY"
    excluded_injury_statuses: tuple[str, ...] = ("out", "doubtful")
    # Section 6: predictions.
    predicted_clamp: tuple[float, float] = (0.0, 60.0)
    min_edge_mae: float = 3.0
    min_edge_quantile: float = 4.0
    confidence_base: float = 0.75
    # (threshold, bonus), highest first: score >= threshold gets the bonus.
    quality_bonus_tiers: Tiers = ((90.0, 0.10), (80.0, 0.07), (70.0, 0.05))
    quality_bonus_else: float = 0.02
    # (threshold, bonus), lowest first: points_std_last_10 < threshold gets the bonus.
    consistency_bonus_tiers: Tiers = ((4.0, 0.10), (6.0, 0.07), (8.0, 0.05))
    consistency_bonus_else: float = 0.02
    # Section 7: consensus.
    consensus_method: str = "median_of_families"
    agreement_edge: float = 3.0
    # Subtract each model's registry holdout vegas bias (mean predicted - line) from its edge before the
    # family edges and the consensus (pipeline.domain.consensus); predictions keep their raw edge.
    consensus_bias_correction: bool = False
    # Section 8: filters, in order.
    blacklist_hr: float = 0.40
    blacklist_min_graded: int = 8
    reference_family: str = "v12_mae"
    edge_floor: float = 5.0
    under_edge_cap: float = 7.0
    familiar_matchup_games: int = 6
    quality_floor: float = 85.0
    bench_under_line: float = 12.0
    line_jump: float = 2.0
    neg_pm_streak: int = 3
    min_signals: int = 2
    # Signals that do not count toward min_signals. Default none: then every candidate past edge_floor
    # already has two (model_health always qualifies, high_edge at the same 5.0), so signal_count cannot
    # reject; ["model_health", "high_edge"] makes it require min_signals of the other signals.
    signal_count_excludes: tuple[str, ...] = ()
    min_agreement: float = 0.5
    # Section 8: signals (qualifying thresholds, then each signal's confidence).
    model_health_confidence: dict[str, float] = field(default_factory=_default_model_health_confidence)
    high_edge: float = 5.0
    high_edge_confidence_scale: float = 10.0
    edge_spread_min_confidence: float = 0.70
    edge_spread_excluded_band: tuple[float, float] = (0.88, 0.90)
    # edge_spread_optimal confidence: band_confidence for a mean confidence within edge_spread_band,
    # high_confidence above the excluded band, else_confidence otherwise.
    edge_spread_band: tuple[float, float] = (0.75, 0.85)
    edge_spread_band_confidence: float = 0.90
    edge_spread_high_confidence: float = 0.95
    edge_spread_else_confidence: float = 0.75
    combo_minutes_gain: float = 3.0
    combo_he_ms_confidence: float = 0.85
    combo_3way_confidence: float = 0.95
    b2b_min_minutes: float = 35.0
    # b2b_fatigue_under confidence: min(1, base + (season minutes - b2b_min_minutes) / minutes_scale).
    b2b_confidence_base: float = 0.5
    b2b_confidence_minutes_scale: float = 10.0
    rest_advantage_player_min: float = 2.0
    rest_advantage_opponent_max: float = 1.0
    # rest_advantage_2d confidence: min(1, base + per_day x rest gap in days).
    rest_advantage_confidence_base: float = 0.65
    rest_advantage_confidence_per_day: float = 0.1
    bench_under_confidence: float = 0.85
    prop_line_drop: float = 2.0
    # prop_line_drop_over confidence: min(1, base + per_point x (drop - prop_line_drop)).
    prop_line_drop_confidence_base: float = 0.85
    prop_line_drop_confidence_per_point: float = 0.05
    book_disagreement_std: float = 1.5
    book_disagreement_min_books: int = 5
    # book_disagreement confidence: min(max, base + per_std x (std - book_disagreement_std)).
    book_disagreement_confidence_base: float = 0.85
    book_disagreement_confidence_per_std: float = 0.10
    book_disagreement_confidence_max: float = 0.95
    three_pt_min_attempts: float = 4.0
    # 3pt_bounce: last-3 3P% below the season's by more than min_z stds; confidence min(1, z / z_scale).
    three_pt_min_z: float = 1.0
    three_pt_confidence_z_scale: float = 3.0
    blowout_minutes_deficit: float = 6.0
    blowout_min_rest: float = 2.0
    # blowout_recovery confidence: min(1, minutes deficit / minutes_scale).
    blowout_confidence_minutes_scale: float = 16.0
    # Section 8: ultra tier, caps, angles.
    ultra_edge: float = 6.0
    ultra_public_min_picks: int = 50
    ultra_public_min_hr: float = 0.80
    daily_cap: int | None = None
    team_cap: int | None = None
    max_angles: int = 5
    angle_min_line_move: float = 1.0

    # Grading and governance (domain.md section 9).
    # "Edge N+" buckets: the first is "edge 3+" (model HR windows, OVER/UNDER split, blacklist history,
    # promotion gates, backtest), the second "edge 5+" (hr_edge5_30d, the promotion report).
    edge_buckets: tuple[float, float] = (3.0, 5.0)
    breakeven_hr: float = 0.524  # a -110 bet; BLOCKED below it, the OVER/UNDER promotion gates at it
    state_min_graded: int = 5  # fewer graded 7-day edge-3+ bets -> INSUFFICIENT_DATA
    state_degrading_hr: float = 0.55  # 7-day HR below it (and >= breakeven) -> DEGRADING
    state_watch_hr: float = 0.58  # below it -> WATCH; at or above -> HEALTHY
    promotion_min_hr: float = 0.53
    promotion_min_bets: int = 50
    promotion_max_vegas_bias: float = 1.5
    promotion_max_tier_error: float = 5.0

    def __post_init__(self) -> None:
        _validate(self)

    def __hash__(self) -> int:
        return hash(self.digest)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict (tuples become lists)."""
        return {f.name: _to_plain(getattr(self, f.name)) for f in dataclasses.fields(self)}

    def to_json(self) -> str:
        """Canonical JSON (sorted keys, compact); what :attr:`digest` hashes and a policy file may hold."""
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    @property
    def digest(self) -> str:
        """sha256 hex of :meth:`to_json`."""
        return hashlib.sha256(self.to_json().encode("utf-8")).hexdigest()

    def gate_threshold(self, run_mode: str) -> float:
        """The quality threshold of a run mode; ValueError for an unknown mode."""
        if run_mode not in self.gate_thresholds:
            raise ValueError(f"unknown run_mode {run_mode!r}; expected one of {', '.join(RUN_MODES)}")
        return self.gate_thresholds[run_mode]

    def min_edge(self, loss: str) -> float:
        """Recommendation minimum edge for a model loss: ``MAE`` or ``Quantile:alpha=a``."""
        if loss == "MAE":
            return self.min_edge_mae
        if loss.startswith("Quantile"):
            return self.min_edge_quantile
        raise ValueError(f"unknown loss {loss!r}; expected 'MAE' or 'Quantile:alpha=0.43'")


def _to_plain(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_to_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _to_plain(v) for k, v in value.items()}
    return value


# --------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------

_HINTS = typing.get_type_hints(Policy)
_FIELD_NAMES = tuple(f.name for f in dataclasses.fields(Policy))


def _example(name: str) -> str:
    return f'"{name}": {json.dumps(_to_plain(getattr(_DEFAULT, name)))}' if _DEFAULT else name


def _fail(name: str, problem: str, value: Any) -> PolicyError:
    return PolicyError(
        f"policy field {name!r}: {problem}, got {json.dumps(_to_plain(value), default=str)}; "
        f"valid example: {_example(name)}"
    )


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _check_type(name: str, value: Any) -> None:
    hint = _HINTS[name]
    origin = typing.get_origin(hint)
    if hint is str:
        ok = isinstance(value, str) and value != ""
        what = "expected a non-empty string"
    elif hint is bool:
        ok = isinstance(value, bool)
        what = "expected true or false"
    elif hint is float:
        ok = _is_number(value)
        what = "expected a number"
    elif hint is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
        what = "expected an integer"
    elif hint == (int | None):
        ok = value is None or (isinstance(value, int) and not isinstance(value, bool))
        what = "expected an integer or null"
    elif hint == tuple[str, ...]:
        ok = isinstance(value, tuple) and all(isinstance(v, str) and v for v in value)
        what = "expected a list of strings"
    elif hint == tuple[float, float]:
        ok = isinstance(value, tuple) and len(value) == 2 and all(_is_number(v) for v in value)
        what = "expected a list of two numbers"
    elif hint == Tiers:
        ok = isinstance(value, tuple) and len(value) > 0 and all(
            isinstance(t, tuple) and len(t) == 2 and all(_is_number(v) for v in t) for t in value)
        what = "expected a non-empty list of [threshold, bonus] pairs"
    elif origin is dict:
        ok = isinstance(value, dict) and all(isinstance(k, str) and _is_number(v) for k, v in value.items())
        what = "expected an object of numbers"
    else:  # pragma: no cover - a new field type must be added above
        raise TypeError(f"no validator for policy field {name} ({hint})")
    if not ok:
        raise _fail(name, what, value)


def _nonneg(v: float) -> bool:
    return v >= 0


def _unit(v: float) -> bool:
    return 0.0 <= v <= 1.0


def _pct(v: float) -> bool:
    return 0.0 <= v <= 100.0


# field -> (predicate, description of the valid range)
_RANGES: dict[str, tuple[typing.Callable[[Any], bool], str]] = {
    "line_min": (lambda v: v > 0, "expected a number > 0"),
    "line_max": (lambda v: v > 0, "expected a number > 0"),
    "staleness_hours": (lambda v: v > 0, "expected a number of hours > 0"),
    "event_time_window_hours": (lambda v: v[0] > 0 and v[1] > 0, "expected [before, after] hours, both > 0"),
    "book_priority": (lambda v: len(v) > 0 and len(set(v)) == len(v), "expected distinct book keys"),
    "matchup_floor": (_pct, "expected a percentage in [0, 100]"),
    "streaming_run_mode": (lambda v: v in RUN_MODES, f"expected one of {', '.join(RUN_MODES)}"),
    "predicted_clamp": (lambda v: 0 <= v[0] < v[1], "expected [low, high] with 0 <= low < high"),
    "min_edge_mae": (lambda v: v > 0, "expected a number > 0"),
    "min_edge_quantile": (lambda v: v > 0, "expected a number > 0"),
    "confidence_base": (_unit, "expected a number in [0, 1]"),
    "quality_bonus_else": (_unit, "expected a number in [0, 1]"),
    "consistency_bonus_else": (_unit, "expected a number in [0, 1]"),
    "quality_bonus_tiers": (
        lambda v: all(a[0] > b[0] for a, b in zip(v, v[1:], strict=False)) and all(_unit(t[1]) for t in v),
        "expected thresholds in decreasing order and bonuses in [0, 1]"),
    "consistency_bonus_tiers": (
        lambda v: all(a[0] < b[0] for a, b in zip(v, v[1:], strict=False)) and all(_unit(t[1]) for t in v),
        "expected thresholds in increasing order and bonuses in [0, 1]"),
    "consensus_method": (lambda v: v in CONSENSUS_METHODS, f"expected one of {', '.join(CONSENSUS_METHODS)}"),
    "agreement_edge": (_nonneg, "expected a number >= 0"),
    "gate_thresholds": (lambda v: set(v) == set(RUN_MODES) and all(_pct(x) for x in v.values()),
                        f"expected exactly the run modes {', '.join(RUN_MODES)} with values in [0, 100]"),
    "model_health_confidence": (lambda v: set(v) <= set(MODEL_STATES) and all(_unit(x) for x in v.values()),
                                f"expected keys among {', '.join(MODEL_STATES)} with values in [0, 1]"),
    "blacklist_hr": (_unit, "expected a hit rate in [0, 1]"),
    "blacklist_min_graded": (lambda v: v >= 1, "expected an integer >= 1"),
    "edge_floor": (_nonneg, "expected a number >= 0"),
    "under_edge_cap": (lambda v: v > 0, "expected a number > 0"),
    "familiar_matchup_games": (lambda v: v >= 1, "expected an integer >= 1"),
    "quality_floor": (_pct, "expected a percentage in [0, 100]"),
    "bench_under_line": (_nonneg, "expected a number >= 0"),
    "line_jump": (lambda v: v > 0, "expected a number > 0"),
    "neg_pm_streak": (lambda v: v >= 1, "expected an integer >= 1"),
    "min_signals": (lambda v: v >= 0, "expected an integer >= 0"),
    "min_agreement": (_unit, "expected a share in [0, 1]"),
    "high_edge": (_nonneg, "expected a number >= 0"),
    "high_edge_confidence_scale": (lambda v: v > 0, "expected a number > 0"),
    "edge_spread_min_confidence": (_unit, "expected a number in [0, 1]"),
    "edge_spread_excluded_band": (lambda v: 0 <= v[0] <= v[1] <= 1, "expected [low, high] in [0, 1]"),
    "edge_spread_band": (lambda v: 0 <= v[0] <= v[1] <= 1, "expected [low, high] in [0, 1]"),
    "edge_spread_band_confidence": (_unit, "expected a confidence in [0, 1]"),
    "edge_spread_high_confidence": (_unit, "expected a confidence in [0, 1]"),
    "edge_spread_else_confidence": (_unit, "expected a confidence in [0, 1]"),
    "combo_he_ms_confidence": (_unit, "expected a confidence in [0, 1]"),
    "combo_3way_confidence": (_unit, "expected a confidence in [0, 1]"),
    "b2b_confidence_base": (_unit, "expected a confidence in [0, 1]"),
    "b2b_confidence_minutes_scale": (lambda v: v > 0, "expected a number of minutes > 0"),
    "rest_advantage_confidence_base": (_unit, "expected a confidence in [0, 1]"),
    "rest_advantage_confidence_per_day": (_nonneg, "expected a number >= 0"),
    "bench_under_confidence": (_unit, "expected a confidence in [0, 1]"),
    "prop_line_drop": (lambda v: v > 0, "expected a number of points > 0"),
    "prop_line_drop_confidence_base": (_unit, "expected a confidence in [0, 1]"),
    "prop_line_drop_confidence_per_point": (_nonneg, "expected a number >= 0"),
    "book_disagreement_confidence_base": (_unit, "expected a confidence in [0, 1]"),
    "book_disagreement_confidence_per_std": (_nonneg, "expected a number >= 0"),
    "book_disagreement_confidence_max": (_unit, "expected a confidence in [0, 1]"),
    "three_pt_min_z": (_nonneg, "expected a number of standard deviations >= 0"),
    "three_pt_confidence_z_scale": (lambda v: v > 0, "expected a number > 0"),
    "blowout_confidence_minutes_scale": (lambda v: v > 0, "expected a number of minutes > 0"),
    "signal_count_excludes": (lambda v: set(v) <= set(SIGNAL_TAGS) and len(set(v)) == len(v),
                              f"expected distinct signal tags among {', '.join(SIGNAL_TAGS)}"),
    "ultra_edge": (lambda v: v > 0, "expected a number > 0"),
    "ultra_public_min_picks": (lambda v: v >= 0, "expected an integer >= 0"),
    "ultra_public_min_hr": (_unit, "expected a hit rate in [0, 1]"),
    "daily_cap": (lambda v: v is None or v >= 1, "expected null or an integer >= 1"),
    "team_cap": (lambda v: v is None or v >= 1, "expected null or an integer >= 1"),
    "max_angles": (lambda v: v >= 0, "expected an integer >= 0"),
    "book_disagreement_min_books": (lambda v: v >= 2, "expected an integer >= 2"),
    # Grading and governance (domain.md section 9).
    "edge_buckets": (lambda v: 0 < v[0] < v[1], "expected [edge 3+, edge 5+] with 0 < first < second"),
    "breakeven_hr": (_unit, "expected a hit rate in [0, 1]"),
    "state_min_graded": (lambda v: v >= 0, "expected an integer >= 0"),
    "state_degrading_hr": (_unit, "expected a hit rate in [0, 1]"),
    "state_watch_hr": (_unit, "expected a hit rate in [0, 1]"),
    "promotion_min_hr": (_unit, "expected a hit rate in [0, 1]"),
    "promotion_min_bets": (lambda v: v >= 1, "expected an integer >= 1"),
    "promotion_max_vegas_bias": (_nonneg, "expected a number >= 0"),
    "promotion_max_tier_error": (_nonneg, "expected a number >= 0"),
}


def _validate(p: Policy) -> None:
    for name in _FIELD_NAMES:
        value = getattr(p, name)
        _check_type(name, value)
        rng = _RANGES.get(name)
        if rng is not None and not rng[0](value):
            raise _fail(name, rng[1], value)
    if p.line_min >= p.line_max:
        raise _fail("line_max", f"expected a number > line_min ({p.line_min})", p.line_max)
    if any(s != s.lower() for s in p.excluded_injury_statuses):
        raise _fail("excluded_injury_statuses", "expected lower-case statuses", p.excluded_injury_statuses)
    if not p.breakeven_hr <= p.state_degrading_hr <= p.state_watch_hr:  # grading: states in order
        raise _fail("state_watch_hr", f"expected breakeven_hr ({p.breakeven_hr}) <= state_degrading_hr "
                    f"({p.state_degrading_hr}) <= state_watch_hr", p.state_watch_hr)


def _coerce(name: str, value: Any) -> Any:
    """JSON value -> the field's Python shape (lists become tuples); types are checked afterwards."""
    hint = _HINTS[name]
    if hint == Tiers and isinstance(value, list):
        return tuple(tuple(t) if isinstance(t, list) else t for t in value)
    if typing.get_origin(hint) is tuple and isinstance(value, list):
        return tuple(value)
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if typing.get_origin(hint) is dict and isinstance(value, dict):
        return {k: float(v) if _is_number(v) else v for k, v in value.items()}
    return value


def policy_from_dict(data: Any) -> Policy:
    """A validated Policy from a decoded JSON object; PolicyError on any problem."""
    if not isinstance(data, dict):
        raise PolicyError(f"a policy must be a JSON object, got {type(data).__name__}; "
                          f'valid example: {{"version": "2026.11-1", "edge_floor": 5.0}}')
    unknown = sorted(set(data) - set(_FIELD_NAMES))
    if unknown:
        raise PolicyError(f"unknown policy field {unknown[0]!r}; valid fields are: {', '.join(_FIELD_NAMES)}")
    if "version" not in data:
        raise PolicyError('policy field \'version\' is required; valid example: "version": "2026.11-1"')
    kwargs = {}
    for name, value in data.items():
        value = _coerce(name, value)
        _check_type(name, value)
        kwargs[name] = value
    return Policy(**kwargs)


def _read_text(uri: str) -> str:
    try:
        from apache_beam.io.filesystems import FileSystems
    except ImportError:  # pragma: no cover - Beam is a runtime dependency
        with open(uri, encoding="utf-8") as fh:
            return fh.read()
    with FileSystems.open(uri) as fh:
        return fh.read().decode("utf-8")


def load_policy(uri: str | None = None) -> Policy:
    """Loads and validates a policy file (local path or ``gs://``); None -> the packaged default."""
    if uri is None:
        text = resources.files("pipeline").joinpath(DEFAULT_POLICY_RESOURCE).read_text(encoding="utf-8")
        source = f"pipeline/{DEFAULT_POLICY_RESOURCE}"
    else:
        try:
            text = _read_text(uri)
        except Exception as exc:  # noqa: BLE001 - any I/O failure is a launch error
            raise PolicyError(f"cannot read policy file {uri}: {exc}") from exc
        source = uri
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise PolicyError(f"policy file {source} is not valid JSON: {exc}") from exc
    try:
        return policy_from_dict(data)
    except PolicyError as exc:
        raise PolicyError(f"{source}: {exc}") from None


_DEFAULT: Policy | None = None
_DEFAULT = Policy()

"""The model registry: every model the pipeline may serve, validated at launch (domain.md section 6).

One JSON file (a local path or a ``gs://`` URI, read and written through Beam's ``FileSystems``)::

    {"registry_version": 1, "models": [{"model_id": "catboost_v12_mae_train1021_0115",
      "family": "v12_mae", "feature_set": "v12", "loss": "MAE", "quantile_alpha": null,
      "training_start": "2025-10-21", "training_end": "2026-01-15", "holdout_start": ..., "holdout_end": ...,
      "artifact_uri": "catboost_v12_mae_train1021_0115.cbm", "sha256": "...", "feature_count": 54,
      "enabled": true, "status": "promoted", "holdout_metrics": {...}, "gates": [...], ...}]}

An ``artifact_uri`` that is not absolute is relative to the registry file's folder, so ``models/sample/``
works from any working directory and a registry copied to ``gs://bucket/models/`` with its artifacts
works unchanged.

Usage at launch::

    registry = load_registry(uri).validate()      # RegistryError names the model and the fix
    specs = registry.eligible_for(game_date)      # enabled models trained strictly before the date

Nothing about a model is ever inferred from its id: family, feature set and loss are explicit fields,
checked against :data:`FAMILIES`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import posixpath
from collections.abc import Iterable
from typing import Any

from apache_beam.io.filesystems import FileSystems

from pipeline.schemas import FEATURE_SETS, feature_names_for

REGISTRY_VERSION = 1

# Statuses a registry entry may carry (domain.md section 9). ``promoted``: passed every promotion gate,
# the only status that may be enabled; ``failed_gates``: failed at least one gate, registered disabled with
# the failed gates recorded; ``retired``: taken out of service.
STATUSES: tuple[str, ...] = ("promoted", "failed_gates", "retired")
ENABLED_STATUSES: tuple[str, ...] = ("promoted",)


@dataclasses.dataclass(frozen=True)
class Family:
    """What every model of a family shares: feature set and loss. The recommendation edge minimum is the
    policy's, by loss (``Policy.min_edge(loss)``), not the family's."""

    feature_set: str
    loss: str  # "MAE" or "Quantile:alpha=<a>"
    quantile_alpha: float | None


def _quantile(feature_set: str, alpha: float) -> Family:
    return Family(feature_set, f"Quantile:alpha={alpha}", alpha)


def _mae(feature_set: str) -> Family:
    return Family(feature_set, "MAE", None)


# The family table (domain.md section 1). A family not listed here is an error at launch.
FAMILIES: dict[str, Family] = {
    "v9_mae": _mae("v9"),
    "v9_q43": _quantile("v9", 0.43),
    "v9_q45": _quantile("v9", 0.45),
    "v9_low_vegas": _mae("v9"),
    "v12_mae": _mae("v12"),
    "v12_noveg_mae": _mae("v12_noveg"),
    "v12_noveg_q43": _quantile("v12_noveg", 0.43),
    "v12_noveg_q45": _quantile("v12_noveg", 0.45),
    "v12_vegas_q43": _quantile("v12", 0.43),
    "v12_vegas_q45": _quantile("v12", 0.45),
}


class RegistryError(ValueError):
    """A registry that must not be served; the message names the model and the fix."""


def make_model_id(family: str, training_start: dt.date, training_end: dt.date) -> str:
    """The id of a model built from its spec (e.g. ``catboost_v12_mae_train1021_0115``); never parsed."""
    return f"catboost_{family}_train{training_start:%m%d}_{training_end:%m%d}"


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """One registry entry. ``artifact_uri`` is resolved (absolute) once loaded."""

    model_id: str
    family: str
    feature_set: str
    loss: str
    quantile_alpha: float | None
    training_start: dt.date
    training_end: dt.date
    artifact_uri: str
    sha256: str
    feature_count: int
    enabled: bool
    status: str
    holdout_start: dt.date | None = None
    holdout_end: dt.date | None = None
    holdout_metrics: dict[str, Any] = dataclasses.field(default_factory=dict)
    gates: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    failed_gates: list[str] = dataclasses.field(default_factory=list)
    enabled_override_reason: str | None = None
    training_params: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def feature_names(self) -> tuple[str, ...]:
        return feature_names_for(self.feature_set)

    @property
    def holdout_vegas_bias(self) -> float | None:
        """Mean (predicted - line) on the holdout, recorded at training; None when not recorded."""
        v = self.holdout_metrics.get("vegas_bias")
        return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and v == v else None

    def to_dict(self, base_uri: str | None = None) -> dict[str, Any]:
        """JSON-ready dict; the artifact URI is made relative to ``base_uri`` when it lies under it."""
        out = dataclasses.asdict(self)
        for key in ("training_start", "training_end", "holdout_start", "holdout_end"):
            out[key] = out[key].isoformat() if out[key] is not None else None
        if base_uri is not None:
            out["artifact_uri"] = _relative_to(self.artifact_uri, base_uri)
        return out

    @classmethod
    def from_dict(cls, raw: dict[str, Any], base_uri: str | None = None) -> ModelSpec:
        """Parses one entry; unknown or missing fields raise RegistryError naming the model."""
        model_id = raw.get("model_id", "<missing model_id>")
        fields = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(raw) - set(fields))
        if unknown:
            raise RegistryError(f"model {model_id}: unknown registry fields {unknown}; remove them or fix "
                                f"their spelling (known: {sorted(fields)})")
        required = [n for n, f in fields.items()
                    if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
        missing = [n for n in required if n not in raw]
        if missing:
            raise RegistryError(f"model {model_id}: missing registry fields {missing}; add them "
                                f"(retrain with `props train --family FAMILY` to write a complete entry)")
        values = dict(raw)
        try:
            for key in ("training_start", "training_end", "holdout_start", "holdout_end"):
                if values.get(key) is not None:
                    values[key] = dt.date.fromisoformat(values[key])
            values["feature_count"] = int(values["feature_count"])
        except (TypeError, ValueError) as e:
            raise RegistryError(f"model {model_id}: bad date or count ({e}); use ISO dates YYYY-MM-DD "
                                "and an integer feature_count") from e
        if not isinstance(values["enabled"], bool):
            raise RegistryError(f"model {model_id}: enabled must be true or false, got {values['enabled']!r}")
        if base_uri is not None:
            values["artifact_uri"] = resolve_uri(values["artifact_uri"], base_uri)
        return cls(**values)


def _is_absolute(uri: str) -> bool:
    return "://" in uri or uri.startswith("/")


def _dirname(uri: str) -> str:
    return posixpath.dirname(uri) if "://" in uri else _local_dir(uri)


def _local_dir(path: str) -> str:
    import os

    return os.path.dirname(os.path.abspath(path))


def resolve_uri(artifact_uri: str, base_uri: str) -> str:
    """An artifact URI resolved against the folder ``base_uri`` (absolute URIs are returned as is)."""
    if _is_absolute(artifact_uri):
        return artifact_uri
    if "://" in base_uri:
        return posixpath.join(base_uri.rstrip("/"), artifact_uri)
    import os

    return os.path.normpath(os.path.join(base_uri, artifact_uri))


def _relative_to(uri: str, base_uri: str) -> str:
    prefix = base_uri.rstrip("/") + "/"
    return uri[len(prefix):] if uri.startswith(prefix) else uri


def read_bytes(uri: str) -> bytes:
    """Reads a whole file through Beam's FileSystems (local path or gs://)."""
    with FileSystems.open(uri) as f:
        return f.read()


def sha256_of(uri: str) -> str:
    return hashlib.sha256(read_bytes(uri)).hexdigest()


class Registry:
    """The parsed registry: an ordered list of :class:`ModelSpec` plus the URI it came from."""

    def __init__(self, models: Iterable[ModelSpec], uri: str | None = None):
        self.models: list[ModelSpec] = list(models)
        self.uri = uri

    @property
    def base_uri(self) -> str | None:
        return _dirname(self.uri) if self.uri else None

    def to_json(self) -> str:
        """Canonical JSON text (sorted keys, artifact URIs relative to the registry folder when under it)."""
        doc = {"registry_version": REGISTRY_VERSION,
               "models": [m.to_dict(self.base_uri) for m in self.models]}
        return json.dumps(doc, indent=2, sort_keys=True, allow_nan=False) + "\n"

    @property
    def digest(self) -> str:
        """sha256 of the canonical registry content; stamped on every run."""
        return hashlib.sha256(self.to_json().encode()).hexdigest()

    def get(self, model_id: str) -> ModelSpec:
        for m in self.models:
            if m.model_id == model_id:
                return m
        raise KeyError(f"model {model_id} is not in the registry {self.uri}")

    def upsert(self, spec: ModelSpec) -> Registry:
        """A new registry with ``spec`` replacing the entry of the same id (or appended)."""
        models = [spec if m.model_id == spec.model_id else m for m in self.models]
        if all(m.model_id != spec.model_id for m in self.models):
            models.append(spec)
        return Registry(models, self.uri)

    def enabled(self) -> list[ModelSpec]:
        """The models that may be scored: ``enabled: true`` (validation ensures they are promoted)."""
        return [m for m in self.models if m.enabled]

    def eligible_for(self, game_date: dt.date) -> list[ModelSpec]:
        """Enabled models allowed to score ``game_date``: training ended before it (the leakage guard)."""
        return [m for m in self.enabled() if m.training_end < game_date]

    def write(self, uri: str | None = None) -> str:
        """Writes the canonical JSON to ``uri`` (default: where it was loaded from); returns the URI."""
        target = uri or self.uri
        if target is None:
            raise ValueError("Registry.write needs a URI")
        reg = Registry(self.models, target)
        with FileSystems.create(target, mime_type="application/json") as f:
            f.write(reg.to_json().encode())
        return target

    def validate(self, *, check_artifacts: bool = True) -> Registry:
        """Checks every entry; raises RegistryError naming the model and the fix; returns self.

        Checks: duplicate ids; known family; feature set and loss equal to the family table; feature_count
        equal to the feature set's size; only a promoted model with no failed gate may be enabled;
        training window before the holdout window; and, with ``check_artifacts``, that the artifact is
        readable, its sha256 matches, and the CatBoost model inside has the feature set's names in order.
        """
        seen: set[str] = set()
        for m in self.models:
            if m.model_id in seen:
                raise RegistryError(f"model {m.model_id}: duplicate model_id in {self.uri}; keep one entry "
                                    "per model (retrained models get a new id from their training window)")
            seen.add(m.model_id)
            _validate_fields(m)
            if check_artifacts:
                _validate_artifact(m)
        return self


def _validate_fields(m: ModelSpec) -> None:
    fam = FAMILIES.get(m.family)
    if fam is None:
        raise RegistryError(f"model {m.model_id}: unknown family {m.family!r}; use one of "
                            f"{sorted(FAMILIES)} or add the family to models.registry.FAMILIES")
    if m.feature_set not in FEATURE_SETS:
        raise RegistryError(f"model {m.model_id}: unknown feature_set {m.feature_set!r}; use one of "
                            f"{sorted(FEATURE_SETS)}")
    if m.feature_set != fam.feature_set:
        raise RegistryError(f"model {m.model_id}: feature_set {m.feature_set!r} does not match family "
                            f"{m.family} ({fam.feature_set!r}); fix the entry or the family")
    if m.loss != fam.loss or m.quantile_alpha != fam.quantile_alpha:
        raise RegistryError(f"model {m.model_id}: loss {m.loss!r} (alpha {m.quantile_alpha}) does not match "
                            f"family {m.family} ({fam.loss!r}, alpha {fam.quantile_alpha}); fix the entry")
    expected = len(FEATURE_SETS[m.feature_set])
    if m.feature_count != expected:
        raise RegistryError(f"model {m.model_id}: feature_count {m.feature_count} but feature set "
                            f"{m.feature_set} has {expected} features; retrain or fix feature_set")
    failed = failed_gates_of(m)
    if m.enabled and failed:
        raise RegistryError(f"model {m.model_id}: enabled but failed its promotion gates {failed}; a model "
                            "that fails a gate is registered disabled (domain.md section 9): set "
                            "\"enabled\": false, \"status\": \"failed_gates\", or retrain it until every "
                            "gate passes (`props train --family FAMILY`)")
    if m.status not in STATUSES:
        raise RegistryError(f"model {m.model_id}: unknown status {m.status!r}; use one of {list(STATUSES)}")
    if m.enabled and m.status not in ENABLED_STATUSES:
        raise RegistryError(f"model {m.model_id}: enabled with status {m.status!r}; only a promoted model "
                            "may be enabled: set \"enabled\": false, or retrain it until every gate passes "
                            "(`props train --family FAMILY`)")
    if failed and m.status == "promoted":
        raise RegistryError(f"model {m.model_id}: status promoted but failed gates {failed}; set \"status\": "
                            "\"failed_gates\" and \"enabled\": false, or retrain it")
    if m.training_start > m.training_end:
        raise RegistryError(f"model {m.model_id}: training_start after training_end; fix the window")
    if m.holdout_start is not None and m.holdout_start <= m.training_end:
        raise RegistryError(f"model {m.model_id}: holdout starts {m.holdout_start} on or before the training "
                            f"end {m.training_end}; the holdout must come after the training window")


def failed_gates_of(m: ModelSpec) -> list[str]:
    """The gates a model failed: its ``failed_gates`` plus any recorded gate result with ``passed: false``
    (in that order, no duplicates)."""
    names = list(m.failed_gates)
    for g in m.gates:
        name = g.get("gate") if isinstance(g, dict) else None
        if isinstance(g, dict) and g.get("passed") is False and name not in names:
            names.append(str(name))
    return names


def _validate_artifact(m: ModelSpec) -> None:
    from catboost import CatBoostRegressor  # deferred: launch-time only

    try:
        blob = read_bytes(m.artifact_uri)
    except Exception as e:  # noqa: BLE001 - any I/O failure means the same fix
        raise RegistryError(f"model {m.model_id}: artifact {m.artifact_uri} is missing or unreadable "
                            f"({type(e).__name__}: {e}); fix artifact_uri or retrain the model") from e
    digest = hashlib.sha256(blob).hexdigest()
    if digest != m.sha256:
        raise RegistryError(f"model {m.model_id}: sha256 mismatch for {m.artifact_uri} (registry {m.sha256}, "
                            f"file {digest}); restore the registered artifact or re-register it with "
                            "`props train`")
    model = CatBoostRegressor()
    try:
        model.load_model(blob=blob)
    except Exception as e:  # noqa: BLE001
        raise RegistryError(f"model {m.model_id}: artifact {m.artifact_uri} is not a CatBoost model ({e}); "
                            "retrain the model") from e
    names = tuple(model.feature_names_ or ())
    if len(names) != m.feature_count:
        raise RegistryError(f"model {m.model_id}: artifact has {len(names)} features, registry says "
                            f"{m.feature_count}; retrain the model or fix the entry")
    if names != feature_names_for(m.feature_set):
        raise RegistryError(f"model {m.model_id}: artifact feature names differ from feature set "
                            f"{m.feature_set} (catalogue order); retrain the model with that feature set")


def load_registry(uri: str) -> Registry:
    """Reads and parses a registry file (local or gs://); call ``.validate()`` before serving it."""
    try:
        text = read_bytes(uri).decode()
    except Exception as e:  # noqa: BLE001
        raise RegistryError(f"registry {uri} is missing or unreadable ({e}); pass --registry with an "
                            "existing file (the sample: models/sample/registry.json)") from e
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        raise RegistryError(f"registry {uri} is not valid JSON ({e})") from e
    if not isinstance(doc, dict) or doc.get("registry_version") != REGISTRY_VERSION:
        raise RegistryError(f"registry {uri}: expected {{\"registry_version\": {REGISTRY_VERSION}, "
                            "\"models\": [...]}")
    models = doc.get("models")
    if not isinstance(models, list):
        raise RegistryError(f"registry {uri}: \"models\" must be a list of model entries")
    base = _dirname(uri)
    return Registry([ModelSpec.from_dict(raw, base) for raw in models], uri)


def empty_registry(uri: str) -> Registry:
    return Registry([], uri)

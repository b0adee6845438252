"""The old Cloud Run system's data, mapped to ours in one place (issue #11; facts in legacy.md).

Pure mapping functions only, so every reader (the registry import today; the ``bigquery-legacy://``
table reader later) shares them.

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
from collections.abc import Mapping
from typing import Any

from models.registry import FAMILIES, ModelSpec
from pipeline.schemas import FEATURE_SETS, feature_names_for

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

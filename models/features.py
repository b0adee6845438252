"""Model inputs: the float32 feature matrix of a feature set, the same at training and at serving.

Columns follow ``pipeline.schemas.feature_names_for(feature_set)`` (catalogue order restricted to the
set). Missing values are NaN (CatBoost handles them natively); nothing is filled with defaults, so
training and serving see identical inputs (domain.md section 5: no train/serve skew).

    X = feature_matrix(frame, "v12")                       # training: a DataFrame with named columns
    x = feature_vector(row.features, "v12")                # serving: a FeatureRow's 55 values
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from pipeline.schemas import FEATURE_NAMES, FEATURE_SETS, feature_names_for


def feature_matrix(frame: pd.DataFrame, feature_set: str) -> np.ndarray:
    """(n_rows, n_features) float32 matrix of a feature set from named columns; None/NA become NaN."""
    names = list(feature_names_for(feature_set))
    missing = [n for n in names if n not in frame.columns]
    if missing:
        raise ValueError(f"feature_matrix: frame lacks feature columns {missing[:5]} "
                         f"(+{max(0, len(missing) - 5)} more) needed by feature set {feature_set}")
    cols = frame[names].apply(pd.to_numeric, errors="coerce")
    return np.ascontiguousarray(cols.to_numpy(dtype=np.float32, na_value=np.nan))


def feature_vector(values: Sequence[float | None], feature_set: str) -> np.ndarray:
    """float32 vector of a feature set from the 55 catalogue values (None = missing -> NaN)."""
    if len(values) != len(FEATURE_NAMES):
        raise ValueError(f"feature_vector: expected {len(FEATURE_NAMES)} catalogue values, got {len(values)}")
    idx = FEATURE_SETS[feature_set]
    return np.array([np.nan if values[i] is None else values[i] for i in idx], dtype=np.float32)

"""Model inputs: the float32 feature matrix of a feature set, the same at training and at serving.

Columns follow ``pipeline.schemas.feature_names_for(feature_set)`` (catalogue order restricted to the
set). Missing values are NaN (CatBoost handles them natively); nothing is filled with defaults, so
training and serving see identical inputs (domain.md section 5: no train/serve skew).

    X = feature_matrix(frame, "v12")                       # training: a DataFrame with named columns

Serving builds the same columns per player-game with ``pipeline.domain.scoring.build_feature_vector``,
which also sets the market features from the live line book.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipeline.schemas import feature_names_for


def feature_matrix(frame: pd.DataFrame, feature_set: str) -> np.ndarray:
    """(n_rows, n_features) float32 matrix of a feature set from named columns; None/NA become NaN."""
    names = list(feature_names_for(feature_set))
    missing = [n for n in names if n not in frame.columns]
    if missing:
        raise ValueError(f"feature_matrix: frame lacks feature columns {missing[:5]} "
                         f"(+{max(0, len(missing) - 5)} more) needed by feature set {feature_set}")
    cols = frame[names].apply(pd.to_numeric, errors="coerce")
    return np.ascontiguousarray(cols.to_numpy(dtype=np.float32, na_value=np.nan))

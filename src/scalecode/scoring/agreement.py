"""Agreement between coders: Krippendorff's alpha (nominal, ordinal, interval) and Cohen's kappa.

``krippendorff_alpha`` takes any number of coders (rows) over units (columns) with missing values,
and is computed by the ``krippendorff`` package. The two-coder forms below (gold against a backend)
are what the comparison reports; their vectorised bootstrap versions live in scalecode.scoring.metrics
and are tested against these.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import krippendorff
import numpy as np
from sklearn.metrics import cohen_kappa_score

Level = Literal["nominal", "ordinal", "interval", "ratio"]

__all__ = ["Level", "cohen_kappa_score", "krippendorff_alpha", "krippendorff_alpha_score"]


def krippendorff_alpha(
    reliability_data: np.ndarray | Sequence[Sequence[float]],
    *,
    level: Level = "nominal",
    value_domain: Sequence[float] | None = None,
) -> float:
    """Krippendorff's alpha for coders (rows) by units (columns); NaN marks a missing code.

    Values must be numbers: encode labels as their codebook index (for ordinal data, in order).
    """
    data = np.asarray(reliability_data, dtype=np.float64)
    if data.ndim != 2 or data.shape[0] < 2:
        raise ValueError("reliability_data must be a 2-D array with at least two coders (rows)")
    return float(
        krippendorff.alpha(reliability_data=data, level_of_measurement=level, value_domain=value_domain)
    )


def krippendorff_alpha_score(
    y_true: np.ndarray | Sequence[float],
    y_pred: np.ndarray | Sequence[float],
    *,
    level: Level = "nominal",
    value_domain: Sequence[float] | None = None,
) -> float:
    """Krippendorff's alpha between two coders, gold and prediction, each coding every unit.

    At the interval level the closed form for two coders is used: the observed disagreement is the
    mean squared difference, the expected one twice the variance of the pooled 2n values (N - 1 in
    the denominator). The general algorithm builds a values x values coincidence matrix per unit,
    which continuous scores with thousands of distinct values cannot afford.
    """
    a = np.asarray(y_true, dtype=np.float64)
    b = np.asarray(y_pred, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError("y_true and y_pred must be 1-D and of the same length")
    if level == "interval":
        pooled = np.concatenate([a, b])
        # One value in all: undefined. Decided on the values, as a variance of a constant decimal
        # (0.1 throughout) need not come out exactly 0.
        if len(a) < 2 or np.ptp(pooled) == 0:
            return float("nan")
        expected = 2 * np.sum((pooled - pooled.mean()) ** 2) / (len(pooled) - 1)
        return float(1 - np.mean((a - b) ** 2) / expected)
    if len(np.unique(np.concatenate([a, b]))) < 2:
        return float("nan")  # one code in all: no disagreement is expected, alpha is undefined
    return krippendorff_alpha(np.vstack([a, b]), level=level, value_domain=value_domain)

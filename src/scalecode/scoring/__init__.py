"""Common scoring: metrics with scikit-learn's names, agreement, bootstrap intervals, comparisons.

Scores are computed from stored predictions, so predicting (the expensive, possibly paid step)
happens once and any report can be rebuilt.

The names below are imported on first use: the plugin manager needs only ``scoring.base``, and every
Ray worker that codes documents imports it, so scikit-learn (two seconds of a small machine's CPU per
worker) is loaded only where something is scored.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# The function shares its module's name, and importing a submodule sets the package's attribute of
# that name: bound lazily, ``bootstrap`` here was the module once anything had imported
# ``scalecode.scoring.bootstrap`` (the runner, the tables). Bound now, the import is done and the
# function stays; the module needs only numpy.
from scalecode.scoring.bootstrap import Estimate, bootstrap

if TYPE_CHECKING:
    from scalecode.scoring.agreement import cohen_kappa_score, krippendorff_alpha, krippendorff_alpha_score
    from scalecode.scoring.base import Metric, Resamples
    from scalecode.scoring.evaluate import BackendScores, encode, metrics_for, score_predictions
    from scalecode.scoring.metrics import BUILTIN_METRICS
    from scalecode.scoring.paired import paired_differences

_MODULES = {
    "BUILTIN_METRICS": "metrics",
    "BackendScores": "evaluate",
    "Metric": "base",
    "Resamples": "base",
    "cohen_kappa_score": "agreement",
    "encode": "evaluate",
    "krippendorff_alpha": "agreement",
    "krippendorff_alpha_score": "agreement",
    "metrics_for": "evaluate",
    "paired_differences": "paired",
    "score_predictions": "evaluate",
}

__all__ = [
    "BUILTIN_METRICS",
    "BackendScores",
    "Estimate",
    "Metric",
    "Resamples",
    "bootstrap",
    "cohen_kappa_score",
    "encode",
    "krippendorff_alpha",
    "krippendorff_alpha_score",
    "metrics_for",
    "paired_differences",
    "score_predictions",
]


def __getattr__(name: str) -> Any:
    if name not in _MODULES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_MODULES[name]}"), name)
    globals()[name] = value  # looked up once
    return value

"""Common scoring: metrics with scikit-learn's names, agreement, bootstrap intervals, comparisons.

Scores are computed from stored predictions, so predicting (the expensive, possibly paid step)
happens once and any report can be rebuilt.
"""

from scalecode.scoring.agreement import cohen_kappa_score, krippendorff_alpha, krippendorff_alpha_score
from scalecode.scoring.base import Metric, Resamples
from scalecode.scoring.bootstrap import Estimate, bootstrap
from scalecode.scoring.evaluate import BackendScores, encode, metrics_for, score_predictions
from scalecode.scoring.metrics import BUILTIN_METRICS

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
    "score_predictions",
]

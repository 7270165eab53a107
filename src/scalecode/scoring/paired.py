"""Paired differences between backends: is one better than another on the same gold documents?

Two backends' intervals can overlap while one is better on almost every resample: their errors are
correlated, because both coded the same documents. The paired bootstrap scores both backends on the
same resampled documents and takes the difference on each, so the interval is the difference's own.
Only the documents both backends coded are used, so a backend that failed on hard documents is not
compared on easier ones.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from scalecode.backend import GoldSet
from scalecode.predictions import code_column
from scalecode.scoring.base import Metric
from scalecode.scoring.bootstrap import (
    Estimate,
    bootstrap_draws,
    group_codes,
    percentile_interval,
    undefined_share,
)
from scalecode.scoring.evaluate import encode


@dataclass(frozen=True)
class PairedComparison:
    """Every other backend minus ``baseline``: backend -> metric -> difference with its interval."""

    baseline: str
    differences: dict[str, dict[str, Estimate]]

    def to_dict(self) -> dict[str, Any]:
        return {
            "baseline": self.baseline,
            "backends": {
                name: {metric: e.to_dict() for metric, e in estimates.items()}
                for name, estimates in self.differences.items()
            },
        }


def _coded(frame: pl.DataFrame, column: str) -> dict[str, Any]:
    """Document id -> code, for the rows a backend coded (no error)."""
    if "error" in frame.columns:
        frame = frame.filter(pl.col("error").is_null())
    frame = frame.filter(pl.col(column).is_not_null())
    return dict(zip(frame["id"].to_list(), frame[column].to_list(), strict=True))


def paired_differences(
    predictions: Mapping[str, pl.DataFrame],
    gold: GoldSet,
    metrics: Sequence[Metric],
    *,
    baseline: str,
    n_boot: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> PairedComparison:
    """Every other backend minus ``baseline``, metric by metric, on the documents both coded.

    ``predictions`` maps backend names to their prediction rows (``id``, the code column, ``error``).
    Each estimate is the difference of the two backends' figures, its percentile interval over
    resamples drawn once and shared by both, and the number of documents both coded.
    """
    task = gold.task
    column = code_column(task)
    row_of = {doc: row for row, doc in enumerate(gold.ids)}
    reference = _coded(predictions[baseline], column)
    differences: dict[str, dict[str, Estimate]] = {}
    for name, frame in predictions.items():
        if name == baseline:
            continue
        codes = _coded(frame, column)
        # In id order, as every score is computed: the figures do not depend on a file's order.
        common = sorted(doc for doc in codes.keys() & reference.keys() if doc in row_of)
        y_true = encode(task, [gold.targets[row_of[doc]] for doc in common])
        ours = encode(task, [codes[doc] for doc in common])
        theirs = encode(task, [reference[doc] for doc in common])
        groups = group_codes(None if gold.groups is None else [gold.groups[row_of[doc]] for doc in common])
        draws_ours = bootstrap_draws(metrics, y_true, ours, n_boot=n_boot, seed=seed, groups=groups)
        draws_theirs = bootstrap_draws(metrics, y_true, theirs, n_boot=n_boot, seed=seed, groups=groups)
        differences[name] = {}
        for metric in metrics:
            if not common:
                nan = float("nan")
                differences[name][metric.name] = Estimate(nan, nan, nan, 0)
                continue
            value = float(metric.func(y_true, ours)) - float(metric.func(y_true, theirs))
            both = draws_ours[metric.name] - draws_theirs[metric.name]
            low, high = percentile_interval(both, confidence)
            differences[name][metric.name] = Estimate(value, low, high, len(common), undefined_share(both))
    return PairedComparison(baseline, differences)


def supported(estimate: Estimate) -> bool:
    """Whether the interval excludes zero: a difference the test documents support."""
    return bool(np.isfinite(estimate.ci_low) and (estimate.ci_low > 0 or estimate.ci_high < 0))

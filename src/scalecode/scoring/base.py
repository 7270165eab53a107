"""What a metric is, and how codes are encoded for metric functions.

Metric functions follow scikit-learn: ``func(y_true, y_pred) -> float`` where both are encoded the
same way for a task type:

- classification: integer label indices (codebook order), shape (n,)
- multilabel: a 0/1 matrix, shape (n, labels), columns in codebook order
- regression: floats, shape (n,)

A metric may also give ``batched(y_true, y_pred, sample) -> array(B)``, computing the statistic for
B bootstrap resamples at once; metrics without it are bootstrapped by calling ``func`` per resample.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from scalecode.task import TaskType


@dataclass(frozen=True)
class Resamples:
    """B bootstrap resamples of n documents: ``counts[b, i]`` is how often resample b drew document i.

    A resample of whole groups (a cluster bootstrap, where the gold names a group column) draws as many
    groups as there are, so its number of documents varies: ``counts[b].sum()`` is resample b's size.
    """

    counts: np.ndarray  # (B, n) float
    grouped: bool = False  # resamples of whole groups, whose sizes differ

    @property
    def size(self) -> int:
        return int(self.counts.shape[0])

    @property
    def indices(self) -> np.ndarray:
        """(B, n) int: each resample's documents as a row of indices, where every resample draws as
        many documents (resamples of documents, not of groups); in index order."""
        if self.grouped:
            raise ValueError(
                "resamples of whole groups differ in size and have no (B, n) indices: use rows() or counts"
            )
        return np.array(list(self.rows()), dtype=np.int64).reshape(self.size, -1)

    def rows(self) -> Iterator[np.ndarray]:
        """Each resample's documents as indices, a document as often as it was drawn (in index order)."""
        positions = np.arange(self.counts.shape[1])
        for drawn in self.counts:
            yield np.repeat(positions, drawn.astype(np.int64))


MetricFunction = Callable[[np.ndarray, np.ndarray], float]
BatchedMetric = Callable[[np.ndarray, np.ndarray, Resamples], np.ndarray]


@dataclass(frozen=True)
class Metric:
    """A scoring function and what it applies to.

    Attributes:
        name: the key in metrics.json and the column in the comparison table.
        func: ``func(y_true, y_pred) -> float`` on encoded codes (see module docstring).
        task_types: the task types it applies to.
        greater_is_better: False for losses (MSE, Hamming loss); used to rank backends.
        description: one line for the report.
        batched: optional vectorised version over bootstrap resamples.
        ordinal_only: applies only when the codebook's labels are ordered.
    """

    name: str
    func: MetricFunction
    task_types: frozenset[TaskType]
    greater_is_better: bool = True
    description: str = ""
    batched: BatchedMetric | None = None
    ordinal_only: bool = False

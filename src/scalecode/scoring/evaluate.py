"""Scoring stored predictions against gold: one interface for every backend and task type."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl
from sklearn import metrics as skm

from scalecode.backend import GoldSet
from scalecode.errors import describe_examples
from scalecode.predictions import code_column
from scalecode.scoring.base import Metric
from scalecode.scoring.bootstrap import Estimate, bootstrap, group_codes
from scalecode.task import Task, TaskType


@dataclass
class BackendScores:
    """How one backend did on the evaluation documents."""

    backend: str
    n_gold: int  # evaluation documents
    n_scored: int  # of which the backend coded
    n_errors: int  # of which it returned an error row (or none at all)
    metrics: dict[str, Estimate]
    per_label: dict[str, dict[str, float]] = field(default_factory=dict)
    confusion: dict[str, Any] | None = None
    error_examples: list[dict[str, str]] = field(default_factory=list)
    draws: dict[str, np.ndarray] = field(default_factory=dict, repr=False)  # bootstrap values, not saved

    @property
    def coverage(self) -> float:
        return self.n_scored / self.n_gold if self.n_gold else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "backend": self.backend,
            "n_gold": self.n_gold,
            "n_scored": self.n_scored,
            "n_errors": self.n_errors,
            "coverage": self.coverage,
            "metrics": {name: est.to_dict() for name, est in self.metrics.items()},
            "per_label": self.per_label,
            "confusion": self.confusion,
            "error_examples": self.error_examples,
        }


def metrics_for(task: Task, available: Sequence[Metric], names: Sequence[str] | None = None) -> list[Metric]:
    """The metrics that apply to a task, in registration order, optionally restricted to ``names``."""
    applicable = [m for m in available if task.type in m.task_types and (task.ordinal or not m.ordinal_only)]
    if names is None:
        return applicable
    by_name = {m.name: m for m in applicable}
    unknown = [n for n in names if n not in by_name]
    if unknown:
        raise ValueError(
            f"unknown metric(s) for a {task.type} task: {', '.join(unknown)}; available: {', '.join(by_name)}"
        )
    return [by_name[n] for n in names]


def encode(task: Task, values: Sequence[Any]) -> np.ndarray:
    """Encode codes for metric functions: label indices, a 0/1 label matrix, or floats."""
    names = task.label_names
    if task.type is TaskType.CLASSIFICATION:
        index = {name: i for i, name in enumerate(names)}
        return np.array([index[v] for v in values], dtype=np.int64)
    if task.type is TaskType.MULTILABEL:
        index = {name: i for i, name in enumerate(names)}
        matrix = np.zeros((len(values), len(names)), dtype=np.int8)
        for row, labels in enumerate(values):
            for label in labels:
                matrix[row, index[label]] = 1
        return matrix
    return np.asarray(values, dtype=np.float64)


def score_predictions(
    predictions: pl.DataFrame,
    gold: GoldSet,
    metrics: Sequence[Metric],
    *,
    backend: str,
    n_boot: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> BackendScores:
    """Score one backend's predictions (rows with ``id``, the code column and ``error``) against gold.

    A gold document without a prediction row counts as an error ("no prediction"), never as absent.
    """
    task = gold.task
    column = code_column(task)
    if predictions["id"].is_duplicated().any():
        dupes = predictions.filter(pl.col("id").is_duplicated())["id"].unique().sort().to_list()
        raise ValueError(f"backend {backend!r} has several predictions for ids {describe_examples(dupes)}")
    if "error" not in predictions.columns:
        predictions = predictions.with_columns(pl.lit(None, pl.String).alias("error"))
    # Documents are taken in id order, so the figures (and the bootstrap draws) depend on which
    # documents were scored and the seed, never on the order of a file.
    gold_frame = pl.DataFrame({"id": gold.ids, "_row": np.arange(len(gold))})
    joined = gold_frame.join(predictions.select("id", column, "error"), on="id", how="left").sort("id")
    joined = joined.with_columns(
        pl.when(pl.col(column).is_null() & pl.col("error").is_null())
        .then(pl.lit("no prediction"))
        .otherwise(pl.col("error"))
        .alias("error")
    )
    ok = joined["error"].is_null().to_numpy()
    rows = joined["_row"].to_numpy()[ok]
    y_true = encode(task, [gold.targets[i] for i in rows])
    y_pred = encode(task, joined[column].filter(pl.Series(ok)).to_list())
    draws: dict[str, np.ndarray] = {}
    # Where the gold names groups (an editorial's sentences), resamples draw whole groups.
    groups = group_codes(None if gold.groups is None else [gold.groups[i] for i in rows])
    estimates = bootstrap(
        metrics, y_true, y_pred, n_boot=n_boot, confidence=confidence, seed=seed, draws=draws, groups=groups
    )
    failed = joined.filter(pl.col("error").is_not_null()).select("id", "error").head(10)
    scores = BackendScores(
        backend=backend,
        n_gold=len(gold),
        n_scored=int(ok.sum()),
        n_errors=int((~ok).sum()),
        metrics=estimates,
        error_examples=failed.to_dicts(),
        draws=draws,
    )
    if len(y_true) and task.type is not TaskType.REGRESSION:
        scores.per_label = per_label_report(task, y_true, y_pred)
    if len(y_true) and task.type is TaskType.CLASSIFICATION:
        matrix = skm.confusion_matrix(y_true, y_pred, labels=list(range(len(task.labels))))
        scores.confusion = {"labels": task.label_names, "matrix": matrix.tolist()}
    return scores


def per_label_report(task: Task, y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, dict[str, float]]:
    """Precision, recall, F1 and gold support for every label of the codebook."""
    labels = list(range(len(task.labels))) if task.type is TaskType.CLASSIFICATION else None
    precision, recall, f1, support = skm.precision_recall_fscore_support(
        y_true, y_pred, labels=labels, zero_division=0
    )
    return {
        name: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
        for name, p, r, f, s in zip(task.label_names, precision, recall, f1, support, strict=True)
    }

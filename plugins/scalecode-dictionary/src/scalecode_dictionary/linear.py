"""Linear models from dictionary features to a task's codes, stored as JSON and applied with numpy.

scikit-learn fits them; what is kept is only the numbers (feature names, standardisation,
coefficients, intercepts, output names), so trained state is readable, diffable and never
unpickled. One model covers the three task types:

- classification: softmax over one linear output per label (a label absent from the training
  documents gets no output and probability 0);
- multi-label: an independent sigmoid per label, present above 0.5;
- regression: one identity output.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from scalecode import GoldSet, Predictions, TaskType

SOFTMAX, SIGMOID, IDENTITY = "softmax", "sigmoid", "identity"


@dataclass
class LinearModel:
    """Outputs ``intercept + ((x - mean) / scale) @ coef`` for each named output, then the link."""

    link: str
    features: list[str]
    mean: list[float]
    scale: list[float]
    outputs: list[str]  # label names, or ["score"]
    coef: list[list[float]]  # outputs x features
    intercept: list[float]
    info: dict[str, Any]

    def decision(self, x: np.ndarray) -> np.ndarray:
        z = (x - np.asarray(self.mean)) / np.asarray(self.scale)
        return np.asarray(z @ np.asarray(self.coef).T + np.asarray(self.intercept))

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), indent=2) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: Path) -> LinearModel:
        return cls(**json.loads(path.read_text(encoding="utf-8")))


def to_predictions(decision: np.ndarray, outputs: list[str], link: str, labels: list[str]) -> Predictions:
    """Turn decision values (documents x outputs) into labels, label sets or scores."""
    if link == IDENTITY:
        return Predictions(score=decision[:, 0])
    if link == SOFTMAX:
        shifted = decision - decision.max(axis=1, keepdims=True)
        exp = np.exp(shifted)
        probs = exp / exp.sum(axis=1, keepdims=True)
        full = {label: np.zeros(len(decision)) for label in labels}
        for j, name in enumerate(outputs):
            full[name] = probs[:, j]
        best = probs.argmax(axis=1)
        return Predictions(
            label=[outputs[i] for i in best],
            confidence=probs.max(axis=1),
            probabilities=full,
        )
    probs = 1.0 / (1.0 + np.exp(-decision))
    full = {label: np.zeros(len(decision)) for label in labels}
    for j, name in enumerate(outputs):
        full[name] = probs[:, j]
    present = probs >= 0.5
    chosen = [[outputs[j] for j in np.flatnonzero(row)] for row in present]
    # Confidence of a label set: the probability of the least certain decision in it.
    confidence = np.where(present, probs, 1.0 - probs).min(axis=1)
    return Predictions(labels=chosen, confidence=confidence, probabilities=full)


def _standardise(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[scale == 0] = 1.0
    return mean, scale


def fit_calibration(x: np.ndarray, features: list[str], gold: GoldSet, seed: int) -> LinearModel:
    """Fit the map from dictionary features to the gold codes (L2-regularised, standardised)."""
    from sklearn.linear_model import LogisticRegression, RidgeCV

    task = gold.task
    mean, scale = _standardise(x)
    z = (x - mean) / scale
    info: dict[str, Any] = {"n_train": len(gold)}
    if task.type is TaskType.REGRESSION:
        ridge = RidgeCV(alphas=np.logspace(-3, 3, 13)).fit(z, gold.scores())
        info["alpha"] = float(ridge.alpha_)
        return LinearModel(
            IDENTITY,
            features,
            mean.tolist(),
            scale.tolist(),
            ["score"],
            [ridge.coef_.tolist()],
            [float(ridge.intercept_)],
            info,
        )
    if task.type is TaskType.CLASSIFICATION:
        y = np.asarray(gold.targets)
        classes = [c for c in task.label_names if c in set(y)]
        if len(classes) == 1:
            return _constant(classes, features, mean, scale, info)
        model = LogisticRegression(C=1.0, max_iter=2000, random_state=seed).fit(z, y)
        names = [str(c) for c in model.classes_]
        coef, intercept = model.coef_, model.intercept_
        if len(names) == 2:  # scikit-learn keeps one row for the second class; softmax needs both
            coef = np.vstack([np.zeros_like(coef[0]), coef[0]])
            intercept = np.array([0.0, intercept[0]])
        return LinearModel(
            SOFTMAX, features, mean.tolist(), scale.tolist(), names, coef.tolist(), intercept.tolist(), info
        )
    indicator = gold.label_indicator()
    coefs, intercepts = [], []
    for j in range(indicator.shape[1]):
        column = indicator[:, j]
        if column.min() == column.max():  # the label is always or never present in training
            prevalence = np.clip(column.mean(), 1e-3, 1 - 1e-3)
            coefs.append([0.0] * len(features))
            intercepts.append(float(np.log(prevalence / (1 - prevalence))))
            continue
        model = LogisticRegression(C=1.0, max_iter=2000, random_state=seed).fit(z, column)
        coefs.append(model.coef_[0].tolist())
        intercepts.append(float(model.intercept_[0]))
    return LinearModel(
        SIGMOID, features, mean.tolist(), scale.tolist(), task.label_names, coefs, intercepts, info
    )


def _constant(
    classes: list[str], features: list[str], mean: np.ndarray, scale: np.ndarray, info: dict[str, Any]
) -> LinearModel:
    info["note"] = "one label in the training documents: it is always predicted"
    return LinearModel(
        SOFTMAX, features, mean.tolist(), scale.tolist(), classes, [[0.0] * len(features)], [0.0], info
    )

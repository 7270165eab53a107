"""Learning curves: how a trainable coder's scores grow with the number of gold training documents.

At each training size, each repeat trains on a different seeded sample of the training split and is
scored on the same test split. A point's figure is the mean over repeats; its interval pools the
bootstrap draws of all repeats, so it reflects both which test documents were drawn and which
training documents were.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from scalecode.errors import ScalecodeError
from scalecode.scoring import BackendScores, Metric
from scalecode.scoring.bootstrap import percentile_interval, undefined_share


@dataclass
class CurveRun:
    """One training run of a learning curve."""

    size: int
    repeat: int
    seed: int
    scores: BackendScores
    trainable_parameters: int | None = None
    labels: Mapping[str, int] | None = None  # documents of each label in its sample (not for scores)


@dataclass
class CurveFailure:
    """A training run of a learning curve that failed (to train, or to code the test split)."""

    size: int
    repeat: int
    seed: int
    error: str  # the exception's type and message
    stage: str = "training"  # or "coding the test split"


# Seeds are unsigned 32-bit integers for numpy and scikit-learn.
_SEEDS = 2**32


def curve_seed(seed: int, size: int, repeat: int) -> int:
    """The seed of one learning-curve run: its sample and its training.

    ``seed + 1009 * repeat + size``, as earlier versions drew them, wrapped into numpy's range (0 to
    2**32 - 1) so that a job seed near the top of it does not overflow at large sizes and repeats.
    """
    return (seed + 1009 * repeat + size) % _SEEDS


def _size_count(size: float, n_train: int) -> int:
    if isinstance(size, float) and size <= 1:
        # A fraction of the training split, 1.0 the whole of it: read as a count, 1.0 would train on
        # one document. A job file's sizes are all floats (1 reads as 1.0): no one trains on one.
        return round(size * n_train)
    return int(size)


class CurveSizeWarning(UserWarning):
    """A learning-curve size above the training split, trained at the whole split instead."""


def curve_sizes(sizes: Sequence[float], n_train: int) -> list[int]:
    """Training sizes as document counts: a float in (0, 1] is a fraction of the split (1.0 all of
    it), an int or a float above 1 a count.

    A size that comes to no document is an error: that point would be left out, and a curve of such
    sizes alone would be no curve at all. A count above the split trains on the whole split, as a
    large count is a way to say "and all of it" and one job file may serve gold sets of several
    sizes; a ``CurveSizeWarning`` says so, as the curve then has no point at the size asked for.
    """
    counts = set()
    for size in sizes:
        if not math.isfinite(size):
            raise ScalecodeError(
                f"evaluation.learning_curve.sizes: {size} is not a finite number; use a fraction of the "
                "training split up to 1, or a count"
            )
        count = _size_count(size, n_train)
        if count < 1:
            raise ScalecodeError(
                f"evaluation.learning_curve.sizes: {size:g} of the {n_train} training documents is "
                f"{size * n_train:.2g} documents, which rounds to none; use a larger fraction or a count"
            )
        if count > n_train:
            warnings.warn(
                CurveSizeWarning(
                    f"evaluation.learning_curve.sizes: {size:g} is more than the {n_train} training "
                    f"documents; that point of the learning curve trains on all {n_train}"
                ),
                stacklevel=2,
            )
        counts.add(min(count, n_train))
    return sorted(counts)


def summarise(
    runs: Sequence[CurveRun],
    metrics: Sequence[Metric],
    confidence: float,
    failures: Sequence[CurveFailure] = (),
) -> list[dict[str, Any]]:
    """One entry per training size: mean figure over repeats with a pooled interval, every run, and
    the runs that failed (``failed``). ``repeats`` counts the runs that were scored: a size whose
    every run failed has none, and figures that are NaN."""
    points = []
    for size in sorted({r.size for r in runs} | {f.size for f in failures}):
        at_size = [r for r in runs if r.size == size]
        summary: dict[str, Any] = {}
        for metric in metrics:
            values = [r.scores.metrics[metric.name].value for r in at_size if metric.name in r.scores.metrics]
            # A repeat whose figure is undefined (NaN) is left out of the mean; say how many are in it.
            finite = [v for v in values if np.isfinite(v)]
            pooled = [r.scores.draws[metric.name] for r in at_size if metric.name in r.scores.draws]
            draws = np.concatenate(pooled) if pooled else np.array([])
            low, high = percentile_interval(draws, confidence)
            summary[metric.name] = {
                "value": float(np.mean(finite)) if finite else float("nan"),
                "ci_low": low,
                "ci_high": high,
                "undefined_share": undefined_share(draws),  # of the pooled resamples, as in metrics.json
                # Repeats may score different counts (a backend's errors): the fewest is quoted.
                "n": min((r.scores.n_scored for r in at_size), default=0),
                "repeats_scored": len(finite),
            }
        points.append(
            {
                "size": size,
                "repeats": len(at_size),
                "metrics": summary,
                "runs": [
                    {
                        "repeat": r.repeat,
                        "seed": r.seed,
                        "trainable_parameters": r.trainable_parameters,
                        "labels": None if r.labels is None else dict(r.labels),
                        "metrics": {name: est.to_dict() for name, est in r.scores.metrics.items()},
                    }
                    for r in at_size
                ],
                "failed": [
                    {"repeat": f.repeat, "seed": f.seed, "stage": f.stage, "error": f.error}
                    for f in sorted(failures, key=lambda f: f.repeat)
                    if f.size == size
                ],
            }
        )
    return points


def curve_markdown(
    backend: str, points: Sequence[dict[str, Any]], metrics: Sequence[Metric], *, intervals: bool = True
) -> str:
    """A table: training size in rows, metrics in columns, each figure with its interval (the figure
    alone when ``intervals`` is False: no bootstrap resamples were drawn)."""
    from scalecode.scoring.table import (
        UNDEFINED_MARK,
        UNDEFINED_SHARE_MARKED,
        format_estimate,
        markdown_cell,
        undefined_note,
    )

    lines = [
        f"| {markdown_cell(backend)}: training documents | repeats | n | "
        + " | ".join(m.name for m in metrics)
        + " |",
        "|---:|---:|---:|" + "---:|" * len(metrics),
    ]
    marked = False
    for point in points:
        cells = []
        for m in metrics:
            figure = point["metrics"][m.name]
            cell = format_estimate(figure["value"], figure["ci_low"], figure["ci_high"], interval=intervals)
            if intervals and figure.get("undefined_share", 0.0) > UNDEFINED_SHARE_MARKED:
                cell += f" {UNDEFINED_MARK}"
                marked = True
            scored = figure.get("repeats_scored", point["repeats"])
            if scored != point["repeats"]:
                cell += f" ({scored} of {point['repeats']} repeats)"
            cells.append(cell)
        failed = point.get("failed", [])
        repeats = f"{point['repeats']}" + (f" ({len(failed)} failed)" if failed else "")
        # The test documents scored, the fewest of any repeat: one that coded half looks no different.
        n = min((f["n"] for f in point["metrics"].values() if "n" in f), default=None)
        lines.append(
            f"| {point['size']} | {repeats} | {'-' if n is None else n} | " + " | ".join(cells) + " |"
        )
    lines += undefined_note(marked)
    # What failed, below the table: a point's figures leave those runs out.
    failures = [
        f"- {backend}, {point['size']} training documents, repeat {f['repeat']}: "
        f"{f.get('stage', 'training')} failed ({f['error']}); left out of the curve"
        for point in points
        for f in point.get("failed", [])
    ]
    if failures:
        lines += ["", *failures]
    return "\n".join(lines)

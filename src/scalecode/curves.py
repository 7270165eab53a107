"""Learning curves: how a trainable coder's scores grow with the number of gold training documents.

At each training size, each repeat trains on a different seeded sample of the training split and is
scored on the same test split. A point's figure is the mean over repeats; its interval pools the
bootstrap draws of all repeats, so it reflects both which test documents were drawn and which
training documents were.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from scalecode.scoring import BackendScores, Metric
from scalecode.scoring.bootstrap import percentile_interval


@dataclass
class CurveRun:
    """One training run of a learning curve."""

    size: int
    repeat: int
    seed: int
    scores: BackendScores
    trainable_parameters: int | None = None


def _size_count(size: float, n_train: int) -> int:
    if isinstance(size, float) and size <= 1:
        # A fraction of the training split, 1.0 the whole of it: read as a count, 1.0 would train on
        # one document. A job file's sizes are all floats (1 reads as 1.0): no one trains on one.
        return round(size * n_train)
    return int(size)


def curve_sizes(sizes: Sequence[float], n_train: int) -> list[int]:
    """Training sizes as document counts, capped at the training split: a float in (0, 1] is a
    fraction of the split (1.0 all of it), an int or a float above 1 a count."""
    counts = {min(n_train, _size_count(s, n_train)) for s in sizes}
    return sorted(c for c in counts if c > 0)


def summarise(runs: Sequence[CurveRun], metrics: Sequence[Metric], confidence: float) -> list[dict[str, Any]]:
    """One entry per training size: mean figure over repeats with a pooled interval, and every run."""
    points = []
    for size in sorted({r.size for r in runs}):
        at_size = [r for r in runs if r.size == size]
        summary: dict[str, Any] = {}
        for metric in metrics:
            values = [r.scores.metrics[metric.name].value for r in at_size if metric.name in r.scores.metrics]
            # A repeat whose figure is undefined (NaN) is left out of the mean; say how many are in it.
            finite = [v for v in values if np.isfinite(v)]
            pooled = [r.scores.draws[metric.name] for r in at_size if metric.name in r.scores.draws]
            low, high = percentile_interval(np.concatenate(pooled) if pooled else np.array([]), confidence)
            summary[metric.name] = {
                "value": float(np.mean(finite)) if finite else float("nan"),
                "ci_low": low,
                "ci_high": high,
                # Repeats may score different counts (a backend's errors): the fewest is quoted.
                "n": min(r.scores.n_scored for r in at_size),
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
                        "metrics": {name: est.to_dict() for name, est in r.scores.metrics.items()},
                    }
                    for r in at_size
                ],
            }
        )
    return points


def curve_markdown(backend: str, points: Sequence[dict[str, Any]], metrics: Sequence[Metric]) -> str:
    """A table: training size in rows, metrics in columns, each figure with its interval."""
    from scalecode.scoring.table import format_estimate

    lines = [
        f"| {backend}: training documents | repeats | " + " | ".join(m.name for m in metrics) + " |",
        "|---:|---:|" + "---:|" * len(metrics),
    ]
    for point in points:
        cells = []
        for m in metrics:
            figure = point["metrics"][m.name]
            cell = format_estimate(figure["value"], figure["ci_low"], figure["ci_high"])
            scored = figure.get("repeats_scored", point["repeats"])
            if scored != point["repeats"]:
                cell += f" ({scored} of {point['repeats']} repeats)"
            cells.append(cell)
        lines.append(f"| {point['size']} | {point['repeats']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)

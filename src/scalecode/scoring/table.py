"""The comparison table: every backend on the same gold documents, figures with their intervals."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from scalecode.scoring.base import Metric
from scalecode.scoring.bootstrap import Estimate
from scalecode.scoring.evaluate import BackendScores
from scalecode.scoring.paired import supported


def _number(value: float) -> str:
    if value is None or not math.isfinite(value):
        return "n/a"
    return f"{value:.3f}"


def format_estimate(value: float, low: float, high: float) -> str:
    """``0.712 [0.684, 0.739]``: a figure and its confidence interval."""
    return f"{_number(value)} [{_number(low)}, {_number(high)}]"


def rank(results: Sequence[BackendScores], primary: Metric) -> list[BackendScores]:
    """Best first by the primary metric; backends with no figure go last."""

    def key(result: BackendScores) -> float:
        estimate = result.metrics.get(primary.name)
        if estimate is None or not math.isfinite(estimate.value):
            return math.inf
        return -estimate.value if primary.greater_is_better else estimate.value

    return sorted(results, key=key)


def comparison_markdown(
    results: Sequence[BackendScores],
    metrics: Sequence[Metric],
    primary: Metric,
    details: Mapping[str, Mapping[str, Any]] | None = None,
    confidence: float = 0.95,
) -> str:
    """A Markdown table, best backend first by ``primary``, with n, coverage and timings."""
    details = details or {}
    costs = any("cost_usd" in d.get("spending", {}) for d in details.values())
    header = ["backend", "n", "coded", *[m.name for m in metrics], "fit s", "docs/s"]
    header += ["cost $"] if costs else []
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|",
    ]
    for result in rank(results, primary):
        extra = details.get(result.backend, {})
        cells = [result.backend, str(result.n_scored), f"{result.coverage:.1%}"]
        for metric in metrics:
            est = result.metrics.get(metric.name)
            cells.append(format_estimate(est.value, est.ci_low, est.ci_high) if est else "n/a")
        fit_s = extra.get("fit_seconds")
        docs_s = extra.get("docs_per_second")
        cells.append(f"{fit_s:.1f}" if fit_s is not None else "-")
        cells.append(f"{docs_s:,.0f}" if docs_s else "-")
        if costs:
            cost = extra.get("spending", {}).get("cost_usd")
            cells.append(f"{cost:,.4f}" if cost is not None else "-")
        lines.append("| " + " | ".join(cells) + " |")
    arrows = ", ".join(f"{m.name} {'higher' if m.greater_is_better else 'lower'} is better" for m in metrics)
    lines.append("")
    lines.append(
        f"Figures are point estimates with {confidence:.0%} percentile bootstrap intervals over the "
        f"documents each backend coded ({arrows}); ranked by {primary.name}."
    )
    return "\n".join(lines)


def _signed(value: float) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:+.3f}"


def paired_markdown(
    differences: Mapping[str, Mapping[str, Estimate]],
    metrics: Sequence[Metric],
    baseline: str,
    confidence: float = 0.95,
) -> str:
    """Each backend minus ``baseline`` on the documents both coded; * where the interval excludes 0."""
    header = ["backend", "n", *[m.name for m in metrics]]
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|",
    ]
    for backend, estimates in differences.items():
        n = max((e.n for e in estimates.values()), default=0)
        cells = [backend, str(n)]
        for metric in metrics:
            e = estimates.get(metric.name)
            if e is None:
                cells.append("n/a")
                continue
            mark = " *" if supported(e) else ""
            cells.append(f"{_signed(e.value)} [{_signed(e.ci_low)}, {_signed(e.ci_high)}]{mark}")
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    lines.append(
        f"Each backend's figure minus {baseline}'s, on the test documents both coded, with {confidence:.0%} "
        "paired bootstrap intervals (the same resampled documents score both); * marks an interval "
        "that excludes 0, a difference these documents support. For a figure where lower is better, "
        "a negative difference is the better backend."
    )
    return "\n".join(lines)


def per_label_markdown(result: BackendScores) -> str:
    """Precision, recall and F1 per label for one backend."""
    lines = ["| label | precision | recall | F1 | support |", "|---|---:|---:|---:|---:|"]
    for label, row in result.per_label.items():
        lines.append(
            f"| {label} | {row['precision']:.3f} | {row['recall']:.3f} | {row['f1']:.3f} | {row['support']} |"
        )
    return "\n".join(lines)


def confusion_markdown(result: BackendScores) -> str:
    """The confusion matrix, gold in rows and predictions in columns."""
    if not result.confusion:
        return ""
    labels = result.confusion["labels"]
    lines = ["| gold \\ predicted | " + " | ".join(labels) + " |", "|---|" + "---:|" * len(labels)]
    for label, row in zip(labels, result.confusion["matrix"], strict=True):
        lines.append(f"| {label} | " + " | ".join(str(v) for v in row) + " |")
    return "\n".join(lines)

"""The comparison table: every backend on the same gold documents, figures with their intervals."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from scalecode.scoring.base import Metric
from scalecode.scoring.bootstrap import Estimate
from scalecode.scoring.evaluate import BackendScores
from scalecode.scoring.paired import supported
from scalecode.scoring.ranking import (
    DEFAULT_MIN_COVERAGE,
    coverage_reason,
    meets_min_coverage,
    no_figure_note,
    percent,
    rank,
    without_figure,
)

# Marks a backend below evaluation.min_coverage in the table; the note under it says why.
BELOW_COVERAGE_MARK = "†"
# Marks an interval drawn from fewer than nine in ten resamples: the figure was undefined on the rest.
UNDEFINED_MARK = "‡"
UNDEFINED_SHARE_MARKED = 0.1


def _undefined_mark(estimate: Estimate) -> str:
    return f" {UNDEFINED_MARK}" if estimate.undefined_share > UNDEFINED_SHARE_MARKED else ""


def undefined_note(marked: bool) -> list[str]:
    """The note under a table that marks intervals with UNDEFINED_MARK."""
    if not marked:
        return []
    return [
        "",
        f"{UNDEFINED_MARK} The figure was undefined on more than {percent(UNDEFINED_SHARE_MARKED)} of the "
        "resamples (kappa or alpha on a draw of one label, a correlation without variance), which are "
        "left out: the interval is that of the resamples where it exists (undefined_share in "
        "metrics.json), so read it with care.",
    ]


NO_RESAMPLES = "without intervals (no bootstrap resamples were drawn)"


def grouped_note(column: str) -> str:
    """What intervals drawn by group (a cluster bootstrap over ``column``) mean, under their table."""
    return (
        f"The intervals resample whole groups ({column}), not single documents: documents of one group "
        "are alike, and resampled one by one they would give intervals too narrow."
    )


def _decimals(*values: float) -> int:
    """3 decimals; where the largest of the figures is below 0.01, as many as give it three
    significant digits: an MSE of 0.00041 against one of 0.00049 is not 0.000 against 0.000."""
    largest = max((abs(v) for v in values if v is not None and math.isfinite(v)), default=0.0)
    if largest == 0 or largest >= 0.01:
        return 3
    return min(12, 2 - math.floor(math.log10(largest)))


def _number(value: float, decimals: int = 3, sign: str = "") -> str:
    if value is None or not math.isfinite(value):
        return "n/a"
    # + 0.0: a figure that rounds to zero is 0, not -0.
    return f"{round(value, decimals) + 0.0:{sign}.{decimals}f}"


def format_estimate(value: float, low: float, high: float, *, interval: bool = True) -> str:
    """``0.712 [0.684, 0.739]``: a figure and its confidence interval (the figure alone where no
    resamples were drawn, rather than an interval that is always ``[n/a, n/a]``), to 3 decimals, or
    to 3 significant digits where all three are below 0.01."""
    decimals = _decimals(value, low, high) if interval else _decimals(value)
    if not interval:
        return _number(value, decimals)
    return f"{_number(value, decimals)} [{_number(low, decimals)}, {_number(high, decimals)}]"


def format_rate(per_second: float) -> str:
    """Documents per second: whole above 10, else to two significant digits (an API's 0.4 is no 0)."""
    return f"{per_second:,.0f}" if per_second >= 10 else f"{per_second:.2g}"


def markdown_cell(text: str) -> str:
    """Text as one Markdown table cell: a label or a backend name may hold a ``|`` (a new column)
    or a line break (a new row)."""
    return " ".join(text.replace("\\", "\\\\").replace("|", "\\|").split())


def comparison_markdown(
    results: Sequence[BackendScores],
    metrics: Sequence[Metric],
    primary: Metric,
    details: Mapping[str, Mapping[str, Any]] | None = None,
    confidence: float | None = 0.95,
    *,
    min_coverage: float = DEFAULT_MIN_COVERAGE,
) -> str:
    """A Markdown table, best backend first by ``primary``, with n, coverage and timings.

    Backends that coded less than ``min_coverage`` of the test split rank last and are marked.
    ``confidence`` None: the figures were scored with no bootstrap resamples, so there are no
    intervals to show or speak of.
    """
    details = details or {}
    costs = any("cost_usd" in d.get("spending", {}) for d in details.values())
    header = ["backend", "n", "coded", *[m.name for m in metrics], "fit s", "docs/s"]
    header += ["cost $"] if costs else []
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|",
    ]
    below: list[BackendScores] = []
    marked = False  # any interval with the undefined mark
    ranked = rank(results, primary, min_coverage=min_coverage)
    for result in ranked:
        extra = details.get(result.backend, {})
        name = markdown_cell(result.backend)
        if not meets_min_coverage(result, min_coverage):
            below.append(result)
            name += f" {BELOW_COVERAGE_MARK}"
        cells = [name, str(result.n_scored), f"{result.coverage:.1%}"]
        for metric in metrics:
            est = result.metrics.get(metric.name)
            if est is None:
                cells.append("n/a")
                continue
            cell = format_estimate(est.value, est.ci_low, est.ci_high, interval=confidence is not None)
            mark = _undefined_mark(est) if confidence is not None else ""
            marked = marked or bool(mark)
            cells.append(cell + mark)
        fit_s = extra.get("fit_seconds")
        docs_s = extra.get("docs_per_second")
        cells.append(f"{fit_s:.1f}" if fit_s is not None else "-")
        cells.append(format_rate(docs_s) if docs_s else "-")
        if costs:
            cost = extra.get("spending", {}).get("cost_usd")
            cells.append(f"{cost:,.4f}" if cost is not None else "-")
        lines.append("| " + " | ".join(cells) + " |")
    arrows = ", ".join(f"{m.name} {'higher' if m.greater_is_better else 'lower'} is better" for m in metrics)
    lines.append("")
    spread = (
        NO_RESAMPLES if confidence is None else f"with {percent(confidence)} percentile bootstrap intervals"
    )
    lines.append(
        f"Figures are point estimates {spread} over the documents each backend coded ({arrows}); "
        f"ranked by {primary.name}."
    )
    lines += undefined_note(marked)
    if unranked := without_figure(results, primary):
        lines += ["", no_figure_note(unranked, len(results), primary)]
    if below:
        first_meets = meets_min_coverage(ranked[0], min_coverage)
        lines += ["", *_below_coverage_notes(below, min_coverage, first_meets=first_meets)]
    return "\n".join(lines)


def _below_coverage_notes(
    below: Sequence[BackendScores], min_coverage: float, *, first_meets: bool
) -> list[str]:
    """Why the marked backends rank last, and what the ranking's first is when none qualifies."""
    if first_meets:
        lines = [
            f"{BELOW_COVERAGE_MARK} Ranked after every backend that coded at least {percent(min_coverage)} "
            "of the test split: their figures come from the documents they did code, perhaps the "
            "easiest, so none of them is the paired baseline or, under `corpus_backends: best`, the "
            "corpus backend."
        ]
    else:
        # Every ranked figure then comes from a subset of the documents; the first still serves.
        lines = [
            f"{BELOW_COVERAGE_MARK} No backend with a figure coded at least {percent(min_coverage)} of the "
            "test split (evaluation.min_coverage): each is ranked on the documents it coded, and the "
            "first is the paired baseline and, under `corpus_backends: best`, the corpus backend all the "
            "same; read its figures with care."
        ]
    return lines + [f"- {result.backend}: {coverage_reason(result, min_coverage)}." for result in below]


def _signed(value: float, decimals: int = 3) -> str:
    return _number(value, decimals, sign="+")


def paired_markdown(
    differences: Mapping[str, Mapping[str, Estimate]],
    metrics: Sequence[Metric],
    baseline: str,
    confidence: float | None = 0.95,
) -> str:
    """Each backend minus ``baseline`` on the documents both coded; * where the interval excludes 0.

    ``confidence`` None: no resamples were drawn, so there are neither intervals nor marks.
    """
    header = ["backend", "n", *[m.name for m in metrics]]
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|",
    ]
    marked = False
    for backend, estimates in differences.items():
        n = max((e.n for e in estimates.values()), default=0)
        cells = [markdown_cell(backend), str(n)]
        for metric in metrics:
            e = estimates.get(metric.name)
            if e is None:
                cells.append("n/a")
                continue
            if confidence is None:
                cells.append(_signed(e.value, _decimals(e.value)))
                continue
            mark = (" *" if supported(e) else "") + _undefined_mark(e)
            marked = marked or e.undefined_share > UNDEFINED_SHARE_MARKED
            d = _decimals(e.value, e.ci_low, e.ci_high)
            cells.append(f"{_signed(e.value, d)} [{_signed(e.ci_low, d)}, {_signed(e.ci_high, d)}]{mark}")
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    direction = "For a figure where lower is better, a negative difference is the better backend."
    if confidence is None:
        lines.append(
            f"Each backend's figure minus {baseline}'s, on the test documents both coded, {NO_RESAMPLES}: "
            f"nothing here tells a difference from chance. {direction}"
        )
    else:
        lines.append(
            f"Each backend's figure minus {baseline}'s, on the test documents both coded, with "
            f"{percent(confidence)} paired bootstrap intervals (the same resampled documents score both); "
            f"* marks an interval that excludes 0, a difference these documents support. {direction}"
        )
    lines += undefined_note(marked)
    return "\n".join(lines)


def per_label_markdown(result: BackendScores) -> str:
    """Precision, recall and F1 per label for one backend."""
    lines = ["| label | precision | recall | F1 | support |", "|---|---:|---:|---:|---:|"]
    for label, row in result.per_label.items():
        figures = f"{row['precision']:.3f} | {row['recall']:.3f} | {row['f1']:.3f} | {row['support']}"
        lines.append(f"| {markdown_cell(label)} | {figures} |")
    return "\n".join(lines)


def confusion_markdown(result: BackendScores) -> str:
    """The confusion matrix, gold in rows and predictions in columns."""
    if not result.confusion:
        return ""
    labels = result.confusion["labels"]
    lines = [
        "| gold \\ predicted | " + " | ".join(map(markdown_cell, labels)) + " |",
        "|---|" + "---:|" * len(labels),
    ]
    for label, row in zip(labels, result.confusion["matrix"], strict=True):
        lines.append(f"| {markdown_cell(label)} | " + " | ".join(str(v) for v in row) + " |")
    return "\n".join(lines)

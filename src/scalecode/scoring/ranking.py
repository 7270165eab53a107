"""Which backend is best: the primary metric, among the backends that coded (nearly) all the gold.

A backend's figures are computed over the test documents it coded; those it failed on (an API error,
an answer outside the codebook) are left out. A backend that coded only the ten easiest documents
can then have the best figure of all, on documents the others were not scored on alone. So a backend
below ``evaluation.min_coverage`` ranks after every backend at or above it (by the metric among
themselves), and is the paired baseline or the ``best`` corpus coder only when none meets it.

Nothing here imports scikit-learn: the job file's validation takes its default from this module.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from scalecode.scoring.base import Metric

if TYPE_CHECKING:
    from scalecode.scoring.evaluate import BackendScores

# A backend may miss 1 test document in 20 (a few API errors) and still be the best; more, and its
# figures describe a different, easier set of documents than the others'.
DEFAULT_MIN_COVERAGE = 0.95

# Coverage is a ratio of counts: 19 of 20 must meet 0.95 even where the division rounds below it.
_TOLERANCE = 1e-9


def meets_min_coverage(result: BackendScores, min_coverage: float) -> bool:
    """Whether the backend coded at least ``min_coverage`` of the test documents."""
    return result.coverage + _TOLERANCE >= min_coverage


def _figure(result: BackendScores, primary: Metric) -> float | None:
    """The primary figure, oriented so that lower is better; None where there is none."""
    estimate = result.metrics.get(primary.name)
    if estimate is None or not math.isfinite(estimate.value):
        return None
    return -estimate.value if primary.greater_is_better else estimate.value


def rank(
    results: Sequence[BackendScores], primary: Metric, *, min_coverage: float = DEFAULT_MIN_COVERAGE
) -> list[BackendScores]:
    """Best first by ``primary``: backends meeting ``min_coverage`` before those that do not.

    A backend with no figure goes last whatever its coverage: there is nothing to rank it by.
    """

    def key(result: BackendScores) -> tuple[bool, bool, float]:
        figure = _figure(result, primary)
        below = not meets_min_coverage(result, min_coverage)
        return (figure is None, below, math.inf if figure is None else figure)

    return sorted(results, key=key)


def without_figure(results: Sequence[BackendScores], primary: Metric) -> list[str]:
    """The backends whose primary figure is undefined on this test split (kappa or alpha where the
    gold or the codes hold one label, R^2 of a constant gold...): they rank last, after worse coders."""
    return [result.backend for result in results if _figure(result, primary) is None]


def no_figure_note(names: Sequence[str], n_results: int, primary: Metric) -> str:
    """Why backends without a primary figure rank where they do (they may be the best coders)."""
    if len(names) == n_results:
        return (
            f"No backend has a {primary.name} figure on this test split (it is undefined there, as kappa "
            "and alpha are where one label is all the gold or the codes hold): the ranking follows the "
            "job's order, and its first is the paired baseline and, under `corpus_backends: best`, the "
            "corpus backend; choose another primary metric (evaluation.primary_metric)."
        )
    return (
        f"{', '.join(names)}: no {primary.name} figure on this test split (it is undefined there, as "
        "kappa and alpha are where one label is all the gold or the codes hold): ranked last, so "
        "never the paired baseline nor, under `corpus_backends: best`, the corpus backend, whatever "
        "the other metrics say; choose another primary metric (evaluation.primary_metric) to rank "
        "by one they have."
    )


@dataclass(frozen=True)
class Best:
    """The first-ranked backend, and whether it met ``min_coverage`` (False: none with a figure did)."""

    result: BackendScores
    meets_min_coverage: bool

    @property
    def backend(self) -> str:
        return self.result.backend


def best_backend(
    results: Sequence[BackendScores], primary: Metric, *, min_coverage: float = DEFAULT_MIN_COVERAGE
) -> Best:
    """The backend to compare the others against and to code the corpus with under ``best``."""
    if not results:
        raise ValueError("no backends to choose the best from")
    first = rank(results, primary, min_coverage=min_coverage)[0]
    return Best(first, meets_min_coverage(first, min_coverage))


def percent(share: float) -> str:
    """``95%``, ``97.5%``: a threshold as the user wrote it, not rounded to a whole percent."""
    return f"{share * 100:g}%"


def coded_share(result: BackendScores) -> str:
    """``coded 1.0% of the test split (10 of 1,000)``."""
    return f"coded {result.coverage:.1%} of the test split ({result.n_scored:,} of {result.n_gold:,})"


def coverage_reason(result: BackendScores, min_coverage: float) -> str:
    """Why a backend ranks after the others."""
    return f"{coded_share(result)}, below evaluation.min_coverage ({min_coverage:g})"


def no_backend_qualifies(best: Best, min_coverage: float, primary: Metric) -> str:
    """The warning when the best backend is chosen among backends that all fell below the threshold."""
    return (
        f"no backend with a {primary.name} figure coded at least {percent(min_coverage)} of the test split "
        f"(evaluation.min_coverage {min_coverage:g}); {best.backend}, the best by {primary.name} among "
        f"them, {coded_share(best.result)}"
    )

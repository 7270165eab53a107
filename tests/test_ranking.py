"""Ranking backends: the primary metric decides among the backends that coded (nearly) all the gold.

A backend's figures cover only the test documents it coded, so one that coded the ten easiest of a
thousand can have the best figure of all; it must not rank first, nor become the baseline.
"""

from __future__ import annotations

import math

from scalecode.scoring import BUILTIN_METRICS, BackendScores, Estimate
from scalecode.scoring.table import comparison_markdown, rank
from scalecode.task import TaskType


def metric(name: str):
    return next(m for m in BUILTIN_METRICS if m.name == name and TaskType.REGRESSION in m.task_types)


R2, MSE = metric("r2"), metric("mse")


def scores(name: str, n_scored: int, r2: float, mse: float, n_gold: int = 1000) -> BackendScores:
    figures = {"r2": r2, "mse": mse}
    return BackendScores(
        backend=name,
        n_gold=n_gold,
        n_scored=n_scored,
        n_errors=n_gold - n_scored,
        metrics={k: Estimate(v, v - 0.1, v + 0.1, n_scored) for k, v in figures.items()},
    )


LUCKY = scores("lucky", 10, r2=0.95, mse=0.1)  # the 10 easiest documents, the rest errors
HALF = scores("half", 500, r2=0.70, mse=0.5)
STEADY = scores("steady", 1000, r2=0.50, mse=1.0)
WEAK = scores("weak", 990, r2=0.20, mse=2.0)


def names(results: list[BackendScores]) -> list[str]:
    return [r.backend for r in results]


def test_a_backend_that_coded_1_percent_ranks_after_those_that_coded_all():
    for primary in (R2, MSE):  # higher and lower is better
        assert names(rank([LUCKY, HALF, WEAK, STEADY], primary)) == ["steady", "weak", "lucky", "half"]


def test_min_coverage_zero_ranks_by_the_metric_alone():
    assert names(rank([STEADY, HALF, LUCKY], R2, min_coverage=0.0)) == ["lucky", "half", "steady"]


def test_the_threshold_is_inclusive():
    """19 of 20 documents is 95%, whatever the division rounds to."""
    nineteen = scores("nineteen", 19, r2=0.9, mse=0.1, n_gold=20)
    whole = scores("whole", 20, r2=0.5, mse=1.0, n_gold=20)
    assert names(rank([whole, nineteen], R2, min_coverage=0.95)) == ["nineteen", "whole"]
    assert names(rank([whole, nineteen], R2, min_coverage=0.951)) == ["whole", "nineteen"]


def test_when_none_meets_the_threshold_they_rank_by_the_metric():
    assert names(rank([HALF, LUCKY], R2)) == ["lucky", "half"]


def test_a_backend_without_a_figure_goes_last_whatever_its_coverage():
    blank = scores("blank", 1000, r2=math.nan, mse=math.nan)
    assert names(rank([blank, LUCKY, STEADY], R2)) == ["steady", "lucky", "blank"]


def test_the_table_marks_and_explains_backends_below_min_coverage():
    table = comparison_markdown([LUCKY, STEADY], [R2, MSE], R2, min_coverage=0.95)
    rows = [line for line in table.splitlines() if line.startswith("| ")][1:]
    assert rows[0].startswith("| steady |") and rows[1].startswith("| lucky † |")
    assert (
        "- lucky: coded 1.0% of the test split (10 of 1,000), below evaluation.min_coverage (0.95)." in table
    )
    assert "none of them is the paired baseline" in table


def test_the_table_says_when_no_backend_meets_min_coverage():
    table = comparison_markdown([LUCKY, HALF], [R2], R2, min_coverage=0.975)
    assert "No backend with a figure coded at least 97.5% of the test split" in table
    assert "- half: coded 50.0% of the test split (500 of 1,000)" in table


def test_a_table_where_every_backend_meets_min_coverage_has_no_note():
    assert "min_coverage" not in comparison_markdown([STEADY, WEAK], [R2], R2)

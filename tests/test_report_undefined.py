"""What the comparison says when the primary figure is undefined, and intervals of any level."""

from __future__ import annotations

import math

from scalecode.scoring import BUILTIN_METRICS, BackendScores, Estimate
from scalecode.scoring.ranking import without_figure
from scalecode.scoring.table import comparison_markdown, paired_markdown
from scalecode.task import TaskType


def metric(name: str):
    return next(m for m in BUILTIN_METRICS if m.name == name and TaskType.CLASSIFICATION in m.task_types)


KAPPA, ACCURACY = metric("cohen_kappa"), metric("accuracy")


def scores(name: str, kappa: float, accuracy: float) -> BackendScores:
    figures = {"cohen_kappa": kappa, "accuracy": accuracy}
    return BackendScores(
        backend=name,
        n_gold=20,
        n_scored=20,
        n_errors=0,
        metrics={k: Estimate(v, v - 0.1, v + 0.1, 20) for k, v in figures.items()},
    )


# A test split of one label: kappa is undefined for the coder that gets every document right, and 0
# for one that gets 8 of 20 wrong (it predicts a second label).
PERFECT = scores("perfect", math.nan, 1.0)
WRONG = scores("wrong", 0.0, 0.6)


def test_a_backend_without_a_primary_figure_is_named_and_its_rank_explained():
    assert without_figure([PERFECT, WRONG], KAPPA) == ["perfect"]
    table = comparison_markdown([PERFECT, WRONG], [KAPPA, ACCURACY], KAPPA)
    rows = [line for line in table.splitlines() if line.startswith("| perfect") or line.startswith("| wrong")]
    assert [row.split(" |")[0] for row in rows] == ["| wrong", "| perfect"]  # ranked last all the same
    note = next(line for line in table.splitlines() if line.startswith("perfect: no cohen_kappa figure"))
    assert "ranked last" in note and "evaluation.primary_metric" in note


def test_no_backend_with_a_primary_figure_says_the_ranking_is_the_jobs_order():
    table = comparison_markdown([PERFECT, scores("other", math.nan, 0.9)], [KAPPA, ACCURACY], KAPPA)
    assert "No backend has a cohen_kappa figure on this test split" in table
    assert "the ranking follows the job's order" in table


def test_every_backend_with_a_figure_gets_no_such_note():
    table = comparison_markdown([WRONG, scores("better", 0.5, 0.8)], [KAPPA, ACCURACY], KAPPA)
    assert "figure on this test split" not in table


def test_the_interval_level_is_printed_as_configured():
    for confidence, shown in ((0.95, "95%"), (0.975, "97.5%"), (0.995, "99.5%"), (0.9, "90%")):
        table = comparison_markdown([WRONG], [KAPPA], KAPPA, confidence=confidence)
        assert f"with {shown} percentile bootstrap intervals" in table
        differences = {"wrong": {"cohen_kappa": Estimate(0.1, 0.0, 0.2, 20)}}
        assert f"{shown} paired bootstrap intervals" in paired_markdown(
            differences, [KAPPA], "better", confidence=confidence
        )


def test_an_interval_from_resamples_where_the_figure_is_often_undefined_is_marked():
    """19 documents of one label and one of another: kappa is undefined on every resample that
    misses the one (about a third), and its interval comes from the rest."""
    import numpy as np

    from scalecode.scoring.bootstrap import bootstrap

    y = np.array([0] * 19 + [1])
    figures = bootstrap([KAPPA, ACCURACY], y, y.copy(), n_boot=500, seed=0)
    kappa, accuracy = figures["cohen_kappa"], figures["accuracy"]
    assert 0.25 < kappa.undefined_share < 0.45 and accuracy.undefined_share == 0.0
    assert kappa.to_dict()["undefined_share"] == kappa.undefined_share  # in metrics.json

    result = BackendScores(backend="sparse", n_gold=20, n_scored=20, n_errors=0, metrics=figures)
    table = comparison_markdown([result], [KAPPA, ACCURACY], KAPPA)
    row = next(line for line in table.splitlines() if line.startswith("| sparse"))
    assert row.count("‡") == 1 and "1.000 [1.000, 1.000] ‡" in row  # kappa's cell alone
    assert "undefined on more than 10% of the resamples" in table
    assert "‡" not in comparison_markdown([WRONG], [KAPPA, ACCURACY], KAPPA)

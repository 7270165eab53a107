"""Intervals for gold documents that come in groups resample whole groups (a cluster bootstrap)."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from scipy import stats

from scalecode.backend import GoldSet
from scalecode.scoring import metrics_for, paired_differences, score_predictions
from scalecode.scoring.bootstrap import group_codes, resamples
from scalecode.scoring.metrics import BUILTIN_METRICS
from scalecode.task import Task, TaskType

CLASSES = Task(type=TaskType.CLASSIFICATION, labels=["a", "b"])
SCORES = Task(type=TaskType.REGRESSION)


def test_a_resample_of_groups_draws_as_many_whole_groups_as_there_are():
    groups = group_codes(["x", "x", "y", "z", "z", "z", "y", "w"])
    assert groups is not None and groups.tolist() == [0, 0, 1, 2, 2, 2, 1, 3]
    for sample in resamples(len(groups), 500, seed=3, groups=groups):
        for g in range(4):
            members = sample.counts[:, groups == g]
            assert (members == members[:, :1]).all()  # every document of a group as often as the group
        drawn = np.stack([sample.counts[:, groups == g][:, 0] for g in range(4)], axis=1)
        assert (drawn.sum(axis=1) == 4).all()
        sizes = sample.counts.sum(axis=1)
        assert len(set(sizes)) > 1  # resamples of groups of different sizes differ in size
        assert [len(row) for row in sample.rows()] == sizes.astype(int).tolist()


def test_without_groups_resamples_are_those_of_documents():
    one = next(resamples(50, 40, seed=9))
    rng = np.random.default_rng(9)
    drawn = rng.integers(0, 50, size=(40, 50))
    expected = np.stack([np.bincount(row, minlength=50) for row in drawn])
    np.testing.assert_array_equal(one.counts, expected)


@pytest.mark.parametrize("task", [CLASSES, SCORES], ids=["classification", "regression"])
def test_batched_metrics_equal_their_functions_on_resamples_of_groups(task):
    """Resamples of groups differ in size: every vectorised figure, Spearman's ranks among them,
    still equals the metric's own function on the documents drawn."""
    rng = np.random.default_rng(4)
    n = 120
    groups = group_codes(rng.integers(0, 9, size=n).tolist())
    assert groups is not None
    if task.type is TaskType.CLASSIFICATION:
        y_true = rng.integers(0, 2, size=n)
        y_pred = np.where(rng.random(n) < 0.3, 1 - y_true, y_true)
    else:
        y_true = np.round(rng.normal(size=n), 1)  # ties, as ratings on a scale have
        y_pred = np.round(y_true + rng.normal(scale=0.5, size=n), 1)
    sample = next(resamples(n, 60, seed=2, groups=groups))
    every = metrics_for(task, BUILTIN_METRICS)
    assert len(every) >= 5
    for m in every:
        assert m.batched is not None, m.name
        looped = np.array([m.func(y_true[row], y_pred[row]) for row in sample.rows()])
        np.testing.assert_allclose(m.batched(y_true, y_pred, sample), looped, rtol=1e-9, err_msg=m.name)
    if task.type is TaskType.REGRESSION:
        rows = list(sample.rows())
        rho = [stats.spearmanr(y_true[row], y_pred[row]).statistic for row in rows]
        spearman = next(m for m in every if m.name == "spearman_rho")
        np.testing.assert_allclose(spearman.batched(y_true, y_pred, sample), rho, rtol=1e-9)


def clustered_gold(groups: int = 30, size: int = 20) -> tuple[GoldSet, pl.DataFrame]:
    """Groups whose documents are alike in difficulty: a coder right on most of one editorial's
    sentences and wrong on most of another's."""
    rng = np.random.default_rng(0)
    ids, truth, codes, group = [], [], [], []
    for g in range(groups):
        hard = rng.beta(2, 2)
        for i in range(size):
            label = "a" if rng.random() < 0.5 else "b"
            wrong = rng.random() < hard
            ids.append(f"{g:02d}-{i:02d}")
            truth.append(label)
            codes.append(("b" if label == "a" else "a") if wrong else label)
            group.append(f"editorial {g}")
    gold = GoldSet(task=CLASSES, ids=ids, texts=["x"] * len(ids), targets=truth, groups=group)
    return gold, pl.DataFrame({"id": ids, "label": codes})


def width(gold: GoldSet, predictions: pl.DataFrame) -> float:
    metrics = metrics_for(CLASSES, BUILTIN_METRICS, ["accuracy"])
    estimate = score_predictions(predictions, gold, metrics, backend="coder", n_boot=500).metrics["accuracy"]
    return estimate.ci_high - estimate.ci_low


def test_a_grouped_gold_widens_the_interval_its_groups_call_for():
    gold, predictions = clustered_gold()
    ungrouped = GoldSet(task=gold.task, ids=gold.ids, texts=gold.texts, targets=gold.targets)
    # Documents alike within groups carry less information than as many independent documents.
    assert width(gold, predictions) > 1.8 * width(ungrouped, predictions)


def test_paired_differences_resample_groups_too():
    gold, ours = clustered_gold()
    theirs = ours.with_columns(pl.lit("a").alias("label"))
    ungrouped = GoldSet(task=gold.task, ids=gold.ids, texts=gold.texts, targets=gold.targets)
    metrics = metrics_for(CLASSES, BUILTIN_METRICS, ["accuracy"])

    def paired_width(g: GoldSet) -> float:
        diff = paired_differences(
            {"ours": ours, "theirs": theirs}, g, metrics, baseline="theirs", n_boot=500
        ).differences["ours"]["accuracy"]
        return diff.ci_high - diff.ci_low

    assert paired_width(gold) > 1.5 * paired_width(ungrouped)


def test_one_group_gives_a_figure_without_an_interval():
    gold, predictions = clustered_gold(groups=1)
    metrics = metrics_for(CLASSES, BUILTIN_METRICS, ["accuracy"])
    estimate = score_predictions(predictions, gold, metrics, backend="coder", n_boot=200).metrics["accuracy"]
    assert 0 <= estimate.value <= 1 and estimate.n == 20
    assert np.isnan(estimate.ci_low) and np.isnan(estimate.ci_high)
    assert estimate.undefined_share == 0.0  # not a figure undefined on its resamples: none drawn


def test_resamples_of_documents_still_give_their_indices_and_of_groups_say_why_not():
    """A plugin metric's batched function may read ``indices`` (B, n): resamples of documents have
    them; resamples of groups differ in size and say so."""
    sample = next(resamples(6, 4, seed=1))
    assert sample.indices.shape == (4, 6)
    np.testing.assert_array_equal(np.stack(list(sample.rows())), sample.indices)
    for n_boot in (50, 1):  # one resample of groups may happen to have n documents: still no indices
        grouped = next(resamples(6, n_boot, seed=1, groups=np.array([0, 0, 0, 0, 1, 2])))
        with pytest.raises(ValueError, match="use rows"):
            _ = grouped.indices

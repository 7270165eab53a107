"""The share a grouped, stratified split holds out: the requested one with ``match_share``, the one
earlier versions made by default (run directories hold it), and a warning when it misses."""

from __future__ import annotations

import warnings
from collections import Counter

import numpy as np
import pytest
from sklearn.model_selection import StratifiedGroupKFold

from scalecode.backend import GoldSet
from scalecode.splits import SplitShareWarning, split_gold
from scalecode.task import Task, TaskType

TASK = Task(type=TaskType.CLASSIFICATION, labels=["Democratic", "Republican"])


def speeches(n_speeches: int = 82, seed: int = 0) -> GoldSet:
    """Like the SOTU party gold: speeches of 10 to 60 paragraphs, every paragraph its speaker's party,
    six in ten Democratic."""
    rng = np.random.default_rng(seed)
    ids, groups, labels = [], [], []
    for speech in range(n_speeches):
        party = "Democratic" if rng.random() < 0.6 else "Republican"
        for paragraph in range(int(rng.integers(10, 61))):
            ids.append(f"s{speech:03d}-p{paragraph:03d}")
            groups.append(f"speech{speech:03d}")
            labels.append(party)
    return GoldSet(task=TASK, ids=ids, texts=ids, targets=labels, groups=groups)


def share(gold: GoldSet, test: GoldSet) -> float:
    return len(test) / len(gold)


def democratic(gold: GoldSet) -> float:
    return Counter(gold.targets)["Democratic"] / len(gold)


@pytest.mark.parametrize("test_size", [0.1, 0.3, 0.4, 0.45, 0.6, 0.8])
def test_match_share_holds_out_the_share_asked_for_with_groups_whole_and_labels_stratified(test_size):
    gold = speeches()
    train, test = split_gold(gold, test_size=test_size, seed=2024, match_share=True)
    # Speeches of up to 60 of ~2,900 paragraphs: one more or less moves the share by up to 0.02.
    assert share(gold, test) == pytest.approx(test_size, abs=0.02)
    assert not set(train.groups or []) & set(test.groups or [])
    assert len(train) + len(test) == len(gold)
    assert democratic(test) == pytest.approx(democratic(gold), abs=0.05)


def test_match_share_is_seeded():
    gold = speeches()
    first = split_gold(gold, test_size=0.4, seed=1, match_share=True)[1].ids
    assert split_gold(gold, test_size=0.4, seed=1, match_share=True)[1].ids == first
    assert split_gold(gold, test_size=0.4, seed=2, match_share=True)[1].ids != first


def test_match_share_with_two_groups_holds_out_one_and_says_so():
    gold = speeches(n_speeches=2, seed=3)
    assert len(set(gold.targets)) == 2
    with pytest.warns(SplitShareWarning, match="whole groups go to one side, and there are 2"):
        test = split_gold(gold, test_size=0.2, seed=0, match_share=True)[1]
    assert len(set(test.groups or [])) == 1


def test_the_default_grouped_stratified_split_is_the_one_run_directories_hold():
    """The runner splits again on every run and reuses a directory's models: the default must not move."""
    gold = speeches()
    ordered = gold.subset(sorted(range(len(gold)), key=lambda i: gold.ids[i]))
    for test_size in (0.3, 0.4):
        folds = StratifiedGroupKFold(n_splits=max(2, round(1 / test_size)), shuffle=True, random_state=7)
        _, expected = next(folds.split(np.arange(len(ordered)), ordered.targets, ordered.groups))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SplitShareWarning)
            test = split_gold(gold, test_size=test_size, seed=7)[1]
        assert test.ids == [ordered.ids[i] for i in sorted(expected)]


def test_a_share_missed_by_more_than_0_05_is_warned_of():
    gold = speeches()
    with pytest.warns(SplitShareWarning, match=r"not the 40\.0% asked for \(evaluation\.test_size") as caught:
        test = split_gold(gold, test_size=0.4, seed=2024)[1]
    assert share(gold, test) == pytest.approx(0.5, abs=0.02)  # one of round(1 / 0.4) = 2 folds
    assert f"holds out {len(test)} of the {len(gold)} gold documents" in str(caught[0].message)
    assert "one of 2 folds" in str(caught[0].message)
    with warnings.catch_warnings():
        warnings.simplefilter("error", SplitShareWarning)
        split_gold(gold, test_size=0.3, seed=2024)  # one of 3 folds: near enough, no warning
        split_gold(gold, test_size=0.4, seed=2024, match_share=True)

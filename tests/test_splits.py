"""Seeded splits: stratified for classification, grouped when asked, independent of row order."""

from __future__ import annotations

from collections import Counter

import pytest

from scalecode.backend import GoldSet
from scalecode.errors import ScalecodeError
from scalecode.splits import split_gold
from scalecode.task import Task, TaskType

TASK = Task(type=TaskType.CLASSIFICATION, labels=["a", "b", "c"])


def make(n: int = 300, groups: bool = False) -> GoldSet:
    labels = ["a"] * (n // 2) + ["b"] * (n // 3) + ["c"] * (n - n // 2 - n // 3)
    return GoldSet(
        task=TASK,
        ids=[f"d{i:04d}" for i in range(n)],
        texts=[f"text {i}" for i in range(n)],
        targets=labels,
        groups=[f"speech{i // 10}" for i in range(n)] if groups else None,
    )


def test_same_seed_same_split_other_seed_other_split():
    gold = make()
    first = split_gold(gold, test_size=0.3, seed=1)
    assert split_gold(gold, test_size=0.3, seed=1)[1].ids == first[1].ids
    assert split_gold(gold, test_size=0.3, seed=2)[1].ids != first[1].ids


def test_split_does_not_depend_on_row_order():
    gold = make()
    shuffled = gold.subset(list(reversed(range(len(gold)))))
    assert (
        split_gold(gold, test_size=0.3, seed=1)[1].ids == split_gold(shuffled, test_size=0.3, seed=1)[1].ids
    )


def test_stratified_split_keeps_label_shares():
    train, test = split_gold(make(), test_size=0.3, seed=0)
    assert len(test) == 90
    assert Counter(test.targets) == {"a": 45, "b": 30, "c": 15}
    assert not set(train.ids) & set(test.ids)


def test_grouped_split_keeps_each_group_on_one_side():
    train, test = split_gold(make(groups=True), test_size=0.3, seed=0)
    assert not set(train.groups) & set(test.groups)
    assert 0.2 < len(test) / 300 < 0.45
    regression = make(groups=True)
    regression = GoldSet(
        task=Task(type=TaskType.REGRESSION),
        ids=regression.ids,
        texts=regression.texts,
        targets=[float(i) for i in range(300)],
        groups=regression.groups,
    )
    train, test = split_gold(regression, test_size=0.3, seed=0)
    assert not set(train.groups) & set(test.groups)


def test_rare_label_gives_a_clear_error():
    gold = make(30)
    gold = GoldSet(task=TASK, ids=gold.ids, texts=gold.texts, targets=["a"] * 29 + ["c"])
    with pytest.raises(ScalecodeError, match="'c' have fewer than 2 gold documents"):
        split_gold(gold, test_size=0.3, seed=0)
    assert len(split_gold(gold, test_size=0.3, seed=0, stratify=False)[1]) == 9


def test_too_few_documents_for_the_split_give_a_clear_error_not_a_traceback():
    seven = make(7)  # three labels, two or three documents each: a 20% test share holds 2 of them
    with pytest.raises(ScalecodeError, match=r"the 7 gold documents cannot be split 0\.2 for testing"):
        split_gold(seven, test_size=0.2, seed=0)
    grouped = make(20, groups=True)  # two speeches: three stratified folds cannot be drawn
    with pytest.raises(ScalecodeError, match=r"evaluation\.test_size"):
        split_gold(grouped, test_size=0.3, seed=0)


def test_a_small_subsample_is_drawn_though_it_cannot_hold_every_label_in_proportion():
    from scalecode.splits import subsample_gold

    drawn = subsample_gold(make(7), 5, seed=0)
    assert len(drawn) == 5 and len(set(drawn.ids)) == 5

"""What of the test split a coder may have seen before it is scored: codebook examples that are test
documents, and test texts repeated in the training split."""

from __future__ import annotations

from scalecode.backend import GoldSet
from scalecode.splits import leakage
from scalecode.task import Example, Task, TaskType

TASK = Task(type=TaskType.CLASSIFICATION, labels=["pos", "neg"])


def gold(ids: list[str], texts: list[str]) -> GoldSet:
    return GoldSet(task=TASK, ids=ids, texts=texts, targets=["pos"] * len(ids))


TRAIN = gold(["a", "b", "c"], ["a fine day", "a grim day", "We the people"])
TEST = gold(["x", "y", "z"], ["rain again", "we  THE people", "sun at last"])


def test_a_clean_split_and_codebook_have_nothing_to_say():
    clean = gold(["x", "z"], ["rain again", "sun at last"])
    assert leakage(TRAIN, clean, [Example(text="an example of my own", label="pos")]) == []


def test_codebook_examples_that_are_test_documents_are_named():
    examples = [
        Example(text="anything", label="pos", id="x"),  # by id
        Example(text="Sun   at LAST", label="pos"),  # by text: case and spacing aside
        Example(text="a fine day", label="pos", id="a"),  # a training document: fine
    ]
    [warning, _] = leakage(TRAIN, TEST, examples)
    assert warning.startswith("2 codebook example(s) are test documents (x, z)")


def test_a_test_text_repeated_in_training_is_named():
    [warning] = leakage(TRAIN, TEST, [])
    assert warning.startswith("1 test document(s) have the text of a training document (y)")
    assert "group_column" in warning


def test_with_groups_set_the_advice_is_not_to_set_them():
    """SOTU paragraphs grouped by address: a paragraph repeated in two addresses is on both sides."""
    train = GoldSet(task=TASK, ids=["a"], texts=["We the people"], targets=["pos"], groups=["1980-a"])
    test = GoldSet(task=TASK, ids=["y"], texts=["we the people"], targets=["pos"], groups=["1980-b"])
    [warning] = leakage(train, test, [])
    assert "set data.gold.group_column" not in warning
    assert "in different groups (data.gold.group_column)" in warning and "one group" in warning


def test_many_are_counted_and_a_few_named():
    train = gold([f"t{i}" for i in range(8)], ["same"] * 8)
    test = gold([f"s{i}" for i in range(8)], ["same"] * 8)
    [warning] = leakage(train, test, [])
    assert warning.startswith("8 test document(s)") and "s0, s1, s2, s3, s4, and 3 more" in warning

"""The codebook: labels in any convenient form, checked against the task type."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from scalecode.task import Task, TaskType


def test_label_shorthands():
    by_list = Task(type="classification", labels=["pos", "neg"])
    by_mapping = Task(type="classification", labels={"pos": "praise", "neg": "criticism"})
    assert by_list.label_names == by_mapping.label_names == ["pos", "neg"]
    assert by_mapping.labels[0].description == "praise"
    assert by_list.type is TaskType.CLASSIFICATION


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"type": "classification", "labels": ["only"]}, "at least 2 labels"),
        ({"type": "classification", "labels": ["a", "a"]}, "repeated: a"),
        ({"type": "multilabel"}, "at least 1 labels"),
        ({"type": "regression", "labels": ["a"]}, "remove 'labels'"),
        ({"type": "regression", "scale": {"min": 1, "max": 0}}, "must be below"),
        (
            {"type": "classification", "labels": ["a", "b"], "scale": {"min": 0, "max": 1}},
            "regression tasks only",
        ),
        ({"type": "ranking"}, "type"),
        ({"type": "regression", "label": "typo"}, "Extra inputs"),
    ],
)
def test_invalid_codebooks(kwargs, message):
    with pytest.raises(ValidationError, match=message):
        Task(**kwargs)

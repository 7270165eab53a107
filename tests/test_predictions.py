"""Answers are checked against the codebook: nonsense becomes an error row that keeps the raw answer."""

from __future__ import annotations

import math

import pytest

from scalecode.backend import Predictions
from scalecode.predictions import BatchShapeError, error_rows, predictions_table, to_retry
from scalecode.task import Task, TaskType

CLASSIFY = Task(type=TaskType.CLASSIFICATION, labels=["pos", "neg"])


def test_valid_labels_with_probabilities():
    table = predictions_table(
        Predictions(
            label=["pos", "neg"], confidence=[0.9, 0.6], probabilities={"pos": [0.9, 0.4], "neg": [0.1, 0.6]}
        ),
        ids=["1", "2"],
        backend="b",
        task=CLASSIFY,
        latency_s=2.0,
    )
    rows = table.to_pylist()
    assert [r["label"] for r in rows] == ["pos", "neg"]
    assert rows[0]["probabilities"] == {"pos": 0.9, "neg": 0.1}
    assert all(r["error"] is None for r in rows)
    assert [r["latency_s"] for r in rows] == [1.0, 1.0]


def test_label_outside_the_codebook_is_an_error_row_keeping_the_answer():
    rows = predictions_table(
        Predictions(label=["pos", "Positive!"]), ids=["1", "2"], backend="b", task=CLASSIFY
    ).to_pylist()
    assert rows[1]["label"] is None
    assert rows[1]["error"] == "invalid label 'Positive!': not in the codebook"
    assert rows[1]["raw"] == "Positive!"
    assert rows[0]["error"] is None


def test_scores_that_are_not_numbers_and_confidences_that_are_not_probabilities():
    task = Task(type=TaskType.REGRESSION)
    rows = predictions_table(
        Predictions(score=[0.5, math.nan, None, 1.0], confidence=[0.5, 0.5, 0.5, 7.0]),
        ids=list("abcd"),
        backend="b",
        task=task,
    ).to_pylist()
    assert rows[0]["score"] == 0.5 and rows[0]["error"] is None
    assert "not a finite number" in rows[1]["error"]
    assert "not a finite number" in rows[2]["error"]
    assert "not a probability" in rows[3]["error"] and rows[3]["score"] is None


def test_scores_given_as_numeric_strings_are_the_numbers_in_one_pass_or_one_by_one():
    """The fast path for a batch of finite scores writes the numbers it checked, as the slow path
    does, not the strings: a batch of "1.5"s was a batch of errors."""
    task = Task(type=TaskType.REGRESSION)
    for given in (["1.5", "2"], ["1.5", "x"]):
        rows = predictions_table(Predictions(score=given), ids=["a", "b"], backend="b", task=task).to_pylist()
        assert rows[0]["score"] == 1.5 and rows[0]["error"] is None
    assert rows[1]["score"] is None and "not a finite number" in rows[1]["error"]


@pytest.mark.parametrize(
    ("pos", "neg"),
    [
        ([0.9, math.nan], [0.1, 0.5]),
        ([0.9, None], [0.1, 0.5]),
        ([0.9, -3.0], [0.1, 7.0]),
        ([0.9, "x"], [0.1, 0.5]),
    ],
    ids=["nan", "missing", "outside-0-1", "not-a-number"],
)
def test_probabilities_that_are_not_probabilities_make_an_error_row(pos, neg):
    rows = predictions_table(
        Predictions(label=["pos", "neg"], probabilities={"pos": pos, "neg": neg}),
        ids=["1", "2"],
        backend="b",
        task=CLASSIFY,
    ).to_pylist()
    assert rows[0]["error"] is None and rows[0]["probabilities"] == {"pos": 0.9, "neg": 0.1}
    assert rows[1]["label"] is None and rows[1]["probabilities"] is None
    assert "are not all numbers from 0 to 1" in rows[1]["error"]


@pytest.mark.parametrize("probabilities", [{}, {"high": [0.2, 0.9]}], ids=["empty", "some"])
def test_probabilities_beside_scores_are_let_be(probabilities):
    """A regression task has no labels to give probabilities of: a backend that sends some anyway
    (a wrapped classifier) still has its scores written."""
    rows = predictions_table(
        Predictions(score=[0.5, 1.0], probabilities=probabilities),
        ids=["a", "b"],
        backend="b",
        task=Task(type=TaskType.REGRESSION),
    ).to_pylist()
    assert [r["score"] for r in rows] == [0.5, 1.0] and all(r["error"] is None for r in rows)


def test_multilabel_sets_are_checked_and_ordered_by_the_codebook():
    task = Task(type=TaskType.MULTILABEL, labels=["a", "b", "c"])
    rows = predictions_table(
        Predictions(labels=[["c", "a", "a"], ["z"], []]), ids=["1", "2", "3"], backend="b", task=task
    ).to_pylist()
    assert rows[0]["labels"] == ["a", "c"]
    assert rows[1]["error"].startswith("invalid labels ['z']")
    assert rows[2]["labels"] == []


def test_backend_errors_are_kept():
    rows = predictions_table(
        Predictions(label=[None, "pos"], error=["too long", None]), ids=["1", "2"], backend="b", task=CLASSIFY
    ).to_pylist()
    assert rows[0]["error"] == "too long"
    assert rows[1]["label"] == "pos"


def test_errors_marked_as_passing_are_to_be_coded_again_and_nothing_else_is():
    table = predictions_table(
        Predictions(
            label=[None, "pos", None], error=["timed out", None, "refused"], retry=[True, True, False]
        ),
        ids=["1", "2", "3"],
        backend="b",
        task=CLASSIFY,
    )
    assert table.column("retry").to_pylist() == [True, False, False]  # a coded row is never retried
    assert to_retry(table).to_pylist() == [True, False, False]
    plain = predictions_table(Predictions(label=["pos"]), ids=["1"], backend="b", task=CLASSIFY)
    assert "retry" not in plain.column_names and to_retry(plain).to_pylist() == [False]


def test_answers_that_cannot_be_lined_up_raise():
    with pytest.raises(BatchShapeError, match="2 values in 'label' for 3 documents"):
        predictions_table(Predictions(label=["pos", "neg"]), ids=["1", "2", "3"], backend="b", task=CLASSIFY)
    with pytest.raises(BatchShapeError, match="must fill 'label'"):
        predictions_table(Predictions(score=[1.0]), ids=["1"], backend="b", task=CLASSIFY)
    with pytest.raises(BatchShapeError, match="not Predictions"):
        predictions_table(["pos"], ids=["1"], backend="b", task=CLASSIFY)  # type: ignore[arg-type]
    with pytest.raises(BatchShapeError, match="one entry per codebook label"):
        predictions_table(
            Predictions(label=["pos"], probabilities={"pos": [1.0]}), ids=["1"], backend="b", task=CLASSIFY
        )


def test_error_rows_have_the_standard_columns():
    table = error_rows(["x"], backend="b", task=CLASSIFY, reasons=["empty text"])
    assert table.column_names == [
        "id",
        "backend",
        "label",
        "confidence",
        "probabilities",
        "error",
        "raw",
        "latency_s",
    ]
    assert table.to_pylist()[0]["error"] == "empty text"


def test_a_multilabel_answer_given_as_one_string_is_an_error_row_not_its_letters():
    """Iterated, "ab" would be the labels "a" and "b": silently wrong where labels are letters."""
    task = Task(type=TaskType.MULTILABEL, labels=["a", "b", "c"])
    rows = predictions_table(
        Predictions(labels=["ab", ["a", "b"], "c"]), ids=["1", "2", "3"], backend="b", task=task
    ).to_pylist()
    assert rows[0]["labels"] is None and rows[0]["error"] == "labels must be a list, not str"
    assert rows[0]["raw"] == "'ab'"
    assert rows[1]["labels"] == ["a", "b"] and rows[1]["error"] is None
    assert rows[2]["error"] == "labels must be a list, not str"


@pytest.mark.parametrize("name", ["path", "row", "doc_hash", "coded_at"])
def test_an_extra_column_named_like_one_the_pipeline_adds_is_refused(name):
    with pytest.raises(BatchShapeError, match=f"extra column '{name}' collides with a column scalecode adds"):
        predictions_table(
            Predictions(label=["pos"], extra={name: [1]}), ids=["1"], backend="b", task=CLASSIFY
        )


def test_the_reserved_names_are_the_columns_the_pipeline_adds():
    from scalecode.inference import DOC_HASH, PATH
    from scalecode.predictions import CODED_AT, PIPELINE_COLUMNS
    from scalecode.sources import ROW

    assert set(PIPELINE_COLUMNS) == {PATH, ROW, DOC_HASH, CODED_AT}

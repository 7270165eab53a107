"""Turning a backend's Predictions into rows of the predictions table, checked against the codebook.

One row per (document, backend): ``id``, ``backend``, the code (``label``, ``labels`` or ``score``),
``confidence``, ``probabilities`` (one field per label), ``error`` (null when coded), ``raw`` (the
backend's answer when it was not a valid code), ``latency_s``, ``retry`` where a backend marks errors
that may pass (true: the next run codes the document again) and any backend-specific columns.
An answer outside the codebook becomes an error row that keeps the raw answer: never a crash,
never a guess.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from scalecode.backend import Predictions
from scalecode.task import Task, TaskType

STANDARD_COLUMNS = (
    "id",
    "backend",
    "label",
    "labels",
    "score",
    "confidence",
    "probabilities",
    "error",
    "raw",
    "latency_s",
    "retry",
)
RETRY = "retry"
# When a corpus row was written (or just after the row written before it, where the clock said
# earlier): the newest row of a document is its current code.
CODED_AT = "coded_at"
# Columns the corpus pipeline adds beside a backend's: where a row came from (inference.PATH,
# sources.ROW), its document's hash (inference.DOC_HASH) and CODED_AT. A backend's extra column of
# one of these names would collide with them in the shard writer or in the shards.
PIPELINE_COLUMNS = ("path", "row", "doc_hash", CODED_AT)


class BatchShapeError(ValueError):
    """A backend returned something that cannot be lined up with its input documents."""


def code_column(task: Task) -> str:
    """The name of the column holding the code for this task type."""
    return {TaskType.CLASSIFICATION: "label", TaskType.MULTILABEL: "labels", TaskType.REGRESSION: "score"}[
        task.type
    ]


def _probability_type(task: Task) -> pa.DataType:
    return pa.struct([pa.field(name, pa.float64()) for name in task.label_names])


def base_schema(task: Task) -> pa.Schema:
    """The standard columns for a task, in order, without backend-specific extras."""
    code_type = {
        TaskType.CLASSIFICATION: pa.string(),
        TaskType.MULTILABEL: pa.list_(pa.string()),
        TaskType.REGRESSION: pa.float64(),
    }[task.type]
    fields = [
        pa.field("id", pa.string()),
        pa.field("backend", pa.string()),
        pa.field(code_column(task), code_type),
        pa.field("confidence", pa.float64()),
    ]
    if task.type is not TaskType.REGRESSION:
        fields.append(pa.field("probabilities", _probability_type(task)))
    fields += [
        pa.field("error", pa.string()),
        pa.field("raw", pa.string()),
        pa.field("latency_s", pa.float64()),
    ]
    return pa.schema(fields)


def _column(value: Any, n: int, field: str) -> list[Any] | None:
    if value is None:
        return None
    values = value.tolist() if isinstance(value, np.ndarray) else list(value)
    if len(values) != n:
        raise BatchShapeError(f"backend returned {len(values)} values in '{field}' for {n} documents")
    return values


def _finite(value: Any) -> float | None:
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _finite_array(values: list[Any]) -> np.ndarray | None:
    """The values as floats where every one is a finite number (numeric strings too, as ``_finite``
    takes them one by one), else None."""
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        return None
    return array if array.shape == (len(values),) and bool(np.isfinite(array).all()) else None


def _strings(values: list[Any]) -> pa.Array:
    if all(v is None for v in values):
        return pa.nulls(len(values), pa.string())
    return pa.array([None if v is None else str(v) for v in values], pa.string())


def predictions_table(
    predictions: Predictions,
    *,
    ids: Sequence[str],
    backend: str,
    task: Task,
    latency_s: float = 0.0,
) -> pa.Table:
    """Check a backend's answers against the codebook and lay them out as predictions rows.

    Raises BatchShapeError when the answers cannot be matched to the documents (wrong length);
    the caller turns the batch into error rows or retries documents one by one.
    """
    n = len(ids)
    if not isinstance(predictions, Predictions):
        raise BatchShapeError(f"predict_batch returned {type(predictions).__name__}, not Predictions")
    codebook = set(task.label_names)
    errors = _column(predictions.error, n, "error") or [None] * n
    raws = _column(predictions.raw, n, "raw") or [None] * n
    confidences = _column(predictions.confidence, n, "confidence") or [None] * n
    codes: list[Any] = [None] * n
    field = code_column(task)
    given = _column(getattr(predictions, field), n, field)
    if given is None and any(e is None for e in errors):
        raise BatchShapeError(f"a {task.type} backend must fill '{field}'")
    given = given or [None] * n
    # The common case of a numeric coder (a dictionary, a regression head): finite scores, no errors,
    # no confidences. Checked at once, not score by score; millions of documents come through here.
    scores = (
        _finite_array(given)
        if task.type is TaskType.REGRESSION and predictions.error is None and predictions.confidence is None
        else None
    )
    vectorised = scores is not None
    if scores is not None:
        codes = scores.tolist()  # the numbers, not what was given: "1.5" is the score 1.5

    for i in range(0 if vectorised else n):
        if errors[i] is not None:
            continue
        answer = given[i]
        if task.type is TaskType.CLASSIFICATION:
            if answer is None:
                errors[i] = "backend gave no label"
            elif str(answer) not in codebook:
                errors[i] = f"invalid label {str(answer)!r}: not in the codebook"
                raws[i] = raws[i] if raws[i] is not None else str(answer)
            else:
                codes[i] = str(answer)
        elif task.type is TaskType.MULTILABEL:
            if answer is None:
                errors[i] = "backend gave no label set"
                continue
            if isinstance(answer, (str, bytes)):
                # Iterated, "ab" would be the labels "a" and "b": accepted where labels are letters.
                errors[i] = f"labels must be a list, not {type(answer).__name__}"
                raws[i] = raws[i] if raws[i] is not None else repr(answer)
                continue
            labels = [str(a) for a in answer]
            unknown = [a for a in labels if a not in codebook]
            if unknown:
                errors[i] = f"invalid labels {unknown}: not in the codebook"
                raws[i] = raws[i] if raws[i] is not None else repr(labels)
            else:
                codes[i] = sorted(set(labels), key=task.label_names.index)
        else:
            score = _finite(answer)
            if score is None:
                errors[i] = f"score {answer!r} is not a finite number"
                raws[i] = raws[i] if raws[i] is not None else repr(answer)
            else:
                codes[i] = score
        conf = confidences[i]
        if errors[i] is None and conf is not None:
            value = _finite(conf)
            if value is None or not 0.0 <= value <= 1.0:
                errors[i] = f"confidence {conf!r} is not a probability"
                codes[i] = None
            else:
                confidences[i] = value

    probabilities = _probability_arrays(predictions, task, errors, n)
    for i in range(n):
        if errors[i] is not None:
            codes[i] = None
            confidences[i] = None

    columns: dict[str, pa.Array] = {
        "id": pa.array([str(i) for i in ids], pa.string()),
        "backend": pa.array([backend] * n, pa.string()),
        field: pa.array(codes, base_schema(task).field(field).type),
        "confidence": pa.array([_finite(c) for c in confidences], pa.float64())
        if predictions.confidence is not None
        else pa.nulls(n, pa.float64()),
    }
    if task.type is not TaskType.REGRESSION:
        columns["probabilities"] = _probabilities(probabilities, task, errors, n)
    columns["error"] = _strings(errors)
    columns["raw"] = _strings(raws)
    columns["latency_s"] = pa.array(np.full(n, latency_s / max(n, 1)), pa.float64())
    retry = _column(predictions.retry, n, RETRY)
    if retry is not None:
        columns[RETRY] = pa.array([bool(r) and e is not None for r, e in zip(retry, errors, strict=True)])
    for name, values in predictions.extra.items():
        if name in STANDARD_COLUMNS:
            raise BatchShapeError(f"extra column {name!r} collides with a standard column")
        if name in PIPELINE_COLUMNS:
            raise BatchShapeError(f"extra column {name!r} collides with a column scalecode adds")
        columns[name] = pa.array(_column(values, n, name))
    return pa.table(columns)


def _probability_arrays(
    predictions: Predictions, task: Task, errors: list[Any], n: int
) -> list[np.ndarray] | None:
    """Each codebook label's probabilities (None where the backend gives none). A coded document whose
    probabilities are not all numbers from 0 to 1 gets an error in ``errors``: a NaN or a 7 written
    beside its label would pass into every analysis that reads them."""
    if predictions.probabilities is None or task.type is TaskType.REGRESSION:  # a score has none
        return None
    missing = [name for name in task.label_names if name not in predictions.probabilities]
    unknown = [name for name in predictions.probabilities if name not in task.label_names]
    if missing or unknown:
        raise BatchShapeError(
            f"probabilities must have one entry per codebook label; missing {missing}, unknown {unknown}"
        )
    arrays = []
    for name in task.label_names:
        values = _column(predictions.probabilities[name], n, f"probabilities.{name}") or [None] * n
        try:
            arrays.append(np.asarray(values, dtype=np.float64))
        except (TypeError, ValueError):  # a string among them: each value is judged below
            arrays.append(np.array([_finite(v) for v in values], dtype=np.float64))
    matrix = np.stack(arrays, axis=1)
    bad = ~(np.isfinite(matrix) & (matrix >= 0) & (matrix <= 1)).all(axis=1)
    for i in np.flatnonzero(bad):
        if errors[i] is None:
            given = {name: float(v) for name, v in zip(task.label_names, matrix[i], strict=True)}
            errors[i] = f"probabilities {given} are not all numbers from 0 to 1"
    return arrays


def _probabilities(arrays: list[np.ndarray] | None, task: Task, errors: list[Any], n: int) -> pa.Array:
    struct_type = _probability_type(task)
    if arrays is None:
        return pa.nulls(n, struct_type)
    valid = pa.array([e is None for e in errors], pa.bool_())
    return pa.StructArray.from_arrays(
        [pa.array(a, pa.float64()) for a in arrays], fields=list(struct_type), mask=pc.invert(valid)
    )


def error_rows(ids: Sequence[str], *, backend: str, task: Task, reasons: Sequence[str]) -> pa.Table:
    """Rows for documents that were not coded, each with its reason."""
    n = len(ids)
    if len(reasons) != n:
        raise ValueError("one reason per id")
    schema = base_schema(task)
    columns = {
        f.name: pa.nulls(n, f.type) for f in schema if f.name not in ("id", "backend", "error", "latency_s")
    }
    columns["id"] = pa.array([str(i) for i in ids], pa.string())
    columns["backend"] = pa.array([backend] * n, pa.string())
    columns["error"] = pa.array(list(reasons), pa.string())
    columns["latency_s"] = pa.array(np.zeros(n), pa.float64())
    return pa.table({f.name: columns[f.name] for f in schema})


def conform(table: pa.Table, task: Task) -> pa.Table:
    """Give a batch the standard columns in the standard order (extras after), so batches concatenate."""
    schema = base_schema(task)
    columns = {
        f.name: table.column(f.name) if f.name in table.column_names else pa.nulls(len(table), f.type)
        for f in schema
    }
    extras = {name: table.column(name) for name in table.column_names if name not in columns}
    return pa.table({**columns, **extras})


def to_retry(table: pa.Table) -> pa.Array:
    """Which rows hold an error the backend marked as passing: their documents are coded again."""
    if RETRY not in table.column_names:
        return pa.array([False] * len(table), pa.bool_())
    return pc.fill_null(table.column(RETRY), False).combine_chunks()

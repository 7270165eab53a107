"""``scalecode score``: score any predictions file (ours or anyone's) against a gold file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl
from pydantic import ValidationError

from scalecode.config import GoldConfig, TableConfig, read_yaml
from scalecode.data import load_gold, read_table, require_columns
from scalecode.errors import ConfigError, DataError
from scalecode.manifest import nan_to_null
from scalecode.plugins import Plugins
from scalecode.predictions import CODED_AT, code_column
from scalecode.scoring import metrics_for, score_predictions
from scalecode.scoring.table import comparison_markdown
from scalecode.task import Task, TaskType


def load_task(
    spec: str,
    gold: pl.DataFrame,
    predictions: pl.DataFrame,
    gold_column: str,
    pred_column: str,
    separator: str | None,
) -> Task:
    """A task from a YAML file (job file or bare task), or a type name with labels taken from the data."""
    if spec in {t.value for t in TaskType}:
        task_type = TaskType(spec)
        if task_type is TaskType.REGRESSION:
            return Task(type=task_type)
        values: set[str] = set()
        for frame, column in ((gold, gold_column), (predictions, pred_column)):
            for value in frame[column].drop_nulls().to_list():
                if isinstance(value, list):
                    values.update(str(v) for v in value)
                elif separator and task_type is TaskType.MULTILABEL:
                    values.update(p.strip() for p in str(value).split(separator) if p.strip())
                else:
                    values.add(str(value))
        return Task(type=task_type, labels=sorted(values))
    data, _ = read_yaml(Path(spec))
    block = data.get("task", data) if isinstance(data, dict) else data
    try:
        return Task.model_validate(block)
    except ValidationError as exc:
        raise ConfigError(spec, "task", str(exc).splitlines()[-1]) from None


def _normalise_predictions(
    frame: pl.DataFrame, task: Task, column: str, separator: str | None
) -> pl.DataFrame:
    """Predictions as (id, backend, code, error), with codes outside the codebook turned into errors."""
    target = code_column(task)
    errors = (
        frame["error"] if "error" in frame.columns else pl.Series("error", [None] * frame.height, pl.String)
    )
    values = frame[column]
    if task.type is TaskType.REGRESSION:
        numbers = values.cast(pl.Float64, strict=False)
        # NaN and infinity are bad values of this document, as text is: the library calls would
        # refuse the whole backend ("Input contains NaN") and end the command.
        finite = numbers.is_finite().fill_null(False)
        bad = ~finite & errors.is_null()
        codes: pl.Series = numbers
        reason = "prediction is not a finite number"
    elif task.type is TaskType.CLASSIFICATION:
        codes = values.cast(pl.String)
        bad = ~codes.is_in(task.label_names) & errors.is_null()
        reason = "predicted label not in the codebook"
    else:
        lists = values.to_list()
        if values.dtype == pl.String:
            lists = [
                None if v is None else [p.strip() for p in v.split(separator or ";") if p.strip()]
                for v in lists
            ]
        # A row that is there without an error and has no labels says "none of them": an empty cell
        # reads as null, and dropping it as an error would hide the coder's misses. (A document with
        # no row at all is still "no prediction".)
        lists = [[] if v is None else v for v in lists]
        codes = pl.Series(target, lists, pl.List(pl.String))
        bad = pl.Series([any(x not in task.label_names for x in v) for v in lists]) & errors.is_null()
        reason = "predicted labels not in the codebook"
    errors = pl.select(pl.when(bad).then(pl.lit(reason)).otherwise(errors)).to_series()
    codes = pl.select(pl.when(errors.is_null()).then(codes)).to_series()
    return frame.select("id", "backend").with_columns(codes.alias(target), errors.alias("error"))


def score_files(
    predictions: Path,
    gold: Path,
    task_spec: str,
    plugins: Plugins,
    *,
    id_column: str = "id",
    gold_column: str = "label",
    prediction_column: str | None = None,
    label_separator: str | None = None,
    n_boot: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[str, dict[str, Any]]:
    readers = plugins.readers
    pred_frame = read_table(TableConfig(path=str(predictions), id_column=id_column), readers)
    gold_frame = read_table(TableConfig(path=str(gold), id_column=id_column), readers)
    require_columns(gold_frame, str(gold), {"--id-column": id_column, "--gold-column": gold_column})
    guess = prediction_column or next(
        (c for c in ("label", "labels", "score") if c in pred_frame.columns), "label"
    )
    require_columns(pred_frame, str(predictions), {"--id-column": id_column, "--prediction-column": guess})
    task = load_task(task_spec, gold_frame, pred_frame, gold_column, guess, label_separator)
    column = prediction_column or code_column(task)
    require_columns(pred_frame, str(predictions), {"--prediction-column": column})
    if "backend" not in pred_frame.columns:
        pred_frame = pred_frame.with_columns(pl.lit(predictions.stem).alias("backend"))
    pred_frame = pred_frame.with_columns(pl.col(id_column).cast(pl.String).alias("id"))
    if CODED_AT in pred_frame.columns:
        # A corpus folder holds a row per version of an edited document and per retry of a failed
        # one; the newest is the current code.
        pred_frame = pred_frame.sort(CODED_AT, maintain_order=True).unique(
            ["backend", "id"], keep="last", maintain_order=True
        )
    gold_set = load_gold(
        GoldConfig(
            path=str(gold), id_column=id_column, label_column=gold_column, label_separator=label_separator
        ),
        task,
        readers,
        texts=False,
    )
    metrics = metrics_for(task, plugins.metrics)
    results = []
    for (backend,), rows in pred_frame.group_by("backend", maintain_order=True):
        frame = _normalise_predictions(rows, task, column, label_separator)
        try:
            results.append(
                score_predictions(
                    frame,
                    gold_set,
                    metrics,
                    backend=str(backend),
                    n_boot=n_boot,
                    confidence=confidence,
                    seed=seed,
                )
            )
        except ValueError as exc:
            raise DataError(str(predictions), str(exc)) from None
    # Ranked by the figure alone: predictions for part of a gold file (its test split, say) are the
    # usual input here, and there is no job whose evaluation.min_coverage would apply; the coverage
    # column still shows how much of the gold each file coded.
    table = comparison_markdown(
        results, metrics, metrics[0], confidence=confidence if n_boot else None, min_coverage=0.0
    )
    # The data goes to ``--json`` as it is: undefined figures as null, as in metrics.json.
    return table, nan_to_null(
        {"task": task.model_dump(mode="json"), "backends": {r.backend: r.to_dict() for r in results}}
    )

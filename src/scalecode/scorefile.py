"""``scalecode score``: score any predictions file (ours or anyone's) against a gold file."""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import polars as pl
from pydantic import ValidationError

from scalecode.backend import GoldSet
from scalecode.config import GoldConfig, TableConfig, read_yaml
from scalecode.data import load_gold, read_table, require_columns
from scalecode.errors import ConfigError, DataError
from scalecode.manifest import nan_to_null
from scalecode.plugins import Plugins
from scalecode.predictions import CODED_AT, code_column
from scalecode.readers import Reader
from scalecode.scoring import metrics_for, score_predictions
from scalecode.scoring.bootstrap import resampling_unit
from scalecode.scoring.table import comparison_markdown, grouped_note
from scalecode.task import Task, TaskType

# A whole number written with a zero fraction: "1.0" is how pandas writes the integer code 1 in a
# column with a gap (a float column), and how a CSV of such a column reads (as text).
_ZERO_FRACTION = re.compile(r"(-?\d+)\.0+")
_EXACT_INTEGERS = 2.0**53  # beyond this a float no longer names one integer


def _label_text(value: Any) -> str:
    """A code as text, a whole number spelled as an integer: 1.0 and "1.0" are code "1", as 1 is.

    Other text stays as it is ("01", "1.5", "pos"), so codes that are words or padded numbers keep
    their spelling.
    """
    if isinstance(value, float):
        if math.isfinite(value) and value.is_integer() and abs(value) < _EXACT_INTEGERS:
            return str(int(value))
        return str(value)
    text = str(value)
    whole = _ZERO_FRACTION.fullmatch(text)
    return whole.group(1) if whole else text


def _split(value: str, separator: str) -> list[str]:
    return [p.strip() for p in value.split(separator) if p.strip()]


def _gold_spellings(values: pl.Series, task_type: TaskType, separator: str | None) -> dict[str, str]:
    """Each code of a gold column as ``load_gold`` spells it -> as ``_label_text`` spells it."""
    present = values.drop_nulls()
    if isinstance(present.dtype, pl.List):
        return {str(x): _label_text(x) for v in present.to_list() for x in v}
    raw = present.cast(pl.String).to_list()
    if task_type is TaskType.MULTILABEL and separator:
        return {p: _label_text(p) for v in raw for p in _split(v, separator)}
    # A float by its value (load_gold's text of it is polars'), anything else by that text.
    return {
        r: _label_text(v if isinstance(v, float) else r) for r, v in zip(raw, present.to_list(), strict=True)
    }


def _codebook_spelling(task: Task) -> dict[str, str]:
    """A predicted code's text -> the codebook's label: each label itself, and also under its
    ``_label_text`` spelling, so 1, 1.0 and "1.0" all find the label "1" (or a YAML "1.0")."""
    names = task.label_names
    spelling = {name: name for name in names}
    for name in names:
        spelling.setdefault(_label_text(name), name)
    return spelling


def _written(value: Any) -> str:
    """A code as written: text as it is, a number as ``_label_text`` spells it."""
    return value if isinstance(value, str) else _label_text(value)


def _codebook_label(spelling: dict[str, str], written: str) -> str:
    """The label a predicted code names: the one written so, else the one it is as a number; a code
    outside the codebook as ``_label_text`` spells it."""
    return spelling.get(written) or spelling.get(_label_text(written), _label_text(written))


def load_task(
    spec: str, gold: pl.DataFrame, gold_column: str, separator: str | None, predicted: pl.Series | None = None
) -> Task:
    """A task from a YAML file (job file or bare task), or a type name with labels taken from the data.

    With a type name the codebook is every code of the gold and the ``predicted`` codes, whole
    numbers spelled as integers. A predicted code the gold never uses is then a label of its own:
    a wrong answer wherever it is given, not an error row that would leave it out of the figures.
    """
    if spec in {t.value for t in TaskType}:
        task_type = TaskType(spec)
        if task_type is TaskType.REGRESSION:
            return Task(type=task_type)
        codes = set(_gold_spellings(gold[gold_column], task_type, separator).values())
        if predicted is not None:
            # Split as the predictions are when scored: "a;b" is two labels, not a label of its own.
            split = (separator or ";") if task_type is TaskType.MULTILABEL else separator
            codes |= set(_gold_spellings(predicted, task_type, split).values())
        # An empty cell is no label: it is no labels (multi-label) or an answer outside the codebook.
        return Task(type=task_type, labels=sorted(c for c in codes if c.strip()))
    data, _ = read_yaml(Path(spec))
    block = data.get("task", data) if isinstance(data, dict) else data
    try:
        return Task.model_validate(block)
    except ValidationError as exc:
        raise ConfigError(spec, "task", str(exc).splitlines()[-1]) from None


def job_options(spec: str, gold_file: Path) -> dict[str, Any]:
    """How the job file ``spec`` reads and scores its gold, as ``scalecode score``'s options name it
    (gold_id_column, gold_column, group_column, label_separator, seed, n_boot, confidence), where
    ``gold_file`` is that gold (its path as the job names it, from here or from the job's folder): a
    run's figures are then reproduced without restating them. Empty for a task type, a bare task,
    or other gold, for which a job gives its codebook only."""
    if spec in {t.value for t in TaskType}:
        return {}
    data, _ = read_yaml(Path(spec))
    gold = (data.get("data") or {}).get("gold") if isinstance(data, dict) else None
    if not isinstance(gold, dict) or not isinstance(gold.get("path"), str):
        return {}
    named = Path(gold["path"]).expanduser()
    if gold_file.resolve() not in {named.resolve(), (Path(spec).parent / named).resolve()}:
        return {}
    from scalecode.config import EvaluationConfig

    try:
        table = GoldConfig.model_validate(gold)
        evaluation = EvaluationConfig.model_validate(data.get("evaluation") or {})
    except ValidationError as exc:
        raise ConfigError(spec, "data.gold", str(exc).splitlines()[-1]) from None
    return {
        "gold_id_column": table.id_column,
        "gold_column": table.label_column,
        "group_column": table.group_column,
        "label_separator": table.label_separator,
        "seed": evaluation.seed,
        "n_boot": evaluation.bootstrap.n,
        "confidence": evaluation.bootstrap.confidence,
    }


def _load_gold_codes(
    config: GoldConfig, task: Task, frame: pl.DataFrame, readers: Sequence[Reader], *, inferred: bool
) -> GoldSet:
    """The gold, its codes spelled as a codebook taken from it (``inferred``) spells them.

    ``load_gold`` checks the codes as written ("1.0"), the inferred codebook says "1": the gold is
    then read against its own spellings and its codes renamed. A YAML codebook is the user's
    spelling, checked as ``scalecode run`` checks it.
    """
    if not inferred or task.type is TaskType.REGRESSION:
        return load_gold(config, task, readers, texts=False)
    spellings = _gold_spellings(frame[config.label_column], task.type, config.label_separator)
    if all(raw == code for raw, code in spellings.items()):
        return load_gold(config, task, readers, texts=False)
    as_written = Task(type=task.type, labels=sorted(spellings))
    read = load_gold(config, as_written, readers, texts=False)
    names = task.label_names
    if task.type is TaskType.CLASSIFICATION:
        targets: list[Any] = [spellings[t] for t in read.targets]
    else:
        targets = [tuple(sorted({spellings[x] for x in t}, key=names.index)) for t in read.targets]
    return dataclasses.replace(read, task=task, targets=targets)


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
        # 1.0 (pandas' spelling of an integer code in a column with a gap) is code 1.
        spelling = _codebook_spelling(task)
        written = (values if values.dtype.is_float() else values.cast(pl.String)).to_list()
        labels = [None if w is None else _codebook_label(spelling, _written(w)) for w in written]
        codes = pl.Series(target, labels, pl.String)
        bad = ~codes.is_in(task.label_names) & errors.is_null()
        reason = "predicted label not in the codebook"
    else:
        spelling = _codebook_spelling(task)
        rows: list[Any] = values.to_list()
        if values.dtype == pl.String:
            rows = [None if v is None else _split(v, separator or ";") for v in rows]
        # A row that is there without an error and has no labels says "none of them": an empty cell
        # reads as null, and dropping it as an error would hide the coder's misses. (A document with
        # no row at all is still "no prediction".)
        lists = [[] if v is None else [_codebook_label(spelling, _written(x)) for x in v] for v in rows]
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
    gold_id_column: str | None = None,
    gold_column: str = "label",
    prediction_column: str | None = None,
    label_separator: str | None = None,
    group_column: str | None = None,
    n_boot: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[str, dict[str, Any]]:
    readers = plugins.readers
    gold_id = gold_id_column or id_column  # a run's predictions name it "id", its gold maybe not
    pred_frame = read_table(TableConfig(path=str(predictions), id_column=id_column), readers)
    gold_frame = read_table(TableConfig(path=str(gold), id_column=gold_id), readers)
    require_columns(
        gold_frame,
        str(gold),
        {"--id-column": gold_id, "--gold-column": gold_column}
        | ({"--group-column": group_column} if group_column else {}),
    )
    guess = prediction_column or next(
        (c for c in ("label", "labels", "score") if c in pred_frame.columns), "label"
    )
    require_columns(pred_frame, str(predictions), {"--id-column": id_column, "--prediction-column": guess})
    inferred = task_spec in {t.value for t in TaskType}
    predicted = None  # the codes, where the codebook is to be taken from the data
    if inferred:
        named = prediction_column or ("labels" if task_spec == TaskType.MULTILABEL.value else "label")
        predicted = pred_frame[named] if named in pred_frame.columns else None
    task = load_task(task_spec, gold_frame, gold_column, label_separator, predicted)
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
    gold_set = _load_gold_codes(
        GoldConfig(
            path=str(gold),
            id_column=gold_id,
            label_column=gold_column,
            label_separator=label_separator,
            group_column=group_column,
        ),
        task,
        gold_frame,
        readers,
        inferred=inferred,
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
    if group_column and n_boot:
        table = table.rstrip("\n") + "\n\n" + grouped_note(group_column) + "\n"
    # The data goes to ``--json`` as it is: undefined figures as null, as in metrics.json, and with
    # metrics.json's keys for what the intervals mean and how to draw them again.
    return table, nan_to_null(
        {
            "task": task.model_dump(mode="json"),
            "confidence": confidence,
            "bootstrap_resamples": n_boot,
            "resampled": resampling_unit(group_column),
            "seed": seed,
            "backends": {r.backend: r.to_dict() for r in results},
        }
    )

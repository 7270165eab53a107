"""``scalecode score`` on predictions files from anywhere: what an empty or bad cell means."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from sklearn import metrics as skm

from scalecode.backend import GoldSet
from scalecode.errors import DataError
from scalecode.manifest import write_json
from scalecode.plugins import Plugins, load_plugins
from scalecode.scorefile import score_files
from scalecode.scoring import BUILTIN_METRICS, metrics_for, score_predictions
from scalecode.scoring.table import confusion_markdown, per_label_markdown
from scalecode.task import Task, TaskType


@pytest.fixture(scope="module")
def plugins() -> Plugins:
    return load_plugins(entry_points=False)


def test_an_empty_labels_cell_is_no_labels_and_its_misses_count(tmp_path: Path, plugins: Plugins):
    """A row that exists without an error says "none of the labels": a miss, not a dropped document."""
    pl.DataFrame({"id": ["a", "b", "c", "d"], "labels": ["x;y", "x", "y", "x"]}).write_csv(
        tmp_path / "gold.csv"
    )
    # c's cell is empty (read as null); d's labels are garbage, which stays an error.
    pl.DataFrame({"id": ["a", "b", "c", "d"], "labels": ["x;y", "x", None, "zzz"]}).write_csv(
        tmp_path / "coder.csv"
    )
    (tmp_path / "task.yaml").write_text("type: multilabel\nlabels: [x, y]\n")
    _, result = score_files(
        tmp_path / "coder.csv",
        tmp_path / "gold.csv",
        str(tmp_path / "task.yaml"),
        plugins,
        gold_column="labels",
        label_separator=";",
        n_boot=20,
    )
    scores = result["backends"]["coder"]
    assert (scores["n_scored"], scores["n_errors"]) == (3, 1)
    assert [e["id"] for e in scores["error_examples"]] == ["d"]
    gold = [[1, 1], [1, 0], [0, 1]]
    coded = [[1, 1], [1, 0], [0, 0]]
    expected = skm.f1_score(gold, coded, average="micro")
    assert scores["metrics"]["micro_f1"]["value"] == pytest.approx(expected)
    assert scores["metrics"]["subset_accuracy"]["value"] == pytest.approx(2 / 3)


def test_an_empty_labels_list_in_parquet_is_no_labels_too(tmp_path: Path, plugins: Plugins):
    gold = {"id": ["a", "b"], "labels": [["x"], ["y"]]}
    pl.DataFrame(gold).write_parquet(tmp_path / "gold.parquet")
    coded = pl.DataFrame(
        {"id": ["a", "b"], "labels": [["x"], None]}, schema_overrides={"labels": pl.List(pl.String)}
    )
    coded.write_parquet(tmp_path / "coder.parquet")
    _, result = score_files(
        tmp_path / "coder.parquet",
        tmp_path / "gold.parquet",
        "multilabel",
        plugins,
        gold_column="labels",
        n_boot=20,
    )
    scores = result["backends"]["coder"]
    assert (scores["n_scored"], scores["n_errors"]) == (2, 0)
    assert scores["metrics"]["subset_accuracy"]["value"] == pytest.approx(0.5)


def test_a_nan_or_infinite_score_is_an_error_row_not_the_end_of_the_command(tmp_path: Path, plugins: Plugins):
    ids = [f"d{i}" for i in range(6)]
    gold = [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
    pl.DataFrame({"id": ids, "score": gold}).write_csv(tmp_path / "gold.csv")
    predicted = [0.5, math.nan, 2.5, math.inf, 3.5, -math.inf]
    pl.DataFrame({"id": ids, "score": predicted}).write_parquet(tmp_path / "coder.parquet")
    _, result = score_files(
        tmp_path / "coder.parquet",
        tmp_path / "gold.csv",
        "regression",
        plugins,
        gold_column="score",
        n_boot=20,
    )
    scores = result["backends"]["coder"]
    assert (scores["n_scored"], scores["n_errors"]) == (3, 3)
    assert scores["coverage"] == pytest.approx(0.5)
    assert {e["id"] for e in scores["error_examples"]} == {"d1", "d3", "d5"}
    assert all("not a finite number" in e["error"] for e in scores["error_examples"])
    expected = skm.mean_absolute_error([0.0, 2.0, 4.0], [0.5, 2.5, 3.5])
    assert scores["metrics"]["mae"]["value"] == pytest.approx(expected)


def _strict(text: str) -> object:
    """Parse as strict JSON parsers do: NaN and Infinity are not JSON."""

    def refuse(constant: str) -> None:
        raise ValueError(f"not JSON: {constant}")

    return json.loads(text, parse_constant=refuse)


def test_json_files_hold_null_for_undefined_figures_and_nothing_else_changes(tmp_path: Path):
    data = {
        "r2": {"value": math.nan, "ci_low": -math.inf, "ci_high": math.inf, "n": 3},
        "draws": [1.5, np.float64("nan"), (2, math.nan)],
        "deep": [{"a": [{"b": math.nan}]}],
        "kept": {"flag": True, "count": 0, "none": None, "text": "NaN", "path": Path("x/y")},
    }
    write_json(tmp_path / "metrics.json", data)
    assert _strict((tmp_path / "metrics.json").read_text()) == {
        "r2": {"value": None, "ci_low": None, "ci_high": None, "n": 3},
        "draws": [1.5, None, [2, None]],
        "deep": [{"a": [{"b": None}]}],
        "kept": {"flag": True, "count": 0, "none": None, "text": "NaN", "path": "x/y"},
    }
    finite = {"a": [1.25, 2, "b", None, (3, 4.5)], "b": {"c": Path("p")}}
    write_json(tmp_path / "finite.json", finite)
    assert (tmp_path / "finite.json").read_text() == json.dumps(finite, indent=2, default=str) + "\n"


def test_score_json_holds_null_for_an_undefined_figure(tmp_path: Path, plugins: Plugins):
    pl.DataFrame({"id": ["a", "b", "c"], "score": [1.0, 1.0, 1.0]}).write_csv(tmp_path / "gold.csv")
    pl.DataFrame({"id": ["a", "b", "c"], "score": [1.0, 2.0, 3.0]}).write_csv(tmp_path / "coder.csv")
    _, result = score_files(
        tmp_path / "coder.csv", tmp_path / "gold.csv", "regression", plugins, gold_column="score", n_boot=20
    )
    r2 = _strict(json.dumps(result))["backends"]["coder"]["metrics"]["r2"]  # type: ignore[index]
    assert r2 == {"value": None, "ci_low": None, "ci_high": None, "n": 3, "undefined_share": 1.0}


def test_a_group_column_makes_the_intervals_resample_whole_groups(tmp_path: Path, plugins: Plugins):
    """Twenty groups, a coder right on all of some and wrong on all of others: resampled by group the
    interval is far wider than resampled by document, and the JSON says which it is."""
    ids = [f"{g:02d}-{i}" for g in range(20) for i in range(10)]
    gold = ["x" if i % 2 else "y" for i in range(len(ids))]
    wrong = {g for g in range(20) if g % 3 == 0}
    coded = [("y" if c == "x" else "x") if int(d[:2]) in wrong else c for d, c in zip(ids, gold, strict=True)]
    pl.DataFrame({"id": ids, "label": gold, "speech": [d[:2] for d in ids]}).write_csv(tmp_path / "gold.csv")
    pl.DataFrame({"id": ids, "label": coded}).write_csv(tmp_path / "coder.csv")

    def accuracy(**options: str) -> tuple[dict[str, float], str]:
        _, result = score_files(
            tmp_path / "coder.csv", tmp_path / "gold.csv", "classification", plugins, n_boot=300, **options
        )
        return result["backends"]["coder"]["metrics"]["accuracy"], result["resampled"]

    by_document, unit = accuracy()
    assert unit == "documents"
    by_group, unit = accuracy(group_column="speech")
    assert unit == "groups: speech"
    assert by_group["value"] == by_document["value"] == pytest.approx(0.65)
    assert by_group["ci_high"] - by_group["ci_low"] > 2 * (by_document["ci_high"] - by_document["ci_low"])
    with pytest.raises(DataError, match=r"gold.csv: column .author. \(--group-column\) not found"):
        accuracy(group_column="author")


def test_inferred_multilabel_codes_are_split_as_the_predictions_are_scored(tmp_path: Path, plugins: Plugins):
    """Without --label-separator, predictions are split on ";" when scored: "a;b" is the labels a and
    b, not a third label that no document has (which counted in Hamming loss); an empty cell is no
    labels, not a label called ""."""
    gold = {"id": ["1", "2", "3", "4"], "labels": [["a"], ["b"], ["a", "b"], []]}
    pl.DataFrame(gold, schema={"id": pl.String, "labels": pl.List(pl.String)}).write_parquet(
        tmp_path / "gold.parquet"
    )
    (tmp_path / "coder.csv").write_text('id,labels\n1,a\n2,a\n3,"a;b"\n4,""\n')
    results = [
        score_files(
            tmp_path / "coder.csv",
            tmp_path / "gold.parquet",
            "multilabel",
            plugins,
            gold_column="labels",
            **extra,
        )[1]
        for extra in ({}, {"label_separator": ";"})
    ]
    for result in results:
        assert [label["name"] for label in result["task"]["labels"]] == ["a", "b"]
        coder = result["backends"]["coder"]
        assert coder["n_errors"] == 0
        assert coder["metrics"]["hamming_loss"]["value"] == pytest.approx(2 / 8)  # doc 2: a, not b


def cells_per_row(markdown: str) -> set[int]:
    """How many cells each row of a Markdown table has, a bar escaped as \\| not counting."""
    rows = [line for line in markdown.splitlines() if line.startswith("|")]
    return {len(line.replace("\\|", "").strip("|").split("|")) for line in rows}


def test_a_bar_in_a_label_or_backend_name_stays_in_its_cell(tmp_path: Path, plugins: Plugins):
    labels = ["Economy | Trade", "Crime", "Crime"]
    pl.DataFrame({"id": ["1", "2", "3"], "label": labels}).write_csv(tmp_path / "gold.csv")
    coded = {
        "id": ["1", "2", "3"],
        "label": ["Economy | Trade", "Crime", "Economy | Trade"],
        "backend": ["a|b"] * 3,
    }
    pl.DataFrame(coded).write_csv(tmp_path / "coder.csv")
    table, _ = score_files(tmp_path / "coder.csv", tmp_path / "gold.csv", "classification", plugins, n_boot=0)
    assert len(cells_per_row(table)) == 1 and "a\\|b" in table

    task = Task(type=TaskType.CLASSIFICATION, labels=["Crime", "Economy | Trade"])
    gold = GoldSet(task=task, ids=["1", "2", "3"], texts=[""] * 3, targets=labels)
    scores = score_predictions(
        pl.DataFrame(coded), gold, metrics_for(task, BUILTIN_METRICS, ["accuracy"]), backend="a|b", n_boot=0
    )
    assert cells_per_row(per_label_markdown(scores)) == {5}
    assert cells_per_row(confusion_markdown(scores)) == {3}

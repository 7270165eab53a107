"""``scalecode score --task <type>``: labels written as 1 and 1.0 are one code, the codebook is the
gold's, and the JSON says how its intervals were drawn."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner

from scalecode.cli import cli
from scalecode.plugins import Plugins, load_plugins
from scalecode.scorefile import score_files


@pytest.fixture(scope="module")
def plugins() -> Plugins:
    return load_plugins(entry_points=False)


def names(result: dict) -> list[str]:
    return [label["name"] for label in result["task"]["labels"]]


def test_integer_gold_and_float_predictions_are_the_same_codes(tmp_path: Path, plugins: Plugins):
    """pandas writes 1.0 for a code column with a missing value; that is still code 1."""
    (tmp_path / "gold.csv").write_text("id,label\n1,1\n2,2\n3,1\n4,2\n5,3\n6,3\n")
    (tmp_path / "pred.csv").write_text("id,label\n1,1.0\n2,2.0\n3,1.0\n4,\n5,3.0\n6,3.0\n")
    _, result = score_files(
        tmp_path / "pred.csv", tmp_path / "gold.csv", "classification", plugins, n_boot=50
    )
    scores = result["backends"]["pred"]
    # Every coded document agrees with the gold; the empty cell is the one document not coded.
    assert scores["metrics"]["macro_f1"]["value"] == pytest.approx(1.0)
    assert scores["metrics"]["accuracy"]["value"] == pytest.approx(1.0)
    assert names(result) == ["1", "2", "3"]
    assert (scores["n_scored"], scores["n_errors"]) == (5, 1)
    assert [e["id"] for e in scores["error_examples"]] == ["4"]
    assert scores["confusion"] == {
        "labels": ["1", "2", "3"],
        "matrix": [[2, 0, 0], [0, 1, 0], [0, 0, 2]],
    }


def test_float_gold_and_integer_predictions_are_the_same_codes(tmp_path: Path, plugins: Plugins):
    (tmp_path / "gold.csv").write_text("id,label\na,1.0\nb,2.0\nc,1.0\nd,2.0\n")
    (tmp_path / "pred.csv").write_text("id,label\na,1\nb,2\nc,2\nd,2\n")
    _, result = score_files(tmp_path / "pred.csv", tmp_path / "gold.csv", "classification", plugins, n_boot=0)
    assert names(result) == ["1", "2"]
    scores = result["backends"]["pred"]
    assert (scores["n_scored"], scores["n_errors"]) == (4, 0)
    assert scores["metrics"]["accuracy"]["value"] == pytest.approx(0.75)


def test_a_predicted_code_the_gold_never_uses_is_a_wrong_answer(tmp_path: Path, plugins: Plugins):
    """A code outside the gold is a label of its own, wrong wherever given: were it an error row,
    the figures would leave those documents out and read better than the coder is."""
    (tmp_path / "gold.csv").write_text("id,label\na,1\nb,2\nc,1\nd,2\n")
    (tmp_path / "pred.csv").write_text("id,label\na,1.0\nb,2.0\nc,1.5\nd,\n")
    _, result = score_files(tmp_path / "pred.csv", tmp_path / "gold.csv", "classification", plugins, n_boot=0)
    assert names(result) == ["1", "1.5", "2"]
    scores = result["backends"]["pred"]
    assert (scores["n_scored"], scores["n_errors"]) == (3, 1)
    assert {e["id"]: e["error"] for e in scores["error_examples"]} == {"d": "no prediction"}
    assert scores["metrics"]["accuracy"]["value"] == pytest.approx(2 / 3)


def test_a_yaml_codebook_of_integers_takes_float_predictions(tmp_path: Path, plugins: Plugins):
    (tmp_path / "task.yaml").write_text("type: classification\nlabels: [1, 2, 3]\n")
    (tmp_path / "gold.csv").write_text("id,label\na,1\nb,2\nc,3\nd,3\n")
    pl.DataFrame({"id": ["a", "b", "c", "d"], "label": [1.0, 2.0, 3.0, 2.0]}).write_parquet(
        tmp_path / "pred.parquet"
    )
    _, result = score_files(
        tmp_path / "pred.parquet", tmp_path / "gold.csv", str(tmp_path / "task.yaml"), plugins, n_boot=0
    )
    scores = result["backends"]["pred"]
    assert (scores["n_scored"], scores["n_errors"]) == (4, 0)
    assert scores["metrics"]["accuracy"]["value"] == pytest.approx(0.75)


def test_multilabel_separated_codes_written_as_floats_are_the_gold_codes(tmp_path: Path, plugins: Plugins):
    (tmp_path / "gold.csv").write_text("id,labels\na,1;2\nb,2\nc,1\n")
    (tmp_path / "pred.csv").write_text("id,labels\na,2.0;1.0\nb,2.0\nc,1.0;2.0\n")
    _, result = score_files(
        tmp_path / "pred.csv",
        tmp_path / "gold.csv",
        "multilabel",
        plugins,
        gold_column="labels",
        label_separator=";",
        n_boot=0,
    )
    assert names(result) == ["1", "2"]
    scores = result["backends"]["pred"]
    assert (scores["n_scored"], scores["n_errors"]) == (3, 0)
    assert scores["metrics"]["subset_accuracy"]["value"] == pytest.approx(2 / 3)


def test_multilabel_lists_of_integers_and_floats_are_the_same_codes(tmp_path: Path, plugins: Plugins):
    pl.DataFrame({"id": ["a", "b", "c"], "labels": [[1, 2], [2], [1]]}).write_parquet(
        tmp_path / "gold.parquet"
    )
    pl.DataFrame({"id": ["a", "b", "c"], "labels": [[1.0, 2.0], [2.0], [1.0]]}).write_parquet(
        tmp_path / "pred.parquet"
    )
    _, result = score_files(
        tmp_path / "pred.parquet",
        tmp_path / "gold.parquet",
        "multilabel",
        plugins,
        gold_column="labels",
        n_boot=0,
    )
    assert names(result) == ["1", "2"]
    scores = result["backends"]["pred"]
    assert (scores["n_scored"], scores["n_errors"]) == (3, 0)
    assert scores["metrics"]["subset_accuracy"]["value"] == pytest.approx(1.0)


def test_score_json_records_the_confidence_resamples_and_seed(tmp_path: Path, monkeypatch):
    """Intervals that can be read and redrawn: the keys metrics.json uses for the same settings."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "g.csv").write_text("id,label\na,x\nb,y\nc,x\nd,y\ne,x\nf,y\n")
    (tmp_path / "p.csv").write_text("id,label\na,x\nb,x\nc,x\nd,y\ne,x\nf,y\n")
    options = ["--bootstrap", "40", "--confidence", "0.9", "--seed", "7", "--json", "s.json"]
    result = CliRunner().invoke(cli, ["score", "p.csv", "g.csv", "--task", "classification", *options])
    assert result.exit_code == 0, result.output
    data = json.loads((tmp_path / "s.json").read_text())
    assert (data["confidence"], data["bootstrap_resamples"], data["seed"]) == (0.9, 40, 7)
    accuracy = data["backends"]["p"]["metrics"]["accuracy"]
    assert accuracy["value"] == pytest.approx(5 / 6)
    assert accuracy["ci_low"] <= accuracy["value"] <= accuracy["ci_high"]

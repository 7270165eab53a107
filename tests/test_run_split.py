"""The split a run uses: as near test_size as the groups allow in a new run directory, and the one a
run directory records (split.json) whenever it is run again, so that its models and predictions stay
those of its split."""

from __future__ import annotations

import json
import textwrap
import warnings

import pytest

from scalecode.config import load_job
from scalecode.plugins import load_plugins
from scalecode.runner import split_job_gold
from scalecode.splits import split_gold

from .conftest import write_speeches_gold


@pytest.fixture
def job(tmp_path, monkeypatch):
    """A grouped classification job (speeches of 10 to 60 paragraphs) at test_size 0.4, which the
    earlier split (one of round(1/0.4) = 2 folds) held out as about half."""
    monkeypatch.chdir(tmp_path)
    write_speeches_gold(tmp_path / "gold.csv")
    (tmp_path / "lex.txt").write_text("good\t2.0\n")
    (tmp_path / "job.yaml").write_text(
        textwrap.dedent("""\
        task: {type: classification, labels: [D, R]}
        data: {gold: {path: gold.csv, group_column: speech}}
        backends:
          - {name: lexicon, plugin: lexicon, params: {lexicon: lex.txt}, train: true}
        evaluation: {test_size: 0.4, seed: 7}
        output: {dir: out}
        """)
    )
    plugins = load_plugins(allow=["scalecode-dictionary"])
    return load_job(tmp_path / "job.yaml", plugins), plugins


def test_a_new_run_directory_holds_out_the_share_asked_for(job, tmp_path):
    job, plugins = job
    gold, _, test, _ = split_job_gold(job, plugins.readers, tmp_path / "out")
    assert len(test) / len(gold) == pytest.approx(0.4, abs=0.03)


def test_a_run_directory_keeps_the_split_it_records(job, tmp_path):
    job, plugins = job
    out = tmp_path / "out"
    out.mkdir()
    gold, _, _, _ = split_job_gold(job, plugins.readers)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        old_train, old_test = split_gold(gold, test_size=0.4, seed=7, match_share=False)
    (out / "split.json").write_text(json.dumps({"train": old_train.ids, "test": old_test.ids}))
    _, train, test, _ = split_job_gold(job, plugins.readers, out)
    assert (train.ids, test.ids) == (old_train.ids, old_test.ids)
    assert test.targets == old_test.targets and test.groups == old_test.groups
    # A directory an earlier version claimed and left without split.json splits as that version did.
    (out / "split.json").unlink()
    (out / "job.json").write_text("{}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _, train, test, _ = split_job_gold(job, plugins.readers, out)
    assert test.ids == old_test.ids
    assert abs(len(old_test) / len(gold) - 0.4) > 0.05  # the earlier split did miss the share


def test_a_recorded_split_of_other_gold_is_not_used(job, tmp_path):
    job, plugins = job
    out = tmp_path / "out"
    out.mkdir()
    (out / "split.json").write_text(json.dumps({"train": ["x"], "test": ["y"]}))
    gold, train, test, _ = split_job_gold(job, plugins.readers, out)
    assert len(train) + len(test) == len(gold)
    assert len(test) / len(gold) == pytest.approx(0.4, abs=0.03)

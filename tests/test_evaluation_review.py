"""Evaluation edge cases: a learning-curve point that fails to train, a label a grouped split puts on
one side only, sizes and seeds out of range, what ``plan --output`` prices, learning-curve samples
that drop rare labels, and job settings that say nothing without the gold."""

from __future__ import annotations

import json
import math
import textwrap
import warnings
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from sklearn.model_selection import train_test_split

from scalecode.backend import GoldSet
from scalecode.config import load_job
from scalecode.errors import ConfigError, ScalecodeError
from scalecode.plugins import load_plugins
from scalecode.runner import Runner, split_job_gold
from scalecode.splits import split_gold, subsample_gold
from scalecode.task import Task, TaskType
from scalecode.testing import sample_gold, sample_task

from .conftest import scalecode, write_sample_gold, write_speeches_gold

# --- a learning-curve point that fails ---------------------------------------------------------

CURVE_JOB = """\
task: {type: classification, labels: [positive, negative, neutral]}
data: {gold: {path: gold.csv}}
backends:
  - {name: learned, plugin: learned-dictionary, params: {min_df: 3, cv: 3}}
evaluation:
  test_size: 0.3
  seed: 5
  bootstrap: {n: 50}
  learning_curve: {sizes: [2, 0.5], repeats: 2}
output: {dir: run}
"""


@pytest.fixture
def curve_job(tmp_path, monkeypatch):
    """60 gold documents; the learned dictionary keeps words of at least 3 training documents, which
    two documents cannot have: the curve's point at 2 documents fails to train, the one at half the
    split trains."""
    monkeypatch.chdir(tmp_path)
    write_sample_gold(tmp_path / "gold.csv")
    (tmp_path / "job.yaml").write_text(CURVE_JOB)
    plugins = load_plugins(allow=["scalecode-dictionary"])
    return load_job(tmp_path / "job.yaml", plugins), plugins


def test_a_curve_point_that_fails_to_train_is_recorded_and_the_run_goes_on(curve_job, tmp_path, ray_local):
    job, plugins = curve_job
    echoed: list[str] = []
    # Two documents cannot hold the three labels: said once, where the sample is drawn.
    with pytest.warns(UserWarning, match="sample of 2 training documents cannot hold all 3 labels"):
        result = Runner(job, plugins, out=tmp_path / "run", echo=echoed.append, progress=False).run()
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert "learned" in metrics["backends"]  # the comparison is whole
    points = {p["size"]: p for p in metrics["learning_curves"]["learned"]}
    n_train = len(json.loads((tmp_path / "run" / "split.json").read_text())["train"])
    assert set(points) == {2, round(0.5 * n_train)}
    failed = points[2]["failed"]
    assert [f["repeat"] for f in failed] == [0, 1]
    assert all("no word occurs in 3 training documents" in f["error"] for f in failed)
    assert points[2]["runs"] == [] and points[2]["repeats"] == 0
    assert points[2]["metrics"]["accuracy"]["value"] is None  # NaN: no run was scored
    half = points[round(0.5 * n_train)]
    assert half["failed"] == [] and len(half["runs"]) == 2
    # The warning names the backend, the size and the repeat, and the error.
    for repeat in (0, 1):
        [line] = [e for e in echoed if f"repeat {repeat}" in e and "failed" in e and "2 documents" in e]
        assert line.startswith("warning: learning curve of learned:")
        assert "no word occurs in 3 training documents" in line
    comparison = (tmp_path / "run" / "comparison.md").read_text()
    assert "learned, 2 training documents, repeat 0: training failed" in comparison
    assert "no word occurs in 3 training documents" in comparison
    assert result.curves["learned"][0]["failed"]
    # Each run records the seed it was drawn with and the labels of its sample.
    from scalecode.curves import curve_seed

    for run in half["runs"]:
        assert run["seed"] == curve_seed(5, half["size"], run["repeat"])
        assert sum(run["labels"].values()) == half["size"]
        assert set(run["labels"]) == {"positive", "negative", "neutral"}


def test_the_comparison_is_written_before_the_learning_curves(curve_job, tmp_path, ray_local, monkeypatch):
    """A run stopped while it trains the curves (a kill, a curve that fails on a full disk) still
    leaves the comparison of every backend on the test split."""
    job, plugins = curve_job

    class Stopped(BaseException):
        pass

    def stop(self, train, test):
        raise Stopped

    monkeypatch.setattr(Runner, "_learning_curves", stop)
    with pytest.raises(Stopped):
        Runner(job, plugins, out=tmp_path / "run", echo=lambda line: None, progress=False).run()
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert set(metrics["backends"]) == {"learned"} and metrics["learning_curves"] == {}
    assert "## Comparison on the gold test split" in (tmp_path / "run" / "comparison.md").read_text()


# --- a label whose documents a grouped split puts on one side ----------------------------------


def one_group_label_gold() -> GoldSet:
    """30 speeches of 6 paragraphs; label c is 4 paragraphs of speech 7 alone."""
    task = Task(type=TaskType.CLASSIFICATION, labels=["a", "b", "c"])
    ids, labels, groups = [], [], []
    for g in range(30):
        for p in range(6):
            ids.append(f"g{g:02d}-{p}")
            groups.append(f"g{g:02d}")
            labels.append("c" if g == 7 and p < 4 else ("a" if (g + p) % 2 else "b"))
    return GoldSet(task=task, ids=ids, texts=ids, targets=labels, groups=groups)


@pytest.mark.parametrize(
    ("seed", "side", "consequence"),
    [(0, "held-out", "scored but never trained on"), (1, "training", "trained on but never scored")],
)
def test_a_label_in_one_group_put_on_one_side_is_named(seed, side, consequence):
    with pytest.warns(UserWarning, match=r"label 'c'") as caught:
        train, test = split_gold(one_group_label_gold(), test_size=0.3, seed=seed, match_share=True)
    assert ("c" in train.targets) == (side == "training") != ("c" in test.targets)
    [message] = [str(w.message) for w in caught if "label 'c'" in str(w.message)]
    assert "all 4 of its gold documents are in 1 group (data.gold.group_column)" in message
    assert f"on the {side} side only" in message and consequence in message


def test_labels_on_both_sides_of_a_grouped_split_pass_without_a_word():
    gold = one_group_label_gold()
    gold = gold.subset([i for i, y in enumerate(gold.targets) if y != "c"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        split_gold(gold, test_size=0.3, seed=0, match_share=True)


# --- learning-curve sizes and seeds out of range -----------------------------------------------

TRAINED = """\
task: {type: regression, scale: {min: -4, max: 4}}
data: {gold: {path: gold.csv}}
backends:
  - {name: lex, plugin: lexicon, params: {lexicon: lex.txt}, train: true}
output: {dir: out}
"""


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "gold.csv").write_text("id,text,label\n1,good day,3\n2,bad day,-1\n")
    (tmp_path / "corpus.csv").write_text("id,text\n1,good day\n")
    (tmp_path / "lex.txt").write_text("good\t2.0\nbad\t-2.0\n")
    return tmp_path


def config_error(workdir: Path, plugins, text: str) -> ConfigError:
    (workdir / "job.yaml").write_text(text)
    with pytest.raises(ConfigError) as info:
        load_job(workdir / "job.yaml", plugins)
    return info.value


@pytest.mark.parametrize("size", [".inf", ".nan", "-.inf"])
def test_a_size_that_is_no_number_is_a_config_error_naming_the_key(workdir, plugins, size):
    error = config_error(
        workdir, plugins, TRAINED + f"evaluation:\n  learning_curve: {{sizes: [0.5, {size}]}}\n"
    )
    assert error.key == "evaluation.learning_curve.sizes[1]"
    assert "finite" in str(error)


def test_curve_sizes_refuses_a_size_that_is_no_number():
    from scalecode.curves import curve_sizes

    for size in (math.inf, math.nan):
        with pytest.raises(ScalecodeError, match=r"evaluation\.learning_curve\.sizes: .* is not a finite"):
            curve_sizes([size], 100)


@pytest.mark.parametrize("seed", [-1, 2**32, 2**40])
def test_a_seed_numpy_cannot_take_is_a_config_error_naming_the_key(workdir, plugins, seed):
    error = config_error(workdir, plugins, TRAINED + f"evaluation:\n  seed: {seed}\n")
    assert error.key == "evaluation.seed"
    assert "from 0 to 4294967295" in str(error) and "test_size" not in str(error)


@pytest.mark.parametrize("seed", [-1, 2**64])
def test_a_gold_sample_seed_polars_cannot_take_is_a_config_error_naming_the_key(workdir, plugins, seed):
    job = TRAINED.replace(
        "{gold: {path: gold.csv}}", f"{{gold: {{path: gold.csv, sample: 1, sample_seed: {seed}}}}}"
    )
    error = config_error(workdir, plugins, job)
    assert error.key == "data.gold.sample_seed"


def test_the_largest_seeds_are_valid(workdir, plugins):
    for seed in (0, 2**32 - 1):
        (workdir / "job.yaml").write_text(TRAINED + f"evaluation:\n  seed: {seed}\n")
        assert load_job(workdir / "job.yaml", plugins).config.evaluation.seed == seed


def test_curve_seeds_stay_in_numpys_range_and_keep_the_seeds_of_earlier_versions():
    from scalecode.curves import curve_seed

    assert curve_seed(42, 250, 2) == 42 + 1009 * 2 + 250  # as earlier versions drew them
    top = 2**32 - 1
    seeds = {curve_seed(top - 100, size, repeat) for size in (20, 500, 10**6) for repeat in range(5)}
    assert all(0 <= s < 2**32 for s in seeds) and len(seeds) == 15
    gold = sample_gold(sample_task(TaskType.CLASSIFICATION), n=100)
    assert len(subsample_gold(gold, 20, seed=curve_seed(top - 100, 20, 1))) == 20


# --- plan prices the split that run codes ------------------------------------------------------

PAID = """
from scalecode import Backend, Predictions, TaskType, hookimpl
from scalecode.backend import Estimate

class Paid(Backend):
    name = "paid"
    task_types = frozenset({TaskType.CLASSIFICATION})

    def predict_batch(self, texts):
        return Predictions(label=["D"] * len(texts))

    def estimate(self, texts):
        return Estimate(documents=len(texts), requests=len(texts), cost_usd=0.001 * len(texts))

@hookimpl
def register_backends(register):
    register(Paid)
"""


@pytest.fixture
def plan_job_dir(tmp_path, monkeypatch):
    """A grouped job whose output.dir an earlier version claimed (job.json, no split.json): that
    directory splits one of 2 folds (about half), a new one as near test_size 0.4 as groups allow."""
    monkeypatch.chdir(tmp_path)
    write_speeches_gold(tmp_path / "gold.csv")
    (tmp_path / "plugins").mkdir()
    (tmp_path / "plugins" / "paid.py").write_text(PAID)
    (tmp_path / "job.yaml").write_text(
        textwrap.dedent("""\
        task: {type: classification, labels: [D, R]}
        data: {gold: {path: gold.csv, group_column: speech}}
        backends:
          - {name: paid, plugin: paid}
        evaluation: {test_size: 0.4, seed: 7}
        output: {dir: old}
        """)
    )
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "job.json").write_text("{}")
    return tmp_path


def test_plan_prices_the_test_split_of_the_directory_given_with_output(plan_job_dir):
    from scalecode.plan import plan_job

    plugins = load_plugins(plan_job_dir / "plugins")
    job = load_job(plan_job_dir / "job.yaml", plugins)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _, _, old_test, _ = split_job_gold(job, plugins.readers, plan_job_dir / "old")
        _, _, new_test, _ = split_job_gold(job, plugins.readers, plan_job_dir / "new")
        assert len(old_test) != len(new_test)  # the two directories do split differently
        [row] = plan_job(job, plugins, plan_job_dir / "new", plugins_dir=str(plan_job_dir / "plugins"))
    assert row.part == "gold test" and row.estimate is not None
    assert row.estimate.documents == len(new_test)


def test_plan_shows_a_split_warning_as_its_own_line(plan_job_dir):
    """As run does: the split's share is about the user's job, not a line of scalecode's code."""
    result = scalecode("plan", "job.yaml", "--plugins-dir", str(plan_job_dir / "plugins"), cwd=plan_job_dir)
    assert result.returncode == 0, result.stderr
    assert "warning: the split holds out" in result.stderr
    assert "SplitShareWarning" not in result.stderr and "splits.py" not in result.stderr


# --- learning-curve samples hold every label where they can ------------------------------------


def skewed_train() -> GoldSet:
    task = Task(type=TaskType.CLASSIFICATION, labels=["a", "b", "c"])
    labels = ["a"] * 90 + ["b"] * 6 + ["c"] * 4
    ids = [f"d{i:03d}" for i in range(100)]
    return GoldSet(task=task, ids=ids, texts=[f"t{i}" for i in range(100)], targets=labels)


@pytest.mark.parametrize("size", [3, 5, 10, 20])
def test_a_sample_as_large_as_the_labels_holds_every_label(size):
    train = skewed_train()
    for repeat in range(3):
        sample = subsample_gold(train, size, seed=42 + 1009 * repeat + size)
        counts = Counter(sample.targets)
        assert len(sample) == size and set(counts) == {"a", "b", "c"}, counts
        assert counts["a"] >= size - 2 - (size // 10)  # the rest in proportion: mostly a
    again = subsample_gold(train, 5, seed=7)
    assert again.ids == subsample_gold(train, 5, seed=7).ids  # still a function of the seed


def test_a_sample_smaller_than_the_labels_is_warned_of():
    with pytest.warns(UserWarning, match=r"2 training documents cannot hold all 3 labels"):
        sample = subsample_gold(skewed_train(), 2, seed=0)
    assert len(sample) == 2


def test_a_stratified_sample_that_holds_every_label_is_the_one_drawn_before():
    """Samples that already held every label are those earlier versions drew: curve points trained
    by them stay comparable."""
    gold = sample_gold(sample_task(TaskType.CLASSIFICATION), n=90)
    ordered = gold.subset(sorted(range(len(gold)), key=lambda i: gold.ids[i]))
    for seed in range(5):
        before, _ = train_test_split(
            np.arange(len(ordered)), train_size=12, random_state=seed, stratify=ordered.targets
        )
        assert subsample_gold(gold, 12, seed=seed).ids == ordered.subset(np.sort(before)).ids


# --- settings that say nothing in the job they are in ------------------------------------------


def test_examples_from_gold_without_gold_is_a_config_error(workdir, plugins):
    text = textwrap.dedent("""\
        task:
          type: regression
          scale: {min: -4, max: 4}
          examples_from_gold: 3
        data: {corpus: {path: corpus.csv}}
        backends:
          - {name: lex, plugin: lexicon, params: {lexicon: lex.txt}}
        output: {dir: out}
        """)
    error = config_error(workdir, plugins, text)
    assert error.key == "task.examples_from_gold"
    assert "data.gold" in str(error)
    assert error.problems[0][2] == 4  # its line


def test_an_empty_list_of_curve_backends_is_named_as_empty(workdir, plugins):
    error = config_error(
        workdir, plugins, TRAINED + "evaluation:\n  learning_curve: {sizes: [0.5], backends: []}\n"
    )
    assert error.key == "evaluation.learning_curve.backends"
    assert "empty" in str(error) and "no backend of this job is trained" not in str(error)

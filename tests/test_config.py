"""Every job-file error is caught before any work starts and names the file, the key and the line."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from scalecode.config import load_job
from scalecode.errors import ConfigError
from scalecode.plugins import load_plugins

LEXICON = "good\t2.0\nbad\t-2.0\n"


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "gold.csv").write_text("id,text,label\n1,good day,3\n2,bad day,-1\n")
    (tmp_path / "lex.txt").write_text(LEXICON)
    return tmp_path


VALID = """\
task:
  type: regression
  scale: {min: -4, max: 4}
data:
  gold:
    path: gold.csv
backends:
  - name: lex
    plugin: lexicon
    params:
      lexicon: lex.txt
output:
  dir: out
"""


def write(workdir: Path, text: str) -> Path:
    path = workdir / "job.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def error_for(workdir: Path, plugins, text: str) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_job(write(workdir, text), plugins)
    message = str(info.value)
    assert "job.yaml" in message  # every error names the file
    return info.value


def test_valid_job_loads(workdir, plugins):
    job = load_job(write(workdir, VALID), plugins)
    assert job.backends[0].info.name == "lexicon"
    assert job.backends[0].train is None


def test_invalid_yaml_names_the_line(workdir, plugins):
    error = error_for(workdir, plugins, "task:\n  type: [regression\n")
    assert "invalid YAML" in str(error)
    assert error.problems[0][2] is not None


def test_duplicate_key_names_both_lines(workdir, plugins):
    error = error_for(workdir, plugins, VALID + "output:\n  dir: elsewhere\n")
    assert "duplicate key 'output'" in str(error)
    assert "first on line 12" in str(error)
    assert error.problems[0][2] == 14


def test_not_a_mapping(workdir, plugins):
    assert "a job file is a mapping" in str(error_for(workdir, plugins, "- just\n- a list\n"))


def test_unknown_top_level_key(workdir, plugins):
    error = error_for(workdir, plugins, VALID + "extras: 1\n")
    assert error.key == "extras"
    assert "unknown key" in str(error)
    assert error.problems[0][2] == 14


def test_missing_section(workdir, plugins):
    error = error_for(workdir, plugins, VALID.replace("output:\n  dir: out\n", ""))
    assert error.key == "output"
    assert "required key is missing" in str(error)


def test_bad_task_type_names_the_key_and_line(workdir, plugins):
    error = error_for(workdir, plugins, VALID.replace("type: regression", "type: sentiment"))
    assert error.key == "task.type"
    assert error.problems[0][2] == 2


def test_labels_on_a_regression_task(workdir, plugins):
    error = error_for(workdir, plugins, VALID.replace("  scale: {min: -4, max: 4}", "  labels: [a, b]"))
    assert error.key == "task"
    assert "remove 'labels'" in str(error)


def test_unknown_backend_suggests_the_closest(workdir, plugins):
    error = error_for(workdir, plugins, VALID.replace("plugin: lexicon", "plugin: lexicn"))
    assert error.key == "backends[0].plugin"
    assert "did you mean 'lexicon'" in str(error)
    assert error.problems[0][2] == 9


def test_unknown_backend_option(workdir, plugins):
    text = VALID.replace("      lexicon: lex.txt", "      lexicon: lex.txt\n      negaton: {window: 3}")
    error = error_for(workdir, plugins, text)
    assert error.key == "backends[0].params.negaton"
    assert "unknown key" in str(error)
    assert error.problems[0][2] == 12


def test_backend_option_of_wrong_type(workdir, plugins):
    text = VALID.replace("      lexicon: lex.txt", "      lexicon: lex.txt\n      negation: {window: many}")
    error = error_for(workdir, plugins, text)
    assert error.key == "backends[0].params.negation.window"


def test_backend_option_checked_against_the_codebook(workdir, plugins):
    text = VALID.replace("      lexicon: lex.txt", "      lexicon: lex.txt\n      score: prop_nothing")
    error = error_for(workdir, plugins, text)
    assert error.key == "backends[0].params"
    assert "unknown feature 'prop_nothing'" in str(error)


def test_missing_lexicon_file_is_reported_at_validation(workdir, plugins):
    error = error_for(workdir, plugins, VALID.replace("lexicon: lex.txt", "lexicon: missing.txt"))
    assert error.key == "backends[0].params"
    assert "missing.txt" in str(error)


def test_backend_that_cannot_code_the_task_type(workdir, plugins, tmp_path):
    (tmp_path / "plugins").mkdir()
    (tmp_path / "plugins" / "only_regression.py").write_text(
        "from scalecode import Backend, Predictions, TaskType, hookimpl\n"
        "class R(Backend):\n"
        "    name = 'only-regression'\n"
        "    task_types = frozenset({TaskType.REGRESSION})\n"
        "    def predict_batch(self, texts):\n"
        "        return Predictions(score=[0.0] * len(texts))\n"
        "@hookimpl\n"
        "def register_backends(register):\n"
        "    register(R)\n"
    )
    plugins_with_dir = load_plugins(tmp_path / "plugins", allow=["only_regression", "scalecode-dictionary"])
    text = VALID.replace(
        "type: regression\n  scale: {min: -4, max: 4}", "type: classification\n  labels: [a, b]"
    )
    text = text.replace("plugin: lexicon", "plugin: only-regression").replace(
        "    params:\n      lexicon: lex.txt\n", ""
    )
    error = error_for(workdir, plugins_with_dir, text)
    assert error.key == "backends[0].plugin"
    assert "codes regression, not classification" in str(error)


def test_training_a_backend_that_cannot_be_trained(workdir, plugins, tmp_path):
    (tmp_path / "plugins").mkdir()
    (tmp_path / "plugins" / "frozen.py").write_text(
        "from scalecode import Backend, Predictions, TaskType, hookimpl\n"
        "class Frozen(Backend):\n"
        "    name = 'frozen'\n"
        "    task_types = frozenset({TaskType.REGRESSION})\n"
        "    def predict_batch(self, texts):\n"
        "        return Predictions(score=[0.0] * len(texts))\n"
        "@hookimpl\n"
        "def register_backends(register):\n"
        "    register(Frozen)\n"
    )
    with_dir = load_plugins(tmp_path / "plugins", entry_points=False)
    text = VALID.replace(
        "plugin: lexicon\n    params:\n      lexicon: lex.txt\n", "plugin: frozen\n    train: true\n"
    )
    error = error_for(workdir, with_dir, text)
    assert error.key == "backends[0].train"
    assert "cannot be trained" in str(error)


def test_backend_that_requires_training(workdir, plugins):
    text = VALID + "  - name: learned\n    plugin: learned-dictionary\n    train: false\n"
    text = text.replace("output:\n  dir: out\n", "") + "output:\n  dir: out\n"
    error = error_for(workdir, plugins, text)
    assert error.key == "backends[1].train"
    assert "must be trained" in str(error)


def test_unknown_training_option(workdir, plugins):
    text = VALID.replace("      lexicon: lex.txt\n", "      lexicon: lex.txt\n    train: {epochs: 3}\n")
    error = error_for(workdir, plugins, text)
    assert error.key == "backends[0].train.epochs"


def test_duplicate_backend_names(workdir, plugins):
    text = VALID.replace(
        "output:", "  - name: lex\n    plugin: lexicon\n    params: {lexicon: lex.txt}\noutput:"
    )
    error = error_for(workdir, plugins, text)
    assert "repeated: lex" in str(error)
    # Names become folder names, which macOS and Windows compare without case.
    error = error_for(
        workdir,
        plugins,
        text.replace(
            "  - name: lex\n    plugin: lexicon\n    params: {",
            "  - name: Lex\n    plugin: lexicon\n    params: {",
        ),
    )
    assert "repeated: Lex, lex" in str(error)


def test_literal_secret_is_refused(workdir, plugins):
    text = VALID.replace("      lexicon: lex.txt", "      lexicon: lex.txt\n      api_key: sk-not-here")
    error = error_for(workdir, plugins, text)
    assert error.key == "backends[0].params.api_key"
    assert "secrets come from the environment" in str(error)
    assert "sk-not-here" not in str(error)


@pytest.mark.parametrize(
    ("option", "where"),
    [
        ("base_url: https://me:hunter2@gateway.example/v1", "base_url"),
        ("extra_body: {auth: sk-abcdefghijklmnop1234}", "extra_body.auth"),
        ("headers: [Bearer abc.def]", "headers[0]"),
    ],
)
def test_a_secret_under_any_key_is_refused(workdir, plugins, option, where):
    """These would have reached job.json, the manifest and ``scalecode plan``'s output."""
    text = VALID.replace("      lexicon: lex.txt", f"      lexicon: lex.txt\n      {option}")
    error = error_for(workdir, plugins, text)
    assert error.key == f"backends[0].params.{where}"
    assert "secrets come from the environment" in str(error)
    assert all(secret not in str(error) for secret in ("hunter2", "sk-abcdef", "abc.def"))


def test_secret_from_a_missing_environment_variable(workdir, plugins, monkeypatch):
    monkeypatch.delenv("SCALECODE_TEST_TOKEN", raising=False)
    text = VALID.replace(
        "      lexicon: lex.txt", '      lexicon: lex.txt\n      api_key: {"$env": SCALECODE_TEST_TOKEN}'
    )
    error = error_for(workdir, plugins, text)
    assert error.key == "backends[0].params.api_key"
    assert "SCALECODE_TEST_TOKEN is not set" in str(error)


def test_unknown_metric(workdir, plugins):
    error = error_for(workdir, plugins, VALID + "evaluation:\n  metrics: [r2, accuracy]\n")
    assert error.key == "evaluation.metrics"
    assert "unknown metric 'accuracy' for a regression task" in str(error)


def test_metrics_the_scoring_would_not_compute_are_refused_before_any_work(workdir, plugins):
    """Each of these used to validate and then fail (or rank wrongly) after every backend had trained."""
    classification = VALID.replace(
        "  type: regression\n  scale: {min: -4, max: 4}\n", "  type: classification\n  labels: [neg, pos]\n"
    )
    ordinal = error_for(
        workdir, plugins, classification + "evaluation:\n  metrics: [krippendorff_alpha_ordinal]\n"
    )
    assert (
        "evaluation.metrics",
        "unknown metric 'krippendorff_alpha_ordinal' for a classification task",
    ) in [(key, message.split(";")[0]) for key, message, _ in ordinal.problems]

    outside = error_for(workdir, plugins, VALID + "evaluation:\n  metrics: [r2]\n  primary_metric: mse\n")
    assert outside.key == "evaluation.primary_metric"
    assert "must be in evaluation.metrics too" in str(outside)

    empty = error_for(workdir, plugins, VALID + "evaluation:\n  metrics: []\n")
    assert empty.key == "evaluation.metrics"
    assert "at least one metric" in str(empty)

    job = load_job(
        write(workdir, VALID + "evaluation:\n  metrics: [r2, mse]\n  primary_metric: mse\n"), plugins
    )
    assert job.config.evaluation.primary_metric == "mse"


def test_empty_training_options_ask_for_training(workdir, plugins):
    """``train: {}`` is ``train: true`` with every option at its default, not ``train: false``."""
    text = VALID + "  - name: learned\n    plugin: learned-dictionary\n    train: {}\n"
    text = text.replace("output:\n  dir: out\n", "") + "output:\n  dir: out\n"
    text = text.replace("      lexicon: lex.txt\n", "      lexicon: lex.txt\n    train: {}\n", 1)
    job = load_job(write(workdir, text), plugins)
    assert [b.train is not None for b in job.backends] == [True, True]


def test_missing_data_file(workdir, plugins):
    error = error_for(workdir, plugins, VALID.replace("path: gold.csv", "path: nowhere.csv"))
    assert error.key == "data.gold.path"
    assert "nowhere.csv does not exist" in str(error)


def test_nothing_to_do(workdir, plugins):
    text = VALID.replace("  gold:\n    path: gold.csv\n", "  {}\n")
    assert "data needs 'gold'" in str(error_for(workdir, plugins, text))


def test_corpus_backends_must_exist(workdir, plugins):
    error = error_for(workdir, plugins, VALID.replace("dir: out", "dir: out\n  corpus_backends: [lex, nope]"))
    assert error.key == "output.corpus_backends[1]"
    assert "unknown backend 'nope'; the backends are lex" in str(error)


def test_several_problems_are_reported_together(workdir, plugins):
    text = VALID.replace("plugin: lexicon", "plugin: lexicn") + "evaluation:\n  metrics: [accuracy]\n"
    error = error_for(workdir, plugins, text)
    keys = {p[0] for p in error.problems}
    assert keys == {"backends[0].plugin", "evaluation.metrics"}


def test_learning_curve_sizes_are_fractions_up_to_1_or_whole_counts(workdir, plugins):
    text = VALID.replace(
        "    params:\n      lexicon: lex.txt\n", "    params:\n      lexicon: lex.txt\n    train: true\n"
    )
    job = load_job(
        write(workdir, text + "evaluation:\n  learning_curve: {sizes: [0.5, 1.0, 20], repeats: 3}\n"), plugins
    )
    curve = job.config.evaluation.learning_curve
    assert curve is not None
    assert curve.sizes == [0.5, 1.0, 20.0] and curve.repeats == 3 and curve.backends is None
    assert all(isinstance(size, float) for size in curve.sizes)  # 1 reads as 1.0: all of the split
    uneven = error_for(workdir, plugins, text + "evaluation:\n  learning_curve: {sizes: [2.5]}\n")
    assert "whole numbers; not 2.5" in str(uneven)
    assert "up to 1" in str(
        error_for(workdir, plugins, text + "evaluation:\n  learning_curve: {sizes: [0]}\n")
    )


def test_min_coverage_is_a_share_from_0_to_1(workdir, plugins):
    job = load_job(write(workdir, VALID + "evaluation:\n  min_coverage: 0.8\n"), plugins)
    assert job.config.evaluation.min_coverage == 0.8
    assert load_job(write(workdir, VALID), plugins).config.evaluation.min_coverage == 0.95
    for value in ("95", "-0.1", ".nan"):
        error = error_for(workdir, plugins, VALID + f"evaluation:\n  min_coverage: {value}\n")
        assert error.key == "evaluation.min_coverage"
        assert "a share of the test split from 0 to 1 (0.95 for 95%)" in str(error)
        assert error.problems[0][2] == 15  # the line of min_coverage


def test_corpus_backends_match_names_with_their_case(workdir, plugins):
    """The run picks corpus backends by exact name: `[vader]` for a backend VADER validated and then
    coded no corpus at all, while `[VADER]` was refused as unknown."""
    from scalecode.runner import Runner

    (workdir / "corpus.csv").write_text("id,text\n1,good day\n")
    text = (
        VALID.replace("name: lex", "name: VADER")
        .replace("    path: gold.csv\n", "    path: gold.csv\n  corpus:\n    path: corpus.csv\n")
        .replace("dir: out", "dir: out\n  corpus_backends: [VADER]")
    )
    job = load_job(write(workdir, text), plugins)
    assert [b.name for b in Runner(job, plugins, out=workdir / "out")._corpus_backends([])] == ["VADER"]

    error = error_for(workdir, plugins, text.replace("[VADER]", "[vader]"))
    assert error.key == "output.corpus_backends[0]"
    assert "unknown backend 'vader'; did you mean 'VADER'?" in str(error)
    assert error.problems[0][2] == 16  # the line of corpus_backends

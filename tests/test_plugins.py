"""Plugins load through entry points, a plugins directory and an allow-list; broken ones are named."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from scalecode.plugins import ALLOW_ENV, PLUGINS_DIR_ENV, load_plugins

GOOD = """
from scalecode import Backend, Predictions, TaskType, hookimpl

class Echo(Backend):
    name = "echo"
    task_types = frozenset({TaskType.CLASSIFICATION})
    def predict_batch(self, texts):
        return Predictions(label=[self.task.label_names[0]] * len(texts))

@hookimpl
def register_backends(register):
    register(Echo, aliases=("parrot",))
"""


def plugin_dir(tmp_path: Path, **files: str) -> Path:
    folder = tmp_path / "plugins"
    folder.mkdir(exist_ok=True)
    for name, source in files.items():
        (folder / f"{name}.py").write_text(textwrap.dedent(source))
    return folder


def test_builtin_backends_come_through_the_entry_point():
    plugins = load_plugins()
    lexicon = plugins.backend("lexicon")
    assert lexicon.plugin.name == "scalecode-dictionary"
    assert lexicon.plugin.source == "entry point"
    assert plugins.backend("learned-dictionary").plugin.name == "scalecode-dictionary"
    assert "scalecode-dictionary" in plugins.manager.list_name_plugin()[1][0] or plugins.manager.has_plugin(
        "scalecode-dictionary"
    )
    assert not plugins.failures


def test_plugins_directory_and_aliases(tmp_path):
    plugins = load_plugins(plugin_dir(tmp_path, echo=GOOD), entry_points=False)
    assert plugins.backend("echo").plugin.source == str(tmp_path / "plugins")
    assert plugins.backend("parrot") is plugins.backend("echo")
    assert [b.name for b in plugins.list_backends()] == ["echo"]


def test_plugins_dir_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv(PLUGINS_DIR_ENV, str(plugin_dir(tmp_path, echo=GOOD)))
    assert "echo" in load_plugins().backends


def test_allow_list_restricts_plugins(tmp_path, monkeypatch):
    folder = plugin_dir(
        tmp_path, echo=GOOD, other=GOOD.replace('"echo"', '"other"').replace('("parrot",)', "()")
    )
    monkeypatch.setenv(ALLOW_ENV, "other")
    plugins = load_plugins(folder)
    assert set(plugins.backends) == {"other"}  # neither echo nor the entry-point dictionary plugin
    monkeypatch.setenv(ALLOW_ENV, "")
    plugins = load_plugins(folder)
    assert plugins.backends == {}
    assert plugins.metrics  # scalecode's own metrics and readers are always there
    monkeypatch.setenv(ALLOW_ENV, "scalecode-dictionary,ghost")
    plugins = load_plugins(folder)
    assert set(plugins.backends) == {"lexicon", "learned-dictionary"}
    assert any("ghost" in str(f) and "no such plugin" in str(f) for f in plugins.failures)


def test_a_plugin_that_fails_to_import_is_named_and_spares_the_others(tmp_path):
    folder = plugin_dir(tmp_path, echo=GOOD, broken="import not_a_module_anywhere\n")
    plugins = load_plugins(folder)
    assert "echo" in plugins.backends and "lexicon" in plugins.backends
    [failure] = plugins.failures
    assert failure.plugin == "broken"
    assert "not_a_module_anywhere" in failure.error


def test_a_plugin_whose_hook_raises_is_named(tmp_path):
    raising = """
    from scalecode import hookimpl
    @hookimpl
    def register_backends(register):
        raise RuntimeError("boom")
    """
    plugins = load_plugins(plugin_dir(tmp_path, echo=GOOD, raising=raising), entry_points=False)
    assert "echo" in plugins.backends
    assert any(f.plugin == "raising" and "boom" in f.error for f in plugins.failures)


def test_a_misspelled_hook_is_named_with_a_suggestion(tmp_path):
    typo = """
    from scalecode import hookimpl
    @hookimpl
    def register_backend(register):
        pass
    """
    plugins = load_plugins(plugin_dir(tmp_path, echo=GOOD, typo=typo), entry_points=False)
    assert "echo" in plugins.backends
    [failure] = plugins.failures
    assert failure.plugin == "typo"
    assert "did you mean 'register_backends'" in failure.error
    plugins.manager.check_pending()  # nothing unknown is left registered


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ("class Bad:\n    name = 'bad'\n", "not a subclass of scalecode.Backend"),
        (
            "class Bad(Backend):\n    name = 'bad'\n    task_types = frozenset({TaskType.REGRESSION})\n",
            "does not implement predict_batch",
        ),
        (
            "class Bad(Backend):\n    name = 'Bad Name'\n    task_types = frozenset({TaskType.REGRESSION})\n"
            "    def predict_batch(self, texts): ...\n",
            "needs a name of lower-case",
        ),
        (
            "class Bad(Backend):\n    name = 'bad'\n    def predict_batch(self, texts): ...\n",
            "task_types must be a non-empty set",
        ),
        (
            "class P(BaseModel):\n    x: int = 1\n"
            "class Bad(Backend):\n    name = 'bad'\n    task_types = frozenset({TaskType.REGRESSION})\n"
            "    Params = P\n    def predict_batch(self, texts): ...\n",
            "must forbid unknown keys",
        ),
        (
            "class Bad(Backend):\n    name = 'bad'\n    trainable = True\n"
            "    task_types = frozenset({TaskType.REGRESSION})\n    def predict_batch(self, texts): ...\n",
            "does not implement fit",
        ),
    ],
)
def test_a_bad_backend_is_refused_by_name(tmp_path, body, problem):
    source = (
        "from pydantic import BaseModel\n"
        "from scalecode import Backend, TaskType, hookimpl\n"
        + body
        + "@hookimpl\ndef register_backends(register):\n    register(Bad)\n"
    )
    plugins = load_plugins(plugin_dir(tmp_path, echo=GOOD, bad=source), entry_points=False)
    assert set(plugins.backends) == {"echo", "parrot"}
    [failure] = plugins.failures
    assert failure.plugin == "bad"
    assert problem in failure.error


def test_a_name_conflict_is_refused(tmp_path):
    plugins = load_plugins(plugin_dir(tmp_path, a_echo=GOOD, b_echo=GOOD), entry_points=False)
    assert plugins.backend("echo").plugin.name == "a_echo"
    assert any(f.plugin == "b_echo" and "already registered by 'a_echo'" in f.error for f in plugins.failures)


def test_unknown_backend_names_failed_plugins(tmp_path):
    plugins = load_plugins(
        plugin_dir(tmp_path, broken="raise ImportError('missing torch')\n"), entry_points=False
    )
    with pytest.raises(KeyError) as info:
        plugins.backend("echo")
    assert "missing torch" in str(info.value)


def test_each_run_gets_a_fresh_plugin_manager(tmp_path):
    folder = plugin_dir(tmp_path, echo=GOOD)
    with_dir = load_plugins(folder, entry_points=False)
    without = load_plugins(entry_points=False)
    assert "echo" in with_dir.backends and "echo" not in without.backends
    assert with_dir.manager is not without.manager


def test_metrics_and_readers_come_through_hooks(tmp_path):
    extra = """
    import numpy as np
    import polars as pl
    from scalecode import TaskType, hookimpl
    from scalecode.readers import Reader
    from scalecode.scoring import Metric

    @hookimpl
    def register_metrics(register):
        register(Metric("bias", lambda t, p: float(np.mean(p - t)), frozenset({TaskType.REGRESSION})))
        register(Metric("accuracy", lambda t, p: 0.0, frozenset({TaskType.CLASSIFICATION})))

    @hookimpl
    def register_readers(register):
        register(Reader("lines", (".lines",), lambda path, enc: pl.DataFrame({"id": ["1"], "text": ["x"]})))
    """
    plugins = load_plugins(plugin_dir(tmp_path, extra=extra), entry_points=False)
    assert "bias" in [m.name for m in plugins.metrics]
    assert [r.name for r in plugins.readers][-1] == "lines"
    assert any("metric 'accuracy' is already registered by 'scalecode'" in str(f) for f in plugins.failures)


def test_backends_command_lists_plugin_version_and_task_types(tmp_path):
    folder = plugin_dir(tmp_path, echo=GOOD, broken="import nope_nope\n")
    result = subprocess.run(
        [sys.executable, "-m", "scalecode.cli", "backends", "--json", "--plugins-dir", str(folder)],
        capture_output=True,
        text=True,
        check=True,
    )
    listing = json.loads(result.stdout)
    rows = {row["name"]: row for row in listing["backends"]}
    assert rows["lexicon"]["plugin"] == "scalecode-dictionary"
    assert rows["lexicon"]["version"] == "0.1.0"
    assert rows["lexicon"]["tasks"] == ["classification", "multilabel", "regression"]
    assert rows["learned-dictionary"]["training"] == "required"
    assert rows["echo"]["tasks"] == ["classification"]
    assert any("broken" in f for f in listing["failures"])
    assert "warning: plugin 'broken'" in result.stderr
    text = subprocess.run(
        [sys.executable, "-m", "scalecode.cli", "backends"], capture_output=True, text=True, check=True
    ).stdout
    assert "lexicon" in text and "scalecode-dictionary" in text

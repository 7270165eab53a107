"""Plugin loading corner cases: a package declaring two modules, Ctrl-C while a plugin file imports,
and plugin files whose names clash."""

from __future__ import annotations

import sys
import textwrap

import pytest

from scalecode.plugins import load_plugins

from .test_plugins import GOOD, plugin_dir

MODULE = """
from scalecode import Backend, Predictions, TaskType, hookimpl

class {cls}(Backend):
    name = "{name}"
    task_types = frozenset({{TaskType.CLASSIFICATION}})
    def predict_batch(self, texts):
        return Predictions(label=[self.task.label_names[0]] * len(texts))

@hookimpl
def register_backends(register):
    register({cls})
"""


@pytest.fixture
def two_module_package(tmp_path, monkeypatch):
    """An installed package (a dist-info on the path) whose two modules are each a scalecode entry point."""
    root = tmp_path / "site"
    (root / "twomods").mkdir(parents=True)
    (root / "twomods" / "__init__.py").write_text("")
    (root / "twomods" / "first.py").write_text(MODULE.format(cls="First", name="first-backend"))
    (root / "twomods" / "second.py").write_text(MODULE.format(cls="Second", name="second-backend"))
    info = root / "twomods-1.2.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: twomods\nVersion: 1.2\n")
    (info / "entry_points.txt").write_text(
        "[scalecode]\ntwomods-first = twomods.first\ntwomods-second = twomods.second\n"
    )
    monkeypatch.syspath_prepend(str(root))
    yield
    for name in [m for m in sys.modules if m.startswith("twomods")]:
        del sys.modules[name]


def test_every_module_a_package_declares_is_loaded(two_module_package):
    plugins = load_plugins()
    assert plugins.backend("first-backend").plugin.name == "twomods:twomods-first"
    assert plugins.backend("second-backend").plugin.name == "twomods:twomods-second"
    assert plugins.backend("second-backend").plugin.version == "1.2"
    assert not plugins.failures


def test_allowing_the_package_by_name_loads_all_its_modules(two_module_package):
    plugins = load_plugins(allow=["twomods"])
    assert {b.name for b in plugins.list_backends()} == {"first-backend", "second-backend"}
    assert not plugins.failures  # the package's name counts as a plugin that is installed
    only = load_plugins(allow=["twomods-second"])
    assert {b.name for b in only.list_backends()} == {"second-backend"}


def test_ctrl_c_while_a_plugin_file_imports_stops_the_command(tmp_path):
    folder = plugin_dir(tmp_path, slow="raise KeyboardInterrupt\n")
    with pytest.raises(KeyboardInterrupt):
        load_plugins(folder, entry_points=False)


def test_a_plugin_file_that_exits_is_a_named_failure(tmp_path):
    plugins = load_plugins(plugin_dir(tmp_path, quits="raise SystemExit(3)\n"), entry_points=False)
    [failure] = plugins.failures
    assert failure.plugin == "quits" and "SystemExit(3)" in str(failure)


def test_a_plugin_file_named_as_an_installed_plugin_is_named_not_skipped(tmp_path):
    plugins = load_plugins(plugin_dir(tmp_path, scalecode=GOOD))
    assert "echo" not in plugins.backends
    [failure] = plugins.failures
    assert failure.plugin == "scalecode" and "rename the file" in str(failure)


def test_plugin_files_whose_names_differ_in_dash_and_underscore_are_named(tmp_path):
    folder = plugin_dir(tmp_path, my_plug=GOOD)
    (folder / "my-plug.py").write_text(textwrap.dedent(MODULE.format(cls="Other", name="other")))
    plugins = load_plugins(folder, entry_points=False)
    [failure] = plugins.failures
    assert failure.plugin == "my_plug" and "my-plug.py" in str(failure)
    assert "other" in plugins.backends  # my-plug.py sorts first and loads
    assert "echo" not in plugins.backends

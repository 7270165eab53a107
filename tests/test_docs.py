"""docs/plugins.md documents every hook, and its example plugin really works."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap

import numpy as np

from conftest import REPO
from scalecode import hookspecs
from scalecode.plugins import load_plugins
from scalecode.scoring import bootstrap
from scalecode.testing import check_backend

DOC = REPO / "docs" / "plugins.md"


def hooks() -> list[str]:
    return [name for name in dir(hookspecs) if name.startswith("register_")]


def code_blocks(marker: str) -> str:
    """The python blocks whose first line names the file, joined in order."""
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)
    return "\n".join(b for b in blocks if b.splitlines()[0].startswith(f"# {marker}"))


def test_every_hook_is_documented():
    text = DOC.read_text()
    for hook in hooks():
        assert re.search(rf"^## {hook}$", text, flags=re.M), f"docs/plugins.md has no section for {hook}"
        assert hookspecs.__dict__[hook].__doc__, f"{hook} has no docstring"


def test_the_documented_example_plugin_works(tmp_path):
    folder = tmp_path / "plugins"
    folder.mkdir()
    (folder / "majority.py").write_text(code_blocks("majority.py"))
    plugins = load_plugins(folder, entry_points=False)
    assert not plugins.failures, plugins.failures
    info = plugins.backend("majority")
    assert plugins.backend("mean") is info
    check_backend(info.backend_class, {"confidence": True})

    bias = next(m for m in plugins.metrics if m.name == "bias")
    estimate = bootstrap([bias], np.zeros(20), np.full(20, 0.25), n_boot=50)["bias"]
    assert estimate.value == 0.25

    reader = next(r for r in plugins.readers if r.name == "lines")
    (tmp_path / "speech.lines").write_text("First line.\n\nSecond line.\n")
    frame = reader.read(tmp_path / "speech.lines", "utf-8")
    assert frame.to_dicts() == [
        {"id": "speech:1", "text": "First line."},
        {"id": "speech:3", "text": "Second line."},
    ]


def test_the_documented_conformance_test_runs_under_pytest(tmp_path):
    (tmp_path / "majority.py").write_text(code_blocks("majority.py"))
    test = re.search(
        r"```python\n(from scalecode.testing import BackendConformance.*?)```", DOC.read_text(), re.S
    )
    assert test is not None
    (tmp_path / "test_majority.py").write_text(textwrap.dedent(test.group(1)))
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path / "test_majority.py")],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "4 passed" in result.stdout


def test_the_pickle_check_tells_pickles_from_safetensors(tmp_path):
    import pickle

    import numpy as np
    from safetensors.numpy import save_file

    from scalecode.testing import _pickles

    save_file({"w": np.zeros((16, 16), dtype=np.float32)}, tmp_path / "weights.safetensors")
    (tmp_path / "state.pkl").write_bytes(pickle.dumps({"w": [1, 2, 3]}, protocol=4))
    assert _pickles(tmp_path) == [str(tmp_path / "state.pkl")]

"""Make the plugin importable when it is not installed; the fake server the tests share."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

# An editable install of the plugin (pip install -e plugins/scalecode-openai) makes this unnecessary.
if importlib.util.find_spec("scalecode_openai") is None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))


import pytest

from scalecode_openai.server import FakeOpenAI, Faults


@pytest.fixture(scope="module")
def server():
    """A fake OpenAI-compatible server on loopback, one per test module."""
    with FakeOpenAI() as running:
        yield running


@pytest.fixture
def api(server):
    """The module's server, reset: no requests recorded, no faults."""
    server.reset()
    server.faults = Faults()
    return server

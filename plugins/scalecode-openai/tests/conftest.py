"""Make the plugin importable when it is not installed."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

# An editable install of the plugin (pip install -e plugins/scalecode-openai) makes this unnecessary.
if importlib.util.find_spec("scalecode_openai") is None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

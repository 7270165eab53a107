"""Helpers for tests that code documents with this backend against the fake server (server.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from scalecode import Task, TaskType
from scalecode_openai.backend import OpenAIBackend
from scalecode_openai.server import FakeOpenAI

TONE = Task(
    name="tone",
    type=TaskType.CLASSIFICATION,
    instructions="The tone of the sentence.",
    labels={"positive": "approves", "negative": "criticises", "neutral": "neither"},
)


def loaded_backend(api: FakeOpenAI, folder: Path, task: Task = TONE, **params: Any) -> OpenAIBackend:
    """An openai backend for ``api``, loaded: its cache in ``folder``/cache.sqlite, its work directory
    ``folder``/work, a 2-second timeout; ``params`` add to or replace those options."""
    options: dict[str, Any] = {
        "model": "test-model",
        "base_url": api.base_url,
        "cache": str(folder / "cache.sqlite"),
        "timeout_s": 2.0,
        **params,
    }
    coder = OpenAIBackend(task, options, work_dir=folder / "work")
    coder.load()
    return coder

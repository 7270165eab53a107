"""Estimating (what ``scalecode plan`` does) makes no cache file: the plan leaves nothing behind."""

from __future__ import annotations

import pytest

from scalecode_openai.backend import CACHE_FILE, OpenAIBackend
from scalecode_openai.testing import TONE, loaded_backend


@pytest.mark.parametrize("where", ["work dir", "cache path"])
def test_an_estimate_without_a_cache_file_makes_none(tmp_path, where):
    params = {"model": "m", "base_url": "http://127.0.0.1:9/v1", "price": {"input": 1, "output": 2}}
    work = tmp_path / "work"
    work.mkdir()  # a run directory's work folder, from a run of another backend say
    if where == "cache path":
        params["cache"] = str(tmp_path / "elsewhere" / "answers.sqlite")
    estimate = OpenAIBackend(TONE, params, work_dir=work).estimate(["a text", "another"])
    assert estimate.requests == 2 and estimate.cached == 0 and estimate.cost_usd
    assert not (work / CACHE_FILE).exists()
    assert not (tmp_path / "elsewhere").exists()


def test_an_estimate_counts_what_an_existing_cache_answers(tmp_path, api):
    coder = loaded_backend(api, tmp_path)
    coder.predict_batch(["I love it."])
    coder.close()
    options = {"model": "test-model", "base_url": api.base_url, "cache": str(tmp_path / "cache.sqlite")}
    estimate = OpenAIBackend(TONE, options, work_dir=tmp_path / "work").estimate(["I love it.", "New."])
    assert (estimate.requests, estimate.cached) == (2, 1)

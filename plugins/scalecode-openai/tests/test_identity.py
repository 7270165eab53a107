"""Which options of the `openai` backend a run directory may be resumed after changing."""

from __future__ import annotations

import hashlib
import json
import textwrap

import pytest

from scalecode.config import load_job
from scalecode.errors import ScalecodeError
from scalecode.plugins import load_plugins
from scalecode.runner import _claim, run_identity
from scalecode_openai.options import OpenAIParams

BASE = {
    "model": "test-model",
    "base_url": "http://127.0.0.1:9/v1",
    "api_key": {"$env": "TEST_API_KEY"},
    "price": {"input": 2.5, "output": 10.0},
    "budget_usd": 1.0,
    "concurrency": 8,
}


@pytest.fixture(scope="module")
def plugins():
    return load_plugins(allow=["scalecode-openai"])


@pytest.fixture(autouse=True)
def key(monkeypatch):
    monkeypatch.setenv("TEST_API_KEY", "sk-test-not-a-real-key-0000")


def claim(tmp_path, plugins, **params: object) -> None:
    (tmp_path / "gold.csv").write_text("id,text,label\n1,a good day,yes\n2,a bad day,no\n")
    (tmp_path / "job.yaml").write_text(
        textwrap.dedent(f"""
        task: {{type: classification, labels: [yes, no]}}
        data: {{gold: {{path: {tmp_path / "gold.csv"}, label_column: label}}}}
        backends:
          - {{name: gpt, plugin: openai, params: {json.dumps({**BASE, **params})}}}
        output: {{dir: {tmp_path / "run"}}}
        """)
    )
    job = load_job(tmp_path / "job.yaml", plugins)
    (tmp_path / "run").mkdir(exist_ok=True)
    _claim(tmp_path / "run", job, run_identity(job, "gold-hash", {}))


def test_how_requests_are_sent_and_paid_is_not_what_the_answers_come_from():
    assert OpenAIParams.operational_options() >= {
        "concurrency",
        "requests_per_minute",
        "tokens_per_minute",
        "timeout_s",
        "max_retries",
        "max_retry_after_s",
        "batch_size",
        "price",
        "budget_usd",
        "api_key",
        "cache",
        "mode",
    }
    # Everything that goes into a request, and so into its answer and its cache key, is not.
    assert not OpenAIParams.operational_options() & {
        "model",
        "base_url",
        "temperature",
        "seed",
        "max_tokens",
        "few_shot",
        "structured_output",
        "logprobs",
        "docs_per_request",
        "extra_body",
    }


def test_a_run_resumes_after_its_budget_is_raised_but_not_after_its_model_changes(tmp_path, plugins):
    claim(tmp_path, plugins)
    # What the budget stop tells the user to do, and what a 429 storm asks for.
    claim(tmp_path, plugins, budget_usd=5.0, concurrency=2, timeout_s=120, max_retries=3)
    with pytest.raises(ScalecodeError, match="holds a run made from a different job"):
        claim(tmp_path, plugins, budget_usd=5.0, model="another-model")
    with pytest.raises(ScalecodeError, match="holds a run made from a different job"):
        claim(tmp_path, plugins, temperature=0.7)


def test_a_run_coded_online_resumes_in_batch_mode_and_back(tmp_path, plugins):
    """What a budget stop suggests: finish the corpus through the Batch API at half the price. Batch
    mode's validation sets structured_output from auto to json_schema; that must not make it another
    job, while naming json_schema outright does."""
    claim(tmp_path, plugins)
    claim(tmp_path, plugins, mode="batch", batch_poll_s=5)
    claim(tmp_path, plugins)
    with pytest.raises(ScalecodeError, match="holds a run made from a different job"):
        claim(tmp_path, plugins, structured_output="json_schema")


def test_a_run_directory_claimed_by_the_earlier_identity_is_still_accepted(tmp_path, plugins):
    """Earlier versions hashed every option, operational ones included; their directories resume."""
    claim(tmp_path, plugins)
    marker = tmp_path / "run" / "job.json"
    record = json.loads(marker.read_text())
    config = record["job"]
    made_from = {
        "task": config["task"],
        "data": config["data"],
        "backends": config["backends"],
        "split": {key: config["evaluation"][key] for key in ("test_size", "seed", "stratify")},
    }
    record["identity"]["config"] = hashlib.sha256(json.dumps(made_from, sort_keys=True).encode()).hexdigest()
    marker.write_text(json.dumps(record))
    claim(tmp_path, plugins)
    assert json.loads(marker.read_text())["identity"]["config"] != record["identity"]["config"]  # rewritten

"""Failures every later request would meet stop the run; texts repeated in a batch are asked once."""

from __future__ import annotations

import pytest

from scalecode import Task, TaskType
from scalecode.errors import StopRun
from scalecode_openai.backend import OpenAIBackend

TONE = Task(
    name="tone",
    type=TaskType.CLASSIFICATION,
    instructions="The tone of the sentence.",
    labels={"positive": "approves", "negative": "criticises", "neutral": "neither"},
)


def backend(api, tmp_path, **params):
    options = {"model": "test-model", "base_url": api.base_url, "cache": str(tmp_path / "cache.sqlite")}
    options.update(timeout_s=2.0, max_retries=1, concurrency=1)
    options.update(params)
    coder = OpenAIBackend(TONE, options, work_dir=tmp_path / "work")
    coder.load()
    return coder


def test_an_account_out_of_credit_stops_the_run_instead_of_waiting_out_every_document(api, tmp_path):
    coder = backend(api, tmp_path)
    texts = ["[[fault:quota]] a positive start", "positive two", "positive three"]
    with pytest.raises(StopRun, match=r"RateLimitError \(429\).*out of credit: add credit"):
        coder.predict_batch(texts)
    # The client retried the 429 as a rate limit (once, max_retries=1); no other document was sent.
    assert [c.fault for c in api.chat_calls()] == ["quota", "quota"]
    api.reset()
    with pytest.raises(StopRun, match="out of credit"):  # the replica sends nothing more
        coder.predict_batch(["positive four"])
    assert api.chat_calls() == []


def test_a_refused_key_stops_the_run_after_one_request(api, tmp_path):
    coder = backend(api, tmp_path, concurrency=4)
    texts = ["[[fault:401]] one"] + [f"[[fault:401]] positive {i}" for i in range(20)]
    with pytest.raises(StopRun, match=r"AuthenticationError \(401\).*refuses the API key") as stop:
        coder.predict_batch(texts)
    assert "retries" not in str(stop.value)  # the client does not retry a 401: it says so
    assert len(api.chat_calls()) <= 4  # at most the requests already in flight, not one per document


def test_an_unknown_model_or_endpoint_stops_the_run_without_claiming_retries(api, tmp_path):
    coder = backend(api, tmp_path, base_url=api.base_url.replace("/v1", "/wrong"), max_retries=3)
    with pytest.raises(StopRun, match=r"^API error: NotFoundError \(404\).*check model and base_url"):
        coder.predict_batch(["a positive start", "another"])
    assert len([c for c in api.calls if c.path.startswith("/wrong")]) == 1  # asked once


def test_an_ordinary_rate_limit_is_still_an_error_row_for_that_document_alone(api, tmp_path):
    answers = backend(api, tmp_path).predict_batch(["[[fault:429]] positive one", "positive two"])
    assert answers.error[0].startswith("API error after 1 retries: RateLimitError (429)")
    assert list(answers.retry) == [True, False] and answers.label[1] == "positive"


def test_a_text_repeated_in_one_batch_is_asked_once_and_costs_once(api, tmp_path):
    coder = backend(api, tmp_path, concurrency=8, price={"input": 1.0, "output": 2.0})
    texts = ["positive and the same", "negative other", "positive and the same", "positive and the same"]
    answers = coder.predict_batch(texts)
    assert len(api.chat_calls()) == 2
    assert list(answers.label) == ["positive", "negative", "positive", "positive"]
    assert answers.extra["cached"] == [False, False, True, True]
    costs = answers.extra["cost_usd"]
    assert costs[0] > 0 and costs[2] == costs[3] == 0.0
    assert answers.extra["request_key"][0] == answers.extra["request_key"][2]

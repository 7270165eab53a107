"""The `openai` backend against the project's OpenAI-compatible server, over real HTTP, real client."""

from __future__ import annotations

import json
import math
import time

import pytest

from scalecode import Task, TaskType
from scalecode.errors import StopRun
from scalecode.testing import BackendConformance
from scalecode_openai.backend import OpenAIBackend
from scalecode_openai.cache import ResponseCache
from scalecode_openai.server import FakeOpenAI, Faults
from scalecode_openai.testing import TONE, loaded_backend


def backend(api, tmp_path, task=TONE, **params):
    return loaded_backend(api, tmp_path, task, **{"max_retries": 3, **params})


def test_codes_each_document_with_a_label_and_its_confidence(api, tmp_path):
    coder = backend(api, tmp_path)
    texts = ["a positive start", "NEGATIVE news", "nothing much", "[[label:neutral]] all positive"]
    answers = coder.predict_batch(texts)
    assert list(answers.label) == ["positive", "negative", "positive", "neutral"]
    assert answers.error == [None] * 4
    assert answers.confidence == pytest.approx([0.9] * 4)  # from the reply's log-probabilities
    assert all(tokens > 0 for tokens in answers.extra["input_tokens"])
    assert answers.extra["cached"] == [False] * 4
    sent = api.chat_calls()[0].body
    assert sent["temperature"] == 0 and sent["seed"] == 2024  # as configured, reproducibly
    schema = sent["response_format"]["json_schema"]["schema"]
    assert schema["properties"]["label"]["enum"] == ["positive", "negative", "neutral"]
    assert (
        sent["messages"][0]["role"] == "system" and "- negative: criticises" in sent["messages"][0]["content"]
    )


def test_a_second_run_is_answered_from_the_cache_without_a_request(api, tmp_path):
    texts = [f"positive text number {i}" for i in range(20)]
    first = backend(api, tmp_path).predict_batch(texts)
    assert len(api.chat_calls()) == 20
    api.reset()
    again = backend(api, tmp_path).predict_batch(texts)
    assert api.chat_calls() == []
    assert list(again.label) == list(first.label)
    assert again.extra["cached"] == [True] * 20 and again.extra["cost_usd"] == [0.0] * 20
    # The cache is the audit log: every request with its full response, keyed by its hash.
    rows = (
        ResponseCache(tmp_path / "cache.sqlite")
        ._db.execute("SELECT request, response FROM responses")
        .fetchall()
    )
    assert len(rows) == 20
    assert json.loads(rows[0][0])["model"] == "test-model"


@pytest.mark.parametrize("fault", ["429*2", "500*2", "malformed*2", "hang*1"])
def test_transient_faults_are_retried_until_the_document_is_coded(api, tmp_path, fault):
    api.faults = Faults(hang_s=3.0, retry_after_s=0.05)
    coder = backend(api, tmp_path, timeout_s=0.5)
    answers = coder.predict_batch([f"[[fault:{fault}]] a negative text", "a positive one"])
    assert list(answers.label) == ["negative", "positive"]
    attempts = [c for c in api.chat_calls() if "fault" in json.dumps(c.body)]
    assert len(attempts) == int(fault.split("*")[1]) + 1
    if fault.startswith("429"):
        assert attempts[0].status == 429


def test_a_document_that_keeps_failing_gets_an_error_row_not_a_crash(api, tmp_path):
    coder = backend(api, tmp_path, max_retries=1)
    answers = coder.predict_batch(["[[fault:500]] always broken", "fine and positive"])
    assert answers.label[1] == "positive"
    assert answers.label[0] is None
    assert "API error after 1 retries" in answers.error[0] and "500" in answers.error[0]
    assert list(answers.retry) == [True, False]  # a server error may pass: the next run asks again
    assert len([c for c in api.chat_calls() if c.status == 500]) == 2
    # Failures are logged, and not cached: the next run asks again.
    db = ResponseCache(tmp_path / "cache.sqlite")._db
    assert db.execute("SELECT count(*) FROM failures").fetchone()[0] == 1
    api.reset()
    backend(api, tmp_path, max_retries=0).predict_batch(["[[fault:500]] always broken"])
    assert len(api.chat_calls()) == 1


def test_only_failures_that_may_pass_are_marked_to_retry():
    import openai

    from scalecode_openai.client import _passing

    def failure(kind: type[Exception], status: int | None = None) -> Exception:
        # Built bare: only the type and the status code matter here, not the HTTP exchange.
        exc = kind.__new__(kind)
        if status is not None:
            exc.status_code = status  # type: ignore[attr-defined]
        return exc

    codes = (401, 404, 408, 413, 422, 429, 500, 503)
    passing = [_passing(failure(openai.APIStatusError, c)) for c in codes]
    assert passing == [True, True, True, False, False, True, True, True]
    assert _passing(failure(openai.APITimeoutError)) and _passing(failure(openai.APIConnectionError))


def test_client_side_limits_spread_requests_over_time(api, tmp_path):
    coder = backend(api, tmp_path, requests_per_minute=1200, concurrency=64)  # 20 a second
    started = time.perf_counter()
    answers = coder.predict_batch([f"positive {i}" for i in range(60)])
    elapsed = time.perf_counter() - started
    assert answers.error == [None] * 60
    assert elapsed >= 1.8  # a second's worth at once, then 20 a second: never all 60 at once


def test_an_answer_outside_the_codebook_is_an_error_that_keeps_the_raw_answer(api, tmp_path):
    answers = backend(api, tmp_path).predict_batch(["[[label:sarcastic]] oh great"])
    assert answers.label == [None]
    assert answers.error[0] == "answer is not a label of the codebook: 'sarcastic'"
    assert json.loads(answers.raw[0]) == {"label": "sarcastic"}
    assert list(answers.retry) == [False]  # asking again would get the same answer


def test_servers_without_schema_support_fall_back_and_prose_is_read_strictly(tmp_path):
    # Without a schema the server cannot read the labels from the request: it is told them.
    with FakeOpenAI(Faults(schema_support=False), labels=TONE.label_names) as api:
        coder = backend(api, tmp_path)
        answers = coder.predict_batch(["a negative one", "[[fault:prose]] neutral really"])
        formats = [(c.body.get("response_format") or {}).get("type") for c in api.chat_calls()]
    # A label inside a sentence is no answer: only a reply that is a label alone would be.
    assert list(answers.label) == ["negative", None]
    assert answers.error[1] == "answer has no 'label'" and answers.raw[1] == "The label is neutral."
    assert formats[0] == "json_schema" and formats[-1] == "json_object"
    assert coder.requester.format == "json_object"  # asked once, remembered


def test_several_documents_per_request_map_back_by_id(api, tmp_path):
    coder = backend(api, tmp_path, docs_per_request=4)
    texts = ["positive", "negative", "neutral", "[[label:bogus]] x", "negative again", "plain"]
    answers = coder.predict_batch(texts)
    assert list(answers.label) == ["positive", "negative", "neutral", None, "negative", "positive"]
    assert "bogus" in answers.error[3]
    assert len(api.chat_calls()) == 2
    assert (
        answers.extra["request_key"][0] == answers.extra["request_key"][3] != answers.extra["request_key"][4]
    )
    assert answers.confidence[1] == pytest.approx(0.9)


def test_regression_scores_are_checked_against_the_scale(api, tmp_path):
    task = Task(name="tone", type=TaskType.REGRESSION, instructions="Tone.", scale={"min": -4, "max": 4})
    answers = backend(api, tmp_path, task=task).predict_batch(
        ["[[score:2.5]] good", "[[score:9]] off the scale"]
    )
    assert answers.score[0] == 2.5
    assert answers.score[1] is None and "outside the scale" in answers.error[1]


def test_the_budget_stops_the_run_and_a_later_run_resumes_without_paying_twice(api, tmp_path):
    price = {"input": 1000.0, "output": 1000.0}  # dollars per million tokens: about 10 cents a request
    texts = [f"positive number {i}" for i in range(30)]
    coder = backend(api, tmp_path, price=price, budget_usd=0.5, concurrency=2)
    with pytest.raises(StopRun, match=r"budget of \$0.50 reached"):
        coder.predict_batch(texts)
    paid = len(api.chat_calls())
    assert 0 < paid < 30
    assert coder.requester.budget.spent < 0.5 + 2 * 0.2  # at most the requests in flight over
    api.reset()
    answers = backend(api, tmp_path, price=price, budget_usd=100).predict_batch(texts)
    assert len(api.chat_calls()) == 30 - paid
    assert answers.error == [None] * 30
    assert sum(c == 0.0 for c in answers.extra["cost_usd"]) == paid
    assert math.isclose(
        sum(answers.extra["cost_usd"]),
        sum(
            (a + b) * 1000 / 1e6
            for a, b in zip(answers.extra["input_tokens"], answers.extra["output_tokens"])
        )
        - sum(
            (a + b) * 1000 / 1e6
            for a, b, hit in zip(
                answers.extra["input_tokens"], answers.extra["output_tokens"], answers.extra["cached"]
            )
            if hit
        ),
    )


def test_estimate_counts_requests_tokens_and_what_the_cache_already_holds(api, tmp_path):
    price = {"input": 2.0, "output": 8.0}
    coder = backend(api, tmp_path, price=price, docs_per_request=2)
    texts = [f"document {i} is positive" for i in range(10)]
    before = coder.estimate(texts)
    assert (before.documents, before.requests, before.cached) == (10, 5, 0)
    assert before.input_tokens > 0 and before.cost_usd > 0
    assert api.chat_calls() == []  # estimating sends nothing
    coder.predict_batch(texts[:4])
    after = coder.estimate(texts)
    assert after.cached == 2
    assert after.cost_usd == pytest.approx(before.cost_usd * 3 / 5)


class TestConformance(BackendConformance):
    """The plugin author's kit, run against the server: valid codes, deterministic, batch-invariant."""

    backend_class = OpenAIBackend
    task_types = (TaskType.CLASSIFICATION, TaskType.MULTILABEL, TaskType.REGRESSION)

    @pytest.fixture(autouse=True)
    def _server(self, server):
        server.reset()
        server.faults = Faults()
        type(self).params = {"model": "test-model", "base_url": server.base_url, "cache": False}

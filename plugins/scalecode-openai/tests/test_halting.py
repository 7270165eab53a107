"""Failures every later request would meet stop the run; texts repeated in a batch are asked once."""

from __future__ import annotations

import pytest

from scalecode.errors import StopRun
from scalecode_openai.testing import loaded_backend


def backend(api, tmp_path, **params):
    return loaded_backend(api, tmp_path, **{"max_retries": 1, "concurrency": 1, **params})


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


def test_the_budget_binds_on_a_server_that_reports_no_usage(api, tmp_path):
    api.faults.usage = False
    price = {"input": 1000.0, "output": 1000.0}  # dollars per million tokens: about 10 cents a request
    coder = backend(api, tmp_path, price=price, budget_usd=0.5, concurrency=2)
    with pytest.raises(StopRun, match=r"budget of \$0.50 reached"):
        coder.predict_batch([f"positive number {i}" for i in range(30)])
    assert 0 < len(api.chat_calls()) < 10
    assert 0.5 <= coder.requester.budget.spent < 0.5 + 2 * 0.2


def test_a_server_without_usage_reports_the_cost_as_unknown(api, tmp_path):
    api.faults.usage = False
    coder = backend(api, tmp_path, price={"input": 1.0, "output": 1.0}, budget_usd=10)
    answers = coder.predict_batch(["positive one"])
    assert answers.extra["cost_usd"] == [None] and answers.extra["input_tokens"] == [None]
    assert coder.requester.budget.spent > 0  # the estimate counts against the budget only


def batch_backend(api, tmp_path, **params):
    return loaded_backend(api, tmp_path, **{"mode": "batch", "batch_poll_s": 0.05, **params})


def test_a_batch_that_fails_validation_says_why_in_each_row_and_the_cache(api, tmp_path, caplog):
    limit = "Enqueued token limit reached for m in organization org-x. Limit: 90,000 enqueued tokens."
    api.faults.batch_failure = limit
    coder = batch_backend(api, tmp_path)
    answers = coder.predict_batch(["positive one", "negative two"])
    assert answers.label == [None, None] and list(answers.retry) == [True, True]
    for error in answers.error:
        assert "ended failed without answering it (token_limit_exceeded: Enqueued token limit" in error
    assert "2 of 2 requests: batch" in caplog.text
    failures = coder.requester.cache._db.execute("SELECT error FROM failures").fetchall()
    assert len(failures) == 2 and all("token_limit_exceeded" in f[0] for f in failures)


def test_no_batch_carries_more_than_batch_max_requests(api, tmp_path):
    coder = batch_backend(api, tmp_path, batch_max_requests=3)
    answers = coder.predict_batch([f"positive {i}" for i in range(7)])
    assert answers.error == [None] * 7
    created = [c for c in api.calls if c.method == "POST" and c.path == "/v1/batches"]
    uploads = [c for c in api.calls if c.method == "POST" and c.path == "/v1/files"]
    assert len(created) == len(uploads) == 3  # 3 + 3 + 1 requests


def test_the_estimate_counts_a_repeated_text_once(api, tmp_path):
    coder = backend(api, tmp_path, price={"input": 2.0, "output": 8.0})
    once = coder.estimate(["positive one", "negative two"])
    twice = coder.estimate(["positive one", "negative two", "positive one", "positive one"])
    assert (twice.documents, twice.requests) == (4, 2)
    assert twice.cost_usd == pytest.approx(once.cost_usd)


@pytest.mark.parametrize("key", ["gateway-key-that-is-not-sk-shaped", "sk-proj-REALOPENAIKEY1234567890abcd"])
def test_a_server_that_echoes_the_key_in_its_error_does_not_put_it_in_the_stop_or_the_cache(
    api, tmp_path, key
):
    coder = backend(api, tmp_path, api_key=key)
    with pytest.raises(StopRun, match=r"Incorrect API key provided: \S*\*\*\*") as stop:
        coder.predict_batch(["[[fault:401]] positive"])
    assert key in api.chat_calls()[0].headers["authorization"]  # the server did get it, and echoed it
    failures = coder.requester.cache._db.execute("SELECT error FROM failures").fetchall()
    assert failures and all(key not in f[0] for f in failures)
    assert key not in str(stop.value)


def test_a_403_for_one_documents_content_is_its_error_row_and_the_run_goes_on(api, tmp_path):
    answers = backend(api, tmp_path).predict_batch(["[[fault:403]] flagged", "positive two"])
    assert answers.error[0].startswith("API error: PermissionDeniedError (403)")
    assert list(answers.retry) == [False, False]  # it would be refused again
    assert answers.label[1] == "positive"


def test_a_403_halts_only_when_it_is_about_access():
    import httpx2
    import openai

    from scalecode_openai.client import halting_failure

    def forbidden(message: str, code: str | None = None) -> Exception:
        response = httpx2.Response(403, request=httpx2.Request("POST", "http://x/v1/chat/completions"))
        body = {"message": message, "type": "invalid_request_error", "code": code}
        return openai.PermissionDeniedError(message, response=response, body=body)

    assert halting_failure(forbidden("Country, region, or territory not supported")) is not None
    assert halting_failure(forbidden("You have insufficient permissions for this operation.")) is not None
    assert halting_failure(forbidden("Your input was flagged by moderation.", "flagged")) is None


def test_a_key_longer_than_the_message_is_cut_is_still_scrubbed(api, tmp_path):
    key = "eyJhbGciOiJIUzI1NiJ9." + "x" * 400 + ".signature"  # a JWT used as the key
    coder = backend(api, tmp_path, api_key=key)
    with pytest.raises(StopRun) as stop:
        coder.predict_batch(["[[fault:401]] positive"])
    failures = coder.requester.cache._db.execute("SELECT error FROM failures").fetchall()
    for text in [str(stop.value), *(f[0] for f in failures)]:
        assert key[:40] not in text and "xxxxxxxxxx" not in text


def test_batch_mode_stops_at_a_refused_key_without_writing_it(api, tmp_path, caplog):
    key = "gateway-key-that-is-not-sk-shaped-123456"
    api.faults.require_key = "the-right-key"
    coder = batch_backend(api, tmp_path, api_key=key)
    with pytest.raises(
        StopRun, match=r"Batch API error: AuthenticationError \(401\).*refuses the API key"
    ) as stop:
        coder.predict_batch(["positive one"])
    assert key not in str(stop.value) and key not in caplog.text


def test_a_repeated_text_without_a_price_keeps_its_cost_unknown(api, tmp_path):
    answers = backend(api, tmp_path, concurrency=4).predict_batch(["positive same", "positive same"])
    assert answers.extra["cost_usd"] == [None, None]


def test_usage_of_zeros_is_charged_at_estimated_tokens():
    from scalecode_openai.cost import budget_charge
    from scalecode_openai.options import Price

    price = Price(input=1000.0, output=1000.0)
    request = {"messages": [{"role": "user", "content": "x" * 400}]}
    response = {"choices": [{"message": {"content": "positive"}}]}
    estimated = budget_charge(price, request, response)
    assert estimated is not None and estimated > 0.1
    for usage in ({"prompt_tokens": 0, "completion_tokens": 0}, {"prompt_tokens": None}):
        assert budget_charge(price, request, {**response, "usage": usage}) == estimated
    real = {"prompt_tokens": 10, "completion_tokens": 2}
    assert budget_charge(price, request, {**response, "usage": real}) == pytest.approx(0.012)


def test_a_batch_the_server_will_not_take_stops_the_run_rather_than_one_batch_per_document(
    api, tmp_path, monkeypatch
):
    import httpx2
    import openai

    coder = batch_backend(api, tmp_path)

    async def too_large(*args, **kwargs):
        response = httpx2.Response(413, request=httpx2.Request("POST", f"{api.base_url}/files"))
        raise openai.APIStatusError("File is too large.", response=response, body={"message": "too large"})

    monkeypatch.setattr(coder.requester.client.files, "create", too_large)
    with pytest.raises(StopRun, match=r"Batch API error: APIStatusError \(413\).*batch_size"):
        coder.predict_batch(["positive one", "negative two"])


def test_a_batch_upload_the_server_keeps_failing_stops_the_run_saying_so(api, tmp_path, monkeypatch):
    import httpx2
    import openai

    coder = batch_backend(api, tmp_path)

    async def down(*args, **kwargs):
        response = httpx2.Response(500, request=httpx2.Request("POST", f"{api.base_url}/files"))
        raise openai.InternalServerError("Server error.", response=response, body=None)

    monkeypatch.setattr(coder.requester.client.files, "create", down)
    with pytest.raises(StopRun, match=r"InternalServerError \(500\).*kept failing.*try again later"):
        coder.predict_batch(["positive one"])

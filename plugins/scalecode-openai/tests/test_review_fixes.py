"""Fixes from a review: the key's destination, 400s that are not the format's fault, answers that are
not codes, few-shot coverage, the token limit and a budget for the whole run."""

from __future__ import annotations

import time

import pytest

import scalecode_openai.server as fake_server
from scalecode import Example, Task, TaskType
from scalecode_openai.answers import Code, parse
from scalecode_openai.backend import OpenAIBackend
from scalecode_openai.server import FakeOpenAI, Faults
from scalecode_openai.testing import TONE, loaded_backend

REAL_KEY = "sk-proj-REALOPENAIKEY1234567890"
NO_KEY = "no-key"  # what the client sends where no key is needed (it insists on sending one)


def backend(api, tmp_path, task=TONE, **params):
    return loaded_backend(api, tmp_path, task, **{"max_retries": 0, "concurrency": 1, **params})


# --- 1. OPENAI_API_KEY goes to OpenAI only ---------------------------------------------------------


def test_the_openai_key_from_the_environment_is_not_sent_to_another_server(api, tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", REAL_KEY)
    answers = backend(api, tmp_path).predict_batch(["a positive text"])
    assert answers.label == ["positive"]  # a server that needs no key still codes
    assert api.chat_calls()[0].headers.get("authorization") == f"Bearer {NO_KEY}"


def test_the_key_the_job_names_is_sent_to_any_server(api, tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", REAL_KEY)
    answers = backend(api, tmp_path, api_key="gateway-key-1").predict_batch(["a positive text"])
    assert answers.label == ["positive"]
    assert api.chat_calls()[0].headers.get("authorization") == "Bearer gateway-key-1"


@pytest.mark.parametrize(
    ("base_url", "gets_it"),
    [
        (None, True),
        ("https://api.openai.com/v1", True),
        ("https://api.openai.com/v1/", True),
        ("http://api.openai.com/v1", False),  # plain http: the key would cross the network in clear
        ("https://api.openai.com.evil.example/v1", False),
        ("http://gpu-node:8000/v1", False),
        ("https://gateway.university.example/openai/v1", False),
    ],
)
def test_only_openai_itself_gets_the_openai_key_from_the_environment(monkeypatch, base_url, gets_it):
    monkeypatch.setenv("OPENAI_API_KEY", REAL_KEY)
    coder = OpenAIBackend(TONE, {"model": "m", "base_url": base_url, "cache": False})
    coder.load()
    try:
        assert coder.requester.client.api_key == (REAL_KEY if gets_it else NO_KEY)
    finally:
        coder.close()


def test_openai_itself_without_a_key_is_refused_before_the_run(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    params = OpenAIBackend.Params.model_validate({"model": "m", "base_url": "https://api.openai.com/v1"})
    with pytest.raises(ValueError, match="OPENAI_API_KEY is not set"):
        OpenAIBackend.check(TONE, params, train=False)
    local = OpenAIBackend.Params.model_validate({"model": "m", "base_url": "http://localhost:11434/v1"})
    OpenAIBackend.check(TONE, local, train=False)  # a local server needs none


# --- 2. a 400 steps the format down only when it names the format ----------------------------------

CONTEXT = (
    "This model's maximum context length is 8192 tokens. However, your messages resulted in 9001 tokens."
)


@pytest.fixture
def refusing(monkeypatch):
    """The server refuses documents marked [[toolong]] as a real server refuses an over-long one, and
    answers a refusal with ``status`` (400 by default; a test may change it)."""
    original, error = fake_server.refusal, fake_server._error
    status = {"code": 400}

    def refusal(body, faults):
        reason = original(body, faults)
        if reason is None and "[[toolong]]" in fake_server._user_text(body):
            return CONTEXT
        return reason

    def answer(code, message, kind, error_code=None, **headers):
        return error(status["code"] if code == 400 else code, message, kind, error_code, **headers)

    monkeypatch.setattr(fake_server, "refusal", refusal)
    monkeypatch.setattr(fake_server, "_error", answer)
    return status


def formats(api):
    return [(c.status, (c.body.get("response_format") or {}).get("type")) for c in api.chat_calls()]


def test_a_400_for_one_document_keeps_structured_output_for_the_others(api, tmp_path, refusing):
    coder = backend(api, tmp_path)
    answers = coder.predict_batch(["[[toolong]] huge", "doc a positive", "doc b negative"])
    assert answers.label == [None, "positive", "negative"]
    assert answers.error[0].startswith("API refused the request: BadRequestError (400): ")
    assert "maximum context length" in answers.error[0]
    assert list(answers.retry) == [False, False, False]
    assert coder.requester.format == "json_schema" and coder.requester.logprobs is True
    assert formats(api) == [(400, "json_schema"), (200, "json_schema"), (200, "json_schema")]
    assert answers.confidence[1:] == pytest.approx([0.9, 0.9])


def test_a_422_that_names_the_format_steps_down(tmp_path, refusing):
    refusing["code"] = 422
    with FakeOpenAI(Faults(schema_support=False), labels=TONE.label_names) as api:
        coder = backend(api, tmp_path)
        answers = coder.predict_batch(["a negative one"])
        assert answers.label == ["negative"]
        assert formats(api) == [(422, "json_schema"), (200, "json_object")]
    assert coder.requester.format == "json_object"


def test_a_422_that_does_not_name_the_format_is_the_documents_error(api, tmp_path, refusing):
    refusing["code"] = 422
    coder = backend(api, tmp_path)
    answers = coder.predict_batch(["[[toolong]] huge"])
    assert answers.error[0].startswith("API refused the request: UnprocessableEntityError (422): ")
    assert list(answers.retry) == [False]
    assert coder.requester.format == "json_schema"
    assert formats(api) == [(422, "json_schema")]


@pytest.mark.parametrize(
    ("param", "message", "names"),
    [
        # OpenAI
        (
            "response_format",
            "Invalid parameter: 'response_format' of type 'json_schema' is not supported with this model.",
            "format",
        ),
        (None, "'response_format.type' must be 'json_schema', 'json_object' or 'text'", "format"),
        # vLLM, llama.cpp, Ollama
        (None, "1 validation error for ResponseFormat: json_schema Field required", "format"),
        (None, "Unsupported response_format type - json_schema", "format"),
        (None, 'response_format type must be one of "text" or "json_object"', "format"),
        ("logprobs", "logprobs is not supported with this model.", "logprobs"),
        (None, "top_logprobs must be between 0 and 20", "logprobs"),
        # OpenAI's reasoning models: the same limit, by its newer name
        (
            "max_tokens",
            "Unsupported parameter: 'max_tokens' is not supported with this model. "
            "Use 'max_completion_tokens' instead.",
            "max_tokens",
        ),
        # the request's own fault, or an option's value
        ("messages", CONTEXT, None),
        (
            "max_tokens",
            "max_tokens is too large: 100000. This model supports at most 16384 completion tokens.",
            None,
        ),
        # vLLM's refusal of a document too long for the context, naming both spellings
        (
            None,
            "'max_tokens' or 'max_completion_tokens' is too large: 256. This model's maximum context "
            "length is 2048 tokens and your request has 1900 input tokens (256 > 2048 - 1900).",
            None,
        ),
        (
            "temperature",
            "Unsupported value: 'temperature' does not support 0.0 with this model.",
            None,
        ),
        (
            None,
            "The response was filtered due to the prompt triggering Azure OpenAI's content management "
            "policy.",
            None,
        ),
    ],
)
def test_what_a_refusal_names(param, message, names):
    from scalecode_openai.client import refused_option

    assert refused_option(param, message) == names


# --- 3. answers that are not codes -----------------------------------------------------------------


@pytest.fixture
def truncating(monkeypatch):
    """The server honours max_tokens as a real one does (four characters a token here)."""
    original = fake_server.completion

    def completion(body, answer, confidence):
        out = original(body, answer, confidence)
        limit, choice = 4 * body.get("max_tokens", 10**9), out["choices"][0]
        if len(choice["message"]["content"]) > limit:
            choice["message"]["content"] = choice["message"]["content"][:limit]
            choice["finish_reason"], choice["logprobs"] = "length", None
            out["usage"]["completion_tokens"] = body["max_tokens"]
        return out

    monkeypatch.setattr(fake_server, "completion", completion)


def test_an_answer_cut_off_at_max_tokens_is_an_error_row(api, tmp_path, truncating):
    coder = backend(api, tmp_path, docs_per_request=40)
    answers = coder.predict_batch([f"item {i} is positive" for i in range(40)])
    assert answers.label == [None] * 40
    assert set(answers.error) == {
        "answer cut off at max_tokens (256 tokens): raise max_tokens or lower docs_per_request "
        "(40 documents shared one answer)"
    }
    assert list(answers.retry) == [False] * 40
    assert answers.raw[0] is not None and len(answers.raw[0]) == 4 * 256


def test_an_answer_of_one_document_cut_off_names_max_tokens(api, tmp_path, truncating):
    coder = backend(api, tmp_path, max_tokens=3)
    answers = coder.predict_batch(["a positive text"])
    assert answers.label == [None]
    assert answers.error == ["answer cut off at max_tokens (3 tokens): raise max_tokens"]


def test_a_refusal_is_the_error_reason(api, tmp_path, monkeypatch):
    original = fake_server.completion

    def completion(body, answer, confidence):
        out = original(body, answer, confidence)
        out["choices"][0]["message"].update(content=None, refusal="I'm sorry, I cannot assist with that.")
        return out

    monkeypatch.setattr(fake_server, "completion", completion)
    answers = backend(api, tmp_path).predict_batch(["a positive text"])
    assert answers.label == [None]
    assert answers.error == ["the model refused: I'm sorry, I cannot assist with that."]
    assert answers.raw == ["I'm sorry, I cannot assist with that."]
    assert list(answers.retry) == [False]


YES_NO = Task(name="q", type=TaskType.CLASSIFICATION, labels=["yes", "no"])
STANCE = Task(name="s", type=TaskType.CLASSIFICATION, labels=["hate", "offensive", "neither"])
GOV = Task(name="g", type=TaskType.CLASSIFICATION, labels=["pro", "pro-government", "anti"])


@pytest.mark.parametrize(
    ("task", "reply"),
    [
        (YES_NO, "I'm sorry, I can't help with that. No."),
        (STANCE, "This is not offensive."),
        (GOV, '{"label": "pro-gov'),
        (TONE, "The label is neutral."),
        (TONE, "positive or negative"),
    ],
)
def test_prose_that_is_not_a_label_alone_is_no_code(task, reply):
    (code,) = parse(task, reply, 1)
    assert code.value is None and code.error == "answer has no 'label'"


@pytest.mark.parametrize(
    ("reply", "label"),
    [
        ("neutral", "neutral"),
        ("  Neutral.\n", "neutral"),
        ('"negative"', "negative"),
        ("'negative'.", "negative"),
        ('"POSITIVE."', "positive"),
        ("`neutral`", "neutral"),
        ("**Negative**", "negative"),
        ("\u201cneutral.\u201d", "neutral"),
    ],
)
def test_a_reply_that_is_a_label_alone_is_its_code(reply, label):
    assert parse(TONE, reply, 1) == [Code(label)]


COUNTRY = Task(name="c", type=TaskType.CLASSIFICATION, labels=["U.S.", "U.K.", "other"])


@pytest.mark.parametrize(
    ("task", "reply", "label"),
    [
        (COUNTRY, "U.S.", "U.S."),  # a label ending in a period, as written
        (COUNTRY, '"U.K."', "U.K."),
        (COUNTRY, '"U.K.".', "U.K."),
        (GOV, "```\npro\n```", "pro"),  # in a code fence
        (GOV, "```text\nanti.\n```", "anti"),
    ],
)
def test_a_label_ending_in_a_period_or_in_a_code_fence_is_read(task, reply, label):
    assert parse(task, reply, 1) == [Code(label)]


# --- 4. few-shot examples cover the labels --------------------------------------------------------


def test_few_shot_takes_examples_round_robin_across_labels():
    examples = tuple(
        Example(text=f"{label} example {i}", label=label)
        for label in ("positive", "negative", "neutral")
        for i in range(3)
    )
    task = TONE.model_copy(update={"examples": examples})
    shown = OpenAIBackend(task, {"model": "m", "few_shot": 4, "cache": False}).examples
    assert [e.text for e in shown] == [
        "positive example 0",
        "negative example 0",
        "neutral example 0",
        "positive example 1",
    ]
    two = OpenAIBackend(task, {"model": "m", "few_shot": 2, "cache": False}).examples
    assert [e.label for e in two] == ["positive", "negative"]
    every = OpenAIBackend(task, {"model": "m", "cache": False}).examples
    assert sorted(e.text for e in every) == sorted(e.text for e in examples)


# --- 5. the token limit holds for requests larger than a second's allowance -----------------------


def test_a_request_larger_than_a_seconds_tokens_waits_for_all_of_them():
    coder = OpenAIBackend(
        TONE,
        # 10,000 tokens a second; the request asks for up to 25,000: two and a half seconds' worth
        {"model": "m", "base_url": "http://127.0.0.1:9/v1", "cache": False, "tokens_per_minute": 600_000},
    )
    coder.params = coder.params.model_copy(update={"max_tokens": 25_000})
    coder.load()
    try:
        body = coder.requester.body([{"role": "user", "content": "hi"}], TONE, 1)
        started = time.perf_counter()
        coder._loop.run_until_complete(coder.requester._wait_for_limits(body))
        elapsed = time.perf_counter() - started
    finally:
        coder.close()
    assert elapsed >= 1.4  # the bucket starts with one second's 10,000; the other 15,000 take 1.5 s


# --- 6. budget_usd caps the run, not each stage ----------------------------------------------------

PRICE = {"input": 600.0, "output": 600.0}  # dollars per million tokens: a few cents a request here


def test_the_budget_holds_for_the_whole_run_across_its_stages(api, tmp_path):
    """The core loads the backend again for the gold test set, the gold retry and the corpus (and Ray
    restarts replicas): the spending of the run so far comes with it, from the backend's work_dir."""
    from scalecode.errors import StopRun

    gold = backend(api, tmp_path, price=PRICE, budget_usd=0.1)
    gold.predict_batch([f"gold {i} positive" for i in range(2)])
    first = gold.requester.budget.spent
    assert 0 < first < 0.1
    corpus = backend(api, tmp_path, price=PRICE, budget_usd=0.1)  # the next stage, a fresh replica
    assert corpus.requester.budget.spent == pytest.approx(first)
    with pytest.raises(StopRun, match=r"budget of \$0.10 reached"):
        corpus.predict_batch([f"corpus {i} negative" for i in range(50)])
    costs = [c for c in _costs(tmp_path)]
    assert sum(costs) == pytest.approx(corpus.requester.budget.spent)
    assert sum(costs[:-1]) < 0.1 <= sum(costs)  # concurrency 1: it stopped at the first request over


def test_the_next_run_of_the_same_job_has_the_whole_budget_again(api, tmp_path, monkeypatch):
    import scalecode_openai.cost as cost

    gold = backend(api, tmp_path, price=PRICE, budget_usd=0.1)
    gold.predict_batch(["gold positive"])
    assert gold.requester.budget.spent > 0
    monkeypatch.setattr(cost, "run_id", lambda: "another-run")  # the same command, run again
    again = backend(api, tmp_path, price=PRICE, budget_usd=0.1)
    assert again.requester.budget.spent == 0.0


def _costs(tmp_path):
    from scalecode_openai.cache import ResponseCache

    rows = ResponseCache(tmp_path / "cache.sqlite")._db.execute(
        "SELECT cost_usd FROM responses ORDER BY rowid"
    )
    return [r[0] for r in rows.fetchall()]


# --- 7. batch mode: a blip while polling -----------------------------------------------------------

TONE_LABELS = ["positive", "negative", "neutral"]


def test_a_transient_error_while_polling_a_batch_is_retried(tmp_path):
    import httpx2
    import openai

    texts = [f"item {i} is {TONE_LABELS[i % 3]}" for i in range(6)]
    with FakeOpenAI(Faults(batch_delay_s=0.3)) as api:
        params = {"model": "m", "base_url": api.base_url, "mode": "batch", "batch_poll_s": 0.05}
        coder = OpenAIBackend(TONE, {**params, "max_retries": 0}, work_dir=tmp_path)
        coder.load()
        client = coder.requester.client
        retrieve, looks = client.batches.retrieve, []

        async def flaky(batch_id, **kwargs):  # a network blip, after the client's own retries
            looks.append(batch_id)
            if len(looks) in (2, 3):
                raise openai.APIConnectionError(request=httpx2.Request("GET", "http://x"))
            return await retrieve(batch_id, **kwargs)

        client.batches.retrieve = flaky
        answers = coder.predict_batch(texts)
        created = [c for c in api.calls if c.method == "POST" and c.path == "/v1/batches"]
    assert list(answers.label) == [TONE_LABELS[i % 3] for i in range(6)]
    assert len(created) == 1 and len(looks) >= 4


def test_a_server_unreachable_while_polling_gives_rows_to_retry_and_the_next_run_polls_again(
    tmp_path, monkeypatch
):
    import httpx2
    import openai

    import scalecode_openai.batch as batch

    monkeypatch.setattr(batch, "POLL_RETRIES", 1)
    texts = [f"item {i} is {TONE_LABELS[i % 3]}" for i in range(3)]
    with FakeOpenAI(Faults(batch_delay_s=0.2)) as api:
        params = {"model": "m", "base_url": api.base_url, "mode": "batch", "batch_poll_s": 0.05}
        first = OpenAIBackend(TONE, {**params, "max_retries": 0}, work_dir=tmp_path)
        first.load()

        async def down(batch_id, **kwargs):
            raise openai.APIConnectionError(request=httpx2.Request("GET", "http://x"))

        first.requester.client.batches.retrieve = down
        failed = first.predict_batch(texts)
        assert failed.label == [None] * 3 and list(failed.retry) == [True] * 3
        second = OpenAIBackend(TONE, params, work_dir=tmp_path)
        second.load()
        assert list(second.predict_batch(texts).label) == TONE_LABELS
        created = [c for c in api.calls if c.method == "POST" and c.path == "/v1/batches"]
    assert len(created) == 1  # the batch submitted before the outage, polled again: not paid twice

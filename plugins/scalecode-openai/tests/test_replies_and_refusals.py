"""Replies that are no code become error rows, never crashes or guesses; refusals that concern the
job's options stop the run or are worked around; a refused request of several documents does not
take its neighbours down; the Batch API's uploads, creations and lost batches are handled."""

from __future__ import annotations

import json
import math

import pytest

import scalecode_openai.server as fake_server
from scalecode import Task, TaskType
from scalecode.errors import StopRun
from scalecode_openai.answers import check, confidences, parse
from scalecode_openai.client import reply_from
from scalecode_openai.cost import cost_usd
from scalecode_openai.options import Price
from scalecode_openai.server import FakeOpenAI, Faults
from scalecode_openai.testing import TONE, loaded_backend

SCORE = Task(type=TaskType.REGRESSION, scale={"min": -1, "max": 1})
TOPICS = Task(type=TaskType.MULTILABEL, labels=["economy", "health", "crime"])
RATED = Task(type=TaskType.CLASSIFICATION, labels=["1", "2", "3"])


def backend(api, tmp_path, **params):
    return loaded_backend(api, tmp_path, **{"max_retries": 0, "concurrency": 1, **params})


# --- replies that are no code ----------------------------------------------------------------------


def test_a_score_of_hundreds_of_digits_is_outside_the_scale_not_a_crash():
    (code,) = parse(SCORE, '{"score": ' + "9" * 400 + "}", 1)
    assert code.value is None and code.error is not None and "outside the scale" in code.error


def test_a_reply_nested_deeper_than_the_parser_goes_is_no_answer():
    codes = parse(TONE, "[" * 5000, 1)
    assert codes[0].value is None and codes[0].error == "answer has no 'label'"
    assert parse(TONE, "{" + "[" * 5000 + "}", 2)[0].error == "answer has no list of 'answers'"


def test_a_message_sent_as_a_list_of_parts_is_read_as_its_text():
    parts = [{"type": "text", "text": '{"label": '}, {"type": "text", "text": '"positive"}'}]
    reply = reply_from(
        {"choices": [{"message": {"content": parts}}]}, "k", cached=False, latency_s=0.1, cost=None
    )
    assert reply.content == '{"label": "positive"}'
    assert parse(TONE, reply.content, 1)[0].value == "positive"


def test_a_token_without_its_log_probability_gives_no_confidence_not_a_crash():
    content = '{"label": "positive"}'
    tokens = [{"token": ch, "logprob": None if ch == "p" else 0.0} for ch in content]
    assert confidences(TONE, content, tokens) == []


def test_two_different_answers_for_one_document_are_an_error_not_the_first():
    content = json.dumps(
        {
            "answers": [
                {"id": "1", "label": "positive"},
                {"id": "1", "label": "negative"},
                {"id": "2", "label": "neutral"},
                {"id": "2", "label": "Neutral"},  # the same code, twice: no conflict
            ]
        }
    )
    first, second = parse(TONE, content, 2)
    assert first.value is None and first.error is not None and "2 entries for document 1" in first.error
    assert second.value == "neutral" and second.error is None


@pytest.mark.parametrize(
    "first",
    [
        {"id": "1", "lable": "positive"},
        {"id": "1", "label": None},
        {"id": "1", "label": True},
        {"id": "1", "label": float("nan")},  # json.dumps writes NaN, and the parser takes it
        {"id": "1", "label": float("-inf")},  # -Infinity, of which the pattern would find "-"
        {"id": "1", "label": "__1e400__"},  # a number JSON reads as infinite
    ],
)
def test_an_answer_without_a_code_does_not_shift_the_confidences_of_the_others(first):
    """The n-th code in the reply is the n-th answer's that has one: an answer without it (a typo in
    the field name, a null) must not give its neighbour's confidence to the next document."""
    content = json.dumps(
        {
            "answers": [
                first,
                {"id": "2", "label": "negative"},
                {"id": "3", "label": "neutral"},
            ]
        }
    ).replace('"__1e400__"', "1e400")
    tokens = [{"token": ch, "logprob": 0.0} for ch in content]
    tokens[content.index('"negative"') + 1]["logprob"] = math.log(0.3)
    tokens[content.index('"neutral"') + 1]["logprob"] = math.log(0.99)
    codes = parse(TONE, content, 3)
    probabilities = confidences(TONE, content, tokens)
    assert codes[0].error is not None
    assert [codes[i].value for i in (1, 2)] == ["negative", "neutral"]
    assert probabilities[codes[1].position] == pytest.approx(0.3)
    assert probabilities[codes[2].position] == pytest.approx(0.99)


def test_labels_are_read_alike_in_every_task_type():
    assert check(TOPICS, ["Economy", "health "]).value == ["economy", "health"]
    assert check(TOPICS, ["economy", "sport"]).error == "answer has labels not in the codebook: ['sport']"
    assert check(RATED, 2).value == "2"  # a label that is a number, written as a number
    assert check(RATED, 2.5).error is not None and check(RATED, True).error is not None


@pytest.mark.parametrize(
    "usage",
    [{"prompt_tokens": 0, "completion_tokens": 0}, {"total_tokens": 57}, {"prompt_tokens": 10}],
    ids=["zeros", "total-only", "prompt-only"],
)
def test_a_usage_that_counts_nothing_is_an_unknown_cost_not_a_free_one(usage):
    from scalecode_openai.cost import budget_charge

    price = Price(input=1.0, output=2.0)
    assert cost_usd(price, usage) is None
    request = {"messages": [{"role": "user", "content": "x" * 400}]}
    reply = {"choices": [{"message": {"content": "positive"}}], "usage": usage}
    estimated = budget_charge(price, request, {**reply, "usage": None})
    assert estimated is not None and estimated > 0
    assert budget_charge(price, request, reply) == estimated  # charged as a reply without usage is
    assert cost_usd(price, {"prompt_tokens": 10, "completion_tokens": 5}) == pytest.approx(20e-6)


# --- refusals of the job's options -----------------------------------------------------------------


@pytest.fixture
def strict_model(monkeypatch):
    """The server refuses ``max_tokens`` (as OpenAI's reasoning models do) and a temperature other
    than 1, naming the parameter in ``param`` as OpenAI does."""
    original = fake_server.refusal

    def refusal(body, faults):
        if isinstance(body, dict) and "max_tokens" in body:
            return (
                "Unsupported parameter: 'max_tokens' is not supported with this model. "
                "Use 'max_completion_tokens' instead."
            )
        if isinstance(body, dict) and body.get("temperature") not in (None, 1, 1.0):
            return "Unsupported value: 'temperature' does not support 0 with this model."
        return original(body, faults)

    monkeypatch.setattr(fake_server, "refusal", refusal)


@pytest.mark.usefixtures("strict_model")
def test_a_model_that_takes_only_max_completion_tokens_is_asked_by_that_name(api, tmp_path):
    answers = backend(api, tmp_path, temperature=1.0).predict_batch(["a positive one", "a negative one"])
    assert list(answers.label) == ["positive", "negative"]
    sent = [(c.status, "max_tokens" in c.body, c.body.get("max_completion_tokens")) for c in api.chat_calls()]
    assert sent == [(400, True, None), (200, False, 256), (200, False, 256)]


@pytest.mark.usefixtures("strict_model")
def test_in_batch_mode_too_max_completion_tokens_is_used_and_a_refused_option_stops_the_run(api, tmp_path):
    texts = ["a positive one", "a negative one", "a neutral one"]
    coder = backend(api, tmp_path, temperature=1.0, mode="batch", batch_poll_s=0.05, docs_per_request=2)
    assert list(coder.predict_batch(texts).label) == ["positive", "negative", "neutral"]
    assert coder.requester.token_limit == "max_completion_tokens"
    assert created_batches(api) == 2
    # A later replica or run knows the name: no whole batch refused again to learn it.
    later = backend(api, tmp_path, temperature=1.0, mode="batch", batch_poll_s=0.05)
    assert list(later.predict_batch(["a negative two"]).label) == ["negative"]
    assert created_batches(api) == 3
    assert later.estimate(["a negative two"]).cached == 1  # plan keys requests as the run asks them
    refused = backend(api, tmp_path / "t0", mode="batch", batch_poll_s=0.05)  # temperature 0
    with pytest.raises(StopRun, match=r"refuses the option 'temperature'"):
        refused.predict_batch(texts)
    # Collected before the stop: its record is not read again at every later run.
    records = [json.loads(p.read_text()) for p in (tmp_path / "t0" / "work" / "batches").glob("*.json")]
    assert records and {r.get("status") for r in records} == {"completed"}


def test_a_refused_batch_line_whose_body_is_not_json_is_no_crash(api, tmp_path):
    from scalecode_openai.batch import _refused

    coder = backend(api, tmp_path)
    record = {"custom_id": "k", "response": {"status_code": 413, "body": "<html>Too large</html>"}}
    assert _refused(coder.requester, "k", record, {"model": "m", "messages": []}) is None
    assert "k" in coder.requester.refused


@pytest.mark.usefixtures("strict_model")
def test_an_option_the_model_refuses_stops_the_run_instead_of_failing_every_document(api, tmp_path):
    coder = backend(api, tmp_path)  # temperature 0, which this model refuses
    texts = [f"text {i} positive" for i in range(10)]
    with pytest.raises(StopRun, match=r"refuses the option 'temperature'.*backend's params"):
        coder.predict_batch(texts)
    assert [c.status for c in api.chat_calls()] == [400, 400]  # max_tokens, renamed; then temperature


# --- a refused request of several documents ---------------------------------------------------------


@pytest.fixture
def refusing_long(monkeypatch):
    """The server refuses a request holding a document marked [[toolong]], as an over-long one."""
    original = fake_server.refusal

    def refusal(body, faults):
        if "[[toolong]]" in fake_server._user_text(body):
            return "This model's maximum context length is 128 tokens."
        return original(body, faults)

    monkeypatch.setattr(fake_server, "refusal", refusal)


@pytest.mark.usefixtures("refusing_long")
@pytest.mark.parametrize("mode", ["online", "batch"])
def test_a_refused_request_of_several_documents_has_each_asked_alone(api, tmp_path, mode):
    coder = backend(api, tmp_path, docs_per_request=3, mode=mode, batch_poll_s=0.05)
    answers = coder.predict_batch(["a positive day", "[[toolong]] negative", "a neutral one", "negative"])
    assert list(answers.label) == ["positive", None, "neutral", "negative"]
    assert answers.error[1] is not None and "maximum context length" in answers.error[1]
    assert list(answers.retry) == [False] * 4
    assert answers.error[0] is None and answers.error[2] is None


# --- the Batch API ---------------------------------------------------------------------------------


def _api_down(method: str, url: str):
    import httpx2
    import openai

    return openai.APIConnectionError(request=httpx2.Request(method, url))


def created_batches(api: FakeOpenAI) -> int:
    return len([c for c in api.calls if c.method == "POST" and c.path == "/v1/batches"])


def test_an_upload_that_fails_once_is_made_again_not_one_batch_per_document(api, tmp_path):
    coder = backend(api, tmp_path, mode="batch", batch_poll_s=0.05)
    files, uploads = coder.requester.client.files, []
    upload = files.create

    async def flaky(*args, **kwargs):
        uploads.append(kwargs["file"][1].read())  # each attempt gets the whole file
        if len(uploads) == 1:
            raise _api_down("POST", f"{api.base_url}/files")
        kwargs["file"][1].seek(0)
        return await upload(*args, **kwargs)

    files.create = flaky
    answers = coder.predict_batch(["a positive one", "a negative one", "a neutral one"])
    assert list(answers.label) == ["positive", "negative", "neutral"]
    assert len(uploads) == 2 and uploads[0] == uploads[1] and created_batches(api) == 1


def test_a_batch_that_cannot_be_created_stops_the_run_and_the_next_run_creates_it(api, tmp_path):
    texts = ["a positive one", "a negative one", "a neutral one"]
    first = backend(api, tmp_path, mode="batch", batch_poll_s=0.05)

    async def down(*args, **kwargs):
        raise _api_down("POST", f"{api.base_url}/batches")

    first.requester.client.batches.create = down
    with pytest.raises(StopRun, match=r"Batch API error: APIConnectionError.*try again later"):
        first.predict_batch(texts)
    second = backend(api, tmp_path, mode="batch", batch_poll_s=0.05)
    assert list(second.predict_batch(texts).label) == ["positive", "negative", "neutral"]
    uploads = [c for c in api.calls if c.method == "POST" and c.path == "/v1/files"]
    assert len(uploads) == 1 and created_batches(api) == 1  # the file uploaded before is used


def test_a_batch_the_server_no_longer_knows_is_submitted_again(tmp_path, monkeypatch):
    """A run killed while polling; the next one talks to a server that has lost the batch (deleted,
    or another project's key): its requests are submitted anew, not a stop at every run."""
    import scalecode_openai.batch as batch

    monkeypatch.setattr(batch, "POLL_RETRIES", 0)
    texts = ["a positive one", "a negative one"]
    with FakeOpenAI(Faults(batch_delay_s=30)) as first_server:
        first = loaded_backend(first_server, tmp_path, mode="batch", batch_poll_s=0.05, max_retries=0)

        async def down(batch_id, **kwargs):
            raise _api_down("GET", f"{first_server.base_url}/batches/{batch_id}")

        first.requester.client.batches.retrieve = down
        assert list(first.predict_batch(texts).retry) == [True, True]
        port = int(first_server.base_url.split(":")[-1].split("/")[0])
    with FakeOpenAI(port=port) as second_server:  # the same endpoint: the same requests
        second = loaded_backend(second_server, tmp_path, mode="batch", batch_poll_s=0.05)
        assert list(second.predict_batch(texts).label) == ["positive", "negative"]
        assert created_batches(second_server) == 1
    records = sorted(p.name for p in (tmp_path / "work" / "batches").glob("*.json"))
    assert len(records) == 2 and any(name.count(".") == 2 for name in records)  # the lost one, renamed


def test_a_collected_batch_whose_answers_the_cache_lost_is_downloaded_again_or_submitted_anew(tmp_path):
    """The cache moved (an operational option) or deleted; the batch's record is still in work/."""
    texts = ["a positive one", "a negative one"]
    with FakeOpenAI() as server:
        first = loaded_backend(server, tmp_path, mode="batch", batch_poll_s=0.05)
        assert list(first.predict_batch(texts).label) == ["positive", "negative"]
        moved = loaded_backend(
            server, tmp_path, mode="batch", batch_poll_s=0.05, cache=str(tmp_path / "b.sqlite")
        )
        assert list(moved.predict_batch(texts).label) == ["positive", "negative"]
        assert created_batches(server) == 1  # its answers downloaded again: not paid twice
        port = int(server.base_url.split(":")[-1].split("/")[0])
    with FakeOpenAI(port=port) as lost:  # a server that no longer has the batch
        again = loaded_backend(
            lost, tmp_path, mode="batch", batch_poll_s=0.05, cache=str(tmp_path / "c.sqlite")
        )
        assert list(again.predict_batch(texts).label) == ["positive", "negative"]
        assert created_batches(lost) == 1

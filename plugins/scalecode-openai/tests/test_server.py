"""The fake OpenAI server, driven by the real openai client over real HTTP: the answer rule, the faults
the backend must survive, logprobs, concurrency, and files + batches."""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from scalecode_openai.server import INVALID_LABEL, FakeOpenAI, Faults

LABELS = ["politics", "sports", "economy"]


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(Faults(hang_s=1.5), labels=LABELS) as server:
        yield server


def client(fake: FakeOpenAI, **kw: Any) -> openai.OpenAI:
    return openai.OpenAI(base_url=fake.base_url, api_key="test-key", **{"max_retries": 0, "timeout": 5, **kw})


@pytest.fixture
def oa(fake: FakeOpenAI) -> openai.OpenAI:
    """One client per test: building an OpenAI client costs more than a request to the fake."""
    return client(fake)


def ask(oa: openai.OpenAI, content: Any, **kw: Any) -> Any:
    """The parsed JSON answer to one user message."""
    reply = oa.chat.completions.create(model="m", messages=[{"role": "user", "content": content}], **kw)
    return json.loads(reply.choices[0].message.content or "")


def schema(label: dict[str, Any] | None = None, *, many: bool = False) -> dict[str, Any]:
    """A response_format as a backend would send it: one label, or answers for several documents."""
    item = {"type": "object", "properties": {"label": label or {"type": "string", "enum": ["x", "y"]}}}
    if many:
        item["properties"]["id"] = {"type": "string"}
        item = {"type": "object", "properties": {"answers": {"type": "array", "items": item}}}
    return {"type": "json_schema", "json_schema": {"name": "answer", "strict": True, "schema": item}}


# ---------------------------------------------------------------- the answer rule


def test_label_by_whole_word_marker_or_first_label(fake, oa):
    assert ask(oa, "The SPORTS page, then economy.") == {"label": "sports"}  # codebook order wins
    assert ask(oa, "Football and sportsmanship") == {"label": "politics"}  # not a whole word: first label
    assert ask(oa, "sports [[label:weird one]]") == {"label": "weird one"}  # a marker beats the codebook
    parts = [{"type": "text", "text": "intro"}, {"type": "text", "text": "the economy"}]
    assert ask(oa, parts) == {"label": "economy"}
    system = {"role": "system", "content": "sports sports sports"}
    reply = oa.chat.completions.create(
        model="gpt-x",
        messages=[system, {"role": "user", "content": "sports"}, {"role": "user", "content": "x"}],
    )
    last_turn_only = json.loads(reply.choices[0].message.content or "")
    assert last_turn_only == {"label": "politics"}
    assert reply.model == "gpt-x" and reply.object == "chat.completion" and reply.system_fingerprint
    assert reply.choices[0].finish_reason == "stop" and reply.choices[0].message.role == "assistant"
    prompt = math.ceil(len("sports sports sports") / 4) + math.ceil(6 / 4) + math.ceil(1 / 4) + 3 * 4
    content = reply.choices[0].message.content or ""
    assert reply.usage is not None
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens) == (prompt, math.ceil(len(content) / 4))
    assert reply.usage.total_tokens == prompt + reply.usage.completion_tokens
    assert [m.id for m in oa.models.list()] == ["scalecode-fake"]


def test_several_documents_answer_in_order(oa):
    text = (
        'Code these.\n<document id="a">economy news</document>\n<document id="b">[[label:other]]</document>'
        '<document id="c">nothing</document>'
    )
    assert ask(oa, text) == {
        "answers": [
            {"id": "a", "label": "economy"},
            {"id": "b", "label": "other"},
            {"id": "c", "label": "politics"},
        ]
    }
    # One document with a schema that asks for answers still answers as a list.
    one = '<document id="7">sports</document>'
    answers = ask(oa, one, response_format=schema({"type": "string", "enum": ["sports"]}, many=True))
    assert answers == {"answers": [{"id": "7", "label": "sports"}]}


def test_schema_enum_is_the_codebook_and_regression_scores(oa):
    assert ask(oa, "y then x", response_format=schema()) == {"label": "x"}
    assert ask(oa, "sports", response_format=schema()) == {"label": "x"}  # the schema's enum, not LABELS
    score = schema({"type": "string", "enum": ["x"]})
    score["json_schema"]["schema"]["properties"] = {"score": {"type": "number"}}
    assert ask(oa, "one two three four five six seven", response_format=score) == {"score": 2}
    assert ask(oa, "[[score:2.5]] many words here", response_format=score) == {"score": 2.5}
    with FakeOpenAI() as no_labels:  # no codebook anywhere: a regression request
        assert ask(client(no_labels), "a b c [[fault:500*0]]") == {"score": 3}  # markers are not words


def test_json_schema_refused_without_schema_support_but_json_object_accepted(fake, oa):
    fake.faults.schema_support = False
    with pytest.raises(openai.BadRequestError) as refused:
        ask(oa, "sports", response_format=schema())
    assert refused.value.status_code == 400 and refused.value.type == "invalid_request_error"
    assert ask(oa, "sports", response_format={"type": "json_object"}) == {"label": "sports"}
    assert [c.status for c in fake.chat_calls()] == [400, 200]


def test_prose_and_invalid_label(fake, oa):
    reply = oa.chat.completions.create(
        model="m", messages=[{"role": "user", "content": "sports [[fault:prose]]"}]
    )
    assert reply.choices[0].message.content == "The label is sports."
    assert ask(oa, "[[label:astrology]]", response_format=schema()) == {"label": "astrology"}
    fake.faults.rate_invalid_label = 1.0
    assert ask(oa, "sports") == {"label": INVALID_LABEL}
    assert [c.fault for c in fake.chat_calls()] == ["prose", None, "invalid_label"]


# ---------------------------------------------------------------- faults


def test_429_carries_retry_after_and_the_client_retries(fake, oa):
    with pytest.raises(openai.RateLimitError) as limited:
        ask(oa, "sports [[fault:429]]")
    assert limited.value.response.headers["retry-after"] == "0.05"
    assert limited.value.response.headers["retry-after-ms"] == "50"
    assert limited.value.code == "rate_limit_exceeded"
    for count in (1, 2):  # the first `count` attempts of this exact body fail, then it succeeds
        fake.reset()
        reply = client(fake, max_retries=2).chat.completions.create(
            model="m", messages=[{"role": "user", "content": f"sports [[fault:429*{count}]]"}]
        )
        assert json.loads(reply.choices[0].message.content or "") == {"label": "sports"}
        calls = fake.chat_calls()
        assert [(c.status, c.fault) for c in calls] == [(429, "429")] * count + [(200, None)]
    assert calls[0].body == calls[2].body and calls[0].headers["authorization"] == "Bearer test-key"


def test_500_is_retried_and_a_marker_without_count_always_fails(fake):
    reply = client(fake, max_retries=2).chat.completions.create(
        model="m", messages=[{"role": "user", "content": "economy [[fault:500*1]]"}]
    )
    assert json.loads(reply.choices[0].message.content or "") == {"label": "economy"}
    with pytest.raises(openai.InternalServerError):
        client(fake, max_retries=1, timeout=5).chat.completions.create(
            model="m", messages=[{"role": "user", "content": "[[fault:500]]"}]
        )
    assert [(c.status, c.fault) for c in fake.chat_calls()] == [
        (500, "500"),
        (200, None),
        (500, "500"),
        (500, "500"),
    ]


def test_hang_times_out_and_malformed_json_raises(fake, oa):
    started = time.monotonic()
    with pytest.raises(openai.APITimeoutError):
        client(fake, timeout=0.3).chat.completions.create(
            model="m", messages=[{"role": "user", "content": "[[fault:hang]]"}]
        )
    assert time.monotonic() - started < 1.2  # the client gave up; the server did not answer
    fake.faults.hang_s = 0.2  # a hang shorter than the client's patience ends with a dropped connection
    with pytest.raises(openai.APIConnectionError) as dropped:
        ask(oa, "[[fault:hang]]")
    assert not isinstance(dropped.value, openai.APITimeoutError)
    # The openai client does not wrap a 200 whose body is not JSON: json.JSONDecodeError (a ValueError).
    with pytest.raises(json.JSONDecodeError):
        ask(oa, "[[fault:malformed]]")
    assert [(c.status, c.fault) for c in fake.chat_calls()] == [(0, "hang"), (0, "hang"), (200, "malformed")]


def test_random_faults_depend_on_body_and_attempt_not_on_order(fake, oa):
    fake.faults = Faults(rate_429=0.2, rate_500=0.2, rate_malformed=0.1, rate_invalid_label=0.1, seed=3)
    texts = [f"document {i}" for i in range(40)]

    def outcomes(order: list[str]) -> dict[str, str | None]:
        fake.reset()
        for text in order:
            with contextlib.suppress(openai.APIStatusError, json.JSONDecodeError):
                ask(oa, text)
        return {c.body["messages"][0]["content"]: c.fault for c in fake.chat_calls() if c.body}

    first = outcomes(texts)
    assert first == outcomes(texts[::-1])
    assert None in first.values() and {"429", "500"} <= set(first.values())
    # A second attempt of the same body draws again, so a retry can succeed.
    outcomes(texts + texts)
    attempts = [c.fault for c in fake.chat_calls()]
    assert attempts[:40] == list(first.values()) and attempts[40:] != attempts[:40]
    fake.faults.seed = 4
    assert outcomes(texts) != first


# ---------------------------------------------------------------- logprobs


def test_logprobs_cover_the_content_and_carry_the_confidence(fake, oa):
    fake.faults.confidence = 0.8
    text = '<document id="a">economy</document><document id="b">sports</document>'
    reply = oa.chat.completions.create(
        model="m", messages=[{"role": "user", "content": text}], logprobs=True, top_logprobs=3
    )
    content = reply.choices[0].message.content or ""
    assert reply.choices[0].logprobs is not None and reply.choices[0].logprobs.content is not None
    tokens = reply.choices[0].logprobs.content
    assert "".join(t.token for t in tokens) == content
    assert all(bytes(t.bytes or []) == t.token.encode() for t in tokens)
    confident = [t for t in tokens if t.logprob != 0.0]
    assert [t.token for t in confident] == ["economy", "sports"]
    assert all(t.logprob == pytest.approx(math.log(0.8)) for t in confident)
    first = confident[0].top_logprobs
    assert [a.token for a in first] == ["economy", "politics", "sports"]
    assert [a.logprob for a in first] == pytest.approx([math.log(0.8), math.log(0.1), math.log(0.1)])
    other = next(t for t in tokens if t.token == "answers")
    assert [a.token for a in other.top_logprobs] == ["answers"]
    plain = oa.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
    assert plain.choices[0].logprobs is None


# ---------------------------------------------------------------- concurrency


def test_64_concurrent_requests_overlap_their_latency(fake):
    fake.faults.latency_s = 0.2

    async def run() -> list[str]:
        async with openai.AsyncOpenAI(base_url=fake.base_url, api_key="k", max_retries=0) as aclient:
            replies = await asyncio.gather(
                *(
                    aclient.chat.completions.create(
                        model="m", messages=[{"role": "user", "content": f"{i} sports"}]
                    )
                    for i in range(64)
                )
            )
        return [r.choices[0].message.content or "" for r in replies]

    started = time.monotonic()
    answers = asyncio.run(run())
    elapsed = time.monotonic() - started
    assert answers == ['{"label": "sports"}'] * 64
    assert elapsed < 2.0, f"64 requests of 0.2 s took {elapsed:.2f} s: they did not run concurrently"
    assert len(fake.chat_calls()) == 64


# ---------------------------------------------------------------- files and batches


def _jsonl(texts: dict[str, str]) -> bytes:
    lines = (
        {
            "custom_id": cid,
            "method": "POST",
            "url": "/v1/chat/completions",
            "body": {"model": "m", "messages": [{"role": "user", "content": text}]},
        }
        for cid, text in texts.items()
    )
    return "".join(json.dumps(line) + "\n" for line in lines).encode()


def test_batch_of_chat_requests_completes_after_its_delay(fake, oa):
    fake.faults = Faults(batch_delay_s=0.3, rate_500=1.0)  # transport faults never touch a batch
    texts = {
        "r1": "sports",
        "r2": "economy [[fault:429]]",
        "r3": "[[label:other]]",
        "r4": "sports [[fault:prose]]",
    }
    uploaded = oa.files.create(file=("in.jsonl", _jsonl(texts)), purpose="batch")
    assert oa.files.retrieve(uploaded.id).bytes == len(_jsonl(texts))
    assert oa.files.content(uploaded.id).content == _jsonl(texts)
    batch = oa.batches.create(
        input_file_id=uploaded.id,
        endpoint="/v1/chat/completions",
        completion_window="24h",
        metadata={"run": "test"},
    )
    assert batch.status == "validating" and batch.metadata == {"run": "test"}
    assert oa.batches.retrieve(batch.id).status == "in_progress"
    time.sleep(0.35)
    done = oa.batches.retrieve(batch.id)
    assert done.status == "completed" and done.output_file_id and done.error_file_id is None
    counts = done.request_counts
    assert counts is not None and (counts.total, counts.completed, counts.failed) == (4, 4, 0)
    lines = [json.loads(line) for line in oa.files.content(done.output_file_id).text.splitlines()]
    contents = {x["custom_id"]: x["response"]["body"]["choices"][0]["message"]["content"] for x in lines}
    assert contents == {
        "r1": '{"label": "sports"}',
        "r2": '{"label": "economy"}',
        "r3": '{"label": "other"}',
        "r4": "The label is sports.",
    }
    assert all(x["response"]["status_code"] == 200 and x["error"] is None for x in lines)
    assert oa.files.retrieve(done.output_file_id).purpose == "batch_output"
    upload = next(c for c in fake.calls if c.path == "/v1/files" and c.method == "POST")
    assert (upload.status, upload.body) == (200, {"purpose": "batch", "filename": "in.jsonl"})


def test_batch_invalid_labels_refusals_and_cancel(fake, oa):
    fake.faults = Faults(rate_invalid_label=1.0, schema_support=False)
    lines = (
        _jsonl({"a": "sports"})
        + json.dumps(
            {"custom_id": "b", "body": {"model": "m", "messages": [], "response_format": schema()}}
        ).encode()
    )
    batch = oa.batches.create(
        input_file_id=oa.files.create(file=("in.jsonl", lines), purpose="batch").id,
        endpoint="/v1/chat/completions",
        completion_window="24h",
    )
    done = oa.batches.retrieve(batch.id)
    assert done.request_counts is not None and done.request_counts.failed == 1 and done.error_file_id
    (out,) = oa.files.content(done.output_file_id or "").text.splitlines()
    assert json.loads(json.loads(out)["response"]["body"]["choices"][0]["message"]["content"]) == {
        "label": INVALID_LABEL
    }
    (err,) = oa.files.content(done.error_file_id).text.splitlines()
    assert json.loads(err)["custom_id"] == "b" and json.loads(err)["response"]["status_code"] == 400

    fake.faults.batch_delay_s = 60
    slow = oa.batches.create(
        input_file_id=batch.input_file_id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    assert oa.batches.cancel(slow.id).status == "cancelling"
    assert oa.batches.retrieve(slow.id).status == "cancelled"
    with pytest.raises(openai.NotFoundError):
        oa.batches.retrieve("batch_missing")
    with pytest.raises(openai.NotFoundError):
        oa.files.retrieve("file-missing")


# ---------------------------------------------------------------- command line


def test_command_line_serves_until_interrupted():
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[1] / "src"), *sys.path]),
    }
    args = shlex.split("--port 0 --latency 0.01 --no-schema-support --labels a,b --retry-after 0.1")
    command = [sys.executable, "-m", "scalecode_openai.server", *args]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env) as proc:
        try:
            assert proc.stdout is not None
            base_url = proc.stdout.readline().strip()
            assert base_url.startswith("http://127.0.0.1:") and base_url.endswith("/v1")
            oa = openai.OpenAI(base_url=base_url, api_key="k", max_retries=0, timeout=5)
            reply = oa.chat.completions.create(model="m", messages=[{"role": "user", "content": "b"}])
            assert reply.choices[0].message.content == '{"label": "b"}'
            with pytest.raises(openai.BadRequestError):
                ask(oa, "b", response_format=schema())
            with pytest.raises(openai.RateLimitError) as limited:
                ask(oa, "[[fault:429]]")
            assert limited.value.response.headers["retry-after"] == "0.1"
        finally:
            proc.send_signal(signal.SIGINT)
            assert proc.wait(timeout=10) == 0

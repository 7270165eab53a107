"""Batch mode after a kill: a rerun cuts its documents into other chunks than the killed run (the core
plans chunks from the documents left), and must still find, poll and collect the batch it paid for."""

from __future__ import annotations

import json
from pathlib import Path

import httpx2
import openai
import pytest

from scalecode import Task, TaskType
from scalecode_openai.backend import OpenAIBackend
from scalecode_openai.batch import LOST
from scalecode_openai.server import FakeOpenAI, Faults

LABELS = ["positive", "negative", "neutral"]
TONE = Task(name="tone", type=TaskType.CLASSIFICATION, labels=LABELS)
TEXTS = [f"item {i} is {LABELS[i % 3]}" for i in range(12)]


def coder(api: FakeOpenAI, work_dir: Path) -> OpenAIBackend:
    params = {"model": "m", "base_url": api.base_url, "mode": "batch", "batch_poll_s": 0.05}
    backend = OpenAIBackend(TONE, params, work_dir=work_dir)
    backend.load()
    return backend


def killed_while_waiting(api: FakeOpenAI, work_dir: Path, texts: list[str]) -> OpenAIBackend:
    """A run that submits ``texts`` as one batch and is killed while it polls."""
    first = coder(api, work_dir)

    async def killed(*args, **kwargs):
        raise KeyboardInterrupt

    first.requester.client.batches.retrieve = killed
    with pytest.raises(KeyboardInterrupt):
        first.predict_batch(texts)
    return first


def created(api: FakeOpenAI) -> list:
    return [c for c in api.calls if c.method == "POST" and c.path == "/v1/batches"]


def uploads(api: FakeOpenAI) -> list:
    return [c for c in api.calls if c.method == "POST" and c.path == "/v1/files"]


def labels(texts: list[str]) -> list[str]:
    return [LABELS[TEXTS.index(t) % 3] for t in texts]


def records(work_dir: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((work_dir / "batches").glob("*.json"))]


def test_a_rerun_in_smaller_chunks_collects_the_batch_the_killed_run_submitted(tmp_path):
    """The reviewer's case: a chunk of 6 submitted, the run killed, the rerun in two chunks of 3."""
    with FakeOpenAI(Faults(batch_delay_s=0.5)) as api:
        killed_while_waiting(api, tmp_path, TEXTS[6:12])
        second = coder(api, tmp_path)
        assert list(second.predict_batch(TEXTS[6:9]).label) == labels(TEXTS[6:9])
        assert len(created(api)) == 1  # the killed run's batch polled, not submitted again
        calls = len(api.calls)
        assert list(second.predict_batch(TEXTS[9:12]).label) == labels(TEXTS[9:12])
        assert len(api.calls) == calls  # the second chunk's answers came in with the first's
        assert len(created(api)) == 1 and len(uploads(api)) == 1  # nothing submitted or paid twice
        assert api.chat_calls() == []
    (record,) = records(tmp_path)
    assert record["status"] == "completed" and record["requests"] == 6
    assert list((tmp_path / "batches").glob("*.jsonl")) == []  # its requests kept only until collected


def test_a_rerun_in_larger_chunks_submits_only_the_requests_no_batch_carries(tmp_path):
    with FakeOpenAI(Faults(batch_delay_s=0.5)) as api:
        killed_while_waiting(api, tmp_path, TEXTS[0:3])
        second = coder(api, tmp_path)
        assert list(second.predict_batch(TEXTS[0:6]).label) == labels(TEXTS[0:6])
        assert len(created(api)) == 2 and api.chat_calls() == []
        new = created(api)[1].body
        assert new is not None
        client = second.requester.client
        sent = second._loop.run_until_complete(client.files.content(new["input_file_id"]))
        asked = [json.loads(line)["body"]["messages"][-1]["content"] for line in sent.text.splitlines()]
        assert len(asked) == 3 and all(any(t in a for t in TEXTS[3:6]) for a in asked)
        assert not any(t in a for a in asked for t in TEXTS[0:3])
    assert sorted(r["requests"] for r in records(tmp_path)) == [3, 3]


def test_a_batch_over_before_the_rerun_but_not_yet_collected_is_collected(tmp_path):
    with FakeOpenAI() as api:  # the batch completes at once; the run dies before downloading it
        first = coder(api, tmp_path)

        async def killed(*args, **kwargs):
            raise KeyboardInterrupt

        first.requester.client.files.content = killed
        with pytest.raises(KeyboardInterrupt):
            first.predict_batch(TEXTS[0:6])
        second = coder(api, tmp_path)
        assert list(second.predict_batch(TEXTS[0:2]).label) == labels(TEXTS[0:2])
        assert list(second.predict_batch(TEXTS[2:6]).label) == labels(TEXTS[2:6])
        assert len(created(api)) == 1


def test_a_resumed_batch_that_ended_unanswered_is_submitted_anew_once_and_not_polled_again(tmp_path):
    with FakeOpenAI(Faults(batch_delay_s=60)) as api:
        first = killed_while_waiting(api, tmp_path, TEXTS[0:6])
        (record,) = records(tmp_path)
        client = first.requester.client
        first._loop.run_until_complete(client.batches.cancel(record["batch_id"]))  # cancelled meanwhile
        api.faults = Faults()  # new batches complete at once
        second = coder(api, tmp_path)
        assert list(second.predict_batch(TEXTS[0:3]).label) == labels(TEXTS[0:3])
        assert list(second.predict_batch(TEXTS[3:6]).label) == labels(TEXTS[3:6])
        assert len(created(api)) == 3  # the cancelled one, then one for each chunk
        looked = [c for c in api.calls if c.path == f"/v1/batches/{record['batch_id']}"]
        assert len(looked) == 1  # the second chunk did not poll the cancelled batch again
    stored = records(tmp_path)
    assert sorted(r["status"] for r in stored) == ["cancelled", "completed", "completed"]


def test_a_record_of_the_earlier_version_is_resumed_by_name_when_the_chunk_is_unchanged(tmp_path):
    with FakeOpenAI(Faults(batch_delay_s=0.5)) as api:
        killed_while_waiting(api, tmp_path, TEXTS[0:6])
        for requests in (tmp_path / "batches").glob("*.jsonl"):  # earlier versions kept none
            requests.unlink()
        second = coder(api, tmp_path)
        api.faults = Faults()
        assert list(second.predict_batch(TEXTS[0:6]).label) == labels(TEXTS[0:6])
        assert len(created(api)) == 1
        assert len([c for c in api.calls if c.path.endswith("/content")]) == 1  # only the output


def test_a_record_of_the_earlier_version_is_found_by_its_uploaded_file(tmp_path):
    with FakeOpenAI(Faults(batch_delay_s=0.5)) as api:
        killed_while_waiting(api, tmp_path, TEXTS[0:6])
        for requests in (tmp_path / "batches").glob("*.jsonl"):
            requests.unlink()
        second = coder(api, tmp_path)
        assert list(second.predict_batch(TEXTS[0:3]).label) == labels(TEXTS[0:3])
        assert list(second.predict_batch(TEXTS[3:6]).label) == labels(TEXTS[3:6])
        assert len(created(api)) == 1 and api.chat_calls() == []


def test_a_record_of_the_earlier_version_whose_file_is_gone_is_left_to_its_name(tmp_path):
    with FakeOpenAI(Faults(batch_delay_s=0.5)) as api:
        killed_while_waiting(api, tmp_path, TEXTS[0:6])
        for requests in (tmp_path / "batches").glob("*.jsonl"):
            requests.unlink()
        (old,) = records(tmp_path)
        second = coder(api, tmp_path)
        client = second.requester.client
        content, tries = client.files.content, []

        async def gone(file_id, **kwargs):
            if file_id == old["file_id"]:
                tries.append(file_id)
                response = httpx2.Response(404, request=httpx2.Request("GET", "http://x"))
                raise openai.NotFoundError("No such File object", response=response, body=None)
            return await content(file_id, **kwargs)

        client.files.content = gone
        assert list(second.predict_batch(TEXTS[0:3]).label) == labels(TEXTS[0:3])
        assert list(second.predict_batch(TEXTS[3:6]).label) == labels(TEXTS[3:6])
        assert tries == [old["file_id"]]  # asked once, then marked: never blocks a later call
        assert len(created(api)) == 3
        assert any(r.get(LOST) for r in records(tmp_path))


def test_a_record_of_the_earlier_version_unreadable_for_now_submits_nothing(tmp_path, monkeypatch):
    import scalecode_openai.batch as batch

    monkeypatch.setattr(batch, "POLL_RETRIES", 1)
    with FakeOpenAI(Faults(batch_delay_s=0.3)) as api:
        killed_while_waiting(api, tmp_path, TEXTS[0:6])
        for requests in (tmp_path / "batches").glob("*.jsonl"):
            requests.unlink()
        params = {"model": "m", "base_url": api.base_url, "mode": "batch", "batch_poll_s": 0.01}
        second = OpenAIBackend(TONE, {**params, "max_retries": 0}, work_dir=tmp_path)
        second.load()

        async def down(*args, **kwargs):
            raise openai.APIConnectionError(request=httpx2.Request("GET", "http://x"))

        second.requester.client.files.content = down
        failed = second.predict_batch(TEXTS[0:3])
        assert failed.label == [None] * 3 and list(failed.retry) == [True] * 3
        assert len(created(api)) == 1  # it might carry these requests: nothing submitted meanwhile
        third = coder(api, tmp_path)
        assert list(third.predict_batch(TEXTS[0:3]).label) == labels(TEXTS[0:3])
        assert list(third.predict_batch(TEXTS[3:6]).label) == labels(TEXTS[3:6])
        assert len(created(api)) == 1

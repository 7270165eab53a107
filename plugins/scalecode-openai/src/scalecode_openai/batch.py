"""The Batch API: half the price, answers within a day, and nothing paid twice across restarts.

For the requests of one ``predict_batch`` call that the cache cannot answer: write them as JSONL
(``custom_id`` is the request's cache key), upload the file, create the batch, poll until it ends,
download the answers and put each in the cache; the caller then reads every answer from the cache.

Each step's id is written to ``work_dir/batches/<name>.json`` as soon as the server returns it, where
the name is a hash of the requests' keys. A run killed between upload and download and started
again finds that file: it creates the batch from the uploaded file, or polls the batch it created,
instead of uploading and paying again.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import itertools
import json
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Final, TypeVar

from openai import (
    APIConnectionError,
    APITimeoutError,
    ConflictError,
    InternalServerError,
    RateLimitError,
)

from scalecode.errors import StopRun
from scalecode_openai.client import REFUSED, Requester, cache_key
from scalecode_openai.cost import cost_usd, estimate_tokens

log = logging.getLogger("scalecode.openai")

ENDPOINT: Final = "/v1/chat/completions"
FINISHED = {"completed", "failed", "expired", "cancelled"}


def _save(path: Path, state: dict[str, Any]) -> None:
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(json.dumps(state, indent=2) + "\n", encoding="utf-8")
    partial.replace(path)


async def submit_and_collect(
    requester: Requester,
    task: Any,
    conversations: list[list[dict[str, str]]],
    sizes: list[int],
    work_dir: Path | None,
) -> None:
    """Have the Batch API answer every request the cache lacks; the answers go to the cache."""
    if work_dir is None:
        raise RuntimeError("batch mode keeps its batch ids in the run directory; run it through a job")
    params, cache, client = requester.params, requester.cache, requester.client
    bodies: dict[str, dict[str, Any]] = {}
    for messages, size in zip(conversations, sizes, strict=True):
        body = requester.body(messages, task, size)
        bodies[cache_key(params, body)] = body
    missing = sorted(set(bodies) - cache.known(bodies))
    if not missing:
        return
    name = hashlib.sha256("".join(missing).encode()).hexdigest()[:20]
    state_path = work_dir / "batches" / f"{name}.json"
    state_path.parent.mkdir(parents=True, exist_ok=True)
    state: dict[str, Any] = json.loads(state_path.read_text(encoding="utf-8")) if state_path.exists() else {}

    if "batch_id" not in state:
        _check_budget(requester, [bodies[k] for k in missing])
    if "file_id" not in state:
        lines = [
            json.dumps({"custom_id": key, "method": "POST", "url": ENDPOINT, "body": bodies[key]})
            for key in missing
        ]
        upload = io.BytesIO(("\n".join(lines) + "\n").encode("utf-8"))
        file = await client.files.create(file=(f"scalecode-{name}.jsonl", upload), purpose="batch")
        state.update(file_id=file.id, requests=len(missing))
        _save(state_path, state)
    if "batch_id" not in state:
        batch = await client.batches.create(
            input_file_id=state["file_id"],
            endpoint=ENDPOINT,
            completion_window="24h",
            metadata={"scalecode_requests": name},
        )
        state["batch_id"] = batch.id
        _save(state_path, state)
        log.info("submitted batch %s with %d requests", batch.id, len(missing))

    try:
        batch = await _patiently(params, lambda: client.batches.retrieve(state["batch_id"]))
        while batch.status not in FINISHED:
            await asyncio.sleep(params.batch_poll_s)
            batch = await _patiently(params, lambda: client.batches.retrieve(state["batch_id"]))
        output = error = None
        if (output_id := batch.output_file_id) is not None:
            output = await _patiently(params, lambda: client.files.content(output_id))
        if (error_id := batch.error_file_id) is not None:
            error = await _patiently(params, lambda: client.files.content(error_id))
    except _TRANSIENT as exc:
        # The batch is submitted and its id saved: the next run polls it again. Its documents are
        # error rows marked to retry, not a crash of the run.
        log.warning(
            "batch %s: the server could not be reached (%s); the next run polls it again",
            state["batch_id"],
            exc,
        )
        return
    state["status"] = batch.status
    _save(state_path, state)
    if output is not None:
        _store(requester, bodies, output.text, batch.id)
    if error is not None:
        for line in error.text.splitlines():
            if line.strip():
                record = json.loads(line)
                key = record.get("custom_id", "")
                _refused(requester, key, record)
                cache.failed(
                    key, f"batch {batch.id}: {json.dumps(record.get('error') or record.get('response'))}"
                )
    if set(missing) - cache.known(missing) - requester.refused:
        # The batch is over and left requests unanswered (failed, expired, cancelled): the next run
        # must submit them anew, not poll this batch again. Its record stays, under the batch's id.
        state_path.replace(state_path.with_name(f"{name}.{batch.id}.json"))


T = TypeVar("T")
POLL_RETRIES: Final = 10  # consecutive failures to reach the server before this run gives up on a batch
_TRANSIENT = (APIConnectionError, APITimeoutError, InternalServerError, RateLimitError, ConflictError)


async def _patiently(params: Any, call: Callable[[], Awaitable[T]]) -> T:
    """A call to the Batch API, asked again after a transient failure (a dropped connection, a
    timeout, 409, 429, 5xx: past the client's own retries) with backoff from ``batch_poll_s`` up to
    five minutes, ``POLL_RETRIES`` times in a row; a batch takes hours, a network blip must not end
    the run."""
    for failures in itertools.count(1):
        try:
            return await call()
        except _TRANSIENT as exc:
            if failures > POLL_RETRIES:
                raise
            wait = min(params.batch_poll_s * 2**failures, 300.0)
            log.warning("Batch API call failed (%s); asking again in %.0f s", type(exc).__name__, wait)
            await asyncio.sleep(wait)
    raise AssertionError("unreachable")


def _check_budget(requester: Requester, bodies: list[dict[str, Any]]) -> None:
    """A batch is paid as a whole: refuse to submit one whose estimate would pass the budget."""
    params, budget = requester.params, requester.budget
    if budget.limit is None or params.price is None:
        return
    tokens_in = sum(estimate_tokens(b["messages"]) for b in bodies)
    tokens_out = params.max_tokens * len(bodies)  # the most it can cost
    worst = (
        params.price.batch_discount
        * (tokens_in * params.price.input + tokens_out * params.price.output)
        / 1e6
    )
    if budget.spent + worst > budget.limit:
        raise StopRun(
            f"{budget.model}: a batch of {len(bodies)} requests could cost up to ${worst:.4f}, over what is "
            f"left of the budget of ${budget.limit:.2f}; raise budget_usd or lower batch_size"
        )


def _refused(requester: Requester, key: str, record: dict[str, Any]) -> None:
    """Remember a batch line whose request was refused as such (400, 413, 422): a later batch would get
    the same answer. Lines without a response (the batch expired or was cancelled first) may pass."""
    if (record.get("response") or {}).get("status_code") in REFUSED:
        requester.refused.add(key)


def _store(requester: Requester, bodies: dict[str, dict[str, Any]], text: str, batch_id: str) -> None:
    """Put each answered line of a batch's output file in the cache."""
    params = requester.params
    for line in text.splitlines():
        if not line.strip():
            continue
        record = json.loads(line)
        key = record.get("custom_id")
        response = record.get("response") or {}
        if key not in bodies:
            continue  # not ours (or tampered with): never mapped to a document
        if response.get("status_code") != 200:
            _refused(requester, key, record)
            requester.cache.failed(key, f"batch {batch_id}: {json.dumps(record.get('error') or response)}")
            continue
        answer = response.get("body") or {}
        usage = answer.get("usage") or {}
        cost = cost_usd(params.price, usage, batch=True)
        requester.budget.spend(cost)
        requester.cache.put(
            key,
            bodies[key],
            answer,
            input_tokens=usage.get("prompt_tokens"),
            output_tokens=usage.get("completion_tokens"),
            cost_usd=cost,
            latency_s=None,
            via=batch_id,
        )

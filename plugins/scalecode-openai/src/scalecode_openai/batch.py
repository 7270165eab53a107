"""The Batch API: half the price, answers within a day, and nothing paid twice across restarts.

For the requests of one ``predict_batch`` call that the cache cannot answer: write them as JSONL
(``custom_id`` is the request's cache key), upload the file, create the batch, poll until it ends,
download the answers and put each in the cache; the caller then reads every answer from the cache.

Each batch has a record, ``work_dir/batches/<name>.json``, named by a hash of its requests' keys, and
beside it, until its answers are in the cache, the requests it carries (``<name>.jsonl``, the file
uploaded): each step's id is written to the record as soon as the server returns it. A run killed
between upload and download and started again looks, before it submits anything, at every batch
not yet collected whose requests include some it needs: it creates the batch from the uploaded
file, or polls the batch created, puts all of that batch's answers in the cache (those for
documents of later calls too) and submits only the requests no batch carries. A restarted run
cuts its documents into other chunks than the run it follows (they are planned from the documents
left), so a batch is found by its requests, not by its name; records written before the requests
were kept beside them are found by name, as before, or else by downloading their uploaded file.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import itertools
import json
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, TypeVar

from openai import (
    APIConnectionError,
    APIError,
    APIStatusError,
    APITimeoutError,
    ConflictError,
    InternalServerError,
    NotFoundError,
    RateLimitError,
)

from scalecode.errors import StopRun
from scalecode_openai.client import (
    REFUSED,
    Requester,
    cache_key,
    halting_failure,
    option_named,
    refused_option,
)
from scalecode_openai.cost import budget_charge, cost_usd, estimate_tokens

log = logging.getLogger("scalecode.openai")

ENDPOINT: Final = "/v1/chat/completions"
FINISHED = {"completed", "failed", "expired", "cancelled"}
LOST: Final = "requests_lost"  # a record's flag: which requests its batch carries cannot be known


def _save(path: Path, state: dict[str, Any]) -> None:
    _write(path, json.dumps(state, indent=2) + "\n")


def _write(path: Path, text: str) -> None:
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(text, encoding="utf-8")
    partial.replace(path)


def _name(keys: Iterable[str]) -> str:
    return hashlib.sha256("".join(sorted(keys)).encode()).hexdigest()[:20]


def _lines(bodies: dict[str, dict[str, Any]]) -> str:
    """The batch's input file: one request a line, its cache key as ``custom_id``."""
    lines = [
        json.dumps({"custom_id": key, "method": "POST", "url": ENDPOINT, "body": bodies[key]})
        for key in sorted(bodies)
    ]
    return "\n".join(lines) + "\n"


def _parse_lines(text: str) -> dict[str, dict[str, Any]]:
    """The requests of a batch's input file, by key (what :func:`_lines` wrote)."""
    requests: dict[str, dict[str, Any]] = {}
    for line in text.splitlines():
        if line.strip():
            record = json.loads(line)
            requests[str(record["custom_id"])] = dict(record["body"])
    return requests


@dataclass
class _Batch:
    """One batch of this call: its record, the requests it carries, and whether it was resumed."""

    path: Path
    state: dict[str, Any]
    bodies: dict[str, dict[str, Any]]  # key -> request, every request the batch carries
    resumed: bool = False
    ended: bool = False  # polled to its end and its answers collected

    @property
    def name(self) -> str:
        return self.path.stem

    @property
    def requests_path(self) -> Path:
        return self.path.with_suffix(".jsonl")


async def submit_and_collect(
    requester: Requester,
    task: Any,
    conversations: list[list[dict[str, str]]],
    sizes: list[int],
    work_dir: Path | None,
) -> None:
    """Have the Batch API answer every request the cache lacks; the answers go to the cache.

    A refusal of the Batch API itself (a key or a model, see ``halting_failure``; a file too large; an
    upload or batch the server will not take) stops the run, its message scrubbed of the key: failing
    this call instead would have the core code its documents one by one, a batch each, every one of
    them waited on for up to a day. Transient failures are handled where they occur.
    """
    try:
        if work_dir is None:
            raise RuntimeError("batch mode keeps its batch ids in the run directory; run it through a job")
        params, cache = requester.params, requester.cache
        bodies: dict[str, dict[str, Any]] = {}
        for messages, size in zip(conversations, sizes, strict=True):
            body = requester.body(messages, task, size)
            bodies[cache_key(params, body)] = body
        missing = sorted(set(bodies) - cache.known(bodies))
        if not missing:
            return
        folder = work_dir / "batches"
        folder.mkdir(parents=True, exist_ok=True)

        # Batches submitted before (by a run that was killed, with other chunks) that carry some of
        # these requests: poll them rather than pay for the requests again.
        try:
            batches = await _unfinished(requester, folder, missing, bodies)
        except _TRANSIENT as exc:
            # A batch of an earlier version could not be read back, and it may carry these requests:
            # submitting them could pay for them twice. Their documents are error rows marked to retry.
            log.warning(
                "the server could not be reached (%s); the next run looks again", requester.scrub(str(exc))
            )
            return
        carried = {key for b in batches for key in b.bodies}
        rest = [key for key in missing if key not in carried]
        batches += [_batch(folder, {key: bodies[key] for key in part}) for part in _parts(rest, params)]
        if not await _run(requester, batches):
            return
        # A batch resumed from an earlier run that ended with requests unanswered (it expired while
        # nobody polled it, or failed): submit those anew now, once.
        left = set(missing) - cache.known(missing) - requester.refused
        again = sorted(left & {key for b in batches if b.resumed and b.ended for key in b.bodies})
        if again:
            await _run(
                requester,
                [_batch(folder, {key: bodies[key] for key in part}) for part in _parts(again, params)],
            )
    except (APIStatusError, APIConnectionError, APITimeoutError) as exc:
        # Past the retries: an upload or a batch not made. Its record keeps what was made, and the
        # next run goes on from there.
        error = f"Batch API error: {requester.describe(exc)}"
        advice = halting_failure(exc) or (
            "the server kept failing (past the client's retries); try again later"
            if isinstance(exc, _TRANSIENT)
            else "fix what it names (batch_size, if the file is too large)"
        )
        raise requester.halt(f"{error}; {advice}, then run the job again (what is coded is kept)") from None


def _parts(keys: list[str], params: Any) -> list[list[str]]:
    """``keys`` in pieces of at most ``batch_max_requests``: the most one batch may carry."""
    size = params.batch_max_requests
    return [keys[i : i + size] for i in range(0, len(keys), size)]


def _batch(folder: Path, bodies: dict[str, dict[str, Any]]) -> _Batch:
    """The batch for exactly these requests: its record if one exists (found by its name), or a new one."""
    path = folder / f"{_name(bodies)}.json"
    state: dict[str, Any] = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    # A record of a batch made before (collected, yet its answers are not in the cache: the cache was
    # deleted or moved) is resumed: its answers are downloaded again if the server still has them,
    # and its requests submitted anew if not.
    return _Batch(path, state, bodies, resumed="batch_id" in state)


async def _unfinished(
    requester: Requester, folder: Path, missing: list[str], bodies: dict[str, dict[str, Any]]
) -> list[_Batch]:
    """The batches not yet collected (their records have no ``status``) that carry some of
    ``missing``, each with every request it carries."""
    found = []
    wanted = set(missing)
    for path in sorted(folder.glob("*.json")):
        try:
            state = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            log.warning("batch record %s cannot be read (%s); it is left alone", path, exc)
            continue
        if not isinstance(state, dict) or "status" in state or LOST in state or "file_id" not in state:
            continue
        batch = _Batch(path, state, {}, resumed=True)
        if batch.requests_path.exists():
            try:
                batch.bodies = _parse_lines(batch.requests_path.read_text(encoding="utf-8"))
            except (OSError, ValueError, KeyError, TypeError) as exc:
                log.warning("batch requests %s cannot be read (%s)", batch.requests_path, exc)
                continue
        elif batch.name == _name(missing):
            batch.bodies = {key: bodies[key] for key in missing}  # a record of an earlier version
        elif (recovered := await _recover(requester, batch)) is not None:
            batch.bodies = recovered
        else:
            continue
        if wanted & set(batch.bodies):
            found.append(batch)
        elif not set(batch.bodies) - requester.cache.known(batch.bodies) - requester.refused:
            # Every request it carries is answered already (elsewhere, or by a run killed after
            # storing the answers): there is nothing left to take from it.
            batch.state["status"] = "answered"
            _save(path, batch.state)
            batch.requests_path.unlink(missing_ok=True)
    return found


async def _recover(requester: Requester, batch: _Batch) -> dict[str, dict[str, Any]] | None:
    """The requests of a batch recorded by an earlier version (which kept no list of them): from
    its uploaded input file, kept beside the record from then on. ``None`` if it cannot be had; a
    transient failure to reach the server is raised."""
    params, client, file_id = requester.params, requester.client, batch.state["file_id"]
    try:
        content = await _patiently(params, lambda: client.files.content(file_id))
        requests = _parse_lines(content.text)
    except _TRANSIENT:
        raise
    except (APIError, ValueError, KeyError, TypeError) as exc:
        log.warning(
            "batch file %s (record %s) cannot be read (%s): that batch is resumed only by the "
            "requests it was made for",
            file_id,
            batch.path.name,
            requester.scrub(str(exc)),
        )
        batch.state[LOST] = True
        _save(batch.path, batch.state)
        return None
    _write(batch.requests_path, _lines(requests))
    return requests


async def _run(requester: Requester, batches: list[_Batch]) -> bool:
    """Submit what is not submitted yet, then poll each batch to its end and collect its answers.
    ``False`` if the server could not be reached: the batches left are polled by the next run."""
    waiting = [body for b in batches if "batch_id" not in b.state for body in b.bodies.values()]
    if waiting:
        _check_budget(requester, waiting)  # before anything is paid for
    for batch in batches:
        await _submit(requester, batch)
    for batch in batches:
        if not await _collect(requester, batch):
            return False
    return True


async def _submit(requester: Requester, batch: _Batch) -> None:
    state, path = batch.state, batch.path
    if "file_id" not in state:
        await _upload(requester, batch)
    if "batch_id" not in state:
        # Not asked again here after a failure: a batch made whose reply was lost would be made and
        # paid for twice. The run stops instead, and the next one creates it from the file.
        try:
            created = await _create(requester, state["file_id"], batch.name)
        except NotFoundError:
            if not batch.resumed:
                raise
            # The file an earlier run uploaded is gone (deleted, expired, another key's project).
            log.warning("batch file %s is not on the server any more; uploading it again", state["file_id"])
            await _upload(requester, batch)
            created = await _create(requester, state["file_id"], batch.name)
        state["batch_id"] = created.id
        _save(path, state)
        log.info("submitted batch %s with %d requests", created.id, len(batch.bodies))
    elif batch.resumed:
        log.info("resuming batch %s (%d requests)", state["batch_id"], len(batch.bodies))


async def _upload(requester: Requester, batch: _Batch) -> None:
    """Upload the batch's requests (asked again after a transient failure: a file uploaded twice
    costs nothing) and record the file's id."""
    text = _lines(batch.bodies)
    _write(batch.requests_path, text)  # before the upload: a record never lacks its requests
    data = text.encode("utf-8")
    file = await _patiently(
        requester.params,
        lambda: requester.client.files.create(
            file=(f"scalecode-{batch.name}.jsonl", io.BytesIO(data)), purpose="batch"
        ),
    )
    batch.state.update(file_id=file.id, requests=len(batch.bodies))
    _save(batch.path, batch.state)


async def _create(requester: Requester, file_id: str, name: str) -> Any:
    return await requester.client.batches.create(
        input_file_id=file_id,
        endpoint=ENDPOINT,
        completion_window="24h",
        metadata={"scalecode_requests": name},
    )


async def _collect(requester: Requester, batch: _Batch) -> bool:
    params, cache, client, state = requester.params, requester.cache, requester.client, batch.state
    try:
        found = await _patiently(params, lambda: client.batches.retrieve(state["batch_id"]))
        while found.status not in FINISHED:
            await asyncio.sleep(params.batch_poll_s)
            found = await _patiently(params, lambda: client.batches.retrieve(state["batch_id"]))
        output = error = None
        if (output_id := found.output_file_id) is not None:
            output = await _patiently(params, lambda: client.files.content(output_id))
        if (error_id := found.error_file_id) is not None:
            error = await _patiently(params, lambda: client.files.content(error_id))
    except NotFoundError:
        if not batch.resumed:
            raise
        # An earlier run's batch, or its answers, the server no longer has (deleted, expired, another
        # key's project): its requests are submitted anew, once, as those of a batch that expired.
        log.warning(
            "batch %s is not on the server any more; its requests are submitted again", state["batch_id"]
        )
        state["status"] = "gone"
        _save(batch.path, state)
        batch.ended = True
        batch.path.replace(batch.path.with_name(f"{batch.name}.{state['batch_id']}.json"))
        batch.requests_path.unlink(missing_ok=True)
        return True
    except _TRANSIENT as exc:
        # The batch is submitted and its id saved: the next run polls it again. Its documents are
        # error rows marked to retry, not a crash of the run.
        log.warning(
            "batch %s: the server could not be reached (%s); the next run polls it again",
            state["batch_id"],
            requester.scrub(str(exc)),
        )
        return False
    # A refusal of the job's options stops the run, once every answer is stored and the batch marked
    # collected: the answers are paid for, and a record left uncollected would be read at every run.
    halting = _store(requester, batch.bodies, output.text, found.id) if output is not None else None
    failed = set()
    if error is not None:
        for line in error.text.splitlines():
            if line.strip():
                record = json.loads(line)
                key = record.get("custom_id", "")
                halting = _refused(requester, key, record, batch.bodies.get(key)) or halting
                reason = f"batch {found.id}: {json.dumps(record.get('error') or record.get('response'))}"
                cache.failed(key, reason)
                requester.unanswered[key] = reason
                failed.add(key)
    # Only now, with its answers in the cache, is the batch marked collected.
    state["status"] = found.status
    _save(batch.path, state)
    batch.ended = True
    if unanswered := set(batch.bodies) - cache.known(batch.bodies) - requester.refused:
        _record_unanswered(requester, found, unanswered - failed, len(batch.bodies))
        # The batch is over and left requests unanswered (failed, expired, cancelled): the next run
        # must submit them anew, not poll this batch again. Its record stays, under the batch's id.
        batch.path.replace(batch.path.with_name(f"{batch.name}.{found.id}.json"))
    batch.requests_path.unlink(missing_ok=True)
    if halting is not None:
        raise requester.halt(halting)
    return True


def _record_unanswered(requester: Requester, found: Any, keys: set[str], carried: int) -> None:
    """Say why a batch that ended (failed, expired, cancelled) left requests without an answer or an
    error line: the batch's own errors (a validation failure, an enqueued-token limit), in the log,
    the cache's failures and the documents' error rows."""
    if not keys:
        return
    errors = [f"{e.code}: {e.message}" for e in ((found.errors and found.errors.data) or [])[:3]]
    reason = f"batch {found.id} ended {found.status} without answering it" + (
        f" ({'; '.join(errors)})" if errors else ""
    )
    log.warning("%s of %d requests: %s; the next run asks them again", len(keys), carried, reason)
    for key in keys:
        requester.cache.failed(key, reason)
        requester.unanswered[key] = reason


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


def _refused(
    requester: Requester, key: str, record: dict[str, Any], body: dict[str, Any] | None
) -> str | None:
    """Remember a batch line whose request was refused as such (400, 413, 422): a later batch would get
    the same answer. Lines without a response (the batch expired or was cancelled first) may pass.

    A refusal of the job's options is judged as the online path judges it: ``max_tokens`` refused for
    ``max_completion_tokens`` switches the requester to that name (the caller then asks again), and
    another option the job sets is to stop the run (the reason returned), since every request of
    every batch carries it."""
    response = record.get("response") or {}
    if response.get("status_code") not in REFUSED:
        return None
    requester.refused.add(key)
    answer = response.get("body")
    # A proxy's page (HTML, text) in place of the server's JSON error: no option named, nothing judged.
    error = (answer.get("error") if isinstance(answer, dict) else None) or record.get("error") or {}
    if not isinstance(error, dict) or body is None:
        return None
    param = error.get("param") if isinstance(error.get("param"), str) else None
    message = str(error.get("message", ""))
    if refused_option(param, message) == "max_tokens" and "max_tokens" in body:
        if requester.token_limit == "max_tokens":
            requester.token_limit = "max_completion_tokens"
            log.warning("the server refuses max_tokens; asking with max_completion_tokens")
        return None
    if (option := option_named(param, body)) is not None:
        reason = requester.scrub(f"Batch API refused requests: {message[:300]}")
        return (
            f"{reason}; the server refuses the option {option!r} for this model: change or remove it in "
            "the backend's params, then run the job again (what is coded is kept)"
        )
    return None


def _store(requester: Requester, bodies: dict[str, dict[str, Any]], text: str, batch_id: str) -> str | None:
    """Put each answered line of a batch's output file in the cache; why the run must stop, where a
    line was refused for the job's options (see :func:`_refused`)."""
    halting = None
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
            halting = _refused(requester, key, record, bodies[key]) or halting
            requester.cache.failed(key, f"batch {batch_id}: {json.dumps(record.get('error') or response)}")
            continue
        answer = response.get("body") or {}
        usage = answer.get("usage") or {}
        cost = cost_usd(params.price, usage, batch=True)
        requester.budget.spend(budget_charge(params.price, bodies[key], answer, batch=True))
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
    return halting

"""Sending chat requests: bounded concurrency, client-side rate limits, retries, the cache and the budget.

Retries are the `openai` client's own: on 408, 409, 429, 5xx, timeouts and dropped connections it
waits with exponential backoff and jitter, honouring the server's Retry-After, up to ``max_retries``
times. What it does not retry, a 200 whose body is not valid JSON, is retried here the same way. A
request that still fails becomes an error row naming the failure; it is logged in the cache and
asked again by the next run.

The client honours a Retry-After only up to its own cap (:func:`client_waits_up_to`: 120 s in
openai 2.54, 3.22 and 3.52), and does not retry a response asking for more: a gateway's hourly quota
would make every document an error row, each after one refused request. So a longer wait is waited
out here, holding the request's slot, up to ``max_retry_after_s`` and ``max_retries`` times; a server
asking for more than ``max_retry_after_s`` (a daily quota) stops the run, as below.

``structured_output: auto`` starts with a JSON schema and steps down to JSON mode, then to the prompt
alone, the first time the server refuses a format: an HTTP 400 or 422 whose error names
``response_format``, ``json_schema`` or ``json_object`` (in its ``param`` or its message, as OpenAI,
vLLM, llama.cpp and Ollama name it); ``logprobs`` is dropped the same way when the refusal names it.
Each step down happens once per process and is logged. Any other 400 or 422 (a context too long, a
content filter, a parameter the model rejects) is that document's own error row, not retried.

A failure that every later request would meet too stops the run (:class:`StopRun`) instead of
writing an error row for each remaining document: a key the server refuses (401, or a 403 about
access), a model or endpoint it does not know (404), an account out of credit (429
``insufficient_quota``, which the client retries like a rate limit: without the stop, every document
would wait out its retries), and a wait longer than ``max_retry_after_s``. A 403 about the document's
content (a moderation flag) is its error row.
What was coded is kept; the next run resumes.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import math
import random
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from scalecode.config import redact_text
from scalecode.errors import StopRun
from scalecode_openai import prompts
from scalecode_openai.cache import ResponseCache, request_key
from scalecode_openai.cost import Budget, budget_charge, cost_usd, estimate_tokens
from scalecode_openai.options import OpenAIParams

if TYPE_CHECKING:
    from aiolimiter import AsyncLimiter

log = logging.getLogger("scalecode.openai")

OPENAI_URL = "https://api.openai.com/v1"
TOP_LOGPROBS = 5


@dataclass
class Reply:
    """What one request came back with (from the server or the cache), or why it failed."""

    content: str | None = None
    tokens: list[dict[str, Any]] | None = None  # log-probabilities of the reply's tokens
    input_tokens: int | None = None
    output_tokens: int | None = None
    cost_usd: float | None = None
    latency_s: float | None = None
    cached: bool = False
    key: str = ""
    error: str | None = None
    passing: bool = False  # the error may pass (server down, rate limit, timeout): ask again next run
    finish_reason: str | None = None  # "length": the answer was cut off at max_tokens
    refusal: str | None = None  # the model declined to answer (OpenAI's message.refusal)


def per_second(per_minute: float | None) -> AsyncLimiter | None:
    """A limiter that spreads a per-minute allowance over the minute, a second's worth at a time.

    A bucket holding the whole minute would let a fresh run fire a minute's requests at once, which
    servers that also enforce shorter windows answer with 429s.
    """
    from aiolimiter import AsyncLimiter

    if not per_minute:
        return None
    if per_minute >= 60:
        return AsyncLimiter(per_minute / 60, 1.0)
    return AsyncLimiter(1, 60 / per_minute)


def endpoint(params: OpenAIParams) -> str:
    return (params.base_url or OPENAI_URL).rstrip("/")


def build_request(
    params: OpenAIParams,
    messages: list[dict[str, str]],
    response_format: dict[str, Any] | None,
    logprobs: bool,
    token_limit: str = "max_tokens",
) -> dict[str, Any]:
    """The chat-completions request body: everything that determines the answer, nothing secret.
    ``token_limit``: the name the server takes ``max_tokens`` by (OpenAI's reasoning models take
    only ``max_completion_tokens``)."""
    body: dict[str, Any] = {
        "model": params.model,
        "messages": messages,
        "temperature": params.temperature,
        token_limit: params.max_tokens,
    }
    if params.seed is not None:
        body["seed"] = params.seed
    if response_format is not None:
        body["response_format"] = response_format
    if logprobs:
        body["logprobs"] = True
        body["top_logprobs"] = TOP_LOGPROBS
    body.update(params.extra_body)
    return body


def cache_key(params: OpenAIParams, body: dict[str, Any]) -> str:
    return request_key({"endpoint": endpoint(params), **body})


def _usage(response: dict[str, Any]) -> tuple[int | None, int | None]:
    usage = response.get("usage") or {}
    return usage.get("prompt_tokens"), usage.get("completion_tokens")


def _text_of(content: Any) -> str | None:
    """A message's text: a string, or (as some OpenAI-compatible servers send it) a list of parts,
    whose text parts are joined; anything else is no text."""
    if content is None or isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = [
            part.get("text")
            for part in content
            if isinstance(part, dict) and part.get("type", "text") == "text"
        ]
        return "".join(t for t in texts if isinstance(t, str))
    return str(content)


def reply_from(
    response: dict[str, Any], key: str, cached: bool, latency_s: float | None, cost: float | None
) -> Reply:
    choice = (response.get("choices") or [{}])[0]
    message = choice.get("message") or {}
    content = _text_of(message.get("content"))
    tokens = (choice.get("logprobs") or {}).get("content")
    input_tokens, output_tokens = _usage(response)
    return Reply(
        content=content,
        tokens=tokens,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cost_usd=cost,
        latency_s=latency_s,
        cached=cached,
        key=key,
        finish_reason=choice.get("finish_reason"),
        refusal=message.get("refusal") or None,
    )


class Requester:
    """Sends requests for one backend replica; one per process, used from one event loop."""

    def __init__(self, params: OpenAIParams, api_key: str, cache: ResponseCache, budget: Budget) -> None:
        from openai import AsyncOpenAI

        self.params = params
        self.cache = cache
        self.budget = budget
        self.format = "json_schema" if params.structured_output == "auto" else params.structured_output
        self.logprobs = params.logprobs
        self.token_limit = "max_tokens"  # or max_completion_tokens, where the server refuses it
        self.key = api_key
        self.client = AsyncOpenAI(
            api_key=api_key,
            base_url=endpoint(params),
            timeout=params.timeout_s,
            max_retries=params.max_retries,
        )
        self.slots = asyncio.Semaphore(params.concurrency)
        self.requests_limit = per_second(params.requests_per_minute)
        self.tokens_limit = per_second(params.tokens_per_minute)
        self.sent = 0  # HTTP requests made, retries by this module included
        self.refused: set[str] = set()  # keys of requests a batch refused as such: not to be sent again
        self.unanswered: dict[str, str] = {}  # why a batch left a request without an answer, by key
        self.halted: str | None = None  # why no request is sent any more (see halting_failure)
        self._halting = asyncio.Event()  # set with ``halted``: wakes requests waiting out a Retry-After
        self.sleep: Callable[[float], Awaitable[None]] = asyncio.sleep  # waits for the server; tests record

    def halt(self, reason: str) -> StopRun:
        """Send no more requests, for ``reason``; the StopRun to raise. Requests waiting out a
        Retry-After stop waiting: the run stops now, not when the longest wait is over."""
        self.halted = reason
        self._halting.set()
        return StopRun(reason)

    async def _wait_out(self, seconds: float) -> None:
        """Wait ``seconds`` for the server, or less if the run halts meanwhile (then StopRun)."""
        waiting = asyncio.ensure_future(self.sleep(seconds))
        halting = asyncio.ensure_future(self._halting.wait())
        try:
            await asyncio.wait({waiting, halting}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiting.cancel()
            halting.cancel()
        if self.halted is not None:
            raise StopRun(self.halted)

    def body(self, messages: list[dict[str, str]], task: Any, documents: int) -> dict[str, Any]:
        return build_request(
            self.params,
            messages,
            prompts.response_format(task, documents, self.format),
            self.logprobs,
            self.token_limit,
        )

    async def ask(
        self, messages: list[dict[str, str]], task: Any, documents: int, *, cache_only: bool = False
    ) -> Reply:
        """The reply to one conversation: from the cache if it was asked before, else from the server.

        ``cache_only`` (batch mode, after the batch is in): a request the cache lacks is not sent.
        """
        from openai import (
            APIConnectionError,
            APIStatusError,
            APITimeoutError,
            BadRequestError,
            UnprocessableEntityError,
        )

        malformed = waited = 0
        while True:
            fmt, logprobs, limit = self.format, self.logprobs, self.token_limit
            body = self.body(messages, task, documents)
            key = cache_key(self.params, body)
            hit = self.cache.get(key)
            if hit is not None:
                return reply_from(hit, key, cached=True, latency_s=None, cost=0.0)
            if cache_only:
                reason = self.unanswered.get(key, "the batch gave no answer to this request")
                return Reply(key=key, error=reason, passing=key not in self.refused)
            if self.halted is not None:
                raise StopRun(self.halted)
            async with self.slots:
                if self.halted is not None:  # set while this request waited for a slot
                    raise StopRun(self.halted)
                if (fmt, logprobs, limit) != (self.format, self.logprobs, self.token_limit):
                    continue  # another request stepped down meanwhile: ask as it now asks
                self.budget.reserve()  # with a slot held: at most `concurrency` requests overshoot
                await self._wait_for_limits(body)
                started = time.perf_counter()
                try:
                    self.sent += 1
                    response = await self._send(body)
                except (BadRequestError, UnprocessableEntityError) as exc:
                    param, message = _refusal(exc)
                    if self._step_down(refused_option(param, message), fmt, logprobs, limit):
                        continue
                    error = f"API refused the request: {self.describe(exc)}"
                    if (option := option_named(param, body)) is not None:
                        # Every request carries the job's options: each would be refused alike, and
                        # each document made an error row that a rerun does not ask again.
                        error = self.scrub(error)
                        self.cache.failed(key, error)
                        stop = self.halt(
                            f"{error}; the server refuses the option {option!r} for this model: change "
                            "or remove it in the backend's params, then run the job again (what is coded "
                            "is kept)"
                        )
                        log.error("no more requests: %s", self.halted)
                        raise stop from None
                    return self._failed(key, error)
                except (APIStatusError, APITimeoutError, APIConnectionError) as exc:
                    retries = _retries(exc, self.params.max_retries) + waited
                    after = f" after {retries} retries" if retries else ""
                    error = f"API error{after}: {self.describe(exc)}"
                    wait = asked_wait(exc)
                    if (advice := halting_failure(exc) or self._too_long(wait)) is not None:
                        error = self.scrub(error)
                        self.cache.failed(key, error)
                        stop = self.halt(f"{error}; {advice}, then run the job again (what is coded is kept)")
                        log.error("no more requests: %s", self.halted)
                        raise stop from None
                    if wait is not None and wait > client_waits_up_to() and waited < self.params.max_retries:
                        waited += 1  # the client did not wait it out: wait here, with the slot held
                        log.warning("the server asks to wait %s (Retry-After); waiting", _duration(wait))
                        await self._wait_out(wait)
                        continue
                    return self._failed(key, error, passing=_passing(exc))
                except Exception as exc:  # a 200 whose body is not JSON: the server garbled it
                    malformed += 1
                    if malformed > self.params.max_retries:
                        return self._failed(
                            key, f"API answered malformed responses: {self.describe(exc)}", passing=True
                        )
                    await asyncio.sleep(min(0.5 * 2 ** (malformed - 1), 8.0) * (1 - 0.25 * random.random()))
                    continue
            latency = time.perf_counter() - started
            cost = cost_usd(self.params.price, response.get("usage"))
            self.budget.spend(budget_charge(self.params.price, body, response))
            input_tokens, output_tokens = _usage(response)
            self.cache.put(
                key,
                body,
                response,
                input_tokens=input_tokens,
                output_tokens=output_tokens,
                cost_usd=cost,
                latency_s=latency,
            )
            return reply_from(response, key, cached=False, latency_s=latency, cost=cost)

    async def _send(self, body: dict[str, Any]) -> dict[str, Any]:
        known = {
            "model",
            "messages",
            "temperature",
            "max_tokens",
            "max_completion_tokens",
            "seed",
            "response_format",
            "logprobs",
            "top_logprobs",
        }
        extra = {k: v for k, v in body.items() if k not in known}
        args = {k: v for k, v in body.items() if k in known}
        completion = await self.client.chat.completions.create(**args, extra_body=extra or None)
        data: dict[str, Any] = completion.model_dump(mode="json")
        return data

    async def _wait_for_limits(self, body: dict[str, Any]) -> None:
        if self.requests_limit is not None:
            await self.requests_limit.acquire()
        if self.tokens_limit is not None:
            # The bucket holds one second's allowance: a request needing more takes it a bucket at a
            # time, so that what is sent over a minute stays within the limit.
            needed: float = estimate_tokens(body["messages"]) + self.params.max_tokens
            while needed > 0:
                piece = min(needed, self.tokens_limit.max_rate)
                await self.tokens_limit.acquire(piece)
                needed -= piece

    def describe(self, exc: Exception) -> str:
        """A failure in one line for an error row, the cache and the log: the key scrubbed from the
        server's whole message before it is cut short (a cut could split the key and hide it)."""
        return _describe(exc, self.scrub)

    def scrub(self, text: str) -> str:
        """``text`` (a server's error message) without the key: some servers echo it back, in full,
        and the text goes to error rows, the cache and the log."""
        if len(self.key) >= 8:  # "no-key", sent where none is needed, is no secret
            text = text.replace(self.key, "***")
        return redact_text(text)

    def _too_long(self, wait: float | None) -> str | None:
        """What the user must do when the server asks to wait longer than ``max_retry_after_s``
        (a daily quota, say): every request until then would be refused too."""
        limit = self.params.max_retry_after_s
        if wait is None or wait <= limit or wait <= client_waits_up_to():
            return None  # a wait the client made itself (under a limit set lower) is nothing to stop for
        return (
            f"the server asks to wait {_duration(wait)} before the next request (Retry-After), more "
            f"than max_retry_after_s ({limit:g} s): wait that long, or raise max_retry_after_s"
        )

    def _step_down(self, refused: str | None, fmt: str, logprobs: bool, limit: str = "max_tokens") -> bool:
        """After a 400 or 422 naming ``refused`` (see :func:`refused_option`): drop it (or, for
        max_tokens, ask by its other name), once. False: the request itself is at fault."""
        if refused is None:
            return False  # a context too long, a content filter, a parameter the model rejects
        if fmt != self.format or logprobs != self.logprobs or limit != self.token_limit:
            return True  # another request already stepped down; ask again as it now asks
        if refused == "max_tokens":
            if limit == "max_completion_tokens":
                return False
            self.token_limit = "max_completion_tokens"
            log.warning("the server refuses max_tokens; asking with max_completion_tokens")
            return True
        if refused == "logprobs":
            if not logprobs:
                return False
            self.logprobs = False
            log.warning("the server refuses log-probabilities; asking without them (no confidence)")
            return True
        if self.params.structured_output == "auto" and fmt != "none":
            self.format = "json_object" if fmt == "json_schema" else "none"
            log.warning("the server refuses response_format %s; using %s", fmt, self.format)
            return True
        return False

    def _failed(self, key: str, error: str, *, passing: bool = False) -> Reply:
        error = self.scrub(error)
        self.cache.failed(key, error)
        return Reply(key=key, error=error, passing=passing)

    async def close(self) -> None:
        await self.client.close()


_NAMES_LOGPROBS = re.compile(r"logprob", re.IGNORECASE)
# OpenAI's refusal of max_tokens for its reasoning models ("Unsupported parameter: 'max_tokens' is not
# supported with this model. Use 'max_completion_tokens' instead."), not any message naming both (vLLM's
# "'max_tokens' or 'max_completion_tokens' is too large" is a document too long for the context).
_WANTS_COMPLETION_TOKENS = re.compile(
    r"use '?max_completion_tokens'? instead|'?max_tokens'? is not supported", re.IGNORECASE
)
_NAMES_FORMAT = re.compile(r"response[_ .]?format|json[_ ]?schema|json[_ ]?object", re.IGNORECASE)


def refused_option(param: str | None, message: str) -> str | None:
    """What a refusal (HTTP 400 or 422) names that the request could do without: "logprobs",
    "format" (response_format, json_schema or json_object), "max_tokens" (asked for by its newer
    name, max_completion_tokens), or None (the request itself is at fault: a context too long, a
    content filter, a parameter the model rejects)."""
    text = f"{param or ''} {message}"
    if _WANTS_COMPLETION_TOKENS.search(message):
        return "max_tokens"
    if _NAMES_LOGPROBS.search(text):
        return "logprobs"
    if _NAMES_FORMAT.search(text):
        return "format"
    return None


def _refusal(exc: Exception) -> tuple[str | None, str]:
    """The ``param`` and the message of a refusal: OpenAI's ``{"error": {"message", "param"}}`` (the
    client reads it into ``body``), FastAPI's ``{"detail": [{"loc", "msg"}]}`` (vLLM's 422s), or the
    text of the response. Only these, not the whole body: a body may echo the request back."""
    param = getattr(exc, "param", None)
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        detail = body.get("detail")
        if isinstance(detail, list):
            items = [item for item in detail if isinstance(item, dict)]
            parts = [
                " ".join(map(str, item.get("loc") or ())) + " " + str(item.get("msg", "")) for item in items
            ]
            fields = {
                str(loc[1])
                for item in items
                if len(loc := list(item.get("loc") or ())) == 2 and loc[0] == "body"
            }
            if param is None and len(fields) == 1:
                param = fields.pop()  # one field of the request refused, as OpenAI's ``param`` names it
            return param, "; ".join(parts)
        message = body.get("message", detail)
        if message is not None:
            return param if param is not None else _text(body.get("param")), str(message)
    elif isinstance(body, str):
        return param, body
    return param, str(exc)


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


# Request fields the job sets under another name.
_OPTION_OF_FIELD = {
    "response_format": "structured_output",
    "top_logprobs": "logprobs",
    "max_completion_tokens": "max_tokens",
}


def option_named(param: str | None, body: dict[str, Any]) -> str | None:
    """The job's option a refusal names (its ``param``: OpenAI's, or the field of a FastAPI 422), as
    the job spells it, where the request sets it and it is not the conversation; None otherwise (a
    context too long, a filtered input name ``messages`` or nothing)."""
    if not param:
        return None
    field = param.split("[")[0].split(".")[0]
    if field == "messages" or field not in body:
        return None
    return _OPTION_OF_FIELD.get(field, field)


def halting_failure(exc: Exception) -> str | None:
    """What the user must fix when ``exc`` is a failure every request would meet (the key, the model
    name or ``base_url``, the account's credit); None when it concerns this request alone or may pass."""
    status = getattr(exc, "status_code", None)
    if status == 401 or (status == 403 and _NAMES_ACCESS.search(str(exc))):
        return "the server refuses the API key: check the key the job names"
    if status == 404:
        return "the server knows no such model or endpoint: check model and base_url"
    if status == 429 and "insufficient_quota" in (getattr(exc, "code", None), getattr(exc, "type", None)):
        return "the account is out of credit: add credit or raise its spending limit"
    return None


# A 403 about access as such (a key, a project, a region, a subscription). Other 403s concern the
# document: OpenRouter, for one, answers 403 to an input its moderation flags.
_NAMES_ACCESS = re.compile(
    r"api[ _-]?key|invalid_api_key|permission|organi[sz]ation|project|country|region|territory|"
    r"subscription|access denied|forbidden",
    re.IGNORECASE,
)


REFUSED = frozenset({400, 403, 413, 422})  # the request itself is refused: sending it again gets the same


def _passing(exc: Exception) -> bool:
    """Whether asking again later may succeed: yes for a server down, a rate limit or a timeout; no
    for a request the server cannot take (400, 413, 422, and a 403 for its content), which would be
    refused again. (A refused key or an unknown model stops the run: see :func:`halting_failure`.)"""
    from openai import APIStatusError

    return not (isinstance(exc, APIStatusError) and exc.status_code in REFUSED)


def retry_after(headers: Mapping[str, str]) -> float | None:
    """The seconds a response asks the client to wait, read as the openai client reads them:
    ``retry-after-ms``, else ``Retry-After`` in seconds or as an HTTP date; None if it names no wait
    ahead. A number too large for a float is an endless wait, not none."""
    for name, unit in (("retry-after-ms", 1e-3), ("retry-after", 1.0)):
        try:
            seconds = float(headers.get(name) or "") * unit
        except ValueError:
            continue
        return seconds if seconds > 0 else None  # NaN, 0 and negative waits ask for nothing
    try:
        until = email.utils.parsedate_to_datetime(headers.get("retry-after") or "")
        seconds = until.timestamp() - time.time()
    except (TypeError, ValueError, OverflowError):
        return None
    return seconds if seconds > 0 else None


def asked_wait(exc: Exception) -> float | None:
    """The wait a failure's response asks for (see :func:`retry_after`), where the client retries
    its status: 408, 409, 429, 5xx."""
    response = getattr(exc, "response", None)
    if response is None or not _retried(exc):
        return None
    return retry_after(response.headers)


def client_waits_up_to() -> float:
    """The longest Retry-After the openai client waits out itself: a response asking for more reaches
    the backend without that wait. Private to the client, so read where it is, with a fallback."""
    try:
        from openai._constants import MAX_RETRY_AFTER_DELAY  # type: ignore[attr-defined,unused-ignore]
    except ImportError:  # a release without it: assume the 60 s its generator's clients long used
        return 60.0
    return float(MAX_RETRY_AFTER_DELAY)


def _duration(seconds: float) -> str:
    """A wait as people say it: 45 s, 5 min, 2 h, 1.5 d."""
    if not math.isfinite(seconds):
        return "for ever"
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.3g} {unit}"
    return f"{seconds:.3g} s"


def _retries(exc: Exception, max_retries: int) -> int:
    """How many times the openai client asked again before giving up: the count it sends with each
    attempt (``x-stainless-retry-count``), else what it does by status (see :func:`_retried`). The count
    is true where the status alone would mislead: a 429 whose Retry-After the client refused to wait."""
    headers = getattr(getattr(exc, "request", None), "headers", None)
    sent = headers.get("x-stainless-retry-count") if headers is not None else None
    if isinstance(sent, str) and sent.isdigit():
        return int(sent)
    return max_retries if _retried(exc) else 0


def _retried(exc: Exception) -> bool:
    """Whether the openai client asked again before giving up: it does for timeouts, dropped
    connections, 408, 409, 429 and 5xx; a 401 or 404 is answered at once, and saying it was retried
    would send the user looking at the server instead of the key or the model name."""
    status = getattr(exc, "status_code", None)
    return status is None or status in (408, 409, 429) or status >= 500


def _describe(exc: Exception, scrub: Callable[[str], str] = redact_text) -> str:
    status = getattr(exc, "status_code", None)
    whole = scrub(str(exc))
    text = whole.splitlines()[0] if whole else type(exc).__name__
    return f"{type(exc).__name__}" + (f" ({status})" if status else "") + f": {text[:300]}"

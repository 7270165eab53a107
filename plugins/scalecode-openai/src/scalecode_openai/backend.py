"""The `openai` backend: any OpenAI-compatible chat API codes documents from the codebook.

One replica per run (``max_replicas=1``) sends up to ``concurrency`` requests at once from one event
loop, so the client-side rate limits and the budget hold exactly; throughput comes from concurrent
requests, not from processes. Every answer lands in the response cache (by default
``work/<backend>/responses.sqlite`` in the run directory), so a run that is stopped or killed and run
again pays for no request twice.

Prediction columns beyond the standard ones: ``input_tokens``, ``output_tokens`` and ``cost_usd``
(a request's share per document when several share one request), ``cached`` (answered from the
cache, at no cost) and ``request_key`` (the request's row in the cache, its audit record).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from scalecode import Backend, Estimate, Predictions, Resources, Task, TaskType
from scalecode.task import round_robin
from scalecode_openai import prompts
from scalecode_openai.answers import confidences, parse
from scalecode_openai.cache import ResponseCache
from scalecode_openai.client import OPENAI_URL, Reply, Requester, build_request, cache_key
from scalecode_openai.cost import Budget, estimate_tokens
from scalecode_openai.options import OpenAIParams

CACHE_FILE = "responses.sqlite"
BUDGET_DIR = "spending"  # what each run spent so far: budget_usd caps a run, all its stages
DEFAULT_KEY_ENV = "OPENAI_API_KEY"
TOKEN_LIMIT_FILE = "token_limit"  # in the work directory: max_completion_tokens, once a server asked for it
_COMPLETION = "max_completion_tokens"
# Sent where no key is given and none is needed (Ollama, vLLM, llama.cpp): the client insists on one.
NO_KEY = "no-key"


def repeated(reply: Reply) -> Reply:
    """The reply for a conversation asked again in the same batch: the same answer, at no cost."""
    if reply.error is not None:
        return reply
    free = None if reply.cost_usd is None else 0.0  # no price: the cost stays unknown, not $0
    return dataclasses.replace(reply, cached=True, cost_usd=free, latency_s=None)


def is_openai(base_url: str | None) -> bool:
    """Whether requests go to OpenAI itself (no base_url, or https://api.openai.com): the only
    endpoint that gets the key in OPENAI_API_KEY without the job naming it."""
    if base_url is None:
        return True
    url = urlsplit(base_url.strip())
    return url.scheme.lower() == "https" and (url.hostname or "").lower() == "api.openai.com"


def api_key(params: OpenAIParams) -> str | None:
    """The key to send: the job's ``api_key``; else, for OpenAI itself only, OPENAI_API_KEY.

    A vLLM node, a gateway or a plain-http URL never gets the OpenAI key from the environment: it
    would hand the user's OpenAI credentials to whoever runs that server.
    """
    if params.api_key is not None:
        return params.api_key.get_secret_value() or None
    if is_openai(params.base_url):
        return os.environ.get(DEFAULT_KEY_ENV) or None
    return None


class OpenAIBackend(Backend):
    name = "openai"
    description = (
        "any OpenAI-compatible chat API (OpenAI, vLLM, Ollama, llama.cpp): cached, rate-limited, costed"
    )
    task_types = frozenset({TaskType.CLASSIFICATION, TaskType.MULTILABEL, TaskType.REGRESSION})
    Params = OpenAIParams
    params: OpenAIParams

    @classmethod
    def check(cls, task: Task, params: Any, *, train: bool) -> None:
        if is_openai(params.base_url) and api_key(params) is None:
            raise ValueError(
                f"api_key: the environment variable {DEFAULT_KEY_ENV} is not set; set it, or name "
                'another with api_key: {"$env": "VARIABLE"} (keys never go in the job file)'
            )

    def resources(self) -> Resources:
        per_call = self.params.batch_size or (
            2_000
            if self.params.mode == "batch"
            else 8 * self.params.concurrency * self.params.docs_per_request
        )
        return Resources(cpus=1.0, batch_size=per_call, max_replicas=1)

    # --- set-up -------------------------------------------------------------------------------

    def _cache_path(self) -> Path | None:
        if self.params.cache is False:
            return None
        if self.params.cache:
            return Path(self.params.cache).expanduser()
        return self.work_dir / CACHE_FILE if self.work_dir is not None else None

    def _cache(self) -> ResponseCache:
        return ResponseCache(self._cache_path())

    def _cached(self, keys: set[str]) -> int:
        """How many of ``keys`` the cache answers. A cache file not made yet answers none, and is not
        made here: estimating (``scalecode plan``) leaves nothing behind."""
        path = self._cache_path()
        if path is None or not path.exists():
            return 0
        with contextlib.closing(ResponseCache(path)) as cache:
            return len(cache.known(keys))

    def load(self) -> None:
        key = api_key(self.params)
        if not key and is_openai(self.params.base_url):
            raise RuntimeError(f"the environment variable {DEFAULT_KEY_ENV} is not set")
        self._loop = asyncio.new_event_loop()
        self._cache_db = self._cache()
        ledger = self.work_dir / BUDGET_DIR if self.work_dir is not None else None
        budget = Budget(self.params.budget_usd, self.params.model, ledger)
        self._loop.run_until_complete(self._start(key or NO_KEY, budget))

    async def _start(self, key: str, budget: Budget) -> None:
        self.requester = Requester(self.params, key, self._cache_db, budget)  # bound to this loop
        # The name a model takes the token limit by, as an earlier replica or run learnt it: in
        # batch mode, learning it again costs a whole batch refused, waited on for hours.
        self.requester.token_limit = self._known_token_limit()

    def _token_limit_file(self) -> Path | None:
        return self.work_dir / TOKEN_LIMIT_FILE if self.work_dir is not None else None

    def _known_token_limit(self) -> str:
        """max_completion_tokens where an earlier replica or run learnt it, else max_tokens."""
        known = self._token_limit_file()
        if known is not None and known.is_file() and known.read_text(encoding="utf-8").strip() == _COMPLETION:
            return _COMPLETION
        return "max_tokens"

    def _remember_token_limit(self) -> None:
        """Keep the token limit's name for later replicas and runs, once a refusal has taught it."""
        known = self._token_limit_file()
        if known is None or self.requester.token_limit == "max_tokens":
            return
        if not known.is_file() or known.read_text(encoding="utf-8").strip() != self.requester.token_limit:
            known.parent.mkdir(parents=True, exist_ok=True)
            partial = known.with_name(f".{known.name}.partial")
            partial.write_text(self.requester.token_limit + "\n", encoding="utf-8")
            partial.replace(known)

    def close(self) -> None:
        """Close the HTTP connections and the cache (also when the replica is garbage-collected)."""
        loop = getattr(self, "_loop", None)
        if loop is None or loop.is_closed() or loop.is_running() or _inside_event_loop():
            return  # garbage-collected while some event loop runs: it cannot be driven from here
        loop.run_until_complete(self.requester.close())
        loop.close()
        self._cache_db.close()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):  # at interpreter exit there may be nothing to close with
            self.close()

    @property
    def examples(self) -> list[Any]:
        """The few-shot examples shown, taken in turn from each label (see :func:`round_robin`)."""
        shown = self.params.few_shot
        examples = round_robin(self.task.examples)
        return examples if shown is None else examples[:shown]

    def _groups(self, texts: Sequence[str]) -> list[list[int]]:
        size = self.params.docs_per_request
        return [list(range(i, min(i + size, len(texts)))) for i in range(0, len(texts), size)]

    # --- coding -------------------------------------------------------------------------------

    def predict_batch(self, texts: Sequence[str]) -> Predictions:
        groups = self._groups(texts)
        replies = self._ask_groups(texts, groups)
        # A request of several documents refused as such (one too long, one a filter flags) would
        # make every document in it an error row that no rerun asks again: each is asked alone.
        refused = [
            k for k, r in enumerate(replies) if len(groups[k]) > 1 and r.error is not None and not r.passing
        ]
        if refused:
            alone = [[i] for k in refused for i in groups[k]]
            answers = iter(self._ask_groups(texts, alone))
            split = set(refused)
            groups = [g for k, g in enumerate(groups) if k not in split] + alone
            replies = [r for k, r in enumerate(replies) if k not in split] + [next(answers) for _ in alone]
        self._remember_token_limit()
        return self._predictions(texts, groups, replies)

    def _ask_groups(self, texts: Sequence[str], groups: list[list[int]]) -> list[Reply]:
        """One reply per group of documents, asked together (in batch mode, through the Batch API)."""
        conversations = [prompts.messages(self.task, [texts[i] for i in g], self.examples) for g in groups]
        sizes = [len(g) for g in groups]
        if self.params.mode == "batch":
            from scalecode_openai.batch import submit_and_collect

            limit = self.requester.token_limit
            self._loop.run_until_complete(
                submit_and_collect(self.requester, self.task, conversations, sizes, self.work_dir)
            )
            if self.requester.token_limit != limit:  # refused by that name: the same requests, renamed
                self._remember_token_limit()  # now: the renamed batch may be waited on for hours
                self._loop.run_until_complete(
                    submit_and_collect(self.requester, self.task, conversations, sizes, self.work_dir)
                )
        return self._loop.run_until_complete(
            self._ask_all(conversations, sizes, cache_only=self.params.mode == "batch")
        )

    async def _ask_all(
        self, conversations: list[list[dict[str, str]]], sizes: list[int], *, cache_only: bool
    ) -> list[Reply]:
        # Corpora repeat texts (retweets, boilerplate, press releases): a conversation asked twice in
        # one batch is sent once, not twice at once before the cache could answer the second.
        first: dict[str, int] = {}
        asked = [
            first.setdefault(json.dumps([c, n]), i)
            for i, (c, n) in enumerate(zip(conversations, sizes, strict=True))
        ]
        tasks = [
            self.requester.ask(conversations[i], self.task, sizes[i], cache_only=cache_only)
            for i in first.values()
        ]
        results = await asyncio.gather(*tasks, return_exceptions=True)
        for result in results:  # a StopRun (budget) ends the run once every request in flight is in
            if isinstance(result, BaseException):
                raise result
        replies = dict(zip(first.values(), [r for r in results if isinstance(r, Reply)], strict=True))
        return [replies[i] if i == j else repeated(replies[j]) for i, j in enumerate(asked)]

    def _predictions(
        self, texts: Sequence[str], groups: list[list[int]], replies: list[Reply]
    ) -> Predictions:
        n = len(texts)
        code: list[Any] = [None] * n
        confidence: list[float | None] = [None] * n
        error: list[str | None] = [None] * n
        retry = [False] * n
        raw: list[str | None] = [None] * n
        extra: dict[str, list[Any]] = {
            name: [None] * n
            for name in ("input_tokens", "output_tokens", "cost_usd", "cached", "request_key")
        }
        for group, reply in zip(groups, replies, strict=True):
            share = len(group)
            unusable = self._unusable(reply, share) if reply.error is None else None
            codes = parse(self.task, reply.content, share) if reply.error is None and not unusable else []
            probabilities = confidences(self.task, reply.content or "", reply.tokens) if codes else []
            for j, i in enumerate(group):
                extra["cached"][i] = reply.cached
                extra["request_key"][i] = reply.key
                extra["input_tokens"][i] = _share(reply.input_tokens, share)
                extra["output_tokens"][i] = _share(reply.output_tokens, share)
                extra["cost_usd"][i] = None if reply.cost_usd is None else reply.cost_usd / share
                if reply.error is not None:
                    error[i], retry[i] = reply.error, reply.passing
                    continue
                if unusable is not None:
                    error[i], raw[i] = unusable, reply.content or reply.refusal
                    continue
                answer = codes[j]
                if answer.error is not None:
                    error[i], raw[i] = answer.error, reply.content
                    continue
                code[i] = answer.value
                if answer.position < len(probabilities):
                    confidence[i] = probabilities[answer.position]
        answers = Predictions(confidence=confidence, error=error, retry=retry, raw=raw, extra=extra)
        if self.task.type is TaskType.CLASSIFICATION:
            answers.label = code
        elif self.task.type is TaskType.MULTILABEL:
            answers.labels = code
        else:
            answers.score = code
        return answers

    def _unusable(self, reply: Reply, documents: int) -> str | None:
        """Why a reply the server sent whole cannot give codes: the model refused, or its answer was
        cut off at max_tokens (a part of an answer is no answer, whatever it seems to say)."""
        if reply.refusal:
            return f"the model refused: {reply.refusal}"
        if reply.finish_reason == "length":
            reason = f"answer cut off at max_tokens ({self.params.max_tokens} tokens): raise max_tokens"
            if self.params.docs_per_request > 1:
                several = "documents" if documents > 1 else "document"
                reason += f" or lower docs_per_request ({documents} {several} shared one answer)"
            return reason
        return None

    # --- before a run -------------------------------------------------------------------------

    def estimate(self, texts: Sequence[str]) -> Estimate:
        """Requests, tokens and dollars to code ``texts``; requests the cache already holds are free,
        and a request repeated (the same texts again) is sent once."""
        params = self.params
        fmt = "json_schema" if params.structured_output == "auto" else params.structured_output
        token_limit = self._known_token_limit()  # as the requests will be keyed in the cache
        input_tokens = output_tokens = 0
        keys: set[str] = set()
        per_answer = 4 + math.ceil(max((len(n) for n in self.task.label_names), default=8) / 4) + 6
        for group in self._groups(texts):
            messages = prompts.messages(self.task, [texts[i] for i in group], self.examples)
            body = build_request(
                params,
                messages,
                prompts.response_format(self.task, len(group), fmt),
                params.logprobs,
                token_limit,
            )
            key = cache_key(params, body)
            if key in keys:
                continue
            keys.add(key)
            input_tokens += estimate_tokens(messages)
            output_tokens += min(per_answer * len(group), params.max_tokens)
        requests = len(keys)
        cached = self._cached(keys)
        share = (requests - cached) / requests if requests else 0.0
        cost = None
        if params.price is not None:
            discount = params.price.batch_discount if params.mode == "batch" else 1.0
            cost = (
                share
                * discount
                * (input_tokens * params.price.input + output_tokens * params.price.output)
                / 1e6
            )
        notes = [f"{params.model} at {params.base_url or OPENAI_URL}"]
        if params.price is None:
            notes.append("no price given (params.price): cost unknown")
        return Estimate(
            documents=len(texts),
            requests=requests,
            cached=cached,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            cost_usd=cost,
            notes=tuple(notes),
        )


def _inside_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _share(tokens: int | None, share: int) -> float | None:
    return None if tokens is None else tokens / share

"""A fake OpenAI-compatible server on loopback, with faults that can be injected on purpose.

Why it exists: the OpenAI backend must survive rate limits, server errors, hangs, malformed bodies and
answers outside the codebook, and it must be tested and benchmarked without a network or an API key.
The real ``openai`` client talks to this server over real HTTP, so retries, timeouts and parsing are
exercised exactly as in production. Answers are deterministic (see :func:`answer_text`), so a test
can predict them from the documents it sends, and faults are decided by hashing the request rather
than by a shared random generator, so concurrency never changes which requests fail.

The server is aiohttp running on its own event loop in a background thread: a hang or a latency is a
sleeping coroutine, not a blocked thread, so hundreds of concurrent requests cost next to nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import hashlib
import json
import math
import re
import socket
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler

__all__ = ["INVALID_LABEL", "Call", "FakeOpenAI", "Faults", "answer_text", "main"]

MODEL = "scalecode-fake"
INVALID_LABEL = "NOT-A-LABEL"
RANDOM_FAULTS = ("429", "500", "hang", "malformed", "invalid_label")  # cumulative, in this order
# Never in a batch: there is no connection to fail, and no HTTP status per request.
TRANSPORT_FAULTS = ("429", "500", "hang", "malformed", "quota", "401", "403")

_FAULT_MARK = re.compile(r"\[\[fault:(429|500|hang|malformed|prose|quota|401|403)(?:\*(\d+))?\]\]")
_LABEL_MARK = re.compile(r"\[\[label:(.*?)\]\]")
_SCORE_MARK = re.compile(r"\[\[score:(.*?)\]\]")
_ANY_MARK = re.compile(r"\[\[\w+:.*?\]\]")
_DOCUMENT = re.compile(r"<document\s+id=[\"']([^\"']*)[\"'][^>]*>(.*?)</document>", re.DOTALL)
_TOKEN = re.compile(r"\w+|\s+|[^\w\s]")

Answer = tuple[str, list[int], list[str]]  # content, offsets where label values start, known labels


@dataclass
class Faults:
    """What goes wrong, and how often. Rates are fractions of chat requests, drawn per attempt;
    fault markers in a document take precedence over them."""

    latency_s: float = 0.0  # added before every chat answer
    rate_429: float = 0.0  # answered 429 with Retry-After
    rate_500: float = 0.0
    rate_hang: float = 0.0  # sleep hang_s, then drop the connection without answering
    rate_malformed: float = 0.0  # 200 with a body that is not JSON
    rate_invalid_label: float = 0.0  # INVALID_LABEL instead of the label (or score)
    retry_after_s: float = 0.05  # the wait a 429 asks for
    retry_after_ms_header: bool = True  # False: Retry-After alone (seconds), as most gateways send it
    hang_s: float = 30.0
    seed: int = 0
    schema_support: bool = True  # False: response_format json_schema is refused with 400
    batch_delay_s: float = 0.0  # a batch completes this long after its creation
    confidence: float = 0.9  # the probability logprobs report for each chosen label
    usage: bool = True  # False: answers carry no token counts, as some compatible servers send them
    batch_failure: str = ""  # set: every batch fails validation with this message, answering nothing
    require_key: str = ""  # set: any request without this key is answered 401, naming the key it sent


@dataclass
class Call:
    """One HTTP request as the server saw it. Recorded on arrival and filled in as it is decided, so
    a hung request is visible (fault "hang", status 0: it never answers) while its client waits."""

    path: str
    method: str
    status: int
    fault: str | None
    body: dict[str, Any] | None
    headers: dict[str, str]


CALL = web.RequestKey("call", Call)  # where a handler finds its request's record


# ---------------------------------------------------------------- the answer rule (pure functions)


def _text(content: object) -> str:
    """A message's content as text: a string, or the text parts of a list of content parts."""
    if isinstance(content, list):
        return "\n".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return content if isinstance(content, str) else ""


def _user_text(body: dict[str, Any]) -> str:
    users = [m for m in body.get("messages") or [] if isinstance(m, dict) and m.get("role") == "user"]
    return _text(users[-1].get("content")) if users else ""


def _find_property(schema: object, name: str) -> dict[str, Any]:
    """The first property called ``name`` anywhere in a JSON schema (also in ``answers.items``)."""
    if isinstance(schema, dict):
        props = schema.get("properties")
        if isinstance(props, dict) and isinstance(props.get(name), dict):
            return props[name]  # type: ignore[no-any-return]
        schema = list(schema.values())
    for node in schema if isinstance(schema, list) else []:
        if found := _find_property(node, name):
            return found
    return {}


def _value(
    text: str, labels: Sequence[str], kind: str, bounds: tuple[float, float] | None = None
) -> tuple[str, object]:
    """One document's answer as (field, value): markers first, then the codebook, then a word count.

    ``kind`` is "label", "labels" (multi-label: every codebook label the text names) or "score" (the
    word count modulo 5, spread over the schema's bounds when it gives them).
    """
    if mark := _LABEL_MARK.search(text):
        return kind if kind != "score" else "label", mark.group(1) if kind != "labels" else [mark.group(1)]
    if mark := _SCORE_MARK.search(text):
        with contextlib.suppress(ValueError):
            return "score", float(mark.group(1))
        return "score", mark.group(1)
    clean = _ANY_MARK.sub(" ", text)  # markers are neither words nor labels
    if kind == "score":
        step = len(clean.split()) % 5
        if bounds is None:
            return "score", step
        low, high = bounds
        return "score", low + (high - low) * step / 4
    named = [  # codebook order, not position in the text
        label for label in labels if re.search(rf"(?<!\w){re.escape(label)}(?!\w)", clean, re.IGNORECASE)
    ]
    if kind == "labels":
        return "labels", named
    return "label", named[0] if named else labels[0]


def answer_text(body: dict[str, Any], labels: Sequence[str] = (), fault: str | None = None) -> Answer:
    """The assistant's content for a chat request, built by hand so that the offsets of the label
    values are known for logprobs. ``fault`` may be "prose" or "invalid_label"."""
    fmt = body.get("response_format")
    schema = (fmt.get("json_schema") or {}).get("schema") if isinstance(fmt, dict) else None
    multi = _find_property(schema, "labels")
    enum = (multi.get("items") or {}).get("enum") if multi else _find_property(schema, "label").get("enum")
    known = [str(x) for x in enum or labels]
    score = _find_property(schema, "score")
    score_type = score.get("type")
    numeric = {"number", "integer"} & set(score_type if isinstance(score_type, list) else [score_type])
    kind = "score" if not known or numeric else "labels" if multi else "label"
    bounds = (
        (float(score["minimum"]), float(score["maximum"])) if {"minimum", "maximum"} <= set(score) else None
    )
    text = _user_text(body)
    docs: list[tuple[str | None, str]] = [(m.group(1), m.group(2)) for m in _DOCUMENT.finditer(text)]
    several = len(docs) > 1 or bool(_find_property(schema, "answers"))
    answers = [(doc_id, *_value(doc, known, kind, bounds)) for doc_id, doc in docs or [(None, text)]]
    if fault == "invalid_label":
        answers = [(doc_id, name, INVALID_LABEL) for doc_id, name, _ in answers]

    parts: list[str] = []
    spans: list[int] = []

    def add(piece: str, *, label: bool = False) -> None:
        if label:
            spans.append(sum(map(len, parts)) + piece.startswith('"'))
        parts.append(piece)

    for i, (doc_id, name, value) in enumerate(answers):
        if fault == "prose":
            add(("\n" if i else "") + (f"Document {doc_id}: the" if several else "The") + f" {name} is ")
            add(str(value), label=name in ("label", "labels"))
            add(".")
            continue
        add(('{"answers": [' if i == 0 else ", ") if several else "{")
        add(f'{{"id": {json.dumps(doc_id, ensure_ascii=False)}, ' if several else "")
        add(f'"{name}": ')
        add(json.dumps(value, ensure_ascii=False), label=name in ("label", "labels"))
        add("}" if several else "")
    add("" if fault == "prose" else "]}" if several else "}")
    return "".join(parts), spans, known


def _logprob(p: float) -> float:
    return math.log(p) if p > 0 else -9999.0  # JSON has no -inf; OpenAI itself reports -9999.0


def _token(token: str, logprob: float) -> dict[str, Any]:
    return {"token": token, "logprob": logprob, "bytes": list(token.encode("utf-8"))}


def logprobs(answer: Answer, confidence: float, k: int) -> list[dict[str, Any]]:
    """Token records covering the content exactly; the first token of each label value carries the
    confidence, and with ``k`` alternatives the other labels share what is left of the probability."""
    content, spans, known = answer
    records = []
    for match in _TOKEN.finditer(content):
        token, first_of_label = match.group(), match.start() in spans
        record = _token(token, _logprob(confidence) if first_of_label else 0.0)
        top = [dict(record)] if k > 0 else []
        if first_of_label and k > 1:
            firsts = (t[0] for label in known if (t := _TOKEN.findall(label)) and t[0] != token)
            others = list(dict.fromkeys(firsts))[: k - 1]
            top += [_token(t, _logprob((1 - confidence) / len(others))) for t in others]
        records.append({**record, "top_logprobs": top})
    return records


def _tokens(text: str) -> int:
    return math.ceil(len(text) / 4)


def metered(response: dict[str, Any], faults: Faults) -> dict[str, Any]:
    """The response as the server sends it: without ``usage`` where the faults say so."""
    return response if faults.usage else {**response, "usage": None}


def completion(body: dict[str, Any], answer: Answer, confidence: float) -> dict[str, Any]:
    """A ``chat.completion`` object as OpenAI returns it, with approximate token counts."""
    content = answer[0]
    prompt = sum(_tokens(_text(m.get("content"))) + 4 for m in body["messages"] if isinstance(m, dict))
    choice: dict[str, Any] = {"index": 0, "logprobs": None, "finish_reason": "stop"}
    choice["message"] = {"role": "assistant", "content": content, "refusal": None}
    if body.get("logprobs"):
        tokens = logprobs(answer, confidence, int(body.get("top_logprobs") or 0))
        choice["logprobs"] = {"content": tokens, "refusal": None}
    usage = {"prompt_tokens": prompt, "completion_tokens": _tokens(content)}
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model", MODEL),
        "choices": [choice],
        "usage": {**usage, "total_tokens": prompt + _tokens(content)},
        "system_fingerprint": "fp_scalecode_fake",
    }


def request_key(body: object) -> str:
    """The identity of a request: retries of the same body share it, so fault counts apply to them."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def decide_fault(text: str, faults: Faults, key: str, attempt: int, *, transport: bool = True) -> str | None:
    """The fault for this attempt: a marker wins (``[[fault:429*2]]`` fails the first 2 attempts,
    then never), else a draw hashed from (seed, key, attempt) against the cumulative rates."""
    if mark := _FAULT_MARK.search(text):
        kind, count = mark.group(1), mark.group(2)
        active = count is None or attempt < int(count)
        return kind if active and (transport or kind not in TRANSPORT_FAULTS) else None
    digest = hashlib.sha256(f"{faults.seed}:{key}:{attempt}".encode()).digest()
    u, edge = int.from_bytes(digest[:8], "big") / 2**64, 0.0
    for kind in RANDOM_FAULTS:
        if transport or kind not in TRANSPORT_FAULTS:
            edge += getattr(faults, f"rate_{kind}")
            if u < edge:
                return kind
    return None


def refusal(body: object, faults: Faults) -> str | None:
    """Why a chat request is refused with 400, as OpenAI would refuse it; None if it is acceptable."""
    if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
        return "'messages' is a required property"
    if body.get("stream"):
        return "the fake server does not stream"
    fmt = body.get("response_format")
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema" and not faults.schema_support:
        return "Invalid parameter: 'response_format' of type 'json_schema' is not supported with this model."
    return None


def _json(data: object, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    extra = {"x-request-id": f"req_{uuid.uuid4().hex}", **(headers or {})}
    return web.json_response(data, status=status, headers=extra)


def _error(status: int, message: str, kind: str, code: str | None = None, **headers: str) -> web.Response:
    return _json(
        {"error": {"message": message, "type": kind, "param": param_of(message), "code": code}},
        status,
        headers,
    )


_PARAM = re.compile(r"^(?:Unsupported parameter|Unsupported value|Invalid parameter): '([\w.]+)'")


def param_of(message: str) -> str | None:
    """The request field a refusal names, as OpenAI gives it in ``param``: "Unsupported parameter:
    'max_tokens' ..." names max_tokens."""
    named = _PARAM.match(message)
    return named.group(1) if named else None


def _missing(what: str) -> web.Response:
    return _error(404, f"No such {what}.", "invalid_request_error")


# ---------------------------------------------------------------- the server


class FakeOpenAI:
    """The server: ``with FakeOpenAI(Faults(rate_429=0.1), labels=[...]) as fake: ...fake.base_url``."""

    def __init__(self, faults: Faults | None = None, labels: Sequence[str] = (), *, port: int = 0) -> None:
        self.faults = faults or Faults()
        self.labels = list(labels)
        self.calls: list[Call] = []
        self.base_url = ""
        self._port = port
        self._lock = threading.Lock()  # calls and attempts are read and reset from the test's thread
        self._attempts: dict[str, int] = {}
        self._files: dict[str, tuple[dict[str, Any], bytes]] = {}
        self._batches: dict[str, dict[str, Any]] = {}
        self._batch_started: dict[str, float] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle

    def start(self) -> FakeOpenAI:
        """Bind a loopback port and serve from a background thread; returns once it accepts."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self._port))
        self.base_url = f"http://127.0.0.1:{sock.getsockname()[1]}/v1"
        self._loop = loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=loop.run_forever, name="fake-openai", daemon=True)
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._serve(sock), loop).result(timeout=30)
        return self

    async def _serve(self, sock: socket.socket) -> None:
        app = web.Application(middlewares=[self._record], client_max_size=1 << 30)
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_get("/v1/models", self._models)
        app.router.add_post("/v1/files", self._upload)
        app.router.add_get("/v1/files/{id}", self._file)
        app.router.add_get("/v1/files/{id}/content", self._file)
        app.router.add_post("/v1/batches", self._create_batch)
        app.router.add_get("/v1/batches/{id}", self._batch)
        app.router.add_post("/v1/batches/{id}/cancel", self._cancel_batch)
        # Hung handlers are cancelled when their client gives up, and stop() never waits long for them.
        self._runner = web.AppRunner(app, access_log=None, handler_cancellation=True, shutdown_timeout=0.5)
        await self._runner.setup()
        await web.SockSite(self._runner, sock).start()

    def stop(self) -> None:
        """Stop serving and end the thread; pending hangs are dropped."""
        if self._loop is None or self._thread is None:
            return
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(timeout=30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=30)
        self._loop.close()
        self._loop = self._thread = self._runner = None

    def __enter__(self) -> FakeOpenAI:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- what was seen

    def chat_calls(self) -> list[Call]:
        with self._lock:
            return [c for c in self.calls if c.method == "POST" and c.path == "/v1/chat/completions"]

    def reset(self) -> None:
        """Forget calls and attempt counts, so a test can replay the same requests from scratch."""
        with self._lock:
            self.calls.clear()
            self._attempts.clear()

    @web.middleware
    async def _record(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Record every request on arrival; handlers fill in body, status and fault as they know them."""
        headers = {k.lower(): v for k, v in request.headers.items()}
        request[CALL] = call = Call(request.path, request.method, 0, None, None, headers)
        with self._lock:
            self.calls.append(call)
        sent = headers.get("authorization", "").removeprefix("Bearer ")
        if self.faults.require_key and sent != self.faults.require_key:
            # Naming the key sent, in full, as some gateways do.
            refused = _error(
                401, f"Incorrect API key provided: {sent}.", "invalid_request_error", "invalid_api_key"
            )
            call.status = refused.status
            return refused
        try:
            response = await handler(request)
        except web.HTTPException as exc:  # unknown routes and methods answer as OpenAI does, in JSON
            response = _error(exc.status, exc.reason, "invalid_request_error")
        if call.fault != "hang":
            call.status = response.status
        return response

    # -- chat

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        call, body = request[CALL], await _read_json(request)
        call.body = body if isinstance(body, dict) else None
        if reason := refusal(body, self.faults):
            return _error(400, reason, "invalid_request_error")
        assert isinstance(body, dict)  # refusal() checked it
        faults, key = self.faults, request_key(body)
        with self._lock:
            attempt = self._attempts.get(key, 0)
            self._attempts[key] = attempt + 1
        call.fault = fault = decide_fault(_user_text(body), faults, key, attempt)
        if fault == "hang":
            await asyncio.sleep(faults.hang_s)
            if request.transport is not None:
                request.transport.close()  # no answer at all: the client sees the connection drop
            return web.Response()
        await asyncio.sleep(faults.latency_s)
        if fault == "429":
            wait = {"retry-after": f"{faults.retry_after_s:g}"}
            if faults.retry_after_ms_header:  # OpenAI's own, read before Retry-After by its client
                wait["retry-after-ms"] = f"{faults.retry_after_s * 1e3:g}"
            return _error(429, "Rate limit reached (fake).", "requests", "rate_limit_exceeded", **wait)
        if fault == "quota":  # as OpenAI answers an account out of credit: a 429, without Retry-After
            message = "You exceeded your current quota, please check your plan and billing details."
            return _error(429, message, "insufficient_quota", "insufficient_quota")
        if fault == "401":  # naming the key sent, in full, as some gateways do
            sent = call.headers.get("authorization", "").removeprefix("Bearer ")
            message = f"Incorrect API key provided: {sent}."
            return _error(401, message, "invalid_request_error", "invalid_api_key")
        if fault == "403":  # as OpenRouter answers an input its moderation flags: about this document
            return _error(403, "Your input was flagged by moderation (fake).", "moderation", "flagged")
        if fault == "500":
            return _error(500, "The server had an error while processing your request.", "server_error")
        if fault == "malformed":
            return web.Response(text='{"id": "chatcmpl-', content_type="application/json")
        return _json(
            metered(completion(body, answer_text(body, self.labels, fault), faults.confidence), faults)
        )

    async def _models(self, request: web.Request) -> web.StreamResponse:
        model = {"id": MODEL, "object": "model", "created": 0, "owned_by": "scalecode"}
        return _json({"object": "list", "data": [model]})

    # -- files

    def _add_file(self, data: bytes, filename: str, purpose: str) -> str:
        file_id = f"file-{uuid.uuid4().hex}"
        meta = {"id": file_id, "object": "file", "bytes": len(data), "created_at": int(time.time())}
        meta.update(filename=filename, purpose=purpose, status="processed")
        self._files[file_id] = (meta, data)
        return file_id

    async def _upload(self, request: web.Request) -> web.StreamResponse:
        form = await request.post()
        upload, purpose = form.get("file"), form.get("purpose")
        if not isinstance(upload, web.FileField) or not isinstance(purpose, str):
            return _error(400, "'file' and 'purpose' are required.", "invalid_request_error")
        request[CALL].body = {"purpose": purpose, "filename": upload.filename}
        return _json(self._files[self._add_file(upload.file.read(), upload.filename, purpose)][0])

    async def _file(self, request: web.Request) -> web.StreamResponse:
        """A file's metadata, or at .../content its bytes."""
        found = self._files.get(request.match_info["id"])
        if not found:
            return _missing("File object")
        if request.path.endswith("/content"):
            return web.Response(body=found[1], content_type="application/octet-stream")
        return _json(found[0])

    # -- batches

    async def _create_batch(self, request: web.Request) -> web.StreamResponse:
        body = await _read_json(request)
        if not isinstance(body, dict) or body.get("input_file_id") not in self._files:
            return _missing("File object")
        request[CALL].body = body
        if body.get("endpoint") != "/v1/chat/completions":
            return _error(400, "Only /v1/chat/completions is supported.", "invalid_request_error")
        now, batch_id = int(time.time()), f"batch_{uuid.uuid4().hex}"
        batch = {"id": batch_id, "object": "batch", "status": "validating", "created_at": now}
        batch.update({key: body.get(key) for key in ("endpoint", "input_file_id", "completion_window")})
        batch.update(metadata=body.get("metadata"), expires_at=now + 86400)
        batch.update(output_file_id=None, error_file_id=None, request_counts=_counts(0, 0))
        self._batches[batch_id] = batch
        self._batch_started[batch_id] = time.monotonic()
        return _json(batch)

    async def _batch(self, request: web.Request) -> web.StreamResponse:
        batch = self._batches.get(request.match_info["id"])
        return _json(self._advance(batch)) if batch else _missing("Batch")

    async def _cancel_batch(self, request: web.Request) -> web.StreamResponse:
        batch = self._batches.get(request.match_info["id"])
        if not batch:
            return _missing("Batch")
        if batch["status"] in ("validating", "in_progress"):  # cancelling now, cancelled on the next look
            batch.update(status="cancelling", cancelling_at=int(time.time()))
        return _json(batch)

    def _advance(self, batch: dict[str, Any]) -> dict[str, Any]:
        """Move a batch along lazily, when someone looks: the fake has no background workers."""
        now = int(time.time())
        if batch["status"] == "cancelling":
            batch.update(status="cancelled", cancelled_at=now)
        elif batch["status"] == "validating" and self.faults.batch_failure:
            error = {"code": "token_limit_exceeded", "message": self.faults.batch_failure, "param": None}
            batch.update(status="failed", failed_at=now, errors={"object": "list", "data": [error]})
        elif batch["status"] in ("validating", "in_progress"):
            batch.update(status="in_progress", in_progress_at=batch.get("in_progress_at") or now)
            if time.monotonic() - self._batch_started[batch["id"]] >= self.faults.batch_delay_s:
                self._run_batch(batch)
        return batch

    def _run_batch(self, batch: dict[str, Any]) -> None:
        """Answer every line with the chat rule, minus latency and transport faults. Refused lines go
        to the error file, as OpenAI puts every non-200 response there."""
        done: dict[bool, list[str]] = {True: [], False: []}
        for line in filter(str.strip, self._files[batch["input_file_id"]][1].decode("utf-8").splitlines()):
            item = _loads(line)
            item = item if isinstance(item, dict) else {}
            body, answer = item.get("body"), None
            if reason := refusal(body, self.faults):
                error = {
                    "message": reason,
                    "type": "invalid_request_error",
                    "param": param_of(reason),
                    "code": None,
                }
                answer = {"error": error}
            elif isinstance(body, dict):
                fault = decide_fault(_user_text(body), self.faults, request_key(body), 0, transport=False)
                answer = completion(body, answer_text(body, self.labels, fault), self.faults.confidence)
                answer = metered(answer, self.faults)
            response = {"status_code": 400 if reason else 200, "request_id": uuid.uuid4().hex, "body": answer}
            record = {"id": f"batch_req_{uuid.uuid4().hex}", "custom_id": item.get("custom_id")}
            done[not reason].append(json.dumps({**record, "response": response, "error": None}) + "\n")
        name, now, (ok, failed) = batch["id"], int(time.time()), (done[True], done[False])
        output = self._add_file("".join(ok).encode(), f"{name}_output.jsonl", "batch_output")
        errors = self._add_file("".join(failed).encode(), f"{name}_error.jsonl", "batch_output")
        batch.update(status="completed", finalizing_at=now, completed_at=now, output_file_id=output)
        batch.update(error_file_id=errors if failed else None, request_counts=_counts(len(ok), len(failed)))


def _counts(completed: int, failed: int) -> dict[str, int]:
    return {"total": completed + failed, "completed": completed, "failed": failed}


def _loads(text: str | bytes) -> object:
    """JSON, or None where it is not JSON (the caller answers that as a bad request)."""
    try:
        return json.loads(text)
    except ValueError:
        return None


async def _read_json(request: web.Request) -> object:
    return _loads(await request.read())


# ---------------------------------------------------------------- command line


def main(argv: Sequence[str] | None = None) -> None:
    """Serve until Ctrl-C, for benchmarks and manual poking: one flag per :class:`Faults` field, named
    without its ``_s`` unit (``--latency 0.2 --rate-429 0.1 --no-schema-support``)."""
    parser = argparse.ArgumentParser(description="A fake OpenAI-compatible server with injectable faults.")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--labels", default="", help="comma-separated codebook used when a request has none")
    for f in dataclasses.fields(Faults):
        flag, default = "--" + f.name.removesuffix("_s").replace("_", "-"), getattr(Faults(), f.name)
        if isinstance(default, bool):
            parser.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction, default=default)
        else:
            parser.add_argument(flag, dest=f.name, type=type(default), default=default)
    args = parser.parse_args(argv)
    faults = Faults(**{f.name: getattr(args, f.name) for f in dataclasses.fields(Faults)})
    labels = [x.strip() for x in args.labels.split(",") if x.strip()]
    with FakeOpenAI(faults, labels, port=args.port) as fake:
        print(fake.base_url, flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()


if __name__ == "__main__":
    main()

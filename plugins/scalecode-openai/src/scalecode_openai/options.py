"""The options of the `openai` backend, as written under ``params:`` in a job file.

The API key is never written in a job file: ``api_key: {"$env": "VARIABLE"}`` names the environment
variable it is read from on the worker that sends the requests. Without it, OpenAI itself (no
``base_url``, or ``https://api.openai.com``) gets the key in ``OPENAI_API_KEY``, and any other
``base_url`` (a vLLM node, a gateway, a plain-http URL) gets no key at all, never the OpenAI one. It is
held as a pydantic ``SecretStr``, so it prints as ``**********`` and appears in no manifest, cache
or log; it is not part of any request body, so not of the cache either.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, model_validator

from scalecode import BackendParams, operational

StructuredOutput = Literal["auto", "json_schema", "json_object", "none"]


class Price(BackendParams):
    """US dollars per million tokens, as providers list them."""

    input: float = Field(ge=0)
    output: float = Field(ge=0)
    cached_input: float | None = Field(None, ge=0)
    batch_discount: float = Field(0.5, gt=0, le=1, description="factor on Batch API prices")


class OpenAIParams(BackendParams):
    model: str = Field(description="the model name the server knows (gpt-4o-mini, llama3.1:8b, ...)")
    base_url: str | None = Field(
        None, description="an OpenAI-compatible endpoint (vLLM, Ollama, a gateway); default OpenAI's"
    )
    api_key: SecretStr | None = operational(
        None,
        description='{"$env": "VARIABLE"}: the environment variable holding the key. Without it, '
        "OPENAI_API_KEY is sent to OpenAI itself (no base_url, or https://api.openai.com) and no key "
        "to any other base_url",
    )

    # What determines the answer: sent as configured, and part of every cache key.
    temperature: float = Field(0.0, ge=0, le=2)
    seed: int | None = Field(2024, description="sent to servers that honour it; null to leave it out")
    max_tokens: int = Field(256, ge=1, description="the most tokens an answer may have")
    few_shot: int | None = Field(
        None, ge=0, description="codebook examples shown before the documents (default all)"
    )
    structured_output: StructuredOutput = Field(
        "auto",
        description="json_schema (label field an enum of the codebook), json_object, or none; "
        "auto tries them in that order and keeps the first the server accepts",
    )
    logprobs: bool = Field(True, description="ask for log-probabilities and turn them into a confidence")
    docs_per_request: int = Field(1, ge=1, le=100, description="documents coded in one request")
    extra_body: dict[str, object] = Field(
        default_factory=dict, description="extra request fields a server needs (also in the cache key)"
    )

    # Throughput and failure handling.
    concurrency: int = operational(16, ge=1, le=4096, description="requests in flight at once")
    requests_per_minute: float | None = operational(None, gt=0)
    tokens_per_minute: float | None = operational(None, gt=0)
    timeout_s: float = operational(60.0, gt=0, description="per request; a hung request is retried")
    max_retries: int = operational(
        8, ge=0, description="on 429, 5xx, timeouts and dropped connections, with backoff and jitter"
    )
    max_retry_after_s: float = operational(
        600.0,
        ge=0,
        description="the longest wait a server's Retry-After may ask for: waited out, then asked again "
        "(up to max_retries times); a longer one (a daily quota) stops the run",
    )
    batch_size: int | None = operational(
        None,
        ge=1,
        description="documents per predict_batch call (default 8 x concurrency x docs_per_request)",
    )

    # Cost and the response cache.
    price: Price | None = operational(None, description="US dollars per million tokens; none: cost unknown")
    budget_usd: float | None = operational(
        None,
        gt=0,
        description="stop the run cleanly once its new requests have cost this much: one "
        "`scalecode run`, all its stages together (gold test, retries, corpus); the next run of the "
        "same job, which resumes it, may spend as much again",
    )
    cache: str | Literal[False] | None = operational(
        None,
        description="SQLite file of every answer (default: in the run directory); false turns it off",
    )

    # The Batch API: half the price, answers within 24 hours.
    mode: Literal["online", "batch"] = operational("online")
    batch_poll_s: float = operational(30.0, gt=0, description="seconds between checks on a submitted batch")
    batch_max_requests: int = operational(50_000, ge=1, le=50_000)

    @model_validator(mode="after")
    def _check(self) -> OpenAIParams:
        if self.budget_usd is not None and self.price is None:
            raise ValueError(
                "budget_usd needs a price: {input: ..., output: ...} in dollars per million tokens"
            )
        if self.mode == "batch" and self.cache is False:
            raise ValueError("mode batch reads the batch's answers through the cache: cache cannot be false")
        if self.mode == "batch" and self.structured_output == "auto":
            # A batch cannot fall back request by request; it uses what the user names, or json_schema.
            self.structured_output = "json_schema"
        return self

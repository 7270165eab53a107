"""Tokens and dollars: what a request cost (from the server's usage), and what it will cost (estimated).

Prices change and differ between providers, so scalecode ships none: a job that wants costs gives
``price: {input: ..., output: ...}`` in US dollars per million tokens, as providers list them. Without
a price the tokens are still counted and the cost is reported as unknown.

Before a run (``scalecode plan``) tokens are estimated at four characters per token, plus a few per
message for the chat format: close for English prose with OpenAI's tokenizers, and an estimate, not
a bill, elsewhere. During a run the server's own ``usage`` counts are used.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from scalecode.errors import StopRun
from scalecode_openai.options import Price

CHARS_PER_TOKEN = 4.0
TOKENS_PER_MESSAGE = 4


def estimate_tokens(messages: Sequence[dict[str, Any]]) -> int:
    chars = sum(len(str(m.get("content", ""))) for m in messages)
    return math.ceil(chars / CHARS_PER_TOKEN) + TOKENS_PER_MESSAGE * len(messages) + 3


def cost_usd(price: Price | None, usage: dict[str, Any] | None, *, batch: bool = False) -> float | None:
    """Dollars for one answered request from its ``usage``; None without a price or usage."""
    if price is None or not usage:
        return None
    prompt = int(usage.get("prompt_tokens") or 0)
    completion = int(usage.get("completion_tokens") or 0)
    cached = int((usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0)
    cached_price = price.input if price.cached_input is None else price.cached_input
    dollars = ((prompt - cached) * price.input + cached * cached_price + completion * price.output) / 1e6
    return dollars * (price.batch_discount if batch else 1.0)


class Budget:
    """The dollars this run may spend on new requests; answers from the cache are free.

    ``reserve`` is called before a request is sent and raises StopRun once the spending has reached
    the cap; requests already in flight still finish, so a run overshoots by at most what
    ``concurrency`` requests cost.
    """

    def __init__(self, limit_usd: float | None, model: str) -> None:
        self.limit = limit_usd
        self.model = model
        self.spent = 0.0

    def reserve(self) -> None:
        if self.limit is not None and self.spent >= self.limit:
            raise StopRun(
                f"{self.model}: budget of ${self.limit:.2f} reached (${self.spent:.4f} spent on "
                "new requests in this run). What was answered is cached: run the same command again, "
                "with a larger budget_usd, and it resumes without paying twice."
            )

    def spend(self, dollars: float | None) -> None:
        if dollars:
            self.spent += dollars

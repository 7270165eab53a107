"""Tokens and dollars: what a request cost (from the server's usage), and what it will cost (estimated).

Prices change and differ between providers, so scalecode ships none: a job that wants costs gives
``price: {input: ..., output: ...}`` in US dollars per million tokens, as providers list them. Without
a price the tokens are still counted and the cost is reported as unknown.

Before a run (``scalecode plan``) tokens are estimated at four characters per token, plus a few per
message for the chat format: close for English prose with OpenAI's tokenizers, and an estimate, not
a bill, elsewhere. During a run the server's own ``usage`` counts are used; a server that reports
none is charged to the budget at estimated counts (:func:`budget_charge`).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import sys
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

try:
    import fcntl
except ImportError:  # Windows: a single replica writes the ledger anyway
    fcntl = None  # type: ignore[assignment]

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


def budget_charge(
    price: Price | None, request: dict[str, Any], response: dict[str, Any], *, batch: bool = False
) -> float | None:
    """What an answered request counts against the budget: its cost from ``usage``, or, where the
    server reports no usage or only zeros (some OpenAI-compatible servers), its cost at estimated token
    counts, so that ``budget_usd`` still binds. Only the budget sees the estimate; the request's
    reported cost stays unknown."""
    usage = response.get("usage") or {}
    if (usage.get("prompt_tokens") or 0) + (usage.get("completion_tokens") or 0) > 0:
        return cost_usd(price, usage, batch=batch)
    choice = (response.get("choices") or [{}])[0]
    content = str((choice.get("message") or {}).get("content") or "")
    estimate = {
        "prompt_tokens": estimate_tokens(request.get("messages") or []),
        "completion_tokens": math.ceil(len(content) / CHARS_PER_TOKEN),
    }
    return cost_usd(price, estimate, batch=batch)


def run_id() -> str:
    """Which run of the job this process works for: the Ray job (one per ``scalecode run``, on a
    cluster of its own or a shared one) inside Ray, else this process."""
    ray = sys.modules.get("ray")  # imported by the worker that runs us, never by us
    if ray is not None and ray.is_initialized():
        with contextlib.suppress(Exception):
            context = ray.get_runtime_context()
            return f"ray:{context.get_session_name()}:{context.get_job_id()}"
    return f"process:{_PROCESS}"


_PROCESS = uuid.uuid4().hex


class Budget:
    """The dollars this run may spend on new requests; answers from the cache are free.

    ``reserve`` is called before a request is sent and raises StopRun once the spending has reached
    the cap; requests already in flight still finish, so a run overshoots by at most what
    ``concurrency`` requests cost.

    The run is one ``scalecode run``: the core loads the backend anew for the gold test set, the
    gold retry and the corpus (and Ray restarts replicas), so with a ``ledger`` (a file in the
    backend's work_dir, which is the run directory's) the spending of every load of this run adds
    up there, under :func:`run_id`. The next ``scalecode run`` of the same job, which resumes it,
    starts from zero again, as the stop message says. Without a ledger (outside a run) the budget is
    this load's.
    """

    def __init__(self, limit_usd: float | None, model: str, ledger: Path | None = None) -> None:
        self.limit = limit_usd
        self.model = model
        self.ledger = ledger if limit_usd is not None else None  # nothing to share without a cap
        self.run = run_id()
        self.spent = 0.0
        self._refresh()

    def reserve(self) -> None:
        self._refresh()  # another replica of this run may have spent since
        if self.limit is not None and self.spent >= self.limit:
            raise StopRun(
                f"{self.model}: budget of ${self.limit:.2f} reached (${self.spent:.4f} spent on "
                "new requests in this run). What was answered is cached: run the same command again, "
                "with a larger budget_usd, and it resumes without paying twice."
            )

    def spend(self, dollars: float | None) -> None:
        if not dollars:
            return
        if self.ledger is None:
            self.spent += dollars
            return
        with self._locked() as runs:
            runs[self.run] = self.spent = float(runs.get(self.run, 0.0)) + dollars

    def _refresh(self) -> None:
        if self.ledger is not None and self.ledger.exists():
            self.spent = float(_read(self.ledger).get(self.run, 0.0))

    @contextlib.contextmanager
    def _locked(self) -> Iterator[dict[str, float]]:
        """The ledger's runs, to change, held under a lock; written back (atomically) on leaving."""
        assert self.ledger is not None
        self.ledger.parent.mkdir(parents=True, exist_ok=True)
        with open(self.ledger.with_suffix(".lock"), "a") as lock:
            if fcntl is not None:
                fcntl.flock(lock, fcntl.LOCK_EX)
            runs = _read(self.ledger) if self.ledger.exists() else {}
            yield runs
            runs = dict(list(runs.items())[-LEDGER_RUNS:])  # the latest runs are enough
            partial = self.ledger.with_suffix(".partial")
            partial.write_text(json.dumps(runs, indent=1))
            os.replace(partial, self.ledger)


LEDGER_RUNS = 20


def _read(ledger: Path) -> dict[str, float]:
    try:
        data = json.loads(ledger.read_text())
    except (OSError, ValueError):
        return {}
    return {str(k): float(v) for k, v in data.items()} if isinstance(data, dict) else {}

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
import math
import os
import re
import sys
import uuid
from collections.abc import Sequence
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
    """Dollars for one answered request from its ``usage``; None without a price or usage, or where
    the usage lacks a count or counts nothing (some OpenAI-compatible servers send zeros): unknown,
    not free."""
    if price is None or not usage:
        return None
    try:
        prompt = int(usage["prompt_tokens"])
        completion = int(usage["completion_tokens"])
    except (KeyError, TypeError, ValueError):
        return None
    if prompt + completion <= 0:
        return None
    cached = int((usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0)
    cached_price = price.input if price.cached_input is None else price.cached_input
    dollars = ((prompt - cached) * price.input + cached * cached_price + completion * price.output) / 1e6
    return dollars * (price.batch_discount if batch else 1.0)


def budget_charge(
    price: Price | None, request: dict[str, Any], response: dict[str, Any], *, batch: bool = False
) -> float | None:
    """What an answered request counts against the budget: its cost from ``usage``, or, where the
    server reports no usage, only zeros or not both counts (some OpenAI-compatible servers), its cost
    at estimated token counts, so that ``budget_usd`` still binds. Only the budget sees the estimate;
    the request's reported cost stays unknown."""
    if price is None:
        return None
    reported = cost_usd(price, response.get("usage"), batch=batch)
    if reported is not None:
        return reported
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
    gold retry and the corpus (and Ray restarts replicas), so with a ``ledger`` (a folder in the
    backend's work_dir, which is the run directory's) the spending of every load of this run adds
    up there, under :func:`run_id` (see :class:`Ledger`). The next ``scalecode run`` of the same job,
    which resumes it, starts from zero again, as the stop message says. Without a ledger (outside a
    run) the budget is this load's.
    """

    def __init__(self, limit_usd: float | None, model: str, ledger: Path | None = None) -> None:
        self.limit = limit_usd
        self.model = model
        self.run = run_id()
        # Nothing to share without a cap.
        self.ledger = Ledger(ledger, self.run) if ledger is not None and limit_usd is not None else None
        self.spent = 0.0
        self._refresh()

    def reserve(self) -> None:
        self._refresh()  # another load of this run may have spent since
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
        self.ledger.add(dollars)
        self.spent = self.ledger.total()

    def _refresh(self) -> None:
        if self.ledger is not None:
            self.spent = self.ledger.total()


class Ledger:
    """What one run has spent, as every load of the run sees it: a file of the run's charges in
    ``folder``, one line of dollars each, appended; its total is the run's spending.

    What it must keep is every charge through a kill: Ray restarts a killed replica and the core loads
    the backend again for each stage, and each load must start from what the run already spent. A
    charge is one ``write`` to the file opened for appending: once it returns the line is the file's,
    whatever happens to the process. (As before, nothing is fsynced: a power cut, unlike a kill, may
    lose the last lines.) Rewriting the whole ledger per charge, as a JSON file renamed over the old
    one, cost 0.3 to 1.7 ms on ext4, which starts writing out a file renamed over another: several
    percent of a request to a server on loopback, on the event loop that sends them all. An append
    and a look cost some tens of microseconds: a look reads only the lines added since the last.

    One file per run, never rewritten, so a reader's count of the bytes it has read stays valid; the
    files of all but the latest ``LEDGER_RUNS`` runs are removed when a run opens its ledger.
    """

    def __init__(self, folder: Path, run: str) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / (re.sub(r"[^\w.-]", "_", run) + LEDGER_SUFFIX)
        self._spent = 0.0  # the dollars of the lines read so far
        self._read = 0  # the bytes of those lines
        _forget_old_runs(folder, keep=self.path)

    def add(self, dollars: float) -> None:
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            if fcntl is not None:  # O_APPEND alone does not keep two writers apart on NFS; the lock does
                fcntl.flock(fd, fcntl.LOCK_EX)
            os.write(fd, f"{dollars!r}\n".encode())  # one write: a kill leaves the whole line or none
        finally:
            os.close(fd)  # releases the lock

    def total(self) -> float:
        """The run's spending: what the lines read before said, plus the lines added since."""
        try:
            size = os.stat(self.path).st_size
        except FileNotFoundError:
            return self._spent
        if size > self._read:
            with open(self.path, "rb") as file:
                file.seek(self._read)
                added = file.read(size - self._read)
            whole = added[: added.rfind(b"\n") + 1]  # a line still being written is read next time
            self._spent += sum(_dollars(line) for line in whole.splitlines())
            self._read += len(whole)
        return self._spent


LEDGER_RUNS = 20
LEDGER_SUFFIX = ".spent"


def _forget_old_runs(folder: Path, keep: Path) -> None:
    """Remove the ledgers of all but the latest runs (by their last charge), never ``keep``, the
    opening run's: a budget counts only its own run's."""
    ledgers = sorted(folder.glob("*" + LEDGER_SUFFIX), key=_last_change, reverse=True)
    for old in ledgers[LEDGER_RUNS:]:
        if old != keep:
            with contextlib.suppress(OSError):  # another load removed it first
                old.unlink()


def _last_change(path: Path) -> int:
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return 0


def _dollars(line: bytes) -> float:
    try:
        return float(line)
    except ValueError:  # a line cut short by a power cut, then appended to: its charge is lost
        return 0.0

"""The response cache: every answered request, keyed by everything that determines its answer.

A request's key is the SHA-256 of its canonical JSON: the endpoint, the model, the messages and every
parameter sent (temperature, seed, response format, log-probabilities, extra fields). Re-running a job
therefore sends no request it has sent before, and the cache doubles as the audit log of the run:
each row keeps the request (never the API key, which is not part of it), the full response, tokens,
cost, latency and when it was made. Failed attempts are logged in a second table.

SQLite in WAL mode lets several processes share one cache file on a local disk; ``synchronous=NORMAL``
keeps a commit per answer cheap (no fsync each) at the price, on a power cut, of the last answers,
which the next run simply asks again.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS responses (
    key TEXT PRIMARY KEY,
    request TEXT NOT NULL,
    response TEXT NOT NULL,
    input_tokens INTEGER,
    output_tokens INTEGER,
    cost_usd REAL,
    latency_s REAL,
    via TEXT NOT NULL,  -- 'online' or the id of the batch that answered it
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS failures (
    key TEXT NOT NULL,
    error TEXT NOT NULL,
    created REAL NOT NULL
);
"""


def request_key(request: dict[str, Any]) -> str:
    """SHA-256 of the request's canonical JSON (sorted keys, no whitespace)."""
    canonical = json.dumps(request, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


class ResponseCache:
    """A SQLite file of answered requests; ``path=None`` keeps nothing (every request is sent)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._db: sqlite3.Connection | None = None
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(path, timeout=60, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(SCHEMA)

    def get(self, key: str) -> dict[str, Any] | None:
        if self._db is None:
            return None
        row = self._db.execute("SELECT response FROM responses WHERE key = ?", (key,)).fetchone()
        return None if row is None else dict(json.loads(row[0]))

    def known(self, keys: Iterable[str]) -> set[str]:
        """Which of ``keys`` have an answer."""
        if self._db is None:
            return set()
        keys = list(keys)
        found: set[str] = set()
        for start in range(0, len(keys), 500):  # SQLite's limit on bound parameters
            chunk = keys[start : start + 500]
            marks = ",".join("?" * len(chunk))
            found.update(
                r[0] for r in self._db.execute(f"SELECT key FROM responses WHERE key IN ({marks})", chunk)
            )
        return found

    def put(
        self,
        key: str,
        request: dict[str, Any],
        response: dict[str, Any],
        *,
        input_tokens: int | None,
        output_tokens: int | None,
        cost_usd: float | None,
        latency_s: float | None,
        via: str = "online",
    ) -> None:
        if self._db is None:
            return
        self._db.execute(
            "INSERT OR IGNORE INTO responses VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                key,
                json.dumps(request, ensure_ascii=False),
                json.dumps(response, ensure_ascii=False),
                input_tokens,
                output_tokens,
                cost_usd,
                latency_s,
                via,
                time.time(),
            ),
        )

    def failed(self, key: str, error: str) -> None:
        if self._db is not None:
            self._db.execute("INSERT INTO failures VALUES (?, ?, ?)", (key, error, time.time()))

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

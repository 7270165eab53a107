"""What each replica is coding, kept outside the replicas, so that a batch that kills them can be named.

A document that kills the process coding it (it exhausts memory, or crashes native code) leaves no
exception and no trace in the process: Ray replaces the replica, sends the batch again, and at last
fails the run with a bare "actor died". The replicas therefore tell a small actor of their own, which
holds no CPU, which batch they start and which they finish. A batch started more often than it was
finished was being coded when a replica died; the one started most often is the one that kept killing
them, and the run's error names its documents (their ids, and for a corpus their file and rows).

Telling it costs one round trip per batch (a millisecond beside a batch of hundreds of documents).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from scalecode.sources import ID, PATH, ROW

NAMED_IDS = 10  # ids a message lists; a larger batch is named by its first and last


@dataclass(frozen=True)
class BatchSummary:
    """Where a batch's documents are: enough to find them, small enough to send per batch."""

    documents: int
    ids: tuple[str, ...]  # up to NAMED_IDS, first to last
    last_id: str
    path: str | None = None  # corpus file, where the batch comes from one
    first_row: int | None = None
    last_row: int | None = None

    @classmethod
    def of(cls, batch: pa.Table) -> BatchSummary:
        ids = [str(i) for i in batch.column(ID).to_pylist()]
        path = first_row = last_row = None
        if PATH in batch.column_names and ROW in batch.column_names:
            paths = pc.unique(batch.column(PATH)).to_pylist()
            path = paths[0] if len(paths) == 1 else f"{len(paths)} files"
            first_row, last_row = (int(v.as_py()) for v in pc.min_max(batch.column(ROW)).values())
        return cls(len(ids), tuple(ids[:NAMED_IDS]), ids[-1] if ids else "", path, first_row, last_row)

    @property
    def key(self) -> tuple[Any, ...]:
        return (self.documents, self.ids, self.last_id, self.path, self.first_row, self.last_row)

    def describe(self) -> str:
        """``3 documents (ids '4', '5', '6'; rows 4 to 6 of c.csv)``, rows counted from 0."""
        if self.documents <= len(self.ids):
            ids = ", ".join(repr(i) for i in self.ids)
        else:
            ids = f"{self.ids[0]!r} to {self.last_id!r}"
        where = f"; rows {self.first_row} to {self.last_row} of {self.path}" if self.path is not None else ""
        return f"{self.documents} document{'s' if self.documents != 1 else ''} (ids {ids}{where})"


class InFlight:
    """Ray actor: the batches replicas have started and not finished, with how many times."""

    def __init__(self) -> None:
        self.open: dict[tuple[Any, ...], tuple[BatchSummary, int]] = {}

    def start(self, summary: BatchSummary) -> None:
        _, times = self.open.get(summary.key, (summary, 0))
        self.open[summary.key] = (summary, times + 1)

    def finish(self, summary: BatchSummary) -> None:
        entry = self.open.get(summary.key)
        if entry is None:
            return
        if entry[1] <= 1:
            del self.open[summary.key]
        else:
            self.open[summary.key] = (entry[0], entry[1] - 1)

    def suspects(self) -> tuple[list[BatchSummary], int]:
        """The batches left unfinished most often, and how often. Once each is no evidence: a
        replica that was coding an innocent batch when the run failed has left it so too."""
        if not self.open:
            return [], 0
        most = max(times for _, times in self.open.values())
        return [summary for summary, times in self.open.values() if times == most], most


def start_in_flight() -> Any:
    """A handle to a new ``InFlight`` actor, holding no CPU (on a 2-CPU machine every CPU is taken)."""
    import ray

    return ray.remote(num_cpus=0)(InFlight).remote()


def suspects_message(in_flight: Any) -> str:
    """What the error of a run whose replicas kept dying says about the documents that killed them."""
    import ray

    try:
        batches, times = ray.get(in_flight.suspects.remote(), timeout=30)
    except Exception:  # the run's own error matters more than this addition to it
        return ""
    if not batches:
        return ""
    listed = "; ".join(b.describe() for b in batches)
    if times == 1:
        return f" Replicas were coding, when the run stopped: {listed}."
    return (
        f" The replicas died {times} times coding {listed}: one of these documents kills the process "
        "coding it. Remove it from the corpus, or code it apart, to code the rest."
    )

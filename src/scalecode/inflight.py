"""What each replica is coding, kept outside the replicas, so that a batch that kills them can be named.

A document that kills the process coding it (it exhausts memory, or crashes native code) leaves no
exception and no trace in the process: Ray replaces the replica, sends the batch again, and at last
fails the run with a bare "actor died". The replicas therefore tell a small actor of their own, which
holds no CPU, which batch they start and which they finish. A batch started more often than it was
finished was being coded when a replica died; the one started most often is the one that kept killing
them, and the run's error names its documents (their ids, and for a corpus their files and rows).
Should this actor itself die, the replicas code on without it.

Telling it costs one round trip per batch (a millisecond beside a batch of hundreds of documents).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from scalecode.sources import ID, PATH, ROW

NAMED_IDS = 10  # ids a message lists; a larger batch is named by its first and last


@dataclass(frozen=True)
class BatchSummary:
    """Where a batch's documents are: enough to find them, small enough to send per batch."""

    documents: int
    ids: tuple[str, ...]  # up to NAMED_IDS, first to last
    last_id: str
    # (corpus file, first row, last row) for each file the batch holds rows of, rows counted from 1
    # as in every other message about a file's rows.
    places: tuple[tuple[str, int, int], ...] = ()

    @classmethod
    def of(cls, batch: pa.Table) -> BatchSummary:
        ids = [str(i) for i in batch.column(ID).to_pylist()]
        places: tuple[tuple[str, int, int], ...] = ()
        if len(batch) and PATH in batch.column_names and ROW in batch.column_names:
            spans = batch.select([PATH, ROW]).group_by(PATH).aggregate([(ROW, "min"), (ROW, "max")])
            # Sorted: a threaded group_by gives its groups in no fixed order, and the summary is the
            # key under which a batch's start and finish must meet, retry after retry.
            places = tuple(
                sorted(
                    (str(path), int(first) + 1, int(last) + 1)
                    for path, first, last in zip(
                        spans.column(PATH).to_pylist(),
                        spans.column(f"{ROW}_min").to_pylist(),
                        spans.column(f"{ROW}_max").to_pylist(),
                        strict=True,
                    )
                )
            )
        return cls(len(ids), tuple(ids[:NAMED_IDS]), ids[-1] if ids else "", places)

    def describe(self) -> str:
        """``3 documents (ids '4', '5', '6'; rows 5 to 7 of c.csv)``."""
        if self.documents <= len(self.ids):
            ids = ", ".join(repr(i) for i in self.ids)
        else:
            ids = f"{self.ids[0]!r} to {self.last_id!r}"
        where = "".join(f"; rows {first} to {last} of {path}" for path, first, last in self.places)
        plural = "s" if self.documents != 1 else ""
        return f"{self.documents} document{plural} (ids {ids}{where})"


class InFlight:
    """Ray actor: the batches replicas have started and not finished, with how many times."""

    def __init__(self) -> None:
        self.open: dict[BatchSummary, int] = {}  # batch -> starts less finishes

    def start(self, summary: BatchSummary) -> None:
        self.open[summary] = self.open.get(summary, 0) + 1

    def finish(self, summary: BatchSummary) -> None:
        left = self.open.pop(summary, 0) - 1
        if left > 0:
            self.open[summary] = left

    def suspects(self) -> tuple[list[BatchSummary], int]:
        """The batches left unfinished most often, and how often. Once each is no evidence: a
        replica that was coding an innocent batch when the run failed has left it so too."""
        if not self.open:
            return [], 0
        most = max(self.open.values())
        return [summary for summary, times in self.open.items() if times == most], most


def start_in_flight() -> Any:
    """A handle to a new ``InFlight`` actor: it holds no CPU (on a 2-CPU machine every CPU is taken),
    and lives beside the driver, on a node that stays as long as the run, not one the autoscaler
    may take away."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    here = NodeAffinitySchedulingStrategy(node_id=ray.get_runtime_context().get_node_id(), soft=True)
    return ray.remote(num_cpus=0, scheduling_strategy=here)(InFlight).remote()


def tell(in_flight: Any, method: str, summary: BatchSummary, *, wait: bool) -> Any:
    """Tell the ``InFlight`` actor of a batch; the actor, not the run, is given up if that fails:
    it serves only to name documents in an error. Returns the handle, or None once given up."""
    import ray

    try:
        sent = getattr(in_flight, method).remote(summary)
        if wait:
            ray.get(sent, timeout=60)
    except Exception:  # its process died or is unreachable: code on without it
        return None
    return in_flight


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
        return f" Batches started once more than they were finished when the run stopped: {listed}."
    return (
        f" The replicas died {times} times coding {listed}: one of these documents kills the process "
        "coding it, or the batch as a whole does (too many long texts for the memory: lower the "
        "backend's batch_size). Remove that document, or code it apart, to code the rest."
    )

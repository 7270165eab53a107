"""What telling the in-flight actor costs (``scalecode.inflight``): its start, and one batch's messages.

Every coding pass starts one ``InFlight`` actor, and each replica tells it of every batch it starts
(waited for) and finishes (not waited for). This measures, on an embedded Ray of this machine's CPUs,
the wall time from asking for the actor to its first answer, and the median time of what a replica
adds to each batch (summarising a 1,000-document batch, telling its start, waited for, and its
finish) over many. Compare them with a replica's
start-up (seconds) and a batch's coding time (seconds for an encoder's 1,000 documents).

    python benchmarks/inflight_overhead.py [--starts 5] [--batches 500]
"""

from __future__ import annotations

import argparse
import statistics
import time

import pyarrow as pa
from benchmarks_common import write_results

from scalecode.inference import start_ray
from scalecode.inflight import BatchSummary, start_in_flight, tell


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--starts", type=int, default=5)
    parser.add_argument("--batches", type=int, default=500)
    args = parser.parse_args()

    import ray

    start_ray()
    time.sleep(5)  # let the workers Ray starts with the cluster come up, as they have during a run
    rows = pa.table(
        {
            "id": [str(i) for i in range(1000)],
            "text": ["x"] * 1000,
            "path": ["corpus.parquet"] * 1000,
            "row": list(range(1000)),
        }
    )
    starts, per_batch = [], []
    for _ in range(args.starts):
        began = time.perf_counter()
        handle = start_in_flight()
        ray.get(handle.suspects.remote())
        starts.append(time.perf_counter() - began)
        for _ in range(args.batches):
            began = time.perf_counter()
            summary = BatchSummary.of(rows)  # as each replica does for every batch
            tell(handle, "start", summary, wait=True)
            tell(handle, "finish", summary, wait=False)
            per_batch.append(time.perf_counter() - began)
        ray.kill(handle)
    results = {
        "actor_start_s": {"median": statistics.median(starts), "all": starts},
        "batch_messages_ms": {
            "median": statistics.median(per_batch) * 1000,
            "p95": statistics.quantiles(per_batch, n=20)[-1] * 1000,
        },
    }
    lines = [
        "# In-flight actor overhead",
        "",
        "| measure | result |",
        "|---|---:|",
        f"| actor start to first answer, median of {args.starts} (s) | "
        f"{results['actor_start_s']['median']:.3f} |",
        f"| one batch's summary, start and finish, median of {len(per_batch)} (ms) | "
        f"{results['batch_messages_ms']['median']:.2f} |",
        f"| the same, 95th percentile (ms) | {results['batch_messages_ms']['p95']:.2f} |",
        "",
        "Reproduce: `python benchmarks/inflight_overhead.py`.",
    ]
    write_results("inflight_overhead", results, lines)


if __name__ == "__main__":
    main()

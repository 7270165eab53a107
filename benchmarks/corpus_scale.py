"""Coding 1, 3 and 10 million documents with a dictionary, Parquet to Parquet: time and memory.

The corpus is State of the Union sentences replicated (ids made unique), written as Parquet files of
one million rows. Each size runs in a fresh process (a fresh embedded Ray), as ``scalecode run``
would: check the corpus (count, ids), then code it with the VADER lexicon backend (negation on)
through Ray Data into sharded Parquet. A thread samples the resident memory of the driver and of
every Ray worker process while it runs.

Reported: documents/s end to end, the peak RSS of the driver and of the largest worker, and the
exponent of time against corpus size fitted on a log-log scale (1.0 is linear).

    python benchmarks/corpus_scale.py                       # 1M, 3M, 10M
    python benchmarks/corpus_scale.py --sizes 100000 300000 # a quick look
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import psutil
from benchmarks_common import write_results

FILE_ROWS = 1_000_000


def make_corpus(data: Path, folder: Path, n: int) -> None:
    """n replicated SOTU sentences with unique ids, in Parquet files of a million rows."""
    if folder.exists() and pl.scan_parquet(folder / "*.parquet").select(pl.len()).collect().item() == n:
        return  # made by an earlier run
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    base = pl.read_parquet(data / "sotu-sentences.parquet").select("id", "text")
    copies = -(-n // base.height)
    replicated = pl.concat(
        [base.with_columns(pl.format("{}#{}", "id", pl.lit(i)).alias("id")) for i in range(copies)]
    ).head(n)
    for part, start in enumerate(range(0, n, FILE_ROWS)):
        replicated.slice(start, FILE_ROWS).write_parquet(
            folder / f"part-{part:03d}.parquet", row_group_size=131_072
        )


class Memory:
    """Peak RSS of this process and of each Ray worker process (``ray::...``), sampled every 200 ms."""

    def __init__(self) -> None:
        self.driver = 0
        self.worker = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._me = psutil.Process()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.driver = max(self.driver, self._me.memory_info().rss)
            for process in psutil.process_iter(["cmdline", "memory_info"]):
                cmdline = process.info["cmdline"] or []
                if cmdline and cmdline[0].startswith("ray::") and process.info["memory_info"] is not None:
                    self.worker = max(self.worker, process.info["memory_info"].rss)
            time.sleep(0.2)

    def __enter__(self) -> Memory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def one_run(corpus: Path, out: Path, lexicon: Path) -> dict[str, Any]:
    """Check and code one corpus in this process; what ``scalecode run`` does for its corpus."""
    from scalecode.config import TableConfig
    from scalecode.corpus import code_corpus
    from scalecode.data import inspect_corpus
    from scalecode.inference import BackendSpec, start_ray
    from scalecode.plugins import load_plugins
    from scalecode.task import Task, TaskType

    start_ray()
    plugins = load_plugins()
    task = Task(type=TaskType.REGRESSION, scale={"min": -4, "max": 4})
    spec = BackendSpec(
        name="vader",
        plugin="lexicon",
        params={"lexicon": str(lexicon.resolve()), "negation": {"window": 3}},
        task=task.model_dump(mode="json"),
    )
    shutil.rmtree(out, ignore_errors=True)
    with Memory() as memory:
        started = time.perf_counter()
        table = TableConfig(path=str(corpus))
        info = inspect_corpus(table, plugins.readers)
        checked = time.perf_counter() - started
        summary = code_corpus(spec, spec.build().resources(), table, info.files, info.n_documents, out)
        seconds = time.perf_counter() - started
    rows = pl.scan_parquet(out / "*.parquet").select(pl.len(), pl.col("id").n_unique()).collect().row(0)
    return {
        "documents": info.n_documents,
        "rows_written": rows[0],
        "unique_ids_written": rows[1],
        "errors": summary.errors,
        "shards": summary.shards_written,
        "seconds": round(seconds, 2),
        "check_seconds": round(checked, 2),
        "docs_per_s": round(info.n_documents / seconds),
        "driver_peak_rss_mib": round(memory.driver / 2**20),
        "worker_peak_rss_mib": round(memory.worker / 2**20),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 3_000_000, 10_000_000])
    parser.add_argument("--data", type=Path, default=Path("data"))
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/scalecode-corpus-scale"))
    parser.add_argument("--one", nargs=2, type=Path, metavar=("CORPUS", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    lexicon = args.data / "lexicons" / "vader_lexicon.txt"
    if args.one:
        print(json.dumps(one_run(args.one[0], args.one[1], lexicon)))
        return

    from scalecode.datasets import fetch

    for name in ("sotu-sentences", "vader-lexicon"):
        fetch(name, args.data)
    runs = []
    for n in args.sizes:
        corpus = args.workdir / f"corpus-{n}"
        make_corpus(args.data, corpus, n)
        command = [
            sys.executable,
            __file__,
            "--data",
            str(args.data),
            "--one",
            str(corpus),
            str(args.workdir / "out"),
        ]
        result = json.loads(
            subprocess.run(command, check=True, capture_output=True, text=True).stdout.splitlines()[-1]
        )
        assert result["rows_written"] == result["unique_ids_written"] == n, result  # nothing lost, none twice
        print(result, flush=True)
        runs.append(result)
    sizes = np.log([r["documents"] for r in runs])
    exponent = float(np.polyfit(sizes, np.log([r["seconds"] for r in runs]), 1)[0]) if len(runs) > 1 else None
    drivers = [r["driver_peak_rss_mib"] for r in runs]
    workers = [r["worker_peak_rss_mib"] for r in runs]
    lines = [
        "# Coding a corpus with a dictionary at scale (Parquet to Parquet)",
        "",
        "Replicated State of the Union sentences, Parquet files of 1M rows; VADER lexicon with negation; "
        "each size in a fresh process with an embedded Ray; time includes checking the corpus (counts, ids). "
        "`python benchmarks/corpus_scale.py`.",
        "",
        "| documents | seconds | docs/s | check s | shards | errors | driver peak MiB "
        "| largest worker peak MiB |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
        *[
            f"| {r['documents']:,} | {r['seconds']:,} | {r['docs_per_s']:,} | {r['check_seconds']} | "
            f"{r['shards']:,} | {r['errors']:,} | {r['driver_peak_rss_mib']:,} | "
            f"{r['worker_peak_rss_mib']:,} |"
            for r in runs
        ],
        "",
        f"Time against size, fitted exponent: {exponent:.3f} (target at most 1.1)." if exponent else "",
        f"Driver peak memory, largest / smallest size: {max(drivers) / min(drivers):.2f}; "
        f"worker: {max(workers) / min(workers):.2f} (target: within 20%).",
    ]
    write_results(
        "corpus_scale",
        {
            "runs": runs,
            "time_exponent": exponent,
            "driver_rss_ratio": max(drivers) / min(drivers),
            "worker_rss_ratio": max(workers) / min(workers),
        },
        lines,
    )


if __name__ == "__main__":
    main()

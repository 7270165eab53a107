"""Dictionary scoring throughput: the compiled scorer beside a plain per-document Python loop.

Scores 1,000,000 real sentences (State of the Union sentences, replicated with unique ids) with
VADER's lexicon (~7,500 entries) in three settings, each time with both implementations on the same
documents in the same run, and checks that they give identical counts and weight sums:

- plain: exact matches, no negation;
- wildcards + negation: every VADER entry a prefix (the worst case for wildcard matching) and a
  negation window of 3 tokens;
- LSD2015 + negation: a real wildcard lexicon (Lexicoder, entries are prefixes, with phrases).

The loop is ReferenceScorer: regex tokenisation, dictionary lookups, a prefix loop, the same phrase and
negation rules, one document at a time. Throughput is the median of repeated runs; peak memory is the
process's resident set during each measurement. Results go to benchmarks/results/ with the machine.

    python benchmarks/dictionary_throughput.py [--docs 1000000] [--loop-docs 1000000] [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
from benchmarks_common import write_results

from scalecode.datasets import fetch
from scalecode_dictionary import LexiconScorer, Negation, ReferenceScorer, read_lexicon


class PeakRSS:
    """Samples the resident set size of this process every 5 ms while active."""

    def __init__(self) -> None:
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def current() -> int:
        return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.current())
            time.sleep(0.005)

    def __enter__(self) -> PeakRSS:
        self.baseline = self.current()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.current())


def timed(run: Callable[[], Any], repeats: int) -> tuple[list[float], int, int, Any]:
    """Seconds of each repeat, peak RSS and its rise over the RSS before the runs (bytes), last result."""
    times = []
    result = None
    with PeakRSS() as rss:
        for _ in range(repeats):
            started = time.perf_counter()
            result = run()
            times.append(time.perf_counter() - started)
    return times, rss.peak, rss.peak - rss.baseline, result


def sentences(data: Path, n: int) -> pa.LargeStringArray:
    frame = pl.read_parquet(data / "sotu-sentences.parquet").select("id", "text")
    copies = -(-n // frame.height)
    replicated = pl.concat(
        [frame.with_columns(pl.format("{}#{}", "id", pl.lit(i)).alias("id")) for i in range(copies)]
    ).head(n)
    assert replicated["id"].n_unique() == n  # ids stay unique across copies
    return pa.array(replicated["text"].to_list(), pa.large_string())


def equal(a: Any, b: Any) -> bool:
    return bool(
        np.array_equal(a.n_tokens, b.n_tokens)
        and np.array_equal(a.counts, b.counts)
        and np.array_equal(a.sums, b.sums)
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--docs", type=int, default=1_000_000)
    parser.add_argument("--loop-docs", type=int, default=None, help="documents the Python loop scores (all)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--data", type=Path, default=Path("data"))
    args = parser.parse_args()
    for name in ("sotu-sentences", "vader-lexicon", "lsd2015-lexicon"):
        fetch(name, args.data)
    texts = sentences(args.data, args.docs)
    loop_docs = min(args.loop_docs or args.docs, args.docs)
    loop_texts = texts[:loop_docs].to_pylist()
    vader = read_lexicon(args.data / "lexicons" / "vader_lexicon.txt")
    settings = [
        ("plain", vader, Negation()),
        (
            "wildcards + negation",
            read_lexicon(args.data / "lexicons" / "vader_lexicon.txt", prefix_match=True),
            Negation(window=3),
        ),
        (
            "LSD2015 + negation",
            read_lexicon(args.data / "lexicons" / "LSD2015.yaml", prefix_match=True),
            Negation(window=3),
        ),
    ]
    rows = []
    for name, lexicon, negation in settings:
        print(f"{name}: {len(lexicon.entries)} entries", flush=True)
        compiled = LexiconScorer(lexicon, negation, threads=args.threads)
        single = LexiconScorer(lexicon, negation, threads=1)
        compiled.score(texts[:1000])  # compile (or load the cached machine code) outside the timing
        times, peak, rise, scores = timed(lambda s=compiled: s.score(texts), args.repeats)
        times_1, _, _, _ = timed(lambda s=single: s.score(texts), max(1, args.repeats // 2))
        reference = ReferenceScorer(lexicon, negation)
        loop_times, loop_peak, loop_rise, loop_scores = timed(lambda r=reference: r.score(loop_texts), 1)
        identical = equal(
            loop_scores,
            type(scores)(
                scores.categories,
                scores.n_tokens[:loop_docs],
                scores.n_matched[:loop_docs],
                scores.counts[:loop_docs],
                scores.sums[:loop_docs],
            ),
        )
        rate = args.docs / statistics.median(times)
        loop_rate = loop_docs / loop_times[0]
        row = {
            "setting": name,
            "lexicon_entries": len(lexicon.entries),
            "documents": args.docs,
            "compiled_docs_per_s": round(rate),
            "compiled_threads": args.threads,
            "compiled_seconds": [round(t, 3) for t in times],
            "compiled_1_thread_docs_per_s": round(args.docs / statistics.median(times_1)),
            "compiled_peak_rss_mib": round(peak / 2**20),
            "compiled_rss_rise_mib": round(rise / 2**20),
            "loop_documents": loop_docs,
            "loop_docs_per_s": round(loop_rate),
            "loop_peak_rss_mib": round(loop_peak / 2**20),
            "loop_rss_rise_mib": round(loop_rise / 2**20),
            "speedup": round(rate / loop_rate, 1),
            "identical_scores": identical,
            "matches": int(scores.counts.sum()),
        }
        print(json.dumps(row), flush=True)
        rows.append(row)
    lines = [
        "# Dictionary scoring throughput",
        "",
        f"{args.docs:,} State of the Union sentences (replicated, unique ids). "
        f"Compiled scorer: median of {args.repeats} runs with {args.threads} threads; "
        f"the Python loop: one run over {loop_docs:,} of the same sentences. "
        "Peak RSS is the whole process, with the texts held both as Arrow strings and as the loop's "
        "Python strings; 'rise' is what scoring added to it.",
        "",
        "| setting | entries | compiled docs/s | 1 thread | loop docs/s | speedup | identical "
        "| peak RSS MiB | rise MiB (compiled / loop) |",
        "|---|---:|---:|---:|---:|---:|---|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['setting']} | {r['lexicon_entries']:,} | {r['compiled_docs_per_s']:,} | "
            f"{r['compiled_1_thread_docs_per_s']:,} | {r['loop_docs_per_s']:,} | {r['speedup']}x | "
            f"{'yes' if r['identical_scores'] else 'NO'} | {r['compiled_peak_rss_mib']:,} | "
            f"{r['compiled_rss_rise_mib']:,} / {r['loop_rss_rise_mib']:,} |"
        )
    write_results("dictionary_throughput", {"results": rows}, lines)


if __name__ == "__main__":
    main()

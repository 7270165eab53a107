"""Coding 100,000 documents with an encoder through the corpus path, against the bare forward pass.

all-MiniLM-L6-v2 (fp32, or bf16 where the CPU has it natively; at most 128 tokens) on State of the
Union paragraphs, shuffled, replicated to the size asked (ids made unique), as Parquet files of
25,000 rows.
Side by side in one run, in the same precision:

- bare forward pass: the first 5,000 of the shuffled paragraphs (the corpus's own documents where it
  is no larger) tokenised beforehand, sorted by length, padded per
  batch of 32; only ``model(...)`` timed, after a warm-up call; measured before the corpus run and
  after it with Ray shut down (the median of the two is the reference, their spread says how steady
  the machine was);
- a replica's start-up alone: a fresh Python importing what an actor imports and loading the model;
- the corpus path, as ``scalecode run`` codes a corpus: checking the corpus, Ray Data reading it in
  pieces, an actor pool of the encoder backend (one single-threaded actor per core, the faster
  layout in benchmarks/results/encoder_throughput.md), Parquet shards written by the driver; timed
  from the check to the last shard, actor start and model load included.

    python benchmarks/corpus_encoder.py [--docs 100000] [--precision fp32|bf16]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from benchmarks_common import with_classifier_head, write_results

from scalecode import Task, TaskType
from scalecode.datasets import fetch

FILE_ROWS = 25_000


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--docs", type=int, default=100_000)
    parser.add_argument("--bare-docs", type=int, default=5_000)
    parser.add_argument("--data", type=Path, default=Path("data"))
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    args = parser.parse_args()
    precision = args.precision

    import ray
    import torch

    from scalecode.config import TableConfig
    from scalecode.corpus import code_corpus
    from scalecode.data import inspect_corpus
    from scalecode.inference import BackendSpec, start_ray
    from scalecode.plugins import load_plugins
    from scalecode_hf.batching import forward_sorted
    from scalecode_hf.devices import quiet_libraries
    from scalecode_hf.encoder import EncoderBackend

    quiet_libraries()
    for name in ("sotu-paragraphs", "all-minilm-l6-v2"):
        fetch(name, args.data)
    model_dir = with_classifier_head(args.data / "models" / "all-MiniLM-L6-v2")
    # Shuffled once, so that a corpus smaller than the paragraphs and the bare sample are the same
    # documents (the file is in date order: its first 5,000 are the older, longer paragraphs).
    base = (
        pl.read_parquet(args.data / "sotu-paragraphs.parquet")
        .select(pl.col("id").cast(pl.String), "text")
        .sample(fraction=1.0, shuffle=True, seed=0)
    )
    copies = -(-args.docs // base.height)
    corpus = pl.concat(
        [base.with_columns(pl.format("{}#{}", "id", pl.lit(i)).alias("id")) for i in range(copies)]
    ).head(args.docs)
    task = Task(type=TaskType.CLASSIFICATION, labels=["a", "b"])
    threads = torch.get_num_threads()
    params = {
        "model": model_dir,
        "pooling": "model",
        "max_length": 128,
        "batch_size": 32,
        "label_map": {"LABEL_0": "a", "LABEL_1": "b"},
        "precision": precision,
    }

    torch.manual_seed(0)
    bare_backend = EncoderBackend(task, {**params, "cpus": threads})
    bare_backend.load()
    sample = base["text"].head(args.bare_docs).to_list()  # the corpus's own documents where it is as small
    encoded = bare_backend.tokenizer(sample, truncation=True, max_length=128)["input_ids"]
    pad_id = bare_backend.tokenizer.pad_token_id or 0
    model = bare_backend.model
    assert model is not None

    def bare(docs: list[list[int]]) -> float:
        started = time.perf_counter()
        forward_sorted(
            model, docs, batch_size=32, pad_id=pad_id, device=torch.device("cpu"), precision=precision
        )
        return len(docs) / (time.perf_counter() - started)

    bare(encoded[:256])  # warm-up: first calls pay for allocations and kernel selection, not for the model
    before = bare(encoded)
    startup = replica_startup(params)
    start_ray()
    spec = BackendSpec(
        name="minilm", plugin="encoder", params={**params, "cpus": 1}, task=task.model_dump(mode="json")
    )
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "corpus"
        folder.mkdir()
        for part, start in enumerate(range(0, args.docs, FILE_ROWS)):
            corpus.slice(start, FILE_ROWS).write_parquet(folder / f"part-{part:03d}.parquet")
        out = Path(tmp) / "out"
        load_plugins()
        started = time.perf_counter()
        table = TableConfig(path=str(folder))
        info = inspect_corpus(table, load_plugins().readers)
        summary = code_corpus(spec, spec.build().resources(), table, info.files, info.n_documents, out)
        seconds = time.perf_counter() - started
        written = (
            pl.scan_parquet(out / "*.parquet").select(pl.len(), pl.col("id").n_unique()).collect().row(0)
        )
    assert written == (args.docs, args.docs), written  # every document once
    assert summary.errors == 0, summary
    # Without Ray running, as before: an idle embedded Ray keeps ~0.13 of 2 cores busy.
    ray.shutdown()
    after = bare(encoded)
    reference = statistics.median([before, after])
    rate = args.docs / seconds
    # The replicas start side by side, one per core, so the run waits about one start-up for them.
    rate_after_startup = args.docs / max(seconds - startup, 1e-9)
    results = {
        "documents": args.docs,
        "bare_documents": len(encoded),
        "tokens_mean": float(np.mean([len(e) for e in encoded])),
        "docs_per_second": {
            f"bare forward {precision}, before": round(before, 1),
            f"bare forward {precision}, after": round(after, 1),
            "corpus path": round(rate, 1),
        },
        "corpus_seconds": round(seconds, 1),
        "ratio_corpus_to_bare": round(rate / reference, 3),
        "replica_startup_seconds": round(startup, 1),
        "ratio_corpus_to_bare_without_startup": round(rate_after_startup / reference, 3),
    }
    lines = [
        f"# Encoder corpus path at {args.docs:,} documents",
        "",
        f"all-MiniLM-L6-v2 {precision}, max 128 tokens; SOTU paragraphs replicated to {args.docs:,} (mean "
        f"{results['tokens_mean']:.1f} tokens in the bare sample). `python benchmarks/corpus_encoder.py "
        f"--docs {args.docs} --precision {precision}`.",
        "",
        "| path | documents | docs/s |",
        "|---|---:|---:|",
        f"| bare forward {precision}, before | {len(encoded):,} | {before:.1f} |",
        f"| corpus path (check, read, code, write) | {args.docs:,} | {rate:.1f} |",
        f"| bare forward {precision}, after | {len(encoded):,} | {after:.1f} |",
        "",
        f"Corpus path / bare forward (median of before and after): **{rate / reference:.2f}** (target 0.80); "
        f"{seconds / 60:.1f} minutes for the corpus, every document coded once, no errors.",
        "",
        f"A replica's start-up, measured alone before the run: {startup:.1f} s (a fresh Python importing "
        "Ray Data, scalecode, torch and transformers, and loading the model). The replicas start side "
        "by side, one per core, so the run waits about that long before its first batch; without it, "
        f"the corpus path would be {rate_after_startup / reference:.2f} of the bare forward pass (an "
        "estimate: start-up measured apart from the run, not in it).",
    ]
    suffix = "" if precision == "fp32" else f"_{precision}"  # the fp32 file keeps its earlier name
    write_results(f"corpus_encoder_{args.docs}{suffix}", results, lines)


def replica_startup(params: dict[str, object]) -> float:
    """Seconds from a fresh Python to a loaded encoder, importing what an actor of the pool imports."""
    import json
    import subprocess
    import sys

    script = (
        "import json, sys\n"
        "import ray.data, scalecode.inference\n"
        "from scalecode import Task, TaskType\n"
        "from scalecode_hf.encoder import EncoderBackend\n"
        "task = Task(type=TaskType.CLASSIFICATION, labels=['a', 'b'])\n"
        "EncoderBackend(task, {**json.loads(sys.argv[1]), 'cpus': 1}).load()\n"
    )
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", script, json.dumps(params)], check=True)
    return time.perf_counter() - started


if __name__ == "__main__":
    main()

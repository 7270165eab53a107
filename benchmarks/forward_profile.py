"""Where an fp32 forward pass of all-MiniLM-L6-v2 spends its time, against the CPU's matrix-multiply rate.

The encoder throughput targets compare scalecode's corpus path with a bare forward pass and with a
pipeline loop. Without bf16, the fp32 forward pass is the ceiling of every path, so this measures how
far that ceiling could still move: on SOTU paragraphs (at most 128 tokens), tokenised and
length-sorted as the throughput benchmark does, with one torch thread (one coding replica per core):

- the matrix multiplies alone: the linear shapes of a MiniLM layer over one batch's tokens, GFLOP/s;
- the whole forward pass (batches of 32): documents/s, and torch.profiler's split of its time by op;
- the rate the linear layers reach inside the forward pass (their FLOPs over their share of the time).

    python benchmarks/forward_profile.py [--docs 1000] [--threads 1]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import polars as pl
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from benchmarks_common import write_results

from scalecode.datasets import fetch

BATCH = 32
OP_GROUPS = {  # torch.profiler op name -> what it is in a BERT layer
    "aten::addmm": "linear layers (matmul)",
    "aten::_scaled_dot_product_flash_attention_for_cpu": "attention",
    "aten::gelu": "GELU",
    "aten::native_layer_norm": "layer norm",
    "aten::copy_": "copies",
}


def matmul_rate(rows: int, out_features: int, in_features: int, repeats: int = 20) -> float:
    """GFLOP/s of one linear layer's matrix multiply over ``rows`` tokens."""
    layer = torch.nn.Linear(in_features, out_features).eval()
    x = torch.randn(rows, in_features)
    with torch.inference_mode():
        layer(x)
        started = time.perf_counter()
        for _ in range(repeats):
            layer(x)
        elapsed = (time.perf_counter() - started) / repeats
    return 2 * rows * out_features * in_features / elapsed / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--data", type=Path, default=Path("data"))
    args = parser.parse_args()

    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from scalecode_hf.batching import forward_sorted, length_sorted_batches

    for name in ("sotu-paragraphs", "all-minilm-l6-v2"):
        fetch(name, args.data)
    torch.set_num_threads(args.threads)
    location = args.data / "models" / "all-MiniLM-L6-v2"
    tokenizer = AutoTokenizer.from_pretrained(location)
    model = AutoModelForSequenceClassification.from_pretrained(location, num_labels=2).eval()
    texts = pl.read_parquet(args.data / "sotu-paragraphs.parquet")["text"].sample(args.docs, seed=0).to_list()
    ids = tokenizer(texts, truncation=True, max_length=128)["input_ids"]
    lengths = [len(t) for t in ids]
    padded_tokens = sum(
        len(batch) * max(lengths[i] for i in batch) for batch in length_sorted_batches(lengths, BATCH)
    )

    def run(input_ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return model(input_ids=input_ids, attention_mask=mask).logits

    def forward() -> None:
        forward_sorted(
            run, ids, batch_size=BATCH, pad_id=tokenizer.pad_token_id or 0, device=torch.device("cpu")
        )

    forward()  # warm-up
    started = time.perf_counter()
    forward()
    seconds = time.perf_counter() - started

    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as profiler:
        forward()
    self_time = {event.key: event.self_cpu_time_total for event in profiler.key_averages()}
    total = sum(self_time.values())
    shares = {label: self_time.get(op, 0) / total for op, label in OP_GROUPS.items()}
    shares["everything else"] = 1 - sum(shares.values())

    config = model.config
    hidden, inner, layers = config.hidden_size, config.intermediate_size, config.num_hidden_layers
    linear_flops = padded_tokens * 2 * layers * (4 * hidden * hidden + 2 * hidden * inner)
    in_forward = linear_flops / (seconds * shares["linear layers (matmul)"]) / 1e9
    rows = BATCH * round(float(np.mean(lengths)))
    alone = {
        f"{rows}x{i} @ {i}x{o}": matmul_rate(rows, o, i)
        for o, i in ((hidden, hidden), (inner, hidden), (hidden, inner))
    }

    results = {
        "documents": args.docs,
        "threads": args.threads,
        "mean_tokens": float(np.mean(lengths)),
        "padded_tokens": padded_tokens,
        "forward_docs_per_second": args.docs / seconds,
        "time_shares": shares,
        "linear_gflops_in_forward": in_forward,
        "matmul_gflops_alone": alone,
    }
    lines = [
        "# Where an fp32 forward pass of all-MiniLM-L6-v2 spends its time",
        "",
        f"{args.docs} SOTU paragraphs (mean {np.mean(lengths):.1f} tokens, at most 128), length-sorted "
        f"batches of {BATCH}, fp32, {args.threads} torch thread(s): "
        f"**{args.docs / seconds:.1f} documents/s**.",
        "",
        "| op | share of the forward pass's time |",
        "|---|---:|",
        *(f"| {label} | {share:.1%} |" for label, share in shares.items()),
        "",
        f"The linear layers reach **{in_forward:.0f} GFLOP/s** inside the forward pass; the same matrix "
        "multiplies alone:",
        "",
        "| shape (tokens x in @ in x out) | GFLOP/s |",
        "|---|---:|",
        *(f"| {shape} | {rate:.0f} |" for shape, rate in alone.items()),
        "",
        "Reproduce: `python benchmarks/forward_profile.py"
        + (f" --docs {args.docs}" if args.docs != 1000 else "")
        + (f" --threads {args.threads}" if args.threads != 1 else "")
        + "`.",
    ]
    write_results("forward_profile", results, lines)


if __name__ == "__main__":
    main()

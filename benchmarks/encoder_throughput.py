"""Encoder inference throughput: scalecode's coding path against the bare forward pass and a pipeline loop.

On the same 5,000 State of the Union paragraphs (at most 128 tokens; mean ~87) with all-MiniLM-L6-v2,
in one run, side by side:

- bare forward pass: the documents tokenised beforehand, sorted by length, padded per batch, only
  ``model(...)`` timed (fp32, and bf16 where the CPU has it natively);
- scalecode: ``EncoderBackend.predict_batch`` (tokenise, sort, pad, forward, probabilities, back in
  order), fp32, int8 (dynamically quantised linear layers) and, where the CPU has it natively, bf16
  (what ``precision: auto`` picks there);
- scalecode's corpus path end to end: the documents as a Parquet file, read by Ray Data, coded by an
  actor pool, written as Parquet shards (``code_corpus``, what ``scalecode run`` does), timed from the
  first read to the last shard written, actor start and model load included; in fp32 once with one
  actor of all the threads, once with an actor per core, in int8 with an actor per core, and in bf16
  (where native) both ways;
- Hugging Face ``pipeline("text-classification")`` called once per document, as a loop over a corpus
  is usually written, and with ``batch_size=32`` for reference.

Each is the median of several rounds, every path once per round after a warm-up call; in each round
the in-process paths are timed before Ray starts (an idle embedded Ray keeps ~0.13 of 2 cores busy),
the corpus paths after. int8 and bf16 are compared with fp32 on the same documents. The
classification head is freshly initialised (throughput does not depend on its weights), so the
argmax agreement is measured with a trained model when ``--trained`` names a run's model folder.

    python benchmarks/encoder_throughput.py [--docs 5000] [--repeats 3] [--trained runs/.../models/x]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import ray

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from benchmarks_common import with_classifier_head, write_results

from scalecode import Task, TaskType
from scalecode.datasets import fetch
from scalecode.inference import start_ray


def seconds(run: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    result = run()
    return time.perf_counter() - started, result


class CorpusPath:
    """``code_corpus`` as ``scalecode run`` calls it: Parquet in, Ray Data, actor pool, Parquet shards out."""

    def __init__(
        self, task: Task, params: dict[str, Any], state: Path | None, source: Path, n_documents: int
    ) -> None:
        from scalecode.config import TableConfig
        from scalecode.data import inspect_corpus
        from scalecode.inference import BackendSpec
        from scalecode.plugins import load_plugins

        self.spec = BackendSpec(
            name="minilm",
            plugin="encoder",
            params=params,
            task=task.model_dump(mode="json"),
            state_dir=str(state.resolve()) if state else None,
        )
        self.resources = self.spec.build().resources()
        self.table = TableConfig(path=str(source))
        self.files = inspect_corpus(self.table, load_plugins().readers).files
        self.n_documents = n_documents

    def __call__(self, out: Path) -> None:
        from scalecode.corpus import code_corpus

        summary = code_corpus(self.spec, self.resources, self.table, self.files, self.n_documents, out)
        assert summary.coded == self.n_documents, summary
        assert summary.errors == 0, summary
        assert pl.read_parquet(out).height == self.n_documents


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--docs", type=int, default=5000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--data", type=Path, default=Path("data"))
    parser.add_argument("--model", default=None, help="model folder (default: all-MiniLM-L6-v2 from PyPI)")
    parser.add_argument("--trained", type=Path, default=None, help="a trained encoder state (models/<name>)")
    parser.add_argument("--pipeline-docs", type=int, default=1000, help="documents for the pipeline loop")
    args = parser.parse_args()

    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, pipeline

    from scalecode_hf.batching import forward_sorted
    from scalecode_hf.devices import cpu_has_native_bf16, quiet_libraries
    from scalecode_hf.encoder import EncoderBackend

    quiet_libraries()
    for name in ("sotu-paragraphs", "all-minilm-l6-v2"):
        fetch(name, args.data)
    model_dir = args.model or str(args.data / "models" / "all-MiniLM-L6-v2")
    texts = pl.read_parquet(args.data / "sotu-paragraphs.parquet")["text"].sample(args.docs, seed=0).to_list()
    threads = torch.get_num_threads()
    task = Task(type=TaskType.CLASSIFICATION, labels=["a", "b"])
    params = {
        "model": with_classifier_head(model_dir),
        "pooling": "model",
        "max_length": 128,
        "batch_size": args.batch_size,
        "cpus": threads,
        "label_map": {"LABEL_0": "a", "LABEL_1": "b"},
    }
    state = args.trained
    if state is not None:
        task_file = json.loads((state / "model" / "scalecode-encoder.json").read_text())
        labels = task_file.get("labels") or []
        task = Task(type=TaskType.CLASSIFICATION, labels=labels) if labels else Task(type=TaskType.REGRESSION)
        params = {"model": model_dir, "max_length": 128, "batch_size": args.batch_size, "cpus": threads}

    torch.manual_seed(0)
    fp32 = EncoderBackend(task, {**params, "precision": "fp32"}, state_dir=state)
    fp32.load()
    tokenizer = fp32.tokenizer
    model = fp32.model
    assert model is not None
    encoded = tokenizer(texts, truncation=True, max_length=128)["input_ids"]
    lengths = [len(e) for e in encoded]
    cpu = torch.device("cpu")
    pad_id = tokenizer.pad_token_id or 0

    classifier = pipeline(
        "text-classification",
        model=AutoModelForSequenceClassification.from_pretrained(with_classifier_head(model_dir)),
        tokenizer=AutoTokenizer.from_pretrained(model_dir),
        device=-1,
        truncation=True,
        max_length=128,
    )
    sample = texts[: args.pipeline_docs]
    int8_backend = EncoderBackend(task, {**params, "precision": "int8"}, state_dir=state)
    int8_backend.load()
    # bf16 where the CPU computes it natively (AVX-512 BF16, AMX): what `precision: auto` picks there.
    bf16 = cpu_has_native_bf16()
    bf16_backend = EncoderBackend(task, {**params, "precision": "bf16"}, state_dir=state) if bf16 else None
    if bf16_backend is not None:
        bf16_backend.load()

    def bare_forward(docs: list[list[int]], precision: str = "fp32") -> Any:
        return forward_sorted(
            model, docs, batch_size=args.batch_size, pad_id=pad_id, device=cpu, precision=precision
        )

    # (name, documents, run over the first k documents)
    in_process: list[tuple[str, int, Callable[[int], Any]]] = [
        ("pipeline, one call per document", len(sample), lambda k: [classifier(t) for t in sample[:k]]),
        ("pipeline, batch_size=32", len(sample), lambda k: classifier(sample[:k], batch_size=32)),
        ("bare forward fp32", len(texts), lambda k: bare_forward(encoded[:k])),
        ("scalecode fp32", len(texts), lambda k: fp32.predict_batch(texts[:k])),
        ("scalecode int8", len(texts), lambda k: int8_backend.predict_batch(texts[:k])),
    ]
    corpus_configs = [
        ("scalecode corpus", "fp32", f"1 actor x {threads} threads", threads),
        ("scalecode corpus", "fp32", f"{threads} actors x 1 thread", 1),
        ("scalecode corpus int8", "int8", f"{threads} actors x 1 thread", 1),
    ]
    if bf16_backend is not None:
        in_process += [
            ("bare forward bf16", len(texts), lambda k: bare_forward(encoded[:k], "bf16")),
            ("scalecode bf16", len(texts), lambda k: bf16_backend.predict_batch(texts[:k])),
        ]
        corpus_configs += [
            ("scalecode corpus bf16", "bf16", f"1 actor x {threads} threads", threads),
            ("scalecode corpus bf16", "bf16", f"{threads} actors x 1 thread", 1),
        ]
    for _, _, run in in_process:
        run(256)  # warm-up: first calls pay for allocations and kernel selection, not for the model

    # Rounds, each path once per round, so that a slow minute of this shared machine falls on all
    # paths alike. Within a round the in-process paths run before Ray starts (an idle embedded Ray keeps
    # ~0.13 of 2 cores busy, which would slow them), the corpus paths with Ray running, as in
    # `scalecode run`; Ray is shut down at the end of each round.
    times: dict[str, list[float]] = {}
    outputs: dict[str, Any] = {}
    documents: dict[str, int] = {}
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "corpus.parquet"
        pl.DataFrame({"id": [f"d{i}" for i in range(len(texts))], "text": texts}).write_parquet(source)
        for round_ in range(args.repeats):
            for name, n, run in in_process:
                elapsed, outputs[name] = seconds(lambda run=run, n=n: run(n))
                times.setdefault(name, []).append(elapsed)
                documents[name] = n
            start_ray()
            for index, (prefix, precision, label, cpus) in enumerate(corpus_configs):
                name = f"{prefix} (Ray Data read, code, write), {label}"
                path = CorpusPath(
                    task, {**params, "precision": precision, "cpus": cpus}, state, source, len(texts)
                )
                out = Path(tmp) / f"out-{round_}-{index}"
                elapsed, _ = seconds(lambda path=path, out=out: path(out))
                times.setdefault(name, []).append(elapsed)
                documents[name] = len(texts)
            ray.shutdown()
            print(
                f"round {round_ + 1}: "
                + ", ".join(f"{k} {documents[k] / v[-1]:.1f}" for k, v in times.items())
            )
    rows = {name: documents[name] / statistics.median(t) for name, t in times.items()}
    bare, e2e, int8 = rows["bare forward fp32"], rows["scalecode fp32"], rows["scalecode int8"]
    e2e_out, int8_out = outputs["scalecode fp32"], outputs["scalecode int8"]
    agreement: dict[str, float] = {}
    if state is None:
        pass  # a random head's near-tied logits say nothing about how int8 moves a trained model's codes
    elif task.type is TaskType.CLASSIFICATION:
        agreement["int8 argmax agreement"] = float(
            np.mean(np.array(e2e_out.label) == np.array(int8_out.label))
        )
        agreement["int8 max probability difference"] = float(
            max(
                np.max(
                    np.abs(np.asarray(e2e_out.probabilities[name]) - np.asarray(int8_out.probabilities[name]))
                )
                for name in task.label_names
            )
        )
    else:
        diff = np.abs(np.asarray(e2e_out.score) - np.asarray(int8_out.score))
        agreement["int8 mean absolute score difference"] = float(diff.mean())
        agreement["fp32 score standard deviation"] = float(np.std(e2e_out.score))
    if "scalecode bf16" in outputs and state is not None:
        bf16_out = outputs["scalecode bf16"]
        if task.type is TaskType.CLASSIFICATION:
            agreement["bf16 argmax agreement"] = float(
                np.mean(np.array(e2e_out.label) == np.array(bf16_out.label))
            )
        else:
            diff = np.abs(np.asarray(e2e_out.score) - np.asarray(bf16_out.score))
            agreement["bf16 mean absolute score difference"] = float(diff.mean())
            agreement["bf16 largest score difference"] = float(diff.max())
    best_corpus = max(v for k, v in rows.items() if k.startswith("scalecode corpus ("))
    int8_corpus = next(v for k, v in rows.items() if k.startswith("scalecode corpus int8"))
    loop = rows["pipeline, one call per document"]
    bf16_ratios = {}
    if bf16_backend is not None:
        bf16_corpus = max(v for k, v in rows.items() if k.startswith("scalecode corpus bf16"))
        bf16_ratios = {
            "scalecode bf16 / bare forward bf16": round(
                rows["scalecode bf16"] / rows["bare forward bf16"], 3
            ),
            "best bf16 corpus path / bare forward bf16": round(bf16_corpus / rows["bare forward bf16"], 3),
            "best bf16 corpus path / pipeline loop": round(bf16_corpus / loop, 2),
        }
    results = {
        "documents": len(texts),
        "tokens_mean": float(np.mean(lengths)),
        "tokens_max": int(max(lengths)),
        "model": model_dir,
        "trained_state": str(state) if state else None,
        "batch_size": args.batch_size,
        "torch_threads": threads,
        "cpu_native_bf16": cpu_has_native_bf16(),
        "docs_per_second": {k: round(v, 1) for k, v in rows.items()},
        "ratios": {
            "scalecode fp32 / bare forward fp32": round(e2e / bare, 3),
            "best corpus path / bare forward fp32": round(best_corpus / bare, 3),
            "best corpus path / pipeline loop": round(
                best_corpus / rows["pipeline, one call per document"], 2
            ),
            "corpus path int8 / pipeline loop": round(
                int8_corpus / rows["pipeline, one call per document"], 2
            ),
            "scalecode fp32 / pipeline loop": round(e2e / rows["pipeline, one call per document"], 2),
            "scalecode int8 / pipeline loop": round(int8 / rows["pipeline, one call per document"], 2),
            **bf16_ratios,
        },
        "agreement": agreement,
    }
    lines = [
        "# Encoder inference throughput",
        "",
        f"{len(texts):,} SOTU paragraphs (tokens: mean {np.mean(lengths):.1f}, max {max(lengths)}), "
        f"all-MiniLM-L6-v2, batch size {args.batch_size}, {threads} torch threads; "
        f"median of {args.repeats} rounds, each path once per round after one warm-up call "
        f"(the pipeline on {len(sample):,} of the documents; the corpus path timed from its first read "
        f"to its last shard written, actors started and models loaded within that time).",
        "",
        "| path | documents/s |",
        "|---|---:|",
        *[f"| {k} | {v:,.1f} |" for k, v in rows.items()],
        "",
        *[f"- {k}: {v}" for k, v in results["ratios"].items()],
        *[f"- {k}: {v:.4f}" for k, v in agreement.items()],
    ]
    write_results("encoder_throughput", results, lines)


if __name__ == "__main__":
    main()

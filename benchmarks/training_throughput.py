"""Training throughput: scalecode's Ray Train loop against the Hugging Face Trainer, same everything.

Full fine-tuning of all-MiniLM-L6-v2 (its own sequence-classification head) on 2,000 Rotten Tomatoes
snippets for one epoch, batch size 16, learning rate 5e-5, at most 64 tokens, dynamic padding,
shuffled, fp32, fused AdamW, each with as many torch threads as the machine has cores (what scalecode's single
worker uses: its CPU count divided by the workers). Samples per second are the training pass only:
the Trainer's ``train_samples_per_second``, and the samples/s scalecode's loop records for the epoch
(scoring the validation split afterwards is not counted). The Trainer runs with its defaults and
again with ``train_sampling_strategy="group_by_length"``, which scalecode does by default. The fixed
cost of starting Ray Train's workers is reported apart. Runs alternate; each figure is the median
of ``--repeats``.

    python benchmarks/training_throughput.py [--docs 2000] [--repeats 2]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import polars as pl
from benchmarks_common import write_results

from scalecode import FitConfig, GoldSet, Task, TaskType
from scalecode.datasets import fetch


def hf_trainer(
    model_dir: str, texts: list[str], labels: list[int], batch_size: int, group_by_length: bool = False
) -> float:
    import torch
    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        DataCollatorWithPadding,
        Trainer,
        TrainingArguments,
    )

    torch.set_num_threads(os.cpu_count() or 1)  # Ray's driver may have pinned it to one
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    encoded = tokenizer(texts, truncation=True, max_length=64)
    rows = [
        {"input_ids": ids, "attention_mask": mask, "labels": label}
        for ids, mask, label in zip(encoded["input_ids"], encoded["attention_mask"], labels, strict=True)
    ]
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir, num_labels=2)
    with tempfile.TemporaryDirectory() as out:
        args = TrainingArguments(
            output_dir=out,
            per_device_train_batch_size=batch_size,
            num_train_epochs=1,
            learning_rate=5e-5,
            logging_strategy="no",
            save_strategy="no",
            eval_strategy="no",
            report_to=[],
            use_cpu=True,
            seed=0,
            dataloader_num_workers=0,
            train_sampling_strategy="group_by_length" if group_by_length else "random",
        )
        trainer = Trainer(
            model=model, args=args, train_dataset=rows, data_collator=DataCollatorWithPadding(tokenizer)
        )
        metrics = trainer.train().metrics
    return float(metrics["train_samples_per_second"])


def scalecode_loop(model_dir: str, gold: GoldSet, batch_size: int) -> tuple[float, float]:
    from scalecode_hf.encoder import EncoderBackend
    from scalecode_hf.options import TrainOptions

    backend = EncoderBackend(gold.task, {"model": model_dir, "pooling": "model", "max_length": 64})
    options = TrainOptions(
        epochs=1,
        batch_size=batch_size,
        learning_rate=5e-5,
        validation_size=0.05,
        early_stopping_patience=0,
        precision="fp32",
    )
    with tempfile.TemporaryDirectory() as out:
        started = time.perf_counter()
        backend.fit(gold, None, FitConfig(output_dir=Path(out), seed=0, options=options))
        total = time.perf_counter() - started
        import json

        history = json.loads((Path(out) / "training.json").read_text())
    return float(history[0]["samples_per_second"]), total


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--docs", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--data", type=Path, default=Path("data"))
    args = parser.parse_args()

    from scalecode.inference import start_ray
    from scalecode_hf.devices import quiet_libraries

    quiet_libraries()
    for name in ("rotten-tomatoes", "all-minilm-l6-v2"):
        fetch(name, args.data)
    model_dir = str(args.data / "models" / "all-MiniLM-L6-v2")
    frame = pl.read_parquet(args.data / "rotten-tomatoes.parquet").sample(args.docs, seed=0)
    task = Task(type=TaskType.CLASSIFICATION, labels=["fresh", "rotten"])
    gold = GoldSet(task, frame["id"].to_list(), frame["text"].to_list(), frame["label"].to_list())
    # The Trainer sees the same documents scalecode trains on (scalecode holds 5% out to validate).
    from scalecode.splits import split_gold

    fit_set, _ = split_gold(gold, test_size=0.05, seed=0)
    labels = [task.label_names.index(t) for t in fit_set.targets]
    start_ray()
    hf, hf_grouped, ours, totals = [], [], [], []
    for _ in range(args.repeats):
        hf.append(hf_trainer(model_dir, fit_set.texts, labels, args.batch_size))
        hf_grouped.append(hf_trainer(model_dir, fit_set.texts, labels, args.batch_size, group_by_length=True))
        rate, total = scalecode_loop(model_dir, gold, args.batch_size)
        ours.append(rate)
        totals.append(total)
    results: dict[str, Any] = {
        "documents": len(fit_set),
        "batch_size": args.batch_size,
        "torch_threads": os.cpu_count(),
        "samples_per_second": {
            "transformers Trainer": round(statistics.median(hf), 1),
            "transformers Trainer, group_by_length": round(statistics.median(hf_grouped), 1),
            "scalecode (Ray Train)": round(statistics.median(ours), 1),
        },
        "runs": {
            "transformers Trainer": hf,
            "transformers Trainer, group_by_length": hf_grouped,
            "scalecode (Ray Train)": ours,
        },
        "scalecode_fit_seconds": totals,
        "ratio": round(statistics.median(ours) / statistics.median(hf), 3),
        "ratio_to_grouped": round(statistics.median(ours) / statistics.median(hf_grouped), 3),
    }
    epoch_seconds = len(fit_set) / statistics.median(ours)
    lines = [
        "# Training throughput",
        "",
        f"Full fine-tuning of all-MiniLM-L6-v2 on {len(fit_set):,} Rotten Tomatoes snippets, one epoch, "
        f"batch size {args.batch_size}, at most 64 tokens, fp32, {os.cpu_count()} torch threads; "
        f"median of {args.repeats} alternating runs.",
        "",
        "| loop | samples/s |",
        "|---|---:|",
        *[f"| {k} | {v:,.1f} |" for k, v in results["samples_per_second"].items()],
        "",
        f"- scalecode / Trainer (its defaults): {results['ratio']}",
        f"- scalecode / Trainer with train_sampling_strategy=group_by_length: {results['ratio_to_grouped']}",
        "- both use fused AdamW; scalecode batches documents of similar length by default "
        "(`group_by_length`), the Trainer only when asked.",
        f"- a whole scalecode fit took {statistics.median(totals):.0f} s, of which the epoch about "
        f"{epoch_seconds:.0f} s: the rest is starting Ray Train's workers, loading the model there, "
        "scoring the validation split and saving the model.",
    ]
    write_results("training_throughput", results, lines)


if __name__ == "__main__":
    main()

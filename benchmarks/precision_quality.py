"""What coding in int8 (or bf16) costs in quality: a run's trained encoder scored on the job's test split.

``precision: int8`` quantises an encoder's linear layers, which makes CPU coding faster but gives a
slightly different model. Throughput alone cannot say whether that is acceptable; this script takes a
finished run of a job, loads the encoder it trained (``RUN/models/BACKEND``) once per precision,
codes the job's own test split (same seed and groups as the run) and scores each with scalecode's
common scoring, with bootstrap intervals, next to how far its codes moved from fp32's.

    python benchmarks/precision_quality.py jobs/nyt-wang.yaml runs/nyt-wang minilm-full

Timings here are for orientation only (test split, one pass); benchmarks/encoder_throughput.py
measures speed properly.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from benchmarks_common import write_results

from scalecode import TaskType
from scalecode.config import load_job
from scalecode.plugins import load_plugins
from scalecode.predictions import predictions_table
from scalecode.runner import split_job_gold
from scalecode.scoring import metrics_for, score_predictions


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("job", type=Path)
    parser.add_argument("run", type=Path, help="the run's output folder")
    parser.add_argument("backend", help="a trained encoder backend of the job")
    parser.add_argument("--name", default=None, help="results file name (default: <job>_<backend>_precision)")
    args = parser.parse_args()

    import torch

    from scalecode_hf.devices import cpu_has_native_bf16

    plugins = load_plugins()
    job = load_job(args.job, plugins)
    backend = next((b for b in job.backends if b.name == args.backend), None)
    state = args.run / "models" / args.backend
    if backend is None or not state.is_dir():
        parser.error(f"{args.backend!r} is not a backend of {args.job} trained in {args.run}")
    _, _, test, task = split_job_gold(job, plugins.readers)
    evaluation = job.config.evaluation
    metrics = metrics_for(task, plugins.metrics, evaluation.metrics)
    precisions = ["fp32", "int8", *(["bf16"] if cpu_has_native_bf16() else [])]

    rows: dict[str, dict[str, Any]] = {}
    outputs: dict[str, Any] = {}
    for precision in precisions:
        params = {**backend.params.model_dump(), "precision": precision, "device": "cpu"}
        params["cpus"] = torch.get_num_threads()
        coder = backend.info.backend_class(task, params, state_dir=state)
        coder.load()
        started = time.perf_counter()
        predictions = coder.predict_batch(test.texts)
        seconds = time.perf_counter() - started
        table = predictions_table(predictions, ids=test.ids, backend=args.backend, task=task)
        scores = score_predictions(
            pl.from_arrow(table),
            test,
            metrics,
            backend=f"{args.backend} {precision}",
            n_boot=evaluation.bootstrap.n,
            confidence=evaluation.bootstrap.confidence,
            seed=evaluation.seed,
        )
        outputs[precision] = predictions
        rows[precision] = {
            "metrics": {name: estimate.to_dict() for name, estimate in scores.metrics.items()},
            "documents_per_second": len(test) / seconds,
        }
        reference = outputs["fp32"]
        if task.type is TaskType.REGRESSION:
            moved = np.abs(np.asarray(predictions.score) - np.asarray(reference.score))
            rows[precision]["mean absolute change from fp32"] = float(moved.mean())
            rows[precision]["largest change from fp32"] = float(moved.max())
        else:
            same = np.asarray(predictions.label) == np.asarray(reference.label)
            rows[precision]["agreement with fp32"] = float(same.mean())
        print(precision, rows[precision], flush=True)

    headline = [m for m in ("r2", "mse", "macro_f1", "cohen_kappa") if m in rows["fp32"]["metrics"]]
    moved_columns = [k for k in rows["fp32"] if k not in ("metrics", "documents_per_second")]
    lines = [
        f"# {args.backend} coded in fp32 and int8: quality on the test split ({args.job})",
        "",
        f"The encoder trained by `{args.run}`, loaded once per precision, coding the job's test split "
        f"({len(test):,} documents, the run's seed {evaluation.seed}); metrics with 95% bootstrap "
        "intervals. Documents/s: one pass, for orientation.",
        "",
        "| precision | " + " | ".join(headline + moved_columns) + " | documents/s |",
        "|---|" + "---|" * (len(headline) + len(moved_columns)) + "---:|",
    ]
    for precision, row in rows.items():
        estimates = [row["metrics"][m] for m in headline]
        cells = [f"{e['value']:.3f} [{e['ci_low']:.3f}, {e['ci_high']:.3f}]" for e in estimates]
        cells += [f"{row[k]:.3f}" for k in moved_columns]
        lines.append(f"| {precision} | " + " | ".join(cells) + f" | {row['documents_per_second']:.1f} |")
    name = args.name or f"{args.job.stem.replace('-', '_')}_{args.backend.replace('-', '_')}_precision"
    write_results(name, {"job": str(args.job), "run": str(args.run), "precisions": rows}, lines)


if __name__ == "__main__":
    main()

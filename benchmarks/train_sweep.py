"""Choose a trained backend's options on validation data alone: a small grid, the test split untouched.

A job's test split must not choose its settings, or its figures flatter. This script loads a job,
takes the training split the run would take (same seed, same groups), and fine-tunes one backend
once per candidate: each holds out its validation share of that training split, as ``scalecode
run`` does, and the candidate with the best validation score of its best epoch wins. Write the
winner into the job file, then run the job.

    python benchmarks/train_sweep.py jobs/nyt-wang.yaml minilm-full \\
        --candidate '{}' --candidate '{"dropout": 0.0}' --candidate '{"dropout": 0.0, "learning_rate": 3e-5}'
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks_common import write_results

from scalecode import FitConfig
from scalecode.config import load_job
from scalecode.inference import start_ray
from scalecode.plugins import load_plugins
from scalecode.runner import split_job_gold


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("job", type=Path)
    parser.add_argument("backend")
    parser.add_argument(
        "--candidate", action="append", default=[], help="JSON: train options over the job's (repeatable)"
    )
    parser.add_argument("--name", default=None, help="results file name (default: <job>_<backend>_sweep)")
    args = parser.parse_args()

    plugins = load_plugins()
    job = load_job(args.job, plugins)
    backend = next((b for b in job.backends if b.name == args.backend), None)
    if backend is None or backend.train is None:
        parser.error(f"{args.backend!r} is not a trained backend of {args.job}")
    _, train, _, task = split_job_gold(job, plugins.readers)
    start_ray()
    candidates = [json.loads(c) for c in args.candidate] or [{}]
    rows: list[dict[str, Any]] = []
    for overrides in candidates:
        # The validation run is what is compared; a refit after it would only double the time.
        options = type(backend.train).model_validate(
            {**backend.train.model_dump(), "refit": False, **overrides}
        )
        instance = backend.info.backend_class(task, backend.params)
        started = time.perf_counter()
        with tempfile.TemporaryDirectory() as out:
            instance.fit(
                train, None, FitConfig(output_dir=Path(out), seed=job.config.evaluation.seed, options=options)
            )
            history = json.loads((Path(out) / "training.json").read_text())
        best = max(history, key=lambda epoch: epoch["score"])
        rows.append(
            {
                "options": overrides,
                "best_epoch": best["epoch"],
                "epochs_run": len(history),
                "validation": {k: v for k, v in best.items() if k not in ("epoch", "samples_per_second")},
                "history": history,
                "seconds": round(time.perf_counter() - started, 1),
            }
        )
        print(json.dumps(rows[-1]["validation"] | {"options": overrides}), flush=True)
    job_options = backend.train.model_dump(exclude_defaults=True)
    winner = max(rows, key=lambda row: row["validation"]["score"])
    metrics = [k for k in rows[0]["validation"] if k not in ("score", "train_loss")]
    lines = [
        f"# Choosing {args.backend}'s training options on validation data ({args.job})",
        "",
        f"Training split of the job (seed {job.config.evaluation.seed}): {len(train):,} documents, of "
        "which each candidate holds out its validation share; the test split is never read. The job's "
        f"training options (beyond the defaults): `{json.dumps(job_options)}`; each candidate changes "
        "the ones it names.",
        "",
        "| options | best epoch | epochs run | " + " | ".join(metrics) + " | seconds |",
        "|---|---:|---:|" + "---:|" * len(metrics) + "---:|",
        *[
            f"| `{json.dumps(r['options'])}` | {r['best_epoch']} | {r['epochs_run']} | "
            + " | ".join(f"{r['validation'][m]:.3f}" for m in metrics)
            + f" | {r['seconds']:,.0f} |"
            for r in rows
        ],
        "",
        f"Chosen by the validation score: `{json.dumps(winner['options'])}`.",
    ]
    name = args.name or f"{args.job.stem.replace('-', '_')}_{args.backend.replace('-', '_')}_sweep"
    write_results(name, {"job": str(args.job), "backend": args.backend, "candidates": rows}, lines)


if __name__ == "__main__":
    main()

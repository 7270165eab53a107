"""Copy a finished ``scalecode run``'s comparison into benchmarks/results/, with the machine it ran on.

    python benchmarks/record_run.py runs/nyt-wang nyt_wang

writes benchmarks/results/nyt_wang.md (the run's comparison table) and nyt_wang.json (each backend's
headline metrics with their confidence intervals, training time and parameters, and the job). With
``--relative-to BACKEND`` it also gives every backend's gain over that one, the form in which Wang
(2024) reports fine-tuning against a dictionary.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from benchmarks_common import write_results


def gains(metrics: dict[str, Any], baseline: str) -> dict[str, dict[str, float]]:
    """Relative change of each higher- or lower-is-better metric against ``baseline``'s point estimate."""
    base = metrics["backends"][baseline]["metrics"]
    out: dict[str, dict[str, float]] = {}
    for name, result in metrics["backends"].items():
        row = {}
        for metric in ("r2", "mse", "macro_f1", "accuracy"):
            if metric in base and metric in result["metrics"] and base[metric]["value"]:
                value, reference = result["metrics"][metric]["value"], base[metric]["value"]
                row[metric] = (value - reference) / abs(reference)
        out[name] = row
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("run", type=Path, help="the run's output folder")
    parser.add_argument("name", help="the results' file name, without extension")
    parser.add_argument("--relative-to", help="backend to report every other backend's gain against")
    args = parser.parse_args()

    metrics = json.loads((args.run / "metrics.json").read_text(encoding="utf-8"))
    manifest = json.loads((args.run / "manifest.json").read_text(encoding="utf-8"))
    comparison = (args.run / "comparison.md").read_text(encoding="utf-8").splitlines()
    results: dict[str, Any] = {
        "job": manifest.get("job"),
        "timings": manifest.get("timings"),
        "primary_metric": metrics["primary_metric"],
        "resampled": metrics.get("resampled", "documents"),  # what the intervals' resamples drew
        "ranking": metrics["ranking"],
        "backends": {
            name: {
                "metrics": result["metrics"],
                "n_gold": result["n_gold"],
                "fit": result.get("fit"),
                "docs_per_second": result.get("docs_per_second"),
            }
            for name, result in metrics["backends"].items()
        },
    }
    lines = [comparison[0], *comparison[1:]]
    if args.relative_to:
        results["relative_to"] = args.relative_to
        results["gains"] = gains(metrics, args.relative_to)
        lines += ["", f"## Change against {args.relative_to} (point estimates)", ""]
        lines += ["| backend | " + " | ".join(next(iter(results["gains"].values()))) + " |"]
        lines += ["|---|" + "---:|" * len(next(iter(results["gains"].values())))]
        for name, row in results["gains"].items():
            lines.append(f"| {name} | " + " | ".join(f"{v:+.1%}" for v in row.values()) + " |")
    job_file = manifest.get("job_file", "JOB.yaml")
    lines += [
        "",
        f"Reproduce: `scalecode run {job_file}`, then "
        f"`python benchmarks/record_run.py {args.run} {args.name}"
        + (f" --relative-to {args.relative_to}" if args.relative_to else "")
        + "`.",
    ]
    write_results(args.name, results, lines)


if __name__ == "__main__":
    main()

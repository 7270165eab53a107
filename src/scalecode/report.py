"""metrics.json and the Markdown comparison, built from stored predictions and scores."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from scalecode.config import Job
from scalecode.corpus import CorpusSummary
from scalecode.curves import curve_markdown
from scalecode.manifest import write_json
from scalecode.plugins import Plugins
from scalecode.scoring import BackendScores, Metric, metrics_for
from scalecode.scoring.bootstrap import resampling_unit
from scalecode.scoring.paired import PairedComparison
from scalecode.scoring.ranking import meets_min_coverage, rank
from scalecode.scoring.table import (
    NO_RESAMPLES,
    comparison_markdown,
    confusion_markdown,
    format_rate,
    grouped_note,
    paired_markdown,
    per_label_markdown,
)


def primary_metric(job: Job, plugins: Plugins) -> Metric:
    """The metric that ranks backends: the job's choice, else the first for the task type."""
    metrics = metrics_for(job.task, plugins.metrics, job.config.evaluation.metrics)
    wanted = job.config.evaluation.primary_metric
    if wanted is not None:
        return next(m for m in metrics_for(job.task, plugins.metrics) if m.name == wanted)
    return metrics[0]


def write_report(
    out: Path,
    job: Job,
    plugins: Plugins,
    scores: Sequence[BackendScores],
    details: Mapping[str, Mapping[str, Any]],
    corpus: Sequence[CorpusSummary],
    timings: Mapping[str, float],
    curves: Mapping[str, Sequence[dict[str, Any]]] | None = None,
    paired: PairedComparison | None = None,
) -> str:
    """Write metrics.json and comparison.md; return the summary for the terminal.

    ``paired``: each backend minus another (the best), on the documents both coded.
    """
    evaluation = job.config.evaluation
    metrics = metrics_for(job.task, plugins.metrics, evaluation.metrics)
    primary = primary_metric(job, plugins)
    min_coverage = evaluation.min_coverage
    # With no resamples every interval is n/a: the tables then show figures alone and say why.
    confidence = evaluation.bootstrap.confidence if evaluation.bootstrap.n else None
    grouped = job.config.data.gold.group_column if job.config.data.gold else None  # resampled whole
    ranked = rank(scores, primary, min_coverage=min_coverage) if scores else []
    write_json(
        out / "metrics.json",
        {
            "task": job.task.model_dump(mode="json"),
            "primary_metric": primary.name,
            "confidence": evaluation.bootstrap.confidence,
            "bootstrap_resamples": evaluation.bootstrap.n,
            "resampled": resampling_unit(grouped),
            "seed": evaluation.seed,
            "ranking": [s.backend for s in ranked],
            "min_coverage": min_coverage,
            "backends": {
                s.backend: {
                    **s.to_dict(),
                    # False: ranked after every backend that meets it, and not the best unless none does.
                    "meets_min_coverage": meets_min_coverage(s, min_coverage),
                    **dict(details.get(s.backend, {})),
                }
                for s in scores
            },
            "paired_differences": paired.to_dict() if paired else None,
            "corpus": [asdict(c) for c in corpus],
            "learning_curves": dict(curves or {}),
        },
    )
    lines = [f"# {job.task.name}: {job.task.type} task", ""]
    summary: list[str] = []
    if scores:
        table = comparison_markdown(scores, metrics, primary, details, confidence, min_coverage=min_coverage)
        summary += [table, ""]
        lines += ["## Comparison on the gold test split", "", table, ""]
        if grouped and confidence is not None:
            lines += [grouped_note(grouped), ""]
        if paired and paired.differences:
            differences = paired_markdown(paired.differences, metrics, paired.baseline, confidence)
            lines += [f"## Against {paired.baseline}, paired", "", differences, ""]
            summary += [f"Against {paired.baseline}, paired:", "", differences, ""]
        for result in ranked:
            lines += [f"## {result.backend}", ""]
            fit = details.get(result.backend, {}).get("fit")
            if fit:
                params = fit.get("trainable_parameters")
                lines.append(
                    f"Trained in {fit['seconds']:.1f} s on {fit['n_train']} documents"
                    + (f"; {params:,} trainable parameters." if params else ".")
                )
                lines += [f"- {note}" for note in fit.get("notes", [])]
                lines.append("")
            spent = details.get(result.backend, {}).get("spending")
            if spent:
                cost = spent.get("cost_usd")
                lines.append(
                    f"Coding the test split: {spent.get('input_tokens', 0):,.0f} input and "
                    f"{spent.get('output_tokens', 0):,.0f} output tokens, "
                    + (f"${cost:,.4f}" if cost is not None else "cost unknown (no price)")
                    + f"; {spent.get('cached_documents', 0):,.0f} documents answered from the cache."
                )
                lines.append("")
            if result.n_errors:
                retry = details.get(result.backend, {}).get("errors_to_retry")
                lines.append(
                    f"{result.n_errors} of {result.n_gold} documents not coded"
                    + (f" ({retry} of them coded again by the next run)" if retry else "")
                    + "; first reasons:"
                )
                lines += [f"- `{e['id']}`: {e['error']}" for e in result.error_examples[:5]]
                lines.append("")
            if result.per_label:
                lines += [per_label_markdown(result), ""]
            if result.confusion:
                lines += [confusion_markdown(result), ""]
    if curves:
        lines += [
            "## Learning curves",
            "",
            "Each row trains on a seeded sample of the training split and scores on the same test split; "
            + (
                "the interval pools the bootstrap draws of every repeat, so it is the spread of one run "
                "(over test documents and training samples), not an interval for the mean beside it."
                if confidence is not None
                else f"each figure is the mean over repeats, {NO_RESAMPLES}."
            ),
            "",
        ]
        for backend, points in curves.items():
            table = curve_markdown(backend, points, metrics, intervals=confidence is not None)
            lines += [table, ""]
            summary += [table, ""]
    if corpus:
        costs = any(c.cost_usd is not None for c in corpus)
        corpus_lines = [
            "| backend | documents | coded now | errors | already coded | shards written | seconds | docs/s |"
            + (" cost $ |" if costs else ""),
            "|---|---:|---:|---:|---:|---:|---:|---:|" + ("---:|" if costs else ""),
        ]
        for c in corpus:
            cost = "-" if c.cost_usd is None else f"{c.cost_usd:,.4f}"
            corpus_lines.append(
                f"| {c.backend} | {c.documents:,} | {c.coded:,} | {c.errors:,} | {c.already_coded:,} | "
                f"{c.shards_written:,} | {c.seconds:.1f} | {format_rate(c.docs_per_s)} |"
                + (f" {cost} |" if costs else "")
            )
        retries = [f"{c.backend}: {c.to_retry:,}" for c in corpus if c.to_retry]
        if retries:  # the errors a backend expects to pass (an API down): the next run codes them again
            corpus_lines += ["", f"Errors the next run codes again: {', '.join(retries)}."]
        lines += ["## Corpus", "", *corpus_lines, ""]
        summary += ["Corpus:", "", *corpus_lines, ""]
        for c in corpus:
            for reason, count in sorted(c.error_reasons.items(), key=lambda kv: -kv[1])[:5]:
                lines.append(f"- {c.backend}: {count:,} × {reason}")
        lines.append("")
    lines.append(f"Timings (s): {', '.join(f'{k} {v:.1f}' for k, v in timings.items())}")
    (out / "comparison.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    summary.append(f"Results in {out}/ (comparison.md, metrics.json, manifest.json, predictions/)")
    return "\n".join(summary)

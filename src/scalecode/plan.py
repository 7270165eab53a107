"""``scalecode plan``: what a job would send and spend, before anything is sent.

For each backend that pays per call (it implements ``Backend.estimate``), the estimate covers the
gold test split and the corpus. A large corpus is estimated from its first ``sample`` documents and
scaled to its size; requests the backend's cache already holds (from an earlier run of the job in
the same run directory) are counted as cached and cost nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import polars as pl

from scalecode.backend import Estimate
from scalecode.config import Job, redact_text
from scalecode.data import inspect_corpus
from scalecode.plugins import Plugins
from scalecode.runner import spec_for, split_job_gold
from scalecode.sources import TEXT, Piece, read_piece

SAMPLE = 10_000


@dataclass(frozen=True)
class PlanRow:
    backend: str
    part: str  # "gold test" or "corpus"
    estimate: Estimate | None  # None: runs locally, costs nothing per call
    scaled_from: int | None = None  # corpus documents the estimate was made on, where scaled
    # With ``corpus_backends: best`` each backend's corpus row is what it would cost if it wins:
    # one of them is spent, so none is added to the total.
    if_best: bool = False


def _scale(estimate: Estimate, factor: float) -> Estimate:
    return replace(
        estimate,
        documents=round(estimate.documents * factor),
        requests=round(estimate.requests * factor),
        cached=round(estimate.cached * factor),
        input_tokens=round(estimate.input_tokens * factor),
        output_tokens=round(estimate.output_tokens * factor),
        cost_usd=None if estimate.cost_usd is None else estimate.cost_usd * factor,
    )


def corpus_sample(job: Job, plugins: Plugins, limit: int) -> tuple[list[str], int]:
    """Up to ``limit`` non-empty texts from the start of the corpus, and the corpus's size."""
    config = job.config.data.corpus
    assert config is not None
    corpus = inspect_corpus(config, plugins.readers)
    texts: list[str] = []
    for file in corpus.files:
        for chunk in read_piece(Piece(file), config, plugins.readers, limit):
            column = pl.Series(chunk.column(TEXT)).cast(pl.String, strict=False).drop_nulls()
            texts += [t for t in column.head(limit - len(texts)).to_list() if t.strip()]
            if len(texts) >= limit:
                return texts, corpus.n_documents
    return texts, corpus.n_documents


def plan_job(
    job: Job,
    plugins: Plugins,
    out: Path,
    *,
    plugins_dir: str | None = None,
    allow: tuple[str, ...] | None = None,
    sample: int = SAMPLE,
) -> list[PlanRow]:
    config = job.config
    task = job.task
    test_texts: list[str] = []
    if config.data.gold is not None:
        # The run directory's own split where it has one (``out``: output.dir, or the one given with
        # --output, as ``run --output`` codes): the documents the run will code.
        _, _, test, task = split_job_gold(job, plugins.readers, out)
        test_texts = test.texts
    corpus_texts: list[str] = []
    corpus_size = 0
    if config.data.corpus is not None:
        corpus_texts, corpus_size = corpus_sample(job, plugins, sample)
    chosen = config.output.corpus_backends
    rows: list[PlanRow] = []
    for backend in job.backends:
        codes_corpus = chosen in ("all", "best") or backend.name in chosen
        if backend.train is not None:
            rows.append(PlanRow(backend.name, "all", None))  # trained backends run locally
            continue
        instance = spec_for(backend, task, None, plugins_dir, allow, out / "work" / backend.name).build()
        if test_texts:
            rows.append(PlanRow(backend.name, "gold test", instance.estimate(test_texts)))
        if corpus_texts and codes_corpus:
            estimate = instance.estimate(corpus_texts)
            factor = corpus_size / len(corpus_texts)
            scaled = estimate if estimate is None or factor == 1 else _scale(estimate, factor)
            part = "corpus, if best" if chosen == "best" else "corpus"
            sampled = len(corpus_texts) if factor != 1 else None
            rows.append(PlanRow(backend.name, part, scaled, sampled, if_best=chosen == "best"))
    return rows


def render(rows: list[PlanRow]) -> str:
    lines = [
        "| backend | part | documents | requests | cached | input tokens | output tokens | cost (USD) |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    total = 0.0
    unknown = False
    notes: list[str] = []
    for row in rows:
        e = row.estimate
        if e is None:
            lines.append(f"| {row.backend} | {row.part} | | | | | | free (runs locally) |")
            continue
        cost = "unknown" if e.cost_usd is None else f"{e.cost_usd:,.4f}"
        if row.if_best:
            notes.append(
                "corpus_backends is best: only the best backend on the gold codes the corpus; "
                "add its 'corpus, if best' row to the total"
            )
        else:
            unknown = unknown or e.cost_usd is None
            total += e.cost_usd or 0.0
        lines.append(
            f"| {row.backend} | {row.part} | {e.documents:,} | {e.requests:,} | {e.cached:,} | "
            f"{e.input_tokens:,} | {e.output_tokens:,} | {cost} |"
        )
        if row.scaled_from:
            notes.append(f"{row.backend}: corpus estimated from its first {row.scaled_from:,} documents")
        notes += [f"{row.backend}: {note}" for note in e.notes]
    lines.append("")
    lines.append(f"Estimated cost of new requests: ${total:,.4f}" + (" plus unknown" if unknown else ""))
    lines.append("Tokens are estimated (about four characters per token); cached requests cost nothing.")
    lines += [f"- {note}" for note in dict.fromkeys(notes)]
    # Backends' notes name their endpoint, which may have come from the environment with a login
    # or a key in it: what is printed never holds one.
    return redact_text("\n".join(lines))

"""A run's choices follow the coverage rule: the paired baseline, ``corpus_backends: best``, the report.

The runner's own methods on stored predictions, without Ray: ``lucky`` coded 4 of 40 test documents
and got them exactly right; ``steady`` coded all 40, close but not exact.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from scalecode.backend import GoldSet
from scalecode.config import Job, load_job
from scalecode.report import write_report
from scalecode.runner import Runner
from scalecode.scoring import BackendScores, metrics_for, score_predictions

N_TEST = 40


def load(workdir: Path, plugins, evaluation: str = "") -> Job:
    (workdir / "gold.csv").write_text("id,text,label\n1,good day,3\n2,bad day,-1\n")
    (workdir / "corpus.csv").write_text("id,text\n1,a day\n")
    (workdir / "lex.txt").write_text("good\t2.0\nbad\t-2.0\n")
    backend = "    plugin: lexicon\n    params: {lexicon: lex.txt}\n"
    (workdir / "job.yaml").write_text(
        textwrap.dedent("""\
        task: {type: regression, scale: {min: -4, max: 4}}
        data: {gold: {path: gold.csv}, corpus: {path: corpus.csv}}
        backends:
        """)
        + f"  - name: lucky\n{backend}  - name: steady\n{backend}"
        + f"evaluation: {{bootstrap: {{n: 50}}{evaluation}}}\n"
        + "output: {dir: out, corpus_backends: best}\n"
    )
    return load_job(workdir / "job.yaml", plugins)


@pytest.fixture
def workdir(tmp_path, monkeypatch) -> Path:
    monkeypatch.chdir(tmp_path)  # the job's paths are relative to where scalecode runs
    return tmp_path


def gold_and_predictions(job: Job, out: Path) -> GoldSet:
    """The test split and both backends' stored predictions under ``out``."""
    rng = np.random.default_rng(0)
    ids = [f"d{i:02d}" for i in range(N_TEST)]
    targets = [float(t) for t in rng.uniform(-4, 4, N_TEST)]
    test = GoldSet(task=job.task, ids=ids, texts=["text"] * N_TEST, targets=targets)
    steady = [t + float(e) for t, e in zip(targets, rng.normal(0, 1, N_TEST), strict=True)]
    lucky = [t if i < 4 else None for i, t in enumerate(targets)]  # exact on 4, errors on the rest
    frames = {
        "steady": pl.DataFrame({"id": ids, "score": steady, "error": [None] * N_TEST}),
        "lucky": pl.DataFrame(
            {"id": ids, "score": lucky, "error": [None if s is not None else "API error" for s in lucky]}
        ),
    }
    folder = out / "predictions" / "gold"
    folder.mkdir(parents=True)
    for name, frame in frames.items():
        frame.with_columns(pl.col("error").cast(pl.String)).write_parquet(folder / f"{name}.parquet")
    return test


def score_all(job: Job, plugins, out: Path, test: GoldSet, n_boot: int = 50) -> list[BackendScores]:
    metrics = metrics_for(job.task, plugins.metrics)
    return [
        score_predictions(
            pl.read_parquet(out / "predictions" / "gold" / f"{name}.parquet"),
            test,
            metrics,
            backend=name,
            n_boot=n_boot,
        )
        for name in ("lucky", "steady")
    ]


def runner_for(job: Job, plugins, out: Path, echoed: list[str]) -> Runner:
    return Runner(job, plugins, out=out, echo=echoed.append, progress=False)


def test_the_paired_baseline_and_best_backend_meet_min_coverage(workdir, plugins):
    job = load(workdir, plugins)
    out = workdir / "out"
    test = gold_and_predictions(job, out)
    scores = score_all(job, plugins, out, test)
    assert scores[0].metrics["r2"].value > scores[1].metrics["r2"].value  # lucky's figure is better
    echoed: list[str] = []
    runner = runner_for(job, plugins, out, echoed)

    paired = runner._paired(scores, test)
    assert paired is not None and paired.baseline == "steady"
    assert set(paired.differences) == {"lucky"}
    assert [b.name for b in runner._corpus_backends(scores)] == ["steady"]
    assert not any("warning" in line for line in echoed)


def test_a_backend_below_min_coverage_is_chosen_only_when_none_meets_it(workdir, plugins):
    job = load(workdir, plugins, ", min_coverage: 1.0")
    out = workdir / "out"
    test = gold_and_predictions(job, out)
    # steady misses one document too: now neither codes all of the test split.
    frame = pl.read_parquet(out / "predictions" / "gold" / "steady.parquet")
    frame.head(N_TEST - 1).write_parquet(out / "predictions" / "gold" / "steady.parquet")
    scores = score_all(job, plugins, out, test)
    echoed: list[str] = []
    runner = runner_for(job, plugins, out, echoed)

    assert [b.name for b in runner._corpus_backends(scores)] == ["lucky"]
    warning = next(line for line in echoed if line.startswith("warning:"))
    assert "evaluation.min_coverage 1" in warning and "lucky" in warning
    assert "coded 10.0% of the test split (4 of 40)" in warning
    assert runner._paired(scores, test).baseline == "lucky"  # type: ignore[union-attr]


def test_the_report_ranks_flags_and_explains_low_coverage(workdir, plugins):
    job = load(workdir, plugins)
    out = workdir / "out"
    test = gold_and_predictions(job, out)
    scores = score_all(job, plugins, out, test)
    paired = runner_for(job, plugins, out, [])._paired(scores, test)
    write_report(out, job, plugins, scores, {}, [], {}, paired=paired)

    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["ranking"] == ["steady", "lucky"]
    assert metrics["min_coverage"] == 0.95
    assert metrics["backends"]["lucky"]["meets_min_coverage"] is False
    assert metrics["backends"]["steady"]["meets_min_coverage"] is True
    assert metrics["backends"]["lucky"]["coverage"] == pytest.approx(0.1)  # existing keys unchanged
    assert metrics["paired_differences"]["baseline"] == "steady"
    comparison = (out / "comparison.md").read_text()
    assert "| lucky † |" in comparison
    assert (
        "- lucky: coded 10.0% of the test split (4 of 40), below evaluation.min_coverage (0.95)."
        in comparison
    )
    assert "## Against steady, paired" in comparison

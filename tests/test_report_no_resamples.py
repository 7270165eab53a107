"""A run with ``evaluation.bootstrap.n: 0`` draws no resamples: its report shows figures alone and
says there are no intervals, rather than an ``[n/a, n/a]`` beside every figure under a note that
promises intervals and marks of supported differences."""

from __future__ import annotations

from scalecode.curves import curve_markdown
from scalecode.report import write_report
from tests.test_ranking_run import gold_and_predictions, load, runner_for, score_all, workdir

__all__ = ["workdir"]  # the fixture, shared with the ranking tests

NO_RESAMPLES = "without intervals (no bootstrap resamples were drawn)"


def test_a_run_without_resamples_reports_figures_without_intervals(workdir, plugins):
    job = load(workdir, plugins, "")
    job.config.evaluation.bootstrap.n = 0
    out = workdir / "out"
    test = gold_and_predictions(job, out)
    scores = score_all(job, plugins, out, test, n_boot=0)
    paired = runner_for(job, plugins, out, [])._paired(scores, test)
    assert paired is not None
    write_report(out, job, plugins, scores, {}, [], {}, paired=paired)

    comparison = (out / "comparison.md").read_text()
    assert "n/a" not in comparison
    assert "interval" not in comparison.replace(NO_RESAMPLES, "")
    assert comparison.count(NO_RESAMPLES) == 2  # the comparison's note and the paired table's
    r2 = scores[1].metrics["r2"].value
    assert f"| steady | 40 | 100.0% | {r2:.3f} |" in comparison
    assert " *" not in comparison  # no mark of a supported difference without an interval


def test_a_learning_curve_without_resamples_shows_the_mean_alone():
    point = {
        "size": 10,
        "repeats": 2,
        "metrics": {"r2": {"value": 0.5, "ci_low": float("nan"), "ci_high": float("nan")}},
    }

    class R2:
        name = "r2"

    table = curve_markdown("b", [point], [R2()], intervals=False)  # type: ignore[list-item]
    assert "| 10 | 2 | - | 0.500 |" in table and "n/a" not in table
    assert "[n/a, n/a]" in curve_markdown("b", [point], [R2()])  # type: ignore[list-item]

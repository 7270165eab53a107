"""Metrics against scikit-learn, scipy and the krippendorff package, and against published values."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from sklearn import metrics as skm

from scalecode.scoring import (
    BUILTIN_METRICS,
    bootstrap,
    krippendorff_alpha,
    krippendorff_alpha_score,
)
from scalecode.scoring.base import Resamples
from scalecode.scoring.bootstrap import resamples
from scalecode.task import TaskType

NAN = np.nan
# Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability", example C: 4 observers,
# 12 units, missing values. Published: nominal .743, ordinal .815, interval .849, ratio .797.
EXAMPLE_C = [
    [1, 2, 3, 3, 2, 1, 4, 1, 2, NAN, NAN, NAN],
    [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, NAN, 3],
    [NAN, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, NAN],
    [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, NAN],
]
# The same paper, example A: binary data, two observers, no missing data. Published alpha .095.
EXAMPLE_A = ([0, 1, 0, 0, 0, 0, 0, 0, 1, 0], [1, 1, 1, 0, 0, 1, 0, 0, 0, 0])


def metric(name: str, task_type: TaskType):
    return next(m for m in BUILTIN_METRICS if m.name == name and task_type in m.task_types)


def full_sample(n: int) -> Resamples:
    """One 'resample' that is the sample itself: batched metrics must equal the point estimates."""
    return Resamples(counts=np.ones((1, n)))


@pytest.mark.parametrize(
    ("level", "published"), [("nominal", 0.743), ("ordinal", 0.815), ("interval", 0.849), ("ratio", 0.797)]
)
def test_alpha_matches_krippendorff_2011_example_c(level, published):
    assert krippendorff_alpha(EXAMPLE_C, level=level) == pytest.approx(published, abs=5e-4)


def test_two_coder_alpha_matches_krippendorff_2011_example_a():
    assert krippendorff_alpha_score(*EXAMPLE_A, level="nominal") == pytest.approx(0.095, abs=5e-4)
    batched = metric("krippendorff_alpha", TaskType.CLASSIFICATION).batched
    y_true, y_pred = (np.array(v) for v in EXAMPLE_A)
    assert batched(y_true, y_pred, full_sample(10))[0] == pytest.approx(0.095, abs=5e-4)


def test_interval_alpha_closed_form_equals_the_general_algorithm():
    rng = np.random.default_rng(1)
    a = rng.integers(-4, 5, 300).astype(float)  # few distinct values, so the general algorithm can run
    b = np.clip(a + rng.integers(-2, 3, 300), -4, 4)
    general = krippendorff_alpha(np.vstack([a, b]), level="interval")
    assert krippendorff_alpha_score(a, b, level="interval") == pytest.approx(general, rel=1e-12)
    batched = metric("krippendorff_alpha", TaskType.REGRESSION).batched
    assert batched(a, b, full_sample(300))[0] == pytest.approx(general, rel=1e-12)


@pytest.fixture
def classification_codes():
    rng = np.random.default_rng(7)
    y_true = rng.integers(0, 4, 500)
    noise = rng.random(500) < 0.35
    y_pred = np.where(noise, rng.integers(0, 4, 500), y_true)
    y_pred[y_pred == 3] = 2  # one label never predicted: exercises zero division
    return y_true, y_pred


def test_classification_metrics_match_sklearn(classification_codes):
    y_true, y_pred = classification_codes
    expected = {
        "accuracy": skm.accuracy_score(y_true, y_pred),
        "macro_f1": skm.f1_score(y_true, y_pred, average="macro", zero_division=0),
        "micro_f1": skm.f1_score(y_true, y_pred, average="micro"),
        "weighted_f1": skm.f1_score(y_true, y_pred, average="weighted", zero_division=0),
        "cohen_kappa": skm.cohen_kappa_score(y_true, y_pred),
        "krippendorff_alpha": krippendorff_alpha(np.vstack([y_true, y_pred]), level="nominal"),
        "krippendorff_alpha_ordinal": krippendorff_alpha(np.vstack([y_true, y_pred]), level="ordinal"),
    }
    sample = full_sample(len(y_true))
    for name, value in expected.items():
        m = metric(name, TaskType.CLASSIFICATION)
        assert m.func(y_true, y_pred) == pytest.approx(value, rel=1e-12), name
        assert m.batched(y_true, y_pred, sample)[0] == pytest.approx(value, rel=1e-9), name


def test_multilabel_metrics_match_sklearn():
    rng = np.random.default_rng(3)
    y_true = (rng.random((400, 5)) < 0.3).astype(np.int8)
    y_pred = np.where(rng.random((400, 5)) < 0.2, 1 - y_true, y_true).astype(np.int8)
    y_pred[:, 4] = 0
    expected = {
        "macro_f1": skm.f1_score(y_true, y_pred, average="macro", zero_division=0),
        "micro_f1": skm.f1_score(y_true, y_pred, average="micro", zero_division=0),
        "subset_accuracy": skm.accuracy_score(y_true, y_pred),
        "hamming_loss": skm.hamming_loss(y_true, y_pred),
    }
    for name, value in expected.items():
        m = metric(name, TaskType.MULTILABEL)
        assert m.func(y_true, y_pred) == pytest.approx(value, rel=1e-12), name
        assert m.batched(y_true, y_pred, full_sample(400))[0] == pytest.approx(value, rel=1e-9), name


def test_regression_metrics_match_sklearn_and_scipy():
    rng = np.random.default_rng(5)
    y_true = rng.normal(size=300)
    y_pred = 0.6 * y_true + rng.normal(scale=0.7, size=300)
    expected = {
        "r2": skm.r2_score(y_true, y_pred),
        "mse": skm.mean_squared_error(y_true, y_pred),
        "rmse": np.sqrt(skm.mean_squared_error(y_true, y_pred)),
        "mae": skm.mean_absolute_error(y_true, y_pred),
        "pearson_r": stats.pearsonr(y_true, y_pred).statistic,
        "spearman_rho": stats.spearmanr(y_true, y_pred).statistic,
    }
    for name, value in expected.items():
        m = metric(name, TaskType.REGRESSION)
        assert m.func(y_true, y_pred) == pytest.approx(value, rel=1e-12), name
        assert m.batched(y_true, y_pred, full_sample(300))[0] == pytest.approx(value, rel=1e-9), name


def test_batched_metrics_equal_library_calls_on_every_resample(classification_codes):
    """The vectorised bootstrap computes the same statistic as calling the library per resample."""
    y_true, y_pred = classification_codes
    sample = next(resamples(len(y_true), 20, seed=11))
    for name in ("accuracy", "macro_f1", "weighted_f1", "cohen_kappa"):
        m = metric(name, TaskType.CLASSIFICATION)
        looped = [m.func(y_true[row], y_pred[row]) for row in sample.rows()]
        np.testing.assert_allclose(m.batched(y_true, y_pred, sample), looped, rtol=1e-9, err_msg=name)
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=200), rng.normal(size=200)
    sample = next(resamples(200, 20, seed=3))
    for name in ("r2", "mse", "mae", "pearson_r", "spearman_rho", "krippendorff_alpha"):
        m = metric(name, TaskType.REGRESSION)
        looped = [m.func(a[row], b[row]) for row in sample.rows()]
        np.testing.assert_allclose(m.batched(a, b, sample), looped, rtol=1e-9, err_msg=name)


def test_bootstrap_is_seeded_and_brackets_the_estimate(classification_codes):
    y_true, y_pred = classification_codes
    metrics = [m for m in BUILTIN_METRICS if TaskType.CLASSIFICATION in m.task_types]
    first = bootstrap(metrics, y_true, y_pred, n_boot=500, seed=4)
    again = bootstrap(metrics, y_true, y_pred, n_boot=500, seed=4)
    other = bootstrap(metrics, y_true, y_pred, n_boot=500, seed=5)
    assert first == again
    assert first["accuracy"] != other["accuracy"]
    for name, estimate in first.items():
        assert estimate.n == len(y_true)
        assert estimate.ci_low <= estimate.value <= estimate.ci_high, name
        assert estimate.ci_high - estimate.ci_low > 0, name


def test_bootstrap_interval_covers_known_accuracy():
    """A 95% interval of an accuracy measured on n=2000 is about +-2.1 points wide."""
    rng = np.random.default_rng(0)
    y_true = rng.integers(0, 2, 2000)
    y_pred = np.where(rng.random(2000) < 0.8, y_true, 1 - y_true)
    estimate = bootstrap([metric("accuracy", TaskType.CLASSIFICATION)], y_true, y_pred, n_boot=2000, seed=1)[
        "accuracy"
    ]
    p = estimate.value
    half_width = 1.96 * np.sqrt(p * (1 - p) / 2000)
    assert estimate.ci_low == pytest.approx(p - half_width, abs=0.004)
    assert estimate.ci_high == pytest.approx(p + half_width, abs=0.004)


def test_custom_metric_without_batched_version_is_bootstrapped_by_calls():
    from scalecode.scoring import Metric

    bias = Metric("bias", lambda t, p: float(np.mean(p - t)), frozenset({TaskType.REGRESSION}))
    y = np.linspace(0, 1, 50)
    estimate = bootstrap([bias], y, y + 0.5, n_boot=100, seed=0)["bias"]
    assert estimate.value == pytest.approx(0.5)
    assert estimate.ci_low == pytest.approx(0.5)
    assert estimate.ci_high == pytest.approx(0.5)


def one_code_resample(n: int) -> Resamples:
    """Two 'resamples': the first draws document 0 n times (one code only), the second is the sample."""
    counts = np.zeros((2, n))
    counts[0, 0], counts[1] = n, 1
    return Resamples(counts=counts)


def test_figures_a_resample_leaves_undefined_are_left_out_not_scored_0_or_1():
    y_true = np.array([0] * 18 + [1] * 2)
    sample = one_code_resample(len(y_true))
    for name in ("cohen_kappa", "krippendorff_alpha"):
        draws = metric(name, TaskType.CLASSIFICATION).batched(y_true, y_true.copy(), sample)
        assert np.isnan(draws[0]) and draws[1] == pytest.approx(1.0), name
    assert np.isnan(krippendorff_alpha_score(np.zeros(5), np.zeros(5)))  # and no exception


def test_macro_f1_draws_equal_sklearn_on_each_resample():
    """A label a resample draws neither in gold nor in predictions is left out, as scikit-learn does."""
    rng = np.random.default_rng(9)
    y_true = np.array([0] * 100 + [1] * 60 + [2] * 37 + [3] * 3)
    y_pred = np.where(rng.random(len(y_true)) < 0.2, rng.integers(0, 3, len(y_true)), y_true)
    sample = next(resamples(len(y_true), 200, seed=1))
    assert (sample.counts[:, y_true == 3].sum(axis=1) == 0).any()  # some draws miss the rare label
    for name, average in (("macro_f1", "macro"), ("weighted_f1", "weighted")):
        expected = [
            skm.f1_score(y_true[row], y_pred[row], average=average, zero_division=0) for row in sample.rows()
        ]
        batched = metric(name, TaskType.CLASSIFICATION).batched(y_true, y_pred, sample)
        np.testing.assert_allclose(batched, expected, rtol=1e-12, err_msg=name)
    # The one-code draw of a coder that never predicts label 1 has only label 0 in it: F1 1.0.
    gold, zeros = np.array([0] * 18 + [1] * 2), np.zeros(20, dtype=np.int64)
    draws = metric("macro_f1", TaskType.CLASSIFICATION).batched(gold, zeros, one_code_resample(20))
    assert draws[0] == pytest.approx(skm.f1_score(np.zeros(20), zeros, average="macro")) == 1.0
    assert draws[1] == pytest.approx(skm.f1_score(gold, zeros, average="macro", zero_division=0))


def test_a_perfect_coder_has_the_interval_1_1_however_rare_a_label():
    y_true = np.array([0] * 100 + [1] * 60 + [2] * 37 + [3] * 3)
    metrics = [metric(name, TaskType.CLASSIFICATION) for name in ("macro_f1", "weighted_f1")]
    for name, estimate in bootstrap(metrics, y_true, y_true.copy(), n_boot=1000, seed=0).items():
        assert (estimate.value, estimate.ci_low, estimate.ci_high) == (1.0, 1.0, 1.0), name
    labels = np.zeros((200, 4), dtype=np.int8)
    labels[:100, 0] = labels[50:160, 1] = labels[150:197, 2] = labels[197:, 3] = 1
    estimate = bootstrap(
        [metric("macro_f1", TaskType.MULTILABEL)], labels, labels.copy(), n_boot=1000, seed=0
    )
    assert (estimate["macro_f1"].ci_low, estimate["macro_f1"].ci_high) == (1.0, 1.0)


def test_multilabel_macro_f1_averages_over_the_labels_gold_or_predictions_use():
    """Per resample and on the whole sample: a codebook label nobody used is left out, not scored 0."""
    rng = np.random.default_rng(4)
    y_true = (rng.random((300, 5)) < 0.3).astype(np.int8)
    y_true[:, 3] = 0
    y_true[:4, 3] = 1  # rare: many resamples draw none of these documents
    y_true[:, 4] = 0  # a label nobody uses
    y_pred = np.where(rng.random((300, 5)) < 0.15, 1 - y_true, y_true).astype(np.int8)
    y_pred[:, 3:] = y_true[:, 3:]
    m = metric("macro_f1", TaskType.MULTILABEL)
    used = [0, 1, 2, 3]
    expected = skm.f1_score(y_true, y_pred, average="macro", labels=used, zero_division=0)
    assert m.func(y_true, y_pred) == pytest.approx(expected, rel=1e-12)
    sample = next(resamples(300, 200, seed=2))
    assert (sample.counts[:, :4].sum(axis=1) == 0).any()
    expected_draws = []
    for row in sample.rows():
        t, p = y_true[row], y_pred[row]
        present = np.flatnonzero((t.sum(axis=0) + p.sum(axis=0)) > 0)
        expected_draws.append(skm.f1_score(t, p, average="macro", labels=present, zero_division=0))
        assert m.func(t, p) == pytest.approx(expected_draws[-1], rel=1e-12)
    np.testing.assert_allclose(m.batched(y_true, y_pred, sample), expected_draws, rtol=1e-12)
    # No label anywhere: undefined (NaN, as kappa with one label), where scikit-learn says 0; a
    # resample drawing only such documents then drops out instead of pulling the interval to 0.
    nothing = np.zeros((10, 3), dtype=np.int8)
    assert np.isnan(m.func(nothing, nothing)) and np.isnan(m.batched(nothing, nothing, full_sample(10))[0])


def _regression_by_library(t: np.ndarray, p: np.ndarray) -> dict[str, float]:
    """The regression figures from the libraries, NaN where gold (or a correlation's input) is constant."""
    nan = float("nan")
    constant_t, constant_p = np.ptp(t) == 0, np.ptp(p) == 0
    pooled = np.concatenate([t, p])
    return {
        "r2": nan if constant_t else skm.r2_score(t, p),
        "pearson_r": nan if constant_t or constant_p else stats.pearsonr(t, p).statistic,
        "spearman_rho": nan if constant_t or constant_p else stats.spearmanr(t, p).statistic,
        "krippendorff_alpha": nan
        if np.ptp(pooled) == 0
        else 1 - np.mean((t - p) ** 2) / (2 * np.var(pooled, ddof=1)),
    }


@pytest.mark.parametrize(
    "data",
    ["decimal_constant_resamples", "large_offset"],
)
def test_moment_based_draws_equal_library_calls_on_every_resample(data):
    """Sums of squares cancel: a constant decimal gold must read as constant, an offset must not matter."""
    if data == "decimal_constant_resamples":
        y_true = np.array([0.1] * 9 + [0.3])
        y_pred = np.array([0.1] * 8 + [0.2, 0.3])
    else:
        rng = np.random.default_rng(0)
        y_true = 1e8 + rng.normal(size=500)
        y_pred = y_true + rng.normal(scale=0.5, size=500)
    n = len(y_true)
    sample = next(resamples(n, 300, seed=5))
    both = Resamples(counts=np.vstack([np.ones(n), sample.counts]))  # the whole sample, then resamples
    expected = np.array(
        [list(_regression_by_library(y_true[row], y_pred[row]).values()) for row in both.rows()]
    )
    if data == "decimal_constant_resamples":
        assert np.isnan(expected[:, 0]).any()  # some resamples draw only the 0.1s
    for column, name in enumerate(_regression_by_library(y_true, y_pred)):
        m = metric(name, TaskType.REGRESSION)
        draws = m.batched(y_true, y_pred, both)
        np.testing.assert_allclose(draws, expected[:, column], rtol=1e-6, atol=1e-9, err_msg=name)
        assert m.func(y_true, y_pred) == pytest.approx(expected[0, column], rel=1e-9), name


def test_constant_gold_gives_no_r2_or_correlation_point_estimate_either():
    """The draws of an undefined figure are NaN; the point estimate must not read 0 or 1 beside them."""
    gold = np.full(10, 0.7)
    for pred in (np.full(10, 0.7), np.linspace(0, 1, 10)):
        for name in ("r2", "pearson_r", "spearman_rho"):
            estimate = bootstrap([metric(name, TaskType.REGRESSION)], gold, pred, n_boot=50, seed=0)[name]
            assert np.isnan([estimate.value, estimate.ci_low, estimate.ci_high]).all(), name
    # A decimal constant whose mean is not exact still counts as constant.
    gold = np.array([0.1, 0.2, 0.3]) * 0 + 0.1 + 0.2
    assert np.isnan(metric("r2", TaskType.REGRESSION).func(gold, gold + 0.1))


def _curve_run(repeat: int, figures: dict[str, float]):
    from scalecode.curves import CurveRun
    from scalecode.scoring import BackendScores
    from scalecode.scoring.bootstrap import Estimate

    scores = BackendScores(
        backend="b",
        n_gold=10,
        n_scored=10,
        n_errors=0,
        metrics={name: Estimate(value, value, value, 10) for name, value in figures.items()},
        draws={name: np.full(5, value) for name, value in figures.items()},
    )
    return CurveRun(size=8, repeat=repeat, seed=repeat, scores=scores)


def test_a_curve_point_says_how_many_repeats_gave_a_figure():
    """A repeat whose figure is undefined is left out of the mean, and the table says so."""
    import warnings

    from scalecode.curves import curve_markdown, summarise

    metrics = [metric(name, TaskType.REGRESSION) for name in ("r2", "mse")]
    runs = [_curve_run(0, {"r2": 0.5, "mse": 1.0}), _curve_run(1, {"r2": NAN, "mse": 2.0})]
    runs.append(_curve_run(2, {"r2": 0.7, "mse": 3.0}))
    (point,) = summarise(runs, metrics, confidence=0.95)
    assert point["repeats"] == 3
    assert point["metrics"]["r2"]["value"] == pytest.approx(0.6)
    assert (point["metrics"]["r2"]["repeats_scored"], point["metrics"]["mse"]["repeats_scored"]) == (2, 3)
    table = curve_markdown("b", [point], metrics)
    (row,) = [line for line in table.splitlines() if line.startswith("| 8 |")]
    # The undefined repeat's resamples are a third of those pooled: the interval is marked too.
    assert "0.600 [0.500, 0.700] ‡ (2 of 3 repeats)" in row
    assert "2.000 [1.000, 3.000] |" in row  # every repeat scored: nothing added
    undefined = [_curve_run(i, {"r2": NAN, "mse": 1.0}) for i in range(2)]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "mean of empty slice"
        (point,) = summarise(undefined, metrics, confidence=0.95)
    assert np.isnan(point["metrics"]["r2"]["value"]) and point["metrics"]["r2"]["repeats_scored"] == 0


def test_a_curve_point_shows_the_documents_scored_and_marks_a_mostly_undefined_interval():
    from scalecode.curves import curve_markdown, summarise

    metrics = [metric(name, TaskType.REGRESSION) for name in ("r2", "mse")]
    runs = [_curve_run(i, {"r2": 0.5, "mse": 1.0}) for i in range(2)]
    runs[1].scores.draws["r2"][:3] = NAN  # 3 of the 10 pooled resamples left R^2 undefined
    runs[1].scores.n_scored = 7  # a repeat that coded fewer of the test documents
    (point,) = summarise(runs, metrics, confidence=0.95)
    assert point["metrics"]["r2"]["undefined_share"] == pytest.approx(0.3)
    assert point["metrics"]["mse"]["undefined_share"] == 0.0
    table = curve_markdown("b", [point], metrics)
    assert table.splitlines()[0].startswith("| b: training documents | repeats | n | r2 | mse |")
    assert "| 8 | 2 | 7 | 0.500 [0.500, 0.500] ‡ | 1.000 [1.000, 1.000] |" in table
    assert "undefined on more than 10%" in table


def test_curve_sizes_read_fractions_up_to_1_and_counts():
    from scalecode.curves import curve_sizes

    # 1.0 is the whole training split, as 0.5 is half of it; a job file's sizes all arrive as floats
    # (the config's list[float]), so a count is a whole number above 1.
    assert curve_sizes([1.0], 300) == [300]
    assert curve_sizes([0.5, 1.0, 100.0, 100, 1000.0], 300) == [100, 150, 300]
    assert curve_sizes([1], 300) == [1]  # an int, as given in Python, is a count


def test_paired_differences_see_what_two_overlapping_intervals_hide():
    """Two coders whose errors share most of their noise: the paired interval is the difference's own."""
    import polars as pl

    from scalecode.backend import GoldSet
    from scalecode.scoring.paired import paired_differences
    from scalecode.task import ScoreRange, Task

    rng = np.random.default_rng(7)
    n = 2000
    truth = rng.normal(size=n)
    shared = rng.normal(size=n)  # what both coders get wrong: the documents are hard for both
    better = truth + shared + 0.3 * rng.normal(size=n)
    worse = better + 0.3 * rng.normal(size=n)  # the same coder, and some more noise
    task = Task(name="t", type=TaskType.REGRESSION, scale=ScoreRange(min=-10, max=10))
    ids = [f"d{i:04d}" for i in range(n)]
    gold = GoldSet(task=task, ids=ids, texts=["x"] * n, targets=list(truth))
    error = [None] * n
    error[0] = "timeout"  # a document one coder failed on is left out of the pair
    frames = {
        "better": pl.DataFrame(
            {"id": ids, "score": better, "error": [None] * n}, schema_overrides={"error": pl.String}
        ),
        # A file's order must not matter.
        "worse": pl.DataFrame({"id": ids, "score": worse, "error": error}).reverse(),
    }
    mse = metric("mse", TaskType.REGRESSION)
    r2 = metric("r2", TaskType.REGRESSION)
    compared = paired_differences(frames, gold, [r2, mse], baseline="better", n_boot=1000, seed=3)
    assert compared.baseline == "better" and set(compared.differences) == {"worse"}
    difference = compared.differences["worse"]["mse"]
    assert difference.n == n - 1
    kept = slice(1, None)
    expected = skm.mean_squared_error(truth[kept], worse[kept]) - skm.mean_squared_error(
        truth[kept], better[kept]
    )
    assert difference.value == pytest.approx(expected)
    assert difference.value > 0 and difference.ci_low > 0  # worse, and the documents say so

    # Scored apart, the two coders' intervals overlap: their shared noise hides the difference.
    apart = {
        name: bootstrap([mse], truth[kept], codes[kept], n_boot=1000, seed=3)["mse"]
        for name, codes in (("better", better), ("worse", worse))
    }
    assert apart["worse"].ci_low < apart["better"].ci_high
    assert compared.differences["worse"]["r2"].ci_high < 0


def test_bootstrap_is_the_function_after_its_module_is_imported():
    """Importing the module of the same name (the runner, the tables do) must not hide the function."""
    import subprocess
    import sys

    code = (
        "import scalecode.scoring.table\n"
        "from scalecode.scoring import bootstrap\n"
        "assert callable(bootstrap), bootstrap\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr[-2000:]


def test_small_figures_keep_three_significant_digits_and_zero_has_no_sign():
    from scalecode.scoring.table import format_estimate, format_rate

    assert format_estimate(0.712, 0.684, 0.7391) == "0.712 [0.684, 0.739]"  # as ever above 0.01
    # Two coders' MSE that 3 decimals would both show as 0.000 [0.000, 0.000].
    assert format_estimate(0.00041, 0.00035, 0.00048) == "0.000410 [0.000350, 0.000480]"
    assert format_estimate(0.00049, 0.00041, 0.00057) == "0.000490 [0.000410, 0.000570]"
    assert format_estimate(-0.0004, -0.2, 0.2) == "0.000 [-0.200, 0.200]"  # not -0.000
    assert format_estimate(float("nan"), 0.1, 0.2) == "n/a [0.100, 0.200]"
    assert format_estimate(0.003, 0, 0, interval=False) == "0.00300"
    assert [format_rate(r) for r in (0.4, 3.14159, 12.6, 288949.0)] == ["0.4", "3.1", "13", "288,949"]


def test_a_small_paired_difference_is_shown_at_its_own_scale():
    from scalecode.scoring.bootstrap import Estimate
    from scalecode.scoring.table import paired_markdown

    mse = metric("mse", TaskType.REGRESSION)
    table = paired_markdown({"other": {"mse": Estimate(0.00008, 0.00002, 0.00014, 100)}}, [mse], "best")
    assert "| other | 100 | +0.000080 [+0.000020, +0.000140] * |" in table

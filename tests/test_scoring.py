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
    return Resamples(indices=np.arange(n)[None, :], counts=np.ones((1, n)))


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
        looped = [m.func(y_true[row], y_pred[row]) for row in sample.indices]
        np.testing.assert_allclose(m.batched(y_true, y_pred, sample), looped, rtol=1e-9, err_msg=name)
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=200), rng.normal(size=200)
    sample = next(resamples(200, 20, seed=3))
    for name in ("r2", "mse", "mae", "pearson_r", "spearman_rho", "krippendorff_alpha"):
        m = metric(name, TaskType.REGRESSION)
        looped = [m.func(a[row], b[row]) for row in sample.indices]
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
    indices = np.vstack([np.zeros(n, dtype=np.int64), np.arange(n)])
    counts = np.zeros((2, n))
    counts[0, 0], counts[1] = n, 1
    return Resamples(indices=indices, counts=counts)


def test_figures_a_resample_leaves_undefined_are_left_out_not_scored_0_or_1():
    y_true = np.array([0] * 18 + [1] * 2)
    sample = one_code_resample(len(y_true))
    for name in ("cohen_kappa", "krippendorff_alpha"):
        draws = metric(name, TaskType.CLASSIFICATION).batched(y_true, y_true.copy(), sample)
        assert np.isnan(draws[0]) and draws[1] == pytest.approx(1.0), name
    assert np.isnan(krippendorff_alpha_score(np.zeros(5), np.zeros(5)))  # and no exception


def test_macro_f1_averages_over_the_same_labels_in_every_resample():
    y_true, y_pred = np.array([0] * 18 + [1] * 2), np.zeros(20, dtype=np.int64)
    draws = metric("macro_f1", TaskType.CLASSIFICATION).batched(y_true, y_pred, one_code_resample(20))
    # The one-code draw scores label 1 as missed (0), as the whole sample does; it is not 1.0.
    assert draws[0] == pytest.approx(0.5)
    assert draws[1] == pytest.approx(skm.f1_score(y_true, y_pred, average="macro", zero_division=0))

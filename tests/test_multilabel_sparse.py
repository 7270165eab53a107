"""Multi-label F1 with sparse codes: a resample (or a test set) with no positive anywhere.

Where neither gold nor predictions hold a single label, F1 is undefined: the draw is left out of the
bootstrap (as kappa's are when one code is used) instead of scoring 0 (scikit-learn's zero_division),
which pulled a perfect coder's interval down to 0.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn import metrics as skm

from scalecode.manifest import nan_to_null
from scalecode.scoring.base import Resamples
from scalecode.scoring.bootstrap import bootstrap, resamples
from scalecode.scoring.metrics import MULTILABEL_METRICS

F1_NAMES = ("macro_f1", "micro_f1")


def ml_metric(name: str):
    return next(m for m in MULTILABEL_METRICS if m.name == name)


def sparse_codes() -> np.ndarray:
    """30 documents, 4 labels, two documents with one label each: most resamples draw neither."""
    y = np.zeros((30, 4), dtype=np.int8)
    y[0, 0] = 1
    y[1, 2] = 1
    return y


def test_perfect_coder_with_sparse_codes_has_the_interval_1_1():
    y = sparse_codes()
    draws: dict[str, np.ndarray] = {}
    estimates = bootstrap(MULTILABEL_METRICS, y, y.copy(), n_boot=2000, seed=0, draws=draws)
    for name in F1_NAMES:
        estimate = estimates[name]
        assert (estimate.value, estimate.ci_low, estimate.ci_high) == (1.0, 1.0, 1.0), name
        assert np.isnan(draws[name]).any(), name  # some draws hold no label at all: left out
    # Exact match and Hamming loss are defined on such a draw (every empty set is right): unchanged.
    assert not np.isnan(draws["subset_accuracy"]).any()
    assert not np.isnan(draws["hamming_loss"]).any()
    assert (estimates["subset_accuracy"].ci_low, estimates["subset_accuracy"].ci_high) == (1.0, 1.0)
    assert (estimates["hamming_loss"].ci_low, estimates["hamming_loss"].ci_high) == (0.0, 0.0)


def test_f1_point_estimate_is_nan_when_no_document_holds_a_label():
    nothing = np.zeros((10, 3), dtype=np.int8)
    for name in F1_NAMES:
        m = ml_metric(name)
        assert np.isnan(m.func(nothing, nothing)), name
        estimate = bootstrap([m], nothing, nothing.copy(), n_boot=50, seed=0)[name]
        assert np.isnan([estimate.value, estimate.ci_low, estimate.ci_high]).all(), name
        assert estimate.n == 10
        # Written as null in JSON, as other undefined figures are.
        assert json.loads(json.dumps(nan_to_null(estimate.to_dict()), allow_nan=False))["value"] is None
    assert ml_metric("subset_accuracy").func(nothing, nothing) == 1.0
    assert ml_metric("hamming_loss").func(nothing, nothing) == 0.0


def test_f1_is_0_not_nan_when_only_one_side_holds_labels():
    """A label on one side only is a real error: F1 0, as scikit-learn gives, not undefined."""
    nothing = np.zeros((10, 3), dtype=np.int8)
    some = nothing.copy()
    some[4, 1] = 1
    for name in F1_NAMES:
        m = ml_metric(name)
        assert m.func(nothing, some) == 0.0, name  # a false positive on an empty gold set
        assert m.func(some, nothing) == 0.0, name  # a missed label
        assert m.batched(nothing, some, full_sample(10))[0] == 0.0, name
        assert m.batched(some, nothing, full_sample(10))[0] == 0.0, name


def full_sample(n: int) -> Resamples:
    return Resamples(counts=np.ones((1, n)))


def with_rows(rows: list[np.ndarray], n: int) -> Resamples:
    counts = np.vstack([np.bincount(row, minlength=n) for row in rows]).astype(np.float64)
    return Resamples(counts=counts)


@pytest.mark.parametrize("pred", ["perfect", "noisy"])
def test_batched_f1_equals_point_function_on_resamples_with_empty_draws(pred):
    y_true = sparse_codes()
    y_pred = y_true.copy()
    if pred == "noisy":
        y_pred[0, 0] = 0  # a missed label
        y_pred[1, 3] = 1  # a false positive beside a right one
        y_pred[5, 1] = 1  # a false positive on a document with no gold label
    n = len(y_true)
    random = next(resamples(n, 300, seed=7))
    sample = with_rows(
        [
            np.arange(n),  # the whole sample
            np.full(n, 10),  # one empty document, drawn n times
            np.arange(2, 2 + n) % (n - 2) + 2,  # every empty document, none with a label
            np.array([5] + [10] * (n - 1)),  # empty gold, a false positive where pred is noisy
            *random.rows(),
        ],
        n,
    )
    for name, average in (("macro_f1", "macro"), ("micro_f1", "micro")):
        m = ml_metric(name)
        looped = np.array([m.func(y_true[row], y_pred[row]) for row in sample.rows()])
        batched = m.batched(y_true, y_pred, sample)
        assert np.isnan(looped).any() and not np.isnan(looped).all(), name
        np.testing.assert_allclose(batched, looped, rtol=1e-12, err_msg=name)  # NaN where NaN
        # Where defined, scikit-learn's value over the labels the draw uses.
        for row, value in zip(sample.rows(), looped, strict=True):
            t, p = y_true[row], y_pred[row]
            used = np.flatnonzero(t.sum(axis=0) + p.sum(axis=0))
            if not len(used):
                assert np.isnan(value), name
                continue
            labels = used if average == "macro" else None
            expected = skm.f1_score(t, p, average=average, labels=labels, zero_division=0)
            assert value == pytest.approx(expected, rel=1e-12), name
    # Every multi-label metric with a batched version keeps equal to its point function here.
    for m in MULTILABEL_METRICS:
        assert m.batched is not None
        looped = np.array([m.func(y_true[row], y_pred[row]) for row in sample.rows()])
        np.testing.assert_allclose(m.batched(y_true, y_pred, sample), looped, rtol=1e-12, err_msg=m.name)

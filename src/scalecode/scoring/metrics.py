"""The built-in metrics, each a scikit-learn/scipy/krippendorff function for the point estimate and a
vectorised version for bootstrap resamples.

The vectorised versions compute the same statistic from resample counts (confusion matrices, weighted
sums) so that 1,000 resamples cost one matrix product instead of 1,000 library calls; tests check that
on the full sample they equal the library's value.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse
from scipy import stats
from sklearn import metrics as skm

from scalecode.scoring.agreement import Level, cohen_kappa_score, krippendorff_alpha_score
from scalecode.scoring.base import Metric, MetricFunction, Resamples
from scalecode.task import TaskType

CLASSIFICATION = frozenset({TaskType.CLASSIFICATION})
MULTILABEL = frozenset({TaskType.MULTILABEL})
REGRESSION = frozenset({TaskType.REGRESSION})


def _divide(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """numerator / denominator with 0 where the denominator is 0 (scikit-learn's zero_division=0)."""
    out = np.zeros(np.broadcast(numerator, denominator).shape, dtype=np.float64)
    np.divide(numerator, denominator, out=out, where=denominator != 0)
    return out


def _ratio_or_nan(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """numerator / denominator, NaN where the denominator is 0: a figure the data leaves undefined
    (kappa or alpha when gold and prediction use one code only) is left out of the bootstrap, not
    counted as 0 or 1."""
    out = np.full(np.broadcast(numerator, denominator).shape, np.nan)
    np.divide(numerator, denominator, out=out, where=denominator != 0)
    return out


# --- classification -----------------------------------------------------------------------------


def confusion_matrices(y_true: np.ndarray, y_pred: np.ndarray, sample: Resamples) -> np.ndarray:
    """(B, K, K) confusion matrices, rows gold and columns predicted, one per resample."""
    k = int(max(y_true.max(initial=0), y_pred.max(initial=0))) + 1
    n = len(y_true)
    cells = y_true.astype(np.int64) * k + y_pred.astype(np.int64)
    onehot = scipy.sparse.csr_matrix((np.ones(n), (np.arange(n), cells)), shape=(n, k * k))
    counts = np.asarray((onehot.T @ sample.counts.T).T)
    return counts.reshape(sample.size, k, k)


def _f1_parts(conf: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    tp = np.diagonal(conf, axis1=1, axis2=2)
    true_sum = conf.sum(axis=2)
    pred_sum = conf.sum(axis=1)
    return tp, true_sum, pred_sum


def _accuracy_batched(y_true: np.ndarray, y_pred: np.ndarray, sample: Resamples) -> np.ndarray:
    correct = (y_true == y_pred).astype(np.float64)
    return _divide(sample.counts @ correct, sample.counts.sum(axis=1))


def _macro_f1_batched(y_true: np.ndarray, y_pred: np.ndarray, sample: Resamples) -> np.ndarray:
    tp, true_sum, pred_sum = _f1_parts(confusion_matrices(y_true, y_pred, sample))
    f1 = _divide(2 * tp, true_sum + pred_sum)
    # The labels this resample draws in gold or predictions, as scikit-learn averages over when called
    # on it (and the point estimate on the whole sample): a rare label a draw happens to miss on both
    # sides is left out, not scored 0, or a perfect coder's interval would reach below 1.
    present = (true_sum + pred_sum) > 0
    return _divide(f1.sum(axis=1), present.sum(axis=1))


def _weighted_f1_batched(y_true: np.ndarray, y_pred: np.ndarray, sample: Resamples) -> np.ndarray:
    tp, true_sum, pred_sum = _f1_parts(confusion_matrices(y_true, y_pred, sample))
    f1 = _divide(2 * tp, true_sum + pred_sum)
    return _divide((f1 * true_sum).sum(axis=1), true_sum.sum(axis=1))


def _kappa_batched(y_true: np.ndarray, y_pred: np.ndarray, sample: Resamples) -> np.ndarray:
    conf = confusion_matrices(y_true, y_pred, sample)
    total = conf.sum(axis=(1, 2))
    observed = _divide(np.trace(conf, axis1=1, axis2=2), total)
    expected = _divide((conf.sum(axis=2) * conf.sum(axis=1)).sum(axis=1), total**2)
    return _ratio_or_nan(observed - expected, 1 - expected)


def _alpha_from_confusion(conf: np.ndarray, ordinal: bool) -> np.ndarray:
    """Two-coder Krippendorff's alpha from confusion matrices via the coincidence matrix."""
    coincidence = conf + np.transpose(conf, (0, 2, 1))
    marginals = coincidence.sum(axis=2)  # n_c
    total = marginals.sum(axis=1)  # N = 2n
    k = conf.shape[1]
    if ordinal:
        cumulative = np.cumsum(marginals, axis=1)
        # For c <= k: sum_{g=c..k} n_g - (n_c + n_k) / 2, squared; symmetric in c, k.
        span = cumulative[:, None, :] - cumulative[:, :, None] + marginals[:, :, None]
        upper = np.triu(np.ones((k, k), dtype=bool))
        span = np.where(upper, span, np.transpose(span, (0, 2, 1)))
        delta = (span - (marginals[:, :, None] + marginals[:, None, :]) / 2) ** 2
    else:
        delta = np.broadcast_to(1.0 - np.eye(k), (conf.shape[0], k, k))
    observed = (coincidence * delta).sum(axis=(1, 2))
    expected = (marginals[:, :, None] * marginals[:, None, :] * delta).sum(axis=(1, 2))
    return 1.0 - _ratio_or_nan((total - 1) * observed, expected)


def _alpha_nominal_batched(y_true: np.ndarray, y_pred: np.ndarray, sample: Resamples) -> np.ndarray:
    return _alpha_from_confusion(confusion_matrices(y_true, y_pred, sample), ordinal=False)


def _alpha_ordinal_batched(y_true: np.ndarray, y_pred: np.ndarray, sample: Resamples) -> np.ndarray:
    return _alpha_from_confusion(confusion_matrices(y_true, y_pred, sample), ordinal=True)


def _f1(average: str) -> MetricFunction:
    def f1(y_true: np.ndarray, y_pred: np.ndarray) -> float:
        return float(skm.f1_score(y_true, y_pred, average=average, zero_division=0))

    return f1


def _alpha(level: Level) -> MetricFunction:
    def alpha(y_true: np.ndarray, y_pred: np.ndarray) -> float:
        return krippendorff_alpha_score(y_true, y_pred, level=level)

    return alpha


CLASSIFICATION_METRICS = (
    Metric(
        "accuracy",
        lambda t, p: float(skm.accuracy_score(t, p)),
        CLASSIFICATION,
        description="share of documents with the gold label",
        batched=_accuracy_batched,
    ),
    Metric(
        "macro_f1",
        _f1("macro"),
        CLASSIFICATION,
        description="F1 averaged over labels, each label counting equally",
        batched=_macro_f1_batched,
    ),
    Metric(
        "micro_f1",
        _f1("micro"),
        CLASSIFICATION,
        description="F1 over all decisions (equals accuracy for single-label tasks)",
        batched=_accuracy_batched,
    ),
    Metric(
        "weighted_f1",
        _f1("weighted"),
        CLASSIFICATION,
        description="F1 averaged over labels, weighted by gold frequency",
        batched=_weighted_f1_batched,
    ),
    Metric(
        "cohen_kappa",
        lambda t, p: float(cohen_kappa_score(t, p)),
        CLASSIFICATION,
        description="Cohen's kappa between gold and backend",
        batched=_kappa_batched,
    ),
    Metric(
        "krippendorff_alpha",
        _alpha("nominal"),
        CLASSIFICATION,
        description="Krippendorff's alpha (nominal) between gold and backend",
        batched=_alpha_nominal_batched,
    ),
    Metric(
        "krippendorff_alpha_ordinal",
        _alpha("ordinal"),
        CLASSIFICATION,
        description="Krippendorff's alpha (ordinal) between gold and backend",
        batched=_alpha_ordinal_batched,
        ordinal_only=True,
    ),
)


# --- multi-label --------------------------------------------------------------------------------


def _multilabel_counts(
    y_true: np.ndarray, y_pred: np.ndarray, sample: Resamples
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    t = y_true.astype(np.float64)
    p = y_pred.astype(np.float64)
    tp = sample.counts @ (t * p)
    fp = sample.counts @ ((1 - t) * p)
    fn = sample.counts @ (t * (1 - p))
    return tp, fp, fn


def _ml_macro_f1(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    # Over the labels gold or predictions use, as for single-label tasks: scikit-learn would average
    # over every codebook column and score a label nobody used 0 (zero_division), so that a rare label
    # missing from a resample pulled even a perfect coder's draw below 1.
    used = np.flatnonzero(y_true.sum(axis=0) + y_pred.sum(axis=0))
    if not len(used):
        # No label in gold or predictions: F1 is undefined, and a resample of sparse codes that drew
        # only empty documents is left out of the bootstrap (as kappa's are), not scored 0, which
        # pulled a perfect coder's interval down to 0.
        return float("nan")
    return float(skm.f1_score(y_true, y_pred, average="macro", labels=used, zero_division=0))


def _ml_micro_f1(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    # Undefined, as macro-F1, where neither gold nor predictions hold a label (scikit-learn: 0).
    if not (np.any(y_true) or np.any(y_pred)):
        return float("nan")
    return float(skm.f1_score(y_true, y_pred, average="micro", zero_division=0))


def _ml_macro_f1_batched(y_true: np.ndarray, y_pred: np.ndarray, sample: Resamples) -> np.ndarray:
    tp, fp, fn = _multilabel_counts(y_true, y_pred, sample)
    f1 = _divide(2 * tp, 2 * tp + fp + fn)
    present = (2 * tp + fp + fn) > 0  # the labels this resample draws in gold or predictions
    return _ratio_or_nan(f1.sum(axis=1), present.sum(axis=1))  # NaN: no label drawn at all


def _ml_micro_f1_batched(y_true: np.ndarray, y_pred: np.ndarray, sample: Resamples) -> np.ndarray:
    tp, fp, fn = (a.sum(axis=1) for a in _multilabel_counts(y_true, y_pred, sample))
    return _ratio_or_nan(2 * tp, 2 * tp + fp + fn)  # NaN: no label drawn in gold or predictions


def _subset_accuracy_batched(y_true: np.ndarray, y_pred: np.ndarray, sample: Resamples) -> np.ndarray:
    exact = (y_true == y_pred).all(axis=1).astype(np.float64)
    return _divide(sample.counts @ exact, sample.counts.sum(axis=1))


def _hamming_batched(y_true: np.ndarray, y_pred: np.ndarray, sample: Resamples) -> np.ndarray:
    wrong = (y_true != y_pred).mean(axis=1)
    return _divide(sample.counts @ wrong, sample.counts.sum(axis=1))


MULTILABEL_METRICS = (
    Metric(
        "macro_f1",
        _ml_macro_f1,
        MULTILABEL,
        description="F1 per label, averaged over the labels gold or predictions use",
        batched=_ml_macro_f1_batched,
    ),
    Metric(
        "micro_f1",
        _ml_micro_f1,
        MULTILABEL,
        description="F1 over all (document, label) decisions",
        batched=_ml_micro_f1_batched,
    ),
    Metric(
        "subset_accuracy",
        lambda t, p: float(skm.accuracy_score(t, p)),
        MULTILABEL,
        description="share of documents whose whole label set is right",
        batched=_subset_accuracy_batched,
    ),
    Metric(
        "hamming_loss",
        lambda t, p: float(skm.hamming_loss(t, p)),
        MULTILABEL,
        greater_is_better=False,
        description="share of (document, label) decisions that are wrong",
        batched=_hamming_batched,
    ),
)


# --- regression ---------------------------------------------------------------------------------


def _moments(
    y_true: np.ndarray, y_pred: np.ndarray, sample: Resamples, *, common_shift: bool = False
) -> dict[str, np.ndarray]:
    """Weighted sums per resample of gold (y) and predictions (p), each shifted by a constant.

    Sums of squares like yy - y**2 / n cancel: with gold near 1e8 they lose every digit of a spread of
    1. Shifting to the full sample's mean leaves numbers of the size of the spread. The statistics are
    shift-invariant: correlations under a shift of each side (the default), R^2 under a shift of gold
    (it uses no sum of p), interval alpha under one shift of both (``common_shift``, to the pooled
    mean). Squared and absolute errors are taken from the values themselves.
    """
    w = sample.counts
    y = y_true.astype(np.float64)
    p = y_pred.astype(np.float64)
    if common_shift:
        shift_y = shift_p = float(np.concatenate([y, p]).mean()) if len(y) else 0.0
    else:
        shift_y = float(y.mean()) if len(y) else 0.0
        shift_p = float(p.mean()) if len(p) else 0.0
    yc, pc = y - shift_y, p - shift_p
    return {
        "n": w.sum(axis=1),
        "y": w @ yc,
        "p": w @ pc,
        "yy": w @ (yc * yc),
        "pp": w @ (pc * pc),
        "yp": w @ (yc * pc),
        "sq": w @ ((y - p) ** 2),
        "abs": w @ np.abs(y - p),
    }


def _drawn_range(values: np.ndarray, sample: Resamples) -> tuple[np.ndarray, np.ndarray]:
    """The least and greatest value each resample draws."""
    drawn = sample.counts > 0
    values = values.astype(np.float64)
    return np.where(drawn, values, np.inf).min(axis=1), np.where(drawn, values, -np.inf).max(axis=1)


def _varies(values: np.ndarray, sample: Resamples) -> np.ndarray:
    """Whether each resample draws more than one value, decided exactly: a sum of squares of a
    constant decimal (0.1 drawn ten times) is rarely exactly 0, and dividing by it gave R^2 of -1e15."""
    low, high = _drawn_range(values, sample)
    return np.asarray(high > low)


def _mse_batched(y_true: np.ndarray, y_pred: np.ndarray, sample: Resamples) -> np.ndarray:
    m = _moments(y_true, y_pred, sample)
    return _divide(m["sq"], m["n"])


def _rmse_batched(y_true: np.ndarray, y_pred: np.ndarray, sample: Resamples) -> np.ndarray:
    return np.asarray(np.sqrt(_mse_batched(y_true, y_pred, sample)))


def _mae_batched(y_true: np.ndarray, y_pred: np.ndarray, sample: Resamples) -> np.ndarray:
    m = _moments(y_true, y_pred, sample)
    return _divide(m["abs"], m["n"])


def _ratio_where(numerator: np.ndarray, denominator: np.ndarray, defined: np.ndarray) -> np.ndarray:
    """numerator / denominator where ``defined`` (and the denominator positive), NaN elsewhere."""
    ok = defined & (denominator > 0)
    out = np.full(np.broadcast(numerator, denominator).shape, np.nan)
    np.divide(numerator, denominator, out=out, where=ok)
    return out


def _r2_batched(y_true: np.ndarray, y_pred: np.ndarray, sample: Resamples) -> np.ndarray:
    m = _moments(y_true, y_pred, sample)
    total = m["yy"] - _divide(m["y"] ** 2, m["n"])
    return 1.0 - _ratio_where(m["sq"], total, _varies(y_true, sample))


def _pearson_from_moments(m: dict[str, np.ndarray], defined: np.ndarray) -> np.ndarray:
    cov = m["yp"] - m["y"] * m["p"] / m["n"]
    var_y = m["yy"] - m["y"] ** 2 / m["n"]
    var_p = m["pp"] - m["p"] ** 2 / m["n"]
    denom = np.sqrt(np.clip(var_y, 0, None) * np.clip(var_p, 0, None))
    return _ratio_where(cov, denom, defined)


def _pearson_batched(y_true: np.ndarray, y_pred: np.ndarray, sample: Resamples) -> np.ndarray:
    defined = _varies(y_true, sample) & _varies(y_pred, sample)
    return _pearson_from_moments(_moments(y_true, y_pred, sample), defined)


def _spearman_batched(y_true: np.ndarray, y_pred: np.ndarray, sample: Resamples) -> np.ndarray:
    # Ranks change with every resample (ties among repeated documents), so rank within each resample.
    # The mean rank of n values is (n + 1) / 2 whatever the ties: shifted by it, sums of ranks are 0.
    w = sample.counts
    n = w.sum(axis=1)
    centre = ((n + 1) / 2)[:, None]
    ranks_true = _drawn_ranks(y_true, w) - centre
    ranks_pred = _drawn_ranks(y_pred, w) - centre
    m = {
        "n": n,
        "y": (w * ranks_true).sum(axis=1),
        "p": (w * ranks_pred).sum(axis=1),
        "yy": (w * ranks_true**2).sum(axis=1),
        "pp": (w * ranks_pred**2).sum(axis=1),
        "yp": (w * ranks_true * ranks_pred).sum(axis=1),
    }
    return _pearson_from_moments(m, _varies(y_true, sample) & _varies(y_pred, sample))


def _drawn_ranks(values: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """(B, n): each document's rank among the documents each resample drew, as ``rankdata`` ranks the
    drawn values (ties, repeated documents among them, share their mean rank); from the counts alone,
    so resamples of whole groups, whose sizes differ, are ranked too."""
    distinct, which = np.unique(values, return_inverse=True)
    order = np.argsort(which, kind="stable")
    starts = np.searchsorted(which[order], np.arange(len(distinct)))
    per_value = np.add.reduceat(counts[:, order], starts, axis=1)  # (B, distinct values)
    below = np.cumsum(per_value, axis=1) - per_value
    return np.asarray((below + (per_value + 1) / 2)[:, which])


def _alpha_interval_batched(y_true: np.ndarray, y_pred: np.ndarray, sample: Resamples) -> np.ndarray:
    # Two coders, every unit coded by both: D_o is the mean squared difference; D_e is twice the
    # variance of the pooled 2n values (with N - 1 in the denominator).
    m = _moments(y_true, y_pred, sample, common_shift=True)
    pooled_n = 2 * m["n"]
    pooled_ss = m["yy"] + m["pp"] - _divide((m["y"] + m["p"]) ** 2, pooled_n)
    observed = _divide(m["sq"], m["n"])
    expected = _divide(2 * pooled_ss, pooled_n - 1)
    (low_y, high_y), (low_p, high_p) = _drawn_range(y_true, sample), _drawn_range(y_pred, sample)
    pooled_varies = np.maximum(high_y, high_p) > np.minimum(low_y, low_p)
    return 1.0 - _ratio_where(observed, expected, pooled_varies)


def _constant(values: np.ndarray) -> bool:
    """One value only (or none): exact, where a variance of a constant decimal need not be 0."""
    return len(values) == 0 or bool(np.ptp(values) == 0)


def _r2(t: np.ndarray, p: np.ndarray) -> float:
    # Undefined for constant gold, as the draws are: scikit-learn would say 0 or 1 (force_finite), or
    # divide by a rounding error when the constant's mean is inexact.
    if _constant(t):
        return float("nan")
    return float(skm.r2_score(t, p))


def _pearson(t: np.ndarray, p: np.ndarray) -> float:
    if _constant(t) or _constant(p):
        return float("nan")
    return float(stats.pearsonr(t, p).statistic)


def _spearman(t: np.ndarray, p: np.ndarray) -> float:
    if _constant(t) or _constant(p):
        return float("nan")
    return float(stats.spearmanr(t, p).statistic)


REGRESSION_METRICS = (
    Metric(
        "r2",
        _r2,
        REGRESSION,
        description="coefficient of determination (1 - SSE / SST)",
        batched=_r2_batched,
    ),
    Metric(
        "mse",
        lambda t, p: float(skm.mean_squared_error(t, p)),
        REGRESSION,
        greater_is_better=False,
        description="mean squared error",
        batched=_mse_batched,
    ),
    Metric(
        "rmse",
        lambda t, p: float(skm.root_mean_squared_error(t, p)),
        REGRESSION,
        greater_is_better=False,
        description="root mean squared error",
        batched=_rmse_batched,
    ),
    Metric(
        "mae",
        lambda t, p: float(skm.mean_absolute_error(t, p)),
        REGRESSION,
        greater_is_better=False,
        description="mean absolute error",
        batched=_mae_batched,
    ),
    Metric("pearson_r", _pearson, REGRESSION, description="Pearson correlation", batched=_pearson_batched),
    Metric(
        "spearman_rho",
        _spearman,
        REGRESSION,
        description="Spearman rank correlation",
        batched=_spearman_batched,
    ),
    Metric(
        "krippendorff_alpha",
        _alpha("interval"),
        REGRESSION,
        description="Krippendorff's alpha (interval) between gold and backend",
        batched=_alpha_interval_batched,
    ),
)

BUILTIN_METRICS = CLASSIFICATION_METRICS + MULTILABEL_METRICS + REGRESSION_METRICS

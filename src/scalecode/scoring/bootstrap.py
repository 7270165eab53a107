"""Seeded percentile bootstrap confidence intervals for every headline figure."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass

import numpy as np

from scalecode.scoring.base import Metric, Resamples

# Resamples are drawn in chunks so that memory stays near this many cells, whatever n is.
_CELLS_PER_CHUNK = 2_000_000


@dataclass(frozen=True)
class Estimate:
    """A figure with its bootstrap confidence interval and the number of documents behind it.

    ``undefined_share``: the share of resamples on which the figure was undefined (kappa on a draw of
    one label, a correlation without variance) and so left out; the interval is that of the rest.
    """

    value: float
    ci_low: float
    ci_high: float
    n: int
    undefined_share: float = 0.0

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)


def resamples(n: int, n_boot: int, seed: int, groups: np.ndarray | None = None) -> Iterator[Resamples]:
    """Yield ``n_boot`` resamples of ``n`` documents in chunks; the same arguments give the same draws.

    ``groups`` (one integer code from 0 to G - 1 per document, every code used): each resample draws G
    whole groups with replacement, every document of a group as often as its group was drawn. The
    sentences of one editorial or the paragraphs of one address are not independent draws, and
    resampling them one by one gives intervals too narrow for documents that come in groups.
    """
    rng = np.random.default_rng(seed)
    chunk = max(1, min(n_boot, _CELLS_PER_CHUNK // max(n, 1)))
    units = n if groups is None else int(groups.max(initial=-1)) + 1
    done = 0
    while done < n_boot:
        b = min(chunk, n_boot - done)
        tallies = _tally(rng.integers(0, units, size=(b, units)), units)
        yield Resamples(counts=tallies if groups is None else tallies[:, groups], grouped=groups is not None)
        done += b


def _tally(drawn: np.ndarray, units: int) -> np.ndarray:
    """(B, units) float: how often each row of ``drawn`` holds each of 0 .. units - 1."""
    b = drawn.shape[0]
    flat = (np.arange(b)[:, None] * units + drawn).ravel()
    return np.bincount(flat, minlength=b * units).reshape(b, units).astype(np.float64)


def resampling_unit(group_column: str | None) -> str:
    """What a resample draws, as metrics.json and ``scalecode score --json`` say it."""
    return "documents" if group_column is None else f"groups: {group_column}"


def group_codes(groups: Sequence[object] | None) -> np.ndarray | None:
    """Integer codes from 0 for group values (None: no groups), in order of the values' first sight."""
    if groups is None:
        return None
    codes: dict[object, int] = {}
    return np.array([codes.setdefault(g, len(codes)) for g in groups], dtype=np.int64)


def bootstrap_draws(
    metrics: Sequence[Metric],
    y_true: np.ndarray,
    y_pred: np.ndarray,
    *,
    n_boot: int,
    seed: int,
    groups: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Each metric on the same ``n_boot`` resamples (NaN where a metric is undefined on one); with
    ``groups`` (see ``resamples``), resamples of whole groups. One group alone gives no interval:
    every resample would be the sample itself, so none is drawn."""
    draws: dict[str, list[np.ndarray]] = {m.name: [] for m in metrics}
    if groups is not None and groups.max(initial=0) < 1:
        return {m.name: np.array([]) for m in metrics}
    if n_boot > 0 and len(y_true) > 0:
        for sample in resamples(len(y_true), n_boot, seed, groups):
            for metric in metrics:
                if metric.batched is not None:
                    values = metric.batched(y_true, y_pred, sample)
                else:
                    values = np.array(
                        [metric.func(y_true[row], y_pred[row]) for row in sample.rows()], dtype=np.float64
                    )
                draws[metric.name].append(np.asarray(values, dtype=np.float64))
    return {name: np.concatenate(parts) if parts else np.array([]) for name, parts in draws.items()}


def undefined_share(draws: np.ndarray) -> float:
    """The share of draws that are not finite (0 where there are none)."""
    return float(np.mean(~np.isfinite(draws))) if len(draws) else 0.0


def percentile_interval(draws: np.ndarray, confidence: float) -> tuple[float, float]:
    """The central ``confidence`` interval of the finite draws (NaN when there are none)."""
    finite = draws[np.isfinite(draws)]
    if not len(finite):
        return float("nan"), float("nan")
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(finite, [tail, 100 - tail])
    return float(low), float(high)


def bootstrap(
    metrics: Sequence[Metric],
    y_true: np.ndarray,
    y_pred: np.ndarray,
    *,
    n_boot: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    draws: dict[str, np.ndarray] | None = None,
    groups: np.ndarray | None = None,
) -> dict[str, Estimate]:
    """Point estimate (the metric's own function) and percentile CI for each metric.

    Every metric sees the same resamples, so intervals of different metrics are computed on the same
    draws. A resample on which a metric is undefined (say, a correlation with no variance) is left out.
    Pass a dict as ``draws`` to receive the resampled values (learning curves pool them), and
    ``groups`` to resample whole groups (see ``resamples``).
    """
    n = len(y_true)
    if n == 0:
        nan = float("nan")
        return {m.name: Estimate(nan, nan, nan, 0) for m in metrics}
    sampled = bootstrap_draws(metrics, y_true, y_pred, n_boot=n_boot, seed=seed, groups=groups)
    if draws is not None:
        draws.update(sampled)
    estimates = {}
    for metric in metrics:
        low, high = percentile_interval(sampled[metric.name], confidence)
        value = float(metric.func(y_true, y_pred))
        estimates[metric.name] = Estimate(value, low, high, n, undefined_share(sampled[metric.name]))
    return estimates

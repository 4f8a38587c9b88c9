"""Small statistics for the reports: confidence intervals over seeds, binned rates, a logistic fit (pooled and within
strata), relative drops.

On the libraries: Student-t intervals from `scipy.stats.t`, Wilson intervals from `scipy.stats.binomtest`, the
logistic fit from statsmodels' `Logit` (Newton, Wald errors and p-values), its interval from `scipy.stats.bootstrap`.

All functions are pure: plain sequences or arrays in, frozen dataclasses (JSON-ready through `dataclasses.asdict`)
or floats out. Undefined quantities are NaN with a note, never an exception, so that one degenerate condition
(e.g. nothing forgotten) does not stop a report; malformed input is an `InterferenceError`.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats as _scipy_stats

from ..io.errors import InterferenceError


def _vector(values, what: str) -> np.ndarray:
    array = np.asarray(values.tolist() if hasattr(values, "tolist") else list(values), dtype=np.float64)
    if array.ndim != 1:
        raise InterferenceError(f"{what} needs a flat sequence of numbers, got shape {array.shape}")
    return array


def _check_level(level: float) -> None:
    if not 0 < level < 1:
        raise InterferenceError(f"confidence level must lie strictly between 0 and 1, got {level}")


@dataclass(frozen=True)
class MeanCI:
    """A mean with its two-sided t-interval: `low = mean - half_width`, `high = mean + half_width`."""

    mean: float
    half_width: float
    low: float
    high: float
    n: int
    level: float


def mean_ci(values: Sequence[float], level: float = 0.95, *, omit_nan: bool = False) -> MeanCI:
    """Mean and Student-t confidence interval (e.g. over seeds); with one value the half-width is NaN.

    NaN values are an error unless `omit_nan` (then they are dropped and `n` counts the rest; when every value is
    NaN — e.g. forgetting of a run whose held-out accuracy never rose above 0 — the result is NaN with n = 0).
    """
    _check_level(level)
    array = _vector(values, "mean_ci")
    if array.size == 0:
        raise InterferenceError("mean_ci needs at least one value")
    if np.isnan(array).any():
        if not omit_nan:
            raise InterferenceError(f"mean_ci got {int(np.isnan(array).sum())} NaN value(s); pass omit_nan=True")
        array = array[~np.isnan(array)]
        if array.size == 0:
            nan = float("nan")
            return MeanCI(nan, nan, nan, nan, 0, level)
    mean = float(array.mean())
    if array.size == 1:
        half = float("nan")
    else:
        sem = float(array.std(ddof=1)) / math.sqrt(array.size)
        half = float(_scipy_stats.t.ppf((1 + level) / 2, df=array.size - 1)) * sem
    return MeanCI(mean, half, mean - half, mean + half, int(array.size), level)


@dataclass(frozen=True)
class Bin:
    """One bin of `binned_rates`: x range [low, high], mean x, rate of True outcomes with a Wilson interval."""

    low: float
    high: float
    x_mean: float
    count: int
    positives: int
    rate: float
    ci_low: float
    ci_high: float


def wilson_interval(positives: int, count: int, level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a binomial rate (`scipy.stats.binomtest`); (NaN, NaN) when count is 0."""
    _check_level(level)
    if count <= 0:
        return float("nan"), float("nan")
    ci = _scipy_stats.binomtest(int(positives), int(count)).proportion_ci(confidence_level=level, method="wilson")
    # exact bounds at 0 and 1 (no rounding error)
    return 0.0 if positives == 0 else float(ci.low), 1.0 if positives == count else float(ci.high)


def _pair(x, y_bool, what: str) -> tuple[np.ndarray, np.ndarray]:
    xs = _vector(x, what)
    ys = np.asarray(y_bool.tolist() if hasattr(y_bool, "tolist") else list(y_bool))
    if ys.ndim != 1 or len(ys) != len(xs):
        raise InterferenceError(f"{what} needs x and y of the same length, got {len(xs)} and {len(ys)}")
    if ys.size and not np.isin(ys, (0, 1)).all():
        raise InterferenceError(f"{what} needs boolean outcomes (True/False or 0/1)")
    if np.isnan(xs).any():
        raise InterferenceError(f"{what} got NaN in x")
    return xs, ys.astype(bool)


def binned_rates(x: Sequence[float], y_bool: Sequence[bool], n_bins: int = 10, level: float = 0.95) -> list[Bin]:
    """Rate of True outcomes in quantile bins of x (e.g. forgetting rate by overlap), lowest x first.

    Bin edges are the quantiles of x; a value on an inner edge goes to the upper bin, the maximum to the last one.
    Ties can collapse edges, so fewer than `n_bins` bins may come back; empty bins are left out.
    """
    if n_bins < 1:
        raise InterferenceError(f"n_bins must be at least 1, got {n_bins}")
    xs, ys = _pair(x, y_bool, "binned_rates")
    if xs.size == 0:
        raise InterferenceError("binned_rates needs at least one value")
    edges = np.unique(np.quantile(xs, np.linspace(0, 1, n_bins + 1)))
    inner = edges[1:-1]
    which = np.searchsorted(inner, xs, side="right")
    bins = []
    for b in range(len(inner) + 1):
        chosen = which == b
        count = int(chosen.sum())
        if count == 0:
            continue
        positives = int(ys[chosen].sum())
        low, high = wilson_interval(positives, count, level)
        bins.append(
            Bin(
                float(xs[chosen].min()),
                float(xs[chosen].max()),
                float(xs[chosen].mean()),
                count,
                positives,
                positives / count,
                low,
                high,
            )
        )
    return bins


@dataclass(frozen=True)
class SlopeFit:
    """A logistic slope with its test: what the pooled and the within-strata fits share.

    Attributes:
        slope: maximum-likelihood estimate, on the scale of x.
        stderr: its standard error from the observed information.
        p_value: two-sided Wald test of slope = 0.
        ci_low, ci_high: its interval at `level` (how it is made depends on the fit).
        n, n_positive: the pairs that entered the fit and their True outcomes.
    """

    slope: float
    stderr: float
    p_value: float
    ci_low: float
    ci_high: float
    level: float
    n: int
    n_positive: int


@dataclass(frozen=True)
class LogisticFit(SlopeFit):
    """P(y) = sigmoid(intercept + slope · x), with the slope's Wald p-value and a bootstrap interval.

    Attributes (beyond `SlopeFit`'s):
        intercept: maximum-likelihood estimate (unpenalised), on the scale of x.
        ci_low, ci_high: percentile bootstrap interval of the slope (NaN when not computed).
        n_bootstrap: resamples that entered the interval (those with a single class are skipped).
        note: why the fit is undefined (single class, constant x, perfect separation), else None.
    """

    intercept: float
    n_bootstrap: int
    note: str | None = None


def _separated(xs: np.ndarray, ys: np.ndarray) -> bool:
    """Whether x separates the outcomes, completely or with ties only at the boundary (no finite maximum-likelihood
    slope either way)."""
    return xs[ys].max() <= xs[~ys].min() or xs[~ys].max() <= xs[ys].min()


def _fit(z: np.ndarray, ys: np.ndarray):
    """statsmodels' unpenalised Logit of ys on [1, z] (Newton): params (intercept, slope), Wald errors, p-values."""
    import statsmodels.api as sm

    design = np.column_stack([np.ones_like(z), z])
    return sm.Logit(ys.astype(float), design).fit(method="newton", tol=1e-10, maxiter=200, disp=0)


def _bootstrap_slope(z: np.ndarray, ys: np.ndarray) -> float:
    """The slope on one resample: NaN for a single class (left out), ±inf for separated classes."""
    ys = ys.astype(bool)  # the bootstrap hands the outcomes back as floats
    if ys.all() or not ys.any():
        return math.nan
    if _separated(z, ys):
        return math.inf if z[ys].min() > z[~ys].max() else -math.inf
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # near-separated resamples converge slowly; their slope is still valid
        return float(_fit(z, ys).params[1])


def logistic_fit(
    x: Sequence[float],
    y_bool: Sequence[bool],
    *,
    n_bootstrap: int = 200,
    level: float = 0.95,
    seed: int = 0,
) -> LogisticFit:
    """Unpenalised logistic regression of a boolean outcome on one covariate (statsmodels `Logit`, Newton).

    x is standardised for the fit and the estimates are mapped back to its scale. The interval is the percentile
    interval of `scipy.stats.bootstrap` over (x, y) pairs, `n_bootstrap` resamples drawn with
    `numpy.random.default_rng(seed)` (0 disables it); resamples of a single class are left out. A single outcome
    class, a constant x or perfectly separated classes leave slope, p-value and interval NaN and say so in `note`.
    """
    _check_level(level)
    if n_bootstrap < 0:
        raise InterferenceError(f"n_bootstrap must be >= 0, got {n_bootstrap}")
    xs, ys = _pair(x, y_bool, "logistic_fit")
    n, n_pos = int(xs.size), int(ys.sum())
    nan = float("nan")

    def undefined(note: str) -> LogisticFit:
        return LogisticFit(slope=nan, stderr=nan, p_value=nan, ci_low=nan, ci_high=nan, level=level, n=n,
                           n_positive=n_pos, intercept=nan, n_bootstrap=0, note=note)

    if n_pos in (0, n):
        outcome = "empty sample" if n == 0 else f"all {n} outcomes are {bool(n_pos)}"
        return undefined(f"single class ({outcome}): the slope is undefined")
    mean, sd = float(xs.mean()), float(xs.std())
    if sd <= 1e-12 * max(abs(mean), 1e-300):
        return undefined("x is constant: the slope is undefined")
    if _separated(xs, ys):
        return undefined("the classes are perfectly separated by x: the maximum-likelihood slope is infinite")
    z = (xs - mean) / sd
    fit = _fit(z, ys)
    (intercept_z, slope_z), stderr_z, p_value = fit.params, float(fit.bse[1]), float(fit.pvalues[1])
    slopes = np.array([])
    if n_bootstrap:
        with warnings.catch_warnings():  # scipy (and numpy, in its standard error) warn of the NaN (one-class) and
            warnings.simplefilter("ignore", _scipy_stats.DegenerateDataWarning)  # ±inf (separated) resamples that
            warnings.filterwarnings("ignore", "invalid value encountered", RuntimeWarning)  # are dealt with below
            resampled = _scipy_stats.bootstrap((z, ys), _bootstrap_slope, paired=True, vectorized=False,
                                               n_resamples=n_bootstrap, method="percentile",
                                               random_state=np.random.default_rng(seed))
        slopes = resampled.bootstrap_distribution[~np.isnan(resampled.bootstrap_distribution)]
    if slopes.size:
        tails = [(1 - level) / 2, (1 + level) / 2]
        ci_low, ci_high = (float(q) / sd for q in np.quantile(slopes, tails, method="inverted_cdf"))
    else:
        ci_low = ci_high = nan
    return LogisticFit(
        slope=slope_z / sd,
        intercept=intercept_z - slope_z * mean / sd,
        stderr=stderr_z / sd,
        p_value=p_value,
        ci_low=ci_low,
        ci_high=ci_high,
        level=level,
        n=n,
        n_positive=n_pos,
        n_bootstrap=int(slopes.size),
    )


@dataclass(frozen=True)
class StratifiedLogisticFit(SlopeFit):
    """P(y) = sigmoid(α_stratum + slope · x): the slope of x within strata, the strata's own rates conditioned away.

    A pooled slope mixes the effect of x within a stratum with differences between strata (on real data, relations
    that differ both in x and in the outcome rate); this slope is only the first. A stratum whose outcomes are all one
    class says nothing about the slope: it is left out and counted.

    Attributes (beyond `SlopeFit`'s):
        slope, stderr, p_value: the conditional maximum-likelihood slope, its Wald error and p-value.
        ci_low, ci_high: Wald interval.
        n, n_positive: over the informative strata only.
        strata, strata_used: how many strata there were and how many held both outcomes.
        note: why the slope is undefined (no informative stratum, x constant or separating within strata).
    """

    strata: int
    strata_used: int
    note: str | None = None


def stratified_logistic_fit(
    x: Sequence[float], y_bool: Sequence[bool], strata: Sequence, *, level: float = 0.95
) -> StratifiedLogisticFit:
    """Conditional logistic regression of a boolean outcome on one covariate within strata (statsmodels
    `ConditionalLogit`): the slope of x that differences between strata cannot produce.

    `strata` labels each pair (any hashable: a relation, a (seed, relation) pair). Each stratum's intercept is
    conditioned away, exactly, so many small strata do not bias the slope as free intercepts would. Strata with a
    single outcome class are left out. With a single stratum the slope is close to `logistic_fit`'s (the same
    model with the intercept conditioned away instead of estimated).
    """
    _check_level(level)
    xs, ys = _pair(x, y_bool, "stratified_logistic_fit")
    labels = list(strata)
    if len(labels) != xs.size:
        raise InterferenceError(f"stratified_logistic_fit needs one stratum label per pair, got {len(labels)} "
                                f"labels for {xs.size} pairs")
    index = {label: i for i, label in enumerate(dict.fromkeys(labels))}
    codes = np.array([index[label] for label in labels], dtype=np.int64)
    groups = [np.flatnonzero(codes == c) for c in range(len(index))]
    groups = [g for g in groups if 0 < ys[g].sum() < g.size]
    keep = np.concatenate(groups) if groups else np.zeros(0, dtype=np.int64)
    nan = float("nan")

    def undefined(note: str) -> StratifiedLogisticFit:
        return StratifiedLogisticFit(slope=nan, stderr=nan, p_value=nan, ci_low=nan, ci_high=nan, level=level,
                                     n=int(keep.size), n_positive=int(ys[keep].sum()), strata=len(index),
                                     strata_used=len(groups), note=note)

    if not groups:
        return undefined(f"no stratum of {len(index)} holds both outcomes: the slope is undefined")
    if all(np.ptp(xs[g]) <= 1e-12 * max(float(np.abs(xs[g]).max()), 1e-300) for g in groups):
        return undefined("x is constant within every informative stratum: the slope is undefined")
    if any(all(_above(xs[g], ys[g], sign) for g in groups) for sign in (1, -1)):
        return undefined("x separates the outcomes within every informative stratum: the slope is infinite")
    from statsmodels.discrete.conditional_models import ConditionalLogit

    sd = float(xs[keep].std())
    z = (xs[keep] - xs[keep].mean()) / sd
    fit = ConditionalLogit(ys[keep].astype(float), z[:, None], groups=codes[keep]).fit(disp=0)
    slope, stderr = float(fit.params[0]) / sd, float(fit.bse[0]) / sd
    half = float(_scipy_stats.norm.ppf((1 + level) / 2)) * stderr
    return StratifiedLogisticFit(slope=slope, stderr=stderr, p_value=float(fit.pvalues[0]), ci_low=slope - half,
                                 ci_high=slope + half, level=level, n=int(keep.size), n_positive=int(ys[keep].sum()),
                                 strata=len(index), strata_used=len(groups))


def _above(xs: np.ndarray, ys: np.ndarray, sign: int) -> bool:
    """Whether every True outcome lies at or beyond every False one along sign·x (separation in one stratum)."""
    return float((sign * xs[ys]).min()) >= float((sign * xs[~ys]).max())


def relative_drop(peak: float, final: float) -> float:
    """(peak − final) / peak: the share of what was there at the peak that is gone at the end (SPEC §2).

    NaN when the peak is 0 or NaN (nothing to lose); negative when final exceeds peak.
    """
    peak, final = float(peak), float(final)
    if peak < 0:
        raise InterferenceError(f"relative_drop needs a non-negative peak, got {peak}")
    if math.isnan(peak) or math.isnan(final) or peak == 0:
        return float("nan")
    return (peak - final) / peak

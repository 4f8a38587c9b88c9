from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
from scipy import stats as scipy_stats

from interference.io.errors import InterferenceError
from interference.report.stats import (
    binned_rates,
    logistic_fit,
    mean_ci,
    relative_drop,
    stratified_logistic_fit,
    wilson_interval,
)


def test_mean_ci_textbook_values():
    ci = mean_ci([1, 2, 3, 4, 5])
    # s = sqrt(2.5), t_{0.975, 4} = 2.776445 (printed tables)
    assert ci.mean == 3 and ci.n == 5
    assert ci.half_width == pytest.approx(2.776445 * math.sqrt(2.5) / math.sqrt(5), rel=1e-6)
    assert (ci.low, ci.high) == pytest.approx((3 - ci.half_width, 3 + ci.half_width))
    assert mean_ci([1, 2, 3, 4, 5], level=0.9).half_width < ci.half_width


def test_mean_ci_covers_the_true_mean_at_its_level():
    rng = np.random.default_rng(0)
    samples = rng.normal(2.0, 3.0, size=(3000, 4))
    hits = [mean_ci(s).low <= 2.0 <= mean_ci(s).high for s in samples]
    assert np.mean(hits) == pytest.approx(0.95, abs=0.015)


def test_mean_ci_edge_cases():
    one = mean_ci([0.4])
    assert one.mean == 0.4 and math.isnan(one.half_width) and math.isnan(one.low)
    with pytest.raises(InterferenceError, match="NaN"):
        mean_ci([0.1, float("nan")])
    assert mean_ci([0.1, float("nan"), 0.3], omit_nan=True).n == 2
    with pytest.raises(InterferenceError, match="at least one value"):
        mean_ci([])
    with pytest.raises(InterferenceError, match="between 0 and 1"):
        mean_ci([1, 2], level=95)


def test_wilson_interval_reference_values():
    # Reference values (Newcombe 1998): 5/10 -> 0.2366-0.7634, 0/10 -> 0-0.2775
    assert wilson_interval(5, 10) == pytest.approx((0.2366, 0.7634), abs=1e-4)
    assert wilson_interval(0, 10) == pytest.approx((0.0, 0.2775), abs=1e-4)
    assert all(math.isnan(v) for v in wilson_interval(0, 0))


def test_binned_rates_quantile_bins():
    x = np.arange(100, dtype=float)
    y = x >= 50
    bins = binned_rates(x, y, n_bins=4)
    assert [b.count for b in bins] == [25, 25, 25, 25]
    assert [b.rate for b in bins] == [0, 0, 1, 1]
    assert [b.low for b in bins] == [0, 25, 50, 75] and bins[-1].high == 99
    assert bins[1].x_mean == pytest.approx(np.arange(25, 50).mean())
    assert all(b.ci_low <= b.rate <= b.ci_high for b in bins)
    json.dumps([dataclasses.asdict(b) for b in bins])


def test_binned_rates_rates_and_ties():
    rng = np.random.default_rng(1)
    x = rng.random(1000)
    y = rng.random(1000) < x  # rate grows with x
    bins = binned_rates(x, y, n_bins=5)
    assert sum(b.count for b in bins) == 1000
    assert sum(b.positives for b in bins) == int(y.sum())
    rates = [b.rate for b in bins]
    assert rates == sorted(rates) and rates[-1] - rates[0] > 0.5
    tied = binned_rates([1.0] * 8 + [2.0] * 2, [True] * 8 + [False] * 2, n_bins=4)
    assert sum(b.count for b in tied) == 10 and len(tied) <= 2
    with pytest.raises(InterferenceError, match="same length"):
        binned_rates([1, 2], [True])
    with pytest.raises(InterferenceError, match="boolean"):
        binned_rates([1, 2], [0.5, 1])


def _newton_mle(x, y, steps=50):
    """Plain Newton-Raphson for P(y) = sigmoid(a + b x) on the raw scale."""
    design = np.column_stack([np.ones_like(x), x])
    beta = np.zeros(2)
    for _ in range(steps):
        p = 1 / (1 + np.exp(-design @ beta))
        info = design.T @ (design * (p * (1 - p))[:, None])
        beta += np.linalg.solve(info, design.T @ (y - p))
    return beta, info


def _log_likelihood(beta, x, y):
    eta = beta[0] + beta[1] * x
    return float(np.sum(y * eta - np.logaddexp(0, eta)))


def test_logistic_fit_is_the_mle_with_wald_errors():
    rng = np.random.default_rng(2)
    x = rng.normal(3.0, 2.0, size=400)
    y = rng.random(400) < 1 / (1 + np.exp(-(-1.0 + 0.8 * (x - 3.0))))
    fit = logistic_fit(x, y, n_bootstrap=0)
    (intercept, slope), _ = _newton_mle(x, y.astype(float))
    assert fit.slope == pytest.approx(slope, rel=1e-6) and fit.intercept == pytest.approx(intercept, rel=1e-6)
    # standard error from a finite-difference Hessian of the log-likelihood
    beta, h, hess = np.array([intercept, slope]), 1e-4, np.zeros((2, 2))
    ll = lambda b: _log_likelihood(b, x, y)
    for i in range(2):
        for j in range(2):
            e_i, e_j = np.eye(2)[i] * h, np.eye(2)[j] * h
            hess[i, j] = (ll(beta + e_i + e_j) - ll(beta + e_i - e_j) - ll(beta - e_i + e_j) + ll(beta - e_i - e_j))
    hess /= 4 * h * h
    assert fit.stderr == pytest.approx(math.sqrt(np.linalg.inv(-hess)[1, 1]), rel=1e-4)
    assert fit.p_value == pytest.approx(2 * scipy_stats.norm.sf(abs(fit.slope / fit.stderr)))
    assert fit.p_value < 1e-6 and 0.5 < fit.slope < 1.1
    assert fit.n == 400 and fit.n_positive == int(y.sum()) and fit.note is None
    assert math.isnan(fit.ci_low)


def test_logistic_fit_bootstrap_is_seeded_and_covers():
    rng = np.random.default_rng(3)
    x = rng.normal(size=300)
    y = rng.random(300) < 1 / (1 + np.exp(-1.5 * x))
    a = logistic_fit(x, y, n_bootstrap=150, seed=7)
    b = logistic_fit(x, y, n_bootstrap=150, seed=7)
    c = logistic_fit(x, y, n_bootstrap=150, seed=8)
    assert (a.ci_low, a.ci_high) == (b.ci_low, b.ci_high) != (c.ci_low, c.ci_high)
    assert a.ci_low < a.slope < a.ci_high and a.n_bootstrap == 150
    # the interval is close to the Wald one
    assert a.ci_high - a.ci_low == pytest.approx(2 * 1.96 * a.stderr, rel=0.35)


def test_logistic_fit_null_effect_is_not_significant():
    rng = np.random.default_rng(4)
    x, y = rng.normal(size=500), rng.random(500) < 0.3
    fit = logistic_fit(x, y, n_bootstrap=0)
    assert fit.p_value > 0.01 and abs(fit.slope) < 0.3


def test_logistic_fit_degenerate_cases_are_explained():
    single = logistic_fit([0.1, 0.5, 0.9], [False, False, False])
    assert math.isnan(single.slope) and "single class" in single.note and single.n_positive == 0
    constant = logistic_fit([1.0, 1.0, 1.0, 1.0], [True, False, True, False])
    assert math.isnan(constant.slope) and "constant" in constant.note
    separated = logistic_fit([0.1, 0.2, 0.8, 0.9], [False, False, True, True])
    assert math.isnan(separated.p_value) and "separated" in separated.note
    tied = logistic_fit([0.1, 0.5, 0.5, 0.9], [False, False, True, True])  # one tie at the boundary: no finite slope
    assert math.isnan(tied.p_value) and "separated" in tied.note


def test_logistic_fit_bootstrap_of_a_small_sample_is_quiet():
    # resamples of 8 pairs are often one class (NaN) or separated (±inf): handled, so scipy's warning is not shown
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        x = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8]
        fit = logistic_fit(x, [False, True, False, False, True, False, True, True], n_bootstrap=100)
        # a relation of notebook 03 at quick size: many resamples separate (infinite slopes), and numpy warned
        both_ways = logistic_fit([0.947, 0.802, 0.962, 0.94, 0.795, 0.924, 0.974, 0.965, 0.81, 0.93],
                                 [False, False, False, True, False, True, True, True, True, True])
    assert fit.note is None and 0 < fit.n_bootstrap <= 100
    assert both_ways.note is None and both_ways.ci_high == math.inf


def _confounded(rng, n_per: int = 300):
    """Four strata that differ in both x and the outcome rate, with no effect of x inside any of them."""
    x, y, strata = [], [], []
    for s, (centre, rate) in enumerate([(0.0, 0.05), (1.0, 0.15), (2.0, 0.3), (3.0, 0.5)]):
        x.append(rng.normal(centre, 0.7, n_per))
        y.append(rng.random(n_per) < rate)
        strata += [f"r{s}"] * n_per
    return np.concatenate(x), np.concatenate(y), strata


def test_stratified_slope_is_free_of_differences_between_strata():
    x, y, strata = _confounded(np.random.default_rng(5))
    pooled = logistic_fit(x, y, n_bootstrap=0)
    within = stratified_logistic_fit(x, y, strata)
    assert pooled.p_value < 1e-6 and pooled.slope > 0.5  # the strata make a pooled "effect"
    assert within.p_value > 0.01 and abs(within.slope) < 0.3 and within.ci_low < 0 < within.ci_high
    assert (within.strata, within.strata_used, within.n, within.note) == (4, 4, x.size, None)


def test_stratified_slope_on_matched_pairs_is_the_logit_of_the_differences():
    # textbook identity: with strata of one True and one False outcome, the conditional likelihood is
    # prod sigmoid(beta * (x_true - x_false)), a logistic regression through the origin on the differences
    rng = np.random.default_rng(6)
    n = 200
    x_pos, x_neg = rng.normal(0.6, 1.0, n), rng.normal(0.0, 1.0, n)
    x = np.column_stack([x_pos, x_neg]).ravel()
    y = np.tile([True, False], n)
    strata = np.repeat(np.arange(n), 2).tolist()
    d, beta = x_pos - x_neg, 0.0
    for _ in range(50):  # Newton on sum log sigmoid(beta * d)
        p = 1 / (1 + np.exp(-beta * d))
        beta += np.sum((1 - p) * d) / np.sum(p * (1 - p) * d * d)
    fit = stratified_logistic_fit(x, y, strata)
    p = 1 / (1 + np.exp(-beta * d))
    assert fit.slope == pytest.approx(beta, rel=1e-5)
    assert fit.stderr == pytest.approx(1 / math.sqrt(np.sum(p * (1 - p) * d * d)), rel=1e-4)
    assert fit.ci_high - fit.slope == pytest.approx(scipy_stats.norm.ppf(0.975) * fit.stderr)


def test_stratified_slope_recovers_a_slope_within_many_small_strata():
    rng = np.random.default_rng(7)
    strata = np.repeat(np.arange(150), 8)
    x = rng.normal(size=strata.size) + 0.5 * (strata % 5)
    y = rng.random(strata.size) < 1 / (1 + np.exp(-(rng.normal(0, 1.5, 150)[strata] + 1.0 * x)))
    fit = stratified_logistic_fit(x, y, strata.tolist())
    assert fit.ci_low < 1.0 < fit.ci_high and fit.slope == pytest.approx(1.0, abs=0.3)
    assert fit.strata == 150 and fit.strata_used < 150  # some strata of 8 are all one outcome
    assert fit.n == 8 * fit.strata_used
    json.dumps(dataclasses.asdict(fit))


def test_stratified_slope_with_one_stratum_is_close_to_the_pooled_one():
    rng = np.random.default_rng(8)
    x = rng.normal(size=120)
    y = rng.random(120) < 1 / (1 + np.exp(-(-1.0 + 1.2 * x)))
    pooled, within = logistic_fit(x, y, n_bootstrap=0), stratified_logistic_fit(x, y, ["all"] * 120)
    assert within.slope == pytest.approx(pooled.slope, rel=0.05)
    assert within.p_value == pytest.approx(pooled.p_value, rel=0.5)


def test_stratified_slope_degenerate_cases_are_explained():
    none = stratified_logistic_fit([0.1, 0.5, 0.9, 0.3], [False, False, True, True], ["a", "a", "b", "b"])
    assert math.isnan(none.slope) and "no stratum of 2" in none.note and none.strata_used == 0
    constant = stratified_logistic_fit([1.0, 1.0, 2.0, 2.0], [True, False, True, False], ["a", "a", "b", "b"])
    assert math.isnan(constant.slope) and "constant within" in constant.note
    separated = stratified_logistic_fit([0.1, 0.9, 0.4, 0.5], [False, True, False, True], ["a", "a", "b", "b"])
    assert math.isnan(separated.p_value) and "separates" in separated.note
    with pytest.raises(InterferenceError, match="one stratum label per pair"):
        stratified_logistic_fit([0.1, 0.2], [True, False], ["a"])


def test_relative_drop():
    assert relative_drop(0.8, 0.6) == pytest.approx(0.25)
    assert relative_drop(0.5, 0.5) == 0
    assert relative_drop(0.5, 0.6) == pytest.approx(-0.2)
    assert math.isnan(relative_drop(0.0, 0.0)) and math.isnan(relative_drop(float("nan"), 0.3))
    with pytest.raises(InterferenceError, match="non-negative peak"):
        relative_drop(-0.1, 0.0)

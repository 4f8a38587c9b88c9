"""The hypotheses study's verdicts from synthetic grids: the capacity verdict follows the slope over log(count)."""

from __future__ import annotations

import math

import pytest

from interference.studies.hypotheses import SLOPE_TOLERANCE, HypothesesStudy


def _study(forgetting) -> HypothesesStudy:
    """A grid with forgetting(key_kind, count, seed) as each run's forgetting and drift."""
    counts = (100, 1000, 10000)
    records = [{"key_kind": kind, "n_new": count, "seed": seed, "forgetting": forgetting(kind, count, seed),
                "drift": 0.1 if kind == "name" else 0.05}
               for kind in ("name", "uuid") for count in counts for seed in (0, 1)]
    return HypothesesStudy(config=None, counts=counts, layer=1, records=records)


def _verdict(study, hypothesis):
    return next(v for v in study.verdicts() if v["hypothesis"] == hypothesis)


def test_flat_uuid_forgetting_rejects_capacity():
    study = _study(lambda kind, count, seed: (0.1 * math.log10(count) if kind == "name" else 0.01) + 0.001 * seed)
    slope, half = study.slope("name")
    assert slope == pytest.approx(0.1, abs=1e-3) and half > 0
    assert abs(study.slope("uuid")[0]) < 1e-9
    assert _verdict(study, "capacity limits")["verdict"] == "rejected"
    assert _verdict(study, "localized interference")["verdict"] == "supported"


def test_uuid_forgetting_that_grows_with_the_count_does_not_reject_capacity():
    # UUID forgetting stays well below name-like forgetting but grows by 3 points per decade
    study = _study(lambda kind, count, seed: (0.3 if kind == "name" else 0.0) + 0.03 * math.log10(count))
    assert study.slope("uuid")[0] == pytest.approx(0.03) and 0.03 > SLOPE_TOLERANCE
    assert _verdict(study, "capacity limits")["verdict"] == "not rejected"
    assert "slope" in _verdict(study, "capacity limits")["evidence"]


def test_slope_needs_two_counts():
    study = _study(lambda kind, count, seed: 0.1)
    study.records = [r for r in study.records if r["n_new"] == 100]
    study.counts = (100,)
    assert all(math.isnan(v) for v in study.slope("uuid"))
    assert _verdict(study, "capacity limits")["verdict"] == "not rejected"


def test_a_count_where_neither_key_kind_forgets_gives_no_ratio_and_no_support():
    study = _study(lambda kind, count, seed: 0.0 if count == 100 else (0.3 if kind == "name" else 0.0))
    verdict = _verdict(study, "localized interference")
    assert "n/a (neither forgets) at 100" in verdict["evidence"] and "∞ (UUID keys forget nothing) at 1000" in \
        verdict["evidence"]
    assert verdict["verdict"] == "not supported"


def test_a_ratio_over_name_like_forgetting_within_noise_supports_nothing():
    """UUID keys forget nothing, so every ratio is ∞; but name-like forgetting swings around 0 over seeds at one count:
    neither interference is supported nor behaviour cloning rejected on it (nor on a single seed)."""
    noisy = _study(lambda kind, count, seed: 0.0 if kind == "uuid" else (0.2 if count > 100 else (0.1, -0.08)[seed]))
    assert _verdict(noisy, "localized interference")["verdict"] == "not supported"
    assert _verdict(noisy, "behaviour cloning")["verdict"] == "not rejected"
    assert "not above 0 beyond noise at every count" in _verdict(noisy, "localized interference")["evidence"]
    steady = _study(lambda kind, count, seed: 0.0 if kind == "uuid" else 0.2 + 0.01 * seed)
    assert _verdict(steady, "localized interference")["verdict"] == "supported"
    assert _verdict(steady, "behaviour cloning")["verdict"] == "rejected"
    steady.records = [r for r in steady.records if r["seed"] == 0]  # one seed: no interval, no evidence beyond noise
    assert _verdict(steady, "localized interference")["verdict"] == "not supported"

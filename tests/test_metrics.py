"""Forgetting and acquisition metrics (SPEC §2) on hand-computed curves."""

from __future__ import annotations

import math

import pytest

from interference.io.errors import InterferenceError
from interference.measures import metrics


def test_forgetting_is_relative_drop_from_the_peak_not_from_the_start():
    # Held-out accuracy rises during format learning (0.5 -> 0.8), then falls to 0.6.
    curve = [0.5, 0.8, 0.7, 0.6]
    assert metrics.peak(curve) == 0.8
    assert metrics.forgetting(curve) == pytest.approx((0.8 - 0.6) / 0.8)
    assert metrics.absolute_drop(curve) == pytest.approx(0.5 - 0.6)


def test_forgetting_is_zero_when_the_final_value_is_the_peak_and_one_when_all_is_lost():
    assert metrics.forgetting([0.2, 0.5, 0.9]) == 0.0
    assert metrics.forgetting([0.9, 0.4, 0.0]) == 1.0
    assert metrics.forgetting([0.7]) == 0.0


def test_forgetting_is_nan_without_anything_to_forget():
    assert math.isnan(metrics.forgetting([0.0, 0.0]))
    assert math.isnan(metrics.forgetting([float("nan"), float("nan")]))


def test_nan_entries_are_ignored_for_the_peak():
    assert metrics.peak([float("nan"), 0.3, 0.6]) == 0.6


def test_empty_curve_is_an_error_naming_the_metric():
    with pytest.raises(InterferenceError, match="forgetting"):
        metrics.forgetting([])


def test_flips_lists_lost_and_gained_facts():
    before = [True, True, False, False, True]
    after = [True, False, True, False, False]
    assert metrics.flips(before, after) == {"lost": [1, 4], "gained": [2]}
    with pytest.raises(InterferenceError, match="same facts"):
        metrics.flips([True], [True, False])


def test_forgotten_at_peak_compares_the_peak_evaluation_with_the_last():
    per_epoch = [
        [False, True, False, False],  # 0.25
        [True, True, True, False],  # 0.75  <- peak
        [True, False, False, True],  # 0.5
    ]
    assert metrics.forgotten_at_peak(per_epoch) == [1, 2]


def test_first_reaching_finds_the_matched_acquisition_epoch():
    assert metrics.first_reaching([0.0, 0.3, 0.6, 0.9], 0.6) == 2
    assert metrics.first_reaching([0.0, 0.3], 0.6) is None

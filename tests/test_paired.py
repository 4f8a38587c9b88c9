from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from interference.io.errors import InterferenceError
from interference.report.paired import (
    Check,
    between_runs,
    condition_summary,
    fact_bootstrap,
    find,
    interval_text,
    judge,
    paired_comparison,
    paired_difference,
    ratio,
    t_interval,
)


def record(name, seed, start, final, new, *, held=None, start_held=None, new_correct=None):
    out = {"name": name, "seed": seed, "held_acc_start": start, "held_acc_final": final,
           "absolute_drop": start - final, "new_acc": new, "forgetting": (start - final) / start, "task_acc": 1.0}
    if held is not None:
        out["held_correct_final"] = held
        out["held_correct_start"] = start_held
    if new_correct is not None:
        out["new_correct_final"] = new_correct
    return out


def test_t_interval_matches_scipy_and_handles_one_value():
    values = [0.1, 0.3, 0.2, 0.25]
    interval = t_interval(values)
    low, high = stats.t.interval(0.95, df=3, loc=np.mean(values), scale=stats.sem(values))
    assert interval.mean == pytest.approx(np.mean(values))
    assert (interval.low, interval.high) == pytest.approx((low, high))
    one = t_interval([0.4, float("nan"), None])
    assert one.n == 1 and one.mean == 0.4 and math.isnan(one.low) and not one.excludes_zero()
    assert t_interval([]).n == 0


def test_paired_difference_pairs_by_seed():
    records = [record("sft", 0, 0.9, 0.6, 0.90), record("sft", 1, 0.8, 0.7, 0.92), record("sft", 2, 0.9, 0.5, 0.9),
               record("sd", 1, 0.8, 0.75, 0.91), record("sd", 0, 0.9, 0.8, 0.88)]  # sd has no seed 2
    diff = paired_difference(records, "sd", "sft", "held_acc_final")
    assert diff.seeds == (0, 1)
    assert diff.differences == pytest.approx((0.2, 0.05))
    assert diff.t.mean == pytest.approx(0.125) and diff.n_positive == 2
    drop = paired_difference(records, "sd", "sft", "absolute_drop")
    assert drop.differences == pytest.approx((-0.2, -0.05))  # same start: the drop difference mirrors the final one
    assert diff.bootstrap is None  # no per-fact outcomes in these records
    row = diff.row()
    assert row["seeds"] == 2 and row["seeds_above_0"] == 2 and row["boot_low"] is None
    assert not any(isinstance(v, list | tuple | dict) for v in row.values())
    with pytest.raises(InterferenceError, match="no seed holds"):
        paired_difference(records, "l2", "sft")


def test_between_runs_pairs_each_seeds_difference_across_the_runs():
    first = [record("sft", 0, 0.9, 0.6, 0.9), record("sd", 0, 0.9, 0.8, 0.9), record("sft", 1, 0.8, 0.7, 0.9),
             record("sd", 1, 0.8, 0.75, 0.9), record("sft", 2, 0.9, 0.5, 0.9), record("sd", 2, 0.9, 0.6, 0.9)]
    second = [record("sd", 1, 0.8, 0.8, 0.9), record("sft", 1, 0.8, 0.7, 0.9), record("sft", 0, 0.9, 0.7, 0.9),
              record("sd", 0, 0.9, 0.8, 0.9), record("sft", 3, 0.9, 0.5, 0.9), record("sd", 3, 0.9, 0.9, 0.9)]
    moved = between_runs(first, second, "sd", "sft")  # sd − sft: run 1 (0.2, 0.05), run 2 (0.1, 0.1)
    assert moved.seeds == (0, 1) and moved.differences == pytest.approx((-0.1, 0.05))
    assert moved.t.mean == pytest.approx(-0.025) and moved.n_positive == 1 and moved.bootstrap is None
    alone = between_runs(first, second, "sft", None)  # sft's held-out accuracy itself, run 2 minus run 1
    assert alone.differences == pytest.approx((0.1, 0.0)) and alone.measure == "held_acc_final"
    with pytest.raises(InterferenceError, match="share no seed that holds 'held_acc_final' for sd − sft"):
        between_runs(first, second[4:], "sd", "sft")


def test_fact_bootstrap_is_deterministic_and_centred():
    rng = np.random.default_rng(1)
    diffs = [rng.integers(-1, 2, size=50).astype(float) for _ in range(3)]
    a = fact_bootstrap(diffs, seed=3, n_resamples=500)
    b = fact_bootstrap(diffs, seed=3, n_resamples=500)
    assert a == b
    assert a.mean == pytest.approx(np.mean([d.mean() for d in diffs]))
    assert a.low <= a.mean <= a.high and a.low < a.high
    constant = fact_bootstrap([[0.5] * 10, [0.5] * 20], n_resamples=50)
    assert constant.low == pytest.approx(0.5) and constant.high == pytest.approx(0.5)
    with pytest.raises(InterferenceError, match="non-empty"):
        fact_bootstrap([[]])


def test_bootstrap_reads_per_fact_outcomes():
    start = [True] * 10
    records = [
        record("sft", 0, 1.0, 0.5, 0.9, held=[True] * 5 + [False] * 5, start_held=start,
               new_correct=[True] * 9 + [False]),
        record("sd", 0, 1.0, 0.8, 0.8, held=[True] * 8 + [False] * 2, start_held=start,
               new_correct=[True] * 8 + [False] * 2),
    ]
    final = paired_difference(records, "sd", "sft", "held_acc_final", n_resamples=300)
    assert final.bootstrap is not None and final.bootstrap.mean == pytest.approx(0.3)
    assert final.bootstrap.low <= 0.3 <= final.bootstrap.high
    drop = paired_difference(records, "sd", "sft", "absolute_drop", n_resamples=300)
    assert drop.bootstrap.mean == pytest.approx(-0.3)
    new = paired_difference(records, "sd", "sft", "new_acc", n_resamples=300)
    assert new.bootstrap.mean == pytest.approx(-0.1)


def test_paired_comparison_leaves_out_missing_measures_and_the_reference():
    records = [record("sft", 0, 0.9, 0.6, 0.9), record("known-only", 0, 0.9, 0.88, 0.0)]
    records[1]["new_acc"] = None
    diffs = paired_comparison(records, ["sft", "known-only"])
    assert [(d.condition, d.measure) for d in diffs] == [("known-only", "held_acc_final"),
                                                          ("known-only", "absolute_drop")]
    assert find(diffs, "known-only", "new_acc") is None
    assert find(diffs, "known-only", "held_acc_final").t.mean == pytest.approx(0.28)


def test_condition_summary():
    records = [record("sft", 0, 0.9, 0.6, 0.9), record("sft", 1, 0.9, 0.7, 0.9), record("sd", 0, 0.9, 0.8, 0.85)]
    rows = condition_summary(records, ["sft", "sd", "absent"])
    assert [r["condition"] for r in rows] == ["sft", "sd"]
    assert rows[0]["held_acc_final"] == pytest.approx(0.65) and rows[0]["held_acc_final_low"] < 0.65
    assert rows[1]["seeds"] == 1 and rows[1]["held_acc_final_low"] is None


def test_judge_rules():
    good, bad = Check("a", "x", True, primary=True), Check("b", "y", False)
    assert judge([good, Check("c", "z", True)]).verdict == "reproduces"
    assert judge([good, bad]).verdict == "partly reproduces"
    assert judge([Check("a", "x", False, primary=True), Check("c", "z", True)]).verdict == "does not reproduce"
    assert judge([bad]).verdict == "does not reproduce"
    assert judge([good, bad]).summary == "partly reproduces (1 of 2 rules hold)"
    with pytest.raises(InterferenceError):
        judge([])


def test_small_helpers():
    assert interval_text(t_interval([0.1, 0.2, 0.3])).startswith("+0.200 [")
    assert interval_text(t_interval([0.1])) == "+0.100"
    assert ratio(0.3, 0.1) == pytest.approx(3.0) and ratio(0.3, 0.0) == math.inf and math.isnan(ratio(None, 1))


def test_beyond_noise_needs_a_positive_mean_and_an_interval_above_zero():
    from interference.report.paired import beyond_noise, evidence

    start = [True] * 40
    sft = [True] * 20 + [False] * 20
    clear = [record("sft", 0, 1.0, 0.5, 0.9, held=sft, start_held=start),
             record("sd", 0, 1.0, 0.9, 0.9, held=[True] * 36 + [False] * 4, start_held=start)]
    noise = [clear[0], record("sd", 0, 1.0, 0.525, 0.9, held=[True] * 21 + [False] * 19, start_held=start)]
    assert beyond_noise(paired_difference(clear, "sd", "sft"))
    assert not beyond_noise(paired_difference(noise, "sd", "sft"))  # +0.025 with 40 facts: within noise
    assert "facts [" in evidence(paired_difference(clear, "sd", "sft"))
    seeds_only = [record("sft", s, 0.9, 0.5, 0.9) for s in (0, 1, 2)] + [
        record("sd", s, 0.9, v, 0.9) for s, v in ((0, 0.8), (1, 0.82), (2, 0.79))]
    assert beyond_noise(paired_difference(seeds_only, "sd", "sft"))  # no per-fact outcomes: the t-interval decides
    assert evidence(paired_difference(seeds_only, "sd", "sft")).endswith(
        " over seeds (no per-fact outcomes: this interval decides)")
    assert evidence(paired_difference(seeds_only[:1] + seeds_only[3:4], "sd", "sft")) == (
        "+0.300 (one seed and no per-fact outcomes: no interval)")

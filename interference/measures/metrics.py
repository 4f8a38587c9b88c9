"""Forgetting and acquisition metrics over a training run's accuracy curves (SPEC §2), as pure functions.

A curve is the sequence of accuracies measured at step 0 and after each epoch, oldest first. Per-fact outcomes are
lists of booleans (one per fact, in a fixed order), as returned by `interference.measures.evaluation.fact_correctness`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from ..io.errors import InterferenceError


def _check_curve(curve: Sequence[float], what: str) -> list[float]:
    values = [float(v) for v in curve]
    if not values:
        raise InterferenceError(f"{what} needs at least one accuracy value, got an empty curve")
    return values


def peak(curve: Sequence[float]) -> float:
    """max_t acc_t over the curve (NaN entries, from empty splits, are ignored; NaN if all are NaN)."""
    finite = [v for v in _check_curve(curve, "peak") if not math.isnan(v)]
    return max(finite) if finite else float("nan")


def forgetting(curve: Sequence[float]) -> float:
    """Relative drop of the final accuracy from its peak: (max_t acc_t − acc_final) / max_t acc_t (SPEC §2).

    0 when the final value is the peak; 1 when everything known at the peak is lost. NaN when the peak is 0
    (nothing to forget) or the curve has no finite value.
    """
    values = _check_curve(curve, "forgetting")
    top, final = peak(values), values[-1]
    if math.isnan(top) or math.isnan(final) or top <= 0:
        return float("nan")
    return (top - final) / top


def absolute_drop(curve: Sequence[float]) -> float:
    """acc_0 − acc_final: the drop from the model before fine-tuning, in accuracy points (fractions)."""
    values = _check_curve(curve, "absolute_drop")
    return values[0] - values[-1]


def flips(before: Sequence[bool], after: Sequence[bool]) -> dict[str, list[int]]:
    """Indices of facts that changed outcome: `lost` (correct before, wrong after) and `gained` (the reverse)."""
    if len(before) != len(after):
        raise InterferenceError(f"flips needs outcomes of the same facts, got {len(before)} and {len(after)} values")
    lost = [i for i, (b, a) in enumerate(zip(before, after, strict=True)) if b and not a]
    gained = [i for i, (b, a) in enumerate(zip(before, after, strict=True)) if a and not b]
    return {"lost": lost, "gained": gained}


def forgotten_at_peak(per_epoch: Sequence[Sequence[bool]], curve: Sequence[float] | None = None) -> list[int]:
    """Indices of facts correct at the curve's peak evaluation and wrong at the final one.

    `per_epoch` holds per-fact outcomes at each evaluation; the peak is the first evaluation with the highest
    accuracy (computed from `per_epoch` when `curve` is not given).
    """
    if not per_epoch:
        raise InterferenceError("forgotten_at_peak needs at least one evaluation")
    if curve is None:
        curve = [sum(o) / len(o) if len(o) else float("nan") for o in per_epoch]
    if len(curve) != len(per_epoch):
        raise InterferenceError(f"curve has {len(curve)} values but there are {len(per_epoch)} evaluations")
    top = peak(curve)
    at = next((i for i, v in enumerate(curve) if v == top), 0)
    return flips(per_epoch[at], per_epoch[-1])["lost"]


def first_reaching(curve: Sequence[float], target: float) -> int | None:
    """Index of the first evaluation whose accuracy is >= `target` (matched acquisition), or None if never."""
    for i, value in enumerate(_check_curve(curve, "first_reaching")):
        if not math.isnan(value) and value >= target:
            return i
    return None

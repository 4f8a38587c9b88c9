"""Paired comparisons of conditions over seeds, and verdicts drawn from them with stated rules (SPEC §2).

Every condition of one study starts from the same model and trains on the same facts per seed, so a condition and
the reference (usually "sft") trained on one seed form a pair. The headline of a report is, per condition, the
paired per-seed difference from the reference:

- in final held-out accuracy (`held_acc_final`),
- in the absolute drop from the shared start (`absolute_drop` = `held_acc_start` − `held_acc_final`),
- in acquisition (`new_acc`),

each with a 95 % Student-t interval over seeds, and, as a second view, a bootstrap over facts: the facts of each
seed are resampled with replacement (the same resample for both members of a pair) and the mean over seeds of the
difference recomputed. The t-interval speaks to seed-to-seed variation, the bootstrap to the finite set of facts.

All functions are pure: condition records (mappings as `interference.studies.setup.Condition.record` makes them) in,
frozen dataclasses and plain rows out. Per-fact outcomes are read from the record fields `held_correct_start`,
`held_correct_final` and `new_correct_final` (lists of booleans, one per fact of the split, in split order); a
record without them gets no bootstrap.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ..io.errors import InterferenceError
from .stats import mean_ci

#: The paired measures: record field -> what it means.
MEASURES: dict[str, str] = {
    "held_acc_final": "final held-out accuracy",
    "absolute_drop": "absolute drop of held-out accuracy from the shared start",
    "new_acc": "acquisition, acc(D_unknown)",
}
#: Per-condition numbers summarised over seeds (mean and t-interval).
SUMMARY_MEASURES = ("held_acc_start", "held_acc_final", "absolute_drop", "forgetting", "new_acc", "task_acc")
#: The verdicts, strongest first.
VERDICTS = ("reproduces", "partly reproduces", "does not reproduce")


def _outcomes(record: Mapping, field: str) -> np.ndarray | None:
    values = record.get(field)
    if not isinstance(values, list | tuple) or not values:
        return None
    return np.asarray([float(bool(v)) for v in values])


def _per_fact_final(record: Mapping) -> np.ndarray | None:
    return _outcomes(record, "held_correct_final")


def _per_fact_drop(record: Mapping) -> np.ndarray | None:
    start, final = _outcomes(record, "held_correct_start"), _outcomes(record, "held_correct_final")
    if start is None or final is None or len(start) != len(final):
        return None
    return start - final


def _per_fact_new(record: Mapping) -> np.ndarray | None:
    return _outcomes(record, "new_correct_final")


#: Per measure, the per-fact values of one record that the bootstrap resamples (None where the record lacks them).
PER_FACT: dict[str, Callable[[Mapping], np.ndarray | None]] = {
    "held_acc_final": _per_fact_final, "absolute_drop": _per_fact_drop, "new_acc": _per_fact_new,
}


@dataclass(frozen=True)
class Interval:
    """A mean with a two-sided interval [low, high] (NaN bounds where undefined, e.g. one seed)."""

    mean: float
    low: float
    high: float
    n: int
    level: float = 0.95

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2

    def fields(self) -> dict:
        """{"mean", "low", "high", "n"}: the interval as a results file keeps it."""
        return {"mean": self.mean, "low": self.low, "high": self.high, "n": self.n}

    def excludes_zero(self) -> bool:
        """True when the whole interval lies on one side of 0 (False when it is undefined)."""
        return bool(self.low > 0 or self.high < 0)


def finite_number(value) -> bool:
    """True for a finite int or float (not a bool, None or NaN)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def t_interval(values: Sequence[float], level: float = 0.95) -> Interval:
    """Mean and Student-t interval of `values` (non-finite values dropped); NaN bounds with fewer than 2 values."""
    if not 0 < level < 1:
        raise InterferenceError(f"confidence level must lie strictly between 0 and 1, got {level}")
    kept = [float(v) for v in values if finite_number(v)]
    if not kept:
        return Interval(math.nan, math.nan, math.nan, 0, level)
    ci = mean_ci(kept, level)
    return Interval(ci.mean, ci.low, ci.high, ci.n, level)


def fact_bootstrap(differences: Sequence[Sequence[float]], *, n_resamples: int = 2000, level: float = 0.95,
                   seed: int = 0) -> Interval:
    """Percentile bootstrap over facts of the mean over seeds of the mean per-fact difference.

    `differences[s][i]` is the per-fact difference of pair `s` (one seed) at fact `i`; the facts of each seed are
    resampled with replacement, independently per seed, `n_resamples` times.
    """
    if n_resamples < 1:
        raise InterferenceError(f"n_resamples must be at least 1, got {n_resamples}")
    arrays = [np.asarray(d, dtype=np.float64) for d in differences]
    if not arrays or any(a.ndim != 1 or a.size == 0 for a in arrays):
        raise InterferenceError("fact_bootstrap needs, per seed, a non-empty flat list of per-fact differences")
    rng = np.random.default_rng(seed)
    totals = np.zeros(n_resamples)
    for array in arrays:
        index = rng.integers(0, array.size, size=(n_resamples, array.size))
        totals += array[index].mean(axis=1)
    means = totals / len(arrays)
    alpha = (1 - level) / 2
    low, high = np.quantile(means, [alpha, 1 - alpha])
    return Interval(float(np.mean([a.mean() for a in arrays])), float(low), float(high), len(arrays), level)


@dataclass(frozen=True)
class PairedDifference:
    """The per-seed difference `condition − reference` in one measure, with its intervals.

    Attributes:
        condition, reference: the compared condition names.
        measure: the record field compared (see `MEASURES`).
        seeds: the seeds that hold both (in order); differences: the per-seed differences.
        t: mean and Student-t interval over seeds.
        bootstrap: the bootstrap over facts (None where the records hold no per-fact outcomes).
        n_positive: seeds whose difference is > 0.
    """

    condition: str
    reference: str
    measure: str
    seeds: tuple[int, ...]
    differences: tuple[float, ...]
    t: Interval
    bootstrap: Interval | None
    n_positive: int

    def row(self) -> dict:
        """A flat table row (numbers only, no lists)."""
        boot = self.bootstrap
        return {
            "condition": self.condition, "minus": self.reference, "measure": self.measure,
            "difference": self.t.mean, "t_low": self.t.low, "t_high": self.t.high,
            "boot_low": None if boot is None else boot.low, "boot_high": None if boot is None else boot.high,
            "seeds": self.t.n, "seeds_above_0": self.n_positive,
        }


def _by_seed(records: Sequence[Mapping], name: str) -> dict[int, Mapping]:
    """Seed -> the record of condition `name`; a seed twice is an error (it would pair twice)."""
    out: dict[int, Mapping] = {}
    for r in records:
        if r["name"] == name:
            if r["seed"] in out:
                raise InterferenceError(f"condition {name!r} has two records of seed {r['seed']}")
            out[r["seed"]] = r
    return out


def _paired_seeds(mine: Mapping[int, Mapping], theirs: Mapping[int, Mapping], measure: str) -> tuple[int, ...]:
    """The seeds (in the reference's order) on which both members of a pair hold a finite `measure`."""
    return tuple(s for s in theirs if s in mine and finite_number(mine[s].get(measure))
                 and finite_number(theirs[s].get(measure)))


def paired_difference(records: Sequence[Mapping], condition: str, reference: str = "sft",
                      measure: str = "held_acc_final", *, level: float = 0.95, n_resamples: int = 2000,
                      seed: int = 0) -> PairedDifference:
    """`condition − reference` in `measure`, paired by seed over the seeds both were run on."""
    mine, theirs = _by_seed(records, condition), _by_seed(records, reference)
    seeds = _paired_seeds(mine, theirs, measure)
    if not seeds:
        raise InterferenceError(f"no seed holds {measure!r} for both {condition!r} and {reference!r}")
    differences = tuple(float(mine[s][measure]) - float(theirs[s][measure]) for s in seeds)
    per_fact = PER_FACT.get(measure)
    bootstrap = None
    if per_fact is not None:
        pairs = [(per_fact(mine[s]), per_fact(theirs[s])) for s in seeds]
        if all(a is not None and b is not None and len(a) == len(b) for a, b in pairs):
            bootstrap = fact_bootstrap([a - b for a, b in pairs], n_resamples=n_resamples, level=level, seed=seed)
    return PairedDifference(condition, reference, measure, seeds, differences, t_interval(differences, level),
                            bootstrap, sum(d > 0 for d in differences))


def paired_comparison(records: Sequence[Mapping], conditions: Sequence[str], reference: str = "sft",
                      measures: Sequence[str] = tuple(MEASURES), **options) -> list[PairedDifference]:
    """`paired_difference` for every condition (other than the reference) and measure that the records allow.

    A measure a condition does not have (e.g. `new_acc` of known-only training, which is null) is left out.
    """
    out = []
    for condition in conditions:
        if condition == reference:
            continue
        mine, theirs = _by_seed(records, condition), _by_seed(records, reference)
        for measure in measures:
            if _paired_seeds(mine, theirs, measure):
                out.append(paired_difference(records, condition, reference, measure, **options))
    return out


def between_runs(first: Sequence[Mapping], second: Sequence[Mapping], condition: str, reference: str | None = "sft",
                 measure: str = "held_acc_final", level: float = 0.95) -> PairedDifference:
    """How a result moves from one run to another of the same seeds (another machine, version or world build): per
    seed, `condition − reference` in `measure` in the second run minus the same in the first (with `reference`
    None, the condition's `measure` itself), paired by seed over the seeds both runs hold; the t-interval says
    whether the runs differ beyond their seeds' noise. Returned as a `PairedDifference` whose condition is
    "second" and reference "first" (no bootstrap over facts: the two runs' facts are the same draws)."""

    def per_seed(records: Sequence[Mapping]) -> dict[int, float]:
        if reference is None:
            return {s: float(r[measure]) for s, r in _by_seed(records, condition).items()
                    if finite_number(r.get(measure))}
        mine, theirs = _by_seed(records, condition), _by_seed(records, reference)
        return {s: float(mine[s][measure]) - float(theirs[s][measure]) for s in _paired_seeds(mine, theirs, measure)}

    before, after = per_seed(first), per_seed(second)
    seeds = tuple(s for s in before if s in after)
    if not seeds:
        what = condition if reference is None else f"{condition} − {reference}"
        raise InterferenceError(f"the two runs share no seed that holds {measure!r} for {what}")
    differences = tuple(after[s] - before[s] for s in seeds)
    return PairedDifference("second", "first", measure, seeds, differences, t_interval(differences, level), None,
                            sum(d > 0 for d in differences))


def condition_summary(records: Sequence[Mapping], conditions: Sequence[str],
                      measures: Sequence[str] = SUMMARY_MEASURES, level: float = 0.95) -> list[dict]:
    """Per condition: seeds, and per measure the mean over seeds and its t-interval (`<measure>_low/_high`)."""
    rows = []
    for name in conditions:
        mine = [r for r in records if r["name"] == name]
        if not mine:
            continue
        row: dict = {"condition": name, "seeds": len(mine)}
        for measure in measures:
            interval = t_interval([r.get(measure) for r in mine], level)
            row[measure] = None if interval.n == 0 else interval.mean
            row[f"{measure}_low"] = None if interval.n < 2 else interval.low
            row[f"{measure}_high"] = None if interval.n < 2 else interval.high
        rows.append(row)
    return rows


@dataclass(frozen=True)
class Check:
    """One rule of a verdict: what is required, what was observed, whether it held.

    A primary check states the direction of the claim: if it fails the claim does not reproduce whatever the
    others say.
    """

    rule: str
    observed: str
    passed: bool
    primary: bool = False


@dataclass(frozen=True)
class Verdict:
    """A plain verdict from checks: "reproduces" when every check holds, "does not reproduce" when a primary
    check fails (or every check fails), "partly reproduces" otherwise."""

    verdict: str
    checks: tuple[Check, ...]

    @property
    def summary(self) -> str:
        held = sum(c.passed for c in self.checks)
        return f"{self.verdict} ({held} of {len(self.checks)} rules hold)"


def judge(checks: Sequence[Check]) -> Verdict:
    """The verdict the checks give (see `Verdict`)."""
    checks = tuple(checks)
    if not checks:
        raise InterferenceError("a verdict needs at least one check")
    if all(c.passed for c in checks):
        verdict = VERDICTS[0]
    elif any(c.primary and not c.passed for c in checks) or not any(c.passed for c in checks):
        verdict = VERDICTS[2]
    else:
        verdict = VERDICTS[1]
    return Verdict(verdict, checks)


def beyond_noise(difference: PairedDifference) -> bool:
    """Whether a paired difference is positive beyond noise: a positive mean, and its 95 % bootstrap interval over
    facts above 0 (the t-interval over seeds where the records hold no per-fact outcomes)."""
    interval = difference.bootstrap or difference.t
    return bool(difference.t.mean > 0 and interval.low > 0)


def evidence(difference: PairedDifference) -> str:
    """'+0.082 [+0.031, +0.133] over seeds; facts [+0.050, +0.110]' for a verdict's table; without per-fact outcomes
    it says that the interval over seeds decides (as in `beyond_noise`)."""
    text = interval_text(difference.t)
    if difference.bootstrap is not None:
        return text + f" over seeds; facts [{difference.bootstrap.low:+.3f}, {difference.bootstrap.high:+.3f}]"
    if difference.t.n < 2:
        return text + " (one seed and no per-fact outcomes: no interval)"
    return text + " over seeds (no per-fact outcomes: this interval decides)"


def find(differences: Sequence[PairedDifference], condition: str, measure: str) -> PairedDifference | None:
    """The paired difference of `condition` in `measure`, or None."""
    return next((d for d in differences if d.condition == condition and d.measure == measure), None)


def interval_text(interval: Interval, digits: int = 3) -> str:
    """'+0.082 [+0.031, +0.133]' (the bounds left out where undefined)."""
    if interval.n == 0 or not math.isfinite(interval.mean):
        return "—"
    text = f"{interval.mean:+.{digits}f}"
    if math.isfinite(interval.low) and math.isfinite(interval.high):
        text += f" [{interval.low:+.{digits}f}, {interval.high:+.{digits}f}]"
    return text


def ratio(numerator: float | None, denominator: float | None) -> float:
    """numerator / denominator, +inf when only the denominator is ≤ 0 and the numerator > 0, NaN when undefined."""
    if not (finite_number(numerator) and finite_number(denominator)):
        return math.nan
    if denominator > 0:
        return numerator / denominator
    return math.inf if numerator > 0 else math.nan

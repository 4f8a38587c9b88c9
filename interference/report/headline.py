"""The parts every training study's report shares: the headline (claim, verdict, paired comparison, the paper beside
ours, one comparison chart), the per-condition summary, and per-epoch accuracy curves with seed bands."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from . import charts
from .document import Report
from .paired import (
    Check,
    Interval,
    PairedDifference,
    Verdict,
    condition_summary,
    finite_number,
    interval_text,
    judge,
    paired_comparison,
    ratio,
    t_interval,
)

#: Short labels of the paired measures in tables.
MEASURE_LABELS = {"held_acc_final": "final held-out acc", "absolute_drop": "absolute drop", "new_acc": "acquisition"}
#: Per-condition numbers and their labels in the summary table.
SUMMARY_LABELS = {"held_acc_start": "held-out at start", "held_acc_final": "held-out final",
                  "absolute_drop": "absolute drop", "forgetting": "forgetting (peak-relative)",
                  "new_acc": "acquisition", "task_acc": "task acc"}


def paired_rows(differences: Sequence[PairedDifference]) -> list[dict]:
    """The paired comparison as display rows, one per compared condition: per measure the mean difference with its
    95 % t-interval over seeds, and below it the 95 % bootstrap interval over facts."""
    rows: dict[tuple[str, str], dict] = {}
    for d in differences:
        row = rows.setdefault((d.condition, d.reference), {"condition": f"{d.condition} − {d.reference}"})
        text = interval_text(d.t)
        if d.bootstrap is not None:
            text += f"\nfacts: [{d.bootstrap.low:+.3f}, {d.bootstrap.high:+.3f}]"
        row[MEASURE_LABELS.get(d.measure, d.measure)] = text
        if d.measure == "held_acc_final":
            row["_seeds"] = f"{d.n_positive} of {d.t.n}"
    for row in rows.values():
        if "_seeds" in row:
            row["seeds with higher held-out acc"] = row.pop("_seeds")
    return list(rows.values())


def mean_of(records: Sequence[Mapping], name: str, field: str) -> float | None:
    """The mean over seeds of `field` for condition `name` (None where no seed has it)."""
    interval = t_interval([r.get(field) for r in records if r["name"] == name])
    return None if interval.n == 0 else interval.mean


@dataclass(frozen=True)
class DropRatio:
    """The ratio of mean drops over seeds, `labels[0]` / `labels[1]` (as `ratio`: ∞ when only the second is ≤ 0),
    with the first's t-interval over seeds. A ratio over a drop within noise (∞ over +0.007, say) says nothing, so
    `meets` also asks that interval to lie above 0."""

    value: float
    drop: Interval
    other: float | None
    labels: tuple[str, str]

    def meets(self, minimum: float) -> bool:
        """The ratio is at least `minimum` and the first drop is above 0 beyond noise."""
        return above_zero(self.drop) and self.value >= minimum

    def text(self) -> str:
        """'2.13 (mean absolute drops sft +0.071, self_distill +0.033); sft drop +0.071 [+0.052, +0.090]', or why
        the ratio is undefined."""
        first, second = self.labels
        drops = (self.drop.mean, self.other)  # the mean is NaN without seeds
        tail = f"; {first} drop {interval_text(self.drop)}{' (one seed: no interval)' if self.drop.n == 1 else ''}"
        if not all(finite_number(d) for d in drops):
            return "no drops to compare" + tail
        means = f"mean absolute drops {first} {drops[0]:+.3f}, {second} {drops[1]:+.3f}"
        if drops[0] <= 0 or math.isnan(self.value):
            return f"undefined: {means} (a ratio of drops needs a positive {first} drop){tail}"
        return f"{'∞' if math.isinf(self.value) else f'{self.value:.2f}'} ({means}){tail}"


def drop_ratio(records: Sequence[Mapping], larger: str, smaller: str, labels: tuple[str, str] | None = None,
               field: str = "absolute_drop") -> DropRatio:
    """Mean `field` of condition `larger` / that of `smaller` over seeds (labelled `labels`, default their names)."""
    drop = t_interval([r.get(field) for r in records if r["name"] == larger])
    other = mean_of(records, smaller, field)
    return DropRatio(ratio(drop.mean, other), drop, other, labels or (larger, smaller))


def above_zero(interval: Interval) -> bool:
    """True when a t-interval over at least two seeds lies above 0 (beyond noise)."""
    return interval.n > 1 and interval.low > 0


def acquisition_gap(records: Sequence[Mapping], name: str, target: float | None) -> str | None:
    """Why a comparison at matched acquisition cannot be judged: condition `name` never learned the new facts (mean
    acquisition over seeds 0) or stayed below `target`; None when it reached it (or did not run)."""
    acquired = mean_of(records, name, "new_acc")
    if acquired is None:
        return None
    if acquired == 0:
        return f"{name} never learned the new facts (acquisition 0.00): the comparison needs acquisition"
    if target is not None and acquired < target - 1e-9:
        return (f"{name} stayed below the acquisition target (mean acquisition {acquired:.2f} < {target:g}): the "
                "comparison is not at matched acquisition")
    return None


def first_acquisition_gap(records: Sequence[Mapping], names: Sequence[str], target: float | None) -> str | None:
    """The first `acquisition_gap` among conditions `names`: why a verdict that needs each of them at matched
    acquisition cannot be judged (None when every one that ran reached it)."""
    return next((gap for name in names if (gap := acquisition_gap(records, name, target))), None)


def ours(records: Sequence[Mapping], name: str, field: str, percent: bool = True) -> str:
    """'12.3 %' (or '0.123'): our mean of `field` for `name`, for the paper-vs-ours table."""
    value = mean_of(records, name, field)
    if value is None:
        return "— (not run)"
    return f"{100 * value:.1f} %" if percent else f"{value:.3f}"


def add_headline(report: Report, *, claim: str, records: Sequence[Mapping], conditions: Sequence[str],
                 checks: Sequence[Check] | None, paper: Sequence[Mapping], reference: str = "sft",
                 differences: Sequence[PairedDifference] | None = None, untested: str | None = None,
                 acquired: Sequence[str] = (), target: float | None = None, chart=None) -> Verdict | None:
    """Open `report`'s headline: the claim, the verdict from `checks` (none when they are None), the paired
    comparison (`differences`, default every condition − `reference`), `paper` rows ({"quantity", "paper", "ours"})
    and the comparison chart; the numbers also go to `report.results` (`paired`, `verdict`, `paper`). Without
    checks, `untested` says why there is no verdict. `acquired`: the conditions the verdict needs at the acquisition
    `target` (None: any acquisition); when one never learned the new facts or stayed below it, there is no verdict
    and `first_acquisition_gap` says why. `chart`: the headline's figure instead of the comparison chart."""
    gap = first_acquisition_gap(records, acquired, target) if checks else None
    if gap:
        checks, untested = None, gap
    if differences is None:
        differences = paired_comparison(records, conditions, reference)
    verdict = judge(checks) if checks else None
    head = report.headline(claim, verdict, untested)
    if not differences:
        head.text(f"No paired comparison: no condition of this run shares a seed with {reference}.")
    else:
        head.table(paired_rows(differences), title=f"Paired difference from {reference}: mean over seeds [95 % "
                                                   f"t-interval over seeds]; below, [95 % bootstrap over facts]")
    if paper:
        head.table(paper, title="The paper beside ours", columns=["quantity", "paper", "ours"])
    head.figure(chart if chart is not None else charts.comparison_chart(records, conditions))
    report.results.update(paired=[d.row() for d in differences], verdict=verdict, paper=list(paper))
    return verdict


def add_summary(report: Report, records: Sequence[Mapping], conditions: Sequence[str]) -> list[dict]:
    """A section with, per condition, the mean over seeds [95 % t-interval] of the held-out accuracy at the shared
    start and at the end, the absolute drop, peak-relative forgetting (secondary), acquisition and task accuracy."""
    summary = condition_summary(records, conditions)
    rows = []
    for row in summary:
        shown = {"condition": row["condition"], "seeds": row["seeds"]}
        for field, label in SUMMARY_LABELS.items():
            value = row[field]
            shown[label] = "—" if value is None else (
                f"{value:.3f}" if row[f"{field}_low"] is None
                else f"{value:.3f} [{row[f'{field}_low']:.3f}, {row[f'{field}_high']:.3f}]")
        rows.append(shown)
    report.results["condition_summary"] = summary
    report.section("Per condition", "Means over seeds with 95 % t-intervals. Absolute drop = held-out accuracy at the "
                   "shared start − at the end; forgetting = (peak − final) / peak, a secondary measure "
                   "(SPEC §2).").table(rows)
    return summary


def add_curves(report: Report, records: Sequence[Mapping], conditions: Sequence[str]) -> None:
    """A section of per-epoch accuracy curves (held-out, new facts, task): per condition the mean over seeds with a
    band spanning the seeds; records need `curves` (see `interference.studies.setup.Condition.record`)."""
    section = report.section("Per-epoch accuracy", "Mean over seeds after each epoch (epoch 0 = the shared start); "
                             "the band spans the seeds' minimum to maximum. A run that stopped early (it reached the "
                             "acquisition target) ends its line there.")
    for split, label in (("held", "held-out accuracy acc(D_held)"), ("unknown", "acquisition acc(D_unknown)"),
                         ("known", "task accuracy acc(D_known)")):
        series = {name: [r["curves"][split] for r in records if r["name"] == name and r.get("curves")]
                  for name in conditions}
        section.figure(charts.band_chart(series, title=label, x_title="epoch", y_title="accuracy"))

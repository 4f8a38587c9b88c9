"""Is a remedy SFT, shrunk? Two views of one question, read from a remedies run's records.

Behaviour: WiSE-FT's curve, θ⁰ + α(θ_sft − θ⁰) over the swept α, is what shrinking SFT's update evenly buys. Per
seed, `frontier_gap` reads the held-out accuracy that curve has at a method's own acquisition (linear between two
swept α, on the first segment from the start that reaches it) and subtracts it from the method's: above 0 the method
keeps more held-out facts than an evenly shrunk SFT that learned as much; about 0 it is no better than one. A method
that learns more than SFT itself is off the curve (no gap).

Weights: the records' `sft_alignment` (`interference.measures.updates.update_alignment`): the cosine of a method's
update θ − θ⁰ with SFT's, the multiple of SFT's update nearest it ("scale") and their norm ratio, per layer and
parameter group. A cosine near 1 with a scale below 1 is a shorter step along SFT's direction; a low cosine is a
step elsewhere. Pure functions of the records."""

from __future__ import annotations

import statistics
from collections.abc import Sequence

from .paired import finite_number, interval_text, t_interval

#: Methods the views leave out: the reference itself, and WiSE-FT, which lies on its own curve by construction.
ON_THE_CURVE = ("sft", "wise-ft")
#: What `interference.measures.updates.update_alignment` measures of an update against SFT's.
MEASURES = ("cosine", "scale", "norm_ratio", "sideways")
#: The slots the tables show: all parameters, two parameter groups, and what sits outside the decoder layers.
SLOTS = ("all", "attention", "ffn", "other")
#: The measures compared with the control's seed by seed.
COMPARED = ("cosine", "scale", "sideways")
#: The control every other method's alignment is set beside: SFT with another batch order.
CONTROL = "reshuffled"


def wise_held_at(points: Sequence[dict], acquisition: float) -> tuple[float, float] | None:
    """(α, held-out accuracy) of the WiSE-FT curve `points` ({"alpha", "new_acc", "held_acc"}) where its acquisition
    equals `acquisition`: linear between consecutive α, on the first segment from α's low end that reaches it; None
    where no segment does (the method learned more than any point, or less than all)."""
    points = sorted(points, key=lambda p: p["alpha"])
    if len(points) == 1 and points[0]["new_acc"] == acquisition:
        return points[0]["alpha"], points[0]["held_acc"]
    for a, b in zip(points, points[1:], strict=False):
        low, high = a["new_acc"], b["new_acc"]
        if min(low, high) <= acquisition <= max(low, high):
            t = 0.0 if high == low else (acquisition - low) / (high - low)
            return a["alpha"] + t * (b["alpha"] - a["alpha"]), a["held_acc"] + t * (b["held_acc"] - a["held_acc"])
    return None


def _sweeps(records: Sequence[dict]) -> dict[int, list[dict]]:
    """Each seed's WiSE-FT curve, from its wise-ft record."""
    return {r["seed"]: r["sweep"] for r in records if r["name"] == "wise-ft" and r.get("sweep")}


def frontier_gaps(records: Sequence[dict], methods: Sequence[str]) -> list[dict]:
    """Per method (not `ON_THE_CURVE`) and seed with a WiSE-FT sweep: the method's acquisition and held-out accuracy,
    the α and held-out accuracy of the WiSE-FT curve at that acquisition, and `gap` (the method's minus the curve's;
    None off the curve)."""
    sweeps, rows = _sweeps(records), []
    for method in (m for m in methods if m not in ON_THE_CURVE):
        for record in (r for r in records if r["name"] == method and r["seed"] in sweeps):
            if not finite_number(record.get("new_acc")):
                continue
            found = wise_held_at(sweeps[record["seed"]], record["new_acc"])
            rows.append({"method": method, "seed": record["seed"], "acquisition": record["new_acc"],
                         "held": record["held_acc_final"], "alpha": found and found[0],
                         "wise_held": found and found[1], "gap": found and record["held_acc_final"] - found[1]})
    return rows


def frontier_summary(gaps: Sequence[dict], methods: Sequence[str]) -> list[dict]:
    """Per method of `gaps`: the seeds, those off the curve, the mean gap with its 95 % t-interval over seeds, the
    seeds above the curve, and the median α at which the curve matches the method's acquisition."""
    rows = []
    for method in methods:
        mine = [g for g in gaps if g["method"] == method]
        on = [g for g in mine if g["gap"] is not None]
        if not mine:
            continue
        interval = t_interval([g["gap"] for g in on])
        rows.append({"method": method, "seeds": len(mine), "off_curve": len(mine) - len(on),
                     "gap": interval.fields(),
                     "gap_text": interval_text(interval), "above": sum(g["gap"] > 0 for g in on),
                     "alpha_median": statistics.median(g["alpha"] for g in on) if on else None})
    return rows


def _median(values) -> float | None:
    kept = [v for v in values if finite_number(v)]
    return statistics.median(kept) if kept else None


def alignment_rows(records: Sequence[dict], methods: Sequence[str]) -> list[dict]:
    """Per method whose records carry `sft_alignment`: the seeds, and per measure (`MEASURES`) and slot (decoder
    layers, parameter groups, "other", "all") the median over seeds (None where no seed has it)."""
    rows = []
    for method in methods:
        runs = [r["sft_alignment"] for r in records if r["name"] == method and r.get("sft_alignment")]
        if runs:
            rows.append({"method": method, "seeds": len(runs),
                         "median": {m: {slot: _median(run[m].get(slot) for run in runs) for slot in runs[0][m]}
                                    for m in MEASURES}})
    return rows


def control_counts(records: Sequence[dict], methods: Sequence[str], control: str = CONTROL) -> list[dict]:
    """Per method (not `control`, not `ON_THE_CURVE`) with alignments on seeds the control has them too: per measure
    of `COMPARED` and slot of `SLOTS`, on how many of those seeds the method's value is below the control's."""
    if control not in methods:
        return []
    theirs = {r["seed"]: r["sft_alignment"] for r in records if r["name"] == control and r.get("sft_alignment")}
    rows = []
    for method in (m for m in methods if m != control and m not in ON_THE_CURVE):
        mine = {r["seed"]: r["sft_alignment"] for r in records if r["name"] == method and r.get("sft_alignment")
                and r["seed"] in theirs}
        for measure in COMPARED:
            for slot in SLOTS:
                pairs = [(a[measure].get(slot), theirs[seed][measure].get(slot)) for seed, a in mine.items()]
                pairs = [(a, b) for a, b in pairs if finite_number(a) and finite_number(b)]
                if pairs:
                    rows.append({"method": method, "measure": measure, "slot": slot, "seeds": len(pairs),
                                 "below": sum(a < b for a, b in pairs)})
    return rows


def _number(value, digits: int = 3):
    return None if value is None else round(value, digits)


def _curve_gap(sweep: Sequence[dict], acquisition: float, held: float) -> float | None:
    found = wise_held_at(sweep, acquisition)
    return None if found is None else held - found[1]


def swap_rows(records: Sequence[dict], methods: Sequence[str]) -> list[dict]:
    """Per method whose records carry `sft_swaps` and spec swapped: the seeds, the hybrid's held-out accuracy minus
    SFT's with its 95 % t-interval over seeds, its share of the method's own gain over SFT (mean over mean), the
    hybrid's and SFT's mean acquisition, and where the run has WiSE-FT's sweep the hybrid's gap above that curve at
    its own acquisition (`curve_gap`, over the seeds on the curve; a hybrid that learns less forgets less along the
    curve too, so a gain below it is a trade-off, not a saving)."""
    sft, sweeps, rows = {r["seed"]: r for r in records if r["name"] == "sft"}, _sweeps(records), []
    for method in methods:
        mine = [r for r in records if r["name"] == method and r.get("sft_swaps") and r["seed"] in sft]
        for spec in dict.fromkeys(spec for r in mine for spec in r["sft_swaps"]):
            runs = [r for r in mine if spec in r["sft_swaps"]]
            gain = t_interval([r["sft_swaps"][spec]["held_acc"] - sft[r["seed"]]["held_acc_final"] for r in runs])
            own = statistics.mean(r["held_acc_final"] - sft[r["seed"]]["held_acc_final"] for r in runs)
            rows.append({"method": method, "swapped": spec, "seeds": len(runs),
                         "gain": {"mean": gain.mean, "low": gain.low, "high": gain.high},
                         "gain_text": interval_text(gain),
                         "share_of_gain": gain.mean / own if own else None,
                         "new_acc": statistics.mean(r["sft_swaps"][spec]["new_acc"] for r in runs),
                         "sft_new_acc": statistics.mean(sft[r["seed"]]["new_acc"] for r in runs)})
            if sweeps:
                gaps = [_curve_gap(sweeps[r["seed"]], r["sft_swaps"][spec]["new_acc"],
                                   r["sft_swaps"][spec]["held_acc"]) for r in runs if r["seed"] in sweeps]
                on = [g for g in gaps if g is not None]
                curve = t_interval(on)
                rows[-1].update(curve_gap=curve.fields(),
                                curve_gap_text=interval_text(curve), curve_above=sum(g > 0 for g in on),
                                off_curve=len(gaps) - len(on))
    return rows


def _count(counts: Sequence[dict], method: str, measure: str, slot: str) -> str | None:
    row = next((c for c in counts if (c["method"], c["measure"], c["slot"]) == (method, measure, slot)), None)
    return None if row is None else f"{row['below']} of {row['seeds']}"


def shrink_text(summary: Sequence[dict], alignment: Sequence[dict], counts: Sequence[dict] = ()) -> str:
    """One sentence per method: its gap above WiSE-FT's curve, how its update sits against SFT's, and where the
    control ran, on how many seeds its step along SFT's direction is shorter than the control's."""
    aligned, parts = {row["method"]: row["median"] for row in alignment}, []
    for method in dict.fromkeys([*(r["method"] for r in summary), *aligned]):
        row, text = next((r for r in summary if r["method"] == method), None), method
        if row:
            text += (f" ends {row['gap_text']} above WiSE-FT's curve at its own acquisition (above on {row['above']} "
                     f"of {row['gap']['n']} seeds")
            text += f"; the curve matches it at median α {row['alpha_median']:.2f})" if row["alpha_median"] is not \
                None else ")"
            text += f", off the curve on {row['off_curve']}" if row["off_curve"] else ""
        if (a := aligned.get(method)) and a["cosine"].get("all") is not None:
            text += (f"{';' if row else ':'} its update has median cosine {a['cosine']['all']:.2f} with SFT's, "
                     f"{a['scale']['all']:.2f} of it along SFT's direction and {a['sideways']['all']:.2f} off it")
            if shorter := _count(counts, method, "scale", "all"):
                text += f" (a shorter step along it than {CONTROL}'s on {shorter} seeds)"
        parts.append(text + ".")
    return " ".join(parts)


def add_shrink_view(report, records: list[dict], methods: Sequence[str]) -> None:
    """The section "Is it SFT, shrunk?" and `report.results["shrink"]`; nothing where the run has neither a WiSE-FT
    sweep nor alignments."""
    gaps = frontier_gaps(records, methods)
    summary, alignment = frontier_summary(gaps, methods), alignment_rows(records, methods)
    if not summary and not alignment:
        return
    counts, swaps = control_counts(records, methods), swap_rows(records, methods)
    report.results["shrink"] = {"frontier": summary, "frontier_seeds": gaps, "alignment": alignment,
                                "control": counts, "swaps": swaps}
    section = report.section(
        "Is it SFT, shrunk?",
        "WiSE-FT's curve (θ⁰ + α(θ_sft − θ⁰) over the swept α) is what shrinking SFT's update evenly buys. Gap: per "
        "seed, a method's held-out accuracy minus the curve's at the method's own acquisition (linear between swept "
        "α), with a 95 % t-interval over seeds; above 0 the method keeps more than an evenly shrunk SFT that learned "
        "as much. Alignment: the method's update Δ = θ − θ⁰ against SFT's R, medians over seeds: cosine, scale (the "
        "multiple of R nearest Δ: its step along SFT's direction), ‖Δ‖/‖R‖ and sideways (‖Δ − scale·R‖/‖R‖: its step "
        f"off that direction). The control {CONTROL} (SFT with another batch order) shows how much of both another "
        "order alone gives.")
    section.text(shrink_text(summary, alignment, counts))
    if summary:
        section.table([{"method": r["method"], "seeds": r["seeds"], "gap above the curve": r["gap_text"],
                        "seeds above": r["above"], "off the curve": r["off_curve"],
                        "α at its acquisition, median": _number(r["alpha_median"], 2)} for r in summary],
                      title="Held-out accuracy above WiSE-FT's curve at the method's own acquisition")
    if alignment:
        section.table([{"method": r["method"], "seeds": r["seeds"],
                        **{f"{m}, {slot}": _number(r["median"][m].get(slot)) for m in MEASURES for slot in SLOTS}}
                       for r in alignment],
                      title="The update against SFT's, over all parameters, attention, FFN and outside the layers "
                            "(medians over seeds)")
        layers = [s for s in alignment[0]["median"]["cosine"] if s.startswith("layer ")]
        section.table([{"method": r["method"], **{f"{m}, {slot}": _number(r["median"][m].get(slot))
                                                  for m in ("cosine", "scale") for slot in layers}}
                       for r in alignment], title="The update against SFT's per decoder layer (medians over seeds)")
    if counts:
        section.table([{"method": m, **{f"{c['measure']}, {c['slot']}": f"{c['below']} of {c['seeds']}"
                                        for c in counts if c["method"] == m}}
                       for m in dict.fromkeys(c["method"] for c in counts)],
                      title=f"Seeds on which the method's value is below {CONTROL}'s (SFT with another batch order)")
    if swaps:
        section.table([{"method": r["method"], "swapped into SFT's model": r["swapped"], "seeds": r["seeds"],
                        "held-out − SFT's": r["gain_text"],
                        "share of the method's gain": _number(r["share_of_gain"], 2),
                        "acquisition": _number(r["new_acc"]), "SFT's acquisition": _number(r["sft_new_acc"]),
                        **({"above WiSE-FT's curve at its acquisition (seeds on it)":
                            f"{r['curve_gap_text']} ({r['curve_gap']['n']})"} if "curve_gap" in r else {})}
                       for r in swaps],
                      title="SFT's model with one part of the method's update: which part carries its saving (held-out "
                            "accuracy beside SFT's, paired by seed, 95 % t-interval; share = mean over the method's "
                            "own mean gain)")

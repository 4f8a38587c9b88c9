"""Which part of an update keeps the held-out facts: a remedies run's `sft_parts` (`interference.measures.update_parts`)
read per method and seed. Each method's update Δ splits into its step along SFT's update (a = c·R: an evenly shrunk
SFT) and its step off it (b = Δ − a); each held-out fact's loss change is shared between the two by the Shapley rule.

Per seed, over the held-out facts: the mean along and sideways shares, the sideways step's change alone
(ℓ(θ⁰ + b) − ℓ(θ⁰)) and on top of the shrunk SFT (ℓ(θ) − ℓ(θ⁰ + a)), and `aim`, the Spearman correlation across facts
between the sideways share and SFT's own damage to the fact (ℓ_sft − ℓ(θ⁰)): below 0, the step off SFT's direction
lowers the loss most where SFT raised it most. D_unknown's sideways share, and its change on top of the shrunk SFT, say
what that step does to the new facts. Rest: what SFT's own remaining step along its direction (from θ⁰ + c·R to θ_sft)
does to the held-out and the new facts' loss, the other way from the shrunk SFT to more learning; `excess`, the held-out
loss the sideways step adds on top beyond what that remaining step adds for the same drop of D_unknown's loss, pro rata
(below 0: the step off SFT's direction is the cheaper way to the new facts).
The control (SFT with another batch order) says what another order's step off SFT's direction does. Pure functions of
the records."""

from __future__ import annotations

import statistics
from collections.abc import Sequence

from scipy.stats import spearmanr

from .paired import finite_number, interval_text, t_interval
from .shrink import CONTROL

#: The per-seed quantities, in the order the tables show them.
MEASURES = ("along", "sideways", "sideways_alone", "sideways_on_top", "aim", "new_sideways", "new_on_top", "rest_held",
            "rest_new", "excess")


def shapley_shares(start, along, sideways, final):
    """The (along, sideways) shares of final − start from the losses at θ⁰, θ⁰ + a, θ⁰ + b and θ⁰ + Δ: the mean of the
    two orders of adding the parts (`interference.measures.update_parts`); per fact for tensors or arrays, or of one
    number each. They sum to final − start."""
    return 0.5 * ((along - start) + (final - sideways)), 0.5 * ((sideways - start) + (final - along))


def seed_parts(record: dict, sft: dict) -> dict | None:
    """One record's measures (`MEASURES`) against its seed's SFT record; None where either lacks them."""
    parts = record.get("sft_parts")
    if not parts or not sft.get("held_losses_final"):
        return None
    start, final = record["held_losses_start"], record["held_losses_final"]
    along, sideways = parts["held_losses_along"], parts["held_losses_sideways"]
    shares = [shapley_shares(*losses) for losses in zip(start, along, sideways, final, strict=True)]
    damage = [s - b for s, b in zip(sft["held_losses_final"], sft["held_losses_start"], strict=True)]
    side = [b for _, b in shares]
    aim = spearmanr(side, damage).statistic if len(set(side)) > 1 and len(set(damage)) > 1 else None
    new = parts["new_loss"]
    on_top, rest_held = statistics.fmean(final) - statistics.fmean(along), statistics.fmean(
        sft["held_losses_final"]) - statistics.fmean(along)
    rest_new = new["reference"] - new["along"] if "reference" in new else None
    return {"seed": record["seed"], "scale": parts["scale"],
            "along": statistics.fmean(a for a, _ in shares), "sideways": statistics.fmean(side),
            "sideways_alone": statistics.fmean(b - s for b, s in zip(sideways, start, strict=True)),
            "sideways_on_top": on_top,
            "aim": None if aim is None or not finite_number(float(aim)) else float(aim),
            "new_sideways": shapley_shares(new["start"], new["along"], new["sideways"], new["final"])[1],
            "new_on_top": new["final"] - new["along"],
            "rest_held": rest_held, "rest_new": rest_new,
            "excess": on_top - rest_held * (new["final"] - new["along"]) / rest_new if rest_new and rest_new < 0
            else None}


def part_seeds(records: Sequence[dict], methods: Sequence[str]) -> list[dict]:
    """Per method and seed with `sft_parts` and its seed's SFT record: `seed_parts` with the method named."""
    sft, rows = {r["seed"]: r for r in records if r["name"] == "sft"}, []
    for method in methods:
        for record in (r for r in records if r["name"] == method and r["seed"] in sft):
            if (row := seed_parts(record, sft[record["seed"]])) is not None:
                rows.append({"method": method, **row})
    return rows


def _interval(values: Sequence[float]) -> dict:
    interval = t_interval(values)
    return {**interval.fields(), "text": interval_text(interval)}


def part_summary(seeds: Sequence[dict], control: str = CONTROL) -> list[dict]:
    """Per method of `seeds`: each measure's mean with its 95 % t-interval over seeds, the seeds whose sideways
    share is below 0 ("lowered") and whose excess is ("cheaper"), and beside `control` (where it ran on the same
    seeds) the paired difference of the sideways share and of `aim` with the seeds below the control's."""
    theirs = {s["seed"]: s for s in seeds if s["method"] == control}
    rows = []
    for method in dict.fromkeys(s["method"] for s in seeds):
        mine = [s for s in seeds if s["method"] == method]
        row = {"method": method, "seeds": len(mine), "lowered": sum(s["sideways"] < 0 for s in mine),
               "cheaper": sum(s["excess"] is not None and s["excess"] < 0 for s in mine),
               **{m: _interval([s[m] for s in mine if s[m] is not None]) for m in MEASURES}}
        paired = [(s, theirs[s["seed"]]) for s in mine if s["seed"] in theirs]
        if method != control and paired:
            for m in ("sideways", "aim"):
                pairs = [(a[m], b[m]) for a, b in paired if a[m] is not None and b[m] is not None]
                row[f"{m}_vs_control"] = {**_interval([a - b for a, b in pairs]),
                                          "below": sum(a < b for a, b in pairs)}
        rows.append(row)
    return rows


def parts_text(summary: Sequence[dict], control: str = CONTROL) -> str:
    """One sentence per method: what its step off SFT's direction does on top of the shrunk SFT beside the rest of
    SFT's own step (with the excess where the records have SFT's D_unknown loss), its share of the held-out loss
    change and its aim, and beside the control."""
    parts = []
    for row in summary:
        text = (f"{row['method']}: added to the shrunk SFT, its step off SFT's direction changes the held-out loss by "
                f"{row['sideways_on_top']['text']} and the new facts' by {row['new_on_top']['text']}")
        if row["excess"]["n"]:
            text += (f", where the rest of SFT's own step changes them by {row['rest_held']['text']} and "
                     f"{row['rest_new']['text']} (excess {row['excess']['text']}, below 0 on "
                     f"{row['cheaper']} of {row['excess']['n']} seeds)")
        text += (f"; its share of the held-out loss change is {row['sideways']['text']} (below 0 on {row['lowered']} "
                 f"of {row['seeds']} seeds; the step along it {row['along']['text']}), aim {row['aim']['text']}")
        if vs := row.get("sideways_vs_control"):
            text += (f"; beside {control}: sideways share {vs['text']} (below on {vs['below']} of {vs['n']}), aim "
                     f"{row['aim_vs_control']['text']}")
        parts.append(text + ".")
    return " ".join(parts)


def add_parts_view(report, records: list[dict], methods: Sequence[str]) -> None:
    """The section "Which part of the update keeps the held-out facts?" and `report.results["update_parts"]`;
    nothing where no record has `sft_parts`."""
    seeds = part_seeds(records, methods)
    if not seeds:
        return
    summary = part_summary(seeds)
    report.results["update_parts"] = {"summary": summary, "seeds": seeds}
    section = report.section(
        "Which part of the update keeps the held-out facts?",
        "Each method's update Δ = θ − θ⁰ splits into its step along SFT's update R (c·R, c the scale: an evenly "
        "shrunk SFT) and its step off it (Δ − c·R). Each held-out fact's loss change is shared between the two by the "
        "Shapley rule (the mean of the two orders of adding them; the shares add up to the change). Alone: the "
        "sideways step's change from θ⁰ by itself; on top: its change added to the shrunk SFT. Aim: the Spearman "
        "correlation across held-out facts between the sideways share and SFT's own loss rise on the fact (below 0: "
        "the step lowers the loss most where SFT raised it most). New facts: the sideways share of D_unknown's loss "
        "change, and its change on top of the shrunk SFT. Rest of SFT's step: the change from the shrunk SFT to SFT "
        "itself, the other way to more learning. Excess: the held-out loss the sideways step adds on top beyond what "
        "the rest of SFT's step adds for the same drop of the new facts' loss, pro rata (below 0: the cheaper way). "
        f"Means over seeds with 95 % t-intervals; {CONTROL} (SFT with another batch order) is the control.")
    section.text(parts_text(summary))
    section.table([{"method": r["method"], "seeds": r["seeds"], "along": r["along"]["text"],
                    "sideways": r["sideways"]["text"], "sideways alone": r["sideways_alone"]["text"],
                    "sideways on top": r["sideways_on_top"]["text"], "aim": r["aim"]["text"],
                    "new facts, sideways": r["new_sideways"]["text"],
                    "new facts, sideways on top": r["new_on_top"]["text"],
                    "rest of SFT's step: held-out": r["rest_held"]["text"],
                    "rest of SFT's step: new facts": r["rest_new"]["text"], "excess": r["excess"]["text"],
                    **({f"sideways − {CONTROL}'s": r["sideways_vs_control"]["text"],
                        f"aim − {CONTROL}'s": r["aim_vs_control"]["text"]} if "sideways_vs_control" in r else {})}
                   for r in summary],
                  title="The held-out loss change shared between the step along SFT's update and the step off it "
                        "(mean answer NLL per fact)")

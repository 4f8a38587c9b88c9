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
The control (SFT with another batch order) says what another order's step off SFT's direction does. Set where the
method's own sits (at its c and the length of its own step, the record's "matched"), the control's step says what a
step off SFT's direction does there by its place alone: `aim_matched`, `matched_on_top`, `new_matched_on_top` and
`matched_excess`, and per method the paired difference of each of the method's own from these; `relation_seeds` reads
the method's saving over that step fact by fact, on the held-out facts of the new facts' relations and on the others.
Pure functions of the records."""

from __future__ import annotations

import statistics
from collections.abc import Sequence

import numpy as np
from scipy.stats import spearmanr

from .paired import finite_number, interval_text, t_interval
from .shrink import CONTROL

#: The per-seed quantities, in the order the tables show them.
MEASURES = ("along", "sideways", "sideways_alone", "sideways_on_top", "aim", "new_sideways", "new_on_top", "rest_held",
            "rest_new", "excess", "aim_matched", "matched_on_top", "new_matched_on_top", "matched_excess")
#: Each measure of a method's own sideways step beside the same measure of the control's set in its place.
MATCHED = {"aim": "aim_matched", "sideways_on_top": "matched_on_top", "new_on_top": "new_matched_on_top",
           "excess": "matched_excess"}


def shapley_shares(start, along, sideways, final):
    """The (along, sideways) shares of final − start from the losses at θ⁰, θ⁰ + a, θ⁰ + b and θ⁰ + Δ: the mean of the
    two orders of adding the parts (`interference.measures.update_parts`); per fact for tensors or arrays, or of one
    number each. They sum to final − start."""
    return 0.5 * ((along - start) + (final - sideways)), 0.5 * ((sideways - start) + (final - along))


def _aim(side: Sequence[float], damage: Sequence[float]) -> float | None:
    """The Spearman correlation of the sideways shares with SFT's damage; None where either is constant."""
    aim = spearmanr(side, damage).statistic if len(set(side)) > 1 and len(set(damage)) > 1 else None
    return None if aim is None or not finite_number(float(aim)) else float(aim)


def _excess(on_top: float, new_on_top: float, rest_held: float, rest_new: float | None) -> float | None:
    """The held-out loss a step adds on top of the shrunk SFT beyond what the rest of SFT's step adds for the same
    drop of D_unknown's loss, pro rata; None where that rest did not lower it."""
    return on_top - rest_held * new_on_top / rest_new if rest_new and rest_new < 0 else None


def _matched(parts: dict, start: Sequence[float], damage: Sequence[float], rest: tuple) -> dict:
    """The control's step set in this method's place (`parts["matched"]`): its aim, its change of the held-out and
    the new facts' loss on top of the shrunk SFT, and its excess against the rest of SFT's step (`rest`: held-out,
    new); None each where the record has no such step."""
    matched = parts.get("matched")
    if not matched:
        return dict.fromkeys(MATCHED.values())
    along = parts["held_losses_along"]
    side = [shapley_shares(*losses)[1] for losses in
            zip(start, along, matched["held_losses_alone"], matched["held_losses_on_top"], strict=True)]
    on_top = statistics.fmean(matched["held_losses_on_top"]) - statistics.fmean(along)
    new_on_top = matched["new_loss"]["on_top"] - parts["new_loss"]["along"]
    return {"aim_matched": _aim(side, damage), "matched_on_top": on_top, "new_matched_on_top": new_on_top,
            "matched_excess": _excess(on_top, new_on_top, *rest)}


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
    new = parts["new_loss"]
    on_top, rest_held = statistics.fmean(final) - statistics.fmean(along), statistics.fmean(
        sft["held_losses_final"]) - statistics.fmean(along)
    rest_new = new["reference"] - new["along"] if "reference" in new else None
    return {"seed": record["seed"], "scale": parts["scale"],
            "along": statistics.fmean(a for a, _ in shares), "sideways": statistics.fmean(side),
            "sideways_alone": statistics.fmean(b - s for b, s in zip(sideways, start, strict=True)),
            "sideways_on_top": on_top,
            "aim": _aim(side, damage),
            "new_sideways": shapley_shares(new["start"], new["along"], new["sideways"], new["final"])[1],
            "new_on_top": new["final"] - new["along"],
            "rest_held": rest_held, "rest_new": rest_new,
            "excess": _excess(on_top, new["final"] - new["along"], rest_held, rest_new),
            **_matched(parts, start, damage, (rest_held, rest_new))}


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


def _paired(pairs: Sequence[tuple[float, float]]) -> dict:
    """The interval of the paired differences a − b, and how many are below 0 ("below")."""
    return {**_interval([a - b for a, b in pairs]), "below": sum(a < b for a, b in pairs)}


def part_summary(seeds: Sequence[dict], control: str = CONTROL) -> list[dict]:
    """Per method of `seeds`: each measure's mean with its 95 % t-interval over seeds, the seeds whose sideways
    share is below 0 ("lowered") and whose excess is ("cheaper"), and beside `control` (where it ran on the same
    seeds) the paired difference of the sideways share and of `aim` with the seeds below the control's; where the
    control's step was set in the method's place, each of `MATCHED`'s measures minus the control's there, paired by
    seed ("<measure>_vs_matched", with the seeds below)."""
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
                row[f"{m}_vs_control"] = _paired(pairs)
        for m, there in MATCHED.items():
            if pairs := [(s[m], s[there]) for s in mine if s[m] is not None and s[there] is not None]:
                row[f"{m}_vs_matched"] = _paired(pairs)
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
        if vs := row.get("aim_vs_matched"):
            text += (f"; {control}'s step set in its place (its scale, its step's length) has aim "
                     f"{row['aim_matched']['text']} (its own minus that: {vs['text']}, below on {vs['below']} of "
                     f"{vs['n']}) and changes the held-out loss on top by {row['matched_on_top']['text']} and the new "
                     f"facts' by {row['new_matched_on_top']['text']} (excess {row['matched_excess']['text']})")
        parts.append(text + ".")
    return " ".join(parts)


#: Per parameter group, the step off SFT's direction added to the shrunk SFT in that group alone.
GROUP_MEASURES = ("on_top", "new_on_top", "excess", "matched_on_top", "new_matched_on_top", "matched_excess")


def group_seeds(records: Sequence[dict], methods: Sequence[str]) -> list[dict]:
    """Per method, seed and label of the records' `sft_parts.by_group`: the held-out and new facts' change on top of
    the shrunk SFT with the method's sideways step in those groups alone, its excess against the rest of SFT's step,
    and the same for the control's step set in its place (None where not kept)."""
    sft, rows = {r["seed"]: r for r in records if r["name"] == "sft"}, []
    for record in (r for m in methods for r in records if r["name"] == m and r["seed"] in sft):
        parts = record.get("sft_parts") or {}
        if not parts.get("by_group") or not sft[record["seed"]].get("held_losses_final"):
            continue
        along, new_along = statistics.fmean(parts["held_losses_along"]), parts["new_loss"]["along"]
        rest = (statistics.fmean(sft[record["seed"]]["held_losses_final"]) - along,
                parts["new_loss"]["reference"] - new_along if "reference" in parts["new_loss"] else None)
        for label, losses in parts["by_group"].items():
            row = {"method": record["name"], "seed": record["seed"], "group": label}
            for prefix in ("", "matched_"):
                held, new = losses.get(f"{prefix}held"), losses.get(f"{prefix}new")
                on_top, new_on_top = (None, None) if held is None else (held - along, new - new_along)
                row.update({f"{prefix}on_top": on_top, f"new_{prefix}on_top": new_on_top,
                            f"{prefix}excess": None if held is None else _excess(on_top, new_on_top, *rest)})
            rows.append(row)
    return rows


def group_summary(rows: Sequence[dict]) -> list[dict]:
    """Per method and group: each of `GROUP_MEASURES`' mean with its 95 % t-interval over seeds, and the method's
    own change on top and excess minus the control's step's in its place, paired by seed ("on_top_vs_matched",
    "excess_vs_matched", with the seeds below)."""
    out = []
    for key in dict.fromkeys((r["method"], r["group"]) for r in rows):
        mine = [r for r in rows if (r["method"], r["group"]) == key]
        row = {"method": key[0], "group": key[1], "seeds": len(mine),
               **{m: _interval([r[m] for r in mine if r[m] is not None]) for m in GROUP_MEASURES}}
        for m in ("on_top", "excess"):
            if pairs := [(r[m], r[f"matched_{m}"]) for r in mine if r[m] is not None and r[f"matched_{m}"] is not None]:
                row[f"{m}_vs_matched"] = _paired(pairs)
        out.append(row)
    return out


def relation_seeds(records: Sequence[dict], methods: Sequence[str]) -> list[dict]:
    """Per method and seed whose record kept the control's step set in its place (`sft_parts.matched`): each held-out
    fact's saving, the method's own change on top of the shrunk SFT minus the control's step's there (ℓ(θ) −
    ℓ(θ⁰ + c·R + k·b')), averaged over the held-out facts of the new facts' relations ("inside") and over the others
    ("outside"), and `gap`, inside − outside (below 0: the method's direction spares the facts that share the new
    facts' relation more than the rest). None where a side has no fact; records without relations are left out."""
    rows = []
    for record in (r for m in methods for r in records if r["name"] == m):
        matched = (record.get("sft_parts") or {}).get("matched")
        held, new = record.get("held_relations"), set(record.get("new_relations") or ())
        if not matched or not held or not new:
            continue
        start = record["held_losses_start"]
        rises = {"": [f - s for f, s in zip(record["held_losses_final"], start, strict=True)],
                 "matched_": [m - s for m, s in zip(matched["held_losses_on_top"], start, strict=True)]}
        row = {"method": record["name"], "seed": record["seed"], "relations": sorted(new)}
        for side, inside in (("inside", True), ("outside", False)):
            facts = [i for i, relation in enumerate(held) if (relation in new) == inside]
            row[f"{side}_facts"] = len(facts)
            for prefix, rise in rises.items():
                row[f"{side}_{prefix}rise"] = statistics.fmean(rise[i] for i in facts) if facts else None
            row[side] = None if not facts else row[f"{side}_rise"] - row[f"{side}_matched_rise"]
        rows.append({**row, "gap": None if None in (row["inside"], row["outside"]) else row["inside"] - row["outside"]})
    return rows


def rise_shares(rows: Sequence[dict], *, n_resamples: int = 2000, level: float = 0.95, seed: int = 0) -> dict | None:
    """The method's held-out loss rise as a share of the control's step's in its place, inside and outside the new
    facts' relations (the ratio of the means over seeds of `relation_seeds`' rises), and inside − outside with a
    percentile bootstrap over seeds (one resample of seeds for both sides; resamples whose control rise is not above 0
    are dropped). Above 0: the method's direction spares, in proportion, less of the facts that share the new facts'
    relation than of the rest. None without seeds that have both sides or where the control's rise is not above 0."""
    kept = [r for r in rows if r["gap"] is not None]
    if not kept:
        return None
    rises = np.array([[r["inside_rise"], r["inside_matched_rise"], r["outside_rise"], r["outside_matched_rise"]]
                      for r in kept])

    def shares(table: np.ndarray) -> np.ndarray:
        means = table.mean(axis=-2)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(means[..., [1, 3]] > 0, means[..., [0, 2]] / means[..., [1, 3]], np.nan)

    inside, outside = shares(rises)
    if np.isnan(inside) or np.isnan(outside):
        return None
    index = np.random.default_rng(seed).integers(0, len(kept), size=(n_resamples, len(kept)))
    resampled = shares(rises[index])
    differences = resampled[:, 0] - resampled[:, 1]
    differences = differences[~np.isnan(differences)]
    low, high = np.quantile(differences, [(1 - level) / 2, (1 + level) / 2]) if differences.size else (np.nan,) * 2
    return {"seeds": len(kept), "inside": float(inside), "outside": float(outside),
            "difference": {"mean": float(inside - outside), "low": float(low), "high": float(high),
                           "n": len(kept), "resamples": int(differences.size)}}


#: The per-seed savings `relation_seeds` gives, in the order the table shows them.
RELATION_MEASURES = ("inside", "outside", "gap")


def relation_summary(rows: Sequence[dict]) -> list[dict]:
    """Per method of `relation_seeds`' rows: each of `RELATION_MEASURES`' mean with its 95 % t-interval over seeds
    and the seeds below 0 ("below"), and its `rise_shares` ("shares", None where undefined)."""
    out = []
    for method in dict.fromkeys(r["method"] for r in rows):
        mine = [r for r in rows if r["method"] == method]
        row = {"method": method, "seeds": len(mine), "relations": sorted({x for r in mine for x in r["relations"]})}
        for m in RELATION_MEASURES:
            values = [r[m] for r in mine if r[m] is not None]
            row[m] = {**_interval(values), "below": sum(v < 0 for v in values)}
        out.append({**row, "shares": rise_shares(mine)})
    return out


def add_parts_view(report, records: list[dict], methods: Sequence[str]) -> None:
    """The section "Which part of the update keeps the held-out facts?" and `report.results["update_parts"]`;
    nothing where no record has `sft_parts`."""
    seeds = part_seeds(records, methods)
    if not seeds:
        return
    summary, groups = part_summary(seeds), group_seeds(records, methods)
    grouped = group_summary(groups)
    relations = relation_seeds(records, methods)
    by_relation = relation_summary(relations)
    report.results["update_parts"] = {"summary": summary, "seeds": seeds,
                                      **({"groups": grouped, "group_seeds": groups} if groups else {}),
                                      **({"relations": by_relation, "relation_seeds": relations} if relations else {})}
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
        f"Means over seeds with 95 % t-intervals; {CONTROL} (SFT with another batch order) is the control. Where "
        f"the run kept {CONTROL}'s step off SFT's direction, it is also set in each later method's place (at the "
        "method's scale c and the length of its own sideways step): what a step off SFT's direction does there for "
        "no reason but its place.")
    section.text(parts_text(summary))
    section.table([{"method": r["method"], "seeds": r["seeds"], "along": r["along"]["text"],
                    "sideways": r["sideways"]["text"], "sideways alone": r["sideways_alone"]["text"],
                    "sideways on top": r["sideways_on_top"]["text"], "aim": r["aim"]["text"],
                    "new facts, sideways": r["new_sideways"]["text"],
                    "new facts, sideways on top": r["new_on_top"]["text"],
                    "rest of SFT's step: held-out": r["rest_held"]["text"],
                    "rest of SFT's step: new facts": r["rest_new"]["text"], "excess": r["excess"]["text"],
                    **({f"sideways − {CONTROL}'s": r["sideways_vs_control"]["text"],
                        f"aim − {CONTROL}'s": r["aim_vs_control"]["text"]} if "sideways_vs_control" in r else {}),
                    **({f"aim of {CONTROL}'s step in its place": r["aim_matched"]["text"],
                        "aim − that": r["aim_vs_matched"]["text"],
                        f"{CONTROL}'s step in its place, on top": r["matched_on_top"]["text"],
                        "on top − that": r["sideways_on_top_vs_matched"]["text"],
                        f"{CONTROL}'s step in its place, excess": r["matched_excess"]["text"]}
                       if "aim_vs_matched" in r else {})}
                   for r in summary],
                  title="The held-out loss change shared between the step along SFT's update and the step off it "
                        "(mean answer NLL per fact)")
    if grouped:
        section.table([{"method": r["method"], "groups": r["group"], "seeds": r["seeds"],
                        "held-out on top": r["on_top"]["text"], "new facts on top": r["new_on_top"]["text"],
                        "excess": r["excess"]["text"],
                        **({f"{CONTROL}'s step there: held-out": r["matched_on_top"]["text"],
                            f"{CONTROL}'s step there: new facts": r["new_matched_on_top"]["text"],
                            f"{CONTROL}'s step there: excess": r["matched_excess"]["text"],
                            "excess − that": f"{r['excess_vs_matched']['text']} (below on "
                                             f"{r['excess_vs_matched']['below']} of {r['excess_vs_matched']['n']})"}
                           if "excess_vs_matched" in r else {})} for r in grouped],
                      title="The step off SFT's direction added to the shrunk SFT in one set of parameter groups "
                            "alone (the others stay at the shrunk SFT)")
    if by_relation:
        section.table([{"method": r["method"], "seeds": r["seeds"], "new facts' relations": ", ".join(r["relations"]),
                        **{f"{label}: own − {CONTROL}'s step in its place": f"{r[m]['text']} (below 0 on "
                                                                              f"{r[m]['below']} of {r[m]['n']})"
                           for m, label in (("inside", "held-out facts of those relations"),
                                            ("outside", "the other held-out facts"), ("gap", "inside − outside"))},
                        **({"its rise as a share of that step's, inside; outside": f"{share['inside']:.2f}; "
                                                                                     f"{share['outside']:.2f}",
                            "inside − outside (bootstrap over seeds)": f"{share['difference']['mean']:+.2f} "
                                                                       f"[{share['difference']['low']:+.2f}, "
                                                                       f"{share['difference']['high']:+.2f}]"}
                           if (share := r["shares"]) else {})}
                       for r in by_relation],
                      title=f"Where the method's step saves over {CONTROL}'s set in its place: the held-out loss "
                            "change on top of the shrunk SFT, the method's own minus the control's, on held-out facts "
                            "of the new facts' relations and on the others (mean answer NLL per fact)")

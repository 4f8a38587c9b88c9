"""How far each method moved in the directions a Fisher weighs, as report tables: Σ F_i (θ_i − θ⁰_i)² per method
(F the diagonal Fisher at the snapshot θ⁰ of D_known, EWC's penalty at λ = 1, and of D_held, to second order the rise
of the held-out facts' loss), the seeds where a method moved less than sft, and whether D_held's distance ranks a
seed's methods as their held-out drops. Pure functions of condition records (`interference.studies.remedies` writes
`fisher_distance`, `held_fisher_distance` and `loss_terms`); docs/remedies.md has the formulas."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence

from scipy.stats import spearmanr


def median(values: list[float]) -> float | None:
    """The median, None for no values."""
    return statistics.median(values) if values else None


def median_of(records: list[dict], method: str, field: str) -> float | None:
    """The median over seeds of `field` (None where no record has it): the Fisher distance spans orders of magnitude
    between seeds, so a mean would be one seed's."""
    return median([r[field] for r in records if r["name"] == method and r.get(field) is not None])


def median_term(records: list[dict], method: str, term: str) -> float | None:
    """The median over seeds of a last-epoch training term (`loss_terms`), None where no record has it."""
    return median([r["loss_terms"][term] for r in records
                   if r["name"] == method and term in r.get("loss_terms", {})])


def below(records: list[dict], method: str, reference: str, field: str = "fisher_distance") -> str:
    """'9 of 10': the seeds where `method`'s `field` (a Fisher distance) is below `reference`'s, of those both
    recorded."""
    theirs = {r["seed"]: r[field] for r in records if r["name"] == reference and r.get(field) is not None}
    mine = {r["seed"]: r[field] for r in records if r["name"] == method and r.get(field) is not None
            and r["seed"] in theirs}
    return f"{sum(mine[s] < theirs[s] for s in mine)} of {len(mine)}"


def term_ratio(records: list[dict], method: str, strengths: dict[str, float]) -> float | None:
    """λ·Σ F(θ − θ⁰)² / CE in the last epoch, the median over the seeds that recorded both (None without EWC)."""
    if "ewc_lambda" not in strengths:
        return None
    return median([strengths["ewc_lambda"] * r["loss_terms"]["ewc"] / r["loss_terms"]["ce"] for r in records
                   if r["name"] == method and r.get("loss_terms", {}).get("ewc") is not None
                   and r["loss_terms"].get("ce")])


def fisher_rows(records: list[dict], methods: Sequence[str]) -> list[dict]:
    """Per method, the median Fisher distances over seeds (D_known's; D_held's, its columns named "held: …", where
    records have it), the seeds where each is below sft's, and the last epoch's median CE."""
    fields = [(f, label) for f, label in (("fisher_distance", ""), ("held_fisher_distance", "held: "))
              if any(r.get(f) is not None for r in records)]
    rows = []
    for m in methods:
        row = {"method": m}
        for key, label in fields:
            row[f"{label}Σ F(θ − θ⁰)², median"] = median_of(records, m, key)
            if "sft" in methods and m != "sft":
                row[f"{label}below sft's (seeds)"] = below(records, m, "sft", key)
        rows.append({**row, "last epoch's CE, median": median_term(records, m, "ce")})
    return rows


def _drop(record: dict) -> float:
    """The held-out accuracy's absolute drop: at the start minus at the end."""
    return record["held_acc_start"] - record["held_acc_final"]


def loss_rise(record: dict) -> float:
    """The held-out facts' answer loss's change L − L⁰."""
    return record["held_loss_final"] - record["held_loss_start"]


def held_distance_ranking(records: list[dict]) -> dict | None:
    """Does the held-out facts' Fisher distance rank a seed's methods as their held-out drops? Per seed with at least
    three methods that recorded it, the Spearman correlation of `held_fisher_distance` with the absolute drop
    (held-out accuracy at the start minus at the end); their mean, the seeds where it is above 0, the correlation
    pooled over seeds, and how many orders of magnitude the distance spans. None when no record has the distance."""
    rows = [r for r in records if r.get("held_fisher_distance") is not None]
    if not rows:
        return None

    def rho(rs: list[dict]) -> float | None:  # None where either side is constant (no ranking to compare)
        distances, drops = [r["held_fisher_distance"] for r in rs], [_drop(r) for r in rs]
        if len(set(distances)) < 2 or len(set(drops)) < 2:
            return None
        return float(spearmanr(distances, drops).statistic)

    per_seed = [{"seed": s, "rho": rho(rs)} for s in sorted({r["seed"] for r in rows})
                if len(rs := [r for r in rows if r["seed"] == s]) >= 3]
    within = [p["rho"] for p in per_seed if p["rho"] is not None]
    distances = [r["held_fisher_distance"] for r in rows if r["held_fisher_distance"] > 0]
    return {"per_seed": per_seed, "mean": statistics.fmean(within) if within else None,
            "above_zero": sum(v > 0 for v in within), "seeds": len(within),
            "pooled": rho(rows) if len(rows) >= 3 else None,
            "orders": math.log10(max(distances) / min(distances)) if distances else None}


def ranking_text(ranking: dict) -> str:
    """One sentence on `held_distance_ranking`'s result."""
    if not ranking["seeds"]:
        return "No seed has three methods with the held-out facts' Fisher distance and different drops to rank."
    pooled = "" if ranking["pooled"] is None else f"; ρ over every seed's records pooled: {ranking['pooled']:.2f}"
    return (f"Within a seed, the held-out facts' Fisher distance ranks the methods as their held-out drops (accuracy "
            f"at the start minus at the end) with Spearman ρ {ranking['mean']:.2f} on average, above 0 on "
            f"{ranking['above_zero']} of {ranking['seeds']} seeds; the distance spans {ranking['orders']:.1f} orders "
            f"of magnitude over all records{pooled}.")


def _taylor(record: dict) -> float:
    """g·Δθ + ½ Σ F(Δθ)²: the held-out loss's change that a Taylor expansion at the snapshot predicts."""
    return record["held_gradient_term"] + record["held_fisher_distance"] / 2


def taylor_rows(records: list[dict], methods: Sequence[str]) -> list[dict]:
    """Per method, medians over seeds of the held-out facts' loss change L − L⁰ and of its Taylor terms at the
    snapshot (first order g·Δθ, second order ½ Σ F(Δθ)², F the empirical Fisher for the Hessian); [] for runs
    before these were recorded (2026-12-06)."""
    rows = []
    for m in methods:
        rs = [r for r in records if r["name"] == m and r.get("held_loss_final") is not None]
        if rs:
            rows.append({"method": m, "seeds": len(rs),
                         "held-out loss at the start": median([r["held_loss_start"] for r in rs]),
                         "its rise L − L⁰": median([loss_rise(r) for r in rs]),
                         "seeds where it rose": sum(loss_rise(r) > 0 for r in rs),
                         "first order g·Δθ": median([r["held_gradient_term"] for r in rs]),
                         "second order ½ Σ F(Δθ)²": median([r["held_fisher_distance"] / 2 for r in rs]),
                         "Taylor prediction": median([_taylor(r) for r in rs])})
    return rows


def taylor_fit(records: list[dict]) -> dict | None:
    """How well the snapshot's Taylor expansion accounts for the held-out loss's change, over every record that has
    it: the Spearman ρ of the prediction with the actual change, of its second-order term alone, and the median
    share of a rise each predicts (prediction / rise, over records whose loss rose), and the Spearman ρ of the rise
    with the held-out accuracy's drop (is the loss a fair proxy of forgetting?), and the records on which the
    first-order term g·Δθ has the sign of the change (does the snapshot's gradient even say which way the loss
    goes?). None without the terms."""
    rs = [r for r in records if r.get("held_loss_final") is not None]
    if len(rs) < 3:
        return None
    rise = [loss_rise(r) for r in rs]
    rose = [(r, d) for r, d in zip(rs, rise, strict=True) if d > 0]
    return {"records": len(rs), "rho": float(spearmanr([_taylor(r) for r in rs], rise).statistic),
            "rho_second_order": float(spearmanr([r["held_fisher_distance"] for r in rs], rise).statistic),
            "share_of_rise": median([_taylor(r) / d for r, d in rose]),
            "share_of_rise_second_order": median([r["held_fisher_distance"] / 2 / d for r, d in rose]),
            "rose": len(rose), "rho_accuracy_drop": float(spearmanr(rise, [_drop(r) for r in rs]).statistic),
            "first_order_sign": sum(r["held_gradient_term"] * d > 0 for r, d in zip(rs, rise, strict=True))}


def taylor_text(fit: dict) -> str:
    """One sentence on `taylor_fit`'s result."""
    share = ("" if fit["share_of_rise"] is None else
             f"; where the loss rose ({fit['rose']} records), the prediction is a median {fit['share_of_rise']:.2f} "
             f"of the rise, its second-order term {fit['share_of_rise_second_order']:.2f}")
    return (f"Over {fit['records']} records, the Taylor prediction g·Δθ + ½ Σ F(Δθ)² ranks the held-out loss's "
            f"change with Spearman ρ {fit['rho']:.2f} (the second-order term alone: ρ {fit['rho_second_order']:.2f})"
            f"{share}. The loss's rise ranks with the held-out accuracy's drop at ρ {fit['rho_accuracy_drop']:.2f}. "
            f"The first-order term g·Δθ has the sign of the change on {fit['first_order_sign']} of "
            f"{fit['records']} records.")


def add_fisher_views(section, results: dict, records: list[dict], methods: Sequence[str]) -> None:
    """The Fisher table, the held-out distance's ranking and the Taylor table into a report `section` (a
    `interference.report.document.Section`), their numbers into `results`; each only where records carry it."""
    section.table(fisher_rows(records, methods),
                  title="How far each method moved in the directions a Fisher weighs: Σ F_i (θ_i − θ⁰_i)², F the "
                        "diagonal Fisher at the snapshot θ⁰ of D_known (EWC's penalty at λ = 1) and, in runs that "
                        "recorded it, of D_held (to second order the rise of the held-out facts' loss); the median "
                        "over seeds (it spans orders of magnitude between seeds) and the seeds where it is below "
                        "sft's, beside the last epoch's mean cross-entropy")
    add_sentence(section, results, "held_fisher_ranking", held_distance_ranking(records), ranking_text)
    if rows := taylor_rows(records, methods):
        section.table(rows, title="Does a Taylor expansion at the snapshot account for the held-out facts' loss? L "
                                  "the mean answer NLL of D_held, g its gradient and F its diagonal empirical Fisher "
                                  "at θ⁰ (standing in for the Hessian, fair only where the start fits the facts); "
                                  "medians over seeds")
        add_sentence(section, results, "held_taylor_fit", taylor_fit(records), taylor_text)


def add_sentence(section, results: dict, key: str, value: dict | None, text) -> None:
    """`value` into `results[key]` and its sentence into `section`, unless it is None."""
    if value is not None:
        results[key] = value
        section.text(text(value))

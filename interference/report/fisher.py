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


def held_distance_ranking(records: list[dict]) -> dict | None:
    """Does the held-out facts' Fisher distance rank a seed's methods as their held-out drops? Per seed with at least
    three methods that recorded it, the Spearman correlation of `held_fisher_distance` with the absolute drop
    (held-out accuracy at the start minus at the end); their mean, the seeds where it is above 0, the correlation
    pooled over seeds, and how many orders of magnitude the distance spans. None when no record has the distance."""
    rows = [r for r in records if r.get("held_fisher_distance") is not None]
    if not rows:
        return None

    def rho(rs: list[dict]) -> float | None:  # None where either side is constant (no ranking to compare)
        distances, drops = ([r["held_fisher_distance"] for r in rs],
                            [r["held_acc_start"] - r["held_acc_final"] for r in rs])
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
    pooled = "" if ranking["pooled"] is None else f", and {ranking['pooled']:.2f} pooled over seeds"
    return (f"Within a seed, the held-out facts' Fisher distance ranks the methods as their held-out drops (accuracy "
            f"at the start minus at the end) with Spearman ρ {ranking['mean']:.2f} on average, above 0 on "
            f"{ranking['above_zero']} of {ranking['seeds']} seeds; the distance spans {ranking['orders']:.1f} orders "
            f"of magnitude over all records{pooled}.")

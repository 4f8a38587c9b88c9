"""Whether a method changes the same held-out facts as a reference (SFT), fact by fact and paired by seed. A remedy
that forgets less may spare the facts the reference breaks (it loses a subset of them and moves the same facts'
loss less) or break other facts (its losses fall where the reference's do not). Per seed this module reads, by
greedy answers, the facts each method lost (the snapshot answered right, the end wrong), how many both lost, and how
many that overlap would be by chance (`lost_chance`: |lost by one| · |lost by the other| / |known at the snapshot|,
the expected overlap of two draws of those sizes from the known facts); and, from per-fact answer losses, the rank
correlation of the two methods' changes ℓ_i − ℓ_i⁰, both medians, and on how many facts the method's change is below
the reference's; and over the facts the snapshot answered right, split at their median snapshot loss into the half it
held most confidently and the rest, the method's share of the reference's loss rise in each half (`confidence_shares`:
does a remedy shield best what the model knows best, or shave every fact alike?). Both records of a seed start from
one snapshot, so their `held_correct_start` (and `held_losses_start`) must agree; a pair that does not is refused.
Pure functions of the records a study wrote."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence

from scipy.stats import spearmanr

from ..io.errors import InterferenceError
from .fact_losses import fact_changes, lost_facts
from .fisher import add_sentence

#: The rank correlation of the two methods' per-fact changes above which a seed counts as "the same facts moved".
SAME_FACTS_RHO = 0.5


def fact_pair(reference: dict, other: dict) -> dict | None:
    """One seed's comparison of `other` with `reference`: by greedy answers `known`, `lost_reference`, `lost_other`,
    `lost_both`, `lost_chance`; with per-fact losses in both, `facts`, `change_rank_correlation` (Spearman ρ of the
    two changes, NaN when either is constant), `median_change_reference`, `median_change_other` and `other_lower`
    (facts whose change under `other` is below the reference's), and with per-fact correctness too `share_confident`
    and `share_rest` (`confidence_shares`). None when neither part can be read. Raises
    InterferenceError when the two records are of different seeds or start from different snapshots."""
    if reference["seed"] != other["seed"]:
        raise InterferenceError(f"fact pair: seeds differ ({reference['seed']} and {other['seed']})")
    out = {}
    lost_ref, lost_other = lost_facts(reference), lost_facts(other)
    if lost_ref is not None and lost_other is not None:
        if reference["held_correct_start"] != other["held_correct_start"]:
            raise _different_starts(reference, other, "held_correct_start")
        known = sum(reference["held_correct_start"])
        out |= {"known": known, "lost_reference": len(lost_ref), "lost_other": len(lost_other),
                "lost_both": len(lost_ref & lost_other),
                "lost_chance": len(lost_ref) * len(lost_other) / known if known else 0.0}
    ref_changes, other_changes = fact_changes(reference), fact_changes(other)
    if ref_changes is not None and other_changes is not None:
        starts = zip(reference["held_losses_start"], other["held_losses_start"], strict=True)
        if not all(math.isclose(a, b, abs_tol=1e-5) for a, b in starts):
            raise _different_starts(reference, other, "held_losses_start")
        constant = len(set(ref_changes)) < 2 or len(set(other_changes)) < 2
        out |= {"facts": len(ref_changes),
                "change_rank_correlation": math.nan if constant else float(spearmanr(ref_changes,
                                                                                     other_changes).statistic),
                "median_change_reference": statistics.median(ref_changes),
                "median_change_other": statistics.median(other_changes),
                "other_lower": sum(b < a for a, b in zip(ref_changes, other_changes, strict=True))}
        if "known" in out:
            confident, rest = confidence_shares(reference["held_losses_start"], reference["held_correct_start"],
                                                ref_changes, other_changes)
            out |= {"share_confident": confident, "share_rest": rest}
    return out or None


def confidence_shares(start_losses: Sequence[float], known: Sequence[bool], reference_changes: Sequence[float],
                      other_changes: Sequence[float]) -> tuple[float | None, float | None]:
    """Over the facts `known` at the snapshot, split at their median snapshot loss into the confident half (loss at or
    below the median) and the rest: per half, the sum of `other_changes` over the sum of `reference_changes`, the
    share of the reference's loss rise the other method keeps. A half whose reference sum is not positive (nothing to
    keep a share of) or that is empty gives None."""
    facts = [i for i, k in enumerate(known) if k]
    if not facts:
        return None, None
    median = statistics.median(start_losses[i] for i in facts)
    confident = [i for i in facts if start_losses[i] <= median]
    rest = [i for i in facts if start_losses[i] > median]

    def share(half: list[int]) -> float | None:
        ref = sum(reference_changes[i] for i in half)
        return sum(other_changes[i] for i in half) / ref if half and ref > 0 else None
    return share(confident), share(rest)


def _different_starts(reference: dict, other: dict, field: str) -> InterferenceError:
    return InterferenceError(f"fact pair: seed {other['seed']}'s {reference['name']} and {other['name']} start from "
                             f"different snapshots (their {field} differ)")


def fact_pairs(records: list[dict], methods: Sequence[str], reference: str) -> list[tuple[str, int, dict]]:
    """(method, seed, `fact_pair`) for every method of `methods` but `reference` and every seed both ran, in
    `methods`' order and by seed; pairs with nothing to read are left out."""
    refs = {r["seed"]: r for r in records if r["name"] == reference}
    out = []
    for method in methods:
        if method == reference:
            continue
        for r in sorted((r for r in records if r["name"] == method and r["seed"] in refs), key=lambda r: r["seed"]):
            if (pair := fact_pair(refs[r["seed"]], r)) is not None:
                out.append((method, r["seed"], pair))
    return out


def fact_pair_summary(records: list[dict], methods: Sequence[str], reference: str) -> dict | None:
    """Per method against `reference`: over the seeds with per-fact correctness, the facts each lost, both lost and
    chance, summed (`answer_seeds` of them); over those with per-fact losses, the median ρ of the changes, on how many
    seeds ρ is above `SAME_FACTS_RHO`, on how many the method's median fact's change is below the reference's, and the
    median count of facts whose change is lower. None when no pair can be read."""
    return pair_summary(fact_pairs(records, methods, reference), reference)


def pair_summary(pairs: list[tuple[str, int, dict]], reference: str) -> dict | None:
    """`fact_pair_summary` of pairs already read (`fact_pairs`)."""
    by_method: dict[str, list[dict]] = {}
    for method, _, pair in pairs:
        by_method.setdefault(method, []).append(pair)
    out = {}
    for method, pairs in by_method.items():
        answers = [p for p in pairs if "known" in p]
        entry = {"answer_seeds": len(answers), **{k: sum(p[k] for p in answers) for k in
                                                  ("lost_reference", "lost_other", "lost_both", "lost_chance")}}
        losses = [p for p in pairs if "facts" in p]
        if losses:
            rhos = [p["change_rank_correlation"] for p in losses if not math.isnan(p["change_rank_correlation"])]
            entry |= {"loss_seeds": len(losses), "facts": losses[0]["facts"],
                      "change_rank_correlation": statistics.median(rhos) if rhos else None,
                      "same_facts": sum(rho > SAME_FACTS_RHO for rho in rhos),
                      "median_below": sum(p["median_change_other"] < p["median_change_reference"] for p in losses),
                      "other_lower": statistics.median(p["other_lower"] for p in losses)}
            shares = [(p["share_confident"], p["share_rest"]) for p in losses
                      if p.get("share_confident") is not None and p.get("share_rest") is not None]
            if shares:
                entry |= {"share_seeds": len(shares), "confident_lower": sum(c < r for c, r in shares),
                          "share_confident": statistics.median(c for c, _ in shares),
                          "share_rest": statistics.median(r for _, r in shares)}
        out[method] = entry
    return {"reference": reference, "same_facts_rho": SAME_FACTS_RHO, "methods": out} if out else None


def fact_pair_rows(records: list[dict], methods: Sequence[str], reference: str) -> list[dict]:
    """One row per method and seed against `reference` (`fact_pairs`; a column the pair cannot fill is left out)."""
    return pair_rows(fact_pairs(records, methods, reference), reference)


def pair_rows(pairs: list[tuple[str, int, dict]], reference: str) -> list[dict]:
    """`fact_pair_rows` of pairs already read (`fact_pairs`)."""
    rows = []
    for method, seed, p in pairs:
        row = {"method": method, "seed": seed}
        if "known" in p:
            row |= {f"facts {reference} lost": p["lost_reference"], "facts it lost": p["lost_other"],
                    "both lost": p["lost_both"], "by chance": round(p["lost_chance"], 1)}
        if "facts" in p:
            row |= {f"ρ(its change, {reference}'s)": round(p["change_rank_correlation"], 2),
                    f"{reference}'s median fact's change": round(p["median_change_reference"], 4),
                    "its median fact's change": round(p["median_change_other"], 4),
                    f"facts it moved less than {reference}": f"{p['other_lower']} of {p['facts']}"}
        if "share_confident" in p:
            row |= {f"its share of {reference}'s rise, confident half": _share(p["share_confident"]),
                    "the other half": _share(p["share_rest"])}
        rows.append(row)
    return rows


def _share(value: float | None) -> float | str:
    return "—" if value is None else round(value, 2)


def fact_pair_text(summary: dict) -> str:
    """The sentence: per method, how many of the facts it lost the reference lost too (and by chance), and with
    per-fact losses how its changes rank with the reference's and where its median fact's change lies."""
    ref, parts = summary["reference"], []
    for method, s in summary["methods"].items():
        said = []
        if s["answer_seeds"]:
            said.append(f"lost {s['lost_other']} held-out facts the snapshot answered right over {s['answer_seeds']} "
                        f"seeds to {ref}'s {s['lost_reference']}, {s['lost_both']} of them lost by {ref} too (by "
                        f"chance {s['lost_chance']:.1f})")
        if "loss_seeds" in s:
            rho = s["change_rank_correlation"]
            ranks = "constant" if rho is None else f"at median ρ {rho:+.2f}"
            said.append(f"its per-fact loss changes rank with {ref}'s {ranks} (above {summary['same_facts_rho']:g} on "
                        f"{s['same_facts']} of {s['loss_seeds']} seeds), and its median fact's change is below "
                        f"{ref}'s on {s['median_below']} (a median {s['other_lower']:g} of {s['facts']} facts moved "
                        f"less)")
        if s.get("share_seeds"):
            said.append(f"of {ref}'s loss rise it kept a median {s['share_confident']:.2f} on the known facts the "
                        f"snapshot held most confidently and {s['share_rest']:.2f} on the rest (less on the confident "
                        f"half on {s['confident_lower']} of {s['share_seeds']} seeds)")
        parts.append(f"{method} " + "; ".join(said))
    return f"Against {ref}, fact by fact: " + "; ".join(parts) + "."


def add_fact_pair_view(section, results: dict, records: list[dict], methods: Sequence[str], reference: str) -> None:
    """The per-seed table and its sentence (into `results["held_fact_pairs"]` too), where a method and `reference`
    both carry per-fact correctness or losses on a seed; nothing otherwise."""
    _add_view(section, results, fact_pairs(records, methods, reference), reference)


def add_fact_pair_section(report, records: list[dict], methods: Sequence[str], reference: str = "sft") -> None:
    """A section of its own for `add_fact_pair_view`, for reports that have no per-fact section; nothing where no
    method pairs with `reference` on a seed."""
    if pairs := fact_pairs(records, methods, reference):
        section = report.section(
            f"Which held-out facts each method lost, beside {reference}",
            f"Per seed, from the same snapshot: the held-out facts each method lost (greedy answer right at the "
            f"snapshot, wrong at the end), how many {reference} lost too, and how many two draws of those sizes from "
            f"the known facts would share by chance. A method that loses a subset of {reference}'s facts spares the "
            f"facts {reference} breaks; one whose losses overlap no more than chance breaks other facts.")
        _add_view(section, report.results, pairs, reference)


def _add_view(section, results: dict, pairs: list[tuple[str, int, dict]], reference: str) -> None:
    """The table and the sentence of pairs read once (`fact_pairs`)."""
    if rows := pair_rows(pairs, reference):
        section.table(rows, title=f"Does a method break the facts {reference} breaks? Per seed, the held-out facts "
                                  f"each lost (right at the snapshot, wrong at the end), how many both lost and how "
                                  f"many by chance; with per-fact losses, the rank correlation of its changes with "
                                  f"{reference}'s, both medians, and the facts whose change is below {reference}'s")
    add_sentence(section, results, "held_fact_pairs", pair_summary(pairs, reference), fact_pair_text)

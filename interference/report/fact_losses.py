"""Which held-out facts carry the change of their mean answer loss, as a report reads it. The mean L − L⁰ can rise
because most facts' loss rose a little or because a few rose a lot, and fall because a few facts that the snapshot
still got wrong were learned on the way; per record this module reads how many facts' loss rose, the median fact's
change beside the mean's, the mean without the facts that moved most, and whether the facts worst at the snapshot
are the ones that fell (the rank correlation of a fact's snapshot loss with its change); and, by greedy answers, how
many facts the snapshot knew were lost and how many it did not know were regained. Pure functions of the records a
study wrote (`held_losses_start`, `held_losses_final`: each fact's answer loss, in D_held's order; `held_correct_start`,
`held_correct_final`: whether its greedy answer was right)."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence

from scipy.stats import spearmanr

from .fisher import add_sentence

#: The facts that moved most (largest |change|) that "the rest" leaves out: a tenth of the 100 held-out facts of a
#: CPU-size run.
TOP = 10


def fact_changes(record: dict) -> list[float] | None:
    """Each held-out fact's answer-loss change ℓ_i − ℓ_i⁰, None where the record lacks the per-fact losses."""
    start, final = record.get("held_losses_start"), record.get("held_losses_final")
    if not start or not final:
        return None
    return [b - a for a, b in zip(start, final, strict=True)]


def fact_loss_measures(record: dict, top: int = TOP) -> dict | None:
    """One record's facts: how many (`facts`), how many rose (`rose`), the median fact's change and the mean's, the
    mean over all but the `top` facts that moved most (`rest_mean_change`; None when that leaves no fact), and the
    Spearman ρ of each fact's snapshot loss with its change (`start_rank_correlation`, NaN when either is constant).
    None without per-fact losses."""
    changes = fact_changes(record)
    if changes is None:
        return None
    moved = sorted(range(len(changes)), key=lambda i: abs(changes[i]), reverse=True)
    rest = [changes[i] for i in moved[top:]]
    constant = len(set(changes)) < 2 or len(set(record["held_losses_start"])) < 2
    rho = math.nan if constant else float(spearmanr(record["held_losses_start"], changes).statistic)
    return {"facts": len(changes), "rose": sum(c > 0 for c in changes), "median_change": statistics.median(changes),
            "mean_change": statistics.fmean(changes), "rest_mean_change": statistics.fmean(rest) if rest else None,
            "start_rank_correlation": rho}


def lost_facts(record: dict) -> set[int] | None:
    """The held-out facts (indices in D_held's order) the snapshot answered right and the end wrong; None where the
    record lacks per-fact correctness."""
    start, final = record.get("held_correct_start"), record.get("held_correct_final")
    if start is None or final is None:
        return None
    return {i for i, (a, b) in enumerate(zip(start, final, strict=True)) if a and not b}


def fact_flips(record: dict) -> dict | None:
    """How many held-out facts the snapshot answered right and the end wrong (`lost`), and the other way round
    (`regained`); None where the record lacks per-fact correctness."""
    lost = lost_facts(record)
    if lost is None:
        return None
    start, final = record["held_correct_start"], record["held_correct_final"]
    return {"lost": len(lost), "regained": sum(b and not a for a, b in zip(start, final, strict=True))}


def fact_loss_summary(records: list[dict], methods: Sequence[str], top: int = TOP) -> dict | None:
    """Per method: over the seeds with per-fact correctness, the median facts lost and regained (`fact_flips`); over
    those with per-fact losses, on how many the median fact's loss rose, the mean rose, and the mean without the
    `top` facts that moved most rose, and the medians of the facts that rose, the median fact's change and ρ
    (`fact_loss_measures`). None when no record has either."""
    out = {}
    for method in methods:
        mine = [r for r in records if r["name"] == method]
        flips = [f for r in mine if (f := fact_flips(r)) is not None]
        entry = {"flip_seeds": len(flips), "lost": statistics.median(f["lost"] for f in flips),
                 "regained": statistics.median(f["regained"] for f in flips)} if flips else {}
        rows = [m for r in mine if (m := fact_loss_measures(r, top)) is not None]
        if rows:
            entry |= _loss_summary(rows)
        if entry:
            out[method] = entry
    return {"top": top, "methods": out} if out else None


def _loss_summary(rows: list[dict]) -> dict:
    """`fact_loss_summary`'s part from per-fact losses, over one method's `fact_loss_measures`."""
    rhos = [m["start_rank_correlation"] for m in rows if not math.isnan(m["start_rank_correlation"])]
    return {"seeds": len(rows), "facts": rows[0]["facts"],
            "median_rose": sum(m["median_change"] > 0 for m in rows),
            "mean_rose": sum(m["mean_change"] > 0 for m in rows),
            "rest_rose": sum((m["rest_mean_change"] or 0.0) > 0 for m in rows),
            "facts_rose": statistics.median(m["rose"] for m in rows),
            "median_change": statistics.median(m["median_change"] for m in rows),
            "start_rank_correlation": statistics.median(rhos) if rhos else None}


def fact_loss_rows(records: list[dict], methods: Sequence[str], top: int = TOP) -> list[dict]:
    """One row per record with per-fact correctness or losses, in `methods`' order and by seed (`fact_flips`,
    `fact_loss_measures`; a column the record cannot fill is left out)."""
    rows = []
    for method in methods:
        for r in sorted((r for r in records if r["name"] == method), key=lambda r: r["seed"]):
            flips, m = fact_flips(r), fact_loss_measures(r, top)
            if flips is None and m is None:
                continue
            row = {"method": method, "seed": r["seed"]}
            if flips is not None:
                row |= {"facts lost (right → wrong)": flips["lost"], "regained (wrong → right)": flips["regained"]}
            if m is not None:
                rest = m["rest_mean_change"]
                row |= {"facts whose loss rose": f"{m['rose']} of {m['facts']}",
                        "median fact's change": round(m["median_change"], 4), "mean change": round(m["mean_change"], 4),
                        f"mean without the {top} that moved most": None if rest is None else round(rest, 4),
                        "ρ(snapshot loss, change)": round(m["start_rank_correlation"], 2)}
            rows.append(row)
    return rows


def fact_loss_text(summary: dict) -> str:
    """The sentence: per method, the median facts lost and regained, and (with per-fact losses) on how many seeds
    the median fact, the mean and the mean without the facts that moved most rose, and how a fact's snapshot loss
    ranks with its change."""
    parts = []
    for method, s in summary["methods"].items():
        said = []
        if "lost" in s:
            said.append(f"lost a median {s['lost']:g} held-out facts the snapshot answered right and regained "
                        f"{s['regained']:g} it answered wrong ({s['flip_seeds']} seeds)")
        if "seeds" in s:
            rho = s["start_rank_correlation"]
            ranks = "" if rho is None else f"; a fact's snapshot loss ranks with its change at median ρ {rho:+.2f}"
            said.append(f"raised the median fact's loss on {s['median_rose']} of {s['seeds']} seeds (a median "
                        f"{s['facts_rose']:g} of {s['facts']} facts rose), the mean on {s['mean_rose']} and the mean "
                        f"without the {summary['top']} facts that moved most on {s['rest_rose']}{ranks}")
        parts.append(f"{method} " + "; it ".join(said))
    return "Fact by fact: " + "; ".join(parts) + "."


def add_fact_loss_view(section, results: dict, records: list[dict], methods: Sequence[str]) -> None:
    """The per-record table and its sentence (into `results["held_fact_losses"]` too), where records carry per-fact
    correctness or losses; nothing otherwise."""
    if rows := fact_loss_rows(records, methods):
        section.table(rows, title="Which held-out facts changed: per record, the facts the snapshot answered right "
                                  "and the end wrong and the other way round; with per-fact losses, the facts whose "
                                  "loss rose, the median fact's change beside the mean's, the mean without the "
                                  f"{TOP} facts that moved most, and the rank correlation of a fact's loss at the "
                                  "snapshot with its change (below 0: the facts worst at the snapshot fell most)")
    add_sentence(section, results, "held_fact_losses", fact_loss_summary(records, methods), fact_loss_text)

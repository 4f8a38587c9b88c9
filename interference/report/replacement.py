"""The overlap report's section on what the held-out facts SFT forgot became (`interference.measures.replacement`):
their answers after SFT against the nearest new subject's answer, the answers' null and the shuffled null.
"""

from __future__ import annotations

from .document import Report
from .paired import interval_text
from .tables import count_text


def add_replacement_section(report: Report, replaced: dict, layer: int) -> None:
    """The section "What a forgotten fact becomes" of the overlap report: `replaced` is `replacement_summary` of
    its held-out facts, `layer` the layer nearest subjects were found at."""
    groups = {"every forgotten fact": replaced}
    if replaced.get("same_relation"):
        groups["of the nearest new fact's relation"] = replaced["same_relation"]
    rows = [{"forgotten facts": name, "facts": group["forgotten"], "seeds": group["seeds"],
             "take the nearest's answer": _share_text(group["takes_nearest"]), "expected": f"{group['expected']:.3f}",
             "taken − expected, per seed": interval_text(group["excess"]) if group["excess"] else "—",
             **({"nearest shuffled": f"{group['shuffled']:.3f}", "taken − shuffled, per seed": interval_text(
                 group["excess_shuffled"]) if group["excess_shuffled"] else "—"} if group.get("shuffled") is not None
                else {}),
             "take some new fact's answer": _share_text(group["takes_new"])} for name, group in groups.items()]
    taken, excess = replaced["takes_nearest"], replaced["excess"]
    section = report.section(
        "What a forgotten fact becomes",
        f"For each held-out fact SFT forgot ({replaced['forgotten']}, over the {count_text(replaced['seeds'], 'seed')} "
        f"with one), its greedy answer after SFT against the answer trained for the new subject nearest to its own "
        f"(max cosine, base model, layer {layer}). If a new subject overwrites the stored fact it resembles, the "
        f"forgotten fact takes that subject's answer more often than the new facts' answers alone explain: "
        f"{taken['share']:.3f} [{taken['ci_low']:.3f}, {taken['ci_high']:.3f}] took it, {replaced['expected']:.3f} "
        f"expected (the share of the new facts of the nearest's relation that carry the answer given); per seed, "
        f"taken − expected is {_over_seeds_text(excess)}"
        f". {_shuffled_text(replaced)}Taking some new fact's answer says little where the new facts carry every "
        f"answer of their relation. "
        + (f"{replaced['left_out']} forgotten facts decoded right once more and are left out. " if replaced["left_out"]
           else "") + "Beyond the paper.")
    nulls = "taken − expected" + (" and taken − shuffled" if replaced.get("shuffled") is not None else "")
    section.table(rows, title=f"Answers after SFT of the forgotten held-out facts (shares with Wilson 95 % intervals; "
                              f"{nulls}: mean and t-interval over seeds)")


def _shuffled_text(replaced: dict) -> str:
    """The shuffled null's sentence (runs that recorded it)."""
    if replaced.get("shuffled") is None:
        return ""
    excess = replaced["excess_shuffled"]
    return (f"A sharper null deals the nearest new facts at random among a seed's forgotten facts with the same "
            f"nearest relation, keeping the answers given and the nearest facts' answers and breaking only the pairing "
            f"(hub subjects nearest to many held-out ones, or popular answers, count there too): "
            f"{replaced['shuffled']:.3f} expected{_dealt_text(replaced)}, and taken − shuffled per seed is "
            f"{_over_seeds_text(excess)}. ")


def _dealt_text(replaced: dict) -> str:
    """Which facts the shuffled null covers, where some were alone in their seed and nearest relation."""
    alone = replaced["forgotten"] - replaced["dealt"]
    return f" (over {replaced['dealt']} facts; {alone} alone in their seed's deck are left out)" if alone else ""


def _over_seeds_text(excess) -> str:
    """A per-seed excess's mean and t-interval with its seed count (None: one seed)."""
    return f"{interval_text(excess)} over {excess.n} seeds" if excess else "undefined (one seed)"


def _share_text(share: dict) -> str:
    return f"{share['share']:.3f} [{share['ci_low']:.3f}, {share['ci_high']:.3f}]"

"""Whether a method breaks the facts the reference breaks: the paired per-fact view's pure functions on hand-built
records, and its refusal of pairs that do not share a snapshot."""

from __future__ import annotations

import math

import pytest

from interference.io.errors import InterferenceError
from interference.report.fact_pairs import (
    fact_pair,
    fact_pair_rows,
    fact_pair_summary,
    fact_pair_text,
    fact_pairs,
)

START = [0.125, 0.25, 0.0625, 0.5, 1.0]  # right (under 0.3) on facts 0, 1, 2


def _record(name: str, seed: int, final: list[float], start: list[float] = START) -> dict:
    """A record with per-fact losses, a fact counted right where its loss is under 0.3."""
    return {"name": name, "seed": seed, "held_losses_start": start, "held_losses_final": final,
            "held_correct_start": [x < 0.3 for x in start], "held_correct_final": [x < 0.3 for x in final]}


#: SFT loses facts 0 and 1 and learns fact 4; self-distillation moves the same facts a quarter as far and loses fact 0.
SFT = _record("sft", 0, [0.875, 0.375, 0.125, 0.75, 0.25])
SPARING = _record("self_distill", 0, [0.3125, 0.28125, 0.078125, 0.5625, 0.8125])
#: Another method loses fact 2, which SFT kept, and moves the facts SFT moved least.
ELSEWHERE = _record("ewc", 0, [0.125, 0.25, 0.5625, 0.5, 1.0])


def test_a_method_that_moves_the_same_facts_less_loses_a_subset():
    p = fact_pair(SFT, SPARING)
    assert (p["known"], p["lost_reference"], p["lost_other"], p["lost_both"]) == (3, 2, 1, 1)
    assert p["lost_chance"] == pytest.approx(2 * 1 / 3)  # two draws of 2 and 1 from 3 known facts
    # changes: sft (+0.75, +0.125, +0.0625, +0.25, −0.75), self-distillation exactly a quarter of each
    assert p["change_rank_correlation"] == pytest.approx(1.0)
    assert (p["median_change_reference"], p["median_change_other"]) == (0.125, 0.03125)
    assert (p["facts"], p["other_lower"]) == (5, 4)  # below on every fact SFT raised; above on the one it learned


def test_a_method_that_breaks_other_facts_ranks_against_the_reference():
    p = fact_pair(SFT, ELSEWHERE)
    assert (p["lost_other"], p["lost_both"]) == (1, 0)  # it lost fact 2, which SFT kept
    assert p["change_rank_correlation"] < 0.5
    assert (p["median_change_other"], p["other_lower"]) == (0.0, 3)
    constant = fact_pair(SFT, _record("ewc", 0, START))  # a method that moved nothing: ρ is undefined
    assert math.isnan(constant["change_rank_correlation"]) and constant["lost_other"] == 0


def test_pairs_that_do_not_share_a_snapshot_or_a_seed_are_refused():
    with pytest.raises(InterferenceError, match="seeds differ"):
        fact_pair(SFT, _record("self_distill", 1, START))
    other_start = [0.125, 0.25, 0.0625, 0.5, 0.75]  # the same answers, another loss on fact 4
    with pytest.raises(InterferenceError, match="held_losses_start differ"):
        fact_pair(SFT, _record("self_distill", 0, START, start=other_start))
    with pytest.raises(InterferenceError, match="held_correct_start differ"):
        fact_pair(SFT, _record("self_distill", 0, START, start=[0.5, *START[1:]]))


def test_older_records_give_the_answer_part_only_and_records_without_either_give_nothing():
    answers_only = [{k: r[k] for k in ("name", "seed", "held_correct_start", "held_correct_final")}
                    for r in (SFT, SPARING)]
    p = fact_pair(*answers_only)
    assert set(p) == {"known", "lost_reference", "lost_other", "lost_both", "lost_chance"}
    assert fact_pair({"name": "sft", "seed": 0}, {"name": "ewc", "seed": 0, "held_loss_start": 0.2}) is None


def test_the_summary_sums_answers_over_seeds_and_counts_seeds_by_the_stated_rules():
    seed1 = [_record("sft", 1, [0.5, 0.5, 0.5, 0.5, 0.5]), _record("self_distill", 1, [0.5, 0.5, 0.5, 0.5, 0.75])]
    records = [SFT, SPARING, ELSEWHERE, *seed1, _record("ewc", 2, START)]  # ewc's seed 2 has no sft to pair with
    pairs = fact_pairs(records, ["sft", "self_distill", "ewc"], "sft")
    assert [(m, s) for m, s, _ in pairs] == [("self_distill", 0), ("self_distill", 1), ("ewc", 0)]
    summary = fact_pair_summary(records, ["sft", "self_distill", "ewc"], "sft")
    sd = summary["methods"]["self_distill"]
    assert (sd["answer_seeds"], sd["lost_reference"], sd["lost_other"], sd["lost_both"]) == (2, 5, 4, 4)
    assert sd["lost_chance"] == pytest.approx(2 / 3 + 3 * 3 / 3)
    # seed 1: sft raised facts 0–2 and lowered 4; self-distillation the same but fact 4 less: ρ 1, the same median
    assert (sd["loss_seeds"], sd["same_facts"], sd["median_below"]) == (2, 2, 1)
    assert summary["methods"]["ewc"]["same_facts"] == 0
    text = fact_pair_text(summary)
    assert text.startswith("Against sft, fact by fact: self_distill lost 4 held-out facts the snapshot answered right "
                           "over 2 seeds to sft's 5, 4 of them lost by sft too (by chance 3.7)")
    assert "above 0.5 on 2 of 2 seeds), and its median fact's change is below sft's on 1" in text
    rows = fact_pair_rows(records, ["sft", "self_distill", "ewc"], "sft")
    assert rows[0]["facts sft lost"] == 2 and rows[0]["facts it moved less than sft"] == "4 of 5"
    assert fact_pair_summary([SFT], ["sft"], "sft") is None and fact_pair_rows([SPARING], ["self_distill"], "sft") == []

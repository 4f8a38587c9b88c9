"""Whether a method breaks the facts the reference breaks: the paired per-fact view's pure functions on hand-built
records, and its refusal of pairs that do not share a snapshot."""

from __future__ import annotations

import math

import pytest

from interference.io.errors import InterferenceError
from interference.report.fact_pairs import (
    confidence_shares,
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
    # known facts 0, 1, 2 split at their median snapshot loss 0.125: facts 0 and 2 confident, fact 1 the rest
    assert (p["share_confident"], p["share_rest"]) == (0.25, 0.25)  # a quarter everywhere: an even shave


def test_a_method_that_breaks_other_facts_ranks_against_the_reference():
    p = fact_pair(SFT, ELSEWHERE)
    assert (p["lost_other"], p["lost_both"]) == (1, 0)  # it lost fact 2, which SFT kept
    assert p["change_rank_correlation"] < 0.5
    assert (p["median_change_other"], p["other_lower"]) == (0.0, 3)
    assert p["share_confident"] == pytest.approx(0.5 / 0.8125) and p["share_rest"] == 0.0
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


def test_confidence_shares_split_the_known_facts_at_their_median_snapshot_loss():
    start, known = [0.1, 0.2, 0.3, 0.4, 2.0], [True, True, True, True, False]
    reference, shielding = [1.0, 1.0, 1.0, 1.0, 5.0], [0.2, 0.2, 0.8, 0.8, 0.0]
    # confident: facts 0 and 1 (at or below the median 0.25); the rest: facts 2 and 3; fact 4 was not known
    assert confidence_shares(start, known, reference, shielding) == pytest.approx((0.2, 0.8))
    assert confidence_shares(start, known, reference, reference) == (1.0, 1.0)
    # nothing to keep a share of where the reference's sum over a half is not positive
    assert confidence_shares(start, known, [1.0, 1.0, -1.0, 0.5, 0.0], shielding) == (pytest.approx(0.2), None)
    odd = [True, True, True, False, False]  # the median fact falls in the confident half
    assert confidence_shares(start, odd, reference, shielding) == pytest.approx((0.2, 0.8))
    assert confidence_shares(start, [False] * 5, reference, shielding) == (None, None)


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
    # seed 0 keeps a quarter on both halves, seed 1 all of sft's rise on both: on neither is the confident half lower
    assert (sd["share_seeds"], sd["confident_lower"], sd["share_confident"]) == (2, 0, 0.625)
    assert summary["methods"]["ewc"]["same_facts"] == 0
    text = fact_pair_text(summary)
    assert text.startswith("Against sft, fact by fact: self_distill lost 4 held-out facts the snapshot answered right "
                           "over 2 seeds to sft's 5, 4 of them lost by sft too (by chance 3.7)")
    assert "above 0.5 on 2 of 2 seeds), and its median fact's change is below sft's on 1" in text
    assert ("of sft's loss rise it kept a median 0.62 on the known facts the snapshot held most confidently and 0.62 "
            "on the rest (less on the confident half on 0 of 2 seeds)") in text
    rows = fact_pair_rows(records, ["sft", "self_distill", "ewc"], "sft")
    assert rows[0]["facts sft lost"] == 2 and rows[0]["facts it moved less than sft"] == "4 of 5"
    assert (rows[0]["its share of sft's rise, confident half"], rows[0]["the other half"]) == (0.25, 0.25)
    assert fact_pair_summary([SFT], ["sft"], "sft") is None and fact_pair_rows([SPARING], ["self_distill"], "sft") == []

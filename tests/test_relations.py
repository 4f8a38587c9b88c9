"""Forgetting by relation (`interference.report.relations`): per-relation shares from per-fact outcomes, their
intervals over seeds, the pairing with SFT, and the report section."""

import math

import numpy as np
import pytest
from scipy import stats

from interference.io.errors import InterferenceError
from interference.report import Report
from interference.report.relations import (
    add_relations,
    contrast_display_rows,
    has_relations,
    relation_contrast,
    relation_display_rows,
    relation_measures,
    relation_records,
    relation_summary,
)


def record(name, seed, start, final, new, held_relations, new_relations):
    return {"name": name, "seed": seed, "held_correct_start": start, "held_correct_final": final,
            "new_correct_final": new, "held_relations": held_relations, "new_relations": new_relations}


HELD = ["P17", "P17", "P17", "P36", "P36"]
NEW = ["P17", "P17", "P495"]


def test_shares_count_only_facts_right_at_the_start():
    r = record("sft", 0, [True, True, False, True, True], [False, True, False, True, True], [True, False, True],
               HELD, NEW)
    m = relation_measures(r)
    assert m["held P17"] == 2 and m["forgotten P17"] == 0.5  # the third P17 fact was never known: not forgotten
    assert m["held P36"] == 2 and m["forgotten P36"] == 0.0
    assert m["new P17"] == 2 and m["learned P17"] == 0.5 and m["learned P495"] == 1.0
    assert m["held P495"] == 0 and math.isnan(m["forgotten P495"])  # no held-out fact of P495 to forget
    assert m["new P36"] == 0 and math.isnan(m["learned P36"])


def test_records_without_aligned_relations_are_left_out():
    good = record("sft", 0, [True] * 5, [True] * 5, [True] * 3, HELD, NEW)
    assert has_relations(good)
    assert not has_relations({**good, "held_relations": HELD[:4]})  # not aligned with the outcomes
    old = {k: v for k, v in good.items() if k not in ("held_relations", "new_relations")}
    assert not has_relations(old) and relation_measures(old) == {}
    assert [r["seed"] for r in relation_records([good, old])] == [0]


def test_summary_pairs_each_condition_with_sft_by_seed():
    records = []
    finals = [([False, False, True, True, True], [True, True, True, True, True]),
              ([False, True, True, False, True], [True, True, True, True, True]),
              ([False, False, True, True, False], [False, True, True, True, True])]
    for seed, (sft_final, sd_final) in enumerate(finals):
        start = [True] * 5
        records.append(record("sft", seed, start, sft_final, [True, True, False], HELD, NEW))
        records.append(record("self_distill", seed, start, sd_final, [True, False, False], HELD, NEW))
    rows = {(r["relation"], r["condition"]): r for r in relation_summary(records, ["sft", "self_distill"])}
    sft, sd = rows[("P17", "sft")], rows[("P17", "self_distill")]
    # P17 forgotten per seed: sft 2/3, 1/3, 2/3; self_distill 0, 0, 1/3
    assert sft["forgotten_mean"] == pytest.approx(5 / 9) and sd["forgotten_mean"] == pytest.approx(1 / 9)
    assert sd["minus_reference_mean"] == pytest.approx(-4 / 9)
    assert sd["minus_reference_low"] < sd["minus_reference_mean"] < sd["minus_reference_high"]
    assert sft["minus_reference_mean"] is None  # the reference is not paired with itself
    assert sft["seeds"] == 3 and sft["held_known"] == 3 and sft["new"] == 2
    assert sft["learned_mean"] == 1.0 and sd["learned_mean"] == 0.5
    assert rows[("P495", "sft")]["forgotten_mean"] is None  # no held-out P495 fact in any seed
    display = relation_display_rows([sd])[0]
    assert display["forgotten − sft"].startswith("-0.444 [")
    assert display["forgotten"].startswith("0.111 [")


def test_one_seed_has_means_and_no_interval():
    records = [record("sft", 0, [True] * 5, [False] + [True] * 4, [True] * 3, HELD, NEW),
               record("l2", 0, [True] * 5, [True] * 5, [True] * 3, HELD, NEW)]
    row = {(r["relation"], r["condition"]): r for r in relation_summary(records, ["sft", "l2"])}[("P17", "l2")]
    assert row["minus_reference_mean"] == pytest.approx(-1 / 3) and row["minus_reference_low"] is None
    assert relation_display_rows([row])[0]["forgotten − sft"] == "-0.333"


def test_the_report_section_appears_only_with_relations_and_says_which_records_it_covers():
    with_relations = record("sft", 0, [True] * 5, [False] + [True] * 4, [True] * 3, HELD, NEW)
    old = {k: v for k, v in with_relations.items() if k not in ("held_relations", "new_relations")}
    report = Report("t")
    assert add_relations(report, [old], ["sft"]) == [] and not report.sections
    add_relations(report, [with_relations, {**old, "seed": 1}], ["sft"])
    (section,) = report.sections
    assert section.title == "Forgetting by relation" and "Only 1 of 2" in section.blocks[0][1]
    assert [row["relation"] for row in report.results["by_relation"]] == ["P17", "P36", "P495"]


def test_the_contrast_sets_the_new_facts_relations_against_the_others_within_seed():
    # new facts of P17 only; P17 held facts: 2 of 3 right at start forgotten in seed 0, 1 of 3 in seed 1
    records = [record("sft", 0, [True] * 5, [False, False, True, True, False], [True] * 3, HELD, ["P17"] * 3),
               record("sft", 1, [True] * 5, [False, True, True, True, True], [True] * 3, HELD, ["P17"] * 3)]
    (row,) = relation_contrast(records, ["sft"])
    assert (row["seeds"], row["inside_mean"], row["outside_mean"]) == (2, pytest.approx(0.5), pytest.approx(0.25))
    # differences within seed: 2/3 − 1/2 and 1/3 − 0; half-width t(0.975, 1) · sd / √2
    half = stats.t.ppf(0.975, 1) * np.std([1 / 6, 1 / 3], ddof=1) / np.sqrt(2)
    assert row["gap_mean"] == pytest.approx(0.25) and row["gap_n"] == 2
    assert (row["gap_low"], row["gap_high"]) == pytest.approx((0.25 - half, 0.25 + half))
    assert row["gap_minus_reference_mean"] is None  # sft is the reference
    # new facts of every relation leave no outside: no contrast
    assert relation_contrast([record("sft", 0, [True] * 5, [True] * 5, [True] * 3, HELD, ["P17", "P36", "P17"])],
                             ["sft"]) == []


def test_the_contrast_pairs_each_side_and_the_gap_with_the_reference():
    sft = [record("sft", s, [True] * 5, final, [True] * 3, HELD, ["P17"] * 3)
           for s, final in enumerate([[False, False, True, True, False], [False, True, True, True, True]])]
    sd = [record("self_distill", s, [True] * 5, final, [True] * 3, HELD, ["P17"] * 3)
          for s, final in enumerate([[False, True, True, True, True], [True, True, True, True, True]])]
    rows = {r["condition"]: r for r in relation_contrast(sft + sd, ["sft", "self_distill"])}
    # self_distill inside 1/3, 0; outside 0, 0; sft inside 2/3, 1/3; outside 1/2, 0
    row = rows["self_distill"]
    assert row["inside_minus_reference_mean"] == pytest.approx(-1 / 3)
    assert row["outside_minus_reference_mean"] == pytest.approx(-1 / 4)
    assert row["gap_minus_reference_mean"] == pytest.approx(-1 / 12)
    shown = contrast_display_rows([row])[0]
    assert shown["inside − sft's"].startswith("-0.333") and shown["gap (inside − outside)"].startswith("+0.167 [")


def test_counts_of_a_relation_a_seed_lacks_are_zero_and_partial_pairing_is_said():
    one = record("sft", 0, [True] * 5, [True] * 5, [True] * 3, HELD, NEW)
    other = record("sft", 1, [True, True], [True, True], [True], ["P36", "P36"], ["P36"])  # no P17 at all
    rows = {(r["relation"], r["condition"]): r for r in relation_summary([one, other], ["sft"])}
    assert rows[("P17", "sft")]["held_known"] == 1.5 and rows[("P17", "sft")]["new"] == 1.0  # (3 + 0) / 2, (2 + 0) / 2
    assert rows[("P17", "sft")]["forgotten_n"] == 1  # seed 1 has no P17 fact to forget
    l2 = record("l2", 0, [True] * 5, [False] + [True] * 4, [True] * 3, HELD, NEW)
    l2_again = {**l2, "seed": 1}
    row = {(r["relation"], r["condition"]): r for r in relation_summary([one, other, l2, l2_again],
                                                                          ["sft", "l2"])}[("P17", "l2")]
    assert row["seeds"] == 2 and row["minus_reference_n"] == 1  # sft's seed 1 has no P17 to pair with
    assert relation_display_rows([row])[0]["forgotten − sft"] == "+0.333 (1 seed paired)"


def test_no_reference_no_pairing_and_a_seed_twice_is_refused():
    l2 = record("l2", 0, [True] * 5, [False] + [True] * 4, [True] * 3, HELD, NEW)
    (row, *_) = relation_summary([l2], ["l2"])
    assert row["minus_reference_mean"] is None and row["minus_reference_n"] == 0
    sft = record("sft", 0, [True] * 5, [True] * 5, [True] * 3, HELD, NEW)
    with pytest.raises(InterferenceError, match="two records of seed 0"):
        relation_summary([l2, sft, sft], ["sft", "l2"])

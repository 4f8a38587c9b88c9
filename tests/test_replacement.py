"""What a forgotten fact becomes (interference.measures.replacement): the fields of one fact and their pooling."""

from __future__ import annotations

import html

import pytest

from interference.facts import Fact
from interference.measures.replacement import replacement_fields, replacement_records, replacement_summary
from interference.report.document import Report
from interference.report.replacement import add_replacement_section


def _fact(subject, answer, relation="country", aliases=()):
    return Fact(subject, relation, answer, f"Which country is {subject} in?", aliases=tuple(aliases))


NEW = [_fact("Megria", "Mouzame", aliases=("Mouzame Republic",)), _fact("Griasta", "Mole"),
       _fact("Broumo", "Mouzame"), _fact("Fliavo", "Terna"), _fact("Lethiaka", "1218", relation="founded")]


def test_fields_compare_the_answer_given_with_the_nearest_new_fact_and_the_new_facts_answers():
    taken = replacement_fields("Mouzame Republic\nmore text", NEW[0], NEW)  # an alias, on its first line
    assert taken == {"answer_sft": "Mouzame Republic", "nearest_relation": "country", "takes_nearest": True,
                     "nearest_expected": 0.25, "takes_new": True}
    other = replacement_fields("Mouzame", NEW[1], NEW)  # another new fact's answer: the nearest's peers are country
    assert other["takes_nearest"] is False and other["takes_new"] is True
    assert other["nearest_expected"] == pytest.approx(2 / 4)  # two of the four country facts carry it
    none = replacement_fields("Atlantis", NEW[4], NEW)
    assert none == {"answer_sft": "Atlantis", "nearest_relation": "founded", "takes_nearest": False,
                    "nearest_expected": 0.0, "takes_new": False}


def test_records_add_the_shuffled_null_dealt_within_the_nearest_relation_among_forgotten_facts_only():
    nearest = [NEW[0], NEW[3], NEW[1], NEW[4], NEW[2]]  # held-out fact i's nearest new fact
    given = {0: "Terna", 1: "Terna", 2: "Mouzame Republic", 3: "1990"}  # held-out fact 4 was not forgotten
    records = replacement_records(given, nearest, NEW)
    assert sorted(records) == [0, 1, 2, 3]
    assert records[1] == {**replacement_fields("Terna", NEW[3], NEW), "nearest_shuffled": pytest.approx(1 / 3)}
    # the country deck holds the nearest of forgotten facts 0-2 (Mouzame, Terna, Mole), not fact 4's (Broumo)
    assert [records[i]["takes_nearest"] for i in range(3)] == [False, True, False]
    assert [records[i]["nearest_shuffled"] for i in range(3)] == pytest.approx([1 / 3, 1 / 3, 1 / 3])
    assert records[3]["nearest_shuffled"] == 0.0  # its own deck: the founded facts' nearest (1218)
    assert replacement_records({}, nearest, NEW) == {}


def test_summary_sets_the_answers_taken_against_the_shuffled_null_leaving_out_facts_dealt_alone():
    facts = [{**_forgotten(0, "country", "country", True, 0.25), "nearest_shuffled": 1 / 3},  # a deck of three
             {**_forgotten(0, "country", "country", False, 0.25), "nearest_shuffled": 1 / 3},
             {**_forgotten(0, "capital", "country", False, 0.0), "nearest_shuffled": 0.0},
             {**_forgotten(1, "country", "country", True, 0.5), "nearest_shuffled": 0.5},  # a deck of two
             {**_forgotten(1, "country", "country", True, 0.5), "nearest_shuffled": 0.5},
             {**_forgotten(2, "country", "country", True, 0.5), "nearest_shuffled": 1.0}]  # alone: left out
    summary = replacement_summary(facts)
    assert summary["dealt"] == 5 and summary["shuffled"] == pytest.approx((1 / 3 + 1 / 3 + 0.5 + 0.5) / 5)
    per_seed = {s["seed"]: s for s in summary["per_seed"]}
    assert per_seed[0]["excess_shuffled"] == pytest.approx((1 - 2 / 3) / 3)  # taken minus the null, not the reverse
    assert per_seed[1]["excess_shuffled"] == pytest.approx(0.5) and "excess_shuffled" not in per_seed[2]
    assert summary["excess_shuffled"].mean == pytest.approx((1 / 9 + 0.5) / 2) and summary["excess_shuffled"].n == 2
    assert per_seed[2]["excess"] == pytest.approx(0.5)  # the answers' null keeps every fact
    same = {s["seed"]: s for s in summary["same_relation"]["per_seed"]}  # the capital fact is left out here
    assert same[0]["excess_shuffled"] == pytest.approx((1 - 2 / 3) / 2) and summary["same_relation"]["dealt"] == 4
    partly = [{k: v for k, v in f.items() if (k, i) != ("nearest_shuffled", 0)} for i, f in enumerate(facts)]
    for without in (replacement_summary(partly),  # one record written before the field: no shuffled null
                    replacement_summary([{k: v for k, v in f.items() if k != "nearest_shuffled"} for f in facts])):
        assert without["shuffled"] is None and without["excess_shuffled"] is None and without["dealt"] == 0
        assert not any("excess_shuffled" in s for s in without["per_seed"])
    assert replacement_summary(facts[-1:])["excess_shuffled"] is None  # nothing dealt with another


def test_the_report_section_gives_both_nulls_and_says_which_facts_the_shuffled_one_leaves_out():
    facts = [{**_forgotten(0, "country", "country", True, 0.25), "nearest_shuffled": 0.5},
             {**_forgotten(0, "country", "country", False, 0.25), "nearest_shuffled": 0.5},
             {**_forgotten(1, "country", "country", True, 0.5), "nearest_shuffled": 0.5},
             {**_forgotten(1, "country", "country", False, 0.5), "nearest_shuffled": 0.0},
             {**_forgotten(2, "country", "country", True, 0.5), "nearest_shuffled": 1.0}]  # alone in its deck
    report = Report("t", config={}, seeds=[0, 1, 2])
    add_replacement_section(report, replacement_summary(facts), layer=1)
    page = report.to_html()
    assert "taken − expected, per seed" in page and "taken − shuffled, per seed" in page
    assert html.escape("(over 4 facts; 1 alone in their seed's deck are left out)") in page
    older = Report("t", config={}, seeds=[0, 1, 2])
    add_replacement_section(older, replacement_summary(
        [{k: v for k, v in f.items() if k != "nearest_shuffled"} for f in facts]), layer=1)
    assert "taken − shuffled" not in older.to_html() and "sharper null" not in older.to_html()


def _forgotten(seed, relation, nearest_relation, takes, expected, new=True):
    return {"seed": seed, "relation": relation, "forgotten_sft": True, "nearest_relation": nearest_relation,
            "takes_nearest": takes, "nearest_expected": expected, "takes_new": new}


def test_summary_pools_facts_gives_the_excess_over_seeds_and_the_same_relation_subset():
    facts = [
        _forgotten(0, "country", "country", True, 0.25),
        _forgotten(0, "country", "country", False, 0.25),
        _forgotten(0, "capital", "country", False, 0.0, new=False),  # another relation than its nearest's
        {"seed": 0, "relation": "country", "forgotten_sft": False},  # retained: no fields, not counted
        _forgotten(1, "country", "country", False, 0.5, new=False),
        {"seed": 1, "relation": "country", "forgotten_sft": True},  # forgotten, decoded right once more
        {"seed": 2, "relation": "country", "forgotten_sft": True},  # a run without the fields: not counted
    ]
    summary = replacement_summary(facts)
    assert (summary["forgotten"], summary["seeds"], summary["left_out"]) == (4, 2, 1)
    assert (summary["takes_nearest"]["facts"], summary["takes_new"]["facts"]) == (1, 2)
    share = summary["takes_nearest"]
    assert share["share"] == pytest.approx(1 / 4) and share["ci_low"] < 1 / 4 < share["ci_high"]
    assert summary["expected"] == pytest.approx((0.25 + 0.25 + 0 + 0.5) / 4)
    assert [s["excess"] for s in summary["per_seed"]] == pytest.approx([(1 - 0.5) / 3, 0.0 - 0.5])
    assert summary["excess"].mean == pytest.approx(((1 - 0.5) / 3 - 0.5) / 2) and summary["excess"].n == 2
    same = summary["same_relation"]  # the capital fact is left out: its relation is not its nearest's
    assert same["forgotten"] == 3 and [s["excess"] for s in same["per_seed"]] == pytest.approx([0.25, -0.5])
    assert replacement_summary(facts[:2])["excess"] is None  # one seed: no interval over seeds
    assert replacement_summary([{"seed": 0, "relation": "country", "forgotten_sft": False}]) is None
    older = [{k: v for k, v in f.items() if k != "nearest_relation"} for f in facts]  # recorded before it was kept
    assert "same_relation" not in replacement_summary(older)

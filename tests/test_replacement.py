"""What a forgotten fact becomes (interference.measures.replacement): the fields of one fact and their pooling."""

from __future__ import annotations

import pytest

from interference.facts import Fact
from interference.measures.replacement import replacement_fields, replacement_summary


def _fact(subject, answer, relation="country", aliases=()):
    return Fact(subject, relation, answer, f"Which country is {subject} in?", aliases=tuple(aliases))


NEW = [_fact("Megria", "Mouzame", aliases=("Mouzame Republic",)), _fact("Griasta", "Mole"),
       _fact("Broumo", "Mouzame"), _fact("Fliavo", "Terna"), _fact("Lethiaka", "1218", relation="founded")]


def test_fields_compare_the_answer_given_with_the_nearest_new_fact_and_the_new_facts_answers():
    taken = replacement_fields("Mouzame Republic\nmore text", NEW[0], NEW)  # an alias, on its first line
    assert taken == {"answer_sft": "Mouzame Republic", "takes_nearest": True, "nearest_expected": 0.25,
                     "takes_new": True}
    other = replacement_fields("Mouzame", NEW[1], NEW)  # another new fact's answer: the nearest's peers are country
    assert other["takes_nearest"] is False and other["takes_new"] is True
    assert other["nearest_expected"] == pytest.approx(2 / 4)  # two of the four country facts carry it
    none = replacement_fields("Atlantis", NEW[4], NEW)
    assert none == {"answer_sft": "Atlantis", "takes_nearest": False, "nearest_expected": 0.0, "takes_new": False}


def test_summary_pools_facts_and_gives_the_excess_over_seeds():
    facts = [
        {"seed": 0, "forgotten_sft": True, "takes_nearest": True, "nearest_expected": 0.25, "takes_new": True},
        {"seed": 0, "forgotten_sft": True, "takes_nearest": False, "nearest_expected": 0.25, "takes_new": True},
        {"seed": 0, "forgotten_sft": False},  # retained: no fields, not counted
        {"seed": 1, "forgotten_sft": True, "takes_nearest": False, "nearest_expected": 0.5, "takes_new": False},
    ]
    summary = replacement_summary(facts)
    assert summary["forgotten"] == 3 and summary["seeds"] == 2
    taken, new, expected = summary["rows"]
    assert (taken["facts"], taken["of"], new["facts"]) == (1, 3, 2)
    assert taken["share"] == pytest.approx(1 / 3) and taken["ci_low"] < 1 / 3 < taken["ci_high"]
    assert expected["share"] == pytest.approx((0.25 + 0.25 + 0.5) / 3)
    assert summary["excess_per_seed"] == pytest.approx([0.5 - 0.25, 0.0 - 0.5])
    assert summary["excess"].mean == pytest.approx(-0.125) and summary["excess"].n == 2
    assert replacement_summary(facts[:2])["excess"] is None  # one seed: no interval over seeds
    assert replacement_summary([{"seed": 0, "forgotten_sft": False}]) is None

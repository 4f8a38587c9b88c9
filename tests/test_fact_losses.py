"""Which held-out facts carry the change of their mean loss: the per-fact view's pure functions on hand-built records,
and the exact agreement of per-fact losses with the mean the studies record."""

from __future__ import annotations

import math

import pytest

from interference.report.fact_losses import fact_loss_measures, fact_loss_rows, fact_loss_summary, fact_loss_text


def _record(name: str, seed: int, start: list[float], final: list[float]) -> dict:
    """A record with per-fact losses, a fact counted right where its loss is under 0.3."""
    return {"name": name, "seed": seed, "held_losses_start": start, "held_losses_final": final,
            "held_correct_start": [x < 0.3 for x in start], "held_correct_final": [x < 0.3 for x in final]}


#: One fact the snapshot got badly wrong is learned (its loss falls by 0.75) while three others rise by 0.125: the
#: mean falls though most facts rose.
LEARNED = _record("sft", 0, [1.0, 0.25, 0.125, 0.5], [0.25, 0.375, 0.25, 0.625])


def test_one_fact_learned_can_turn_the_mean_while_most_facts_rise():
    m = fact_loss_measures(LEARNED, top=1)
    assert (m["facts"], m["rose"]) == (4, 3)
    assert m["median_change"] == 0.125 and m["mean_change"] == -0.09375  # the mean falls, the median fact rises
    assert m["rest_mean_change"] == 0.125  # without the one fact that moved most
    # ranks of the snapshot loss (4 2 1 3) against the change's (1 3 3 3): ρ = −3/√15
    assert m["start_rank_correlation"] == pytest.approx(-3 / math.sqrt(15))
    assert fact_loss_measures({"name": "sft", "seed": 0, "held_loss_start": 0.3}) is None  # an older record
    assert math.isnan(fact_loss_measures(_record("sft", 0, [0.5] * 3, [0.5, 0.75, 1.0]))["start_rank_correlation"])


def test_the_summary_counts_seeds_by_what_rose_and_reads_only_records_with_facts():
    records = [LEARNED, _record("sft", 1, [0.5, 0.25, 0.125, 1.0], [1.0, 0.5, 0.25, 1.5]),
               _record("self_distill", 0, [1.0, 0.25, 0.125, 0.5], [0.5, 0.25, 0.125, 0.5]),
               {"name": "ewc", "seed": 0, "held_loss_start": 0.2, "held_loss_final": 0.3}]
    summary = fact_loss_summary(records, ["sft", "self_distill", "ewc"], top=1)
    assert summary["top"] == 1 and set(summary["methods"]) == {"sft", "self_distill"}  # ewc has no per-fact data
    sft = summary["methods"]["sft"]
    assert (sft["seeds"], sft["median_rose"], sft["mean_rose"], sft["rest_rose"]) == (2, 2, 1, 2)
    assert sft["facts_rose"] == 3.5 and sft["median_change"] == pytest.approx((0.125 + 0.375) / 2)
    sd = summary["methods"]["self_distill"]  # only the learned fact moved: nothing rose, the rest did not move
    assert (sd["median_rose"], sd["mean_rose"], sd["rest_rose"], sd["facts_rose"]) == (0, 0, 0, 0)
    assert sd["start_rank_correlation"] is not None and sd["start_rank_correlation"] < 0
    assert (sft["flip_seeds"], sft["lost"], sft["regained"]) == (2, 1, 0.5)  # right: loss under 0.3
    assert (sd["lost"], sd["regained"]) == (0, 0)
    text = fact_loss_text(summary)
    assert ("sft lost a median 1 held-out facts the snapshot answered right and regained 0.5 it answered wrong (2 "
            "seeds); it raised the median fact's loss on 2 of 2 seeds (a median 3.5 of 4 facts rose), the mean on 1 "
            "and the mean without the 1 facts that moved most on 2; a fact's snapshot loss ranks") in text
    flips_only = fact_loss_summary([{"name": "sft", "seed": 0, "held_correct_start": [True, False, True],
                                     "held_correct_final": [False, True, False]}], ["sft"])
    assert flips_only["methods"]["sft"] == {"flip_seeds": 1, "lost": 2, "regained": 1}  # a record before 2026-12-07
    assert fact_loss_text(flips_only).startswith("Fact by fact: sft lost a median 2 held-out facts")
    rows = fact_loss_rows(records, ["sft", "self_distill", "ewc"], top=1)
    assert [(r["method"], r["seed"]) for r in rows] == [("sft", 0), ("sft", 1), ("self_distill", 0)]
    assert rows[0]["facts whose loss rose"] == "3 of 4" and rows[0]["mean without the 1 that moved most"] == 0.125
    assert (rows[0]["facts lost (right → wrong)"], rows[0]["regained (wrong → right)"]) == (1, 1)
    assert fact_loss_summary(records[3:], ["ewc"]) is None and fact_loss_rows(records[3:], ["ewc"]) == []


def test_the_mean_of_per_fact_losses_is_the_recorded_answer_loss_exactly():
    from interference.facts import Fact
    from interference.facts.examples import Examples
    from interference.measures.fisher import answer_loss, answer_losses, mean_loss
    from interference.models import load_model

    model, tokenizer = load_model("tiny-llama")
    facts = [Fact(f"Land{i}", "P36", city, f"What is the capital of Land{i}?")
             for i, city in enumerate(["Oslo", "Lima", "Rome", "Kyiv", "Baku", "Doha", "Riga"])]
    examples = Examples(tokenizer, facts)
    losses = answer_losses(model, examples, batch_size=4)
    assert losses.dtype.is_floating_point and losses.shape == (len(facts),) and bool((losses > 0).all())
    assert mean_loss(losses, batch_size=4) == answer_loss(model, examples, batch_size=4)
    assert losses.tolist() == pytest.approx(answer_losses(model, examples, batch_size=1).tolist(), abs=1e-5)

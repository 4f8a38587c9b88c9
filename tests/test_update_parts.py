"""What each part of an update does to each fact: the step along a reference's update and the step off it, and the
Shapley shares of each fact's loss change."""

from __future__ import annotations

import copy
import math
import statistics

import pytest
import torch

from interference.facts import Fact
from interference.facts.examples import Examples
from interference.io.errors import InterferenceError
from interference.measures.fisher import answer_losses
from interference.measures.update_parts import (
    group_losses,
    matched_losses,
    part_losses,
    part_weights,
    sideways_step,
    step_norm,
)
from interference.measures.updates import update_alignment
from interference.models import load_model
from interference.models.parameter_groups import PARTITION
from interference.models.weights import Snapshot
from interference.report.update_parts import (
    group_seeds,
    group_summary,
    part_seeds,
    part_summary,
    parts_text,
    relation_seeds,
    relation_summary,
    rise_shares,
    seed_parts,
    shapley_shares,
)

CITIES = ["Oslo", "Lima", "Rome", "Kyiv", "Baku", "Doha"]
#: Where a record's D_unknown mean loss is measured.
NEW_LOSS_POINTS = ("start", "along", "sideways", "final", "reference")


@pytest.fixture
def moved():
    """A tiny model's start, a reference moved by random steps in two layers, the random directions, and a few
    facts' examples."""
    model, tokenizer = load_model("tiny-llama")
    start = Snapshot.of(model)
    generator = torch.Generator().manual_seed(3)
    names = ["model.layers.0.self_attn.q_proj.weight", "model.layers.1.mlp.down_proj.weight"]
    steps = {n: 0.05 * torch.randn(start.params[n].shape, generator=generator) for n in names}
    noise = {n: torch.randn(start.params[n].shape, generator=generator) for n in names}
    along = sum((noise[n] * steps[n]).sum() for n in names) / sum(steps[n].pow(2).sum() for n in names)
    noise = {n: 0.05 * (noise[n] - along * steps[n]) for n in names}  # orthogonal to the reference's step
    reference = _moved(model, start, steps)
    facts = [Fact(f"Zorb{i}", "P36", CITIES[i], f"What is the capital of Zorb{i}?") for i in range(6)]
    return model, start, reference, steps, noise, Examples(tokenizer, facts)


def _moved(model, start, steps):
    """A copy of `model` at θ⁰ + steps (parameters not named stay at θ⁰)."""
    other = copy.deepcopy(model)
    with torch.no_grad():
        for name, param in other.named_parameters():
            param.copy_(start.params[name] + steps.get(name, 0))
    return other


def test_a_shrunk_reference_is_all_along_and_its_sideways_part_is_the_start(moved):
    model, start, reference, steps, _, examples = moved
    shrunk = _moved(model, start, {n: 0.3 * s for n, s in steps.items()})
    scale, losses = part_losses(start, shrunk, reference, {"facts": examples})
    assert scale == pytest.approx(0.3, rel=1e-5)
    along, sideways = losses["facts"]
    assert torch.allclose(along, answer_losses(shrunk, examples), atol=1e-6)
    assert torch.allclose(sideways, answer_losses(model, examples), atol=1e-6)


def test_the_parts_of_an_update_are_its_step_along_the_reference_and_the_orthogonal_rest(moved):
    model, start, reference, steps, noise, examples = moved
    mixed = _moved(model, start, {n: 2 * steps[n] + noise[n] for n in steps})
    assert update_alignment(start, mixed, reference)["scale"]["all"] == pytest.approx(2.0, rel=1e-4)
    along, sideways = part_weights(start, mixed, reference, 2.0)
    for name in steps:
        assert torch.allclose(along.params[name], start.params[name] + 2 * steps[name], atol=1e-6)
        assert torch.allclose(sideways.params[name], start.params[name] + noise[name], atol=1e-6)
    untouched = "model.layers.1.self_attn.v_proj.weight"
    assert torch.equal(along.params[untouched], start.params[untouched])
    scale, losses = part_losses(start, mixed, reference, {"facts": examples})
    assert scale == pytest.approx(2.0, rel=1e-4)
    sideways_model = _moved(model, start, noise)
    assert torch.allclose(losses["facts"][1], answer_losses(sideways_model, examples), atol=1e-5)
    assert torch.equal(dict(mixed.named_parameters())[untouched], start.params[untouched])  # left as it was


def test_the_shapley_shares_add_up_to_the_change_and_are_each_parts_effect_when_the_parts_add():
    start = torch.tensor([1.0, 2.0, 0.5])
    along, sideways = start + torch.tensor([0.4, -0.1, 0.0]), start + torch.tensor([-0.2, 0.3, 0.0])
    additive = along + sideways - start
    a, b = shapley_shares(start, along, sideways, additive)
    assert torch.allclose(a, torch.tensor([0.4, -0.1, 0.0])) and torch.allclose(b, torch.tensor([-0.2, 0.3, 0.0]))
    final = torch.tensor([2.0, 2.0, 1.5])  # an interaction: the parts' sum is not the change
    a, b = shapley_shares(start, along, sideways, final)
    assert torch.allclose(a + b, final - start)
    assert torch.allclose(a - b, (along - start) - (sideways - start))  # the interaction is split evenly


def test_an_update_split_refuses_another_architecture_and_an_infinite_scale(moved):
    model, start, reference, _, _, examples = moved
    other, _ = load_model("tiny-gpt2")
    with pytest.raises(InterferenceError, match="same architecture"):
        part_weights(start, model, other, 1.0)
    with pytest.raises(InterferenceError, match="finite scale"):
        part_losses(start, model, reference, {"facts": examples}, scale=float("nan"))


def test_a_sideways_step_set_in_its_own_place_gives_its_own_losses_and_another_is_set_at_the_same_length(moved):
    model, start, reference, steps, noise, examples = moved
    mixed = _moved(model, start, {n: 0.5 * steps[n] + noise[n] for n in steps})
    own = sideways_step(start, mixed, reference, 0.5)
    assert step_norm(own) == pytest.approx(step_norm(noise), rel=1e-5)
    scale, losses = part_losses(start, mixed, reference, {"facts": examples}, scale=0.5)
    factor, matched = matched_losses(start, mixed, reference, 0.5, own, {"facts": examples})
    assert factor == pytest.approx(1.0, rel=1e-6)
    alone, on_top = matched["facts"]
    assert torch.allclose(alone, losses["facts"][1], atol=1e-5)  # θ⁰ + b: the sideways part
    assert torch.allclose(on_top, answer_losses(mixed, examples), atol=1e-5)  # θ⁰ + c·R + b: the model itself
    doubled = {n: 2 * s for n, s in own.items()}  # another step, twice as long: set back to b's length
    factor, again = matched_losses(start, mixed, reference, 0.5, doubled, {"facts": examples})
    assert factor == pytest.approx(0.5, rel=1e-6)
    assert torch.allclose(again["facts"][1], on_top, atol=1e-5)
    other = {n: torch.zeros_like(p) for n, p in start.params.items()}
    other["model.layers.0.self_attn.k_proj.weight"] = torch.randn(other["model.layers.0.self_attn.k_proj.weight"].shape,
                                                                  generator=torch.Generator().manual_seed(5))
    factor, elsewhere = matched_losses(start, mixed, reference, 0.5, other, {"facts": examples})
    assert factor * step_norm(other) == pytest.approx(step_norm(own), rel=1e-5)
    placed = _moved(model, start, {**{n: 0.5 * steps[n] for n in steps},
                                   "model.layers.0.self_attn.k_proj.weight":
                                   factor * other["model.layers.0.self_attn.k_proj.weight"]})
    assert torch.allclose(elsewhere["facts"][1], answer_losses(placed, examples), atol=1e-5)
    assert torch.equal(dict(mixed.named_parameters())["model.layers.0.self_attn.k_proj.weight"],
                       start.params["model.layers.0.self_attn.k_proj.weight"])  # the model is left as it was


def test_a_sideways_step_added_one_group_at_a_time_moves_only_those_parameters(moved):
    model, start, reference, steps, noise, examples = moved
    mixed = _moved(model, start, {n: 0.5 * steps[n] + noise[n] for n in steps})
    groups = {"attention": ("attention",), "ffn": ("ffn",), "norms": ("norms",), "every": PARTITION}
    losses = group_losses(start, mixed, reference, 0.5, groups, {"facts": examples})
    _, parts = part_losses(start, mixed, reference, {"facts": examples}, scale=0.5)
    assert torch.allclose(losses["every"]["facts"], answer_losses(mixed, examples), atol=1e-5)  # all of b: θ itself
    assert torch.allclose(losses["norms"]["facts"], parts["facts"][0], atol=1e-6)  # no step there: the shrunk SFT
    q, down = "model.layers.0.self_attn.q_proj.weight", "model.layers.1.mlp.down_proj.weight"
    for label, name in (("attention", q), ("ffn", down)):  # each group gets only its own part of b
        only = _moved(model, start, {**{n: 0.5 * steps[n] for n in steps}, name: 0.5 * steps[name] + noise[name]})
        assert torch.allclose(losses[label]["facts"], answer_losses(only, examples), atol=1e-5), label
    doubled = {n: 2 * s for n, s in sideways_step(start, mixed, reference, 0.5).items()}
    again = group_losses(start, mixed, reference, 0.5, {"every": PARTITION}, {"facts": examples}, doubled, 0.5)
    assert torch.allclose(again["every"]["facts"], losses["every"]["facts"], atol=1e-5)
    with pytest.raises(InterferenceError, match="finite scale"):
        group_losses(start, mixed, reference, math.nan, groups, {"facts": examples})


def test_a_matched_step_refuses_another_architecture_a_zero_step_and_an_infinite_scale(moved):
    model, start, reference, _, _, examples = moved
    zero = {n: torch.zeros_like(p) for n, p in start.params.items()}
    with pytest.raises(InterferenceError, match="nonzero step"):
        matched_losses(start, model, reference, 0.5, zero, {"facts": examples})
    with pytest.raises(InterferenceError, match="same architecture"):
        matched_losses(start, model, reference, 0.5, {"x": torch.ones(2)}, {"facts": examples})
    with pytest.raises(InterferenceError, match="finite scale"):
        matched_losses(start, model, reference, float("inf"), zero, {"facts": examples})


def _record(name, seed, final, along=None, sideways=None, new=(1.0, 0.8, 1.1, 0.9, 0.95)):
    record = {"name": name, "seed": seed, "held_losses_start": [0.1, 0.2, 0.3, 0.4], "held_losses_final": final}
    if along is not None:
        record["sft_parts"] = {"scale": 0.5, "held_losses_along": along, "held_losses_sideways": sideways,
                               "new_loss": dict(zip(NEW_LOSS_POINTS, new, strict=True))}
    return record


def test_a_seeds_parts_share_each_facts_change_and_aim_at_sfts_damage():
    sft = _record("sft", 0, [0.5, 0.2, 0.9, 0.4])  # SFT raised facts 0 and 2
    repair = _record("self_distill", 0, [0.2, 0.2, 0.3, 0.4], along=[0.3, 0.2, 0.6, 0.4],
                     sideways=[0.0, 0.2, 0.0, 0.4])  # the sideways step lowers facts 0 and 2
    row = seed_parts(repair, sft)
    assert row["along"] + row["sideways"] == pytest.approx(statistics.fmean([0.1, 0.0, 0.0, 0.0]))
    assert row["sideways_alone"] == pytest.approx(statistics.fmean([-0.1, 0.0, -0.3, 0.0]))
    assert row["sideways_on_top"] == pytest.approx(statistics.fmean([-0.1, 0.0, -0.3, 0.0]))
    assert row["aim"] < 0  # it lowers the loss most where SFT raised it most
    assert row["new_sideways"] == pytest.approx(0.5 * ((1.1 - 1.0) + (0.9 - 0.8)))
    assert row["new_on_top"] == pytest.approx(0.9 - 0.8)
    assert row["rest_held"] == pytest.approx(statistics.fmean([0.5, 0.2, 0.9, 0.4]) - statistics.fmean(
        [0.3, 0.2, 0.6, 0.4]))  # SFT's own step from the shrunk SFT to its end
    assert row["rest_new"] == pytest.approx(0.95 - 0.8)
    assert row["excess"] is None  # SFT's remaining step raised the new facts' loss: no price to set it against
    cheaper = copy.deepcopy(repair)
    cheaper["sft_parts"]["new_loss"].update(final=0.7, reference=0.6)  # on top -0.1; SFT's remaining step -0.2
    rest = statistics.fmean([0.5, 0.2, 0.9, 0.4]) - statistics.fmean([0.3, 0.2, 0.6, 0.4])
    assert seed_parts(cheaper, sft)["excess"] == pytest.approx(statistics.fmean([-0.1, 0.0, -0.3, 0.0]) - rest * 0.5)
    del repair["sft_parts"]["new_loss"]["reference"]  # a record made before SFT's new-fact loss was kept
    assert seed_parts(repair, sft)["rest_new"] is None
    harm = _record("reshuffled", 0, [0.6, 0.2, 1.3, 0.4], along=[0.3, 0.2, 0.6, 0.4], sideways=[0.4, 0.2, 1.0, 0.4])
    assert seed_parts(harm, sft)["aim"] > 0
    assert seed_parts(sft, sft) is None  # SFT is the reference: no parts


def test_the_parts_summary_pairs_each_method_with_the_control_by_seed():
    records = []
    for seed, (mine, theirs) in enumerate([(-0.2, 0.1), (-0.1, 0.1), (-0.3, 0.1)]):
        records.append(_record("sft", seed, [0.5, 0.2, 0.9, 0.4]))
        for name, step in (("self_distill", mine), ("reshuffled", theirs)):
            sideways = [v + step for v in (0.1, 0.2, 0.3, 0.4)]
            along = [0.3, 0.2, 0.6, 0.4]
            final = [a + s - b for a, s, b in zip(along, sideways, (0.1, 0.2, 0.3, 0.4), strict=True)]
            records.append(_record(name, seed, final, along, sideways))
    seeds = part_seeds(records, ["sft", "self_distill", "reshuffled"])
    assert [(s["method"], s["seed"]) for s in seeds] == [("self_distill", 0), ("self_distill", 1),
                                                         ("self_distill", 2), ("reshuffled", 0), ("reshuffled", 1),
                                                         ("reshuffled", 2)]
    summary = {row["method"]: row for row in part_summary(seeds)}
    assert summary["self_distill"]["sideways"]["mean"] == pytest.approx(-0.2)  # the parts add: each its own step
    assert summary["self_distill"]["lowered"] == 3 and summary["reshuffled"]["lowered"] == 0
    versus = summary["self_distill"]["sideways_vs_control"]
    assert versus["mean"] == pytest.approx(-0.3) and versus["below"] == 3 and versus["n"] == 3
    assert "sideways_vs_control" not in summary["reshuffled"]
    text = parts_text(part_summary(seeds)).replace("−", "-")
    assert "self_distill: added to the shrunk SFT, its step off SFT's direction changes the held-out loss by -0.200" \
        in text and "its share of the held-out loss change is -0.200" in text
    assert "excess" not in text  # SFT's remaining step raised the new facts' loss in these records: no price


def test_the_controls_step_set_in_a_methods_place_is_read_beside_the_methods_own():
    sft = _record("sft", 0, [0.5, 0.2, 0.9, 0.4])  # SFT raised facts 0 and 2
    along = [0.3, 0.2, 0.6, 0.4]
    repair = _record("self_distill", 0, [0.2, 0.2, 0.3, 0.4], along=along, sideways=[0.0, 0.2, 0.0, 0.4])
    row = seed_parts(repair, sft)
    assert row["aim_matched"] is None and row["matched_on_top"] is None  # no control's step kept for it
    repair["sft_parts"]["matched"] = {"method": "reshuffled", "factor": 1.3, "held_losses_alone": [0.2, 0.2, 0.4, 0.4],
                                      "held_losses_on_top": [0.4, 0.2, 0.8, 0.4],  # raises what SFT raised
                                      "new_loss": {"alone": 1.05, "on_top": 0.7}}
    row = seed_parts(repair, sft)
    assert row["aim"] < 0 < row["aim_matched"]
    assert row["matched_on_top"] == pytest.approx(statistics.fmean([0.1, 0.0, 0.2, 0.0]))
    assert row["new_matched_on_top"] == pytest.approx(0.7 - 0.8)
    rest_held = statistics.fmean([0.5, 0.2, 0.9, 0.4]) - statistics.fmean(along)
    assert row["matched_excess"] is None  # SFT's remaining step raised the new facts' loss (reference 0.95)
    repair["sft_parts"]["new_loss"]["reference"] = 0.6
    assert seed_parts(repair, sft)["matched_excess"] == pytest.approx(row["matched_on_top"] - rest_held * 0.5)
    summary = {r["method"]: r for r in part_summary([{"method": "self_distill", **row}])}["self_distill"]
    assert summary["aim_vs_matched"]["mean"] == pytest.approx(row["aim"] - row["aim_matched"])
    assert summary["aim_vs_matched"]["below"] == 1
    on_top = summary["sideways_on_top_vs_matched"]
    assert on_top["mean"] == pytest.approx(row["sideways_on_top"] - row["matched_on_top"]) and on_top["below"] == 1
    assert "reshuffled's step set in its place" in parts_text([summary])


def test_the_step_off_sfts_direction_is_read_one_set_of_groups_at_a_time():
    records = []
    for seed in (0, 1):
        records.append(_record("sft", seed, [0.5, 0.2, 0.9, 0.4]))  # SFT's rest from the shrunk SFT: +0.125 held-out
        mine = _record("self_distill", seed, [0.3, 0.2, 0.6, 0.4], along=[0.3, 0.2, 0.6, 0.4],
                       sideways=[0.1, 0.2, 0.3, 0.4], new=(1.0, 0.8, 1.0, 0.7, 0.6))  # SFT's rest: −0.2 new
        mine["sft_parts"]["by_group"] = {"ffn": {"held": 0.375 + 0.01 * seed, "new": 0.75, "matched_held": 0.4,
                                                 "matched_new": 0.7},
                                         "attention": {"held": 0.375, "new": 0.8}}  # the control's step not kept
        records.append(mine)
    rows = group_seeds(records, ["sft", "self_distill"])
    assert [(r["seed"], r["group"]) for r in rows] == [(0, "ffn"), (0, "attention"), (1, "ffn"), (1, "attention")]
    ffn = rows[0]
    assert ffn["on_top"] == pytest.approx(0.0) and ffn["new_on_top"] == pytest.approx(-0.05)
    assert ffn["excess"] == pytest.approx(0.0 - 0.125 * 0.25)  # a quarter of SFT's rest in learning, none of its cost
    assert ffn["matched_on_top"] == pytest.approx(0.025) and ffn["matched_excess"] == pytest.approx(0.025 - 0.0625)
    assert rows[1]["matched_on_top"] is None and rows[1]["excess"] == pytest.approx(0.0)
    summary = {r["group"]: r for r in group_summary(rows)}
    assert summary["ffn"]["seeds"] == 2 and summary["ffn"]["on_top"]["mean"] == pytest.approx(0.005)
    versus = summary["ffn"]["excess_vs_matched"]
    assert versus["mean"] == pytest.approx(statistics.fmean([-0.03125 - (-0.0375), -0.02125 - (-0.0375)]))
    assert versus["below"] == 0 and "excess_vs_matched" not in summary["attention"]
    del records[1]["sft_parts"]["by_group"]
    assert [r["seed"] for r in group_seeds(records, ["self_distill"])] == [1, 1]  # a record without the split: none


def test_the_saving_over_the_controls_step_is_read_inside_and_outside_the_new_facts_relation():
    records = []
    for seed, cut in ((0, 0.3), (1, 0.1)):
        mine = _record("self_distill", seed, [0.2, 0.2, 0.3, 0.4], along=[0.3, 0.2, 0.6, 0.4],
                       sideways=[0.0, 0.2, 0.0, 0.4])
        mine.update(held_relations=["country", "capital", "country", "capital"], new_relations=["country"] * 3)
        mine["sft_parts"]["matched"] = {"method": "reshuffled", "factor": 1.0, "held_losses_alone": [0.1] * 4,
                                        "held_losses_on_top": [0.2 + cut, 0.25, 0.3 + cut, 0.4]}
        records.append(mine)
    rows = relation_seeds(records, ["self_distill"])
    assert [(r["seed"], r["inside_facts"], r["outside_facts"], r["relations"]) for r in rows] == [
        (0, 2, 2, ["country"]), (1, 2, 2, ["country"])]
    assert rows[0]["inside"] == pytest.approx(-0.3) and rows[0]["outside"] == pytest.approx(-0.025)
    assert rows[0]["gap"] == pytest.approx(-0.275) and rows[1]["gap"] == pytest.approx(-0.075)
    assert rows[0]["inside_rise"] == pytest.approx(0.05) and rows[0]["inside_matched_rise"] == pytest.approx(0.35)
    summary = relation_summary(rows)[0]  # inside 0.05 of (0.35 + 0.15) / 2; outside nothing of the control's 0.025
    assert summary["shares"]["inside"] == pytest.approx(0.2) and summary["shares"]["outside"] == pytest.approx(0.0)
    assert summary["seeds"] == 2 and summary["gap"]["mean"] == pytest.approx(-0.175) and summary["gap"]["below"] == 2
    records[1]["new_relations"] = ["country", "capital"]  # every held-out fact shares a new relation: no outside
    assert relation_seeds(records, ["self_distill"])[1]["gap"] is None
    assert relation_summary(relation_seeds(records, ["self_distill"]))[0]["gap"]["n"] == 1
    del records[0]["sft_parts"]["matched"], records[1]["held_relations"]  # no control's step, no relations: none
    assert relation_seeds(records, ["self_distill"]) == []


def test_the_rise_as_a_share_of_the_controls_is_set_inside_against_outside_with_a_bootstrap_over_seeds():
    rows = [{"method": "self_distill", "seed": seed, "gap": -0.1, "inside_rise": 0.6 + 0.01 * seed,
             "inside_matched_rise": 1.0, "outside_rise": 0.2, "outside_matched_rise": 0.4 + 0.01 * seed}
            for seed in range(5)]
    shares = rise_shares(rows)
    assert shares["inside"] == pytest.approx(0.62) and shares["outside"] == pytest.approx(0.2 / 0.42)
    difference = shares["difference"]
    assert difference["mean"] == pytest.approx(0.62 - 0.2 / 0.42) and difference["n"] == 5
    assert difference["low"] <= difference["mean"] <= difference["high"] and difference["resamples"] == 2000
    assert rise_shares(rows) == shares  # deterministic given its seed
    assert rise_shares([{**r, "outside_matched_rise": -0.1} for r in rows]) is None  # the control lowered it
    assert rise_shares([{**r, "gap": None} for r in rows]) is None

"""Path-integrated gradients of a facts' loss over the weights: completeness, locality, the midpoint rule's
convergence, the halving of intervals where it misses, and a model left as it was."""

from __future__ import annotations

import copy

import pytest
import torch

from interference.facts import Fact
from interference.facts.examples import Examples
from interference.io.errors import InterferenceError
from interference.measures.attribution import (
    LossSplit,
    by_group,
    by_layer,
    loss_along_line,
    loss_change_by_layer,
    split_loss_change,
)
from interference.measures.fisher import answer_loss, loss_expansion
from interference.measures.updates import gradient_projection
from interference.models import load_model
from interference.models.parameter_groups import PARTITION, parameter_groups
from interference.models.weights import Snapshot
from interference.train import TrainConfig, train

CITIES = ["Oslo", "Lima", "Rome", "Kyiv", "Baku", "Doha"]


def _facts(prefix: str, n: int) -> list[Fact]:
    return [Fact(f"{prefix}{i}", "P36", CITIES[i % len(CITIES)], f"What is the capital of {prefix}{i}?")
            for i in range(n)]


@pytest.fixture(scope="module", params=["tiny-llama", "tiny-gpt2"])
def trained(request):
    """A tiny model before (a snapshot) and after real SFT steps, and held-out facts it never trained on."""
    model, tokenizer = load_model(request.param)
    start = Snapshot.of(model)
    train(model, tokenizer, TrainConfig(lr=3e-3, batch_size=4, epochs=3, seed=0), known=_facts("K", 8),
          unknown=_facts("U", 8), held=_facts("H", 4), progress=False)
    return start, model, Examples(tokenizer, _facts("H", 6)), tokenizer


def test_the_layers_add_up_to_the_loss_change_and_converge_with_the_steps(trained):
    start, model, held, _ = trained
    end = answer_loss(model, held)
    fresh = copy.deepcopy(model)
    start.load_into(fresh)
    change = end - answer_loss(fresh, held)
    coarse, fine = (loss_change_by_layer(start, model, held, steps=s, first=s) for s in (2, 16))  # the plain rule
    assert set(fine) == {"layer 0", "layer 1", "other"}
    residual = [abs(sum(a.values()) - change) for a in (coarse, fine)]
    assert residual[1] < 0.02 * abs(change)  # completeness, up to the midpoint rule's error
    assert residual[1] < residual[0] or residual[0] < 1e-6 * abs(change)  # which shrinks with the steps
    assert answer_loss(model, held) == end  # the model is left at its own weights


def test_a_change_in_one_layer_is_credited_to_that_layer_only():
    model, tokenizer = load_model("tiny-llama")
    held, start = Examples(tokenizer, _facts("H", 4)), Snapshot.of(model)
    names = [n for n, _ in model.named_parameters()]
    gradient = loss_expansion(model, held, names, gradient=True).gradient
    with torch.no_grad():  # a step up the held-out loss's gradient, in layer 1's MLP only
        for name, param in model.named_parameters():
            if name.startswith("model.layers.1.mlp."):
                param += 0.05 * gradient[name] / gradient[name].norm().clamp_min(1e-12)
    flags = {n: p.requires_grad for n, p in model.named_parameters()}
    split = split_loss_change(start, model, held)
    per_parameter = split.shares
    assert set(per_parameter) == {n for n in names if n.startswith("model.layers.1.mlp.")}
    shares, groups = by_layer(model, per_parameter), by_group(model, per_parameter)
    # a near-linear change needs no halving: the plain 8-point rule, bit for bit
    assert split.midpoints == 8 and shares == loss_change_by_layer(start, model, held, steps=8)
    assert shares["layer 0"] == 0 and shares["other"] == 0 and shares["layer 1"] > 0
    assert groups["ffn"] == pytest.approx(shares["layer 1"]) and sum(groups.values()) == groups["ffn"]
    first = gradient_projection(start, model, gradient)  # a small step: the first order is most of it
    assert shares["layer 1"] == pytest.approx(first, rel=0.2)
    assert {n: p.requires_grad for n, p in model.named_parameters()} == flags
    assert all(p.grad is None for p in model.parameters()) and not model.training


def test_where_the_loss_turns_steeply_the_split_halves_its_intervals_until_it_adds_up():
    """A long step down the held-out loss's gradient: the loss falls steeply at first and 8 even midpoints miss;
    halving the intervals that miss brings the shares back to the change within the budget."""
    model, tokenizer = load_model("tiny-llama")
    held, start = Examples(tokenizer, _facts("H", 4)), Snapshot.of(model)
    names = [n for n, _ in model.named_parameters()]
    gradient = loss_expansion(model, held, names, gradient=True).gradient
    norm = torch.sqrt(sum((gradient[n] ** 2).sum() for n in names))
    with torch.no_grad():
        for name, param in model.named_parameters():
            param -= 10 * gradient[name] / norm
    fresh = copy.deepcopy(model)
    start.load_into(fresh)
    change = answer_loss(model, held) - answer_loss(fresh, held)
    plain, capped, adaptive = (split_loss_change(start, model, held, steps=s) for s in (8, 12, 64))
    assert plain.change == capped.change == adaptive.change == pytest.approx(change, abs=1e-9)
    assert plain.midpoints == 8 and abs(plain.residual) > 0.1 * abs(change)  # the plain rule misses
    assert capped.midpoints == 12 and abs(capped.residual) < abs(plain.residual)  # 8, then two halvings, no more
    assert 8 < adaptive.midpoints < 64 and (adaptive.midpoints - 8) % 2 == 0  # it stopped within the tolerance
    assert abs(adaptive.residual) < 0.01 * abs(change)
    assert abs(sum(adaptive.shares.values()) + adaptive.residual - change) < 1e-9
    assert split_loss_change(start, model, held, steps=64, ends=(0.0, change)).change == change
    profile = loss_along_line(start, model, held, [0.0, 0.05, 0.5, 1.0])
    assert profile[0] == answer_loss(fresh, held) and profile[-1] == pytest.approx(answer_loss(model, held), abs=1e-6)
    assert profile[0] - profile[1] > 0.2 * (profile[0] - profile[-1])  # a fifth of the fall in the first twentieth
    assert answer_loss(model, held) - answer_loss(fresh, held) == change  # the model is left at its own weights


def test_a_frozen_parameter_that_moved_is_still_read():
    model, tokenizer = load_model("tiny-llama")
    held, start = Examples(tokenizer, _facts("H", 4)), Snapshot.of(model)
    with torch.no_grad():
        model.model.embed_tokens.weight.mul_(1.1)
    model.model.embed_tokens.weight.requires_grad_(False)
    shares = loss_change_by_layer(start, model, held, steps=4)
    assert shares["other"] != 0 and shares["layer 0"] == shares["layer 1"] == 0
    assert not model.model.embed_tokens.weight.requires_grad


def test_no_steps_is_an_error_and_no_change_has_no_shares():
    model, tokenizer = load_model("tiny-llama")
    held = Examples(tokenizer, _facts("H", 2))
    with pytest.raises(InterferenceError, match="attribution steps must be an integer >= 1"):
        loss_change_by_layer(Snapshot.of(model), model, held, steps=0)
    with pytest.raises(InterferenceError, match="attribution tolerance must be in"):
        loss_change_by_layer(Snapshot.of(model), model, held, tolerance=1.5)
    assert split_loss_change(Snapshot.of(model), model, held) == LossSplit({}, 0.0, 0)
    assert loss_change_by_layer(Snapshot.of(model), model, held) == {"layer 0": 0.0, "layer 1": 0.0, "other": 0.0}


def test_the_readmes_example_runs_as_written(trained):
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme.split("Tracing asks which *activations* carry the damage", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    start, tuned, held, tokenizer = trained
    fresh = copy.deepcopy(tuned)
    start.load_into(fresh)
    scope = {"start": fresh, "tuned": tuned, "tokenizer": tokenizer, "held_facts": _facts("H", 6)}
    exec(compile(code, "README.md", "exec"), scope)
    change = answer_loss(tuned, held) - answer_loss(fresh, held)
    assert sum(scope["shares"].values()) == pytest.approx(change, rel=0.05)


@pytest.mark.parametrize("name", ["tiny-llama", "tiny-gpt2"])
def test_every_parameter_falls_in_one_group(name):
    model, _ = load_model(name)
    groups = parameter_groups(model)
    assert list(groups) == [n for n, _ in model.named_parameters()] and set(groups.values()) <= set(PARTITION)
    assert {"attention", "ffn", "norms", "embeddings"} <= set(groups.values())
    assert all(groups[n] == "ffn" for n in groups if ".mlp." in n)
    shares = {n: 1.0 for n in groups}
    assert sum(by_group(model, shares).values()) == sum(by_layer(model, shares).values()) == len(groups)


def test_a_deep_models_layers_are_also_read_in_bands_of_depth():
    from interference.report.attribution import DEPTH, add_attribution_views, by_depth, depth_bands
    from interference.report.document import Report

    slots = [f"layer {i}" for i in range(8)] + ["other"]
    assert depth_bands(slots) == {"layers 0-2": slots[:3], "layers 3-5": slots[3:6], "layers 6-7": slots[6:8],
                                  "other": ["other"]}
    assert depth_bands(slots[:2] + ["other"]) == {"layer 0": ["layer 0"], "layer 1": ["layer 1"], "other": ["other"]}

    def record(name, seed, shares):
        return {"name": name, "seed": seed, "held_loss_start": 1.0, "held_loss_final": 1.0 + sum(shares),
                "held_loss_by_layer": dict(zip(slots, shares, strict=True)),
                "update_norms": dict(zip(slots, [abs(v) for v in shares], strict=True))}

    records = [record("sft", seed, [0.0] * 6 + [0.01 * (seed + 1), 0.02, 0.005]) for seed in range(3)]
    records += [record("self_distill", seed, [0.001] * 6 + [0.0, 0.0, 0.005]) for seed in range(3)]
    depth = by_depth(records)
    assert depth[0][DEPTH] == pytest.approx({"layers 0-2": 0.0, "layers 3-5": 0.0, "layers 6-7": 0.03, "other": 0.005})
    assert all(sum(r[DEPTH].values()) == pytest.approx(sum(r["held_loss_by_layer"].values())) for r in depth)
    report = Report("t", config={}, seeds=(0, 1, 2))
    add_attribution_views(report.section("where"), report.results, records, ("sft", "self_distill"))
    assert report.results[DEPTH]["leading"] == {"layers 6-7": 3, "other": 3}  # sft's rise sits in the last band
    titles = [t["title"] for t in report.to_dict()["tables"]]
    assert titles[0].startswith("Where in the network the held-out facts' loss changed, per depth band")
    assert any(t.startswith("Each depth band's share of the held-out loss's change minus sft's") for t in titles)
    assert report.results[f"{DEPTH}_signs"]["with_rise"]["layers 6-7"] == 3  # sft's loss rose on 3 records
    assert any(t.startswith("Per depth band: on how many records its share has the sign") for t in titles)
    shallow = Report("t", config={}, seeds=(0,))
    two = [{**r, "held_loss_by_layer": {"layer 0": 0.01, "layer 1": 0.0, "other": 0.0}} for r in records]
    add_attribution_views(shallow.section("where"), shallow.results, two, ("sft", "self_distill"))
    assert DEPTH not in shallow.results and "held_loss_by_layer" in shallow.results


def test_sign_counts_say_which_slots_go_with_each_direction_of_the_change():
    from interference.report.attribution import sign_counts, sign_text

    def record(seed, shares):
        return {"name": "sft", "seed": seed, "held_loss_start": 1.0, "held_loss_final": 1.0 + sum(shares.values()),
                "held_loss_by_layer": shares}

    records = [record(0, {"layer 0": -0.1, "layer 1": 0.3}), record(1, {"layer 0": 0.1, "layer 1": 0.2}),
               record(2, {"layer 0": -0.3, "layer 1": 0.1}), record(3, {"layer 0": 0.2, "layer 1": -0.2}),
               {"name": "sft", "seed": 4}]  # a record without the shares is left out
    counts = sign_counts(records)
    assert counts == {"rose": 2, "fell": 1, "with_rise": {"layer 0": 1, "layer 1": 2},
                      "with_fall": {"layer 0": 1, "layer 1": 0}}  # seed 3's change is 0: neither direction
    text = sign_text(counts)
    assert "where the held-out loss rose (2 records), layer 1 is above 0 on 2 (the fewest: 1)" in text
    assert "where the held-out loss fell (1 record), layer 0 is below 0 on 1 (the fewest: 0)" in text
    assert sign_counts([{"name": "sft", "seed": 0}]) is None

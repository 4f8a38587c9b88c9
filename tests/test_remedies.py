"""The remedies' parts: LoRA through PEFT, the diagonal Fisher and the EWC term, replay draws, weight interpolation,
and each of them (alone and with self-distillation) through the training loop."""

from __future__ import annotations

import copy
from statistics import fmean

import pytest
import torch

from interference.facts import Fact
from interference.facts.examples import Examples, replay_draw, training_rows
from interference.io.errors import InterferenceError
from interference.measures.fisher import answer_loss, diagonal_fisher, loss_expansion
from interference.measures.updates import fisher_distance, gradient_projection
from interference.models import load_model
from interference.models.adapters import add_lora, lora_modules, lora_parameters, merge_lora
from interference.models.parameter_groups import PARTITION
from interference.models.weights import Snapshot, interpolate
from interference.train import TrainConfig, train
from interference.train.losses import answer_cross_entropy, ewc_penalty, l2_distance

CITIES = ["Oslo", "Lima", "Rome", "Kyiv", "Baku", "Doha", "Riga", "Bern", "Apia", "Suva", "Male", "Lome"]


def _facts(prefix: str, n: int) -> list[Fact]:
    return [Fact(f"{prefix}{i}", "P36", CITIES[i % len(CITIES)], f"What is the capital of {prefix}{i}?")
            for i in range(n)]


@pytest.fixture
def tiny():
    return load_model("tiny-llama")


def test_lora_targets_follow_the_parameter_groups(tiny):
    model, _ = tiny
    assert lora_modules(model, "ffn@1") == [f"model.layers.1.mlp.{p}" for p in ("gate_proj", "up_proj", "down_proj")]
    assert len(lora_modules(model, "attention,ffn")) == 14  # q, k, v, o, gate, up, down in each of 2 layers
    with pytest.raises(InterferenceError, match="select no linear projection"):
        lora_modules(model, "norms")


@pytest.mark.parametrize("name", ["tiny-llama", "tiny-gpt2"])
def test_lora_starts_as_the_model_and_merges_into_the_same_function(name):
    model, _ = load_model(name)
    ids = torch.tensor([[5, 6, 7, 8, 9]])
    before = model(ids).logits
    torch.manual_seed(0)
    names, adapters = add_lora(model, "attention,ffn", rank=4, alpha=8)
    assert torch.allclose(model(ids).logits, before, atol=1e-6)  # B = 0: the adapters add nothing yet
    assert {n for n, p in model.named_parameters() if p.requires_grad} == set(adapters) == set(lora_parameters(model))
    with torch.no_grad():
        for n, p in model.named_parameters():
            if ".lora_B" in n:
                p.normal_(std=0.1)
    adapted = model(ids).logits
    assert not torch.allclose(adapted, before, atol=1e-4)
    merge_lora(model)
    assert not lora_parameters(model) and type(model.get_submodule(names[0])).__name__ in ("Linear", "Conv1D")
    assert torch.allclose(model(ids).logits, adapted, atol=1e-5)


def test_the_fisher_is_the_mean_of_per_example_squared_gradients(tiny):
    model, tokenizer = tiny
    examples = Examples(tokenizer, _facts("Land", 3))
    names = ["model.layers.0.mlp.down_proj.weight", "lm_head.weight"]
    fisher = diagonal_fisher(model, examples, names)
    named = dict(model.named_parameters())
    expected = [torch.zeros_like(named[n]) for n in names]
    for i in range(3):
        batch = examples.batch(torch.tensor([i]))
        loss = answer_cross_entropy(model(input_ids=batch.input_ids).logits, batch.labels)
        for total, grad in zip(expected, torch.autograd.grad(loss, [named[n] for n in names]), strict=True):
            total += grad**2 / 3
    for name, value in zip(names, expected, strict=True):
        assert torch.allclose(fisher[name], value, rtol=1e-5, atol=1e-12)
    assert all(p.grad is None for p in model.parameters())


def test_the_loss_expansion_predicts_a_small_steps_change_of_the_answer_loss(tiny):
    model, tokenizer = tiny
    examples = Examples(tokenizer, _facts("Land", 5))
    names = [n for n, _ in model.named_parameters()]
    expansion = loss_expansion(model, examples, names)
    assert all(torch.equal(expansion.fisher[n], f) for n, f in diagonal_fisher(model, examples, names).items())
    singles = [answer_loss(model, examples, batch_size=1)]
    start, before = Snapshot.of(model), answer_loss(model, examples, batch_size=4)  # padded batches: the same loss
    assert before == pytest.approx(singles[0], rel=1e-5)
    with torch.no_grad():  # a step down the gradient, small enough that the first order dominates
        for n, p in model.named_parameters():
            p -= 1e-2 * expansion.gradient[n] / max(g.norm() for g in expansion.gradient.values())
    change, first = answer_loss(model, examples) - before, gradient_projection(start, model, expansion.gradient)
    second = fisher_distance(start, model, expansion.fisher) / 2
    assert first < 0 and change == pytest.approx(first, rel=0.05)  # down the gradient the loss falls, as predicted
    assert 0 < second < abs(first)
    assert all(p.grad is None for p in model.parameters())


def test_the_ewc_penalty_weights_squared_distances_by_the_fisher():
    params = [torch.tensor([1.0, 2.0]), torch.tensor([[3.0]])]
    anchors = [torch.tensor([0.0, 0.0]), torch.tensor([[1.0]])]
    fisher = [torch.tensor([0.5, 2.0]), torch.tensor([[10.0]])]
    assert ewc_penalty(params, anchors, fisher).item() == pytest.approx(0.5 * 1 + 2 * 4 + 10 * 4)
    ones = [torch.ones_like(p) for p in params]
    assert ewc_penalty(params, anchors, ones).item() == pytest.approx(l2_distance(params, anchors).item())
    with pytest.raises(ValueError, match="one anchor and one Fisher"):
        ewc_penalty(params, anchors, fisher[:1])


def test_replay_draws_make_the_fraction_of_a_batch_and_repeat_with_the_seed():
    pool = torch.arange(100, 110)
    drawn = replay_draw(pool, 12, 0.25, seed=0, epoch=1, step=3)
    assert len(drawn) == 4 and len(set(drawn.tolist())) == 4 and set(drawn.tolist()) <= set(pool.tolist())
    assert torch.equal(drawn, replay_draw(pool, 12, 0.25, seed=0, epoch=1, step=3))
    assert not torch.equal(drawn, replay_draw(pool, 12, 0.25, seed=0, epoch=1, step=4))
    assert len(replay_draw(pool[:2], 16, 0.5, seed=0, epoch=1, step=1)) == 16  # a small pool is drawn again
    assert len(replay_draw(pool, 16, 0.0, seed=0, epoch=1, step=1)) == 0


def test_training_rows_find_trained_replay_facts_and_append_the_others(tiny):
    _, tokenizer = tiny
    known, unknown, other = _facts("K", 3), _facts("U", 2), _facts("R", 2)
    splits = {"known": known, "unknown": unknown}
    examples, n, pool = training_rows(tokenizer, splits, ("known", "unknown"), known)
    assert (len(examples), n, pool.tolist()) == (5, 5, [0, 1, 2])
    examples, n, pool = training_rows(tokenizer, splits, ("unknown",), known + other)
    assert (len(examples), n, pool.tolist()) == (7, 2, [2, 3, 4, 5, 6])
    examples, n, pool = training_rows(tokenizer, splits, ("known", "unknown"))
    assert (len(examples), n, len(pool)) == (5, 5, 0)


def test_interpolation_walks_from_the_start_to_the_end(tiny):
    model, _ = tiny
    start = Snapshot.of(model)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    end = Snapshot.of(model)
    for alpha in (0.0, 0.3, 1.0):
        mixed = interpolate(start, end, alpha)
        assert all(torch.allclose(mixed.params[n], start.params[n] + alpha) for n in start.params)


def test_remedy_options_are_checked_before_any_work():
    with pytest.raises(InterferenceError, match="LoRA trains adapters only"):
        TrainConfig(method="l2", lora_rank=4)
    with pytest.raises(InterferenceError, match="ewc_lambda anchors at the snapshot"):
        TrainConfig(ewc_lambda=1.0, start="base")
    with pytest.raises(InterferenceError, match="replay_fraction"):
        TrainConfig(replay_fraction=0.95)
    with pytest.raises(InterferenceError, match="unknown parameter group"):
        TrainConfig(lora_rank=4, lora_targets="heads")


def _run(tiny, **options):
    model, tokenizer = copy.deepcopy(tiny[0]), tiny[1]
    config = TrainConfig(lr=3e-3, batch_size=4, epochs=2, seed=0, **options)
    return train(model, tokenizer, config, known=_facts("K", 8), unknown=_facts("U", 8), held=_facts("H", 4),
                 progress=False), model


@pytest.mark.parametrize("options", [
    {"method": "sft", "lora_rank": 4},
    {"method": "self_distill", "lora_rank": 4, "lora_targets": "ffn"},
    {"method": "sft", "ewc_lambda": 100.0},
    {"method": "self_distill", "ewc_lambda": 100.0},
    {"method": "sft", "replay_fraction": 0.5},
    {"method": "self_distill", "replay_fraction": 0.5},
], ids=lambda o: "+".join(f"{k}={v}" for k, v in o.items()))
def test_each_remedy_trains_alone_and_with_self_distillation(tiny, options):
    result, model = _run(tiny, **options)
    plain = [n for n, _ in tiny[0].named_parameters()]
    assert [n for n, _ in model.named_parameters()] == plain  # adapters merged: the plain model comes back
    assert all(torch.isfinite(p).all() for p in model.parameters())
    moved = any(not torch.equal(a, b) for a, b in zip(model.parameters(), tiny[0].parameters(), strict=True))
    assert moved and result.epochs == 2
    if "lora_rank" in options:
        assert result.adapters and all(".lora_" in n for n in result.trainable)
    if "ewc_lambda" in options:
        assert result.history[-1].ewc is not None and result.history[-1].ewc > 0
    again, _ = _run(tiny, **options)
    assert again.history[-1].correct == result.history[-1].correct and again.history[-1].loss == result.history[-1].loss


def test_lora_lr_is_the_adapters_learning_rate_and_the_snapshot_keeps_lr(tiny, monkeypatch):
    made = []
    adamw = torch.optim.AdamW

    def recording(params, lr, **options):
        made.append((lr, [p.shape for p in params]))
        return adamw(params, lr, **options)

    monkeypatch.setattr(torch.optim, "AdamW", recording)
    result, _ = _run(tiny, method="sft", lora_rank=4, lora_lr=5e-2)
    (snapshot_lr, snapshot_shapes), (adapter_lr, adapter_shapes) = made
    assert snapshot_lr == 3e-3 and len(snapshot_shapes) == len(list(tiny[0].parameters()))  # every weight, at lr
    assert adapter_lr == 5e-2 and len(adapter_shapes) == len(result.trainable)  # the adapters, at lora_lr
    made.clear()
    _run(tiny, method="sft", lora_lr=5e-2)  # without adapters lora_lr does nothing
    assert [lr for lr, _ in made] == [3e-3, 3e-3]  # the snapshot's and the run's


def test_the_remedies_give_lora_lr_to_the_lora_runs_only():
    from interference.studies.remedies import RemedySettings
    from interference.studies.setup import ExperimentConfig

    config, settings = ExperimentConfig.quick_preset(), RemedySettings(lora_lr=1e-3)
    assert settings.overrides("self_distill+lora", config)["lora_lr"] == 1e-3
    assert "lora_lr" not in settings.overrides("replay", config)
    with pytest.raises(InterferenceError, match="lora_lr"):
        RemedySettings(lora_lr=0.0)


def test_a_method_name_sets_each_parts_strength_and_has_one_spelling():
    from interference.studies.remedies import RemedySettings
    from interference.studies.remedy_methods import check_methods, family, method_name, method_parts
    from interference.studies.setup import ExperimentConfig

    assert method_parts("self_distill:4+ewc:1e6") == [("self_distill", 4.0), ("ewc", 1e6)]
    assert method_name("ewc:1000000") == method_name("ewc:1E6") == "ewc:1e6"
    assert method_name("replay:0.50") == "replay:0.5" and method_name("ewc:0.00002") == "ewc:2e-5"
    assert family("self_distill:4+ewc:1e6") == "self_distill+ewc"
    # one name per method, in the study's order: each method's strengths after its default, weakest first
    assert check_methods(["ewc:1e8", "sft", "ewc:1e6", "ewc", "self_distill+ewc:1e6", "ewc:1000000",
                          "self_distill:4"]) == ("sft", "self_distill:4", "ewc", "ewc:1e6", "ewc:1e8",
                                                 "self_distill+ewc:1e6")
    config, settings = ExperimentConfig.quick_preset(n_known=20, n_unknown=30), RemedySettings()
    assert settings.overrides("self_distill:4+ewc:1e6", config) == {"method": "self_distill", "kd_lambda": 4.0,
                                                                   "ewc_lambda": 1e6}
    assert settings.overrides("ewc", config)["ewc_lambda"] == 20 / (2 * 50)  # the Laplace weight, unless named
    assert settings.overrides("replay:0.5", config) == {"method": "sft", "replay_fraction": 0.5}
    assert settings.strengths("self_distill+replay", config) == {"kd_lambda": config.train.kd_lambda,
                                                                 "replay_fraction": 0.25}
    assert settings.strengths("sft", config) == {}
    config.train_config(0, **settings.overrides("self_distill:4+ewc:1e6", config))  # a valid TrainConfig
    # the control: SFT with another batch order, right after sft, with no strength and in no combination
    assert check_methods(["self_distill", "reshuffled", "sft"]) == ("sft", "reshuffled", "self_distill")
    assert settings.overrides("reshuffled", config) == {"method": "sft", "order_shift": 1000}
    assert settings.overrides("frozen-unembedding", config) == {"method": "sft", "freeze": "unembedding"}
    assert check_methods(["frozen-unembedding", "sft", "reshuffled"]) == ("sft", "reshuffled", "frozen-unembedding")
    for bad in ("reshuffled:2", "self_distill+reshuffled"):
        with pytest.raises(InterferenceError):
            check_methods([bad])


def test_the_strength_table_pairs_every_strength_of_a_remedy_by_seed():
    from interference.studies.remedies import RemediesStudy, RemedySettings, strength_rows
    from interference.studies.setup import ExperimentConfig

    held = {"sft": (0.5, 0.7), "self_distill": (0.6, 0.8), "ewc": (0.5, 0.7), "ewc:1e8": (0.9, 0.8),
            "replay": (0.4, 0.6)}
    records = [{"name": m, "seed": s, "held_acc_final": h[s], "new_acc": 0.9, "epochs": 3 + s, "drift": 0.1,
                "fisher_distance": 1e-4 * (s + 1), "loss_terms": {"ce": 0.5, **({"ewc": 1e-8 * (s + 1)}
                                                                              if m.startswith("ewc") else {})}}
               for m, h in held.items() for s in (0, 1)]
    config = ExperimentConfig.quick_preset(seeds=(0, 1))
    study = RemediesStudy(config, tuple(held), RemedySettings(), 0, records)
    rows = strength_rows(study, records)
    assert [r["method"] for r in rows] == ["ewc", "ewc:1e8"]  # replay ran at one strength only
    assert rows[0]["strength"] == f"ewc_lambda {RemedySettings().ewc_weight(config):.3g}"
    assert rows[1]["strength"] == "ewc_lambda 1e8" and rows[1]["epochs"] == 3.5
    assert rows[1]["held-out − sft"].startswith("+0.250 [") and rows[1]["held-out − self_distill"].startswith("+0.150")
    assert rows[0]["held-out − sft"] == "+0.000 [+0.000, +0.000]"
    assert rows[1]["Σ F(θ − θ⁰)², median"] == pytest.approx(1.5e-4)  # the median of two seeds: their mean
    assert rows[1]["EWC term / CE, median"] == pytest.approx(1e8 * 1.5e-8 / 0.5)  # λ·Σ F(θ − θ⁰)² / CE
    assert rows[0]["EWC term / CE, median"] == pytest.approx(RemedySettings().ewc_weight(config) * 1.5e-8 / 0.5)



def test_the_fisher_table_shows_d_helds_distance_only_where_records_have_it():
    from interference.report.fisher import fisher_rows

    records = [{"name": m, "seed": s, "fisher_distance": d * (s + 1), "held_fisher_distance": h * (s + 1),
                "loss_terms": {"ce": 0.5}} for m, d, h in (("sft", 2.0, 1.0), ("ewc", 1.0, 3.0)) for s in (0, 1, 2)]
    records[-1]["held_fisher_distance"] = 0.5  # ewc's seed 2 moved less in D_held's directions than sft's
    rows = {r["method"]: r for r in fisher_rows(records, ("sft", "ewc"))}
    assert rows["ewc"]["Σ F(θ − θ⁰)², median"] == 2.0 and rows["ewc"]["below sft's (seeds)"] == "3 of 3"
    assert rows["ewc"]["held: Σ F(θ − θ⁰)², median"] == 3.0 and rows["ewc"]["held: below sft's (seeds)"] == "1 of 3"
    assert "held: below sft's (seeds)" not in rows["sft"] and rows["sft"]["last epoch's CE, median"] == 0.5
    older = [{k: v for k, v in r.items() if k != "held_fisher_distance"} for r in records]  # runs before D_held's
    assert not any(k.startswith("held:") for row in fisher_rows(older, ("sft", "ewc")) for k in row)

def test_the_held_distance_ranking_correlates_distance_with_drop_within_each_seed():
    from interference.report.fisher import held_distance_ranking, ranking_text

    def record(name, seed, distance, final):
        return {"name": name, "seed": seed, "held_fisher_distance": distance, "held_acc_start": 0.9,
                "held_acc_final": final}

    # seed 0: the farther a method moved, the more it forgot (ρ 1); seed 1: the reverse (ρ −1); seed 2: ρ 0.5;
    # seed 3: every drop the same (ρ undefined, left out); seed 4: two methods only (left out)
    records = [record(m, 0, d, f) for m, d, f in (("a", 1e-4, 0.85), ("b", 1e-3, 0.80), ("c", 1e-2, 0.70))]
    records += [record(m, 1, d, f) for m, d, f in (("a", 1e-4, 0.70), ("b", 1e-3, 0.80), ("c", 1e-2, 0.85))]
    records += [record(m, 2, d, f) for m, d, f in (("a", 1e-4, 0.85), ("b", 1e-3, 0.70), ("c", 1e-2, 0.80))]
    records += [record(m, 3, d, 0.8) for m, d in (("a", 1e-4), ("b", 1e-3), ("c", 1e-2))]
    records += [record(m, 4, d, f) for m, d, f in (("a", 1e-6, 0.8), ("b", 1.0, 0.7))]
    records.append({"name": "d", "seed": 0, "held_acc_start": 0.9, "held_acc_final": 0.1})  # no distance: ignored
    ranking = held_distance_ranking(records)
    assert [p["seed"] for p in ranking["per_seed"]] == [0, 1, 2, 3]
    assert [p["rho"] for p in ranking["per_seed"]] == pytest.approx([1.0, -1.0, 0.5, None])
    assert ranking["mean"] == pytest.approx(0.5 / 3) and (ranking["above_zero"], ranking["seeds"]) == (2, 3)
    assert ranking["orders"] == pytest.approx(6.0) and -1 < ranking["pooled"] < 1
    assert "ρ 0.17 on average, above 0 on 2 of 3 seeds" in ranking_text(ranking)
    assert held_distance_ranking([{k: v for k, v in r.items() if k != "held_fisher_distance"} for r in records]) is None


def test_the_taylor_table_sets_the_held_out_losss_rise_beside_its_expansion():
    from interference.report.fisher import taylor_fit, taylor_rows, taylor_text

    def record(name, seed, first, distance, rise):
        return {"name": name, "seed": seed, "held_gradient_term": first, "held_fisher_distance": distance,
                "held_loss_start": 1.0, "held_loss_final": 1.0 + rise, "held_acc_start": 0.9,
                "held_acc_final": 0.9 - rise}

    records = [record("sft", s, 0.1 * (s + 1), 0.2 * (s + 1), 0.4 * (s + 1)) for s in range(3)]  # predicts half
    records += [record("ewc", s, 0.0, 0.02, -0.1 * (s + 1)) for s in range(2)]  # fell: no share; ρ from tied ranks
    records.append(record("ewc", 2, 0.5, 0.02, -0.3))  # fell where the gradient says it rises
    records.append({"name": "old", "seed": 0, "held_fisher_distance": 1.0})  # before the terms were recorded
    rows = {row["method"]: row for row in taylor_rows(records, ("sft", "ewc", "old"))}
    assert set(rows) == {"sft", "ewc"} and rows["sft"]["seeds"] == 3
    assert (rows["sft"]["seeds where it rose"], rows["ewc"]["seeds where it rose"]) == (3, 0)
    assert rows["sft"]["its rise L − L⁰"] == pytest.approx(0.8) and rows["sft"]["first order g·Δθ"] == 0.2
    assert rows["sft"]["second order ½ Σ F(Δθ)²"] == pytest.approx(0.2)
    assert rows["sft"]["Taylor prediction"] == pytest.approx(0.4)
    fit = taylor_fit(records)
    assert (fit["records"], fit["rose"]) == (6, 3) and fit["share_of_rise"] == pytest.approx(0.5)
    assert fit["share_of_rise_second_order"] == pytest.approx(0.25) and fit["rho_accuracy_drop"] == pytest.approx(1)
    assert fit["rho"] == pytest.approx(7 / (17 * 17.5) ** 0.5) and "a median 0.50 of the rise" in taylor_text(fit)
    assert fit["first_order_sign"] == 3 and "sign of the change on 3 of 6 records" in taylor_text(fit)
    assert taylor_fit(records[-1:]) is None and taylor_rows(records[-1:], ("old",)) == []


def test_the_layer_table_says_where_the_held_out_loss_changed():
    from interference.report.attribution import (
        attribution_differences,
        attribution_rows,
        attribution_summary,
        attribution_text,
    )

    def record(name, seed, shares):
        return {"name": name, "seed": seed, "held_loss_start": 1.0, "held_loss_final": 1.0 + sum(shares) + 0.01,
                "held_loss_by_layer": dict(zip(("layer 0", "layer 1", "other"), shares, strict=True))}

    records = [record("sft", s, (0.1, 0.3 + s / 10, 0.0)) for s in range(3)]  # rose, mostly in layer 1
    for r in records[:2]:
        r["update_norms"] = {"layer 0": 0.1, "layer 1": 0.2 * r["seed"], "other": 0.0}  # layer 1 moved most on seed 1
    records.append(record("ewc", 0, (-0.2, 0.1, 0.0)))  # fell, mostly in layer 0
    records.append({"name": "old", "seed": 0, "held_loss_start": 1.0, "held_loss_final": 1.2})  # no shares
    rows = {row["method"]: row for row in attribution_rows(records, ("sft", "ewc", "old"))}
    assert set(rows) == {"sft", "ewc"} and rows["sft"]["layer 1"] == pytest.approx(0.4)
    assert rows["sft"]["L − L⁰"] == pytest.approx(0.51) and rows["sft"]["residual"] == pytest.approx(0.01)
    summary = attribution_summary(records)
    assert summary["leading"] == {"layer 1": 3, "layer 0": 1} and summary["records"] == 4
    assert summary["most_moved"] == 1
    assert "on 1 of them it is the slot whose weights moved most" in attribution_text(summary)
    assert summary["residual_max"] == pytest.approx(0.01 / 0.3)  # ewc: shares −0.2 and +0.1, change −0.09
    assert summary["residual"] == pytest.approx((0.01 / 0.4 + 0.01 / 0.5) / 2)  # sft seeds 0 and 1 in the middle
    text = attribution_text(summary)
    assert "layer 1 on 3, layer 0 on 1 of 4 records" in text and "(at most 3.3 %), the midpoint rule's error." in text
    for r, spent in zip(records[:3], (8, 14, 8), strict=True):  # splits that record the midpoints they spent
        r["held_loss_midpoints"] = spent
    assert attribution_summary(records)["midpoints"] == [8, 14]
    assert attribution_text(attribution_summary(records)).endswith(
        "rule's error, with 8 to 14 midpoints on the 3 of 4 records that name them.")
    records[3]["held_loss_midpoints"] = 10
    assert attribution_text(attribution_summary(records)).endswith("rule's error, with 8 to 14 midpoints.")
    del records[3]["held_loss_midpoints"]
    assert attribution_summary(records[-1:]) is None and attribution_rows(records[-1:], ("old",)) == []
    records.append(record("ewc", 1, (-0.1, 0.1, 0.1)))
    differences = attribution_differences(records, ("sft", "ewc", "old"))
    assert [row["method"] for row in differences] == ["ewc"]  # paired with sft's seeds 0 and 1
    assert differences[0]["layer 0"].startswith("-0.2500 [") and differences[0]["layer 0"].endswith("0 of 2 above 0")
    assert differences[0]["other"].startswith("+0.0500 [") and differences[0]["other"].endswith("1 of 2 above 0")
    assert attribution_differences(records[3:], ("ewc",)) == []  # no sft to pair with


def test_a_strong_ewc_keeps_the_weights_nearer_the_snapshot_than_sft(tiny):
    sft, sft_model = _run(tiny, method="sft")
    ewc, ewc_model = _run(tiny, method="sft", ewc_lambda=1e6)
    start = copy.deepcopy(tiny[0])

    def moved(model):
        return sum((a - b).pow(2).sum().item() for a, b in zip(model.parameters(), start.parameters(), strict=True))

    assert moved(ewc_model) < moved(sft_model)


# The study: every method from the same start, records the reports read, and the answers by the stated rules.

def test_the_remedies_study_runs_every_method_from_the_same_start(world, tmp_path):
    from interference.report import validate_results
    from interference.report.attribution import attribution_summary
    from interference.report.fact_losses import fact_loss_summary
    from interference.report.fact_pairs import fact_pair_summary
    from interference.report.fisher import held_distance_ranking, taylor_fit, taylor_rows
    from interference.studies.remedies import RemedySettings, remedies_report, run_remedies
    from interference.studies.setup import ExperimentConfig

    config = ExperimentConfig.quick_preset(n_known=16, n_unknown=16, n_held=16, epochs=2, seeds=(0, 1))
    methods = ("sft", "reshuffled", "frozen-unembedding", "self_distill", "lora", "replay", "ewc", "ewc:1e8",
               "self_distill+lora", "wise-ft")
    every = "+".join(PARTITION)
    study = run_remedies(config, methods, RemedySettings(lora_rank=2, alphas=(0.0, 0.5, 1.0),
                                                         swaps=("unembedding", "attention+ffn", every),
                                                         part_groups=("ffn", every)),
                         base=world, progress=False)
    assert [(r["name"], r["seed"]) for r in study.records] == [(m, s) for m in methods for s in (0, 1)]
    for seed in (0, 1):
        starts = {r["held_acc_start"] for r in study.records if r["seed"] == seed}
        assert len(starts) == 1  # the same start for every method of a seed
    sweep = [p for p in study.sweep if p["seed"] == 0]
    assert [p["alpha"] for p in sweep] == [0.0, 0.5, 1.0]
    sft = next(r for r in study.records if r["name"] == "sft" and r["seed"] == 0)
    assert sweep[-1]["held_acc"] == sft["held_acc_final"]  # α = 1 is the SFT model itself
    assert sweep[0]["held_acc"] == sft["held_acc_start"]  # α = 0 is the snapshot, where every method starts
    assert study.adapters and all(r.get("update_norms") for r in study.records)
    assert all(len(r["held_relations"]) == 16 and len(r["new_relations"]) == 16 for r in study.records)
    traced = [r for r in study.records if r["traced_facts"]]
    assert traced and all(len(r["subject_recovery"]) == world.config.n_layers for r in traced)
    report = remedies_report(study)
    path = report.write(tmp_path / "r")
    written = __import__("json").loads((path / "results.json").read_text())
    validate_results(written)
    fisher = next(t["rows"] for t in written["tables"] if (t.get("title") or "").startswith("How far each method"))
    row = next(r for r in fisher if r["method"] == "ewc:1e8")
    assert row["below sft's (seeds)"] in ("1 of 2", "2 of 2") and "below sft's (seeds)" not in fisher[0]
    assert {row["condition"] for row in report.results["by_relation"]} == set(methods)
    questions = {(a["question"], a["method"]) for a in report.results["answers"]}
    assert ("beats sft", "lora") in questions and ("beats both of its parts", "self_distill+lora") in questions
    reached = all(r["new_acc"] >= 0.9 for r in study.records if r["name"] == "sft")
    assert report.results["paired"] and (report.results["verdict"] is not None) == reached
    assert [row["method"] for row in report.results["strengths"]] == ["ewc", "ewc:1e8"]
    drift = {r["name"]: r["drift"] for r in study.records if r["seed"] == 0}
    assert drift["ewc:1e8"] < drift["ewc"]  # the named strength is the one trained
    distance = {r["name"]: r["fisher_distance"] for r in study.records if r["seed"] == 0}
    assert distance["ewc:1e8"] < distance["sft"] and all(d > 0 for d in distance.values())
    held = {r["name"]: r["held_fisher_distance"] for r in study.records if r["seed"] == 0}
    assert all(d > 0 for d in held.values())  # a quadratic form: α 0.5 of SFT's step is a quarter of its distance
    assert held["wise-ft"] == pytest.approx(held["sft"] / 4, rel=1e-3)
    assert row["held: below sft's (seeds)"] in ("0 of 2", "1 of 2", "2 of 2")
    assert written["results"]["held_fisher_ranking"] == held_distance_ranking(study.records)  # in the report
    first = {r["name"]: r["held_gradient_term"] for r in study.records if r["seed"] == 0}
    assert first["wise-ft"] == pytest.approx(first["sft"] / 2, rel=1e-3)  # linear in the step: α 0.5 gives half
    assert len({r["held_loss_start"] for r in study.records if r["seed"] == 0}) == 1  # one start per seed
    sft = next(r for r in study.records if r["name"] == "sft" and r["seed"] == 0)
    assert sft["held_loss_final"] != sft["held_loss_start"]
    for r in study.records:  # each fact's loss, to 5 decimals, averages to the recorded mean
        for end in ("start", "final"):
            assert len(r[f"held_losses_{end}"]) == 16
            assert sum(r[f"held_losses_{end}"]) / 16 == pytest.approx(r[f"held_loss_{end}"], abs=1e-5)
    assert written["results"]["held_fact_losses"] == fact_loss_summary(study.records, methods)
    assert written["results"]["held_fact_losses"]["methods"]["sft"]["seeds"] == 2
    pairs = written["results"]["held_fact_pairs"]  # each method beside sft, fact by fact, on both seeds
    assert pairs == fact_pair_summary(study.records, methods, "sft") and list(pairs["methods"]) == list(methods[1:])
    assert all(p["answer_seeds"] == 2 and p["loss_seeds"] == 2 for p in pairs["methods"].values())
    assert written["results"]["held_taylor_fit"] == taylor_fit(study.records)
    assert [row["method"] for row in taylor_rows(study.records, methods)] == list(methods)
    for r in study.records:  # the layers' shares of the held-out loss's change add up to it (8 to 32 midpoints)
        assert set(r["held_loss_by_layer"]) == set(r["update_norms"])
        assert 8 <= r["held_loss_midpoints"] <= 32 and r["held_loss_midpoints"] % 2 == 0
        assert sum(r["held_loss_by_layer"].values()) == pytest.approx(r["held_loss_final"] - r["held_loss_start"],
                                                                      rel=0.05, abs=1e-4)
    assert written["results"]["held_loss_by_layer"] == attribution_summary(study.records)
    for r in study.records:  # one set of per-parameter shares, summed two ways
        assert sum(r["held_loss_by_group"].values()) == pytest.approx(sum(r["held_loss_by_layer"].values()), abs=1e-9)
    assert written["results"]["held_loss_by_group"] == attribution_summary(study.records, "held_loss_by_group")
    assert "most_moved" not in written["results"]["held_loss_by_group"]
    terms = {r["name"]: r["loss_terms"] for r in study.records if r["seed"] == 0 and r["name"] != "wise-ft"}
    assert set(terms["ewc"]) == {"ce", "ewc"} and set(terms["self_distill"]) == {"ce", "kl"}
    assert set(terms["sft"]) == {"ce"}
    aligned = {r["name"]: r.get("sft_alignment") for r in study.records if r["seed"] == 0}
    assert aligned["sft"] is None and all(aligned[m] for m in methods[1:])  # every method after sft, against it
    assert aligned["wise-ft"]["cosine"]["all"] == pytest.approx(1.0, abs=1e-5)  # SFT's own step at α 0.5
    assert aligned["wise-ft"]["scale"]["all"] == pytest.approx(0.5, abs=1e-4)
    assert aligned["ewc:1e8"]["norm_ratio"]["all"] < aligned["ewc"]["norm_ratio"]["all"]
    assert aligned["frozen-unembedding"]["scale"]["unembedding"] is None  # it did not move: nothing to align
    assert aligned["frozen-unembedding"]["scale"]["ffn"] is not None
    assert 0 < aligned["reshuffled"]["cosine"]["all"] < 1 - 1e-6  # another order: another update, from one start
    for r in study.records:  # swapping every group into SFT's model gives the method's own model back
        if r["name"] not in ("sft", "wise-ft"):
            assert set(r["sft_swaps"]) == {"unembedding", "attention+ffn", every}
            assert r["sft_swaps"][every] == {"held_acc": r["held_acc_final"], "new_acc": r["new_acc"]}, r["name"]
    trained = [m for m in methods if m not in ("sft", "wise-ft")]
    for r in study.records:  # each update split against SFT's: its scale, each held-out fact's loss at both parts
        if r["name"] not in trained:
            assert "sft_parts" not in r
            continue
        parts = r["sft_parts"]
        assert parts["scale"] == r["sft_alignment"]["scale"]["all"]
        assert len(parts["held_losses_along"]) == len(parts["held_losses_sideways"]) == 16
        assert parts["new_loss"]["final"] < parts["new_loss"]["start"], r["name"]  # it learned the new facts
        assert parts["new_loss"]["reference"] < parts["new_loss"]["start"]  # and so did SFT
        assert ("matched" in parts) == (r["name"] != "reshuffled")  # the control's step, set in each later place
        whole = parts["by_group"][every]  # the step in every group: the method itself, and the control's on top
        assert whole["held"] == pytest.approx(fmean(r["held_losses_final"]), abs=1e-5)
        assert ("matched_held" in whole) == ("matched" in parts)
        if "matched" in parts:
            on_top = parts["matched"]["held_losses_on_top"]
            assert len(on_top) == 16 and parts["matched"]["factor"] > 0
            assert whole["matched_held"] == pytest.approx(fmean(on_top), abs=1e-5)
    for seed in (0, 1):  # one start per seed for D_unknown's loss too
        assert len({r["sft_parts"]["new_loss"]["start"] for r in study.records if r["seed"] == seed
                    and r["name"] in trained}) == 1
    assert [row["method"] for row in written["results"]["update_parts"]["summary"]] == trained
    shrink = written["results"]["shrink"]  # wise-ft and sft lie on the curve: the others are measured against it
    assert [row["method"] for row in shrink["frontier"]] == [m for m in methods if m not in ("sft", "wise-ft")]
    assert [row["method"] for row in shrink["alignment"]] == list(methods[1:])
    assert [(r["method"], r["swapped"]) for r in shrink["swaps"]][:3] == [("reshuffled", "unembedding"),
                                                                         ("reshuffled", "attention+ffn"),
                                                                         ("reshuffled", every)]
    assert all(r["share_of_gain"] is None or r["swapped"] != every or r["share_of_gain"] == pytest.approx(1.0)
               for r in shrink["swaps"])  # every group swapped carries all of a method's gain

"""Parameter groups and layer selections resolved per architecture; frozen parameters never move."""

from __future__ import annotations

import json
import random

import pytest
import torch

from interference.facts import Fact
from interference.io.errors import InterferenceError
from interference.io.run_folder import STATE
from interference.models import load_model
from interference.models.parameter_groups import parse_selection
from interference.train import TrainConfig, resolve_trainable, train


@pytest.fixture(scope="module")
def models():
    return {name: load_model(f"tiny-{name}")[0] for name in ("llama", "qwen2", "gpt2")}


ATTENTION = {"llama": ".self_attn.", "qwen2": ".self_attn.", "gpt2": ".attn."}
FFN = {"llama": ".mlp.", "qwen2": ".mlp.", "gpt2": ".mlp."}


@pytest.mark.parametrize("text", ["heads", "attention@", "ffn@x", "embeddings@1", "ffn@3-1", ""])
def test_bad_selections_are_one_line_errors(text):
    with pytest.raises(InterferenceError) as err:
        parse_selection(text)
    assert "\n" not in str(err.value)


def test_config_validates_the_selection():
    with pytest.raises(InterferenceError, match="unknown parameter group 'mlp'"):
        TrainConfig(freeze="mlp")
    with pytest.raises(InterferenceError, match="not both"):
        TrainConfig(freeze="ffn", train_only="attention")


@pytest.mark.parametrize("arch", ["llama", "qwen2", "gpt2"])
def test_attention_only_and_ffn_only(models, arch):
    model = models[arch]
    attention = resolve_trainable(model, train_only="attention")
    assert attention and all(ATTENTION[arch] in n for n in attention)
    every = [n for n, _ in model.named_parameters()]
    assert set(attention) == {n for n in every if ATTENTION[arch] in n}
    if arch == "qwen2":  # Qwen2 has q/k/v biases: they are attention parameters too
        assert any(n.endswith("q_proj.bias") for n in attention)
    ffn = resolve_trainable(model, train_only="ffn")
    assert set(ffn) == {n for n in every if FFN[arch] in n}
    assert set(resolve_trainable(model, freeze="ffn")) == set(every) - set(ffn)


@pytest.mark.parametrize("arch", ["llama", "qwen2"])
def test_single_attention_matrices_partition_the_attention(models, arch):
    model = models[arch]
    parts = {m: resolve_trainable(model, train_only=f"attention_{m}") for m in "qkvo"}
    for matrix, names in parts.items():
        assert names and all(f".{matrix}_proj." in n for n in names)
    assert sorted(sum(parts.values(), [])) == sorted(resolve_trainable(model, train_only="attention"))
    assert "model.layers.1.self_attn.v_proj.weight" in resolve_trainable(model, train_only="attention_v@1")
    assert len(resolve_trainable(model, train_only="attention_v@1")) == len(parts["v"]) // 2
    if arch == "qwen2":  # the biases go with their matrix
        assert "model.layers.0.self_attn.k_proj.bias" in parts["k"]


def test_a_fused_qkv_cannot_be_split(models):
    model = models["gpt2"]
    with pytest.raises(InterferenceError, match=r"one matrix \(c_attn\): attention_q cannot be selected alone"):
        resolve_trainable(model, train_only="attention_q")
    assert resolve_trainable(model, train_only="attention_o") == [
        f"transformer.h.{i}.attn.c_proj.{kind}" for i in range(2) for kind in ("weight", "bias")]


@pytest.mark.parametrize("arch", ["llama", "gpt2"])
def test_layer_selections(models, arch):
    model = models[arch]
    layers = "model.layers" if arch != "gpt2" else "transformer.h"
    ffn1 = resolve_trainable(model, train_only="ffn@1")
    assert ffn1 and all(n.startswith(f"{layers}.1.") and FFN[arch] in n for n in ffn1)
    block0 = resolve_trainable(model, train_only="all@0")
    assert set(block0) == {n for n, _ in model.named_parameters() if n.startswith(f"{layers}.0.")}
    both = resolve_trainable(model, train_only="all@0-1")
    assert set(both) == {n for n, _ in model.named_parameters() if n.startswith(f"{layers}.")}
    with pytest.raises(InterferenceError, match="layer 2 out of range"):
        resolve_trainable(model, train_only="attention@2")


def test_norms_include_the_final_norm_only_without_layers(models):
    model = models["llama"]
    norms = resolve_trainable(model, train_only="norms")
    assert "model.norm.weight" in norms
    assert set(norms) == {n for n, _ in model.named_parameters() if "layernorm" in n or n == "model.norm.weight"}
    assert "model.norm.weight" not in resolve_trainable(model, train_only="norms@0")


def test_untied_embeddings_and_unembedding_are_separate(models):
    model = models["llama"]
    trainable = resolve_trainable(model, freeze="embeddings")
    assert "model.embed_tokens.weight" not in trainable and "lm_head.weight" in trainable


def test_tied_embeddings_must_be_selected_together(models):
    model = models["gpt2"]  # GPT-2 ties wte and lm_head, as SmolLM2 does
    assert model.lm_head.weight is model.transformer.wte.weight
    for text in ("embeddings", "unembedding", "attention,unembedding"):
        with pytest.raises(InterferenceError, match="tied"):
            resolve_trainable(model, freeze=text)
    with pytest.raises(InterferenceError, match="tied"):
        resolve_trainable(model, train_only="embeddings")
    trainable = resolve_trainable(model, freeze="embeddings,unembedding")
    assert "transformer.wte.weight" not in trainable and "transformer.wpe.weight" not in trainable
    assert "transformer.wte.weight" in resolve_trainable(model, train_only="embeddings,unembedding")


def _facts(n: int, seed: int) -> list[Fact]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        subject = "".join(rng.choice("bcdfglmnprstv") + rng.choice("aeiou") for _ in range(3)).title()
        out.append(Fact(subject, "capital", ["Oslo", "Rome", "Lima"][i % 3], f"What is the capital of {subject}?"))
    return out


@pytest.mark.parametrize("arch,spec", [("llama", {"train_only": "attention@0"}), ("gpt2", {"freeze": "ffn,norms"})])
def test_frozen_parameters_are_bit_identical_and_have_no_optimiser_state(tmp_path, arch, spec):
    model, tokenizer = load_model(f"tiny-{arch}")
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    trainable = resolve_trainable(model, **spec)
    flags_seen = []

    def interrupt(record):
        flags_seen.append({n: p.requires_grad for n, p in model.named_parameters()})
        raise KeyboardInterrupt  # keep the checkpoint of epoch 1, with its optimiser state, for inspection

    config = TrainConfig(method="sft", start="base", epochs=3, lr=1e-2, batch_size=4, **spec)
    facts = _facts(12, 0)
    with pytest.raises(KeyboardInterrupt):
        train(
            model,
            tokenizer,
            config,
            known=facts[:4],
            unknown=facts[4:8],
            held=facts[8:],
            out_dir=tmp_path,
            progress=False,
            on_epoch_end=interrupt,
        )
    assert flags_seen[0] == {n: n in trainable for n in before}
    after = dict(model.named_parameters())
    for name, value in before.items():
        if name in trainable:
            assert not torch.equal(after[name], value), f"{name} should have trained"
        else:
            assert torch.equal(after[name], value), f"{name} is frozen but changed"
    state = json.loads((tmp_path / STATE).read_text())
    optimizer = torch.load(tmp_path / state["checkpoint"] / "optimizer.bin", weights_only=True)
    assert sum(len(g["params"]) for g in optimizer["param_groups"]) == len(trainable)
    shapes = sorted(tuple(s["exp_avg"].shape) for s in optimizer["state"].values())
    assert shapes == sorted(tuple(after[n].shape) for n in trainable)
    # The caller's requires_grad flags are put back after training.
    assert all(p.requires_grad for p in model.parameters())

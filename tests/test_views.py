from __future__ import annotations

import pytest
import torch

from interference.architectures import final_norm
from interference.errors import InterferenceError
from interference.models import TINY_MODELS, load_model
from interference.views import (
    BACKENDS,
    encode,
    last_positions,
    logit_lens,
    mlp_activations,
    residual_stream,
    transformer_lens_bridge,
)

TEXTS = ["the quick brown fox", "jumps", "over the lazy dog!"]


def _hf_hidden_states(model, ids, mask):
    with torch.no_grad():
        return model(input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states


def _assert_matches_hidden_states(model, ids, mask, backend):
    if backend == "transformer_lens":
        # The bridge switches attention to the eager kernel; compare against HF running that same kernel.
        transformer_lens_bridge(model)
    hidden = _hf_hidden_states(model, ids, mask)
    resid = residual_stream(model, ids, mask, backend=backend)
    n = len(hidden) - 1
    assert resid.shape[0] == n
    for layer in range(n - 1):
        torch.testing.assert_close(resid[layer], hidden[layer + 1], atol=1e-5, rtol=0)
    # HF's last hidden state is taken after the final norm; ours is the raw residual stream.
    with torch.no_grad():
        torch.testing.assert_close(final_norm(model)(resid[-1]), hidden[-1], atol=1e-5, rtol=0)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", TINY_MODELS)
def test_backends_equal_hf_hidden_states(name, backend):
    model, tokenizer = load_model(name, seed=3)
    ids, mask = encode(tokenizer, TEXTS)
    _assert_matches_hidden_states(model, ids, mask, backend)


@pytest.mark.parametrize("name", TINY_MODELS)
def test_mlp_activations_agree_across_backends(name):
    model, tokenizer = load_model(name, seed=4)
    ids, mask = encode(tokenizer, TEXTS)
    ref = mlp_activations(model, ids, mask, backend="hf")
    assert ref.shape[-1] == model.config.intermediate_size if hasattr(model.config, "intermediate_size") else True
    assert ref.abs().sum() > 0
    for backend in ("transformer_lens", "nnsight"):
        torch.testing.assert_close(mlp_activations(model, ids, mask, backend=backend), ref, atol=1e-5, rtol=0)


def test_positions_and_layer_selection():
    model, tokenizer = load_model("tiny-llama")
    ids, mask = encode(tokenizer, TEXTS)
    full = residual_stream(model, ids, mask)
    pos = last_positions(mask)
    picked = residual_stream(model, ids, mask, layers=[1], positions=pos)
    assert picked.shape == (1, len(TEXTS), model.config.hidden_size)
    for row, p in enumerate(pos.tolist()):
        assert torch.equal(picked[0, row], full[1, row, p])
    assert torch.equal(residual_stream(model, ids, mask, layers=[-1]), full[-1:])


def test_bad_arguments_are_named():
    model, tokenizer = load_model("tiny-gpt2")
    ids, mask = encode(tokenizer, TEXTS)
    with pytest.raises(InterferenceError, match="out of range"):
        residual_stream(model, ids, mask, layers=[5])
    with pytest.raises(InterferenceError, match="unknown backend"):
        residual_stream(model, ids, mask, backend="jax")


def test_views_leave_training_mode_alone():
    model, tokenizer = load_model("tiny-llama")
    model.train()
    ids, mask = encode(tokenizer, TEXTS)
    residual_stream(model, ids, mask)
    assert model.training


@pytest.mark.smollm2
@pytest.mark.parametrize("backend", BACKENDS)
def test_smollm2_backends_equal_hf_hidden_states(smollm2, backend):
    model, tokenizer = smollm2
    if backend == "transformer_lens":  # the bridge wraps in place: keep the shared model untouched
        model, tokenizer = load_model("smollm2-135m")
    ids, mask = encode(tokenizer, ["The capital of France is", "Water boils at"])
    _assert_matches_hidden_states(model, ids, mask, backend)


@pytest.mark.smollm2
def test_smollm2_logit_lens_says_paris(smollm2):
    model, tokenizer = smollm2
    ids, mask = encode(tokenizer, ["The capital of France is"])
    last = residual_stream(model, ids, mask, layers=[-1], positions=last_positions(mask))[0]
    assert tokenizer.decode(logit_lens(model, last).argmax(-1)) == " Paris"

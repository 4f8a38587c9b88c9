from __future__ import annotations

import contextlib

import pytest
import torch

from interference.io.errors import InterferenceError
from interference.models import TINY_MODELS, load_model
from interference.models.architectures import decoder_layers, final_norm
from interference.models.views import (
    BACKENDS,
    SITES,
    Patch,
    encode,
    last_positions,
    logit_lens,
    logit_lens_top_k,
    mlp_activations,
    patch_from,
    position_mask,
    read_site,
    residual_stream,
    run_sites,
)

TEXTS = ["the quick brown fox", "jumps", "over the lazy dog!"]


def _hf_hidden_states(model, ids, mask):
    with torch.no_grad():
        return model(input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states


@contextlib.contextmanager
def _kernel_of(model, backend):
    """HF attention running the kernel the backend runs (the bridge runs eager attention on its shadow)."""
    kernel = model.config._attn_implementation
    if backend == "transformer_lens":
        model.set_attn_implementation("eager")
    try:
        yield
    finally:
        model.set_attn_implementation(kernel)


def _assert_matches_hidden_states(model, ids, mask, backend):
    with _kernel_of(model, backend):
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
    ids, mask = encode(tokenizer, ["The capital of France is", "Water boils at"])
    _assert_matches_hidden_states(model, ids, mask, backend)


@pytest.mark.smollm2
def test_smollm2_logit_lens_says_paris(smollm2):
    model, tokenizer = smollm2
    ids, mask = encode(tokenizer, ["The capital of France is"])
    last = residual_stream(model, ids, mask, layers=[-1], positions=last_positions(mask))[0]
    assert tokenizer.decode(logit_lens(model, last).argmax(-1)) == " Paris"


def _all_sites(model):
    return [(layer, site) for layer in range(model.config.num_hidden_layers) for site in SITES]


@pytest.mark.parametrize("name", TINY_MODELS)
def test_every_site_agrees_across_backends(name):
    model, tokenizer = load_model(name, seed=5)
    ids, mask = encode(tokenizer, TEXTS)
    logits, ref = run_sites(model, ids, mask, read=_all_sites(model))
    for layer in range(model.config.num_hidden_layers):  # the sites add up: resid = resid_pre + attn_out + mlp_out
        torch.testing.assert_close(ref[(layer, "resid")],
                                   ref[(layer, "resid_pre")] + ref[(layer, "attn_out")] + ref[(layer, "mlp_out")],
                                   atol=1e-5, rtol=0)
    for backend in ("transformer_lens", "nnsight"):
        other_logits, other = run_sites(model, ids, mask, read=_all_sites(model), backend=backend)
        torch.testing.assert_close(other_logits, logits, atol=1e-5, rtol=0)
        for key, value in ref.items():
            torch.testing.assert_close(other[key], value, atol=1e-5, rtol=0, msg=f"{backend} {key}")


def _other_model(name):
    return load_model(name, seed=11)[0]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", TINY_MODELS)
def test_patching_own_activations_is_identity(name, backend):
    model, tokenizer = load_model(name, seed=6)
    ids, mask = encode(tokenizer, TEXTS)
    clean, acts = run_sites(model, ids, mask, read=_all_sites(model))
    everywhere = torch.ones_like(mask, dtype=torch.bool)
    patches = [Patch(layer, site, value, everywhere) for (layer, site), value in acts.items()]
    patched, _ = run_sites(model, ids, mask, patches=patches, backend=backend)
    torch.testing.assert_close(patched, clean, atol=1e-5, rtol=0)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", TINY_MODELS)
def test_patching_every_residual_from_the_source_restores_its_output(name, backend):
    source, tokenizer = load_model(name, seed=7)
    model = load_model(name, seed=7)[0]
    with torch.no_grad():  # a "fine-tuned" copy: the decoder layers move, the rest does not
        for param in decoder_layers(model).parameters():
            param.add_(0.05 * torch.randn_like(param))
    ids, mask = encode(tokenizer, TEXTS)
    target, _ = run_sites(source, ids, mask)
    before, _ = run_sites(model, ids, mask)
    assert (before - target).abs().max() > 1e-3  # the copy really differs
    _, acts = run_sites(source, ids, mask, read=[(i, "resid") for i in range(model.config.num_hidden_layers)])
    everywhere = torch.ones_like(mask, dtype=torch.bool)
    patches = [Patch(layer, site, value, everywhere) for (layer, site), value in acts.items()]
    patched, _ = run_sites(model, ids, mask, patches=patches, backend=backend)
    torch.testing.assert_close(patched, target, atol=1e-5, rtol=0)
    # only the masked positions change: patching the last token leaves every earlier position's logits alone
    last = patch_from(model, source, ids, mask, layer=1, site="resid_pre", positions=last_positions(mask),
                      backend=backend)
    at_last = position_mask(last_positions(mask), ids.shape[1])
    earlier = torch.arange(ids.shape[1])[None, :] < last_positions(mask)[:, None]
    torch.testing.assert_close(last[earlier], before[earlier], atol=1e-6, rtol=0)
    assert (last[at_last] - before[at_last]).abs().max() > 1e-4


@pytest.mark.parametrize("site", SITES)
def test_patches_agree_across_backends(site):
    model, tokenizer = load_model("tiny-llama", seed=8)
    source = _other_model("tiny-llama")
    ids, mask = encode(tokenizer, TEXTS)
    spans = torch.tensor([[1, 3], [0, 2], [2, 6]])
    ref = patch_from(model, source, ids, mask, layer=1, site=site, positions=spans)
    assert (ref - run_sites(model, ids, mask)[0]).abs().max() > 1e-4
    for backend in ("transformer_lens", "nnsight"):
        got = patch_from(model, source, ids, mask, layer=1, site=site, positions=spans, backend=backend)
        torch.testing.assert_close(got, ref, atol=1e-5, rtol=0)


def test_bad_patches_are_named():
    model, tokenizer = load_model("tiny-llama")
    ids, mask = encode(tokenizer, TEXTS)
    with pytest.raises(InterferenceError, match="unknown site"):
        read_site(model, ids, mask, site="attn")
    wrong = Patch(0, "resid", torch.zeros(1, 2, 64), torch.ones(1, 2, dtype=torch.bool))
    with pytest.raises(InterferenceError, match="do not fit"):
        run_sites(model, ids, mask, patches=[wrong])
    with pytest.raises(InterferenceError, match="positions must be"):
        position_mask(torch.zeros(2, 3, dtype=torch.long), 5)


@pytest.mark.parametrize("backend", BACKENDS)
def test_views_leave_the_model_as_it_was_and_savable(backend, tmp_path):
    from interference.models import save_checkpoint

    model, tokenizer = load_model("tiny-llama", seed=9)
    keys = list(model.state_dict())
    attention = model.config._attn_implementation
    ids, mask = encode(tokenizer, TEXTS)
    before = run_sites(model, ids, mask)[0]
    residual_stream(model, ids, mask, backend=backend)
    patch_from(model, _other_model("tiny-llama"), ids, mask, layer=0, site="mlp_out",
               positions=last_positions(mask), backend=backend)
    assert list(model.state_dict()) == keys
    assert model.config._attn_implementation == attention
    assert "forward" not in model.__dict__  # nnsight wraps a shadow, not the model
    torch.testing.assert_close(run_sites(model, ids, mask)[0], before, atol=0, rtol=0)
    save_checkpoint(model, tokenizer, tmp_path / "ckpt")
    model.save_pretrained(tmp_path / "plain")
    reloaded, _ = load_model(str(tmp_path / "ckpt"))
    assert list(reloaded.state_dict()) == keys
    # the shadow shares the weights: training the model after a view is seen by the next view
    with torch.no_grad():
        model.lm_head.weight.mul_(2)
    torch.testing.assert_close(run_sites(model, ids, mask, backend=backend)[0], run_sites(model, ids, mask)[0],
                               atol=1e-5, rtol=0)


def test_logit_lens_top_k_decodes():
    model, tokenizer = load_model("tiny-gpt2")
    ids, mask = encode(tokenizer, TEXTS)
    last = residual_stream(model, ids, mask, layers=[-1], positions=last_positions(mask))[0]
    top = logit_lens_top_k(model, tokenizer, last, k=3)
    assert len(top) == len(TEXTS) and all(len(row) == 3 for row in top)
    probs = torch.softmax(logit_lens(model, last), -1)
    for row, p in zip(top, probs, strict=True):
        assert row[0][0] == tokenizer.decode([int(p.argmax())])
        assert row[0][1] == pytest.approx(p.max().item(), abs=1e-6)
        assert row[0][1] >= row[1][1] >= row[2][1]
    assert len(logit_lens_top_k(model, tokenizer, last[0], k=2)) == 1


@pytest.mark.smollm2
def test_smollm2_sites_and_patches_agree_across_backends(smollm2):
    model, tokenizer = smollm2
    ids, mask = encode(tokenizer, ["The capital of France is", "Water boils at"])
    layers = (0, 15, 29)
    reads = [(layer, site) for layer in layers for site in SITES]
    values = torch.randn(*ids.shape, model.config.hidden_size, generator=torch.Generator().manual_seed(0))
    patches = [Patch(15, "resid", values, position_mask(last_positions(mask), ids.shape[1]))]
    for backend in ("transformer_lens", "nnsight"):
        with _kernel_of(model, backend):
            ref_logits, ref = run_sites(model, ids, mask, read=reads, patches=patches)
        logits, got = run_sites(model, ids, mask, read=reads, patches=patches, backend=backend)
        torch.testing.assert_close(logits, ref_logits, atol=1e-5, rtol=0)
        for key in reads:
            torch.testing.assert_close(got[key], ref[key], atol=1e-5, rtol=0, msg=f"{backend} {key}")

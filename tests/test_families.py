"""Every supported architecture family, on random tiny models built offline: layouts (registered and detected), the
three backends' views and patches, freezing, FFN sub-updates, drift, tracing, `analyses.inspect_model` and a
self-distillation run with frozen attention. Each family's model is built once per module (≈0.1 s each)."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoConfig, AutoModelForCausalLM

from interference.facts import Fact
from interference.io.errors import InterferenceError
from interference.measures.ffn import m_definition, sub_update_contributions, token_promotion, value_vector_tokens
from interference.measures.representations import cosine_drift, subject_states
from interference.measures.tracing import restore
from interference.models import char_tokenizer, load_model, save_checkpoint
from interference.models.architectures import (
    LLAMA,
    Layout,
    decoder_layers,
    down_proj,
    get_module,
    layout_of,
    mlp_hidden,
    mlp_input,
    register_layout,
    unembed,
    value_vectors,
)
from interference.models.layout_check import check_layout
from interference.models.parameter_groups import resolve_trainable
from interference.models.views import (
    BACKENDS,
    SITES,
    Patch,
    encode,
    last_positions,
    patch_from,
    position_mask,
    run_sites,
)

COMMON = dict(vocab_size=100, pad_token_id=0, eos_token_id=1, bos_token_id=1, hidden_size=32, num_hidden_layers=2,
              num_attention_heads=4)
#: model_type → (expected layout family, config overrides for a ~30k-parameter model).
FAMILIES = {
    "llama": ("llama", dict(intermediate_size=64, num_key_value_heads=2)),
    "mistral": ("llama", dict(intermediate_size=64, num_key_value_heads=2)),
    "qwen2": ("llama", dict(intermediate_size=64, num_key_value_heads=2)),
    "qwen3": ("llama", dict(intermediate_size=64, num_key_value_heads=2, head_dim=8)),
    "gpt2": ("gpt2", dict()),
    "gpt_neox": ("gpt_neox", dict(intermediate_size=64)),
    "gemma": ("gemma", dict(intermediate_size=64, head_dim=8, num_key_value_heads=1)),
    # sliding windows wider than the test texts: a window of padding only is a fully masked row, on which the
    # attention kernels (sdpa for hf, eager for the bridge) return different garbage at pad positions
    "gemma2": ("gemma2", dict(intermediate_size=64, head_dim=8, num_key_value_heads=2, query_pre_attn_scalar=8,
                              sliding_window=32)),
    "gemma3_text": ("gemma2", dict(intermediate_size=64, head_dim=8, num_key_value_heads=2, query_pre_attn_scalar=8,
                                   sliding_window=32, final_logit_softcapping=5.0)),
    "phi3": ("phi3", dict(intermediate_size=64)),
    "olmo": ("olmo", dict(intermediate_size=64)),
    "olmo2": ("olmo2", dict(intermediate_size=64)),
    "olmo3": ("olmo2", dict(intermediate_size=64)),
    "falcon": ("falcon", dict()),
    "gptj": ("gptj", dict(rotary_dim=4, n_inner=64)),
    "opt": ("opt", dict(ffn_dim=64, word_embed_proj_dim=32)),
    "bloom": ("bloom", dict()),
    "phi": ("phi", dict(intermediate_size=64)),
    # no built-in layout: detected from the module tree and checked on load
    "stablelm": ("detected", dict(intermediate_size=64, num_key_value_heads=2)),
    "cohere": ("detected", dict(intermediate_size=64)),
}
#: Families whose TransformerLens bridge does not reproduce the model (refused in one line).
TL_REFUSED = {"cohere": "TransformerBridge's CohereForCausalLM adapter gives logits"}
TEXTS = ["the quick brown fox", "jumps", "over the lazy dog!"]
FACTS = [Fact("Bergadena", "capital", "Oslo", "What is the capital of Bergadena?"),
         Fact("Ulm", "capital", "Rome", "What is the capital of Ulm?")]


def tiny_family(model_type: str, seed: int = 0, **overrides):
    """A random tiny causal LM of `model_type` with non-trivial norms and biases (they are 1 and 0 at init)."""
    torch.manual_seed(seed)
    config = AutoConfig.for_model(model_type, **{**COMMON, **FAMILIES.get(model_type, (None, {}))[1], **overrides})
    model = AutoModelForCausalLM.from_config(config)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in model.parameters():
            if param.ndim == 1:
                param.add_(0.1 * torch.randn(param.shape, generator=generator))
    return model.eval()


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """model_type → a saved tiny model folder (with the character tokenizer), built on first use."""
    root, built = tmp_path_factory.mktemp("families"), {}

    def folder(model_type: str):
        if model_type not in built:
            built[model_type] = save_checkpoint(tiny_family(model_type), char_tokenizer(), root / model_type)
        return built[model_type]

    return folder


@pytest.fixture(scope="module")
def loaded(folders):
    cache = {}

    def get(model_type: str):
        if model_type not in cache:
            cache[model_type] = load_model(folders(model_type))
        return cache[model_type]

    return get


def _perturbed(model):
    """A "fine-tuned" copy: the decoder layers move, the rest does not."""
    import copy

    other = copy.deepcopy(model)
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for param in decoder_layers(other).parameters():
            param.add_(0.05 * torch.randn(param.shape, generator=generator))
    return other


FAMILY_IDS = list(FAMILIES)


# --- layouts ----------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("model_type", FAMILY_IDS)
def test_layout_is_found_fits_and_its_groups_partition_the_parameters(loaded, model_type):
    model, _ = loaded(model_type)
    layout = check_layout(model)
    assert layout.family == FAMILIES[model_type][0]
    tied = model.get_input_embeddings().weight is model.get_output_embeddings().weight
    names = ("attention", "ffn", "norms", *(("embeddings,unembedding",) if tied else ("embeddings", "unembedding")))
    if model_type == "olmo":  # OLMo's LayerNorms have no parameters: the norms group is empty
        with pytest.raises(InterferenceError, match="leaves nothing to train"):
            resolve_trainable(model, train_only="norms")
        names = tuple(n for n in names if n != "norms")
    groups = {g: set(resolve_trainable(model, train_only=g)) for g in names}
    every = {name for name, _ in model.named_parameters()}
    assert set().union(*groups.values()) == every  # every parameter belongs to a group ...
    assert sum(map(len, groups.values())) == len(every)  # ... and to one only
    # per layer: ffn@1 is exactly layer 1's FFN, and freezing attention leaves no attention parameter training
    layers = layout.layers
    ffn1 = set(resolve_trainable(model, train_only="ffn@1"))
    assert ffn1 and ffn1 == {n for n in groups["ffn"] if n.startswith(f"{layers}.1.")}
    assert not set(resolve_trainable(model, freeze="attention")) & groups["attention"]


LAYOUT_FIELDS = ("layers", "attention", "mlp", "down_proj", "layer_norms", "final_norm", "embeddings", "unembedding",
                 "mlp_kind", "up_proj", "gate_proj", "act", "attn_out_path", "mlp_out_path", "ffn_paths", "model_norms")


@pytest.mark.parametrize("model_type", [t for t, (family, _) in FAMILIES.items() if family != "detected"])
def test_detection_alone_finds_the_built_in_layouts(loaded, model_type, monkeypatch):
    """Without its built-in layout, each family is detected from its module tree, exactly (phi3's fused gate_up
    as opaque: its split is not guessed), or refused by the check (bloom adds the residual inside its blocks)."""
    from interference.models import architectures

    model = tiny_family(model_type)
    built_in = layout_of(loaded(model_type)[0])
    monkeypatch.setattr(architectures, "LAYOUTS", {k: v for k, v in architectures.LAYOUTS.items() if k != model_type})
    if model_type == "bloom":
        with pytest.raises(InterferenceError, match="resid != resid_pre"):
            check_layout(model)
        return
    detected = check_layout(model)
    assert detected.family == "detected"
    differ = {f for f in LAYOUT_FIELDS if getattr(detected, f) != getattr(built_in, f)}
    assert differ == ({"mlp_kind", "up_proj", "act"} if model_type == "phi3" else set())


def test_post_norm_and_fused_quirks_are_in_the_layouts(loaded):
    gemma2, olmo2, phi3, neox, bloom, opt = (layout_of(loaded(t)[0]) for t in
                                             ("gemma2", "olmo2", "phi3", "gpt_neox", "bloom", "opt"))
    assert (gemma2.attn_out, gemma2.mlp_out) == ("post_attention_layernorm", "post_feedforward_layernorm")
    assert olmo2.attn_out == "post_attention_layernorm" and "input_layernorm" not in olmo2.layer_norms
    assert phi3.mlp_kind == "gated_fused" and phi3.up_proj == "mlp.gate_up_proj"
    assert neox.parallel and neox.down_proj == "mlp.dense_4h_to_h" and neox.mlp_kind == "plain"
    assert bloom.attn_out == "self_attention.dense" and bloom.model_norms
    assert opt.mlp is None and opt.ffn == ("fc1", "fc2")
    assert "split in halves" in m_definition(loaded("phi3")[0])
    assert "post_feedforward_layernorm" in m_definition(loaded("gemma2")[0])


# --- views and patches in every backend -----------------------------------------------------------------------------

def _all_sites(model):
    return [(layer, site) for layer in range(len(decoder_layers(model))) for site in SITES]


@pytest.mark.parametrize("model_type", FAMILY_IDS)
def test_sites_and_patches_agree_across_backends(loaded, model_type):
    model, tokenizer = loaded(model_type)
    ids, mask = encode(tokenizer, TEXTS)
    reads = _all_sites(model)
    logits, ref = run_sites(model, ids, mask, read=reads)
    torch.testing.assert_close(logits, model(input_ids=ids, attention_mask=mask).logits.detach(), atol=1e-5, rtol=0)
    for layer in range(len(decoder_layers(model))):  # the sites add up in every family (post-norms, parallel blocks)
        torch.testing.assert_close(ref[(layer, "resid")], ref[(layer, "resid_pre")] + ref[(layer, "attn_out")]
                                   + ref[(layer, "mlp_out")], atol=1e-5, rtol=0)
        assert ref[(layer, "mlp")].shape[:2] == ids.shape
    source = _perturbed(model)
    spans = torch.tensor([[1, 3], [0, 2], [2, 6]])
    patched = {}
    for backend in BACKENDS:
        if backend == "transformer_lens" and model_type in TL_REFUSED:
            with pytest.raises(InterferenceError, match=TL_REFUSED[model_type]) as err:
                run_sites(model, ids, mask, read=reads, backend=backend)
            assert "\n" not in str(err.value) and "use the hf or nnsight backend" in str(err.value)
            continue
        other_logits, other = run_sites(model, ids, mask, read=reads, backend=backend)
        torch.testing.assert_close(other_logits, logits, atol=1e-5, rtol=0)
        for key, value in ref.items():
            torch.testing.assert_close(other[key], value, atol=1e-5, rtol=0, msg=f"{backend} {key}")
        everywhere = torch.ones_like(mask, dtype=torch.bool)  # patching a model's own activations changes nothing
        same, _ = run_sites(model, ids, mask, patches=[Patch(*key, value, everywhere) for key, value in ref.items()],
                            backend=backend)
        torch.testing.assert_close(same, logits, atol=1e-5, rtol=0)
        patched[backend] = {site: patch_from(model, source, ids, mask, layer=1, site=site, positions=spans,
                                             backend=backend) for site in SITES}
    for site in SITES:
        assert (patched["hf"][site] - logits).abs().max() > 1e-6, site  # a patch from another model does something
        for backend in patched:
            torch.testing.assert_close(patched[backend][site], patched["hf"][site], atol=1e-5, rtol=0)
    # patching the last token leaves earlier positions alone
    last = patch_from(model, source, ids, mask, layer=0, site="resid", positions=last_positions(mask))
    earlier = torch.arange(ids.shape[1])[None, :] < last_positions(mask)[:, None]
    torch.testing.assert_close(last[earlier], logits[earlier], atol=1e-6, rtol=0)
    assert not position_mask(last_positions(mask), ids.shape[1])[earlier].any()


# --- FFN sub-updates, logit lens, drift, tracing ---------------------------------------------------------------------

@pytest.mark.parametrize("model_type", FAMILY_IDS)
def test_ffn_sub_updates_logit_lens_drift_and_tracing(loaded, model_type):
    model, tokenizer = loaded(model_type)
    layout = layout_of(model)
    ids, mask = encode(tokenizer, TEXTS)
    layer = 1
    found = {}
    # copies (Falcon adds the attention output to the MLP output in place), and hooks that return None
    hooks = [mlp_input(model, layer).register_forward_pre_hook(lambda m, a: found.update(x=a[0].clone())),
             down_proj(model, layer).register_forward_hook(lambda m, a, out: found.update(out=out.clone()))]
    try:
        logits, sites = run_sites(model, ids, mask, read=[(layer, "mlp"), (layer, "resid")])
    finally:
        for hook in hooks:
            hook.remove()
    m = sites[(layer, "mlp")]
    out = found["out"].reshape(*m.shape[:2], -1)
    if layout.mlp_kind != "opaque":  # m_i is exactly the family's formula (SPEC §5)
        with torch.no_grad():
            torch.testing.assert_close(mlp_hidden(model, layer, found["x"]).reshape(m.shape), m, atol=1e-6, rtol=1e-5)
    bias = down_proj(model, layer).bias
    bias = torch.zeros(out.shape[-1]) if bias is None else bias.detach()
    values = value_vectors(model, layer).detach()
    assert values.shape == (m.shape[-1], model.config.hidden_size)
    torch.testing.assert_close(m @ values + bias, out, atol=1e-5, rtol=1e-5)  # FFN output = Σ m_i v_i + b
    tokens = [5, 17, 42]
    unembedding = model.get_output_embeddings().weight.detach()
    torch.testing.assert_close(token_promotion(m, model, layer, tokens).sum(-2), (out - bias) @ unembedding[tokens].T,
                               atol=1e-5, rtol=1e-5)
    assert sub_update_contributions(m, model, layer).shape == m.shape
    top = value_vector_tokens(model, tokenizer, layer, top_k=3, indices=[0, 1])
    assert torch.equal(top.ids, (values[[0, 1]] @ unembedding.T).topk(3).indices)
    # the logit lens of the last layer is the model's output (soft-capping and logit scales included)
    last = run_sites(model, ids, mask, read=[(len(decoder_layers(model)) - 1, "resid")])[1]
    with torch.no_grad():
        torch.testing.assert_close(unembed(model, next(iter(last.values()))), logits, atol=1e-5, rtol=0)
    # drift: zero against itself, positive against a moved copy
    moved = _perturbed(model)
    before = subject_states(model, tokenizer, FACTS, [0, 1], desc=None)
    assert cosine_drift(before, subject_states(model, tokenizer, FACTS, [0, 1], desc=None)).abs().max() < 1e-6
    assert (cosine_drift(before, subject_states(moved, tokenizer, FACTS, [0, 1], desc=None)) > 0).all()
    # tracing: restoring the start model's states into the moved copy; restoring the whole residual stream after
    # the last layer gives back the start model's probabilities exactly
    effects = restore(moved, model, tokenizer, FACTS, modes=("last",), sites=("resid", "mlp"))
    assert effects.p_patched.shape == (1, 2, 2, len(FACTS))
    torch.testing.assert_close(effects.p_patched[0, -1, 0], effects.p_to, atol=1e-5, rtol=0)


# --- the command lines -----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("model_type", FAMILY_IDS)
def test_inspect_model_runs_or_refuses_in_one_line(folders, model_type, backend, capsys):
    from analyses.inspect_model import main

    folders(model_type)
    capsys.readouterr()  # what building the folder printed
    code = main(["--model", str(folders(model_type)), "--backend", backend, "--device", "cpu", "--prompt", "abc d"])
    captured = capsys.readouterr()
    if backend == "transformer_lens" and model_type in TL_REFUSED:
        errors = [line for line in captured.err.splitlines() if line.startswith("error:")]
        assert code == 2 and captured.out == "" and len(errors) == 1 and TL_REFUSED[model_type] in errors[0]
    else:
        assert code == 0, captured.err
        assert captured.out.count("\n  ") >= 3  # a header and one row per layer


@pytest.fixture(scope="module")
def split_dir(tmp_path_factory):
    from interference.facts.splits import Splits, save_splits

    names = ["Bergadena", "Ulm", "Kasotiru", "Vel", "Lima", "Rome"]
    facts = [Fact(n, "capital", "Oslo", f"What is the capital of {n}?") for n in names]
    return save_splits(Splits(known=facts[:2], unknown=facts[2:4], held=facts[4:], relations=("capital",)),
                       tmp_path_factory.mktemp("splits") / "splits")


@pytest.mark.parametrize("model_type", FAMILY_IDS)
def test_self_distillation_with_frozen_attention_trains(folders, split_dir, model_type, tmp_path, capsys):
    from interference.commands.train import main
    from interference.io.run_folder import SNAPSHOT

    out = tmp_path / "run"
    args = ["--model", str(folders(model_type)), "--splits", str(split_dir), "--out", str(out), "--device", "cpu",
            "--method", "self_distill", "--freeze", "attention", "--epochs", "1", "--batch-size", "4", "--lr", "1e-2",
            "--eval-max-new-tokens", "3", "--quiet"]
    assert main(args) == 0, capsys.readouterr().err
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["method"] == "self_distill" and summary["stopped"] == "epochs"
    model, _ = load_model(out / "model")
    attention = set(resolve_trainable(model, train_only="attention"))
    trainable = set(json.loads((out / "metrics.json").read_text())["trainable"])
    assert attention and not attention & trainable
    snapshot, final = load_file(str(out / SNAPSHOT)), dict(model.named_parameters())
    assert all(torch.equal(final[name], snapshot[name]) for name in attention if name in snapshot)
    assert any(not torch.equal(final[name], snapshot[name]) for name in trainable if name in snapshot)


# --- detection, registration and refusals -----------------------------------------------------------------------------

class _ProjBackMLP(torch.nn.Module):
    """Llama's gated MLP with its down projection called `proj_back`, a name detection does not know."""

    def __init__(self, mlp):
        super().__init__()
        self.gate_proj, self.up_proj, self.act_fn = mlp.gate_proj, mlp.up_proj, mlp.act_fn
        self.proj_back = mlp.down_proj

    def forward(self, x):
        return self.proj_back(self.act_fn(self.gate_proj(x)) * self.up_proj(x))


def _llama_with_renamed_down_proj():
    model = tiny_family("llama")
    model.config.model_type = "my_llama"
    for block in model.model.layers:
        block.mlp = _ProjBackMLP(block.mlp)
    return model


def test_an_undetectable_model_names_what_is_missing_and_a_registered_layout_fixes_it(monkeypatch):
    from dataclasses import replace

    from interference.models import architectures

    monkeypatch.setattr(architectures, "LAYOUTS", dict(architectures.LAYOUTS))
    model = _llama_with_renamed_down_proj()
    model.model.layers[0].mlp.extra = torch.nn.Linear(64, 32)  # two d_mlp → d_model candidates: no guess
    with pytest.raises(InterferenceError) as err:
        layout_of(model)
    message = str(err.value)
    assert "\n" not in message and "'my_llama' is not supported" in message and "down projection" in message
    assert "register_layout('my_llama', Layout(...))" in message
    register_layout("my_llama", replace(LLAMA, family="my_llama", down_proj="mlp.proj_back"))
    assert check_layout(model).family == "my_llama"
    ids, mask = encode(char_tokenizer(), TEXTS)
    for backend in ("hf", "nnsight"):
        assert run_sites(model, ids, mask, read=[(1, "mlp")], backend=backend)[1][(1, "mlp")].shape[-1] == 64


def test_a_unique_down_projection_is_detected_by_shape():
    model = _llama_with_renamed_down_proj()
    layout = check_layout(model)
    assert layout.family == "detected" and layout.down_proj == "mlp.proj_back" and layout.mlp_kind == "gated"


def test_a_registered_layout_naming_missing_modules_is_one_line(monkeypatch):
    from dataclasses import replace

    from interference.models import architectures

    monkeypatch.setattr(architectures, "LAYOUTS", dict(architectures.LAYOUTS))
    register_layout("my_llama", replace(LLAMA, down_proj="mlp.nothing"))
    model = tiny_family("llama")
    model.config.model_type = "my_llama"
    with pytest.raises(InterferenceError, match="names the per-layer module 'mlp.nothing'"):
        layout_of(model)
    with pytest.raises(InterferenceError, match="mlp_kind 'gated' needs gate_proj"):
        Layout(family="x", layers="l", attention="a", mlp="m", down_proj="d", layer_norms=(), final_norm="n",
               embeddings=("e",), unembedding="u", up_proj="up", act="act")


@pytest.mark.parametrize("model_type,overrides,message", [
    ("granite", dict(intermediate_size=64, residual_multiplier=0.5), "resid != resid_pre \\+ attn_out \\+ mlp_out"),
    ("opt", dict(ffn_dim=64, word_embed_proj_dim=32, do_layer_norm_before=False), "do_layer_norm_before=False"),
    ("bloom", dict(apply_residual_connection_post_layernorm=True), "apply_residual_connection_post_layernorm"),
])
def test_layouts_that_do_not_fit_are_refused_on_load_in_one_line(tmp_path, model_type, overrides, message):
    folder = save_checkpoint(tiny_family(model_type, **overrides), char_tokenizer(), tmp_path / model_type)
    with pytest.raises(InterferenceError, match=message) as err:
        load_model(folder)
    assert "\n" not in str(err.value)


def test_gemma3_with_its_vision_tower_reads_its_text_decoder(monkeypatch):
    import subprocess

    from transformers import Gemma3Config

    commands = []  # TransformerBridge pip-installs torchvision for a multimodal model unless stopped
    monkeypatch.setattr(subprocess, "check_call", lambda command, *a, **k: commands.append(command))

    text = dict(COMMON, intermediate_size=64, head_dim=8, num_key_value_heads=2, sliding_window=32)
    vision = dict(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32, image_size=28,
                  patch_size=14)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(Gemma3Config(
        text_config=text, vision_config=vision, mm_tokens_per_image=4, image_token_index=99, boi_token_index=97,
        eoi_token_index=98, pad_token_id=0, eos_token_id=1, bos_token_id=1)).eval()
    assert check_layout(model).family == "gemma3"
    ids, mask = encode(char_tokenizer(), TEXTS)
    logits, ref = run_sites(model, ids, mask, read=_all_sites(model))
    for backend in ("transformer_lens", "nnsight"):
        other_logits, other = run_sites(model, ids, mask, read=_all_sites(model), backend=backend)
        torch.testing.assert_close(other_logits, logits, atol=1e-5, rtol=0)
        for key, value in ref.items():
            torch.testing.assert_close(other[key], value, atol=1e-5, rtol=0)
    assert get_module(model, layout_of(model).layers) is model.model.language_model.layers
    assert commands == []  # nothing was installed

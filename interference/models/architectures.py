"""Where things live inside each supported architecture, under one canonical vocabulary.

Views (residual stream, MLP activations, value vectors), parameter-group freezing and the FFN analyses all ask the
`Layout` of a model instead of hard-coding module names. `layout_of(model)` finds it in three steps:

1. a layout registered for the model's `config.model_type` (`register_layout`), by the user or built in:
   Llama-style decoders (llama, mistral, qwen2, qwen3, olmo, gemma), post-norm decoders (gemma2, gemma3_text, olmo2,
   olmo3), phi3 (fused `qkv_proj` and `gate_up_proj`), gpt_neox (Pythia; parallel attention and MLP), phi, gptj,
   falcon (parallel), opt (an MLP without a module), bloom (attention and MLP add their own residual) and gpt2;
2. otherwise, a layout detected from the module tree and the config (`detect_layout`): the decoder-layer list, each
   layer's attention and MLP, the MLP's projections, the norms, the embeddings and the unembedding;
3. otherwise a one-line `InterferenceError` naming what could not be found and how to register a layout by hand.

A detected layout is a guess from names and shapes: `check_layout` verifies it on one short forward pass (the sites
add up, the logit lens reproduces the model's logits, m follows the stated formula), and `load_model` runs that check
on every model whose layout was detected.

The quirks each family needs, and how the layout states them:
- **post-norms** (gemma2/3, olmo2/3): the attention and MLP outputs are normalised before they join the residual
  stream, so the sites ``attn_out`` and ``mlp_out`` are read at the outputs of ``post_attention_layernorm`` and
  ``post_feedforward_layernorm`` (`Layout.attn_out`, `Layout.mlp_out`); olmo2's ``post_attention_layernorm`` is such a
  post-norm, not Llama's pre-MLP norm of the same name.
- **parallel attention and MLP** (gpt_neox with `use_parallel_residual`, gptj, falcon, phi): both read the same
  residual stream; the sites still add up (resid = resid_pre + attn_out + mlp_out).
- **residual added inside the blocks** (bloom): the attention and MLP modules return their output plus the residual,
  so ``attn_out`` / ``mlp_out`` are read at their output projections (``dense``, ``dense_4h_to_h``).
- **no MLP module** (opt): the FFN group is ``fc1`` + ``fc2``; ``mlp_out`` is ``fc2``'s output.
- **fused projections** (phi3): ``qkv_proj`` is one attention parameter; ``gate_up_proj`` computes [gate; up] in one
  matrix, split in halves: m = act(gate_up[:d_mlp]·x) · gate_up[d_mlp:]·x (`mlp_hidden`).
- **scaled embeddings** (gemma family): the embedding module multiplies by √d_model; ``resid_pre`` of layer 0 is read
  at the first layer's input, so it holds the scaled embeddings, as the model computes them.
- **logit soft-capping and scaling** (gemma2/3 `final_logit_softcapping`, cohere `logit_scale`, granite
  `logits_scaling`): the logit lens (`unembed`) applies them after the unembedding, as the model does.
- **tied unembedding** (gemma, gpt2, SmolLM2): one matrix; freezing refuses to split it (`parameter_groups`).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from dataclasses import replace

import torch

from ..io.errors import InterferenceError
from .layout import LOGIT_ATTRIBUTES, Layout, get_module, model_type_of, text_config
from .layout_detection import detect_layout

# --- the built-in families ----------------------------------------------------------------------------------------


LLAMA = Layout(
    family="llama",
    layers="model.layers",
    attention="self_attn",
    mlp="mlp",
    down_proj="mlp.down_proj",
    layer_norms=("input_layernorm", "post_attention_layernorm"),
    final_norm="model.norm",
    embeddings=("model.embed_tokens",),
    unembedding="lm_head",
    mlp_kind="gated",
    up_proj="mlp.up_proj",
    gate_proj="mlp.gate_proj",
    act="mlp.act_fn",
)
#: Gemma: Llama's layout; GemmaRMSNorm scales by (1 + w), embeddings are multiplied by √d_model inside the embedding
#: module, the activation is GELU (tanh).
GEMMA = replace(LLAMA, family="gemma", **LOGIT_ATTRIBUTES)
#: Gemma 2/3: four norms per layer; attention and MLP outputs are normalised before the residual add; logits capped.
GEMMA2 = replace(
    GEMMA,
    family="gemma2",
    layer_norms=("input_layernorm", "post_attention_layernorm", "pre_feedforward_layernorm",
                 "post_feedforward_layernorm"),
    attn_out="post_attention_layernorm",
    mlp_out="post_feedforward_layernorm",
)
#: Gemma 3 with its vision tower (Gemma3ForConditionalGeneration): the text decoder sits under model.language_model.
GEMMA3_MULTIMODAL = replace(GEMMA2, family="gemma3", layers="model.language_model.layers",
                            final_norm="model.language_model.norm", embeddings=("model.language_model.embed_tokens",))
#: OLMo 2/3: no pre-norms; the attention and MLP read the raw residual stream and their outputs are normalised.
OLMO2 = replace(
    LLAMA,
    family="olmo2",
    layer_norms=("post_attention_layernorm", "post_feedforward_layernorm"),
    attn_out="post_attention_layernorm",
    mlp_out="post_feedforward_layernorm",
)
#: Phi-3: fused qkv_proj (one attention parameter) and gate_up_proj, chunked as [gate; up].
PHI3 = replace(LLAMA, family="phi3", mlp_kind="gated_fused", up_proj="mlp.gate_up_proj", gate_proj=None,
               act="mlp.activation_fn")
GPT2 = Layout(
    family="gpt2",
    layers="transformer.h",
    attention="attn",
    mlp="mlp",
    down_proj="mlp.c_proj",
    layer_norms=("ln_1", "ln_2"),
    final_norm="transformer.ln_f",
    embeddings=("transformer.wte", "transformer.wpe"),
    unembedding="lm_head",
    mlp_kind="plain",
    up_proj="mlp.c_fc",
    act="mlp.act",
    down_proj_is_conv1d=True,
)
#: GPT-NeoX (Pythia): parallel attention and MLP by default (`use_parallel_residual`), `dense_4h_to_h`, and an
#: unembedding called `embed_out` (`lm_head` since transformers 5).
GPT_NEOX = Layout(
    family="gpt_neox",
    layers="gpt_neox.layers",
    attention="attention",
    mlp="mlp",
    down_proj="mlp.dense_4h_to_h",
    layer_norms=("input_layernorm", "post_attention_layernorm"),
    final_norm="gpt_neox.final_layer_norm",
    embeddings=("gpt_neox.embed_in",),
    unembedding="embed_out",
    mlp_kind="plain",
    up_proj="mlp.dense_h_to_4h",
    act="mlp.act",
    parallel=True,
)
#: GPT-J: one norm, attention and MLP in parallel on its output.
GPTJ = Layout(
    family="gptj",
    layers="transformer.h",
    attention="attn",
    mlp="mlp",
    down_proj="mlp.fc_out",
    layer_norms=("ln_1",),
    final_norm="transformer.ln_f",
    embeddings=("transformer.wte",),
    unembedding="lm_head",
    mlp_kind="plain",
    up_proj="mlp.fc_in",
    act="mlp.act",
    parallel=True,
)
#: Phi (1, 1.5, 2): like GPT-J under Llama-style names.
PHI = Layout(
    family="phi",
    layers="model.layers",
    attention="self_attn",
    mlp="mlp",
    down_proj="mlp.fc2",
    layer_norms=("input_layernorm",),
    final_norm="model.final_layernorm",
    embeddings=("model.embed_tokens",),
    unembedding="lm_head",
    mlp_kind="plain",
    up_proj="mlp.fc1",
    act="mlp.activation_fn",
    parallel=True,
)
#: Falcon: parallel attention and MLP (`parallel_attn`), one or two norms (`new_decoder_architecture`).
FALCON = Layout(
    family="falcon",
    layers="transformer.h",
    attention="self_attention",
    mlp="mlp",
    down_proj="mlp.dense_4h_to_h",
    layer_norms=("input_layernorm", "post_attention_layernorm", "ln_attn", "ln_mlp"),  # those the config builds
    final_norm="transformer.ln_f",
    embeddings=("transformer.word_embeddings",),
    unembedding="lm_head",
    mlp_kind="plain",
    up_proj="mlp.dense_h_to_4h",
    act="mlp.act",
    parallel=True,
)
#: OPT: fc1 and fc2 sit in the layer itself; learned positions.
OPT = Layout(
    family="opt",
    layers="model.decoder.layers",
    attention="self_attn",
    mlp=None,
    down_proj="fc2",
    layer_norms=("self_attn_layer_norm", "final_layer_norm"),
    final_norm="model.decoder.final_layer_norm",
    embeddings=("model.decoder.embed_tokens", "model.decoder.embed_positions"),
    unembedding="lm_head",
    mlp_kind="plain",
    up_proj="fc1",
    act="activation_fn",
    mlp_out="fc2",
    ffn=("fc1", "fc2"),
)
#: BLOOM: attention and MLP return their output plus the residual, so their contributions are read at their output
#: projections; a LayerNorm right after the word embeddings; ALiBi (no position embeddings).
BLOOM = Layout(
    family="bloom",
    layers="transformer.h",
    attention="self_attention",
    mlp="mlp",
    down_proj="mlp.dense_4h_to_h",
    layer_norms=("input_layernorm", "post_attention_layernorm"),
    final_norm="transformer.ln_f",
    embeddings=("transformer.word_embeddings",),
    unembedding="lm_head",
    mlp_kind="plain",
    up_proj="mlp.dense_h_to_4h",
    act="mlp.gelu_impl",
    attn_out="self_attention.dense",
    mlp_out="mlp.dense_4h_to_h",
    model_norms=("transformer.word_embeddings_layernorm",),
)


def _gpt_neox(model) -> Layout:
    parallel = bool(getattr(model.config, "use_parallel_residual", True))
    unembedding = "embed_out" if hasattr(model, "embed_out") else "lm_head"
    return replace(GPT_NEOX, parallel=parallel, unembedding=unembedding)


def _falcon(model) -> Layout:
    block = get_module(model, FALCON.layers)[0]
    norms = tuple(name for name in FALCON.layer_norms if isinstance(getattr(block, name, None), torch.nn.Module))
    return replace(FALCON, layer_norms=norms, parallel=bool(getattr(model.config, "parallel_attn", True)))


def _opt(model) -> Layout:
    config = model.config
    if not getattr(config, "do_layer_norm_before", True):
        raise InterferenceError("OPT with do_layer_norm_before=False (opt-350m) normalises after each residual add: "
                                "its residual stream is not a sum of block outputs, and it is not supported")
    if getattr(config, "word_embed_proj_dim", config.hidden_size) != config.hidden_size:
        raise InterferenceError("OPT with word_embed_proj_dim != hidden_size projects in and out of the residual "
                                "stream, and is not supported")
    return OPT


def _bloom(model) -> Layout:
    config = model.config
    if getattr(config, "apply_residual_connection_post_layernorm", False):
        raise InterferenceError("BLOOM with apply_residual_connection_post_layernorm=True adds the normalised "
                                "stream as residual, and is not supported")
    if getattr(config, "pretraining_tp", 1) > 1 and getattr(config, "slow_but_exact", False):
        raise InterferenceError("BLOOM with pretraining_tp > 1 and slow_but_exact=True bypasses its projection "
                                "modules, and is not supported: load it with slow_but_exact=False")
    return BLOOM


LayoutSource = Layout | Callable[[torch.nn.Module], Layout]
#: Layouts by `config.model_type`: a `Layout`, or a function of the model that returns one.
LAYOUTS: dict[str, LayoutSource] = {
    "llama": LLAMA, "mistral": LLAMA, "qwen2": LLAMA, "qwen3": LLAMA, "olmo": replace(LLAMA, family="olmo"),
    "gemma": GEMMA, "gemma2": GEMMA2, "gemma3_text": GEMMA2, "gemma3": GEMMA3_MULTIMODAL,
    "olmo2": OLMO2, "olmo3": OLMO2, "phi3": PHI3, "phi": PHI, "gpt2": GPT2, "gptj": GPTJ,
    "gpt_neox": _gpt_neox, "falcon": _falcon, "opt": _opt, "bloom": _bloom,
}
#: The model types with a built-in layout (`LAYOUTS` also holds the ones registered at run time).
BUILTIN_TYPES = tuple(LAYOUTS)

#: model → its layout, resolved once per model object.
_RESOLVED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def register_layout(model_type: str, layout: LayoutSource) -> None:
    """Use `layout` (a `Layout`, or a function of the model returning one) for every model whose
    `config.model_type` is `model_type`, instead of a built-in or detected one. Check it with `check_layout(model)`.

    Example, for a Llama-style model whose blocks are called `blocks` and whose MLP is `ffn`::

        from dataclasses import replace
        from interference.models.architectures import LLAMA, register_layout
        register_layout("my_model", replace(LLAMA, family="my_model", layers="model.blocks", mlp="ffn",
                                            down_proj="ffn.down_proj", up_proj="ffn.up_proj",
                                            gate_proj="ffn.gate_proj", act="ffn.act_fn"))
    """
    if not isinstance(layout, Layout) and not callable(layout):
        raise InterferenceError(f"register_layout needs a Layout or a function returning one, got {type(layout)}")
    LAYOUTS[str(model_type)] = layout
    _RESOLVED.clear()


def layout_of(model: torch.nn.Module) -> Layout:
    """The layout of a Hugging Face causal LM: the one registered for its `config.model_type`, else one detected
    from its module tree (`detect_layout`); a one-line InterferenceError when neither exists."""
    known = _RESOLVED.get(model)
    if known is not None:
        return known
    model_type = model_type_of(model)
    source = LAYOUTS.get(model_type)
    if source is None:
        layout = detect_layout(model)
    else:
        layout = source if isinstance(source, Layout) else source(model)
        _check_paths(model, layout, model_type)
    _RESOLVED[model] = layout
    return layout


def is_detected(model: torch.nn.Module) -> bool:
    """Whether `model`'s layout was detected from its module tree (not registered for its model type)."""
    return layout_of(model).family == "detected"


def _has(root, path: str) -> bool:
    try:
        return isinstance(get_module(root, path), torch.nn.Module)
    except AttributeError:
        return False


def _check_paths(model, layout: Layout, model_type) -> None:
    """A registered layout whose modules are not in the model: one line naming the first missing one."""
    if not _has(model, layout.layers) or not isinstance(get_module(model, layout.layers), torch.nn.ModuleList):
        raise InterferenceError(f"the layout of {model_type!r} names the decoder layers {layout.layers!r}, which "
                                f"this model does not have; register the right one with register_layout")
    block = get_module(model, layout.layers)[0]
    per_layer = [layout.attention, layout.down_proj, layout.attn_out_path, layout.mlp_out_path, *layout.ffn_paths,
                 *layout.layer_norms, *(p for p in (layout.up_proj, layout.gate_proj, layout.act) if p)]
    model_level = [layout.final_norm, *layout.embeddings, layout.unembedding, *layout.model_norms]
    for path in per_layer:
        if not _has(block, path):
            raise InterferenceError(f"the layout of {model_type!r} names the per-layer module {path!r}, which this "
                                    f"model does not have; register the right one with register_layout")
    for path in model_level:
        if not _has(model, path):
            raise InterferenceError(f"the layout of {model_type!r} names the module {path!r}, which this model "
                                    f"does not have; register the right one with register_layout")


# --- reading a model through its layout -----------------------------------------------------------------------------

def decoder_layers(model: torch.nn.Module) -> torch.nn.ModuleList:
    """The model's list of decoder layers."""
    return get_module(model, layout_of(model).layers)


def n_layers(model: torch.nn.Module) -> int:
    """Number of decoder layers."""
    return len(decoder_layers(model))


def down_proj(model: torch.nn.Module, layer: int) -> torch.nn.Module:
    """The down/out projection of `layer` (its input is the MLP hidden activation m)."""
    return get_module(decoder_layers(model)[layer], layout_of(model).down_proj)


def mlp_input(model: torch.nn.Module, layer: int) -> torch.nn.Module:
    """The module whose input is the MLP input x of `layer` (the up / input projection; the MLP when opaque)."""
    layout = layout_of(model)
    path = layout.up_proj if layout.mlp_kind != "opaque" else (layout.mlp or layout.down_proj)
    return get_module(decoder_layers(model)[layer], path)


def mlp_hidden(model: torch.nn.Module, layer: int, x: torch.Tensor) -> torch.Tensor:
    """m, the MLP hidden activation of `layer`, from its input x [..., d_model] (SPEC §5), by the layout's formula:

    - plain (GPT-2, gpt_neox, gptj, phi, falcon, opt, bloom): m_i = act(W_in·x + b_in)_i;
    - gated (Llama, Mistral, Qwen, OLMo, Gemma): m_i = act(gate_i·x)·(up_i·x);
    - gated_fused (phi3): [g; u] = gate_up·x, g and u its first and second halves, m_i = act(g_i)·u_i.

    Equal to the down projection's input on a forward pass (the ``mlp`` site); an opaque layout has no formula.
    """
    layout = layout_of(model)
    block = decoder_layers(model)[layer]
    if layout.mlp_kind == "opaque":
        raise InterferenceError(f"the MLP of this {layout.family} model is opaque: m is only known as the down "
                                "projection's input (read the 'mlp' site)")
    act, up = get_module(block, layout.act), get_module(block, layout.up_proj)
    if layout.mlp_kind == "plain":
        return act(up(x))
    if layout.mlp_kind == "gated":
        return act(get_module(block, layout.gate_proj)(x)) * up(x)
    gate, up_x = up(x).chunk(2, dim=-1)
    return act(gate) * up_x


def value_vectors(model: torch.nn.Module, layer: int) -> torch.Tensor:
    """FFN value vectors of `layer` as rows, shape [d_mlp, d_model]: v_i is the i-th column of the down projection.

    The FFN output is Σ_i m_i v_i (Geva et al. 2022). Returns a view of the weights, not a copy.
    """
    weight = down_proj(model, layer).weight
    return weight if layout_of(model).down_proj_is_conv1d else weight.T


def final_norm(model: torch.nn.Module) -> torch.nn.Module:
    """The norm applied to the residual stream before unembedding."""
    return get_module(model, layout_of(model).final_norm)


def unembedding(model: torch.nn.Module) -> torch.Tensor:
    """The unembedding matrix E, shape [vocab, d_model] (logits = E · final_norm(x), then `logit_transform`)."""
    return get_module(model, layout_of(model).unembedding).weight


def logit_transform(model: torch.nn.Module, logits: torch.Tensor) -> torch.Tensor:
    """What the model does to E · final_norm(x) before returning logits: scaling (cohere `logit_scale`, granite
    `logits_scaling`) and soft-capping (gemma2/3 `final_logit_softcapping`: c·tanh(logits / c))."""
    layout, config = layout_of(model), getattr(model, "config", None)
    text = text_config(config) if config is not None else None

    def value(attr):
        found = None if attr is None else getattr(config, attr, None)
        found = getattr(text, attr, None) if found is None and attr is not None else found
        return found if isinstance(found, int | float) and not isinstance(found, bool) else None

    scale, divisor, cap = value(layout.logit_scale), value(layout.logit_divisor), value(layout.logit_softcap)
    if scale is not None:
        logits = logits * scale
    if divisor is not None:
        logits = logits / divisor
    if cap:
        logits = torch.tanh(logits / cap) * cap
    return logits


def unembed(model: torch.nn.Module, residual: torch.Tensor) -> torch.Tensor:
    """The model's logits for residual-stream vectors [..., d_model]: final norm, unembedding (with its bias, if any)
    and `logit_transform` — the logit lens."""
    layout = layout_of(model)
    return logit_transform(model, get_module(model, layout.unembedding)(final_norm(model)(residual)))



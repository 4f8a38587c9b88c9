"""Where things live inside each supported architecture, under one canonical vocabulary.

Views (residual stream, MLP activations, value vectors), parameter-group freezing and the FFN analyses all ask the
`Layout` of a model instead of hard-coding module names. Supported: Llama-style decoders (Llama, Mistral, Qwen2,
Qwen3, SmolLM) and GPT-2.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .errors import InterferenceError


@dataclass(frozen=True)
class Layout:
    """Module paths of one architecture family (dotted attribute paths; per-layer paths are relative to a layer).

    Attributes:
        family: "llama" (gated SiLU MLP, RMSNorm, rotary) or "gpt2" (GELU MLP, LayerNorm, learned positions).
        layers: path of the list of decoder layers, relative to the model.
        attention: path of a layer's attention block (q, k, v, o projections live under it).
        mlp: path of a layer's MLP block.
        down_proj: path of a layer's down/out projection, whose input is the MLP hidden activation m.
        layer_norms: paths of a layer's norms.
        final_norm: path of the final norm, relative to the model.
        embeddings: paths of the input embeddings (token and, for GPT-2, position).
        unembedding: path of the output projection.
        gated: True when m_i = act(gate_i·x)·(up_i·x) (Llama), False when m_i = act(W_in·x)_i (GPT-2).
        down_proj_is_conv1d: GPT-2 stores its projection as Conv1D with weight [in, out] instead of Linear's [out, in].
    """

    family: str
    layers: str
    attention: str
    mlp: str
    down_proj: str
    layer_norms: tuple[str, ...]
    final_norm: str
    embeddings: tuple[str, ...]
    unembedding: str
    gated: bool
    down_proj_is_conv1d: bool


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
    gated=True,
    down_proj_is_conv1d=False,
)
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
    gated=False,
    down_proj_is_conv1d=True,
)
LAYOUTS: dict[str, Layout] = {"llama": LLAMA, "mistral": LLAMA, "qwen2": LLAMA, "qwen3": LLAMA, "gpt2": GPT2}


def layout_of(model: torch.nn.Module) -> Layout:
    """The layout of a Hugging Face causal LM, from its `config.model_type`."""
    model_type = getattr(getattr(model, "config", None), "model_type", None)
    if model_type not in LAYOUTS:
        raise InterferenceError(
            f"architecture {model_type!r} is not supported (supported: {', '.join(sorted(LAYOUTS))})"
        )
    return LAYOUTS[model_type]


def get_module(root: torch.nn.Module, path: str) -> torch.nn.Module:
    """The sub-module of `root` at a dotted attribute path."""
    module = root
    for part in path.split("."):
        module = getattr(module, part)
    return module


def decoder_layers(model: torch.nn.Module) -> torch.nn.ModuleList:
    """The model's list of decoder layers."""
    return get_module(model, layout_of(model).layers)


def n_layers(model: torch.nn.Module) -> int:
    """Number of decoder layers."""
    return len(decoder_layers(model))


def down_proj(model: torch.nn.Module, layer: int) -> torch.nn.Module:
    """The down/out projection of `layer` (its input is the MLP hidden activation m)."""
    return get_module(decoder_layers(model)[layer], layout_of(model).down_proj)


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
    """The unembedding matrix E, shape [vocab, d_model] (logits = E · final_norm(x))."""
    return get_module(model, layout_of(model).unembedding).weight

"""The vocabulary of layouts: `Layout` names where each part of a decoder lives (dotted module paths), and
`get_module` follows such a path. `interference.models.architectures` holds the built-in layouts and finds a model's;
`interference.models.layout_detection` reads one off a module tree.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..io.errors import InterferenceError

#: How the MLP hidden activation m (the down projection's input) is computed from the MLP input x.
MLP_KINDS = ("plain", "gated", "gated_fused", "opaque")


@dataclass(frozen=True, kw_only=True)
class Layout:
    """Module paths of one architecture family (dotted attribute paths; per-layer paths are relative to a layer).

    Attributes:
        family: the family's name ("llama", "gemma2", "gpt_neox", ...; "detected" for a detected layout).
        layers: path of the list of decoder layers, relative to the model.
        attention: path of a layer's attention block (its parameters are the `attention` group).
        mlp: path of a layer's MLP block, or None when the MLP has no module of its own (opt).
        down_proj: path of a layer's down/out projection, whose input is the MLP hidden activation m.
        layer_norms: paths of a layer's norms (the `norms` group).
        final_norm: path of the final norm, relative to the model.
        embeddings: paths of the input embeddings (token and, for GPT-2 and OPT, position).
        unembedding: path of the output projection.
        mlp_kind: how m is computed from the MLP input x (see `mlp_hidden`): "plain" m = act(up·x + b),
            "gated" m = act(gate·x)·(up·x), "gated_fused" the same with [gate; up] = up·x split in halves,
            "opaque" m is the down projection's input and no formula is claimed.
        up_proj: path of the input projection W_in (plain), the up projection (gated), or the fused [gate; up] one.
        gate_proj: path of the gate projection (gated only).
        act: path of the MLP's activation module.
        down_proj_is_conv1d: GPT-2 stores its projection as Conv1D with weight [in, out] instead of Linear's [out, in].
        attn_out: path of the module whose output is the attention's contribution to the residual stream (default:
            `attention`; a post-norm or an output projection where the family needs it).
        mlp_out: the same for the MLP (default: `mlp`).
        ffn: paths of the `ffn` group's modules (default: `mlp`).
        model_norms: model-level norms besides the final one (bloom's embedding norm), in the `norms` group.
        parallel: True when attention and MLP read the same residual stream (None: not known).
        logit_softcap: config attribute c of soft-capping, logits = c·tanh(logits / c).
        logit_scale: config attribute multiplying the logits.
        logit_divisor: config attribute dividing the logits.
        transformer_lens: None when TransformerLens's bridge agrees with the hf backend on this family, else why not.
    """

    family: str
    layers: str
    attention: str
    mlp: str | None
    down_proj: str
    layer_norms: tuple[str, ...]
    final_norm: str
    embeddings: tuple[str, ...]
    unembedding: str
    mlp_kind: str = "gated"
    up_proj: str | None = None
    gate_proj: str | None = None
    act: str | None = None
    down_proj_is_conv1d: bool = False
    attn_out: str | None = None
    mlp_out: str | None = None
    ffn: tuple[str, ...] = ()
    model_norms: tuple[str, ...] = ()
    parallel: bool | None = False
    logit_softcap: str | None = None
    logit_scale: str | None = None
    logit_divisor: str | None = None
    transformer_lens: str | None = None

    def __post_init__(self) -> None:
        if self.mlp_kind not in MLP_KINDS:
            raise InterferenceError(f"Layout.mlp_kind must be one of {', '.join(MLP_KINDS)}, got {self.mlp_kind!r}")
        if self.mlp_kind != "opaque" and (self.up_proj is None or self.act is None):
            raise InterferenceError(f"Layout.mlp_kind {self.mlp_kind!r} needs up_proj and act (or use 'opaque')")
        if self.mlp_kind == "gated" and self.gate_proj is None:
            raise InterferenceError("Layout.mlp_kind 'gated' needs gate_proj")
        if self.mlp is None and not (self.ffn and self.mlp_out):
            raise InterferenceError("a Layout without an mlp module needs ffn and mlp_out")

    @property
    def gated(self) -> bool:
        """m_i = act(gate_i·x)·(up_i·x) (separate or fused gate and up projections)."""
        return self.mlp_kind in ("gated", "gated_fused")

    @property
    def attn_out_path(self) -> str:
        return self.attn_out or self.attention

    @property
    def mlp_out_path(self) -> str:
        return self.mlp_out or self.mlp

    @property
    def ffn_paths(self) -> tuple[str, ...]:
        return self.ffn or (self.mlp,)

    def m_formula(self) -> str:
        """What m_i is for this layout, in words (SPEC §5)."""
        return {
            "plain": "m_i = act(W_in·x + b_in)_i",
            "gated": "m_i = act(gate_i·x) · (up_i·x)",
            "gated_fused": "m_i = act(gate_up_i·x) · (gate_up_{d_mlp+i}·x)  (fused [gate; up], split in halves)",
            "opaque": "m_i = the i-th input of the down projection (no formula checked)",
        }[self.mlp_kind]


#: Config attributes of logit soft-capping, scaling and division (applied by the logit lens where a model has them).
LOGIT_ATTRIBUTES = dict(logit_softcap="final_logit_softcapping", logit_scale="logit_scale",
                        logit_divisor="logits_scaling")


def get_module(root: torch.nn.Module, path: str) -> torch.nn.Module:
    """The sub-module of `root` at a dotted attribute path."""
    module = root
    for part in path.split("."):
        module = getattr(module, part)
    return module


def text_config(config):
    """The text part of a config (multimodal configs nest it; others are their own)."""
    getter = getattr(config, "get_text_config", None)
    return getter() if callable(getter) else config


def model_type_of(model) -> str | None:
    """`model.config.model_type`, or None."""
    return getattr(getattr(model, "config", None), "model_type", None)

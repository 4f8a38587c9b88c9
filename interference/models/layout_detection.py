"""Layouts found rather than registered: `detect_layout` reads the decoder-layer list, attention, MLP and its
projections, norms, embeddings and unembedding off a model's module tree and config. `interference.models.architectures`
calls it (`layout_of`) for a model type without a registered layout, and `interference.models.layout_check` verifies
the result on a forward pass.
"""

from __future__ import annotations

import re

import torch

from ..io.errors import InterferenceError
from .layout import LOGIT_ATTRIBUTES, Layout, get_module, model_type_of, text_config

# --- detection from the module tree --------------------------------------------------------------------------------

_ATTENTION_NAMES = ("self_attn", "self_attention", "attn", "attention", "mixer")
_MLP_NAMES = ("mlp", "feed_forward", "ffn", "ff", "feedforward")
_DOWN_NAMES = ("down_proj", "c_proj", "dense_4h_to_h", "fc_out", "fc2", "w2", "wo", "out_proj", "dense_out")
_GATE_NAMES = ("gate_proj", "w1", "wi_0")
_UP_NAMES = ("up_proj", "w3", "wi_1")
_FUSED_NAMES = ("gate_up_proj",)
_IN_NAMES = ("c_fc", "fc1", "dense_h_to_4h", "fc_in", "w_in", "wi", "in_proj")
_ACT_NAMES = ("act_fn", "act", "activation_fn", "activation", "gelu_impl", "act_fun")
_FINAL_NAMES = ("norm", "final_layernorm", "final_layer_norm", "ln_f", "norm_f", "final_norm")
#: How to pass a layout when detection or its check fails.
HELP = "pass a Layout by hand: interference.models.architectures.register_layout({!r}, Layout(...))"


def _is_norm(module: torch.nn.Module) -> bool:
    return isinstance(module, torch.nn.LayerNorm | torch.nn.RMSNorm) or "norm" in type(module).__name__.lower()


def _is_linear(module: torch.nn.Module) -> bool:
    return isinstance(module, torch.nn.Linear) or type(module).__name__ == "Conv1D"


def _out_features(module: torch.nn.Module) -> int:
    return module.weight.shape[1] if type(module).__name__ == "Conv1D" else module.weight.shape[0]




def _config_int(config, *names) -> int | None:
    for name in names:
        value = getattr(config, name, None)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None


def _find_layers(model, n_layers: int | None) -> str | None:
    candidates = []
    for name, module in model.named_modules():
        if not isinstance(module, torch.nn.ModuleList) or not len(module) or not name:
            continue
        if len({type(child) for child in module}) != 1 or (n_layers is not None and len(module) != n_layers):
            continue
        if re.search(r"vision|audio|encoder|visual|image", name):
            continue
        children = dict(module[0].named_children())
        if any(_child_named(children, _ATTENTION_NAMES, "att")):
            candidates.append(name)
    return min(candidates, key=lambda n: n.count(".")) if candidates else None


def _child_named(children: dict, names, fragment: str | None = None) -> list[str]:
    found = [n for n in names if n in children]
    if not found and fragment:
        found = [n for n, m in children.items() if fragment in n.lower() and not _is_norm(m)
                 and any(True for _ in m.parameters())]
    return found


def _inside(module, prefix: str, names) -> str | None:
    children = dict(module.named_children())
    for name in names:
        if name in children:
            return f"{prefix}.{name}" if prefix else name
    return None


def detect_layout(model: torch.nn.Module) -> Layout:
    """A `Layout` found from `model`'s module tree and config, or a one-line InterferenceError naming what is missing.

    The decoder layers are the ModuleList of `num_hidden_layers` identical blocks holding an attention module; in a
    block, the attention and MLP are found by name (``self_attn``, ``attention``, ``mlp``, ``feed_forward``, ...), the
    MLP's projections by name and shape (the down projection maps d_mlp → d_model), the norms by class name; the final
    norm is the norm module outside the layers, the embeddings and unembedding are the model's input and output
    embeddings. Post-norm blocks (a ``post_feedforward_layernorm``) read ``attn_out`` and ``mlp_out`` after their
    post-norms. Use `check_layout` to verify the result on a forward pass (`load_model` does).
    """
    model_type = model_type_of(model)

    def missing(what: str, detail: str = "") -> InterferenceError:
        return InterferenceError(f"architecture {model_type!r} is not supported: cannot find {what}{detail}; "
                                 + HELP.format(model_type))

    config = text_config(getattr(model, "config", None))
    n_layers = _config_int(config, "num_hidden_layers", "n_layer", "num_layers", "n_layers")
    d_model = _config_int(config, "hidden_size", "n_embd", "d_model", "dim")
    layers = _find_layers(model, n_layers)
    if layers is None:
        return _raise(missing("its decoder-layer list", f" (no ModuleList of {n_layers} blocks with an attention)"
                              if n_layers else " (no ModuleList of blocks with an attention)"))
    block = get_module(model, layers)[0]
    children = dict(block.named_children())
    attention = _child_named(children, _ATTENTION_NAMES, "att")[0]
    mlp_names = _child_named(children, _MLP_NAMES, "mlp")
    mlp = mlp_names[0] if mlp_names else None
    owner = get_module(block, mlp) if mlp else block
    if mlp and any(re.search(r"expert|router", n) for n, _ in owner.named_modules()):
        return _raise(missing("a single MLP down projection", f" (layer MLP {mlp!r} is a mixture of experts)"))
    linears = {n: m for n, m in owner.named_children() if _is_linear(m)}
    down = _inside(owner, mlp or "", _DOWN_NAMES) if mlp else next((n for n in _DOWN_NAMES if n in linears), None)
    if down is None and d_model is not None:
        outs = [n for n, m in linears.items() if _out_features(m) == d_model and m.weight.numel() != d_model ** 2]
        if len(outs) == 1:
            down = f"{mlp}.{outs[0]}" if mlp else outs[0]
    if down is None:
        names = ", ".join(dict(owner.named_children())) or "none"
        where = f"layer MLP {mlp!r}" if mlp else f"layer {layers}.0 (no MLP module)"
        return _raise(missing("the MLP down projection", f" in {where} (children: {names})"))
    prefix = mlp or ""
    gate, up = _inside(owner, prefix, _GATE_NAMES), _inside(owner, prefix, _UP_NAMES)
    fused, w_in = _inside(owner, prefix, _FUSED_NAMES), _inside(owner, prefix, _IN_NAMES)
    act = _inside(owner, prefix, _ACT_NAMES)
    if gate and up and act:
        kind, up_proj = "gated", up
    elif w_in and act and not (gate or up or fused):
        kind, up_proj = "plain", w_in
    else:  # a fused [gate; up] of an unknown family: its split is not known, so m is only the down input
        kind, up_proj, gate = "opaque", None, None
    ffn = ()
    if mlp is None:
        ffn = tuple(n for n in linears if n in (down, up_proj, gate) or n in _IN_NAMES + _GATE_NAMES + _UP_NAMES)
    norms = tuple(n for n, m in children.items() if _is_norm(m))
    attn_out, mlp_out = None, None if mlp else down
    if "post_feedforward_layernorm" in norms and "post_attention_layernorm" in norms:
        attn_out, mlp_out = "post_attention_layernorm", "post_feedforward_layernorm"
    paths = {id(m): n for n, m in model.named_modules()}
    inputs, outputs = model.get_input_embeddings(), model.get_output_embeddings()
    if inputs is None or id(inputs) not in paths:
        return _raise(missing("its input embeddings", " (get_input_embeddings() gives none)"))
    if outputs is None or id(outputs) not in paths:
        return _raise(missing("its unembedding", " (get_output_embeddings() gives none)"))
    embeddings = [paths[id(inputs)]]
    outside = [(n, m) for n, m in model.named_modules() if n and not n.startswith(layers + ".") and n != layers]
    embeddings += [n for n, m in outside if isinstance(m, torch.nn.Embedding) and m is not inputs
                   and re.search(r"pos|wpe", n.split(".")[-1])]
    model_norms = [n for n, m in outside if _is_norm(m) and not re.search(r"vision|audio|visual", n)
                   and n.count(".") <= layers.count(".")]
    finals = [n for n in model_norms if n.split(".")[-1] in _FINAL_NAMES] or \
             [n for n in model_norms if "emb" not in n]
    if len(finals) != 1:
        found = ", ".join(model_norms) or "none"
        return _raise(missing("its final norm", f" (norms outside the layers: {found})"))
    return Layout(
        family="detected", layers=layers, attention=attention, mlp=mlp, down_proj=down, layer_norms=norms,
        final_norm=finals[0], embeddings=tuple(embeddings), unembedding=paths[id(outputs)], mlp_kind=kind,
        up_proj=up_proj, gate_proj=gate if kind == "gated" else None, act=act if kind != "opaque" else None,
        down_proj_is_conv1d=type(get_module(block, down)).__name__ == "Conv1D", attn_out=attn_out, mlp_out=mlp_out,
        ffn=ffn, model_norms=tuple(n for n in model_norms if n != finals[0]), parallel=None, **LOGIT_ATTRIBUTES,
    )


def _raise(error: InterferenceError):
    raise error

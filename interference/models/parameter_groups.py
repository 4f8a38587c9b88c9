"""Parameter groups of a model, selected by name: which parameters train (`TrainConfig.freeze` / `train_only`).

A selection is comma-separated selectors `GROUP` or `GROUP@LAYERS`, resolved through the model's `Layout`.

GROUP: `attention` (q, k, v, o, fused qkv, and norms inside the attention such as q_norm / k_norm), one of its
matrices `attention_q`, `attention_k`, `attention_v`, `attention_o` (with their biases; a fused qkv projection, as
in GPT-2, cannot be split and is refused for q, k and v), `ffn` (gate, up,
down, fused gate_up / GPT-2 c_fc, c_proj / OPT fc1, fc2), `norms` (per-layer norms, post-norms included, plus the
final norm and model-level norms such as BLOOM's embedding norm when no layers are given), `embeddings` (token and
learned position embeddings), `unembedding`, or `all` (with layers: everything in them).
LAYERS: `3` or an inclusive range `2-5` (0-based); embeddings and unembedding are not per layer.
`freeze=SELECTION` freezes the selection and trains the rest; `train_only=SELECTION` trains only it.
Tied weights (SmolLM2, GPT-2) are one matrix: naming one of embeddings/unembedding without the other is refused.
"""

from __future__ import annotations

import logging
import re

import torch

from ..io.errors import InterferenceError
from .architectures import decoder_layers, get_module, layout_of

log = logging.getLogger("interference.train")
GROUPS = ("attention", "attention_q", "attention_k", "attention_v", "attention_o", "ffn", "norms", "embeddings",
          "unembedding", "all")
#: The modules of one attention matrix, by the last part of their name inside the attention block.
ATTENTION_MATRICES = {"q": ("q_proj", "query", "q"), "k": ("k_proj", "key", "k"), "v": ("v_proj", "value", "v"),
                      "o": ("o_proj", "out_proj", "dense", "c_proj", "o", "out")}
FUSED_QKV = ("c_attn", "qkv_proj", "query_key_value", "Wqkv", "qkv")
_SELECTOR = re.compile(r"^(?P<group>[a-z_]+)(?:@(?P<first>\d+)(?:-(?P<last>\d+))?)?$")


def parse_selection(text: str) -> tuple[tuple[str, range | None], ...]:
    """`"attention,ffn@2-4"` → (("attention", None), ("ffn", range(2, 5))); one-line errors name the bad part."""
    parts = [p.strip() for p in str(text).split(",") if p.strip()]
    if not parts:
        raise InterferenceError("empty parameter selection: name at least one group (e.g. 'attention' or 'ffn@3')")
    selectors = []
    for part in parts:
        match = _SELECTOR.match(part)
        if not match:
            raise InterferenceError(f"bad selector {part!r}: use GROUP, GROUP@LAYER or GROUP@FIRST-LAST")
        group, first, last = match["group"], match["first"], match["last"] or match["first"]
        if group not in GROUPS:
            raise InterferenceError(f"unknown parameter group {group!r} (choose from {', '.join(GROUPS)})")
        if first is not None and group in ("embeddings", "unembedding"):
            raise InterferenceError(f"group {group!r} is not per layer: drop the @layers part")
        if first is not None and int(first) > int(last):
            raise InterferenceError(f"empty layer range {first}-{last} for group {group!r}")
        selectors.append((group, None if first is None else range(int(first), int(last) + 1)))
    return tuple(selectors)


def _ids(module: torch.nn.Module, path: str) -> set[int]:
    return {id(p) for p in get_module(module, path).parameters()}


def _group(model: torch.nn.Module, group: str, layers: range | None) -> set[int]:
    """ids of the parameters of one group, in the given layers or everywhere."""
    layout = layout_of(model)
    blocks = get_module(model, layout.layers)
    bad = [i for i in (layers or ()) if not 0 <= i < len(blocks)]
    if bad:
        raise InterferenceError(f"layer {bad[0]} out of range: the model has layers 0-{len(blocks) - 1}")
    if group == "all" and layers is None:
        return {id(p) for p in model.parameters()}
    if group in ("embeddings", "unembedding"):
        paths = layout.embeddings if group == "embeddings" else (layout.unembedding,)
        return set().union(*(_ids(model, path) for path in paths))
    if group.startswith("attention_"):
        return {i for layer in (layers or range(len(blocks)))
                for i in _attention_matrix(get_module(blocks[layer], layout.attention), group[len("attention_"):])}
    paths = {"all": ("",), "attention": (layout.attention,), "ffn": layout.ffn_paths,
             "norms": layout.layer_norms}[group]
    ids = {i for layer in (layers or range(len(blocks))) for path in paths
           for i in (_ids(blocks[layer], path) if path else {id(p) for p in blocks[layer].parameters()})}
    if group == "norms" and layers is None:
        ids |= set().union(*(_ids(model, path) for path in (layout.final_norm, *layout.model_norms)))
    return ids


#: The groups every parameter falls in once, in `parameter_groups`' order of precedence (tied embeddings and
#: unembedding are one matrix, counted as embeddings).
PARTITION = ("embeddings", "unembedding", "attention", "ffn", "norms")


def parameter_groups(model: torch.nn.Module) -> dict[str, str]:
    """Parameter name (as in `named_parameters()`) → its group: one of `PARTITION`, or "other" for a parameter no
    group holds (e.g. a learned bias outside the layers)."""
    ids = {group: _group(model, group, None) for group in PARTITION}
    return {name: next((g for g in PARTITION if id(p) in ids[g]), "other") for name, p in model.named_parameters()}


def layer_slots(model: torch.nn.Module) -> list[str]:
    """The slots `parameter_layers` puts parameters in, in order: "layer 0", …, "layer n−1", "other"."""
    return [f"layer {i}" for i in range(len(decoder_layers(model)))] + ["other"]


def parameter_layers(model: torch.nn.Module) -> dict[str, str]:
    """Parameter name (as in `named_parameters()`) → "layer i", its decoder layer, or "other" (embeddings, final norm,
    unembedding: what sits outside the layers)."""
    prefix = layout_of(model).layers + "."
    return {name: f"layer {name[len(prefix):].split('.')[0]}" if name.startswith(prefix) else "other"
            for name, _ in model.named_parameters()}


def _attention_matrix(attention: torch.nn.Module, matrix: str) -> set[int]:
    """ids of the parameters of one matrix (q, k, v or o) of an attention block, found by module name."""
    found, fused = set(), []
    for name, module in attention.named_modules():
        last = name.rsplit(".", 1)[-1]
        if last in ATTENTION_MATRICES[matrix]:
            found |= {id(p) for p in module.parameters()}
        elif last in FUSED_QKV:
            fused.append(name)
    if fused and matrix != "o":
        raise InterferenceError(f"this model's attention projects q, k and v in one matrix ({fused[0]}): "
                                f"attention_{matrix} cannot be selected alone (use attention)")
    if not found:
        raise InterferenceError(f"no {matrix} projection found in the attention block {type(attention).__name__} "
                                f"(modules named {', '.join(ATTENTION_MATRICES[matrix])})")
    return found


def resolve_trainable(model: torch.nn.Module, *, freeze: str | None = None, train_only: str | None = None) -> list[str]:
    """Names (as in `named_parameters()`, tied weights once) of the parameters that train, in model order."""
    if freeze is not None and train_only is not None:
        raise InterferenceError("give either freeze or train_only, not both")
    names = list(model.named_parameters())
    if freeze is None and train_only is None:
        return [name for name, _ in names]
    selectors = parse_selection(freeze if freeze is not None else train_only)
    selected = set().union(*(_group(model, group, layers) for group, layers in selectors))
    groups = {group for group, _ in selectors}
    whole = any(group == "all" and layers is None for group, layers in selectors)
    if not whole and ("embeddings" in groups) != ("unembedding" in groups) and (
            _group(model, "embeddings", None) & _group(model, "unembedding", None)):
        raise InterferenceError(
            "embeddings and unembedding are tied in this model (one shared matrix): select both groups or neither")
    trainable = [name for name, p in names if (id(p) in selected) == (freeze is None)]
    if not trainable:
        raise InterferenceError("the parameter selection leaves nothing to train")
    return trainable


def apply_trainable(model: torch.nn.Module, trainable: list[str]) -> dict[str, bool]:
    """Set requires_grad exactly on `trainable`; returns the previous flags (for `restore_flags`)."""
    wanted, previous = set(trainable), {name: p.requires_grad for name, p in model.named_parameters()}
    if wanted - set(previous):
        raise InterferenceError(f"unknown parameter {sorted(wanted - set(previous))[0]!r} in the trainable list")
    for name, param in model.named_parameters():
        param.requires_grad_(name in wanted)
    count = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    log.info("trainable: %d tensors, %d of %d parameters", len(wanted), count, total)
    return previous


def restore_flags(model: torch.nn.Module, previous: dict[str, bool]) -> None:
    """Put back the requires_grad flags returned by `apply_trainable`."""
    for name, param in model.named_parameters():
        param.requires_grad_(previous.get(name, param.requires_grad))

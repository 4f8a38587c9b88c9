"""Which parameters train: parameter groups and layer selections, resolved through the model's `Layout`.

A selection is a comma-separated list of selectors `GROUP` or `GROUP@LAYERS`:

- GROUP is one of `attention` (q, k, v, o and their biases), `ffn` (gate, up, down / GPT-2 c_fc, c_proj),
  `norms` (per-layer norms, plus the final norm when no layers are given), `embeddings` (token, and GPT-2 position,
  embeddings), `unembedding` (the output projection) or `all` (everything; with layers, everything in those layers);
- LAYERS is a layer `3` or an inclusive range `2-5` (0-based); embeddings and unembedding are not per layer.

Examples: `attention` (Table 1's attention-only, as `train_only`), `ffn@4`, `all@0-2,norms`.
`freeze=SELECTION` freezes the selected parameters and trains the rest; `train_only=SELECTION` trains only them.

Tied weights (SmolLM2 and GPT-2 share one matrix between embeddings and unembedding) are one parameter: a selection
that names one of the two groups and not the other is ambiguous and rejected, naming both groups.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

import torch

from ..architectures import get_module, layout_of
from ..errors import InterferenceError

log = logging.getLogger("interference.train")

#: Parameter groups a selection can name.
GROUPS = ("attention", "ffn", "norms", "embeddings", "unembedding", "all")
_MODEL_LEVEL = ("embeddings", "unembedding")
_SELECTOR = re.compile(r"^(?P<group>[a-z_]+)(?:@(?P<first>\d+)(?:-(?P<last>\d+))?)?$")


@dataclass(frozen=True)
class Selector:
    """One group, optionally restricted to the layers first..last (inclusive)."""

    group: str
    first: int | None = None
    last: int | None = None

    def __post_init__(self) -> None:
        if self.group not in GROUPS:
            raise InterferenceError(f"unknown parameter group {self.group!r} (choose from {', '.join(GROUPS)})")
        if (self.first is None) != (self.last is None):
            raise InterferenceError(f"selector {self.group!r} needs both ends of its layer range")
        if self.first is not None:
            if self.group in _MODEL_LEVEL:
                raise InterferenceError(f"group {self.group!r} is not per layer: drop the @layers part")
            if self.first > self.last:
                raise InterferenceError(f"empty layer range {self.first}-{self.last} for group {self.group!r}")

    @property
    def layers(self) -> range | None:
        return None if self.first is None else range(self.first, self.last + 1)


def parse_selection(text: str) -> tuple[Selector, ...]:
    """Parse `"attention,ffn@2-4"` into selectors; raises InterferenceError naming the bad part."""
    parts = [p.strip() for p in str(text).split(",") if p.strip()]
    if not parts:
        raise InterferenceError("empty parameter selection: name at least one group (e.g. 'attention' or 'ffn@3')")
    selectors = []
    for part in parts:
        match = _SELECTOR.match(part)
        if not match:
            raise InterferenceError(f"bad selector {part!r}: use GROUP, GROUP@LAYER or GROUP@FIRST-LAST")
        first, last = match["first"], match["last"]
        first_i = None if first is None else int(first)
        last_i = None if first is None else int(last if last is not None else first)
        selectors.append(Selector(match["group"], first_i, last_i))
    return tuple(selectors)


def _params_under(model: torch.nn.Module, path: str) -> set[int]:
    return {id(p) for p in get_module(model, path).parameters()}


def _group_params(model: torch.nn.Module, group: str, layers: range | None) -> set[int]:
    """ids of the parameters of one group (in the given layers, or everywhere)."""
    layout = layout_of(model)
    blocks = get_module(model, layout.layers)
    if layers is not None:
        bad = [i for i in layers if not 0 <= i < len(blocks)]
        if bad:
            raise InterferenceError(f"layer {bad[0]} out of range: the model has layers 0-{len(blocks) - 1}")
    chosen = range(len(blocks)) if layers is None else layers
    ids: set[int] = set()
    if group == "all":
        if layers is None:
            return {id(p) for p in model.parameters()}
        for i in chosen:
            ids |= {id(p) for p in blocks[i].parameters()}
        return ids
    if group == "embeddings":
        for path in layout.embeddings:
            ids |= _params_under(model, path)
        return ids
    if group == "unembedding":
        return _params_under(model, layout.unembedding)
    for i in chosen:
        if group == "attention":
            ids |= _params_under(blocks[i], layout.attention)
        elif group == "ffn":
            ids |= _params_under(blocks[i], layout.mlp)
        elif group == "norms":
            for norm in layout.layer_norms:
                ids |= _params_under(blocks[i], norm)
    if group == "norms" and layers is None:
        ids |= _params_under(model, layout.final_norm)
    return ids


def _selected(model: torch.nn.Module, selectors: tuple[Selector, ...]) -> set[int]:
    ids: set[int] = set()
    for selector in selectors:
        ids |= _group_params(model, selector.group, selector.layers)
    groups = {s.group for s in selectors}
    if "all" not in groups or any(s.group == "all" and s.layers is not None for s in selectors):
        embed = _group_params(model, "embeddings", None)
        unembed = _group_params(model, "unembedding", None)
        shared = embed & unembed
        if shared and ("embeddings" in groups) != ("unembedding" in groups):
            raise InterferenceError(
                "embeddings and unembedding are tied in this model (one shared matrix): select both groups or neither"
            )
    return ids


def resolve_trainable(model: torch.nn.Module, *, freeze: str | None = None, train_only: str | None = None) -> list[str]:
    """Names (as in `model.named_parameters()`, tied weights once) of the parameters that train, in model order.

    With neither option every parameter trains; `freeze` and `train_only` are mutually exclusive.
    """
    if freeze is not None and train_only is not None:
        raise InterferenceError("give either freeze or train_only, not both")
    names = [(name, p) for name, p in model.named_parameters()]
    if freeze is None and train_only is None:
        return [name for name, _ in names]
    selected = _selected(model, parse_selection(freeze if freeze is not None else train_only))
    keep = (lambda p: id(p) not in selected) if freeze is not None else (lambda p: id(p) in selected)
    trainable = [name for name, p in names if keep(p)]
    if not trainable:
        raise InterferenceError("the parameter selection leaves nothing to train")
    return trainable


def apply_trainable(model: torch.nn.Module, trainable: list[str]) -> dict[str, bool]:
    """Set requires_grad to True exactly on `trainable`; returns the previous flags (for `restore_flags`)."""
    wanted = set(trainable)
    previous = {}
    for name, param in model.named_parameters():
        previous[name] = param.requires_grad
        param.requires_grad_(name in wanted)
    missing = wanted - set(previous)
    if missing:
        raise InterferenceError(f"unknown parameter {sorted(missing)[0]!r} in the trainable list")
    n_train = sum(p.numel() for n, p in model.named_parameters() if n in wanted)
    n_all = sum(p.numel() for p in model.parameters())
    log.info("trainable: %d tensors, %d of %d parameters: %s", len(wanted), n_train, n_all, ", ".join(trainable))
    return previous


def restore_flags(model: torch.nn.Module, previous: dict[str, bool]) -> None:
    """Put back the requires_grad flags returned by `apply_trainable`."""
    for name, param in model.named_parameters():
        if name in previous:
            param.requires_grad_(previous[name])

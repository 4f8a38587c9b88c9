"""`check_layout`: verify a model's layout (registered or detected) on one short forward pass, through the views.

`interference.models.loading.load_model` runs it on every model whose layout was detected.
"""

from __future__ import annotations

import torch

from ..io.errors import InterferenceError
from .architectures import layout_of, mlp_hidden, mlp_input, n_layers, unembed, unembedding
from .generation import inference_mode
from .layout import Layout, model_type_of
from .layout_detection import HELP
from .views import SITES, run_sites


def check_layout(model: torch.nn.Module, *, atol: float = 1e-4) -> Layout:
    """Verify `model`'s layout on one forward pass of a few tokens; returns it, or raises a one-line
    InterferenceError naming what disagrees and how to register a layout by hand.

    Checked at every layer: resid = resid_pre + attn_out + mlp_out, resid feeds the next layer, m follows the
    layout's formula (`mlp_hidden`, unless opaque); and the logit lens of the last residual stream (`unembed`)
    reproduces the model's logits. Tolerances are relative to the activations' scale (`atol` per unit).
    """
    layout = layout_of(model)
    model_type = model_type_of(model)
    parameter = next(model.parameters())
    vocab = unembedding(model).shape[0]
    ids = (torch.arange(1, 6) * 7 % vocab)[None, :].to(parameter.device)
    n = n_layers(model)
    captured = {}
    handles = []
    if layout.mlp_kind != "opaque":
        for layer in range(n):
            def grab(module, args, layer=layer):
                captured.setdefault(layer, args[0].detach().clone())
            handles.append(mlp_input(model, layer).register_forward_pre_hook(grab))
    try:
        logits, found = run_sites(model, ids, read=[(layer, site) for layer in range(n) for site in SITES])
    finally:
        for handle in handles:
            handle.remove()
    tolerance = atol if parameter.dtype == torch.float32 else 3e-2

    def close(a, b) -> bool:
        a, b = a.float(), b.float()
        return a.shape == b.shape and bool(((a - b).abs() <= tolerance * (1 + b.abs().max())).all())

    def fail(what: str) -> InterferenceError:
        return InterferenceError(f"the {layout.family} layout of {model_type!r} does not fit this model: {what}; "
                                 + HELP.format(model_type))

    for (layer, site), value in found.items():
        if tuple(value.shape[:2]) != tuple(ids.shape):
            raise fail(f"the {site} site of layer {layer} has shape {tuple(value.shape)}, not [batch, seq, d]")
    with inference_mode(model):
        for layer in range(n):
            total = found[(layer, "resid_pre")] + found[(layer, "attn_out")] + found[(layer, "mlp_out")]
            if not close(total, found[(layer, "resid")]):
                raise fail(f"at layer {layer} resid != resid_pre + attn_out + mlp_out (does the block scale or "
                           "normalise its outputs after the residual add?)")
            if layer + 1 < n and not close(found[(layer, "resid")], found[(layer + 1, "resid_pre")]):
                raise fail(f"layer {layer}'s output is not layer {layer + 1}'s input")
            m = found[(layer, "mlp")]
            if layer in captured and not close(mlp_hidden(model, layer, captured[layer]).reshape(m.shape), m):
                raise fail(f"at layer {layer} m differs from {layout.m_formula()}")
        if not close(unembed(model, found[(n - 1, "resid")]), logits):
            raise fail("final norm + unembedding of the last residual stream do not give the model's logits")
    return layout

"""Where in the network a loss changed: the change of a set of facts' answer loss between a start θ⁰ (a `Snapshot`)
and a trained model θ, split over the weights by path-integrated gradients along the straight line between them
(Sundararajan et al. 2017's integrated gradients, taken over weights instead of inputs):

    L(θ) − L(θ⁰) = Σ_i Δθ_i ∫₀¹ ∂_i L(θ⁰ + t Δθ) dt,   Δθ = θ − θ⁰,

summed per decoder layer (and "other": embeddings, final norm, unembedding), the same slots as
`interference.measures.updates.layer_update_norms`, or per parameter group (attention, FFN, norms, embeddings,
unembedding, over all layers). The integral is taken by the midpoint rule; by completeness the
slots add up to the loss's change, up to the rule's error (a report states the residual). Unlike the snapshot's
Taylor terms (`interference.measures.fisher`), this needs no assumption that the step is small: it reads the gradient
all along the way. The straight line is not the path training took (Lan et al. 2019 integrate along that one); it is
the path both end points define, so any two checkpoints can be compared.
"""

from __future__ import annotations

import torch

from ..facts.examples import Examples
from ..io.errors import InterferenceError
from ..models.parameter_groups import PARTITION, layer_slots, parameter_groups, parameter_layers
from ..models.weights import Snapshot
from .fisher import answer_nll

#: Midpoints of the path integral by default: the rule's error falls as 1/steps², and at 8 it missed the measured
#: change by a median 0.6 % of the shares' total on the embedded world (results/world-default/remedies-by-layer).
STEPS = 8


def loss_change_by_parameter(start: Snapshot, model: torch.nn.Module, examples: Examples, *, steps: int = STEPS,
                             batch_size: int = 16) -> dict[str, float]:
    """{parameter name: its share of L(θ) − L(θ⁰)}, L the mean answer NLL of `examples`
    (`interference.measures.fisher.answer_loss`), θ `model`'s weights and θ⁰ `start`'s; `steps` midpoints of the
    straight line, one pass over the examples with gradients at each. Parameters that did not move have no entry (their
    share is 0). `model` is left as it was (weights, mode, gradient flags)."""
    if steps < 1:
        raise InterferenceError(f"attribution steps must be at least 1, got {steps}")
    named = dict(model.named_parameters())
    delta = {name: p.detach() - start.params[name].to(p.device, p.dtype) for name, p in named.items()}
    delta = {name: d for name, d in delta.items() if bool(d.any())}
    moved = list(delta)
    if not moved:
        return {}
    end = {name: named[name].detach().clone() for name in moved}
    totals = torch.zeros(len(moved), dtype=torch.float64, device=next(model.parameters()).device)
    flags, training = {name: named[name].requires_grad for name in moved}, model.training
    model.eval()
    try:
        for name in moved:
            named[name].requires_grad_(True)
        for k in range(steps):
            t = (k + 0.5) / steps
            with torch.no_grad():
                for name in moved:
                    named[name].copy_(start.params[name].to(delta[name]) + t * delta[name])
            for first in range(0, len(examples), batch_size):
                stop = min(first + batch_size, len(examples))
                loss = answer_nll(model, examples, first, stop).sum() / len(examples)
                grads = torch.autograd.grad(loss, [named[name] for name in moved], allow_unused=True)
                for i, (name, grad) in enumerate(zip(moved, grads, strict=True)):
                    if grad is not None:
                        totals[i] += (grad.double() * delta[name].double()).sum() / steps
    finally:
        with torch.no_grad():
            for name in moved:
                named[name].copy_(end[name])
        for name, flag in flags.items():
            named[name].requires_grad_(flag)
        model.train(training)
    return dict(zip(moved, totals.tolist(), strict=True))


def _summed(shares: dict[str, float], slot_of: dict[str, str], slots: list[str]) -> dict[str, float]:
    """Per-parameter `shares` summed per slot (`slot_of` a parameter's slot; every slot listed, 0 where none moved)."""
    totals = dict.fromkeys(slots, 0.0)
    for name, share in shares.items():
        totals[slot_of[name]] = totals.get(slot_of[name], 0.0) + share
    return totals


def by_layer(model: torch.nn.Module, shares: dict[str, float]) -> dict[str, float]:
    """Per-parameter `shares` summed per decoder layer ("layer 0", …) and "other" (embeddings, final norm,
    unembedding): `interference.measures.updates.layer_update_norms`' slots."""
    return _summed(shares, parameter_layers(model), layer_slots(model))


def by_group(model: torch.nn.Module, shares: dict[str, float]) -> dict[str, float]:
    """Per-parameter `shares` summed per parameter group over all layers (`interference.models.parameter_groups`:
    embeddings, unembedding, attention, ffn, norms; "other" only where a parameter is in none)."""
    return _summed(shares, parameter_groups(model), list(PARTITION))


def loss_change_by_layer(start: Snapshot, model: torch.nn.Module, examples: Examples, *, steps: int = STEPS,
                         batch_size: int = 16) -> dict[str, float]:
    """{"layer 0": …, …, "other": …}: each slot's share of L(θ) − L(θ⁰) (`loss_change_by_parameter`, `by_layer`)."""
    return by_layer(model, loss_change_by_parameter(start, model, examples, steps=steps, batch_size=batch_size))

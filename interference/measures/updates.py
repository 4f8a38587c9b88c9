"""Where fine-tuning changed the weights: the relative update norm ‖θ − θ⁰‖ / ‖θ⁰‖ of each decoder layer, and of the
embeddings and unembedding, between a start (a `Snapshot`) and a trained model of the same architecture; and the
Fisher-weighted distance Σ F_i (θ_i − θ⁰_i)², how far a model moved in the directions a diagonal Fisher weighs
(EWC's penalty at λ = 1), the projection Σ g_i (θ_i − θ⁰_i) of the change on a loss's gradient at the start; and how
closely one model's update follows another's from the same start (`update_alignment`: is it the other's update,
shrunk?)."""

from __future__ import annotations

import math

import torch

from ..models.parameter_groups import PARTITION, layer_slots, parameter_groups, parameter_layers
from ..models.weights import Snapshot


def layer_update_norms(start: Snapshot, model: torch.nn.Module) -> dict[str, float]:
    """{"layer 0": …, "layer 1": …, …, "other": …}: per decoder layer, ‖Δθ‖ / ‖θ⁰‖ over its parameters; "other"
    covers the rest (embeddings, final norm, unembedding)."""
    slots = layer_slots(model)
    change, size = dict.fromkeys(slots, 0.0), dict.fromkeys(slots, 0.0)
    for (name, param), slot in zip(model.named_parameters(), parameter_layers(model).values(), strict=True):
        before = start.params[name].to(param.device, torch.float32)
        change[slot] += (param.detach().float() - before).pow(2).sum().item()
        size[slot] += before.pow(2).sum().item()
    return {slot: math.sqrt(change[slot] / max(size[slot], 1e-30)) for slot in slots}


def _weighted_change(start: Snapshot, model: torch.nn.Module, weights: dict[str, torch.Tensor], power: int) -> float:
    """Σ_i w_i (θ_i − θ⁰_i)^power over the parameters `weights` names, in float64."""
    named, total = dict(model.named_parameters()), 0.0
    for name, weight in weights.items():
        change = named[name].detach().double() - start.params[name].to(named[name].device, torch.float64)
        total += (weight.to(change.device, torch.float64) * change.pow(power)).sum().item()
    return total


def fisher_distance(start: Snapshot, model: torch.nn.Module, fisher: dict[str, torch.Tensor]) -> float:
    """Σ_i F_i (θ_i − θ⁰_i)² over the parameters `fisher` names (`interference.measures.fisher.diagonal_fisher`),
    in float64: EWC's penalty at λ = 1 for `model`'s weights, θ⁰ the snapshot `start`."""
    return _weighted_change(start, model, fisher, 2)


def gradient_projection(start: Snapshot, model: torch.nn.Module, gradient: dict[str, torch.Tensor]) -> float:
    """Σ_i g_i (θ_i − θ⁰_i) over the parameters `gradient` names (a `LossExpansion`'s mean gradient at θ⁰, the
    snapshot `start`), in float64: the first-order change of that loss."""
    return _weighted_change(start, model, gradient, 1)


def update_alignment(start: Snapshot, model: torch.nn.Module,
                     reference: torch.nn.Module) -> dict[str, dict[str, float | None]]:
    """How `model`'s update Δ = θ − θ⁰ sits against `reference`'s R = θ_ref − θ⁰ (same start, same architecture), per
    decoder layer, per parameter group (`PARTITION`) and over all parameters ("all"), in float64:
    {"cosine": ⟨Δ, R⟩ / (‖Δ‖ ‖R‖), "scale": ⟨Δ, R⟩ / ‖R‖² (the multiple of R nearest Δ), "norm_ratio": ‖Δ‖ / ‖R‖,
    "sideways": ‖Δ − scale·R‖ / ‖R‖ (how far Δ moves off R's direction, in R's norm)}. A WiSE-FT interpolation of the
    reference at α has cosine 1, scale α and sideways 0 everywhere; an update orthogonal to the reference has cosine 0
    whatever its size. A slot where either update is zero (or that holds no parameter) gets
    None."""
    layers, groups = parameter_layers(model), parameter_groups(model)
    reference_params = dict(reference.named_parameters())
    slots = [*layer_slots(model), *PARTITION, "all"]
    sums = {slot: torch.zeros(3, dtype=torch.float64) for slot in slots}  # ⟨Δ, R⟩, ‖Δ‖², ‖R‖²
    for name, param in model.named_parameters():
        before = start.params[name].to(param.device, torch.float64)
        delta = param.detach().double() - before
        ref = reference_params[name].detach().to(param.device, torch.float64) - before
        terms = torch.stack([(delta * ref).sum(), delta.pow(2).sum(), ref.pow(2).sum()]).cpu()
        for slot in (layers[name], groups[name], "all"):
            if slot in sums:
                sums[slot] += terms
    out: dict[str, dict[str, float | None]] = {"cosine": {}, "scale": {}, "norm_ratio": {}, "sideways": {}}
    for slot, (dot, own, ref) in ((s, v.tolist()) for s, v in sums.items()):
        both = own > 0 and ref > 0
        out["cosine"][slot] = dot / math.sqrt(own * ref) if both else None
        out["scale"][slot] = dot / ref if both else None
        out["norm_ratio"][slot] = math.sqrt(own / ref) if both else None
        out["sideways"][slot] = math.sqrt(max(0.0, own - dot * dot / ref) / ref) if both else None
    return out

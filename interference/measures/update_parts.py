"""What each part of an update does to each fact. A method's update Δ = θ − θ⁰ from a snapshot θ⁰ splits against a
reference's update R = θ_ref − θ⁰ from the same snapshot (SFT's, in the remedies study) into its step along R,
a = c·R with c = ⟨Δ, R⟩ / ‖R‖² (`interference.measures.updates.update_alignment`'s "scale" over all parameters), and
its step off it, b = Δ − a (orthogonal to R). θ⁰ + a is WiSE-FT's model at α = c, an evenly shrunk reference; θ⁰ + b
is the sideways step alone.

Each fact's loss change ℓ_i(θ⁰ + Δ) − ℓ_i(θ⁰) is shared between the two parts by the Shapley rule over two players,
the mean of the two orders in which the parts can be added:

    along_i    = ½ [(ℓ_i(θ⁰ + a) − ℓ_i(θ⁰)) + (ℓ_i(θ⁰ + Δ) − ℓ_i(θ⁰ + b))]
    sideways_i = ½ [(ℓ_i(θ⁰ + b) − ℓ_i(θ⁰)) + (ℓ_i(θ⁰ + Δ) − ℓ_i(θ⁰ + a))]

so along_i + sideways_i is the change exactly: no small-step assumption and no gradients, four losses per fact, two
of which (θ⁰ and θ) a study already measures; `interference.report.update_parts.shapley_shares` applies the rule. A
sideways share below 0 says the step off the reference's direction lowered that fact's loss; set beside the
reference's own damage to each fact, it says whether that step is aimed at the facts the reference hurts."""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence

import torch

from ..facts.examples import Examples
from ..io.errors import InterferenceError
from ..models.parameter_groups import parameter_groups
from ..models.weights import Snapshot
from .fisher import answer_losses
from .updates import update_alignment


def _check_scale(scale: float) -> None:
    if not math.isfinite(scale):
        raise InterferenceError(f"an update split needs a finite scale, got {scale!r}")


def part_weights(start: Snapshot, model: torch.nn.Module, reference: torch.nn.Module,
                 scale: float) -> tuple[Snapshot, Snapshot]:
    """(θ⁰ + c·R, θ⁰ + Δ − c·R) with c = `scale`: the step along the reference's update and the step off it."""
    params, along, sideways = dict(model.named_parameters()), {}, {}
    for name, step in _sideways(start, model, reference, scale):
        param = params[name]
        along[name] = (param.detach().double() - step).to(param.dtype)
        sideways[name] = (start.params[name].to(param.device, torch.float64) + step).to(param.dtype)
    return Snapshot(along), Snapshot(sideways)


def part_losses(start: Snapshot, model: torch.nn.Module, reference: torch.nn.Module,
                examples: dict[str, Examples], *, scale: float | None = None) -> tuple[float, dict]:
    """(c, {split: (ℓ at θ⁰ + c·R, ℓ at θ⁰ + Δ − c·R)}): each example's answer loss (float64, on the CPU) at the two
    parts of `model`'s update against `reference`'s, for each named set of `examples`; c = `scale`, or
    `update_alignment`'s scale over all parameters (0 where either update is zero). `model` and `reference` are
    unchanged."""
    if scale is None:
        scale = update_alignment(start, model, reference)["scale"]["all"] or 0.0
    _check_scale(scale)
    probe = copy.deepcopy(model)
    out = {name: [] for name in examples}
    for weights in part_weights(start, model, reference, scale):
        weights.load_into(probe)
        for name, split in examples.items():
            out[name].append(answer_losses(probe, split))
    return scale, {name: tuple(losses) for name, losses in out.items()}


def _sideways(start: Snapshot, model: torch.nn.Module, reference: torch.nn.Module, scale: float):
    """(name, b) per parameter of `model`, b = Δ − c·R in float64 on the parameter's device, one at a time."""
    reference_params = dict(reference.named_parameters())
    if set(reference_params) != {name for name, _ in model.named_parameters()}:
        raise InterferenceError("an update split needs two models of the same architecture")
    for name, param in model.named_parameters():
        before = start.params[name].to(param.device, torch.float64)
        yield name, param.detach().double() - before - scale * (reference_params[name].detach().double() - before)


def sideways_step(start: Snapshot, model: torch.nn.Module, reference: torch.nn.Module,
                  scale: float) -> dict[str, torch.Tensor]:
    """b = Δ − c·R with c = `scale`, per parameter (float32, on the CPU): the step off the reference's update, kept to
    be set elsewhere (`matched_losses`)."""
    return {name: step.float().cpu() for name, step in _sideways(start, model, reference, scale)}


def step_norm(step: dict[str, torch.Tensor]) -> float:
    """The Euclidean norm of a step over all its parameters."""
    return math.sqrt(sum(float(value.double().pow(2).sum()) for value in step.values()))


def matched_losses(start: Snapshot, model: torch.nn.Module, reference: torch.nn.Module, scale: float,
                   step: dict[str, torch.Tensor], examples: dict[str, Examples]) -> tuple[float, dict]:
    """(k, {split: (ℓ at θ⁰ + k·b', ℓ at θ⁰ + c·R + k·b')}): another update's sideways step b' (`step`) put where
    `model`'s own sits, the shrunk reference θ⁰ + c·R (c = `scale`), at the length of `model`'s own
    (k = ‖b‖ / ‖b'‖); each example's answer loss there, as `part_losses`. `model` and `reference` are unchanged."""
    _check_scale(scale)
    if set(step) != {name for name, _ in model.named_parameters()}:
        raise InterferenceError("a matched step needs the same architecture as the model")
    other = step_norm(step)
    if other == 0:
        raise InterferenceError("a matched step needs a nonzero step to set in place")
    own = math.sqrt(sum(float(b.pow(2).sum()) for _, b in _sideways(start, model, reference, scale)))
    factor = own / other
    return factor, _placed(start, model, reference, step, factor, examples, (0.0, scale))


def group_losses(start: Snapshot, model: torch.nn.Module, reference: torch.nn.Module, scale: float,
                 groups: dict[str, Sequence[str]], examples: dict[str, Examples],
                 step: dict[str, torch.Tensor] | None = None, factor: float = 1.0) -> dict[str, dict]:
    """{label: {split: ℓ at θ⁰ + c·R + k·b restricted to the parameter groups `groups[label]`}}: a sideways step,
    `model`'s own (`step` None) or another's (`step`, times `factor`), added to the shrunk reference one set of
    groups (of `interference.models.parameter_groups.PARTITION`) at a time, the other parameters left at θ⁰ + c·R."""
    _check_scale(scale)
    step = sideways_step(start, model, reference, scale) if step is None else step
    kinds = parameter_groups(model)
    out = {}
    for label, wanted in groups.items():
        placed = _placed(start, model, reference, step, factor, examples, (scale,),
                         {name for name, kind in kinds.items() if kind in wanted})
        out[label] = {split: losses for split, (losses,) in placed.items()}
    return out


def _placed(start: Snapshot, model: torch.nn.Module, reference: torch.nn.Module, step: dict[str, torch.Tensor],
            factor: float, examples: dict[str, Examples], scales: Sequence[float],
            names: set[str] | None = None) -> dict[str, tuple]:
    """{split: (ℓ at θ⁰ + s·R + k·step for each s of `scales`)}, the step only in the parameters `names` (all where
    None); `model` and `reference` are unchanged."""
    reference_params = dict(reference.named_parameters())
    probe, out = copy.deepcopy(model), {name: [] for name in examples}
    for along in scales:
        with torch.no_grad():
            for name, param in probe.named_parameters():
                before = start.params[name].to(param.device, torch.float64)
                moved = factor * step[name].to(param.device, torch.float64) if names is None or name in names else 0
                param.copy_(before + along * (reference_params[name].detach().double() - before) + moved)
        for name, split in examples.items():
            out[name].append(answer_losses(probe, split))
    return {name: tuple(losses) for name, losses in out.items()}

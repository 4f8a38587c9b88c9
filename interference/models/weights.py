"""Weights as values: `Snapshot`, a model's parameters frozen by name (θ_snapshot, the teacher and the anchor of
every method), and `interpolate`, the weight-space interpolation of WiSE-FT (Wortsman et al. 2022).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..io.errors import InterferenceError


@dataclass
class Snapshot:
    """Frozen weights: parameter name → tensor (as in `named_parameters()`, tied weights once)."""

    params: dict[str, torch.Tensor]
    epochs: int = 1

    @classmethod
    def of(cls, model: torch.nn.Module, epochs: int = 1) -> Snapshot:
        return cls({n: p.detach().clone() for n, p in model.named_parameters()}, epochs)

    def load_into(self, model: torch.nn.Module) -> None:
        """Copy the snapshot into `model`'s parameters (same architecture)."""
        named = dict(model.named_parameters())
        odd = sorted(set(named) ^ set(self.params)) or [n for n in named if named[n].shape != self.params[n].shape]
        if odd:
            raise InterferenceError(f"snapshot does not match the model (parameter {odd[0]!r})")
        with torch.no_grad():
            for name, param in named.items():
                param.copy_(self.params[name])


def interpolate(start: Snapshot, end: Snapshot, alpha: float) -> Snapshot:
    """θ = (1 − α)·θ_start + α·θ_end, parameter by parameter (α = 0: the start, α = 1: the end)."""
    if set(start.params) != set(end.params):
        raise InterferenceError("interpolation needs two snapshots of the same model")
    return Snapshot({n: torch.lerp(start.params[n].float(), end.params[n].float(), alpha).to(end.params[n].dtype)
                     for n in end.params}, end.epochs)

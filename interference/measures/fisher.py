"""The diagonal empirical Fisher information of a model on facts (Kirkpatrick et al. 2017, EWC).

F_i = mean over examples of (∂ℓ/∂θ_i)², ℓ the mean negative log-likelihood of an example's answer tokens (its
trained answer and EOS, as `interference.facts.examples.Examples` labels them). One backward pass per example: the
mean of per-example squared gradients, not the square of a batch's mean gradient (which would shrink F by the batch
size and mix examples).

The same pass gives the mean gradient g = mean ∇ℓ_i (`loss_expansion`), and `answer_loss` the loss L = mean ℓ_i
itself, so that a change Δθ of the weights can be read as L's Taylor expansion, L(θ⁰ + Δθ) − L(θ⁰) ≈ g·Δθ +
½ Δθᵀ H Δθ, the empirical Fisher standing in for the Hessian H (a fair stand-in only where the model fits the
facts, where g is near 0 too).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..facts.examples import IGNORE, Examples, next_token_targets
from ..models.generation import forward_logits, inference_mode


@dataclass
class LossExpansion:
    """The first two terms of a set of facts' loss around some weights, per parameter (float32, on its device):
    `gradient` g = mean ∇ℓ_i and `fisher` F = mean (∇ℓ_i)², over the facts' examples."""

    gradient: dict[str, torch.Tensor] | None
    fisher: dict[str, torch.Tensor]


def loss_expansion(model: torch.nn.Module, examples: Examples, names: Sequence[str], *, gradient: bool = True,
                   progress: bool = False) -> LossExpansion:
    """g (None unless `gradient`) and F for the parameters `names` (as in `named_parameters()`) at `model`'s current
    weights; `model` is left as it was (mode, gradients)."""
    named = dict(model.named_parameters())
    params = [named[n] for n in names]
    fisher = [torch.zeros_like(p, dtype=torch.float32) for p in params]
    mean = [torch.zeros_like(p, dtype=torch.float32) for p in params] if gradient else None
    device, training = params[0].device, model.training
    model.eval()
    for i in tqdm(range(len(examples)), desc="fisher", disable=not progress, leave=False):
        batch = examples.batch(torch.tensor([i])).to(device)
        logits = forward_logits(model, batch)
        targets = next_token_targets(batch.labels)
        nll = F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten(), ignore_index=IGNORE)
        for k, grad in enumerate(torch.autograd.grad(nll, params, allow_unused=True)):
            if grad is not None:
                fisher[k] += grad.float() ** 2
                if mean is not None:
                    mean[k] += grad.float()
    model.train(training)

    def averaged(totals: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        return {n: t / len(examples) for n, t in zip(names, totals, strict=True)}

    return LossExpansion(None if mean is None else averaged(mean), averaged(fisher))


def answer_nll(model: torch.nn.Module, examples: Examples, start: int, stop: int) -> torch.Tensor:
    """ℓ_i for examples[start:stop]: each example's mean negative log-likelihood of its answer tokens (float32, on
    `model`'s device; differentiable unless called under no_grad)."""
    batch = examples.batch(torch.arange(start, stop)).to(next(model.parameters()).device)
    targets = next_token_targets(batch.labels)
    nll = F.cross_entropy(forward_logits(model, batch).flatten(0, 1).float(), targets.flatten(),
                          ignore_index=IGNORE, reduction="none").view(targets.shape)
    mask = targets != IGNORE
    return (nll * mask).sum(dim=1) / mask.sum(dim=1).clamp_min(1)


def answer_losses(model: torch.nn.Module, examples: Examples, *, batch_size: int = 16) -> torch.Tensor:
    """ℓ_i for every example, in float64 on the CPU, at `model`'s current weights (no gradients): the terms of
    `answer_loss`, fact by fact."""
    with inference_mode(model):
        return torch.cat([answer_nll(model, examples, start, min(start + batch_size, len(examples))).double().cpu()
                          for start in range(0, len(examples), batch_size)])


def mean_loss(losses: torch.Tensor, *, batch_size: int = 16) -> float:
    """The mean of per-example losses summed batch by batch, as `answer_loss` sums them (so the two agree exactly)."""
    return sum(chunk.sum().item() for chunk in losses.split(batch_size)) / len(losses)


def answer_loss(model: torch.nn.Module, examples: Examples, *, batch_size: int = 16) -> float:
    """L = the mean over examples of ℓ_i, the mean negative log-likelihood of an example's answer tokens, at `model`'s
    current weights (the loss `loss_expansion` expands; no gradients)."""
    return mean_loss(answer_losses(model, examples, batch_size=batch_size), batch_size=batch_size)


def diagonal_fisher(model: torch.nn.Module, examples: Examples, names: Sequence[str], *,
                    progress: bool = False) -> dict[str, torch.Tensor]:
    """F for the parameters `names` (as in `named_parameters()`) at `model`'s current weights, in float32 on their
    devices; `model` is left as it was (mode, gradients)."""
    return loss_expansion(model, examples, names, gradient=False, progress=progress).fisher

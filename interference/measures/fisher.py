"""The diagonal empirical Fisher information of a model on facts (Kirkpatrick et al. 2017, EWC).

F_i = mean over examples of (∂ℓ/∂θ_i)², ℓ the mean negative log-likelihood of an example's answer tokens (its
trained answer and EOS, as `interference.facts.examples.Examples` labels them). One backward pass per example: the
mean of per-example squared gradients, not the square of a batch's mean gradient (which would shrink F by the batch
size and mix examples).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..facts.examples import IGNORE, Examples
from ..models.generation import forward_logits


def diagonal_fisher(model: torch.nn.Module, examples: Examples, names: Sequence[str], *,
                    progress: bool = False) -> dict[str, torch.Tensor]:
    """F for the parameters `names` (as in `named_parameters()`) at `model`'s current weights, in float32 on their
    devices; `model` is left as it was (mode, gradients)."""
    named = dict(model.named_parameters())
    params = [named[n] for n in names]
    fisher = [torch.zeros_like(p, dtype=torch.float32) for p in params]
    device, training = params[0].device, model.training
    model.eval()
    for i in tqdm(range(len(examples)), desc="fisher", disable=not progress, leave=False):
        batch = examples.batch(torch.tensor([i])).to(device)
        logits = forward_logits(model, batch)
        targets = F.pad(batch.labels[:, 1:], (0, 1), value=IGNORE)  # label t + 1 is predicted at position t
        nll = F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten(), ignore_index=IGNORE)
        for total, grad in zip(fisher, torch.autograd.grad(nll, params, allow_unused=True), strict=True):
            if grad is not None:
                total += grad.float() ** 2
    model.train(training)
    return {n: f / len(examples) for n, f in zip(names, fisher, strict=True)}

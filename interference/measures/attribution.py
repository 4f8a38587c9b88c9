"""Where in the network a loss changed: the change of a set of facts' answer loss between a start θ⁰ (a `Snapshot`)
and a trained model θ, split over the weights by path-integrated gradients along the straight line between them
(Sundararajan et al. 2017's integrated gradients, taken over weights instead of inputs):

    L(θ) − L(θ⁰) = Σ_i Δθ_i ∫₀¹ ∂_i L(θ⁰ + t Δθ) dt,   Δθ = θ − θ⁰,

summed per decoder layer (and "other": embeddings, final norm, unembedding), the same slots as
`interference.measures.updates.layer_update_norms`, or per parameter group (attention, FFN, norms, embeddings,
unembedding, over all layers). Unlike the snapshot's Taylor terms (`interference.measures.fisher`), this needs no
assumption that the step is small: it reads the gradient all along the way. The straight line is not the path training
took (Lan et al. 2019 integrate along that one); it is the path both end points define, so any two checkpoints can be
compared.

The integral is taken by the midpoint rule on intervals that adapt to the loss. A fact's loss along the line is
softplus-like in its logit margin, which moves linearly with t, so the loss can fall or rise steeply within a few
hundredths of the line: on SmolLM2 (results/smollm2-135m-remedies-ewc-cpu, stage 7) it fell from 0.336 to 0.11 in
the first tenth and the 8 even midpoints missed the change by 70–107 %. So `split_loss_change` starts from `FIRST`
even intervals, measures the loss at their ends (forward passes only), and halves the interval whose midpoint misses
its own exact change L(b) − L(a) most, until the misses sum to under `TOLERANCE` of the loss's variation along the line
or `steps` midpoints are spent. The loss at a halved interval's middle comes free with its midpoint's gradients. The
residual L(θ) − L(θ⁰) − Σ shares is what a report states.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..facts.examples import Examples
from ..io.errors import InterferenceError
from ..models.parameter_groups import PARTITION, layer_slots, parameter_groups, parameter_layers
from ..models.weights import Snapshot
from .fisher import answer_loss, answer_nll

#: Even midpoints the split starts from: at 8 the rule missed the measured change by a median 0.6 % of the shares'
#: total on the embedded world (results/world-default/remedies-by-layer), and by 70–107 % on one SmolLM2 seed.
FIRST = 8
#: The most midpoints a split spends by default (`FIRST`, then two per halved interval).
STEPS = 32
#: Halving stops once the midpoints' misses on their own intervals sum to at most this share of the loss's variation
#: along the line, Σ |L(b) − L(a)| over the intervals.
TOLERANCE = 0.02
#: An absolute floor under that bound, for a loss that barely changes (float32 losses carry about 1e-7 of noise).
FLOOR = 1e-6


def typical_passes(steps: int) -> float:
    """Passes with gradients over the facts that a split of at most `steps` midpoints spends where no interval is
    halved: its even midpoints, and the forward passes at their edges (a third of one each) when it may halve."""
    first = min(FIRST, steps)
    return first + (first - 1) / 3 if steps > first else first


@dataclass(frozen=True)
class LossSplit:
    """L(θ) − L(θ⁰) split over the parameters that moved (`shares`, a parameter that did not move has none), the
    change measured at the two ends (`change`), and the gradient passes the split spent (`midpoints`)."""

    shares: dict[str, float]
    change: float
    midpoints: int

    @property
    def residual(self) -> float:
        """The change less the shares' sum: the midpoint rule's error."""
        return self.change - sum(self.shares.values())


@dataclass
class _Interval:
    """[j, j + 1] / (n·2^depth) of the line; its midpoint's per-batch shares (each already × the width) and loss, and
    the loss at its edges where the split may halve it."""

    j: int
    depth: int
    parts: list[torch.Tensor]
    loss_mid: float
    loss_low: float = float("nan")
    loss_high: float = float("nan")

    def __post_init__(self) -> None:
        self.estimate = sum(float(p.sum()) for p in self.parts)  # the midpoint's estimate of the interval's change

    def miss(self) -> float:
        """The interval's exact change less its midpoint's estimate of it."""
        return self.loss_high - self.loss_low - self.estimate


class _Line:
    """`model`'s moved parameters set to θ⁰ + tΔθ, with the loss, or its gradients' shares, there; `restore` puts
    them back to the weights `model` had."""

    def __init__(self, start: Snapshot, model: torch.nn.Module, examples: Examples, batch_size: int) -> None:
        self.model, self.examples, self.batch_size = model, examples, batch_size
        self.named = dict(model.named_parameters())
        self.start = start
        delta = {n: p.detach() - start.params[n].to(p.device, p.dtype) for n, p in self.named.items()}
        self.delta = {n: d for n, d in delta.items() if bool(d.any())}
        self.moved = list(self.delta)
        self.end = {name: self.named[name].detach().clone() for name in self.moved}

    def restore(self) -> None:
        with torch.no_grad():
            for name in self.moved:
                self.named[name].copy_(self.end[name])

    def _place(self, t: float) -> None:
        with torch.no_grad():
            for name in self.moved:
                self.named[name].copy_(self.start.params[name].to(self.delta[name]) + t * self.delta[name])

    def loss(self, t: float) -> float:
        """L(θ⁰ + tΔθ), the mean answer NLL (as `interference.measures.fisher.answer_loss` sums it)."""
        self._place(t)
        return answer_loss(self.model, self.examples, batch_size=self.batch_size)

    def shares(self, t: float, divisor: int) -> tuple[list[torch.Tensor], float]:
        """Per batch, each moved parameter's Δθ_i·∂_i L at θ⁰ + tΔθ divided by `divisor` (float64), and L there."""
        self._place(t)
        parts, total = [], 0.0
        for a in range(0, len(self.examples), self.batch_size):
            nll = answer_nll(self.model, self.examples, a, min(a + self.batch_size, len(self.examples)))
            total += nll.detach().double().sum().item()
            grads = torch.autograd.grad(nll.sum() / len(self.examples), [self.named[n] for n in self.moved],
                                        allow_unused=True)
            parts.append(torch.stack([(g.double() * self.delta[n].double()).sum() / divisor if g is not None else
                                      torch.zeros((), dtype=torch.float64, device=self.delta[n].device)
                                      for n, g in zip(self.moved, grads, strict=True)]))
        return parts, total / len(self.examples)


def loss_along_line(start: Snapshot, model: torch.nn.Module, examples: Examples, ts: list[float], *,
                    batch_size: int = 16) -> list[float]:
    """L(θ⁰ + tΔθ) for each t of `ts` (0: the snapshot, 1: `model`; any real t, so the line may be read past its
    ends): the profile that tells where along the line a loss changed (Goodfellow et al. 2015's linear interpolation
    between two weight vectors). `model` is left at its weights."""
    line = _Line(start, model, examples, batch_size)
    try:
        return [line.loss(float(t)) for t in ts]
    finally:
        line.restore()


def split_loss_change(start: Snapshot, model: torch.nn.Module, examples: Examples, *, steps: int = STEPS,
                      first: int = FIRST, tolerance: float = TOLERANCE, ends: tuple[float, float] | None = None,
                      batch_size: int = 16) -> LossSplit:
    """L(θ) − L(θ⁰) split over the parameters by path-integrated gradients, L the mean answer NLL of `examples`
    (`interference.measures.fisher.answer_loss`), θ `model`'s weights and θ⁰ `start`'s: `min(first, steps)` even
    midpoints, then halving where they miss (module docstring) up to `steps` midpoints in all; with `steps <= first`
    the plain midpoint rule. `ends` are L(θ⁰) and L(θ) where the caller measured them. `model` is left as it was
    (weights, mode, gradient flags)."""
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise InterferenceError(f"attribution steps must be an integer >= 1, got {steps!r}")
    if not 0 <= tolerance < 1:
        raise InterferenceError(f"attribution tolerance must be in [0, 1), got {tolerance!r}")
    line = _Line(start, model, examples, batch_size)
    if not line.moved:
        return LossSplit({}, 0.0, 0)
    flags, training = {name: line.named[name].requires_grad for name in line.moved}, model.training
    n = min(first, steps)
    try:
        high = ends[1] if ends is not None else answer_loss(model, examples, batch_size=batch_size)
        low = ends[0] if ends is not None else line.loss(0.0)
        model.eval()
        for name in line.moved:
            line.named[name].requires_grad_(True)
        intervals = [_Interval(k, 0, *line.shares((k + 0.5) / n, n)) for k in range(n)]
        if steps > n:
            edges = [low, *(line.loss(k / n) for k in range(1, n)), high]
            for k, interval in enumerate(intervals):
                interval.loss_low, interval.loss_high = edges[k], edges[k + 1]
            _refine(line, intervals, n, steps, tolerance)
    finally:
        line.restore()
        for name, flag in flags.items():
            line.named[name].requires_grad_(flag)
        model.train(training)
    totals = torch.zeros(len(line.moved), dtype=torch.float64, device=next(model.parameters()).device)
    for interval in intervals:  # in order along the line, batch by batch (the plain rule's order of summation)
        for part in interval.parts:
            totals += part
    return LossSplit(dict(zip(line.moved, totals.tolist(), strict=True)), high - low, 2 * len(intervals) - n)


def _refine(line: _Line, intervals: list[_Interval], n: int, steps: int, tolerance: float) -> None:
    """Halve the interval that misses most until the misses are within `tolerance` of the variation or the budget
    of `steps` midpoints is spent (`intervals` in place, kept in order along the line)."""
    while 2 * len(intervals) - n + 2 <= steps:  # midpoints spent: n, then two per halving
        misses = [abs(i.miss()) for i in intervals]
        variation = sum(abs(i.loss_high - i.loss_low) for i in intervals)
        if sum(misses) <= tolerance * variation + FLOOR:
            return
        k = misses.index(max(misses))
        parent, divisor = intervals[k], n * 2 ** (intervals[k].depth + 1)
        halves = [_Interval(2 * parent.j + h, parent.depth + 1, *line.shares((2 * parent.j + h + 0.5) / divisor,
                                                                            divisor)) for h in (0, 1)]
        halves[0].loss_low, halves[0].loss_high = parent.loss_low, parent.loss_mid
        halves[1].loss_low, halves[1].loss_high = parent.loss_mid, parent.loss_high
        intervals[k:k + 1] = halves


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


def loss_change_by_layer(start: Snapshot, model: torch.nn.Module, examples: Examples, **options) -> dict[str, float]:
    """{"layer 0": …, …, "other": …}: each slot's share of L(θ) − L(θ⁰) (`split_loss_change` with `options`,
    `by_layer`)."""
    return by_layer(model, split_loss_change(start, model, examples, **options).shares)

"""What a training run measured and returns: one record per evaluation (accuracies, per-fact outcomes, mean losses)
and its summary (SPEC §2)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from . import metrics


@dataclass
class EpochRecord:
    """One full evaluation: at the start (epoch 0), after an epoch, or where a run stopped inside epoch `epoch`.

    `accuracy`: greedy exact match per split (NaN when empty); `correct`: per-fact outcomes in the given order;
    loss, ce, kl, l2, ewc: means over the epoch's steps (None for terms the method lacks).
    """

    epoch: int
    step: int
    accuracy: dict[str, float]
    correct: dict[str, list[bool]]
    loss: float | None = None
    ce: float | None = None
    kl: float | None = None
    l2: float | None = None
    train_seconds: float = 0.0
    eval_seconds: float = 0.0
    ewc: float | None = None


@dataclass
class TrainResult:
    """A run: config, history (epoch 0 first), why it stopped ("target" or "epochs"), the trained parameters' names,
    the l2 weight μ (else None), the trained model (the one passed to `train`, in eval mode) and, with LoRA, the
    modules that carried adapters (merged into their weights at the end)."""

    config: Any  # the run's `interference.train.TrainConfig` (the training core sits above the measures)
    history: list[EpochRecord]
    stopped: str
    trainable: list[str]
    mu: float | None = None
    model: torch.nn.Module | None = field(default=None, repr=False)
    adapters: list[str] | None = None

    def curve(self, split: str) -> list[float]:
        return [r.accuracy[split] for r in self.history]

    @property
    def final(self) -> dict[str, float]:
        return dict(self.history[-1].accuracy)

    @property
    def epochs(self) -> int:
        """Epochs trained, the one a run stopped in counted whole."""
        return self.history[-1].epoch

    @property
    def forgetting(self) -> float:
        """Held-out forgetting relative to the peak, (max_t acc_t − acc_final) / max_t acc_t (SPEC §2)."""
        return metrics.forgetting(self.curve("held"))

    @property
    def forgotten(self) -> list[int]:
        """Indices of held-out facts correct at the held-out peak and wrong at the end."""
        return metrics.forgotten_at_peak([r.correct["held"] for r in self.history], self.curve("held"))

    def summary(self) -> dict:
        """Accuracies at the end, held-out accuracy at the start and peak, and forgetting (SPEC §2)."""
        held, last = self.curve("held"), self.history[-1]
        return {"method": self.config.method, "seed": self.config.seed, "start": self.config.start,
                "epochs": last.epoch, "steps": last.step, "stopped": self.stopped,
                "task_acc": last.accuracy["known"], "new_acc": last.accuracy["unknown"],
                "held_acc_start": held[0], "held_acc_peak": metrics.peak(held), "held_acc_final": held[-1],
                "forgetting": self.forgetting, "absolute_drop": metrics.absolute_drop(held), "mu": self.mu}

    def to_dict(self) -> dict:
        return {"summary": self.summary(), "config": self.config.to_dict(), "trainable": list(self.trainable),
                "epochs": [asdict(r) for r in self.history]}

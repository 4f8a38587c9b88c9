"""What a training run returns: per-epoch records (accuracies, per-fact outcomes, losses) and the run's summary."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import torch

from .. import metrics
from .config import TrainConfig

EVAL_SPLITS = ("known", "unknown", "held")


@dataclass
class EpochRecord:
    """One evaluation: epoch 0 is the start of training, epoch e the end of the e-th epoch.

    Attributes:
        epoch: epochs trained so far.
        step: optimiser steps taken so far.
        accuracy: greedy exact-match accuracy per split ("known", "unknown", "held"; NaN for an empty split).
        correct: per-fact outcomes per split, in the order the facts were given.
        loss, ce, kl, l2: means over the epoch's steps (None at epoch 0 and for terms the method lacks).
        train_seconds: wall time of the epoch's optimisation (no evaluation).
        eval_seconds: wall time of the evaluation.
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

    def to_dict(self, per_fact: bool = True) -> dict:
        data = asdict(self)
        if not per_fact:
            del data["correct"]
        return data


@dataclass
class TrainResult:
    """A finished run. `model` is the trained model (the object passed to `train`, in eval mode).

    Attributes:
        config: the run's configuration.
        history: one record per evaluation, epoch 0 first.
        stopped: "target" (acc(D_unknown) reached `target_new_acc`) or "epochs" (ran out of epochs).
        trainable: names of the parameters that were trained.
        mu: the L2 weight used (l2 method), else None.
        model: the trained model.
    """

    config: TrainConfig
    history: list[EpochRecord]
    stopped: str
    trainable: list[str]
    mu: float | None = None
    model: torch.nn.Module | None = field(default=None, repr=False)

    def curve(self, split: str) -> list[float]:
        """Accuracy of `split` at each evaluation, epoch 0 first."""
        return [r.accuracy[split] for r in self.history]

    @property
    def final(self) -> dict[str, float]:
        """Accuracies at the last evaluation."""
        return dict(self.history[-1].accuracy)

    @property
    def epochs(self) -> int:
        """Epochs actually trained."""
        return self.history[-1].epoch

    @property
    def forgetting(self) -> float:
        """Held-out forgetting, (max_t acc_t − acc_final) / max_t acc_t (SPEC §2)."""
        return metrics.forgetting(self.curve("held"))

    @property
    def absolute_drop(self) -> float:
        """Held-out accuracy at step 0 minus at the end."""
        return metrics.absolute_drop(self.curve("held"))

    @property
    def forgotten(self) -> list[int]:
        """Indices of held-out facts correct at the held-out peak and wrong at the end."""
        return metrics.forgotten_at_peak([r.correct["held"] for r in self.history], self.curve("held"))

    def summary(self) -> dict:
        """The headline numbers: final accuracies, held-out peak, forgetting and absolute drop."""
        held_peak = metrics.peak(self.curve("held"))
        return {
            "method": self.config.method,
            "seed": self.config.seed,
            "epochs": self.epochs,
            "stopped": self.stopped,
            "task_acc": self.final["known"],
            "new_acc": self.final["unknown"],
            "held_acc_start": self.history[0].accuracy["held"],
            "held_acc_peak": held_peak,
            "held_acc_final": self.final["held"],
            "forgetting": self.forgetting,
            "absolute_drop": self.absolute_drop,
            "mu": self.mu,
        }

    def to_dict(self, per_fact: bool = True) -> dict:
        """Everything as JSON values (NaN stays float; `atomic.write_json` writes it as null)."""
        return {
            "summary": self.summary(),
            "config": self.config.to_dict(),
            "trainable": list(self.trainable),
            "epochs": [r.to_dict(per_fact) for r in self.history],
        }


def format_accuracy(acc: dict[str, float]) -> str:
    """'known 0.97 new 0.41 held 0.88' for progress bars and logs."""
    label = {"known": "known", "unknown": "new", "held": "held"}
    return " ".join(f"{label[s]} {acc[s]:.2f}" for s in EVAL_SPLITS if not math.isnan(acc[s]))

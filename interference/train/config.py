"""`TrainConfig`: every choice of a training run, documented and validated (SPEC §3).

Choices the paper leaves open, and the defaults taken here: AdamW (β = 0.9, 0.999, no weight decay), constant
learning rate, gradient clipping at norm 1, batch size 32, token-level means for both CE and KL, evaluation at
step 0 and after every epoch. The paper's lr is 5e-5 for 1.5B–8B models; tiny models need far more (≈1e-3).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

from ..errors import InterferenceError
from .freezing import parse_selection
from .teacher import CACHE_MODES

METHODS = ("sft", "self_distill", "l2")
STARTS = ("snapshot", "base")
SPLITS = ("known", "unknown")


@dataclass
class TrainConfig:
    """One training run.

    Attributes:
        method: "sft" (CE on answer tokens), "self_distill" (CE + λ·τ²·KL to the snapshot teacher over every non-pad
            position) or "l2" (CE + μ·‖θ − θ_snapshot‖²).
        epochs: maximum number of epochs over the training facts.
        target_new_acc: stop after the first epoch whose acc(D_unknown) is >= this (matched acquisition); None
            trains for `epochs`.
        lr: AdamW learning rate (constant).
        batch_size: training facts per step.
        weight_decay: AdamW decoupled weight decay.
        max_grad_norm: clip the global gradient norm to this; None disables clipping.
        seed: seeds the batch order (per epoch), dropout and the snapshot's training.
        kd_lambda: λ, weight of the KD term (self_distill).
        kd_tau: τ, the distillation temperature.
        start: where the student starts: "snapshot" (after `snapshot_epochs` of SFT on D_known) or "base" (the model
            as given). None picks "base" for sft and "snapshot" for self_distill and l2 (the paper is unclear).
        snapshot_epochs: epochs of SFT on D_known (all parameters trainable) that make the snapshot, which is the
            teacher of self_distill and the anchor of l2.
        teacher_cache: "full" (teacher log-probabilities over the vocabulary, computed once), "topk" (the k most
            likely tokens plus one tail bucket, computed once) or "none" (a teacher forward on every step).
        teacher_topk: k of the top-k cache.
        l2_mu: μ of the l2 method, or "match_kd": μ = ‖∇KD‖ / (2‖θ − θ₀‖), both measured after `l2_match_steps` SFT
            steps from the start (at the start itself both gradients are zero when θ = θ_snapshot), averaged over the
            first `l2_match_batches` batches of epoch 1; the weights are then reset and training begins.
        l2_match_steps: SFT steps of that probe; None means one epoch.
        l2_match_batches: batches over which the KD gradient norm is averaged.
        freeze: parameter selection to freeze (see `interference.train.freezing`), e.g. "attention" or "all@0-3".
        train_only: parameter selection to train, everything else frozen (exclusive with `freeze`).
        train_splits: which splits are trained on: ("known", "unknown") by default; ("known",) is Table 1's
            known-only row (D_unknown is still evaluated).
        eval_batch_size: facts per generation batch during evaluation (and teacher caching).
        eval_max_new_tokens: generated tokens per answer; None uses the longest gold answer (in tokens) plus 8.
        log_every: steps between progress-bar updates and NaN checks (each check synchronises an accelerator).
        checkpoint_every: with an output folder, save a resumable checkpoint every this many epochs.
    """

    method: str = "sft"
    epochs: int = 10
    target_new_acc: float | None = None
    lr: float = 5e-5
    batch_size: int = 32
    weight_decay: float = 0.0
    max_grad_norm: float | None = 1.0
    seed: int = 0
    kd_lambda: float = 1.0
    kd_tau: float = 0.5
    start: str | None = None
    snapshot_epochs: int = 1
    teacher_cache: str = "full"
    teacher_topk: int = 64
    l2_mu: float | str = "match_kd"
    l2_match_steps: int | None = None
    l2_match_batches: int = 4
    freeze: str | None = None
    train_only: str | None = None
    train_splits: tuple[str, ...] = SPLITS
    eval_batch_size: int = 64
    eval_max_new_tokens: int | None = None
    log_every: int = 10
    checkpoint_every: int = 1

    def __post_init__(self) -> None:
        def bad(name: str, why: str) -> None:
            raise InterferenceError(f"{name} {why}, got {getattr(self, name)!r}")

        def number(value) -> bool:
            return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)

        if self.method not in METHODS:
            bad("method", f"must be one of {', '.join(METHODS)}")
        for name in (
            "epochs",
            "batch_size",
            "snapshot_epochs",
            "teacher_topk",
            "l2_match_batches",
            "eval_batch_size",
            "log_every",
            "checkpoint_every",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                bad(name, "must be an integer >= 1")
        for name in ("lr", "kd_tau"):
            if not (number(getattr(self, name)) and getattr(self, name) > 0):
                bad(name, "must be a finite number > 0")
        for name in ("kd_lambda", "weight_decay"):
            if not (number(getattr(self, name)) and getattr(self, name) >= 0):
                bad(name, "must be a finite number >= 0")
        if self.max_grad_norm is not None and not (number(self.max_grad_norm) and self.max_grad_norm > 0):
            bad("max_grad_norm", "must be a number > 0 or None")
        if self.target_new_acc is not None and not (number(self.target_new_acc) and 0 < self.target_new_acc <= 1):
            bad("target_new_acc", "must be in (0, 1] or None")
        if self.start is None:
            self.start = "base" if self.method == "sft" else "snapshot"
        if self.start not in STARTS:
            bad("start", f"must be one of {', '.join(STARTS)}")
        if self.teacher_cache not in CACHE_MODES:
            bad("teacher_cache", f"must be one of {', '.join(CACHE_MODES)}")
        if isinstance(self.l2_mu, str):
            if self.l2_mu != "match_kd":
                try:
                    self.l2_mu = float(self.l2_mu)
                except ValueError:
                    bad("l2_mu", "must be a number >= 0 or 'match_kd'")
        if not isinstance(self.l2_mu, str) and not (number(self.l2_mu) and self.l2_mu >= 0):
            bad("l2_mu", "must be a number >= 0 or 'match_kd'")
        if self.l2_match_steps is not None and (not isinstance(self.l2_match_steps, int) or self.l2_match_steps < 1):
            bad("l2_match_steps", "must be an integer >= 1 or None")
        if self.eval_max_new_tokens is not None and (
            not isinstance(self.eval_max_new_tokens, int) or self.eval_max_new_tokens < 1
        ):
            bad("eval_max_new_tokens", "must be an integer >= 1 or None")
        if self.freeze is not None and self.train_only is not None:
            raise InterferenceError("give either freeze or train_only, not both")
        for name in ("freeze", "train_only"):
            if getattr(self, name) is not None:
                parse_selection(getattr(self, name))
        if isinstance(self.train_splits, str):
            bad("train_splits", "must be a tuple of split names, e.g. ('known',)")
        self.train_splits = tuple(self.train_splits)
        if (
            not self.train_splits
            or any(s not in SPLITS for s in self.train_splits)
            or len(set(self.train_splits)) != len(self.train_splits)
        ):
            bad("train_splits", "must be a non-empty subset of ('known', 'unknown')")

    @property
    def needs_snapshot(self) -> bool:
        """Whether this run needs θ_snapshot (as teacher, anchor or starting point)."""
        return self.method != "sft" or self.start == "snapshot"

    def to_dict(self) -> dict:
        """The fields as plain JSON values."""
        data = asdict(self)
        data["train_splits"] = list(self.train_splits)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> TrainConfig:
        """Inverse of `to_dict`; unknown keys are an error."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise InterferenceError(f"unknown training option {unknown[0]!r}")
        return cls(**data)

"""`TrainConfig`: every choice of a training run, with its help text (the command line is derived from it).

Defaults for what the paper leaves open: AdamW (β 0.9, 0.999), constant lr, clipping at norm 1, every method
starting from the snapshot (the fair protocol), KL as a per-token mean over all non-pad positions. The paper's lr
is 5e-5 for 1.5B–8B models; tiny models need far more (≈1e-3).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields

from ..errors import InterferenceError
from ..parameter_groups import parse_selection

SPLITS = ("known", "unknown")
CHOICES = {"method": ("sft", "self_distill", "l2"), "start": ("snapshot", "base"), "teacher_cache": ("auto", "full",
           "topk", "none"), "kd_weighting": ("token", "sequence"), "mixed_precision": ("no", "bf16", "fp16")}


def option(default, help: str, **kw):
    return field(default=default, metadata={"help": help, **kw})


@dataclass
class TrainConfig:
    """One training run (SPEC §3); each field's help says what it sets."""

    method: str = option("sft", "sft: CE on answer tokens; self_distill: CE + λτ²·KL to the snapshot teacher; l2: "
                         "CE + μ‖θ − θ_snapshot‖²")
    epochs: int = option(10, "maximum epochs over the training facts")
    target_new_acc: float | None = option(None, "stop at the first check with acc(D_unknown) >= this (matched "
                                          "acquisition); none: train for --epochs")
    eval_every_steps: int | None = option(None, "with a target: check acc(D_unknown) every this many steps; "
                                          "none: 4 checks per epoch (a full evaluation ends every epoch)")
    lr: float = option(5e-5, "AdamW learning rate (constant)")
    batch_size: int = option(32, "facts per optimiser step (over all processes)")
    weight_decay: float = option(0.0, "AdamW decoupled weight decay")
    max_grad_norm: float | None = option(1.0, "clip the gradient norm to this; none: no clipping")
    seed: int = option(0, "seeds batch order, dropout and the snapshot")
    start: str = option("snapshot", "student start: the snapshot (same for every method) or the base model")
    snapshot_epochs: int = option(1, "epochs of SFT on D_known (all parameters) that make the snapshot")
    kd_lambda: float = option(1.0, "λ, weight of the KD term")
    kd_tau: float = option(0.5, "τ, distillation temperature")
    kd_weighting: str = option("token", "KL averaged over all non-pad positions (token) or summed per sequence and "
                               "averaged over sequences (sequence)")
    teacher_cache: str = option("auto", "teacher distribution kept in full, as top-k + tail, or recomputed each step "
                                "(none); auto: the first that fits --teacher-cache-gb")
    teacher_topk: int = option(64, "k of the top-k cache")
    teacher_cache_gb: float = option(2.0, "memory the auto cache may take (GB)")
    l2_mu: float | str = option("match_kd", "μ of l2, or match_kd: μ = ‖∇KD‖ / (2‖θ − θ₀‖) after an SFT probe")
    l2_match_steps: int | None = option(None, "SFT steps of that probe; none: one epoch")
    l2_match_batches: int = option(4, "batches the KD gradient norm is averaged over")
    freeze: str | None = option(None, "parameters to freeze: GROUP[@LAYER|@A-B],... (interference.parameter_groups)")
    train_only: str | None = option(None, "parameters to train, everything else frozen (same syntax)")
    train_splits: tuple[str, ...] = option(SPLITS, "splits trained on (known alone: Table 1's known-only row)")
    eval_batch_size: int | None = option(None, "facts per generation batch in evaluation and teacher caching; none: "
                                         "64 on a CPU, 8x on a GPU (interference.devices.inference_batch_size)")
    eval_max_new_tokens: int | None = option(None, "generated tokens per answer; none: longest gold answer + 8")
    mixed_precision: str = option("no", "autocast: no, bf16 or fp16 (through accelerate)")
    report_to: str | None = option(None, "trackers for per-step loss/CE/KL/grad-norm and accuracies (tensorboard, "
                                   "wandb, all), written under the output folder")
    log_every: int = option(10, "steps between progress updates and loss checks")
    checkpoint_every: int = option(1, "epochs between resumable checkpoints")

    def __post_init__(self) -> None:
        def bad(name: str, why: str):
            raise InterferenceError(f"{name} {why}, got {getattr(self, name)!r}")

        def number(v) -> bool:
            return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)

        for name, choices in CHOICES.items():
            if getattr(self, name) not in choices:
                bad(name, f"must be one of {', '.join(choices)}")
        for f in fields(self):
            value, low = getattr(self, f.name), 0 if f.name == "seed" else 1
            if f.type in ("int", "int | None") and not (f.type != "int" and value is None) and (
                    isinstance(value, bool) or not isinstance(value, int) or not low <= value < 2**32):
                bad(f.name, f"must be an integer >= {low}" + (" and < 2^32" if isinstance(value, int) and value > 0
                                                             else "") + (" or None" if f.type != "int" else ""))
        for name in ("lr", "kd_tau", "teacher_cache_gb", "max_grad_norm", "kd_lambda", "weight_decay"):
            value, strict = getattr(self, name), name not in ("kd_lambda", "weight_decay")
            if not (value is None and name == "max_grad_norm") and not (
                    number(value) and (value > 0 if strict else value >= 0)):
                bad(name, f"must be a finite number {'> 0' if strict else '>= 0'}")
        if self.target_new_acc is not None and not (number(self.target_new_acc) and 0 < self.target_new_acc <= 1):
            bad("target_new_acc", "must be in (0, 1] or None")
        if isinstance(self.l2_mu, str) and self.l2_mu != "match_kd":
            try:
                self.l2_mu = float(self.l2_mu)
            except ValueError:
                bad("l2_mu", "must be a number >= 0 or 'match_kd'")
        if not isinstance(self.l2_mu, str) and not (number(self.l2_mu) and self.l2_mu >= 0):
            bad("l2_mu", "must be a number >= 0 or 'match_kd'")
        if self.freeze is not None and self.train_only is not None:
            raise InterferenceError("give either freeze or train_only, not both")
        for selection in (self.freeze, self.train_only):
            if selection is not None:
                parse_selection(selection)
        if isinstance(self.train_splits, str):
            bad("train_splits", "must be a tuple of split names, e.g. ('known',)")
        self.train_splits = tuple(self.train_splits)
        if not self.train_splits or not set(self.train_splits) <= set(SPLITS) or len(set(self.train_splits)) < len(
                self.train_splits):
            bad("train_splits", "must be a non-empty subset of ('known', 'unknown')")

    @property
    def needs_snapshot(self) -> bool:
        """Whether this run needs θ_snapshot (as teacher, anchor or start)."""
        return self.method != "sft" or self.start == "snapshot"

    def to_dict(self) -> dict:
        return {**asdict(self), "train_splits": list(self.train_splits)}

    @classmethod
    def from_dict(cls, data: dict) -> TrainConfig:
        """Inverse of `to_dict`; unknown keys are an error."""
        unknown = sorted(set(data) - {f.name for f in fields(cls)})
        if unknown:
            raise InterferenceError(f"unknown training option {unknown[0]!r}")
        return cls(**data)

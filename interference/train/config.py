"""`TrainConfig`: every choice of a training run, with its help text and bounds (the command line derives from it).

Defaults for what the paper leaves open: AdamW (β 0.9, 0.999), constant lr, clipping at norm 1, every method starting
from the snapshot (the fair protocol). The paper's lr is 5e-5 for 1.5B–8B models; tiny models need far more (≈1e-3).
"""

from __future__ import annotations

import importlib.util
import math
from dataclasses import dataclass

from ..io.dataclass_options import DictFields, check_options, option
from ..io.errors import InterferenceError
from ..models.parameter_groups import parse_selection

SPLITS = ("known", "unknown")


@dataclass
class TrainConfig(DictFields):
    """One training run (SPEC §3); each field's help says what it sets."""

    method: str = option("sft", "sft: CE on answer tokens; self_distill: CE + λτ²·KL to the snapshot teacher; l2: "
                         "CE + μ‖θ − θ_snapshot‖²", choices=("sft", "self_distill", "l2"))
    epochs: int = option(10, "maximum epochs over the training facts", low=1)
    target_new_acc: float | None = option(None, "stop at the first check with acc(D_unknown) >= this (matched "
                                          "acquisition); none: train for --epochs", low=0, above=True, high=1)
    eval_every_steps: int | None = option(None, "with a target: check acc(D_unknown) every this many steps; none: "
                                          "4 checks per epoch, and within 0.1 of the target every step (at most "
                                          "16 checks per epoch)", low=1)
    acquisition_check: str = option("greedy", "how the checks inside an epoch measure acc(D_unknown): greedy "
                                    "decoding (exact), or teacher_forced: one forward pass, a fact counts when the "
                                    "argmax reproduces its trained answer (a lower bound on greedy, no generation; "
                                    "evaluations after each epoch and at the stop stay greedy)",
                                    choices=("greedy", "teacher_forced"))
    lr: float = option(5e-5, "AdamW learning rate (constant)", low=0, above=True)
    batch_size: int = option(32, "facts per optimiser step (over all processes)", low=1)
    weight_decay: float = option(0.0, "AdamW decoupled weight decay", low=0)
    max_grad_norm: float | None = option(1.0, "clip the gradient norm to this; none: no clipping", low=0, above=True)
    seed: int = option(0, "seeds batch order, dropout and the snapshot", low=0)
    order_shift: int = option(0, "training batches (not the snapshot's) are ordered by seed + this", low=0)
    start: str = option("snapshot", "student start: the snapshot (the same for every method) or the base model",
                        choices=("snapshot", "base"))
    snapshot_epochs: int = option(1, "epochs of SFT on D_known (all parameters) that make the snapshot", low=1)
    kd_lambda: float = option(1.0, "λ, weight of the KD term", low=0)
    kd_tau: float = option(0.5, "τ, distillation temperature", low=0, above=True)
    kd_weighting: str = option("token", "KL averaged over all non-pad positions (token) or summed per sequence and "
                               "averaged over sequences (sequence)", choices=("token", "sequence"))
    teacher_cache: str = option("auto", "teacher distribution kept in full, as top-k + tail, or recomputed every step "
                                "(none); auto: the first that fits --teacher-cache-gb",
                                choices=("auto", "full", "topk", "none"))
    teacher_topk: int = option(64, "k of the top-k cache", low=1)
    teacher_cache_gb: float = option(2.0, "memory the auto cache may take (GB)", low=0, above=True)
    l2_mu: float | str = option("match_kd", "μ of l2, or match_kd: μ = ‖∇KD‖ / (2‖θ − θ₀‖) after an SFT probe")
    l2_match_steps: int | None = option(None, "SFT steps of that probe; none: one epoch", low=1)
    l2_match_batches: int = option(4, "batches the KD gradient norm is averaged over", low=1)
    freeze: str | None = option(None, "parameters to freeze: GROUP[@LAYER|@A-B],... "
                                "(interference.models.parameter_groups)")
    train_only: str | None = option(None, "parameters to train, everything else frozen (same syntax)")
    ewc_lambda: float = option(0.0, "EWC: + λ·Σ F_i (θ_i − θ_i⁰)², F the diagonal Fisher of D_known at the start "
                               "(the snapshot); 0: off", low=0)
    replay_fraction: float = option(0.0, "rehearsal: this share of every batch is drawn again from the replay facts "
                                    "(D_known unless train() is given others); 0: off", low=0, high=0.9)
    lora_rank: int | None = option(None, "train LoRA adapters of this rank (PEFT) on --lora-targets instead of the "
                                   "weights, merged into them at the end; none: full fine-tuning", low=1)
    lora_alpha: float = option(16.0, "LoRA α: the update is (α / rank)·B·A", low=0, above=True)
    lora_targets: str = option("attention,ffn", "parameter groups whose linear projections get adapters (freeze's "
                               "syntax)")
    lora_lr: float | None = option(None, "learning rate of the adapters; none: lr (LoRA often needs several times "
                                   "full fine-tuning's)", low=0, above=True)
    train_splits: tuple[str, ...] = option(SPLITS, "splits trained on (known alone: Table 1's known-only row)",
                                           choices=SPLITS)
    eval_batch_size: int | None = option(None, "facts per generation batch in evaluation and teacher caching; none: "
                                         "64 on a CPU, 8x on a GPU (interference.models.devices.inference_batch_size)",
                                         low=1)
    eval_max_new_tokens: int | None = option(None, "generated tokens per answer; none: longest gold answer + 8", low=1)
    mixed_precision: str = option("no", "autocast through accelerate", choices=("no", "bf16", "fp16"))
    torch_compile: str = option("none", "torch.compile the training step's forward (reduce-overhead: as CUDA graphs, "
                                "for a GPU where eager steps are bound by dispatch), batches padded to the facts' full "
                                "width; losses match eager's to float tolerance; the first steps compile",
                                choices=("none", "default", "reduce-overhead"))
    report_to: str | None = option(None, "tracker of per-step loss/CE/KL/grad-norm and per-epoch accuracies, "
                                   "written under the output folder's logs/", choices=("tensorboard", "wandb"))
    log_every: int = option(10, "steps between progress updates and loss checks", low=1)
    checkpoint_every: int = option(1, "epochs between resumable checkpoints", low=1)

    def __post_init__(self) -> None:
        if self.l2_mu != "match_kd":
            try:
                mu = float(self.l2_mu)
            except (TypeError, ValueError):
                mu = math.nan
            if not 0 <= mu < math.inf:
                raise InterferenceError(f"l2_mu must be a number >= 0 or 'match_kd', got {self.l2_mu!r}")
            self.l2_mu = mu
        splits = self.train_splits
        if isinstance(splits, str) or not splits or len(set(splits)) < len(splits):
            raise InterferenceError(f"train_splits must be a non-empty tuple of distinct split names from {SPLITS}, "
                                    f"got {splits!r}")
        self.train_splits = tuple(splits)
        check_options(self)
        if self.eval_every_steps is not None and self.target_new_acc is None:
            raise InterferenceError("eval_every_steps sets how often acquisition is checked against target_new_acc, "
                                    "which is not set")
        if self.freeze is not None and self.train_only is not None:
            raise InterferenceError("give either freeze or train_only, not both")
        if self.report_to and importlib.util.find_spec(self.report_to) is None:
            raise InterferenceError(f"report_to={self.report_to!r} needs the {self.report_to} package (pip install "
                                    f"{self.report_to})")
        for selection in (self.freeze, self.train_only, self.lora_targets):
            if selection is not None:
                parse_selection(selection)
        if self.ewc_lambda and self.start != "snapshot":
            raise InterferenceError("ewc_lambda anchors at the snapshot: it needs start='snapshot'")
        if self.lora_rank and (self.freeze or self.train_only or self.method == "l2" or self.ewc_lambda):
            raise InterferenceError("LoRA trains adapters only: it does not combine with freeze, train_only, l2 or "
                                    "ewc_lambda (their anchors are weights)")

    @property
    def needs_snapshot(self) -> bool:
        """Whether this run needs θ_snapshot (as teacher, anchor or start; EWC's anchor is the start)."""
        return self.method != "sft" or self.start == "snapshot"


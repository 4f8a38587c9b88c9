"""The self-distillation teacher: frozen snapshot weights, and their output distribution on every example.

The teacher and the inputs are fixed, so `TeacherCache` computes the distribution once (in full, or top-k plus a tail
bucket); `OnTheFlyTeacher` recomputes it every step, as the paper does. README, "Training": which cache and its size.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from tqdm.auto import tqdm

from ..facts.examples import Batch, Examples, epoch_order, training_rows
from ..facts.fact import Fact
from ..io.errors import InterferenceError
from ..measures.evaluation import EVAL_BATCH
from ..models.devices import inference_batch_size
from ..models.generation import forward_logits, inference_mode
from ..models.weights import Snapshot
from .config import TrainConfig
from .losses import distill_kl, distill_kl_topk, tempered_log_probs, topk_compress


def choose_cache(n: int, width: int, vocab: int, k: int, budget_gb: float) -> str:
    """teacher_cache="auto": "full" (4·V bytes a position) if it fits `budget_gb`, else "topk" (8k + 4 bytes) if that
    fits, else "none" (recompute every step)."""
    positions, budget = n * width, budget_gb * 1e9
    if positions * 4 * vocab <= budget:
        return "full"
    return "topk" if positions * (8 * k + 4) <= budget else "none"


def teacher_module(model: torch.nn.Module, snapshot: Snapshot) -> torch.nn.Module:
    """A frozen copy of `model` holding the snapshot's weights, in eval mode."""
    teacher = copy.deepcopy(model)
    snapshot.load_into(teacher)
    return teacher.eval().requires_grad_(False)


def _log_probs(teacher: torch.nn.Module, batch: Batch, tau: float) -> torch.Tensor:
    return tempered_log_probs(forward_logits(teacher, batch), tau)


class TeacherCache:
    """The teacher's tempered distribution on every example: [N, T_max, V], or top-k [N, T_max, k] with tail [N, T]."""

    def __init__(self, mode, tau, keys, lengths, values, indices=None, tail=None):
        self.mode, self.tau, self.keys, self.lengths = mode, tau, keys, lengths
        self.values, self.indices, self.tail = values, indices, tail

    @classmethod
    def build(cls, teacher: torch.nn.Module, examples: Examples, *, tau: float, mode: str = "full", k: int = 64,
              batch_size: int = 64, progress: bool = True) -> TeacherCache:
        """Run the frozen teacher once over all examples and keep its distribution ("full" or "topk")."""
        if mode not in ("full", "topk"):
            raise InterferenceError(f"teacher cache mode must be 'full' or 'topk', got {mode!r}")
        device, (n, width), kept = next(teacher.parameters()).device, examples.input_ids.shape, None
        with inference_mode(teacher):
            for index in tqdm(epoch_order(n, batch_size, seed=0, epoch=0, shuffle=False), desc="teacher cache",
                              disable=not progress, leave=False):
                log_probs = _log_probs(teacher, examples.batch(index).to(device), tau)
                parts = (log_probs,) if mode == "full" else topk_compress(log_probs, k)
                if kept is None:  # values, and for top-k indices and tail, padded to the longest example
                    kept = [torch.full((n, width, *p.shape[2:]), -torch.inf if p.dim() == 2 else 0, device=device,
                                       dtype=torch.int32 if p.dtype == torch.int64 else p.dtype) for p in parts]
                for store, part in zip(kept, parts, strict=True):
                    store[index, : part.shape[1]] = part.to(store.dtype)
        indices, values, tail = (None, kept[0], None) if mode == "full" else kept
        return cls(mode, tau, list(examples.keys), examples.lengths.clone(), values, indices, tail)

    def check(self, examples: Examples, tau: float) -> None:
        """Raise InterferenceError unless this cache was built for these examples and this τ."""
        if self.keys != examples.keys or not torch.equal(self.lengths, examples.lengths):
            raise InterferenceError("the teacher cache was built for other training examples")
        if self.tau != tau:
            raise InterferenceError(f"the teacher cache was built at tau={self.tau}, training uses tau={tau}")

    def to(self, device: torch.device | str) -> TeacherCache:
        moved = [None if t is None else t.to(device) for t in (self.values, self.indices, self.tail)]
        return TeacherCache(self.mode, self.tau, self.keys, self.lengths, *moved)

    def kl(self, student_logits: torch.Tensor, batch: Batch, weighting: str = "token") -> torch.Tensor:
        """KD KL of the student on `batch` against the cached distribution."""
        t, i = student_logits.shape[1], batch.index.to(self.values.device)
        if self.mode == "full":
            return distill_kl(student_logits, self.values[i, :t], batch.attention_mask, self.tau, weighting)
        return distill_kl_topk(student_logits, self.indices[i, :t], self.values[i, :t], self.tail[i, :t],
                               batch.attention_mask, self.tau, weighting)


class OnTheFlyTeacher:
    """The teacher run on every batch (the paper's cost): exact, and no cache memory."""

    def __init__(self, teacher: torch.nn.Module, tau: float):
        self.teacher, self.tau = teacher, tau

    def kl(self, student_logits: torch.Tensor, batch: Batch, weighting: str = "token") -> torch.Tensor:
        with torch.no_grad():
            teacher = _log_probs(self.teacher, batch, self.tau)
        return distill_kl(student_logits, teacher, batch.attention_mask, self.tau, weighting)


def make_teacher(model, examples: Examples, snapshot: Snapshot, config: TrainConfig, *,
                 cache: TeacherCache | None = None, fresh: bool = False, progress: bool = True):
    """The KD teacher of `config`: the given cache (checked), a new one, or an on-the-fly frozen copy of `model`
    holding the snapshot. `fresh`: `model` holds exactly θ_snapshot (before its first step)."""
    mode = config.teacher_cache if config.teacher_cache != "auto" else choose_cache(
        *examples.input_ids.shape, model.config.vocab_size, config.teacher_topk, config.teacher_cache_gb)
    if mode == "none":
        return OnTheFlyTeacher(teacher_module(model, snapshot), config.kd_tau)
    if cache is not None:
        cache.check(examples, config.kd_tau)
        if config.teacher_cache not in ("auto", cache.mode):
            raise InterferenceError(f"the teacher cache is {cache.mode!r} but teacher_cache={config.teacher_cache!r}")
        return cache.to(next(model.parameters()).device)
    teacher = model if fresh and config.start == "snapshot" else teacher_module(model, snapshot)
    batch = config.eval_batch_size or inference_batch_size(EVAL_BATCH, next(model.parameters()).device)
    return TeacherCache.build(teacher, examples, tau=config.kd_tau, mode=mode, k=config.teacher_topk,
                              batch_size=batch, progress=progress)


def build_teacher_cache(model: torch.nn.Module, tokenizer, config: TrainConfig, snapshot: Snapshot, *,
                        known: Sequence[Fact], unknown: Sequence[Fact], replay: Sequence[Fact] = (),
                        progress: bool = True) -> TeacherCache:
    """The teacher cache `train` would build for this config, snapshot and `replay` facts, for runs to share."""
    pool = (list(replay) or list(known)) if config.replay_fraction else None
    examples = training_rows(tokenizer, {"known": list(known), "unknown": list(unknown)}, config.train_splits, pool)[0]
    teacher = make_teacher(model, examples, snapshot, config, progress=progress)
    if not isinstance(teacher, TeacherCache):
        raise InterferenceError("this config keeps no teacher cache to share (teacher_cache resolves to 'none')")
    return teacher

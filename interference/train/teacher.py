"""The self-distillation teacher: a frozen snapshot of the weights, and its output distribution computed once.

The teacher is frozen and the training inputs are fixed, so its tempered distribution at every position of every
training example is the same in every epoch. `TeacherCache` stores it once — in full (log p^τ over the vocabulary;
the KD loss equals the on-the-fly loss up to float round-off of differently-shaped batches) or as top-k plus the
tail mass in one extra bucket (a lower bound of the full KL, see `losses.distill_kl_topk`) — and `OnTheFlyTeacher`
pays one teacher forward per step, as the paper does. Both expose `kl(student_logits, batch)`.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

from ..errors import InterferenceError
from ..generation import inference_mode
from .batches import Batch, Examples, epoch_order
from .losses import distill_kl, distill_kl_topk, tempered_log_probs, topk_compress

CACHE_MODES = ("full", "topk", "none")


@dataclass
class Snapshot:
    """Frozen weights θ_snapshot: parameter name → tensor (names as in `named_parameters()`, tied weights once)."""

    params: dict[str, torch.Tensor]
    epochs: int = 1

    @classmethod
    def of(cls, model: torch.nn.Module, epochs: int = 1) -> Snapshot:
        """A detached copy of the model's current parameters."""
        return cls({n: p.detach().clone() for n, p in model.named_parameters()}, epochs)

    def load_into(self, model: torch.nn.Module) -> None:
        """Copy the snapshot's values into `model`'s parameters (same architecture required)."""
        names = [n for n, _ in model.named_parameters()]
        if set(names) != set(self.params):
            missing = sorted(set(names) ^ set(self.params))[0]
            raise InterferenceError(f"snapshot does not match the model (parameter {missing!r})")
        with torch.no_grad():
            for name, param in model.named_parameters():
                source = self.params[name]
                if source.shape != param.shape:
                    raise InterferenceError(f"snapshot parameter {name!r} has shape {tuple(source.shape)}")
                param.copy_(source)

    def anchors(self, names: list[str], device: torch.device) -> list[torch.Tensor]:
        """The snapshot values of `names`, on `device`, in that order."""
        return [self.params[n].to(device) for n in names]


def teacher_module(model: torch.nn.Module, snapshot: Snapshot) -> torch.nn.Module:
    """A frozen copy of `model` holding the snapshot's weights, in eval mode."""
    teacher = copy.deepcopy(model)
    snapshot.load_into(teacher)
    teacher.eval().requires_grad_(False)
    return teacher


def _teacher_log_probs(teacher: torch.nn.Module, batch: Batch, tau: float) -> torch.Tensor:
    logits = teacher(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits
    return tempered_log_probs(logits, tau)


class TeacherCache:
    """The teacher's tempered distribution on every training example, padded to [N, T_max, ·]."""

    def __init__(
        self,
        mode: str,
        tau: float,
        keys: list,
        lengths: torch.Tensor,
        values: torch.Tensor,
        indices: torch.Tensor | None = None,
        tail: torch.Tensor | None = None,
    ):
        self.mode, self.tau, self.keys, self.lengths = mode, tau, keys, lengths
        self.values, self.indices, self.tail = values, indices, tail

    @classmethod
    def build(
        cls,
        teacher: torch.nn.Module,
        examples: Examples,
        *,
        tau: float,
        mode: str = "full",
        k: int = 64,
        batch_size: int = 64,
        progress: bool = True,
    ) -> TeacherCache:
        """Run the (frozen) teacher once over all examples and keep its distribution ("full" or "topk")."""
        if mode not in ("full", "topk"):
            raise InterferenceError(f"teacher cache mode must be 'full' or 'topk', got {mode!r}")
        device = next(teacher.parameters()).device
        n, width = examples.input_ids.shape
        values = indices = tail = None
        bar = tqdm(total=n, desc="teacher cache", unit="ex", disable=not progress, leave=False)
        with inference_mode(teacher):
            for index in epoch_order(n, batch_size, seed=0, epoch=0, shuffle=False):
                batch = examples.batch(index).to(device)
                log_probs = _teacher_log_probs(teacher, batch, tau)
                t = log_probs.shape[1]
                if mode == "full":
                    if values is None:
                        values = torch.zeros((n, width, log_probs.shape[-1]), device=device)
                    values[index, :t] = log_probs
                else:
                    top_i, top_v, top_tail = topk_compress(log_probs, k)
                    if values is None:
                        kk = top_i.shape[-1]
                        values = torch.zeros((n, width, kk), device=device)
                        indices = torch.zeros((n, width, kk), dtype=torch.int32, device=device)
                        tail = torch.full((n, width), float("-inf"), device=device)
                    values[index, :t], indices[index, :t], tail[index, :t] = top_v, top_i.int(), top_tail
                bar.update(len(index))
        bar.close()
        return cls(mode, tau, list(examples.keys), examples.lengths.clone(), values, indices, tail)

    def check(self, examples: Examples, tau: float) -> None:
        """Raise InterferenceError unless this cache was built for these examples and this τ."""
        if self.keys != examples.keys or not torch.equal(self.lengths, examples.lengths):
            raise InterferenceError("the teacher cache was built for other training examples")
        if self.tau != tau:
            raise InterferenceError(f"the teacher cache was built at tau={self.tau}, training uses tau={tau}")

    def to(self, device: torch.device | str) -> TeacherCache:
        """This cache with its tensors on `device` (self when already there)."""
        if self.values.device == torch.device(device):
            return self
        move = lambda t: None if t is None else t.to(device)
        return TeacherCache(
            self.mode, self.tau, self.keys, self.lengths, move(self.values), move(self.indices), move(self.tail)
        )

    def kl(self, student_logits: torch.Tensor, batch: Batch) -> torch.Tensor:
        """KD KL of the student on `batch` against the cached teacher distribution."""
        t = student_logits.shape[1]
        index = batch.index.to(self.values.device)
        if self.mode == "full":
            return distill_kl(student_logits, self.values[index, :t], batch.attention_mask, self.tau)
        return distill_kl_topk(
            student_logits,
            self.indices[index, :t],
            self.values[index, :t],
            self.tail[index, :t],
            batch.attention_mask,
            self.tau,
        )


class OnTheFlyTeacher:
    """The teacher run on every batch (the paper's cost): exact, and needs no cache memory."""

    def __init__(self, teacher: torch.nn.Module, tau: float):
        self.teacher, self.tau = teacher, tau

    def kl(self, student_logits: torch.Tensor, batch: Batch) -> torch.Tensor:
        with torch.no_grad():
            teacher = _teacher_log_probs(self.teacher, batch, self.tau)
        return distill_kl(student_logits, teacher, batch.attention_mask, self.tau)

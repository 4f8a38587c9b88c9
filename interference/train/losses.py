"""The training objectives as pure functions of tensors (SPEC §3).

Shapes: logits [B, T, V]; `labels` [B, T] holding target token ids on answer tokens and `IGNORE` elsewhere (the
label at position t is the token at t, predicted from position t − 1); `mask` [B, T] marking non-pad positions.

- SFT: `answer_cross_entropy` — mean cross-entropy over answer tokens only (prompt and pad ignored).
- Self-distillation (Kaplan et al., Eq. 1–2): CE + λ·τ²·KL(p_teacher^τ ‖ p_student^τ), p^τ = softmax(z/τ), forward KL
  over the full vocabulary, averaged over every non-pad position (prompt and answer): `self_distill_objective`
  with `distill_kl` (teacher log-probabilities over the full vocabulary) or `distill_kl_topk` (a cached top-k).
- L2 control: CE + μ·‖θ − θ_snapshot‖² (`l2_distance`), μ optionally matched to the KD gradient (`matched_mu`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

#: Label value of positions that carry no cross-entropy (prompt and pad).
IGNORE = -100


def answer_cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean next-token cross-entropy over the positions whose label is not `IGNORE` (token-level mean)."""
    # Shift the labels, not the logits: logits[:, t] predicts labels[:, t + 1]; slicing the logits would copy them.
    targets = F.pad(labels[:, 1:], (0, 1), value=IGNORE)
    return F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten(), ignore_index=IGNORE)


def tempered_log_probs(logits: torch.Tensor, tau: float) -> torch.Tensor:
    """log softmax(z / τ) over the last dimension, in float32."""
    return torch.log_softmax(logits.float() / tau, dim=-1)


def _masked_mean(per_position: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    weights = mask.to(per_position.dtype)
    return (per_position * weights).sum() / weights.sum().clamp_min(1.0)


def distill_kl(
    student_logits: torch.Tensor, teacher_log_probs: torch.Tensor, mask: torch.Tensor, tau: float
) -> torch.Tensor:
    """KL(p_teacher^τ ‖ p_student^τ) over the full vocabulary, averaged over the positions where `mask` is set.

    `teacher_log_probs` are the teacher's tempered log-probabilities (`tempered_log_probs(teacher_logits, τ)`), so a
    cache of them and an on-the-fly teacher give the same value. Gradients flow into the student only.
    """
    student = tempered_log_probs(student_logits, tau)
    teacher = teacher_log_probs.detach().float()
    per_position = (teacher.exp() * (teacher - student)).sum(-1)
    return _masked_mean(per_position, mask)


def topk_compress(teacher_log_probs: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Keep the teacher's k most likely tokens per position and the log of the remaining (tail) mass.

    Returns (indices [.., k] int64, log-probs [.., k], tail log-mass [..]); the tail is −inf when k covers the vocab.
    """
    k = min(k, teacher_log_probs.shape[-1])
    values, indices = teacher_log_probs.topk(k, dim=-1)
    tail = _tail_log_mass(teacher_log_probs, indices)
    return indices, values, tail


def _tail_log_mass(log_probs: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
    """log Σ_{v ∉ indices} p_v, computed stably with logsumexp over the excluded entries."""
    excluded = log_probs.scatter(-1, indices, float("-inf"))
    return torch.logsumexp(excluded, dim=-1)


def distill_kl_topk(
    student_logits: torch.Tensor,
    teacher_indices: torch.Tensor,
    teacher_log_probs: torch.Tensor,
    teacher_tail: torch.Tensor,
    mask: torch.Tensor,
    tau: float,
) -> torch.Tensor:
    """KL between the teacher's and the student's tempered distributions coarsened to top-k + one tail bucket.

    Per position, with S the teacher's top-k set: Σ_{v∈S} p_v log(p_v/q_v) + p_tail log(p_tail/q_tail). By the
    chain rule of KL this equals the full KL minus p_tail·KL(p|tail ‖ q|tail): never above the full KL, and below it
    by at most p_tail · max_{v∉S} log((p_v/p_tail)/(q_v/q_tail)) — exact when k covers the vocabulary.
    """
    student = tempered_log_probs(student_logits, tau)
    indices = teacher_indices.long()
    student_top = student.gather(-1, indices)
    student_tail = _tail_log_mass(student, indices)
    teacher_top = teacher_log_probs.detach().float()
    teacher_tail = teacher_tail.detach().float()
    head = (teacher_top.exp() * (teacher_top - student_top)).sum(-1)
    tail_p = teacher_tail.exp()
    # A tail of zero mass (k covers the vocabulary) contributes nothing; avoid 0 · (−inf − −inf) = NaN.
    tail = torch.where(tail_p > 0, tail_p * (teacher_tail - student_tail), torch.zeros_like(tail_p))
    return _masked_mean(head + tail, mask)


def self_distill_objective(ce: torch.Tensor, kl: torch.Tensor, lam: float, tau: float) -> torch.Tensor:
    """L = CE + λ·τ²·KL (the τ² keeps the KD gradient's scale independent of τ, Hinton et al. 2015)."""
    return ce + lam * tau * tau * kl


def l2_distance(params: Sequence[torch.Tensor], anchors: Sequence[torch.Tensor]) -> torch.Tensor:
    """‖θ − θ_anchor‖² summed over the given parameters (differentiable in `params`)."""
    if len(params) != len(anchors):
        raise ValueError(f"l2_distance needs one anchor per parameter, got {len(params)} and {len(anchors)}")
    if not params:
        return torch.zeros(())
    return torch.stack([(p.float() - a.float()).pow(2).sum() for p, a in zip(params, anchors, strict=True)]).sum()


def matched_mu(kd_grad_norm: float, distance_norm: float) -> float:
    """μ such that ‖∇ μ‖θ−θ₀‖²‖ = 2μ‖θ−θ₀‖ equals the KD term's gradient norm; raises if the distance is 0."""
    if distance_norm <= 0:
        raise ValueError("cannot match μ at θ = θ_snapshot: the L2 gradient is zero there")
    return kd_grad_norm / (2.0 * distance_norm)

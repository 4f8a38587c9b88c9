"""The training objectives as pure functions of tensors (SPEC §3).

Shapes: logits [B, T, V]; `labels` [B, T], the target id on answer tokens and `IGNORE` elsewhere (label t is the
token at t, predicted from position t − 1); `mask` [B, T], the non-pad positions. SFT: `answer_cross_entropy`.
Self-distillation (Eq. 1–2): CE + λ·τ²·KL(p_teacher^τ ‖ p_student^τ) at every non-pad position, reduced by
`kd_weight`. L2 control: CE + μ·‖θ − θ_snapshot‖², μ optionally matched to the KD gradient (`matched_mu`).
EWC: + λ·Σ F_i (θ_i − θ_i⁰)² (`ewc_penalty`), F the diagonal Fisher of D_known at the start.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from ..facts.examples import IGNORE, next_token_targets  # IGNORE: the label of prompt and pad positions


def answer_cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean next-token cross-entropy over the positions whose label is not `IGNORE`."""
    return F.cross_entropy(logits.flatten(0, 1).float(), next_token_targets(labels).flatten(), ignore_index=IGNORE)


def tempered_log_probs(logits: torch.Tensor, tau: float) -> torch.Tensor:
    """log softmax(z / τ) over the last dimension, in float32."""
    return torch.log_softmax(logits.float() / tau, dim=-1)


def kd_weight(per_position: torch.Tensor, mask: torch.Tensor, weighting: str = "token") -> torch.Tensor:
    """Reduce a [B, T] per-position KL to a scalar: "token" mean over mask, or "sequence" sum per row, row mean."""
    weighted = per_position * mask.to(per_position.dtype)
    if weighting == "token":
        return weighted.sum() / mask.sum().clamp_min(1)
    if weighting == "sequence":
        return weighted.sum(1).mean()
    raise ValueError(f"kd weighting must be 'token' or 'sequence', got {weighting!r}")


def distill_kl(student_logits: torch.Tensor, teacher_log_probs: torch.Tensor, mask: torch.Tensor, tau: float,
               weighting: str = "token") -> torch.Tensor:
    """KL(p_teacher^τ ‖ p_student^τ) over the full vocabulary at the `mask` positions, reduced by `kd_weight`.

    `teacher_log_probs` = `tempered_log_probs(teacher_logits, τ)`, cached or fresh; gradients reach the student only.
    """
    student, teacher = tempered_log_probs(student_logits, tau), teacher_log_probs.detach().float()
    return kd_weight((teacher.exp() * (teacher - student)).sum(-1), mask, weighting)


def topk_compress(teacher_log_probs: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The teacher's k most likely tokens per position: (indices [.., k], log-probs [.., k], tail log-mass [..]);
    the tail is −inf when k covers the vocabulary."""
    values, indices = teacher_log_probs.topk(min(k, teacher_log_probs.shape[-1]), dim=-1)
    return indices, values, _tail_log_mass(teacher_log_probs, indices)


def _tail_log_mass(log_probs: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
    return torch.logsumexp(log_probs.scatter(-1, indices, float("-inf")), dim=-1)


def distill_kl_topk(student_logits: torch.Tensor, teacher_indices: torch.Tensor, teacher_log_probs: torch.Tensor,
                    teacher_tail: torch.Tensor, mask: torch.Tensor, tau: float, weighting: str = "token"
                    ) -> torch.Tensor:
    """KL of the tempered distributions coarsened to the teacher's top-k set S plus one tail bucket.

    Per position: Σ_{v∈S} p_v log(p_v/q_v) + p_tail log(p_tail/q_tail). By the chain rule of KL this is the full KL
    minus p_tail·KL(p|tail ‖ q|tail): never above it, below it by at most p_tail · max_{v∉S} log((p_v/p_tail) /
    (q_v/q_tail)), exact when k covers the vocabulary.
    """
    student, indices = tempered_log_probs(student_logits, tau), teacher_indices.long()
    top, tail = teacher_log_probs.detach().float(), teacher_tail.detach().float()
    head = (top.exp() * (top - student.gather(-1, indices))).sum(-1)
    tail_p = tail.exp()  # a zero tail contributes nothing (avoid 0 · (−inf − −inf) = NaN)
    rest = torch.where(tail_p > 0, tail_p * (tail - _tail_log_mass(student, indices)), torch.zeros_like(tail_p))
    return kd_weight(head + rest, mask, weighting)


def self_distill_objective(ce: torch.Tensor, kl: torch.Tensor, lam: float, tau: float) -> torch.Tensor:
    """L = CE + λ·τ²·KL (τ² keeps the KD gradient's scale independent of τ, Hinton et al. 2015)."""
    return ce + lam * tau * tau * kl


def l2_distance(params: Sequence[torch.Tensor], anchors: Sequence[torch.Tensor]) -> torch.Tensor:
    """‖θ − θ_anchor‖² summed over the given parameters (differentiable in `params`)."""
    if len(params) != len(anchors):
        raise ValueError(f"l2_distance needs one anchor per parameter, got {len(params)} and {len(anchors)}")
    if not params:
        return torch.zeros(())
    return torch.stack([(p.float() - a.float()).pow(2).sum() for p, a in zip(params, anchors, strict=True)]).sum()


def ewc_penalty(params: Sequence[torch.Tensor], anchors: Sequence[torch.Tensor], fisher: Sequence[torch.Tensor]
                ) -> torch.Tensor:
    """Σ F_i (θ_i − θ_i⁰)² over the given parameters (EWC, Kirkpatrick et al. 2017); F = 1 is `l2_distance`."""
    if not len(params) == len(anchors) == len(fisher):
        raise ValueError(f"ewc_penalty needs one anchor and one Fisher per parameter, got {len(params)}, "
                         f"{len(anchors)} and {len(fisher)}")
    if not params:
        return torch.zeros(())
    return torch.stack([(f * (p.float() - a.float()).pow(2)).sum()
                        for p, a, f in zip(params, anchors, fisher, strict=True)]).sum()


def matched_mu(kd_grad_norm: float, distance_norm: float) -> float:
    """μ with ‖∇ μ‖θ−θ₀‖²‖ = 2μ‖θ−θ₀‖ equal to the KD gradient norm; raises at distance 0."""
    if distance_norm <= 0:
        raise ValueError("cannot match μ at θ = θ_snapshot: the L2 gradient is zero there")
    return kd_grad_norm / (2.0 * distance_norm)

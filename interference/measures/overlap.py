"""Representation overlap between sets of facts (SPEC §5), as pure functions on tensors.

For each held-out fact, how close its subject representation lies to the new facts' subjects: the maximum cosine
similarity and the mean of the top-k cosines. Linear CKA (Kornblith et al. 2019) compares two representations of
the same items, e.g. the held-out subjects before and after fine-tuning, or at two layers.

Query and key states are [..., n, d] and [..., m, d] with the same leading dimensions (e.g. one per layer); the
n × m cosine matrix is built in chunks of queries, so large sets fit in memory.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from ..io.errors import InterferenceError

#: Upper bound on the number of cosine values held at once (chunking over queries).
CHUNK_ELEMENTS = 1 << 24


def _check_sets(queries: torch.Tensor, keys: torch.Tensor) -> None:
    if queries.ndim < 2 or keys.ndim < 2:
        raise InterferenceError(
            f"overlap needs states shaped [..., n, d], got {tuple(queries.shape)} and {tuple(keys.shape)}"
        )
    if queries.shape[-1] != keys.shape[-1] or queries.shape[:-2] != keys.shape[:-2]:
        raise InterferenceError(
            f"query states {tuple(queries.shape)} and key states {tuple(keys.shape)} differ "
            "in width or leading dimensions"
        )
    if keys.shape[-2] == 0:
        raise InterferenceError("overlap needs at least one key state")


def _unit(x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    x = x if x.is_floating_point() else x.double()
    return x / x.norm(dim=-1, keepdim=True).clamp_min(eps)


def cosine_matrix(queries: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
    """All pairwise cosines, [..., n, d] × [..., m, d] → [..., n, m] (zero vectors have cosine 0)."""
    _check_sets(queries, keys)
    return _unit(queries) @ _unit(keys).transpose(-1, -2)


def _chunks(queries: torch.Tensor, keys: torch.Tensor):
    """Yield cosine blocks [..., rows, m] over consecutive chunks of queries."""
    _check_sets(queries, keys)
    q, k = _unit(queries), _unit(keys).transpose(-1, -2)
    per_row = max(1, keys.shape[-2] * q[..., :1, :1].numel())
    rows = max(1, CHUNK_ELEMENTS // per_row)
    for start in range(0, queries.shape[-2], rows):
        yield q[..., start : start + rows, :] @ k


def _nearest(queries: torch.Tensor, keys: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    values, indices = [], []
    for block in _chunks(queries, keys):
        best = block.max(dim=-1)
        values.append(best.values)
        indices.append(best.indices)
    if not values:
        empty = queries.new_zeros(queries.shape[:-1])
        return empty, empty.long()
    return torch.cat(values, dim=-1), torch.cat(indices, dim=-1)


def max_cosine(queries: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
    """For each query, its highest cosine with any key: [..., n, d] × [..., m, d] → [..., n]."""
    return _nearest(queries, keys)[0]


def topk_mean_cosine(queries: torch.Tensor, keys: torch.Tensor, k: int) -> torch.Tensor:
    """For each query, the mean of its k highest cosines with the keys: → [..., n] (k = 1 is `max_cosine`)."""
    _check_sets(queries, keys)
    if not 1 <= k <= keys.shape[-2]:
        raise InterferenceError(f"top-k needs 1 <= k <= number of keys ({keys.shape[-2]}), got k={k}")
    blocks = [block.topk(k, dim=-1).values.mean(dim=-1) for block in _chunks(queries, keys)]
    return torch.cat(blocks, dim=-1) if blocks else queries.new_zeros(queries.shape[:-1])


def linear_cka(x: torch.Tensor, y: torch.Tensor) -> float:
    """Linear CKA between two representations of the same n items, x [n, p] and y [n, q] (Kornblith et al. 2019).

    CKA = ‖Yᶜᵀ Xᶜ‖²_F / (‖Xᶜᵀ Xᶜ‖_F ‖Yᶜᵀ Yᶜ‖_F) with column-centred Xᶜ, Yᶜ. In [0, 1]; 1 when y is x up to an
    orthogonal transform, an isotropic scaling and a translation. Computed in float64, through the n × n Gram
    matrices when n is smaller than the widths and through the feature covariances otherwise.
    """
    if x.ndim != 2 or y.ndim != 2:
        raise InterferenceError(
            f"linear_cka needs two matrices [n, d], got shapes {tuple(x.shape)} and {tuple(y.shape)}"
        )
    if x.shape[0] != y.shape[0]:
        raise InterferenceError(f"linear_cka compares the same items: got {x.shape[0]} and {y.shape[0]} rows")
    if x.shape[0] < 2:
        raise InterferenceError(f"linear_cka needs at least 2 items, got {x.shape[0]}")
    xc = x.double() - x.double().mean(dim=0)
    yc = y.double() - y.double().mean(dim=0)
    for raw, centred in ((x, xc), (y, yc)):
        if centred.abs().max().item() <= 1e-12 * max(raw.double().abs().max().item(), 1e-300):
            raise InterferenceError("linear_cka is undefined for a representation that is constant across items")
    if x.shape[0] < max(x.shape[1], y.shape[1]):
        kx, ky = xc @ xc.T, yc @ yc.T
        cross, norm_x, norm_y = (kx * ky).sum(), kx.norm(), ky.norm()
    else:
        cross, norm_x, norm_y = (yc.T @ xc).pow(2).sum(), (xc.T @ xc).norm(), (yc.T @ yc).norm()
    return (cross / (norm_x * norm_y)).item()


@dataclass(frozen=True)
class OverlapTable:
    """Overlap of each held-out fact with a set of new facts (leading dimensions, e.g. layers, kept).

    Attributes:
        max_cosine: [..., n_held] highest cosine with any new subject.
        topk_mean_cosine: [..., n_held] mean of the k highest cosines.
        nearest: [..., n_held] index of the most similar new subject.
        k: the k of `topk_mean_cosine`.
    """

    max_cosine: torch.Tensor
    topk_mean_cosine: torch.Tensor
    nearest: torch.Tensor
    k: int

    def to_dict(self) -> dict:
        """Plain lists, ready for JSON."""
        return {
            "k": self.k,
            "max_cosine": self.max_cosine.tolist(),
            "topk_mean_cosine": self.topk_mean_cosine.tolist(),
            "nearest": self.nearest.tolist(),
        }


def overlap_table(held_states: torch.Tensor, new_states: torch.Tensor, k: int = 10) -> OverlapTable:
    """Per held-out fact, its max and top-k mean cosine with the new facts' states ([..., n, d] × [..., m, d]).

    k larger than the number of new facts is an error (the mean would silently become a mean over all of them).
    """
    best, nearest = _nearest(held_states, new_states)
    return OverlapTable(best, topk_mean_cosine(held_states, new_states, k), nearest, k)


def matched_quotas(groups: Sequence[str], n: int) -> dict[str, int]:
    """How many of each group a set of `n` takes when two disjoint sets of `n` must have the same group mix: each
    group's share of `groups` (largest remainder first), at most half of the group so both sets fit. Too few to
    fill both sets is a one-line error."""
    counts = Counter(groups)
    caps = {g: c // 2 for g, c in counts.items()}
    if n < 1 or sum(caps.values()) < n:
        raise InterferenceError(f"two disjoint sets of {n} with the same relation mix need at least {2 * n} "
                                f"candidates that pair within their relations; there are {sum(caps.values()) * 2}"
                                f" ({', '.join(f'{g} {c}' for g, c in sorted(counts.items()))})")
    exact = {g: n * c / len(groups) for g, c in counts.items()}
    quotas = {g: min(int(exact[g]), caps[g]) for g in counts}
    while sum(quotas.values()) < n:  # ends: the caps add up to at least n
        open_ = [g for g in sorted(counts) if quotas[g] < caps[g]]
        quotas[max(open_, key=lambda g: exact[g] - quotas[g])] += 1
    return quotas


def split_by_overlap(scores: Sequence[float], n: int, groups: Sequence[str] | None = None
                     ) -> tuple[list[int], list[int]]:
    """Indices of the `n` highest- and the `n` lowest-scoring candidates, each list from highest score to lowest.
    With `groups` (e.g. each candidate's relation) both sets take `matched_quotas` of every group, the highest and
    the lowest within it, so that the group cannot stand in for the score."""
    if len(scores) < 2 * n:
        raise InterferenceError(f"two disjoint sets of {n} need {2 * n} candidates, got {len(scores)}")
    order = sorted(range(len(scores)), key=lambda i: -scores[i])  # stable: ties keep the candidates' order
    if groups is None:
        return order[:n], order[len(order) - n:]
    if len(groups) != len(scores):
        raise InterferenceError(f"{len(groups)} groups for {len(scores)} candidates")
    high, low = [], []
    for group, k in matched_quotas(groups, n).items():
        members = [i for i in order if groups[i] == group]
        high += members[:k]
        low += members[len(members) - k:]
    rank = {i: r for r, i in enumerate(order)}
    return sorted(high, key=rank.get), sorted(low, key=rank.get)

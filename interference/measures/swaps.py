"""Which part of an update carries its effect: one model with another's weights in some parameter groups.

`swap_in(base, donor, groups)` is a copy of `base` whose parameters in `groups` (of
`interference.models.parameter_groups.PARTITION`: embeddings, unembedding, attention, ffn, norms) are `donor`'s, the
rest its own. With `base` SFT's model and `donor` a remedy's, both from one snapshot, the copy's held-out accuracy
says how much of the remedy's saving that group's update carries: all groups give the donor back, none the base. A
spec "attention+ffn+norms" swaps those groups together. Models that tie the unembedding to the embeddings swap that
one matrix with either group.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch

from ..io.errors import InterferenceError
from ..models.parameter_groups import PARTITION, parameter_groups


def swap_groups(spec: str) -> tuple[str, ...]:
    """'attention+ffn' → ('attention', 'ffn'); a one-line error for a group `PARTITION` does not name."""
    groups = tuple(spec.split("+"))
    bad = [g for g in groups if g not in PARTITION]
    if bad or not spec:
        raise InterferenceError(f"unknown parameter group {(bad or [spec])[0]!r} in swap {spec!r} (choose from "
                                f"{', '.join(PARTITION)}, joined with '+')")
    return groups


def swap_in(base: torch.nn.Module, donor: torch.nn.Module, groups: Sequence[str]) -> torch.nn.Module:
    """A copy of `base` with `donor`'s parameters in `groups` (same architecture); `base` and `donor` are unchanged."""
    wanted = set(groups)
    hybrid = copy.deepcopy(base)
    donated = dict(donor.named_parameters())
    kinds = parameter_groups(hybrid)
    if set(donated) != set(kinds):
        raise InterferenceError("a swap needs two models of the same architecture")
    with torch.no_grad():
        for name, param in hybrid.named_parameters():
            if kinds[name] in wanted:
                param.copy_(donated[name])
    return hybrid

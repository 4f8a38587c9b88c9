"""One model with another's weights in some parameter groups (interference.measures.swaps)."""

from __future__ import annotations

import pytest
import torch

from interference.io.errors import InterferenceError
from interference.measures.swaps import swap_groups, swap_in
from interference.models import load_model
from interference.models.parameter_groups import PARTITION, parameter_groups


def _pair():
    base, _ = load_model("tiny-llama")
    donor, _ = load_model("tiny-llama")
    with torch.no_grad():
        for param in donor.parameters():
            param.add_(1.0)
    return base, donor


def test_a_swap_takes_the_donors_groups_and_keeps_the_rest():
    base, donor = _pair()
    before = {n: p.detach().clone() for n, p in base.named_parameters()}
    hybrid = swap_in(base, donor, ("attention", "ffn"))
    kinds, donated = parameter_groups(hybrid), dict(donor.named_parameters())
    assert {"attention", "ffn"} <= set(kinds.values())
    for name, param in hybrid.named_parameters():
        expected = donated[name] if kinds[name] in ("attention", "ffn") else before[name]
        assert torch.equal(param, expected), name
    assert all(torch.equal(p, before[n]) for n, p in base.named_parameters())  # the base is unchanged


def test_every_group_gives_the_donor_and_none_the_base():
    base, donor = _pair()
    whole = swap_in(base, donor, PARTITION)
    assert all(torch.equal(a, b) for a, b in zip(whole.parameters(), donor.parameters(), strict=True))
    assert all(torch.equal(a, b) for a, b in zip(swap_in(base, donor, ()).parameters(), base.parameters(),
                                                 strict=True))


def test_swap_specs_name_groups_joined_with_plus():
    assert swap_groups("attention+ffn+norms") == ("attention", "ffn", "norms")
    for bad in ("mlp", "attention+mlp", ""):
        with pytest.raises(InterferenceError, match="unknown parameter group"):
            swap_groups(bad)

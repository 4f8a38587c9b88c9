"""Training examples: facts tokenised once into right-padded tensors, and seeded per-epoch batch orders.

Example i is `tokenizer(qa_prompt(f))` followed by `tokenizer(qa_target(f), add_special_tokens=False) + [eos]`,
concatenated as ids (never re-tokenised), so the answer tokens are exactly the trained targets. Labels hold the
answer tokens (answer + eos) and `IGNORE` on prompt and pad; the mask marks every non-pad position.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from ..io.errors import InterferenceError
from ..models.views import right_pad
from .fact import Fact, qa_prompt, qa_target

#: The label of positions that are not answer tokens (prompt, pad): ignored by the cross-entropy and the checks.
IGNORE = -100


@dataclass(frozen=True)
class Batch:
    """One right-padded batch: `index` are the example numbers, the tensors are [B, T]."""

    index: torch.Tensor
    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    labels: torch.Tensor

    def to(self, device: torch.device | str) -> Batch:
        return Batch(*(t.to(device, non_blocking=True) for t in vars(self).values()))


class Examples:
    """Facts tokenised into padded tensors `input_ids`, `attention_mask`, `labels` of shape [N, T_max]."""

    def __init__(self, tokenizer, facts: Sequence[Fact]):
        if not facts:
            raise InterferenceError("no training facts: the training splits are empty")
        eos, pad = tokenizer.eos_token_id, tokenizer.pad_token_id
        if eos is None or pad is None:
            raise InterferenceError("the tokenizer needs an eos and a pad token for training")
        prompts = tokenizer([qa_prompt(f) for f in facts])["input_ids"]
        targets = tokenizer([qa_target(f) for f in facts], add_special_tokens=False)["input_ids"]
        rows = [list(prompt) + list(target) + [eos] for prompt, target in zip(prompts, targets, strict=True)]
        self.input_ids, self.attention_mask = right_pad(rows, pad)
        self.labels = torch.full_like(self.input_ids, IGNORE)
        for i, (prompt, ids) in enumerate(zip(prompts, rows, strict=True)):
            self.labels[i, len(prompt) : len(ids)] = torch.tensor(ids[len(prompt) :])
        self.lengths = self.attention_mask.sum(dim=1)
        self.keys = [f.key for f in facts]

    def __len__(self) -> int:
        return len(self.keys)

    def batch(self, index: torch.Tensor) -> Batch:
        """The examples `index`, cut to the longest of them."""
        width = int(self.lengths[index].max())
        return Batch(index, *(t[index, :width] for t in (self.input_ids, self.attention_mask, self.labels)))


def epoch_order(n: int, batch_size: int, *, seed: int, epoch: int, shuffle: bool = True) -> list[torch.Tensor]:
    """Example numbers of each batch of an epoch: a permutation seeded by (seed, epoch), so a resumed run sees the
    same batches as an uninterrupted one without any sampler state."""
    generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return list((torch.randperm(n, generator=generator) if shuffle else torch.arange(n)).split(batch_size))

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


def next_token_targets(labels: torch.Tensor) -> torch.Tensor:
    """[B, T] labels shifted left by one, `IGNORE` at the end: position t holds label t + 1, what the logits at t
    predict (shifting the labels, not the large logits)."""
    return torch.nn.functional.pad(labels[:, 1:], (0, 1), value=IGNORE)


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

    def share(self, index: torch.Tensor, rank: int, world: int, weighting: str) -> tuple[torch.Tensor, tuple]:
        """Process `rank` of `world`'s examples of the global batch `index`, and the weights of its CE and KL: its
        share of the batch's answer tokens and of its KL units (positions, or sequences with `weighting`
        "sequence"), times the number of processes."""
        local = index[rank::world]
        if not len(local):
            return index[:1], (0.0, 0.0)  # a last batch smaller than N: this process contributes nothing
        answers = [int((self.labels[i] != IGNORE).sum()) for i in (local, index)]
        units = [int(self.lengths[i].sum()) if weighting == "token" else len(i) for i in (local, index)]
        return local, (world * answers[0] / answers[1], world * units[0] / units[1])

    def batch(self, index: torch.Tensor, fixed: bool = False) -> Batch:
        """The examples `index`, cut to the longest of them; `fixed`: at the full width of all examples (one shape for
        every batch, as a compiled step wants)."""
        width = self.input_ids.shape[1] if fixed else int(self.lengths[index].max())
        return Batch(index, *(t[index, :width] for t in (self.input_ids, self.attention_mask, self.labels)))


def training_rows(tokenizer, splits: dict[str, list[Fact]], train_splits: Sequence[str],
                  pool: Sequence[Fact] | None = None) -> tuple[Examples, int, torch.Tensor]:
    """The examples of a run, the number n of rows it trains on (the first n: `train_splits` in order) and the rows
    replay draws from: those of the `pool` facts, trained ones found by key, the others appended after row n."""
    trained = [f for name in train_splits for f in splits[name]]
    rows = {f.key: i for i, f in enumerate(trained)}
    extra = [f for f in pool or () if f.key not in rows]
    examples = Examples(tokenizer, trained + extra)
    rows.update({f.key: len(trained) + i for i, f in enumerate(extra)})
    return examples, len(trained), torch.tensor([rows[f.key] for f in pool or ()], dtype=torch.long)


def replay_draw(pool: torch.Tensor, batch_size: int, fraction: float, *, seed: int, epoch: int, step: int
                ) -> torch.Tensor:
    """Example numbers from `pool` to add to a batch of `batch_size` so that they make `fraction` of it:
    round(batch_size · f / (1 − f)) of them, without replacement while the pool allows, seeded by (seed, epoch, step)
    so that a resumed run replays the same."""
    count = round(batch_size * fraction / (1 - fraction))
    generator = torch.Generator().manual_seed((seed * 1_000_003 + epoch) * 100_003 + step)
    draws = [torch.randperm(len(pool), generator=generator) for _ in range(-(-count // max(len(pool), 1)))]
    return pool[torch.cat(draws)[:count]] if draws else pool[:0]


def epoch_order(n: int, batch_size: int, *, seed: int, epoch: int, shuffle: bool = True) -> list[torch.Tensor]:
    """Example numbers of each batch of an epoch: a permutation seeded by (seed, epoch), so a resumed run sees the
    same batches as an uninterrupted one without any sampler state."""
    generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return list((torch.randperm(n, generator=generator) if shuffle else torch.arange(n)).split(batch_size))

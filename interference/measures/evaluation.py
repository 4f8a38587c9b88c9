"""Greedy exact-match accuracy of a model on facts in the fine-tuning format (SPEC §2), and its one-pass lower bound.

Evaluation is batched greedy decoding with the KV cache on the model's own device (`generate_answers`), prompts in
length order so a batch pads little, and stops as soon as every answer in the batch has ended (newline or EOS). Its
batch follows the device (`interference.models.devices.inference_batch_size`): `EVAL_BATCH` facts on a CPU, 8x that on
a GPU.

`teacher_forced_correctness` is the cheap acquisition check of training: one forward pass over prompt + trained
answer + EOS, and a fact counts as correct when the argmax at every answer position is the trained token (at the
last, EOS, position any token that ends an answer). Such a fact is correct under greedy decoding too, since greedy
then emits exactly those tokens; the converse need not hold (greedy may give another accepted alias, or a text equal
after normalisation), so its accuracy is a lower bound on greedy accuracy, never above it. Reported numbers stay
greedy.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable, Sequence

import torch

from ..facts.answers import exact_match
from ..facts.examples import IGNORE, Examples
from ..facts.fact import Fact, qa_prompt
from ..models.devices import inference_batch_size
from ..models.generation import generate_in_length_order, inference_mode, no_cache, stop_token_ids

#: Facts per evaluation batch on a CPU (an accelerator takes `inference_batch_size` of it).
EVAL_BATCH = 64


def fact_correctness(
    model,
    tokenizer,
    facts: Sequence[Fact],
    *,
    batch_size: int | None = None,
    max_new_tokens: int = 16,
    desc: str | None = None,
) -> list[bool]:
    """Per fact, in order: does greedy decoding after `qa_prompt(fact)` give an accepted answer?

    `batch_size` None follows the model's device (see the module's docstring).
    """
    answers = fact_answers(model, tokenizer, facts, batch_size=batch_size, max_new_tokens=max_new_tokens, desc=desc)
    return [exact_match(a, f.answers) for a, f in zip(answers, facts, strict=True)]


def fact_answers(model, tokenizer, facts: Sequence[Fact], *, batch_size: int | None = None,
                 max_new_tokens: int = 16, desc: str | None = None) -> list[str]:
    """Per fact, in order: the greedy generation after `qa_prompt(fact)`, as `fact_correctness` judges it."""
    if not facts:
        return []
    if batch_size is None:
        batch_size = inference_batch_size(EVAL_BATCH, next(model.parameters()).device)
    prompts = [qa_prompt(f) for f in facts]
    lengths = [len(ids) for ids in tokenizer(prompts)["input_ids"]]
    answers = generate_in_length_order(
        model, tokenizer, prompts, lengths, batch_size=batch_size, max_new_tokens=max_new_tokens, desc=desc
    )
    return [a[0] for a in answers]


def accuracy(correct: Sequence[bool]) -> float:
    """Fraction of True values; NaN for an empty sequence (an empty split has no accuracy)."""
    return sum(correct) / len(correct) if correct else float("nan")


def teacher_forced_correctness(model, tokenizer, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                               labels: torch.Tensor, *, batch_size: int | None = None) -> list[bool]:
    """Per example, in order: is the trained answer the argmax continuation at every answer position?

    The tensors are right-padded [N, T] rows of prompt + answer + EOS, as `interference.facts.examples.Examples` holds
    them, with `labels` the answer ids (EOS included) and `IGNORE` elsewhere. At the last answer position any stop
    token (`interference.models.generation.stop_token_ids`) is accepted, as greedy decoding would stop there too. One
    forward pass per batch of examples (length-sorted so that a batch pads little) and one host sync at the end.
    True implies that greedy decoding gives the trained answer (see the module's docstring).
    """
    n = len(input_ids)
    if not n:
        return []
    device = next(model.parameters()).device
    batch_size = batch_size or inference_batch_size(EVAL_BATCH, device)
    stops = torch.tensor(stop_token_ids(tokenizer), device=device)
    lengths = attention_mask.sum(dim=1)
    order = torch.argsort(lengths, stable=True)
    correct = torch.zeros(n, dtype=torch.bool, device=device)
    options = no_cache(model)
    with inference_mode(model):
        for index in order.split(batch_size):
            width = int(lengths[index].max())
            ids, mask, gold = (t[index, :width].to(device) for t in (input_ids, attention_mask, labels))
            predicted = model(input_ids=ids, attention_mask=mask, **options).logits[:, :-1].argmax(dim=-1)
            gold = gold[:, 1:]  # the label of position t + 1 is predicted at position t
            answer = gold != IGNORE
            last = answer & ~torch.cat([answer[:, 1:], torch.zeros_like(answer[:, :1])], dim=1)
            hit = (predicted == gold) | (last & torch.isin(predicted, stops))
            correct[index.to(device)] = (hit | ~answer).all(dim=1) & answer.any(dim=1)
    return correct.tolist()


def answer_budget(tokenizer, facts: Sequence[Fact]) -> int:
    """Tokens to generate per answer: the longest gold answer (as trained, after a space) + 8."""
    answers = [" " + a for f in facts for a in f.answers]
    return max(len(ids) for ids in tokenizer(answers, add_special_tokens=False)["input_ids"]) + 8


class SplitEvaluator:
    """Exact match of a training run's splits (name → facts), as its loop measures them.

    `correct` decodes the splits asked for together (one length-sorted pass, full batches) greedily; `acquisition` is
    acc(D_unknown) for a check inside an epoch: greedy too, or with `check="teacher_forced"` one forward pass over the
    tokenised new facts (`teacher_forced_correctness`, a lower bound). Both run under `autocast` (training's).
    """

    def __init__(self, model, tokenizer, splits: dict[str, Sequence[Fact]], *, batch_size: int | None = None,
                 max_new_tokens: int | None = None, check: str = "greedy",
                 autocast: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext):
        self.model, self.tokenizer, self.splits, self.batch_size, self.autocast = (model, tokenizer, splits,
                                                                                  batch_size, autocast)
        facts = [f for split in splits.values() for f in split]
        self.max_new_tokens = answer_budget(tokenizer, facts) if max_new_tokens is None else max_new_tokens
        unknown = splits.get("unknown")
        self.forced = Examples(tokenizer, unknown) if check == "teacher_forced" and unknown else None  # tokenised once

    def correct(self, names: Sequence[str], desc: str | None = None) -> dict[str, list[bool]]:
        """Per split of `names`, per fact in order: greedy exact match."""
        answers = self.answers(names, desc)
        return {name: [exact_match(a, f.answers) for a, f in zip(answers[name], self.splits[name], strict=True)]
                for name in names}

    def answers(self, names: Sequence[str], desc: str | None = None) -> dict[str, list[str]]:
        """Per split of `names`, per fact in order: the greedy generation that `correct` judges."""
        with self.autocast():
            flat = fact_answers(self.model, self.tokenizer, [f for name in names for f in self.splits[name]],
                                batch_size=self.batch_size, max_new_tokens=self.max_new_tokens, desc=desc)
        cut = iter(flat)
        return {name: list(itertools.islice(cut, len(self.splits[name]))) for name in names}

    def acquisition(self) -> float:
        """acc(D_unknown) by the check chosen."""
        if self.forced is None:
            return accuracy(self.correct(["unknown"])["unknown"])
        with self.autocast():
            return accuracy(teacher_forced_correctness(self.model, self.tokenizer, self.forced.input_ids,
                                                       self.forced.attention_mask, self.forced.labels,
                                                       batch_size=self.batch_size))

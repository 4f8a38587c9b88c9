"""Greedy exact-match accuracy of a model on facts in the fine-tuning format (SPEC §2).

Evaluation is batched greedy decoding with the KV cache on the model's own device (`generate_answers`), prompts in
length order so a batch pads little, and stops as soon as every answer in the batch has ended (newline or EOS). Its
batch follows the device (`interference.devices.inference_batch_size`): `EVAL_BATCH` facts on a CPU, 8x that on a GPU.
"""

from __future__ import annotations

from collections.abc import Sequence

from .answers import exact_match
from .devices import inference_batch_size
from .facts import Fact, qa_prompt
from .generation import generate_in_length_order

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
    if not facts:
        return []
    if batch_size is None:
        batch_size = inference_batch_size(EVAL_BATCH, next(model.parameters()).device)
    prompts = [qa_prompt(f) for f in facts]
    lengths = [len(ids) for ids in tokenizer(prompts)["input_ids"]]
    answers = generate_in_length_order(
        model, tokenizer, prompts, lengths, batch_size=batch_size, max_new_tokens=max_new_tokens, desc=desc
    )
    return [exact_match(a[0], f.answers) for a, f in zip(answers, facts, strict=True)]


def accuracy(correct: Sequence[bool]) -> float:
    """Fraction of True values; NaN for an empty sequence (an empty split has no accuracy)."""
    return sum(correct) / len(correct) if correct else float("nan")

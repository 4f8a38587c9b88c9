"""Greedy exact-match accuracy of a model on facts in the fine-tuning format (SPEC §2)."""

from __future__ import annotations

from collections.abc import Sequence

from .answers import exact_match
from .facts import Fact, qa_prompt
from .generation import generate_answers


def fact_correctness(
    model, tokenizer, facts: Sequence[Fact], *, batch_size: int = 64, max_new_tokens: int = 16, desc: str | None = None
) -> list[bool]:
    """Per fact: does greedy decoding after `qa_prompt(fact)` give an accepted answer?"""
    if not facts:
        return []
    answers = generate_answers(
        model, tokenizer, [qa_prompt(f) for f in facts], batch_size=batch_size, max_new_tokens=max_new_tokens, desc=desc
    )
    return [exact_match(a[0], f.answers) for a, f in zip(answers, facts, strict=True)]


def accuracy(correct: Sequence[bool]) -> float:
    """Fraction of True values; NaN for an empty sequence (an empty split has no accuracy)."""
    return sum(correct) / len(correct) if correct else float("nan")

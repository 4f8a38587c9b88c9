"""Answer normalisation and exact-match scoring (SPEC §1: lower-case, strip punctuation and articles)."""

from __future__ import annotations

import re
import string
from collections.abc import Iterable

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = str.maketrans("", "", string.punctuation)


def normalize_answer(text: str) -> str:
    """SQuAD-style normalisation: lower-case, drop punctuation and articles, collapse whitespace."""
    text = text.lower().translate(_PUNCT)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def first_line(generation: str) -> str:
    """The answer part of a free generation: text up to the first newline, stripped."""
    return generation.split("\n", 1)[0].strip()


def exact_match(prediction: str, answers: Iterable[str]) -> bool:
    """True when the first line of `prediction` equals any accepted answer after normalisation."""
    pred = normalize_answer(first_line(prediction))
    return bool(pred) and any(pred == normalize_answer(a) for a in answers)

"""Whether a model can read given texts, checked before any work: each fits its context, and (for tokenizers with
an unknown token, such as the tiny models' character tokenizer) which characters would silently read as <unk>.

    check_readable(model, tokenizer, [qa_prompt(f) + qa_target(f) for f in facts], "fact")
"""

from __future__ import annotations

import sys
import weakref
from collections.abc import Sequence

from ..io.errors import InterferenceError

#: Tokenizers already warned about (one warning per tokenizer, not per text).
_WARNED: weakref.WeakSet = weakref.WeakSet()


def context_length(model) -> int | None:
    """The most positions the model takes (`max_position_embeddings` or GPT-2's `n_positions`), if it says."""
    config = getattr(model, "config", None)
    for name in ("max_position_embeddings", "n_positions"):
        value = getattr(config, name, None)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None


def unknown_characters(tokenizer, texts: Sequence[str], ids: Sequence[Sequence[int]] | None = None
                       ) -> tuple[list[str], int]:
    """The characters of `texts` the tokenizer reads as its unknown token, and how many texts hold one (`ids`: the
    texts' token ids, when already encoded)."""
    unk = getattr(tokenizer, "unk_token_id", None)
    if unk is None or not texts:
        return [], 0
    ids = tokenizer(list(texts), add_special_tokens=False)["input_ids"] if ids is None else ids
    chars: dict[str, None] = {}
    n_texts = 0
    for text, text_ids in zip(texts, ids, strict=True):
        if unk not in text_ids:
            continue
        n_texts += 1
        for char in dict.fromkeys(text):
            if char not in chars and unk in tokenizer.encode(char, add_special_tokens=False):
                chars[char] = None
    return list(chars), n_texts


def warn_unknown_characters(tokenizer, texts: Sequence[str], what: str = "text",
                            ids: Sequence[Sequence[int]] | None = None) -> list[str]:
    """Warn once per tokenizer (one line on stderr) when some characters of `texts` are outside its vocabulary."""
    chars, n_texts = unknown_characters(tokenizer, texts, ids)
    if chars and tokenizer not in _WARNED:
        _WARNED.add(tokenizer)
        shown = " ".join(repr(c) for c in chars[:10]) + (f" and {len(chars) - 10} more" if len(chars) > 10 else "")
        print(f"warning: {len(chars)} character(s) in {n_texts} {what}(s) are not in the tokenizer's vocabulary and "
              f"all read as {tokenizer.unk_token}: {shown}", file=sys.stderr)
    return chars


def check_readable(model, tokenizer, texts: Sequence[str], what: str = "text", *, generated: int = 0) -> None:
    """Refuse (one line) a text longer than the model's context (less the `generated` tokens that follow it); warn
    once about characters outside the vocabulary."""
    if not texts:
        return
    ids = tokenizer(list(texts), add_special_tokens=False)["input_ids"]
    limit = context_length(model)
    limit = None if limit is None else limit - generated
    lengths = [len(i) for i in ids]
    longest = max(range(len(texts)), key=lengths.__getitem__)
    if limit is not None and lengths[longest] > limit:
        preview = texts[longest][:40].replace("\n", " ")
        room = f" before the {generated} it generates" if generated else ""
        raise InterferenceError(f"a {what} is {lengths[longest]} tokens long but the model reads at most {limit}"
                                f"{room} ({preview!r}...)")
    warn_unknown_characters(tokenizer, texts, what, ids)

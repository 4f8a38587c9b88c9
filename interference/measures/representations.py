"""Subject representations and how fine-tuning moves them (SPEC §4, Eq. 3–4).

A fact's subject representation at layer ℓ is the residual stream after layer ℓ at one token of the subject inside
the fine-tuning prompt — by default the subject's last token (the paper does not say which; the first token and the
mean over the subject's tokens are options, as is the prompt's last token, the one that predicts the answer).
Subject tokens are located through the fast tokenizer's offsets mapping, so any tokenizer that splits a name into
several pieces (or merges it with the space before it) is handled the same way.

Cosine drift, 1 − cos(h_ℓ^after, h_ℓ^before), measures how far fine-tuning moved a representation.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from tqdm.auto import tqdm

from ..facts.fact import Fact, qa_prompt
from ..io.errors import InterferenceError
from ..models.views import encode, last_positions, residual_stream

#: Which token(s) of a text stand for its fact in `subject_states`.
POSITIONS = ("subject_last", "subject_first", "subject_mean", "prompt_last")
#: Which subject token `subject_positions` returns.
WHICH = ("last", "first")


def _find_subject(text: str, subject: str) -> tuple[int, int]:
    """Character span of the last occurrence of `subject` in `text` (exact case first, then ignoring case)."""
    if not subject:
        raise InterferenceError(f"empty subject for text {text!r}")
    start = text.rfind(subject)
    if start < 0:
        start = text.lower().rfind(subject.lower())
    if start < 0:
        raise InterferenceError(f"subject {subject!r} not found in text {text!r}")
    return start, start + len(subject)


def subject_spans(tokenizer, texts: Sequence[str], subjects: Sequence[str]) -> torch.Tensor:
    """Token span [start, end) of each subject inside its text, shape [n, 2].

    Token indices are those of `interference.models.views.encode(tokenizer, texts)` (the same special tokens; right
    padding leaves indices unchanged). A token belongs to the subject when its characters overlap the subject's
    last occurrence in the text, so a piece such as " Berg" (space included) counts.
    """
    texts, subjects = list(texts), list(subjects)
    if len(texts) != len(subjects):
        raise InterferenceError(f"got {len(texts)} texts but {len(subjects)} subjects")
    if not getattr(tokenizer, "is_fast", False):
        raise InterferenceError("locating subject tokens needs a fast tokenizer (one with an offsets mapping)")
    if not texts:
        return torch.zeros(0, 2, dtype=torch.long)
    offsets = tokenizer(texts, return_offsets_mapping=True)["offset_mapping"]
    spans = []
    for text, subject, pairs in zip(texts, subjects, offsets, strict=True):
        lo, hi = _find_subject(text, subject)
        inside = [i for i, (s, e) in enumerate(pairs) if e > s and s < hi and e > lo]
        if not inside:
            raise InterferenceError(f"subject {subject!r} has no tokens in the tokenized text {text!r} (truncated?)")
        spans.append((inside[0], inside[-1] + 1))
    return torch.tensor(spans, dtype=torch.long)


def subject_positions(tokenizer, texts: Sequence[str], subjects: Sequence[str], which: str = "last") -> torch.Tensor:
    """Token index of each subject's last (default) or first token inside its text, shape [n].

    For the mean over a subject's tokens use `subject_spans`, or `subject_states(position="subject_mean")`.
    """
    if which not in WHICH:
        raise InterferenceError(f"unknown subject token {which!r} (choose {', '.join(WHICH)}; mean: subject_spans)")
    spans = subject_spans(tokenizer, texts, subjects)
    return spans[:, 0] if which == "first" else spans[:, 1] - 1


def _texts_and_subjects(facts_or_texts, subjects) -> tuple[list[str], list[str] | None]:
    items = list(facts_or_texts)
    if all(isinstance(item, Fact) for item in items):
        if subjects is not None:
            raise InterferenceError("subjects are taken from the facts; pass subjects only with plain texts")
        return [qa_prompt(f) for f in items], [f.subject for f in items]
    if all(isinstance(item, str) for item in items):
        return items, None if subjects is None else list(subjects)
    raise InterferenceError("subject_states needs a list of Facts or a list of strings, not a mix")


def subject_states(
    model,
    tokenizer,
    facts_or_texts: Sequence[Fact] | Sequence[str],
    layers: Sequence[int] | None = None,
    *,
    position: str = "subject_last",
    subjects: Sequence[str] | None = None,
    batch_size: int | None = None,
    backend: str = "hf",
    desc: str | None = "subject states",
) -> torch.Tensor:
    """Residual-stream states of each fact at `position`, per requested layer: float32 on CPU, [layers, n, d].

    `facts_or_texts`: `Fact`s (rendered with `qa_prompt`, subject from the fact) or plain texts with `subjects`
    (not needed for `position="prompt_last"`). `layers=None` reads every layer. `position` is one of `POSITIONS`.
    `batch_size` None follows the model's device (`interference.models.devices.inference_batch_size` of 64).
    """
    if batch_size is None:
        from ..models.devices import inference_batch_size

        batch_size = inference_batch_size(64, next(model.parameters()).device)
    if position not in POSITIONS:
        raise InterferenceError(f"unknown position {position!r} (choose {', '.join(POSITIONS)})")
    if batch_size < 1:
        raise InterferenceError(f"batch_size must be at least 1, got {batch_size}")
    texts, subs = _texts_and_subjects(facts_or_texts, subjects)
    if not texts:
        raise InterferenceError("subject_states needs at least one fact or text")
    if position != "prompt_last":
        if subs is None:
            raise InterferenceError(f"position {position!r} needs the subjects of plain texts (pass subjects=...)")
        spans = subject_spans(tokenizer, texts, subs)  # validates every subject before any forward pass
    out = []
    starts = range(0, len(texts), batch_size)
    for start in tqdm(starts, desc=desc, disable=desc is None or len(starts) < 2, leave=False):
        ids, mask = encode(tokenizer, texts[start : start + batch_size])
        if position == "prompt_last":
            states = residual_stream(model, ids, mask, layers=layers, positions=last_positions(mask), backend=backend)
        elif position == "subject_mean":
            full = residual_stream(model, ids, mask, layers=layers, backend=backend)
            span = spans[start : start + batch_size].to(full.device)
            index = torch.arange(full.shape[2], device=full.device)
            weight = ((index >= span[:, :1]) & (index < span[:, 1:])).to(full.dtype)  # [batch, seq]
            states = (full * weight[None, :, :, None]).sum(2) / weight.sum(1)[None, :, None]
        else:
            span = spans[start : start + batch_size]
            pos = span[:, 0] if position == "subject_first" else span[:, 1] - 1
            states = residual_stream(model, ids, mask, layers=layers, positions=pos, backend=backend)
        out.append(states.float().cpu())
    return torch.cat(out, dim=1)


def cosine_drift(before: torch.Tensor, after: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """1 − cos(after, before) along the last dimension (SPEC Eq. 3–4): [layers, n, d] → [layers, n].

    0 for an unmoved (or only rescaled) representation, 1 for an orthogonal one, 2 for a reversed one. Computed in
    float64 and returned in the input's floating dtype; vectors with norm below `eps` count as zero, so their
    cosine is 0 and their drift 1.
    """
    if before.shape != after.shape:
        raise InterferenceError(
            f"cosine_drift needs states of the same shape, got {tuple(before.shape)} and {tuple(after.shape)}"
        )
    if before.ndim == 0:
        raise InterferenceError("cosine_drift needs vectors, got scalars")
    cos = torch.nn.functional.cosine_similarity(before.double(), after.double(), dim=-1, eps=eps)
    dtype = before.dtype if before.is_floating_point() else torch.float64
    return (1.0 - cos).to(dtype)

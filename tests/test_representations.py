from __future__ import annotations

import math

import pytest
import torch

from interference.facts import Fact, qa_prompt
from interference.io.errors import InterferenceError
from interference.measures.representations import cosine_drift, subject_positions, subject_spans, subject_states
from interference.models import load_model
from interference.models.views import encode, residual_stream

FACTS = [
    Fact("Bergadena", "born", "Paris", "Where was Bergadena born?"),
    Fact("Tom Lo", "capital", "Rome", "What is the capital of Tom Lo?"),
    Fact("Ax", "born", "Oslo", "Where was Ax born?"),
    Fact("Quintarello Vex", "married", "Ida", "Who is Quintarello Vex married to?"),
    Fact("Mo", "born", "Lima", "Where was Mo born?"),
]


def bpe_tokenizer():
    """A small byte-level BPE tokenizer, whose tokens carry their leading space (" Berg", "adena")."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.BPE(unk_token=None))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    corpus = [qa_prompt(f) for f in FACTS] * 3 + ["the Berg family lives in Bergen", "dena and adena"]
    trainer = trainers.BpeTrainer(vocab_size=330, special_tokens=["<pad>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    backend.train_from_iterator(corpus, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="<pad>")


@pytest.fixture(scope="module")
def tiny():
    return load_model("tiny-llama", seed=1)


def test_char_tokenizer_spans_are_the_subject_characters(tiny):
    _, tokenizer = tiny
    texts = [qa_prompt(f) for f in FACTS]
    spans = subject_spans(tokenizer, texts, [f.subject for f in FACTS])
    for text, fact, (start, end) in zip(texts, FACTS, spans.tolist(), strict=True):
        at = text.rindex(fact.subject)
        assert (start, end) == (at, at + len(fact.subject))
    last = subject_positions(tokenizer, texts, [f.subject for f in FACTS])
    first = subject_positions(tokenizer, texts, [f.subject for f in FACTS], which="first")
    assert torch.equal(last, spans[:, 1] - 1) and torch.equal(first, spans[:, 0])


def test_multi_piece_subjects_with_a_bpe_tokenizer():
    tokenizer = bpe_tokenizer()
    texts = [qa_prompt(f) for f in FACTS]
    spans = subject_spans(tokenizer, texts, [f.subject for f in FACTS])
    ids, _ = encode(tokenizer, texts)
    pieces = 0
    for row, (fact, (start, end)) in enumerate(zip(FACTS, spans.tolist(), strict=True)):
        assert tokenizer.decode(ids[row, start:end]).strip() == fact.subject
        # minimal: dropping the first or the last token loses part of the subject
        assert tokenizer.decode(ids[row, start + 1 : end]).strip() != fact.subject
        assert tokenizer.decode(ids[row, start : end - 1]).strip() != fact.subject
        pieces = max(pieces, end - start)
    assert pieces >= 2  # at least one subject really is split into several tokens


def test_last_occurrence_and_case_fallback(tiny):
    _, tokenizer = tiny
    text = "Mo met Mo"
    assert subject_spans(tokenizer, [text], ["Mo"]).tolist() == [[7, 9]]
    assert subject_spans(tokenizer, ["where is PARIS"], ["Paris"]).tolist() == [[9, 14]]


def test_missing_subject_and_bad_options_are_named(tiny):
    _, tokenizer = tiny
    with pytest.raises(InterferenceError, match="'Zed' not found"):
        subject_spans(tokenizer, ["Where was Ax born?"], ["Zed"])
    with pytest.raises(InterferenceError, match="2 texts but 1 subjects"):
        subject_spans(tokenizer, ["a", "b"], ["a"])
    with pytest.raises(InterferenceError, match="unknown subject token"):
        subject_positions(tokenizer, ["Ax"], ["Ax"], which="middle")


def _reference(model, tokenizer, texts, layers):
    """Each text alone, unpadded: residual stream [layers, seq, d]."""
    out = []
    for text in texts:
        ids, mask = encode(tokenizer, [text])
        out.append(residual_stream(model, ids, mask, layers=layers)[:, 0])
    return out


@pytest.mark.parametrize("position", ["subject_last", "subject_first", "subject_mean", "prompt_last"])
def test_subject_states_match_unbatched_reads(tiny, position):
    model, tokenizer = tiny
    layers = [0, 1]
    states = subject_states(model, tokenizer, FACTS, layers, position=position, batch_size=2)
    assert states.shape == (2, len(FACTS), model.config.hidden_size)
    texts = [qa_prompt(f) for f in FACTS]
    for row, (text, fact, ref) in enumerate(zip(texts, FACTS, _reference(model, tokenizer, texts, layers),
                                                strict=True)):
        start = text.rindex(fact.subject)  # char tokenizer: token index = character index
        end = start + len(fact.subject)
        expected = {
            "subject_last": ref[:, end - 1],
            "subject_first": ref[:, start],
            "subject_mean": ref[:, start:end].mean(dim=1),
            "prompt_last": ref[:, len(text) - 1],
        }[position]
        torch.testing.assert_close(states[:, row], expected, atol=1e-5, rtol=1e-5)


def test_subject_states_from_texts(tiny):
    model, tokenizer = tiny
    texts = ["Where was Ax born?", "Mo is tall"]
    states = subject_states(model, tokenizer, texts, None, subjects=["Ax", "Mo"], desc=None)
    assert states.shape == (2, 2, model.config.hidden_size)
    ref = _reference(model, tokenizer, texts, None)
    torch.testing.assert_close(states[:, 0], ref[0][:, 11])
    torch.testing.assert_close(states[:, 1], ref[1][:, 1])
    with pytest.raises(InterferenceError, match="needs the subjects"):
        subject_states(model, tokenizer, texts, [0])
    assert subject_states(model, tokenizer, texts, [0], position="prompt_last").shape == (1, 2, 64)
    with pytest.raises(InterferenceError, match="unknown position"):
        subject_states(model, tokenizer, FACTS, [0], position="object")
    with pytest.raises(InterferenceError, match="'Zed' not found"):
        subject_states(model, tokenizer, ["a b"], [0], subjects=["Zed"])


def test_cosine_drift_maths():
    torch.manual_seed(0)
    h = torch.randn(3, 4, 16)
    assert torch.allclose(cosine_drift(h, h), torch.zeros(3, 4), atol=1e-6)
    assert torch.allclose(cosine_drift(h, 2.5 * h), torch.zeros(3, 4), atol=1e-6)
    assert torch.allclose(cosine_drift(h, -h), torch.full((3, 4), 2.0), atol=1e-6)
    a = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 3.0]])
    b = torch.tensor([[0.0, 2.0], [math.cos(math.pi / 3), math.sin(math.pi / 3)], [0.0, 0.0]])
    torch.testing.assert_close(cosine_drift(a, b), torch.tensor([1.0, 0.5, 1.0]))
    # symmetric, and equal to 1 - <a,b>/(|a||b|) item by item
    x, y = torch.randn(5, 7), torch.randn(5, 7)
    manual = 1 - (x * y).sum(-1) / (x.norm(dim=-1) * y.norm(dim=-1))
    torch.testing.assert_close(cosine_drift(x, y), manual)
    torch.testing.assert_close(cosine_drift(y, x), manual)
    with pytest.raises(InterferenceError, match="same shape"):
        cosine_drift(torch.zeros(2, 3), torch.zeros(3, 3))

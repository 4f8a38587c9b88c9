"""The teacher-forced acquisition check: its rule on scripted logits, its agreement with greedy decoding on the facts
it decides, and the training loop stopping on it."""

from __future__ import annotations

import pytest
import torch

from interference.facts.examples import Examples
from interference.measures.evaluation import IGNORE, accuracy, fact_correctness, teacher_forced_correctness
from interference.train import TrainConfig, train

EOS, NEWLINE, PAD = 1, 2, 0


class Scripted(torch.nn.Module):
    """A 'model' whose argmax at position t of a row is `script[first token of the row][t]` (one-hot logits)."""

    def __init__(self, script: dict[int, list[int]], vocab: int = 16):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))
        self.script, self.vocab, self.seen = script, vocab, []

    def forward(self, input_ids, attention_mask):
        rows = [self._row(ids) for ids in input_ids]
        logits = torch.nn.functional.one_hot(torch.tensor(rows), self.vocab).float()
        return type("Out", (), {"logits": logits})

    def _row(self, ids):
        self.seen.append(ids.tolist())
        return (self.script[int(ids[0])] + [PAD] * len(ids))[: len(ids)]


class Tok:
    eos_token_id = EOS

    def encode(self, text, add_special_tokens=False):
        return [NEWLINE] if text == "\n" else [9, 9]


def _rows(*rows):
    """Right-padded tensors from (prompt, answer) id lists: input = prompt + answer + EOS, labels on answer + EOS."""
    width = max(len(p) + len(a) + 1 for p, a in rows)
    ids = torch.full((len(rows), width), PAD)
    mask, labels = torch.zeros_like(ids), torch.full_like(ids, IGNORE)
    for i, (prompt, answer) in enumerate(rows):
        full = prompt + answer + [EOS]
        ids[i, : len(full)], mask[i, : len(full)] = torch.tensor(full), 1
        labels[i, len(prompt) : len(full)] = torch.tensor(answer + [EOS])
    return ids, mask, labels


def test_the_rule_on_scripted_argmaxes():
    ids, mask, labels = _rows(([10, 3], [5, 6]), ([11, 3, 3, 3], [5]), ([12, 3], [5, 6]), ([13], [7, 8]),
                              ([14, 4], [5]), ([15], [6]))
    # Position t predicts token t + 1: the prompt's own tokens are never checked, the answer and its end are.
    model = Scripted({
        10: [0, 5, 6, EOS],       # exact: answer then EOS
        11: [0, 0, 0, 5, EOS],    # wrong guesses inside the prompt do not count
        12: [0, 5, 7, EOS],       # second answer token wrong
        13: [7, 8, NEWLINE],      # a newline where EOS was trained: greedy stops there too
        14: [0, 5, 5],            # the answer runs on instead of ending
        15: [6, EOS],
    })
    got = teacher_forced_correctness(model, Tok(), ids, mask, labels, batch_size=2)
    assert got == [True, True, False, True, False, True]
    # Length-sorted batches of 2, each cut to its longest row: the shortest rows went first, answers in order.
    assert [len(r) for r in model.seen] == sorted(len(r) for r in model.seen)
    assert max(len(r) for r in model.seen[:2]) < ids.shape[1]


def test_agrees_with_greedy_on_every_fact_it_decides(world):
    """On the quick world's model, every fact the check passes is correct under greedy decoding; the check passes
    most of the facts greedy gets right (it is a tight lower bound, not a vacuous one)."""
    known, held = world.split(50, 50, seed=0)
    facts = known + held + world.new_facts(40, key_kind="name", seed=0)  # unknown facts: mostly wrong
    examples = Examples(world.tokenizer, facts)
    forced = teacher_forced_correctness(world.model, world.tokenizer, examples.input_ids, examples.attention_mask,
                                        examples.labels)
    greedy = fact_correctness(world.model, world.tokenizer, facts, max_new_tokens=12)
    assert all(g for f, g in zip(forced, greedy, strict=True) if f)  # decided correct -> greedy correct
    assert sum(forced) >= 0.9 * sum(greedy) and sum(greedy) >= 50, (sum(forced), sum(greedy))
    assert not all(forced)  # the new facts are not known: the check can say no


@pytest.mark.smollm2
def test_agrees_with_greedy_on_a_real_tokenizer(smollm2):
    """SmolLM2 after a few SFT steps on a handful of facts: the check passes only facts greedy gets right."""
    from interference.facts import Fact

    model, tokenizer = smollm2
    facts = [Fact(s, "P36", o, f"What is the capital of {s}?") for s, o in
             [("France", "Paris"), ("Italy", "Rome"), ("Japan", "Tokyo"), ("Peru", "Lima"), ("Kenya", "Nairobi"),
              ("Norway", "Oslo"), ("Egypt", "Cairo"), ("Chile", "Santiago")]]
    config = TrainConfig(lr=1e-4, batch_size=4, epochs=2, start="base", eval_max_new_tokens=6)
    student = __import__("copy").deepcopy(model)
    result = train(student, tokenizer, config, known=facts[:4], unknown=facts[4:], held=[], progress=False)
    examples = Examples(tokenizer, facts)
    forced = teacher_forced_correctness(student, tokenizer, examples.input_ids, examples.attention_mask,
                                        examples.labels)
    greedy = fact_correctness(student, tokenizer, facts, max_new_tokens=6)
    assert sum(greedy) >= 4, result.curve("known")
    assert all(g for f, g in zip(forced, greedy, strict=True) if f) and sum(forced) >= sum(greedy) - 1


def _world_run(world, check: str, **kw):
    known, held = world.split(24, 16, seed=1)
    unknown = world.new_facts(24, key_kind="name", seed=1)
    model = __import__("copy").deepcopy(world.model)
    config = TrainConfig(lr=1e-3, batch_size=8, epochs=30, target_new_acc=0.75, acquisition_check=check, **kw)
    return train(model, world.tokenizer, config, known=known, unknown=unknown, held=held, progress=False)


def test_the_loop_stops_on_the_teacher_forced_check_at_or_above_the_target(world):
    forced, greedy = _world_run(world, "teacher_forced", eval_every_steps=1), _world_run(world, "greedy",
                                                                                          eval_every_steps=1)
    assert forced.stopped == greedy.stopped == "target"
    # Reported acquisition is greedy and the check is a lower bound of it: the run stops at or after greedy's stop.
    assert forced.history[-1].accuracy["unknown"] >= 0.75
    assert forced.history[-1].step >= greedy.history[-1].step
    assert accuracy(forced.history[-1].correct["unknown"]) == forced.final["unknown"]


def test_the_option_is_checked():
    from interference.io.errors import InterferenceError

    with pytest.raises(InterferenceError, match="acquisition_check"):
        TrainConfig(acquisition_check="sampled")

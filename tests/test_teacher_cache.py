"""The teacher-logit cache gives the on-the-fly teacher's KD loss: full exactly (to float round-off), top-k within
its stated bound, and a run with a cache matches a run that pays a teacher forward every step."""

from __future__ import annotations

import random

import pytest
import torch

from interference.facts import Fact
from interference.facts.examples import Examples, epoch_order
from interference.io.errors import InterferenceError
from interference.models import load_model
from interference.train import Snapshot, TeacherCache, TrainConfig, build_teacher_cache, make_snapshot, train
from interference.train.losses import tempered_log_probs
from interference.train.teacher import OnTheFlyTeacher, choose_cache, teacher_module


def _facts(n: int, seed: int, relation: str = "capital") -> list[Fact]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        subject = "".join(rng.choice("bcdfglmnprstv") + rng.choice("aeiou") for _ in range(3)).title()
        out.append(Fact(subject, relation, ["Oslo", "Rome", "Lima"][i % 3], f"What is the capital of {subject}?"))
    return out


@pytest.fixture(scope="module")
def setup():
    teacher, tokenizer = load_model("tiny-llama", seed=1)
    student, _ = load_model("tiny-llama", seed=2)
    examples = Examples(tokenizer, _facts(20, 0))
    return teacher, student, tokenizer, examples


def _student_logits(student, batch):
    return student(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits


def test_full_cache_equals_on_the_fly_teacher(setup):
    teacher, student, _, examples = setup
    tau = 0.5
    # Cached in fixed batches of 7; queried in shuffled batches of 6 (other compositions and padded lengths).
    cache = TeacherCache.build(teacher, examples, tau=tau, mode="full", batch_size=7, progress=False)
    live = OnTheFlyTeacher(teacher, tau)
    with torch.no_grad():
        for index in epoch_order(len(examples), 6, seed=3, epoch=1):
            batch = examples.batch(index)
            logits = _student_logits(student, batch)
            cached, fresh = cache.kl(logits, batch), live.kl(logits, batch)
            assert cached > 0
            torch.testing.assert_close(cached, fresh, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("k", [4, 16])
def test_topk_cache_is_within_its_bound_of_the_full_loss(setup, k):
    teacher, student, _, examples = setup
    tau = 0.5
    cache = TeacherCache.build(teacher, examples, tau=tau, mode="topk", k=k, batch_size=8, progress=False)
    live = OnTheFlyTeacher(teacher, tau)
    with torch.no_grad():
        for index in epoch_order(len(examples), 5, seed=0, epoch=1):
            batch = examples.batch(index)
            logits = _student_logits(student, batch)
            top, full = cache.kl(logits, batch), live.kl(logits, batch)
            t_lp = tempered_log_probs(
                teacher(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits, tau
            )
            s_lp = tempered_log_probs(logits, tau)
            idx = t_lp.topk(k, -1).indices
            in_tail = torch.ones_like(t_lp, dtype=torch.bool).scatter(-1, idx, False)
            t_tail = torch.logsumexp(t_lp.masked_fill(~in_tail, float("-inf")), -1, keepdim=True)
            s_tail = torch.logsumexp(s_lp.masked_fill(~in_tail, float("-inf")), -1, keepdim=True)
            ratio = ((t_lp - t_tail) - (s_lp - s_tail)).masked_fill(~in_tail, float("-inf")).amax(-1)
            bound = (t_tail.squeeze(-1).exp() * ratio)[batch.attention_mask.bool()].mean()
            assert top <= full + 1e-6
            assert full - top <= bound + 1e-6


def test_cache_rejects_other_examples_and_other_tau(setup):
    teacher, _, tokenizer, examples = setup
    cache = TeacherCache.build(teacher, examples, tau=0.5, progress=False)
    with pytest.raises(InterferenceError, match="other training examples"):
        cache.check(Examples(tokenizer, _facts(20, 1)), 0.5)
    with pytest.raises(InterferenceError, match="tau"):
        cache.check(examples, 1.0)


def test_training_with_the_cache_matches_training_with_a_live_teacher():
    facts = _facts(14, 5)
    known, unknown, held = facts[:5], facts[5:10], facts[10:]
    results = {}
    for mode in ("full", "none"):
        model, tokenizer = load_model("tiny-llama")
        config = TrainConfig(method="self_distill", epochs=2, lr=1e-2, batch_size=4, teacher_cache=mode)
        results[mode] = train(model, tokenizer, config, known=known, unknown=unknown, held=held, progress=False)
    full, none = results["full"].history, results["none"].history
    for a, b in zip(full[1:], none[1:], strict=True):
        assert a.kl > 0
        assert a.loss == pytest.approx(b.loss, rel=1e-5) and a.kl == pytest.approx(b.kl, rel=1e-4, abs=1e-7)
    assert [r.accuracy for r in full] == [r.accuracy for r in none]


def test_shared_snapshot_and_cache_give_the_same_run_as_building_them_inside():
    facts = _facts(14, 6)
    known, unknown, held = facts[:5], facts[5:10], facts[10:]
    config = TrainConfig(method="self_distill", epochs=2, lr=1e-2, batch_size=4)
    base, tokenizer = load_model("tiny-llama")
    snapshot = make_snapshot(base, tokenizer, known, config, progress=False)
    assert isinstance(snapshot, Snapshot)
    # make_snapshot trains a copy: the model passed in is unchanged.
    fresh, _ = load_model("tiny-llama")
    assert all(torch.equal(a, b) for a, b in zip(base.parameters(), fresh.parameters(), strict=True))
    cache = build_teacher_cache(base, tokenizer, config, snapshot, known=known, unknown=unknown, progress=False)
    shared = train(
        base,
        tokenizer,
        config,
        known=known,
        unknown=unknown,
        held=held,
        snapshot=snapshot,
        teacher_cache=cache,
        progress=False,
    )
    model, _ = load_model("tiny-llama")
    inside = train(model, tokenizer, config, known=known, unknown=unknown, held=held, progress=False)
    assert [(r.loss, r.kl, r.accuracy) for r in shared.history] == [(r.loss, r.kl, r.accuracy) for r in inside.history]


def test_teacher_module_is_a_frozen_copy_holding_the_snapshot(setup):
    teacher, student, _, _ = setup
    snapshot = Snapshot.of(teacher)
    copy = teacher_module(student, snapshot)
    assert copy is not student and not copy.training
    assert all(not p.requires_grad for p in copy.parameters())
    assert all(torch.equal(p, snapshot.params[n]) for n, p in copy.named_parameters())


def test_the_auto_cache_is_chosen_by_size():
    # 8,000 facts × 40 positions, a 49,152 vocabulary: full 63 GB, top-64 0.17 GB.
    assert choose_cache(8000, 40, 49152, 64, 2.0) == "topk"
    assert choose_cache(8000, 40, 49152, 64, 100.0) == "full"
    assert choose_cache(8000, 40, 49152, 64, 0.1) == "none"
    assert choose_cache(300, 85, 100, 64, 2.0) == "full"


def test_auto_picks_top_k_when_the_full_cache_does_not_fit_and_trains_as_top_k():
    facts = _facts(14, 7)
    known, unknown, held = facts[:5], facts[5:10], facts[10:]
    runs = {}
    for mode, budget in (("auto", 1e-4), ("topk", 2.0)):  # 10 × 75 positions: full 0.3 MB, top-6 0.04 MB
        model, tokenizer = load_model("tiny-llama")
        config = TrainConfig(method="self_distill", epochs=2, lr=1e-2, batch_size=4, teacher_cache=mode,
                             teacher_topk=6, teacher_cache_gb=budget)
        runs[mode] = train(model, tokenizer, config, known=known, unknown=unknown, held=held, progress=False)
    assert [(r.loss, r.kl) for r in runs["auto"].history] == [(r.loss, r.kl) for r in runs["topk"].history]

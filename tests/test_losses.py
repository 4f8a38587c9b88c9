"""The training objectives' maths: CE on answer tokens only, the KD term, its mask, τ², top-k, L2 and μ matching."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from interference.facts import Fact
from interference.facts.examples import Examples
from interference.models import load_model
from interference.train.losses import (
    IGNORE,
    answer_cross_entropy,
    distill_kl,
    distill_kl_topk,
    kd_weight,
    l2_distance,
    matched_mu,
    self_distill_objective,
    tempered_log_probs,
    topk_compress,
)

FACTS = [
    Fact("Bergadena", "P17", "Italy", "Which country is Bergadena located in?"),
    Fact("Oslo", "P17", "Norway", "Which country is Oslo located in?"),
    Fact("Lyon", "P17", "France", "Which country is Lyon located in?", aliases=("FR",)),
]


@pytest.fixture(scope="module")
def tiny():
    return load_model("tiny-llama")


@pytest.fixture(scope="module")
def batch(tiny):
    _, tokenizer = tiny
    examples = Examples(tokenizer, FACTS)
    return examples, examples.batch(torch.arange(len(FACTS)))


def _random_logits(shape, seed):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed)) * 3


def test_examples_concatenate_prompt_and_target_ids_with_eos(tiny, batch):
    _, tokenizer = tiny
    examples, b = batch
    for i, fact in enumerate(FACTS):
        prompt = tokenizer(f"Answer the following question. {fact.question}\nAnswer:")["input_ids"]
        target = tokenizer(f" {fact.object}", add_special_tokens=False)["input_ids"]
        ids = prompt + target + [tokenizer.eos_token_id]
        n = len(ids)
        assert b.input_ids[i, :n].tolist() == ids
        assert b.attention_mask[i].tolist() == [1] * n + [0] * (b.input_ids.shape[1] - n)
        assert (b.input_ids[i, n:] == tokenizer.pad_token_id).all()
        assert b.labels[i, : len(prompt)].eq(IGNORE).all()
        assert b.labels[i, len(prompt) : n].tolist() == target + [tokenizer.eos_token_id]
        assert b.labels[i, n:].eq(IGNORE).all()


def test_cross_entropy_matches_the_mean_negative_log_likelihood_of_answer_tokens(batch):
    _, b = batch
    logits = _random_logits((*b.input_ids.shape, 100), 0)
    log_p = torch.log_softmax(logits, -1)
    terms = []
    for i in range(b.input_ids.shape[0]):
        for t in range(1, b.input_ids.shape[1]):
            if b.labels[i, t] != IGNORE:
                terms.append(-log_p[i, t - 1, b.labels[i, t]])
    assert answer_cross_entropy(logits, b.labels) == pytest.approx(torch.stack(terms).mean().item(), rel=1e-6)


def test_cross_entropy_ignores_prompt_and_pad_positions(batch):
    _, b = batch
    logits = _random_logits((*b.input_ids.shape, 100), 1)
    base = answer_cross_entropy(logits, b.labels)
    # Logits at position t predict token t + 1: those predicting prompt tokens or pad must not matter.
    predicts_answer = torch.zeros_like(b.labels, dtype=torch.bool)
    predicts_answer[:, :-1] = b.labels[:, 1:] != IGNORE
    changed = logits.clone()
    changed[~predicts_answer] = _random_logits((int((~predicts_answer).sum()), 100), 2)
    assert torch.equal(answer_cross_entropy(changed, b.labels), base)
    # ...while the logits predicting the first answer token do.
    first = int(predicts_answer[0].nonzero()[0])
    changed[0, first] += 5 * F.one_hot(torch.tensor(7), 100)
    assert not torch.equal(answer_cross_entropy(changed, b.labels), base)


def test_kl_is_zero_for_identical_logits_and_positive_otherwise(batch):
    _, b = batch
    student = _random_logits((*b.input_ids.shape, 100), 3)
    for tau in (0.5, 1.0, 2.0):
        same = distill_kl(student, tempered_log_probs(student, tau), b.attention_mask, tau)
        assert same.item() == pytest.approx(0.0, abs=1e-7)
        for seed in range(4, 8):
            teacher = tempered_log_probs(_random_logits(student.shape, seed), tau)
            assert distill_kl(student, teacher, b.attention_mask, tau) > 0


def test_kl_is_forward_kl_of_tempered_distributions_averaged_over_non_pad_positions(batch):
    _, b = batch
    tau = 0.5
    student, teacher = _random_logits((*b.input_ids.shape, 100), 8), _random_logits((*b.input_ids.shape, 100), 9)
    p, q = torch.softmax(teacher / tau, -1), torch.softmax(student / tau, -1)
    per_position = (p * (p.log() - q.log())).sum(-1)
    expected = per_position[b.attention_mask.bool()].mean()
    got = distill_kl(student, tempered_log_probs(teacher, tau), b.attention_mask, tau)
    assert got.item() == pytest.approx(expected.item(), rel=1e-5)


def test_kd_mask_covers_every_non_pad_position_and_no_other(batch):
    examples, b = batch
    tau = 0.5
    assert b.attention_mask.sum(1).tolist() == examples.lengths.tolist()
    student, teacher = _random_logits((*b.input_ids.shape, 100), 10), _random_logits((*b.input_ids.shape, 100), 11)
    teacher_lp = tempered_log_probs(teacher, tau)
    base = distill_kl(student, teacher_lp, b.attention_mask, tau)
    pad = ~b.attention_mask.bool()
    assert pad.any()
    changed = student.clone()
    changed[pad] = _random_logits((int(pad.sum()), 100), 12)
    assert torch.equal(distill_kl(changed, teacher_lp, b.attention_mask, tau), base)
    # Every non-pad position counts: prompt positions, answer positions and the final eos position.
    for i, t in [(0, 0), (0, 5), (1, int(examples.lengths[1]) - 1), (2, int(examples.lengths[2]) - 2)]:
        moved = student.clone()
        moved[i, t] = teacher[i, t]
        assert not torch.equal(distill_kl(moved, teacher_lp, b.attention_mask, tau), base), (i, t)


def test_tau_squared_factor_and_the_analytic_gradient(batch):
    _, b = batch
    lam, tau = 0.7, 0.5
    student = _random_logits((*b.input_ids.shape, 100), 13).requires_grad_(True)
    teacher_lp = tempered_log_probs(_random_logits(student.shape, 14), tau)
    ce = answer_cross_entropy(student, b.labels)
    kl = distill_kl(student, teacher_lp, b.attention_mask, tau)
    total = self_distill_objective(ce, kl, lam, tau)
    assert (total - ce).item() == pytest.approx(lam * tau**2 * kl.item(), rel=1e-6)
    # d KL / d z_student = (softmax(z/τ) − p_teacher) / (τ · n_positions) at non-pad positions, 0 at pad.
    (grad,) = torch.autograd.grad(kl, student)
    mask = b.attention_mask.bool()
    expected = (torch.softmax(student.detach() / tau, -1) - teacher_lp.exp()) / (tau * mask.sum())
    expected[~mask] = 0
    torch.testing.assert_close(grad, expected, rtol=1e-4, atol=1e-8)


def test_kd_term_gives_nonzero_gradients_on_student_parameters(tiny, batch):
    model, _ = tiny
    _, b = batch
    teacher, _ = load_model("tiny-llama", seed=1)
    with torch.no_grad():
        teacher_lp = tempered_log_probs(teacher(input_ids=b.input_ids, attention_mask=b.attention_mask).logits, 0.5)
    model.zero_grad(set_to_none=True)
    logits = model(input_ids=b.input_ids, attention_mask=b.attention_mask).logits
    kl = distill_kl(logits, teacher_lp, b.attention_mask, 0.5)
    kl.backward()
    grads = {n: p.grad for n, p in model.named_parameters()}
    assert all(g is not None for g in grads.values())
    assert all(g.abs().sum() > 0 for g in grads.values()), [n for n, g in grads.items() if g.abs().sum() == 0]
    model.zero_grad(set_to_none=True)


def test_topk_with_full_vocabulary_equals_the_full_kl(batch):
    _, b = batch
    tau = 0.5
    student, teacher = _random_logits((*b.input_ids.shape, 100), 15), _random_logits((*b.input_ids.shape, 100), 16)
    teacher_lp = tempered_log_probs(teacher, tau)
    idx, val, tail = topk_compress(teacher_lp, 100)
    assert torch.isinf(tail).all()
    full = distill_kl(student, teacher_lp, b.attention_mask, tau)
    top = distill_kl_topk(student, idx, val, tail, b.attention_mask, tau)
    assert top.item() == pytest.approx(full.item(), rel=1e-5)


@pytest.mark.parametrize("k", [1, 5, 20])
def test_topk_is_a_lower_bound_of_the_full_kl_within_the_stated_gap(batch, k):
    _, b = batch
    tau = 0.5
    student, teacher = _random_logits((*b.input_ids.shape, 100), 17), _random_logits((*b.input_ids.shape, 100), 18)
    teacher_lp = tempered_log_probs(teacher, tau)
    student_lp = tempered_log_probs(student, tau)
    idx, val, tail = topk_compress(teacher_lp, k)
    full = distill_kl(student, teacher_lp, b.attention_mask, tau)
    top = distill_kl_topk(student, idx, val, tail, b.attention_mask, tau)
    # Gap per position <= p_tail · max_{v in tail} log((p_v / p_tail) / (q_v / q_tail)).
    in_tail = torch.ones_like(teacher_lp, dtype=torch.bool).scatter(-1, idx, False)
    student_tail = torch.logsumexp(student_lp.masked_fill(~in_tail, float("-inf")), -1)
    ratio = (teacher_lp - tail.unsqueeze(-1)) - (student_lp - student_tail.unsqueeze(-1))
    bound_per_position = tail.exp() * ratio.masked_fill(~in_tail, float("-inf")).amax(-1)
    mask = b.attention_mask.bool()
    bound = bound_per_position[mask].mean()
    assert top <= full + 1e-6
    assert full - top <= bound + 1e-6
    assert full - top > 0  # with k < V the coarsening loses something on random logits


def test_l2_distance_and_its_gradient():
    params = [torch.tensor([1.0, 2.0], requires_grad=True), torch.tensor([[3.0]], requires_grad=True)]
    anchors = [torch.tensor([0.0, 0.0]), torch.tensor([[1.0]])]
    dist = l2_distance(params, anchors)
    assert dist.item() == pytest.approx(1 + 4 + 4)
    grads = torch.autograd.grad(2.5 * dist, params)
    assert grads[0].tolist() == [5.0, 10.0] and grads[1].tolist() == [[10.0]]


def test_matched_mu_equalises_the_gradient_norms():
    params = [torch.randn(10, generator=torch.Generator().manual_seed(0)).requires_grad_(True)]
    anchors = [torch.zeros(10)]
    kd_norm = 0.37
    distance = l2_distance(params, anchors).sqrt().item()
    mu = matched_mu(kd_norm, distance)
    (grad,) = torch.autograd.grad(mu * l2_distance(params, anchors), params)
    assert grad.norm().item() == pytest.approx(kd_norm, rel=1e-5)
    with pytest.raises(ValueError, match="zero"):
        matched_mu(kd_norm, 0.0)


def test_kd_weighting_token_mean_or_per_sequence_sum(batch):
    _, b = batch
    tau = 0.5
    student, teacher = _random_logits((*b.input_ids.shape, 100), 19), _random_logits((*b.input_ids.shape, 100), 20)
    teacher_lp = tempered_log_probs(teacher, tau)
    p, q = torch.softmax(teacher / tau, -1), torch.softmax(student / tau, -1)
    per_position = (p * (p.log() - q.log())).sum(-1) * b.attention_mask
    token = distill_kl(student, teacher_lp, b.attention_mask, tau, "token")
    sequence = distill_kl(student, teacher_lp, b.attention_mask, tau, "sequence")
    assert token.item() == pytest.approx((per_position.sum() / b.attention_mask.sum()).item(), rel=1e-5)
    assert sequence.item() == pytest.approx(per_position.sum(1).mean().item(), rel=1e-5)
    # Per sequence, a longer example weighs more: its KL is a sum over more positions.
    lengths = b.attention_mask.sum(1).float()
    assert sequence.item() == pytest.approx((token * lengths.mean()).item(), rel=0.5)
    idx, val, tail = topk_compress(teacher_lp, 100)
    top = distill_kl_topk(student, idx, val, tail, b.attention_mask, tau, "sequence")
    assert top.item() == pytest.approx(sequence.item(), rel=1e-5)
    with pytest.raises(ValueError, match="weighting"):
        kd_weight(per_position, b.attention_mask, "batch")

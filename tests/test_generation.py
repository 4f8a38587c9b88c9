"""Batched answer generation: greedy and sampled, seeded, with the prompts' prefill shared between samples."""

from __future__ import annotations

import pytest
import torch

from interference.models import load_model
from interference.models.generation import _left_padded, _shared_prefill, generate_answers, stop_token_ids

PROMPTS = ["Q: What is the capital of Xa?\nA:", "Q: Where?\nA:", "Hello there, what", "A"]


def reference_samples(model, tokenizer, prompts, n, seed, max_new_tokens):
    """Plain `generate` with num_return_sequences (it repeats each prompt's prefill per sample)."""
    torch.manual_seed(seed)
    batch = _left_padded(tokenizer, prompts, "cpu")
    with torch.no_grad():
        out = model.generate(**batch, num_return_sequences=n, max_new_tokens=max_new_tokens, do_sample=True,
                             temperature=0.7, top_k=20, top_p=1.0, eos_token_id=stop_token_ids(tokenizer),
                             pad_token_id=tokenizer.pad_token_id)
    texts = tokenizer.batch_decode(out[:, batch["input_ids"].shape[1]:], skip_special_tokens=True)
    texts = [t.split("\n", 1)[0].strip() for t in texts]
    return [texts[i * n:(i + 1) * n] for i in range(len(prompts))]


@pytest.mark.parametrize("name", ["tiny-llama", "tiny-qwen2", "tiny-gpt2"])
def test_sampled_answers_with_a_shared_prefill_equal_plain_generate(name):
    model, tokenizer = load_model(name)
    with torch.no_grad():  # the shared path is the one taken for these models
        assert _shared_prefill(model, _left_padded(tokenizer, PROMPTS, "cpu"), 3) is not None
    ours = generate_answers(model, tokenizer, PROMPTS, num_samples=3, temperature=0.7, top_k=20, max_new_tokens=6,
                            seed=5)
    assert ours == reference_samples(model, tokenizer, PROMPTS, 3, 5, 6)
    assert all(len(a) == 3 for a in ours)
    again = generate_answers(model, tokenizer, PROMPTS, num_samples=3, temperature=0.7, top_k=20, max_new_tokens=6,
                             seed=5)
    assert again == ours  # seeded


def test_greedy_is_one_answer_per_prompt_and_sampling_needs_a_temperature():
    model, tokenizer = load_model("tiny-llama")
    greedy = generate_answers(model, tokenizer, PROMPTS, max_new_tokens=4)
    assert [len(a) for a in greedy] == [1] * len(PROMPTS)
    with pytest.raises(ValueError, match="greedy"):
        generate_answers(model, tokenizer, PROMPTS, num_samples=2)


def test_the_shared_prefill_passes_the_cache_under_the_forward_s_own_name():
    import inspect

    from interference.models.generation import cache_argument

    model, tokenizer = load_model("tiny-llama")
    name = cache_argument(model)
    assert name in inspect.signature(model.forward).parameters
    with torch.no_grad():
        shared = _shared_prefill(model, _left_padded(tokenizer, PROMPTS, "cpu"), 2)
    assert set(shared) == {"input_ids", "attention_mask", name}
    assert shared["input_ids"].shape[0] == 2 * len(PROMPTS)


def test_evaluation_in_length_order_gives_each_fact_its_own_verdict(world):
    from interference.measures.evaluation import fact_correctness

    known, held = world.split(12, 12, seed=0)
    facts = [*known[:6], *world.new_facts(6, seed=0), *held[:6]]  # known and new facts interleaved by split
    one_by_one = [fact_correctness(world.model, world.tokenizer, [f], batch_size=1)[0] for f in facts]
    assert True in one_by_one and False in one_by_one
    assert fact_correctness(world.model, world.tokenizer, facts, batch_size=5) == one_by_one
    assert fact_correctness(world.model, world.tokenizer, facts) == one_by_one  # the device's batch: EVAL_BATCH on cpu

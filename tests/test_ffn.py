from __future__ import annotations

import copy

import pytest
import torch

from interference.facts import Fact, qa_prompt, qa_target
from interference.io.errors import InterferenceError
from interference.measures.ffn import (
    answer_promotion,
    answer_promotions,
    sub_update_contributions,
    token_promotion,
    value_vector_shift,
    value_vector_tokens,
)
from interference.models import TINY_MODELS, load_model, tiny_model
from interference.models.architectures import (
    decoder_layers,
    down_proj,
    final_norm,
    get_module,
    layout_of,
    value_vectors,
)
from interference.models.views import encode, mlp_activations

TEXTS = ["Where was Bergadena born?", "Who is Ax married to?"]
FACTS = [
    Fact("Bergadena", "born", "Paris", "Where was Bergadena born?"),
    Fact("Ax", "married", "Ida Lo", "Who is Ax married to?"),
    Fact("Mo", "born", "Lima", "Where was Mo born?"),
]


def _randomise_biases(model):
    """Non-zero down-projection biases and final-norm parameters, so that tests see them."""
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for layer in range(len(decoder_layers(model))):
            bias = down_proj(model, layer).bias
            if bias is not None:
                bias.copy_(torch.randn(bias.shape, generator=generator))
        for param in final_norm(model).parameters():
            param.copy_(torch.randn(param.shape, generator=generator))


def _run_layer(model, ids, mask, layer):
    """(MLP input x, down-projection output) of `layer`, captured with hooks on a plain forward pass."""
    layout = layout_of(model)
    mlp = get_module(decoder_layers(model)[layer], layout.mlp)
    found = {}
    handles = [
        mlp.register_forward_pre_hook(lambda m, a: found.__setitem__("x", a[0])),
        down_proj(model, layer).register_forward_hook(lambda m, a, out: found.__setitem__("out", out)),
    ]
    try:
        with torch.no_grad():
            model(input_ids=ids, attention_mask=mask)
    finally:
        for handle in handles:
            handle.remove()
    return mlp, found["x"], found["out"]


@pytest.mark.parametrize("name", TINY_MODELS)
def test_sub_updates_reproduce_the_ffn_and_its_logits(name):
    model, tokenizer = load_model(name, seed=2)
    _randomise_biases(model)
    ids, mask = encode(tokenizer, TEXTS)
    layer = 1
    mlp, x, out = _run_layer(model, ids, mask, layer)
    m = mlp_activations(model, ids, mask, layers=[layer])[0]
    with torch.no_grad():  # m_i = act(gate_i·x)·(up_i·x) for gated MLPs, act(W_in·x)_i otherwise
        expected_m = mlp.act_fn(mlp.gate_proj(x)) * mlp.up_proj(x) if layout_of(model).gated else mlp.act(mlp.c_fc(x))
    torch.testing.assert_close(m, expected_m, atol=1e-6, rtol=1e-5)

    bias = down_proj(model, layer).bias
    bias = torch.zeros(out.shape[-1]) if bias is None else bias.detach()
    values = value_vectors(model, layer).detach()
    torch.testing.assert_close(torch.einsum("bsi,id->bsd", m, values) + bias, out, atol=1e-5, rtol=1e-5)

    tokens = [5, 17, 42]
    promotion = token_promotion(m, model, layer, tokens)
    assert promotion.shape == (*m.shape, 3)
    logits = (out - bias) @ model.lm_head.weight.detach()[tokens].T
    torch.testing.assert_close(promotion.sum(dim=-2), logits, atol=1e-5, rtol=1e-5)

    contribution = sub_update_contributions(m, model, layer)
    weight = down_proj(model, layer).weight.detach()
    norms = weight.norm(dim=1) if layout_of(model).down_proj_is_conv1d else weight.norm(dim=0)
    torch.testing.assert_close(contribution, m.abs() * norms)
    assert ((out - bias).norm(dim=-1) <= contribution.sum(dim=-1) + 1e-5).all()  # triangle inequality


@pytest.mark.parametrize("name", ["tiny-llama", "tiny-gpt2"])
def test_value_vector_tokens_are_the_top_of_e_times_v(name):
    model, tokenizer = load_model(name, seed=3)
    _randomise_biases(model)
    layer = -1
    values = value_vectors(model, 1).detach()
    unembed = model.lm_head.weight.detach()
    top = value_vector_tokens(model, tokenizer, layer, top_k=5)
    assert top.layer == 1 and top.ids.shape == (values.shape[0], 5)
    expected = (values @ unembed.T).topk(5, dim=-1)
    assert torch.equal(top.ids, expected.indices)
    torch.testing.assert_close(top.scores, expected.values)
    assert (top.scores[:, :-1] >= top.scores[:, 1:]).all()
    assert top.tokens[7] == [tokenizer.decode([i]) for i in expected.indices[7].tolist()]

    normed = value_vector_tokens(model, tokenizer, layer, top_k=5, apply_final_norm=True, indices=[3, 0])
    with torch.no_grad():
        expected = (final_norm(model)(values[[3, 0]]) @ unembed.T).topk(5, dim=-1)
    assert torch.equal(normed.ids, expected.indices) and normed.indices.tolist() == [3, 0]
    with pytest.raises(InterferenceError, match="out of range"):
        value_vector_tokens(model, tokenizer, 2)
    with pytest.raises(InterferenceError, match="indices must lie"):
        value_vector_tokens(model, tokenizer, 0, indices=[values.shape[0]])


def test_value_vector_shift_finds_the_moved_sub_updates():
    model, _ = load_model("tiny-qwen2", seed=4)
    moved = copy.deepcopy(model)
    with torch.no_grad():
        weight = down_proj(moved, 0).weight  # Linear [d_model, d_mlp]: column i is v_i
        weight[:, 5] += 0.5
        weight[:, 9] *= -1
    shift = value_vector_shift(model, moved, 0)
    v = value_vectors(model, 0).detach()
    expected_order = [9, 5] if 2 * v[9].norm() > 0.5 * v.shape[1] ** 0.5 else [5, 9]
    assert shift.order[:2].tolist() == expected_order
    assert shift.distance[9].item() == pytest.approx(2 * v[9].norm().item(), rel=1e-5)
    assert shift.distance[5].item() == pytest.approx(0.5 * v.shape[1] ** 0.5, rel=1e-5)
    assert shift.cosine[9].item() == pytest.approx(-1.0, abs=1e-6)
    assert shift.relative[9].item() == pytest.approx(2.0, rel=1e-5)
    rest = torch.ones(v.shape[0], dtype=torch.bool)
    rest[[5, 9]] = False
    assert (shift.distance[rest] == 0).all() and torch.allclose(shift.cosine[rest], torch.ones(int(rest.sum())))
    with pytest.raises(InterferenceError, match="differ in shape"):
        value_vector_shift(model, load_model("tiny-gpt2")[0], 0)


def test_answer_promotion_on_a_character_tokenizer():
    model, tokenizer = load_model("tiny-llama", seed=5)
    fact = FACTS[0]
    prompt, answer = qa_prompt(fact), qa_target(fact)  # " Paris": the space is predicted first, then "P"
    result = answer_promotion(model, tokenizer, prompt, answer, layer=0, top_k=4)
    assert result.position == len(prompt) and result.token == "P"
    assert result.token_id == tokenizer.convert_tokens_to_ids("P")

    ids, mask = encode(tokenizer, [prompt + " "])
    _, _, out = _run_layer(model, ids, mask, 0)
    direct = out[0, result.position] @ model.lm_head.weight.detach()[result.token_id]
    assert result.total_promotion == pytest.approx(direct.item(), abs=1e-5)
    m = mlp_activations(model, ids, mask, layers=[0])[0, 0, result.position]
    contribution = sub_update_contributions(m, model, 0)
    assert result.indices.tolist() == contribution.topk(4).indices.tolist()
    torch.testing.assert_close(result.contribution, contribution[result.indices])
    torch.testing.assert_close(result.promotion, token_promotion(m, model, 0, [result.token_id])[result.indices, 0])
    assert (result.contribution[:-1] >= result.contribution[1:]).all()


def test_answer_promotions_batched_equal_single_and_follow_given_indices():
    model, tokenizer = load_model("tiny-gpt2", seed=6)
    prompts, answers = [qa_prompt(f) for f in FACTS], [qa_target(f) for f in FACTS]
    batched = answer_promotions(model, tokenizer, prompts, answers, 1, top_k=3, batch_size=2)
    for prompt, answer, got in zip(prompts, answers, batched, strict=True):
        alone = answer_promotion(model, tokenizer, prompt, answer, 1, top_k=3)
        assert got.indices.tolist() == alone.indices.tolist() and got.token_id == alone.token_id
        torch.testing.assert_close(got.promotion, alone.promotion, atol=1e-5, rtol=1e-5)
        assert got.total_promotion == pytest.approx(alone.total_promotion, abs=1e-5)
    fixed = answer_promotions(model, tokenizer, prompts, answers, 1, indices=[2, 7])
    assert all(r.indices.tolist() == [2, 7] for r in fixed)
    with pytest.raises(InterferenceError, match="no non-space token"):
        answer_promotion(model, tokenizer, "Q:", "   ", 0)
    with pytest.raises(InterferenceError, match="2 prompts but 1 answers"):
        answer_promotions(model, tokenizer, prompts[:2], answers[:1], 0)


def test_answer_position_with_a_word_piece_tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.BPE(unk_token=None))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    corpus = [qa_prompt(f) + qa_target(f) for f in FACTS] * 5
    trainer = trainers.BpeTrainer(vocab_size=320, special_tokens=["<pad>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    backend.train_from_iterator(corpus, trainer)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="<pad>")
    model = tiny_model("llama", seed=7, vocab_size=len(tokenizer)).eval()
    prompt, answer = qa_prompt(FACTS[1]), qa_target(FACTS[1])
    result = answer_promotion(model, tokenizer, prompt, answer, 1)
    prompt_ids = tokenizer(prompt)["input_ids"]
    full_ids = tokenizer(prompt + answer)["input_ids"]
    assert full_ids[: len(prompt_ids)] == prompt_ids
    assert result.position == len(prompt_ids) - 1  # the prompt's last token predicts the answer's first piece
    assert result.token_id == full_ids[len(prompt_ids)] and result.token.startswith(" ")

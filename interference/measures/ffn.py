"""FFN sub-updates as concept promotion in vocabulary space (Geva et al. 2022, SPEC §5).

An FFN layer adds Σ_i m_i v_i to the residual stream (plus the down projection's bias, for GPT-2), where v_i is the
i-th value vector (column of the down/out projection) and m_i its activation — for gated MLPs
m_i = act(gate_i·x)·(up_i·x). Projecting v_i on the unembedding, r_i = E·v_i, gives the tokens it promotes (optionally
after the final norm, as Geva et al.'s GPT-2 code does). A sub-update's contribution is |m_i|·‖v_i‖, and its
promotion of token w is m_i·(e_w·v_i); summed over i this is the FFN output's direct logit for w, without the norm.

What m_i is depends on the family's MLP (`m_definition` says it for a model;
`interference.models.architectures.mlp_hidden` computes it from the MLP input x, and tests check it against the down
projection's input):
- plain MLPs (GPT-2, gpt_neox/Pythia, GPT-J, Phi, Falcon, OPT, BLOOM): m_i = act(W_in·x + b_in)_i;
- gated MLPs (Llama, Mistral, Qwen, OLMo, Gemma): m_i = act(gate_i·x)·(up_i·x);
- phi3's fused gate_up_proj: [g; u] = W_gate_up·x, g the first d_mlp rows' outputs and u the last d_mlp,
  m_i = act(g_i)·u_i.
In post-norm families (gemma2/3, olmo2/3) Σ_i m_i v_i is the input of `post_feedforward_layernorm`, which rescales it
before it joins the residual stream: the promotions are those of the MLP's own output, before that norm.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

from ..io.errors import InterferenceError
from ..models.architectures import final_norm, layout_of, n_layers, unembedding, value_vectors
from ..models.views import mlp_activations, right_pad

#: Upper bound on the number of vocabulary scores held at once by `value_vector_tokens`.
CHUNK_ELEMENTS = 1 << 24


def _layer(model, layer: int) -> int:
    total = n_layers(model)
    if not -total <= int(layer) < total:
        raise InterferenceError(f"layer {layer} out of range for a model with {total} layers")
    return int(layer) % total


def _values(model, layer: int) -> torch.Tensor:
    return value_vectors(model, _layer(model, layer)).detach()


def m_definition(model) -> str:
    """What the sub-updates m_i v_i of `model` are, in one sentence (its family's formula for m_i, SPEC §5)."""
    layout = layout_of(model)
    text = (f"{layout.family} MLP: {layout.m_formula()}, x the MLP input; v_i is the i-th column of the down "
            f"projection ({layout.down_proj})")
    if layout.mlp_out and layout.mlp_out != layout.down_proj:
        text += f"; Σ_i m_i v_i passes {layout.mlp_out} before it joins the residual stream"
    return text


def _check_activations(m: torch.Tensor, values: torch.Tensor) -> None:
    if m.ndim == 0 or m.shape[-1] != values.shape[0]:
        raise InterferenceError(
            f"activations of shape {tuple(m.shape)} do not match the layer's {values.shape[0]} value vectors"
        )


@dataclass(frozen=True)
class ValueVectorTokens:
    """Top tokens of value vectors: `ids[j]`, `scores[j]` and `tokens[j]` belong to value vector `indices[j]`."""

    layer: int
    indices: torch.Tensor
    ids: torch.Tensor
    scores: torch.Tensor
    tokens: list[list[str]]


def value_vector_tokens(
    model,
    tokenizer,
    layer: int,
    top_k: int = 10,
    *,
    apply_final_norm: bool = False,
    indices: Sequence[int] | None = None,
) -> ValueVectorTokens:
    """The `top_k` tokens of each value vector of `layer` (all of them, or `indices`) under r_i = E·v_i.

    With `apply_final_norm`, r_i = E·norm(v_i). Scores are the entries of r_i, highest first.
    """
    values = _values(model, layer)
    if indices is None:
        chosen = torch.arange(values.shape[0])
    else:
        chosen = torch.as_tensor(list(indices), dtype=torch.long)
        if chosen.numel() and not ((chosen >= 0) & (chosen < values.shape[0])).all():
            raise InterferenceError(f"value vector indices must lie in [0, {values.shape[0]}), got {chosen.tolist()}")
    unembed = unembedding(model).detach()
    if not 1 <= top_k <= unembed.shape[0]:
        raise InterferenceError(f"top_k must lie in [1, {unembed.shape[0]}], got {top_k}")
    rows = max(1, CHUNK_ELEMENTS // unembed.shape[0])
    ids, scores = [], []
    with torch.no_grad():
        for start in range(0, len(chosen), rows):
            vectors = values[chosen[start : start + rows].to(values.device)]
            if apply_final_norm:
                vectors = final_norm(model)(vectors)
            best = (vectors @ unembed.T).topk(top_k, dim=-1)
            ids.append(best.indices.cpu())
            scores.append(best.values.float().cpu())
    ids_t = torch.cat(ids) if ids else torch.zeros(0, top_k, dtype=torch.long)
    scores_t = torch.cat(scores) if scores else torch.zeros(0, top_k)
    flat = tokenizer.batch_decode(ids_t.reshape(-1, 1).tolist()) if ids_t.numel() else []
    tokens = [flat[j * top_k : (j + 1) * top_k] for j in range(len(chosen))]
    return ValueVectorTokens(_layer(model, layer), chosen, ids_t, scores_t, tokens)


def sub_update_contributions(m: torch.Tensor, model, layer: int) -> torch.Tensor:
    """|m_i|·‖v_i‖ for each sub-update of `layer`: activations [..., d_mlp] → [..., d_mlp]."""
    values = _values(model, layer)
    _check_activations(m, values)
    return m.abs() * values.norm(dim=-1).to(m.device, m.dtype)


def token_promotion(m: torch.Tensor, model, layer: int, token_ids: Sequence[int] | torch.Tensor) -> torch.Tensor:
    """m_i·(e_w·v_i) for each sub-update i of `layer` and token w: [..., d_mlp] × [t] → [..., d_mlp, t].

    Summed over i, this is E_w·(FFN output − bias): the FFN's direct contribution to the logit of w when the
    unembedding is applied without the final norm.
    """
    values = _values(model, layer)
    _check_activations(m, values)
    unembed = unembedding(model).detach()
    ids = torch.as_tensor(token_ids, dtype=torch.long).reshape(-1)
    if ids.numel() and not ((ids >= 0) & (ids < unembed.shape[0])).all():
        raise InterferenceError(f"token ids must lie in [0, {unembed.shape[0]}), got {ids.tolist()}")
    dots = (values @ unembed[ids.to(unembed.device)].T).to(m.device, m.dtype)  # [d_mlp, t]: e_w · v_i
    return m[..., :, None] * dots


@dataclass(frozen=True)
class ValueVectorShift:
    """How each value vector of one layer moved between two models (a → b).

    Attributes:
        distance: ‖v_i^b − v_i^a‖, [d_mlp].
        relative: distance / ‖v_i^a‖.
        cosine: cos(v_i^a, v_i^b).
        order: value vector indices sorted by distance, largest first.
    """

    layer: int
    distance: torch.Tensor
    relative: torch.Tensor
    cosine: torch.Tensor
    order: torch.Tensor


def value_vector_shift(model_a, model_b, layer: int) -> ValueVectorShift:
    """Which sub-updates of `layer` changed most from `model_a` to `model_b` (same architecture and sizes)."""
    a, b = _values(model_a, layer).double().cpu(), _values(model_b, layer).double().cpu()
    if a.shape != b.shape:
        raise InterferenceError(
            f"value vectors of layer {layer} differ in shape between the models: {tuple(a.shape)} and {tuple(b.shape)}"
        )
    distance = (b - a).norm(dim=-1)
    relative = distance / a.norm(dim=-1).clamp_min(1e-12)
    cosine = torch.nn.functional.cosine_similarity(a, b, dim=-1, eps=1e-12)
    order = distance.argsort(descending=True, stable=True)
    return ValueVectorShift(_layer(model_a, layer), distance.float(), relative.float(), cosine.float(), order)


def _answer_split(tokenizer, prompt: str, answer: str) -> tuple[list[int], int]:
    """Token ids of prompt + answer and the index of the answer's first token holding a non-space character."""
    text = prompt + answer
    encoded = tokenizer(text, return_offsets_mapping=True)
    ids, offsets = encoded["input_ids"], encoded["offset_mapping"]
    for j, (s, e) in enumerate(offsets):
        if e > len(prompt) and e > s and text[max(s, len(prompt)) : e].strip():
            if j == 0:
                raise InterferenceError(f"answer {answer!r} starts the tokenized text; no position predicts it")
            return ids, j
    raise InterferenceError(f"answer {answer!r} has no non-space token after prompt {prompt!r}")


@dataclass(frozen=True)
class AnswerPromotion:
    """The sub-updates of one layer at the position that predicts an answer's first token, for one prompt.

    Attributes:
        position: token index whose next-token prediction is the answer's first (non-space) token.
        token_id, token: that answer token.
        indices: the sub-updates reported — the `top_k` largest |m_i|·‖v_i‖ (dominant), or the ones asked for.
        activation: m_i of those sub-updates.
        contribution: |m_i|·‖v_i‖.
        promotion: m_i·(e_w·v_i) for the answer token w.
        total_promotion: Σ over all sub-updates of m_i·(e_w·v_i), i.e. E_w·(FFN output − bias).
    """

    layer: int
    position: int
    token_id: int
    token: str
    indices: torch.Tensor
    activation: torch.Tensor
    contribution: torch.Tensor
    promotion: torch.Tensor
    total_promotion: float


def answer_promotions(
    model,
    tokenizer,
    prompts: Sequence[str],
    answers: Sequence[str],
    layer: int,
    *,
    top_k: int = 10,
    indices: Sequence[int] | None = None,
    batch_size: int | None = None,
    desc: str | None = "answer promotion",
) -> list[AnswerPromotion]:
    """For each prompt, the dominant sub-updates of `layer` where the model predicts its answer, and their promotion
    of the answer's first token.

    The answer is appended to the prompt as in training (e.g. `qa_prompt(f)` and `qa_target(f)`); the predicting
    position is the token before the answer's first token that holds a non-space character (the prompt's last
    token for word-piece tokenizers, the space for character-level ones). Pass `indices` (e.g. the dominant
    sub-updates found in the base model) to follow the same sub-updates in another model. `batch_size` None follows
    the model's device (`interference.models.devices.inference_batch_size` of 32).
    """
    if batch_size is None:
        from ..models.devices import inference_batch_size

        batch_size = inference_batch_size(32, next(model.parameters()).device)
    prompts, answers = list(prompts), list(answers)
    if len(prompts) != len(answers):
        raise InterferenceError(f"got {len(prompts)} prompts but {len(answers)} answers")
    values = _values(model, layer)
    fixed = None if indices is None else torch.as_tensor(list(indices), dtype=torch.long)
    if fixed is not None and fixed.numel() and not ((fixed >= 0) & (fixed < values.shape[0])).all():
        raise InterferenceError(f"sub-update indices must lie in [0, {values.shape[0]}), got {fixed.tolist()}")
    if fixed is None and not 1 <= top_k <= values.shape[0]:
        raise InterferenceError(f"top_k must lie in [1, {values.shape[0]}], got {top_k}")
    if batch_size < 1:
        raise InterferenceError(f"batch_size must be at least 1, got {batch_size}")
    splits = [_answer_split(tokenizer, p, a) for p, a in zip(prompts, answers, strict=True)]
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    out: list[AnswerPromotion] = []
    starts = range(0, len(splits), batch_size)
    for start in tqdm(starts, desc=desc, disable=desc is None or len(starts) < 2, leave=False):
        chunk = splits[start : start + batch_size]
        ids, mask = right_pad([tokens[:j] for tokens, j in chunk], pad)
        positions = torch.tensor([j - 1 for _, j in chunk])
        targets = [tokens[j] for tokens, j in chunk]
        m = mlp_activations(model, ids, mask, layers=[layer], positions=positions)[0].float().cpu()  # [b, d_mlp]
        contribution = sub_update_contributions(m, model, layer)
        promotion = token_promotion(m, model, layer, targets).float().cpu()  # [b, d_mlp, b]
        names = tokenizer.batch_decode([[t] for t in targets])
        for row, target in enumerate(targets):
            own = promotion[row, :, row]
            pick = fixed if fixed is not None else contribution[row].topk(top_k).indices
            out.append(
                AnswerPromotion(
                    layer=_layer(model, layer),
                    position=int(positions[row]),
                    token_id=int(target),
                    token=names[row],
                    indices=pick,
                    activation=m[row, pick],
                    contribution=contribution[row, pick],
                    promotion=own[pick],
                    total_promotion=float(own.sum()),
                )
            )
    return out


def answer_promotion(
    model, tokenizer, prompt: str, answer: str, layer: int, *, top_k: int = 10, indices: Sequence[int] | None = None
) -> AnswerPromotion:
    """`answer_promotions` for one prompt."""
    return answer_promotions(model, tokenizer, [prompt], [answer], layer, top_k=top_k, indices=indices, desc=None)[0]

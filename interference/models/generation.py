"""Batched answer generation with the KV cache (greedy or sampled), cut at the first newline."""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Iterator, Sequence

import torch
from tqdm.auto import tqdm


def stop_token_ids(tokenizer) -> list[int]:
    """Token ids that end an answer: EOS plus a bare newline token when the vocabulary has one."""
    ids = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    newline = tokenizer.encode("\n", add_special_tokens=False)
    if len(newline) == 1 and newline[0] not in ids:
        ids.append(newline[0])
    return ids


def no_cache(model) -> dict:
    """The keyword options of a forward pass that reuses no KV cache (training, teacher-forced checks): use_cache=False
    for a Hugging Face model (also compiled, wrapped by DDP, or with adapters), which would otherwise build a cache on
    every pass (about ten dispatches a layer), and none for a module whose forward takes no such option."""
    from transformers import PretrainedConfig

    inner = getattr(model, "_orig_mod", model)  # torch.compile
    inner = getattr(inner, "module", inner)  # DistributedDataParallel
    return {"use_cache": False} if isinstance(getattr(inner, "config", None), PretrainedConfig) else {}


def forward_logits(model, batch) -> torch.Tensor:
    """`model`'s logits on a batch (its `input_ids` and `attention_mask`), without a KV cache."""
    return model(input_ids=batch.input_ids, attention_mask=batch.attention_mask, **no_cache(model)).logits


@contextlib.contextmanager
def inference_mode(model: torch.nn.Module) -> Iterator[None]:
    """Eval mode and no autograd for the duration, restoring the model's training flag afterwards."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        model.train(was_training)


def padded(tokenizer, texts: Sequence[str], side: str):
    """`texts` tokenised into one batch padded on `side` ("left" or "right"); the tokenizer's own side is kept."""
    kept = tokenizer.padding_side
    tokenizer.padding_side = side
    try:
        return tokenizer(list(texts), return_tensors="pt", padding=True)
    finally:
        tokenizer.padding_side = kept


def _left_padded(tokenizer, prompts: Sequence[str], device) -> dict[str, torch.Tensor]:
    batch = padded(tokenizer, prompts, "left")
    return {k: v.to(device) for k, v in batch.items() if k in ("input_ids", "attention_mask")}


def _shared_prefill(model, batch: dict, copies: int) -> dict | None:
    """Inputs for `generate` that reuse one prefill of the prompts for `copies` samples each.

    The KV cache of every prompt token but the last, repeated `copies` times, with the repeated prompts. None for
    other than Hugging Face models or when the model's cache cannot be repeated (then `generate` repeats the prefill
    itself). Sampled answers are the same either way.
    """
    from transformers import PreTrainedModel

    ids, mask = batch["input_ids"], batch["attention_mask"]
    if ids.shape[1] < 2 or not isinstance(model, PreTrainedModel):
        return None
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    out = model(input_ids=ids[:, :-1], attention_mask=mask[:, :-1], position_ids=positions[:, :-1], use_cache=True)
    name = cache_argument(model)
    cache = out.get(name)  # the output field has the name of the forward's argument
    if cache is None or not hasattr(cache, "batch_repeat_interleave"):
        return None
    cache.batch_repeat_interleave(copies)
    return {"input_ids": ids.repeat_interleave(copies, 0), "attention_mask": mask.repeat_interleave(copies, 0),
            name: cache}


def cache_argument(model) -> str:
    """The name under which `model`'s forward (and so `generate`) takes a KV cache: "past_key_values" up to
    transformers 5.2x, "cache" in the releases that renamed it. Read from the forward's signature, so every admitted
    transformers version gets the name it accepts, without a deprecation warning."""
    parameters = inspect.signature(model.forward).parameters
    return "cache" if "cache" in parameters and "past_key_values" not in parameters else "past_key_values"


def generate_answers(
    model,
    tokenizer,
    prompts: Sequence[str],
    *,
    max_new_tokens: int = 16,
    batch_size: int = 32,
    num_samples: int = 1,
    temperature: float | None = None,
    top_k: int | None = None,
    seed: int = 0,
    desc: str | None = None,
) -> list[list[str]]:
    """Complete every prompt; returns, per prompt, `num_samples` answer strings (text before the first newline).

    Greedy decoding when `temperature` is None (then `num_samples` must be 1); otherwise sampling at that
    temperature with optional top-k. Sampling is seeded once per call, so the same seed, prompts and batch size
    give the same answers.
    """
    if temperature is None and num_samples != 1:
        raise ValueError("greedy decoding gives one answer per prompt: set temperature to sample several")
    if temperature is not None and temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    if batch_size < 1 or max_new_tokens < 1:
        raise ValueError("batch_size and max_new_tokens must be >= 1")
    if tokenizer.pad_token_id is None:
        raise ValueError("the tokenizer has no pad token; set tokenizer.pad_token before generating")
    device = next(model.parameters()).device
    stops = stop_token_ids(tokenizer)
    sampling = dict(do_sample=False)
    if temperature is not None:
        sampling = dict(do_sample=True, temperature=float(temperature), top_k=top_k or 0, top_p=1.0)
    out: list[list[str]] = []
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        with inference_mode(model):
            bar = tqdm(total=len(prompts), desc=desc or "generating", unit="q", disable=desc is None, leave=False)
            for start in range(0, len(prompts), batch_size):
                chunk = prompts[start : start + batch_size]
                batch = _left_padded(tokenizer, chunk, device)
                options = dict(max_new_tokens=max_new_tokens, eos_token_id=stops, pad_token_id=tokenizer.pad_token_id,
                               use_cache=True, **sampling)
                shared = _shared_prefill(model, batch, num_samples) if num_samples > 1 else None
                if shared is not None:  # the prompts' KV cache computed once and repeated for every sample
                    generated = model.generate(**shared, **options)
                else:
                    generated = model.generate(**batch, num_return_sequences=num_samples, **options)
                new_tokens = generated[:, batch["input_ids"].shape[1] :]
                texts = tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
                for i in range(len(chunk)):
                    answers = texts[i * num_samples : (i + 1) * num_samples]
                    out.append([t.split("\n", 1)[0].strip() for t in answers])
                bar.update(len(chunk))
            bar.close()
    finally:
        torch.random.set_rng_state(generator_state)
    return out


def generate_in_length_order(model, tokenizer, prompts: Sequence[str], lengths: Sequence[int],
                             **options) -> list[list[str]]:
    """`generate_answers(model, tokenizer, prompts, **options)` with the prompts decoded shortest first by `lengths`
    (so that a batch pads little); the answers come back in the prompts' order."""
    if not prompts:
        return []
    order = sorted(range(len(prompts)), key=lengths.__getitem__)
    answers = generate_answers(model, tokenizer, [prompts[i] for i in order], **options)
    out: list[list[str]] = [[] for _ in prompts]
    for position, index in enumerate(order):
        out[index] = answers[position]
    return out

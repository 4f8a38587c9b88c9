"""The tiny test models: randomly initialised ~0.1M-parameter Llama, Qwen2 and GPT-2 decoders with a character-level
tokenizer, built in memory in a fraction of a second (`load_model("tiny-llama")` and the like)."""

from __future__ import annotations

import string

import torch
from transformers import (
    GPT2Config,
    GPT2LMHeadModel,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedTokenizerFast,
    Qwen2Config,
    Qwen2ForCausalLM,
)

from ..io.errors import InterferenceError

TINY_MODELS = ("tiny-llama", "tiny-qwen2", "tiny-gpt2")
#: Decoder layers of every tiny model.
TINY_LAYERS = 2


def char_tokenizer() -> PreTrainedTokenizerFast:
    """A character-level tokenizer over printable ASCII with <pad>, <eos> and <unk> (for the tiny test models)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    specials = ["<pad>", "<eos>", "<unk>"]
    chars = [c for c in string.printable if c not in "\t\r\x0b\x0c"]
    vocab = {tok: i for i, tok in enumerate(specials + chars)}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Split("", "isolated")
    backend.decoder = decoders.Fuse()  # characters join back without spaces ("Oslo", not "O s l o")
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, pad_token="<pad>", eos_token="<eos>", unk_token="<unk>", bos_token="<eos>"
    )


def tiny_model(architecture: str = "llama", *, seed: int = 0, vocab_size: int = 100) -> torch.nn.Module:
    """A randomly initialised ~0.1M-parameter causal LM of the given architecture ("llama", "qwen2", "gpt2")."""
    common = dict(vocab_size=vocab_size, pad_token_id=0, eos_token_id=1, bos_token_id=1)
    torch.manual_seed(seed)
    if architecture in ("llama", "qwen2"):
        kwargs = dict(
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=TINY_LAYERS,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=512,
            tie_word_embeddings=False,
            **common,
        )
        if architecture == "llama":
            return LlamaForCausalLM(LlamaConfig(**kwargs))
        return Qwen2ForCausalLM(Qwen2Config(**kwargs))
    if architecture == "gpt2":
        return GPT2LMHeadModel(GPT2Config(n_embd=64, n_layer=TINY_LAYERS, n_head=4, n_positions=512, **common))
    raise InterferenceError(f"unknown tiny architecture {architecture!r} (choose llama, qwen2 or gpt2)")

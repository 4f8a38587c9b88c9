"""Pretraining a small Llama-style model on the world's text until it knows the world's facts (SPEC §6).

Each epoch shuffles the world's lines (statements and QA forms), packs `lines_per_sequence` of them per sequence
(each line ends with the EOS token, as documents do in pretraining, so the model also sees several facts in one
context and knows that EOS ends an answer), and takes AdamW steps on the next-token loss of every token. Every
`eval_every` epochs a cheap teacher-forced check (are all answer tokens and the closing EOS the argmax?) runs;
once it reaches the target, the real measure — greedy decoding of the QA form
"Q: <question>\\nA:", exact match — decides whether to stop.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from tqdm.auto import tqdm
from transformers import LlamaConfig, LlamaForCausalLM

from ..facts.answers import exact_match
from ..facts.fact import Fact
from ..models.generation import generate_answers, inference_mode
from ..models.views import right_pad
from .build import qa_form
from .config import WorldConfig


def make_model(config: WorldConfig, tokenizer) -> LlamaForCausalLM:
    """A freshly initialised Llama-style decoder of `config`'s size over `tokenizer`'s vocabulary (seeded)."""
    torch.manual_seed(config.seed)
    llama = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=config.d_model,
        intermediate_size=config.d_ff,
        num_hidden_layers=config.n_layers,
        num_attention_heads=config.n_heads,
        num_key_value_heads=config.n_heads,
        max_position_embeddings=max(128, 32 * config.lines_per_sequence),
        tie_word_embeddings=config.tie_embeddings,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.eos_token_id,
    )
    return LlamaForCausalLM(llama)


def _newline_id(tokenizer) -> int:
    ids = tokenizer.encode("\n", add_special_tokens=False)
    if len(ids) != 1:
        raise ValueError("the world tokenizer must encode a bare newline as one token")
    return ids[0]


def encode_lines(tokenizer, lines: Sequence[str]) -> list[list[int]]:
    """Token ids of each line followed by the EOS token (fine-tuning targets end with EOS too)."""
    _newline_id(tokenizer)  # QA forms hold a newline: it must be a token of its own
    return [ids + [tokenizer.eos_token_id] for ids in tokenizer(list(lines), add_special_tokens=False)["input_ids"]]


def epoch_batches(
    encoded: Sequence[list[int]], config: WorldConfig, epoch: int, pad: int
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The (input_ids, attention_mask) batches of one epoch: lines shuffled (seeded by seed and epoch), packed."""
    generator = torch.Generator().manual_seed(config.seed * 100_003 + epoch)
    order = torch.randperm(len(encoded), generator=generator).tolist()
    k = config.lines_per_sequence
    sequences = [sum((encoded[i] for i in order[s : s + k]), []) for s in range(0, len(order), k)]
    return [right_pad(sequences[s : s + config.batch_size], pad) for s in range(0, len(sequences), config.batch_size)]


def lm_loss(logits: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Mean next-token cross-entropy over every position whose target is a real (non-pad) token."""
    targets = input_ids[:, 1:].masked_fill(attention_mask[:, 1:] == 0, -100)
    return torch.nn.functional.cross_entropy(
        logits[:, :-1].reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=-100
    )


def lr_factor(step: int, config: WorldConfig, total_steps: int) -> float:
    """Learning-rate multiplier at `step`: linear warm-up, then constant or cosine decay to 0.1."""
    if step < config.warmup_steps:
        return (step + 1) / config.warmup_steps
    if config.schedule == "constant":
        return 1.0
    progress = min(1.0, (step - config.warmup_steps) / max(1, total_steps - config.warmup_steps))
    return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress))


def teacher_forced_known(model, tokenizer, facts: Sequence[Fact], *, batch_size: int = 256) -> list[bool]:
    """Per fact: after the QA form, is every answer token and the closing EOS the model's argmax?

    Equals greedy decoding giving exactly " <object>" then EOS; a fast lower bound of `greedy_known`.
    """
    eos = tokenizer.eos_token_id
    prompts = tokenizer([qa_form(f) for f in facts], add_special_tokens=False)["input_ids"]
    answers = tokenizer([" " + f.object for f in facts], add_special_tokens=False)["input_ids"]
    out: list[bool] = []
    with inference_mode(model):
        for start in range(0, len(facts), batch_size):
            rows, spans = [], []
            for p, a in zip(prompts[start : start + batch_size], answers[start : start + batch_size], strict=True):
                rows.append(p + a + [eos])
                spans.append((len(p), len(p) + len(a) + 1))
            ids, mask = right_pad(rows, tokenizer.pad_token_id)
            predicted = model(input_ids=ids, attention_mask=mask).logits.argmax(-1)
            for row, (lo, hi) in enumerate(spans):
                out.append(bool((predicted[row, lo - 1 : hi - 1] == ids[row, lo:hi]).all()))
    return out


def greedy_known(model, tokenizer, facts: Sequence[Fact], *, batch_size: int = 128) -> list[bool]:
    """Per fact: does greedy decoding after "Q: <question>\\nA:" give an accepted answer (exact match)?"""
    longest = max(len(tokenizer.encode(" " + a, add_special_tokens=False)) for f in facts for a in f.answers)
    answers = generate_answers(
        model, tokenizer, [qa_form(f) for f in facts], max_new_tokens=longest + 2, batch_size=batch_size
    )
    return [exact_match(a[0], f.answers) for a, f in zip(answers, facts, strict=True)]


@dataclass
class PretrainResult:
    """What pretraining produced: the model, per-fact greedy correctness, and how it got there."""

    model: LlamaForCausalLM
    known: list[bool]
    knowledge: float
    epochs: int
    steps: int
    seconds: float
    history: list[dict] = field(default_factory=list)


def pretrain(
    config: WorldConfig, tokenizer, lines: Sequence[str], facts: Sequence[Fact], *, progress: bool = True
) -> PretrainResult:
    """Train a fresh model on `lines` until greedy QA accuracy on `facts` reaches the target (or max_epochs)."""
    start = time.perf_counter()
    model = make_model(config, tokenizer)
    encoded = encode_lines(tokenizer, lines)
    steps_per_epoch = math.ceil(math.ceil(len(encoded) / config.lines_per_sequence) / config.batch_size)
    total_steps = steps_per_epoch * config.max_epochs
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, betas=(0.9, 0.98), weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, config, total_steps))
    history: list[dict] = []
    known: list[bool] = [False] * len(facts)
    step = epoch = 0
    bar = tqdm(total=config.max_epochs, desc="pretraining world", unit="epoch", disable=not progress)
    model.train()
    for epoch in range(1, config.max_epochs + 1):
        total = 0.0
        batches = epoch_batches(encoded, config, epoch, tokenizer.pad_token_id)
        for ids, mask in batches:
            loss = lm_loss(model(input_ids=ids, attention_mask=mask).logits, ids, mask)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            step += 1
            total += loss.item()
        record = {"epoch": epoch, "step": step, "loss": total / len(batches)}
        done = False
        if epoch % config.eval_every == 0 or epoch == config.max_epochs:
            forced = teacher_forced_known(model, tokenizer, facts)
            record["teacher_forced"] = sum(forced) / len(forced)
            if record["teacher_forced"] >= config.knowledge_target or epoch == config.max_epochs:
                known = greedy_known(model, tokenizer, facts)
                record["knowledge"] = sum(known) / len(known)
                done = record["knowledge"] >= config.knowledge_target
            bar.set_postfix(loss=f"{record['loss']:.3f}", knowledge=f"{100 * record['teacher_forced']:.1f}%")
        else:
            bar.set_postfix(loss=f"{record['loss']:.3f}")
        history.append(record)
        bar.update(1)
        if done:
            break
    bar.close()
    model.eval()
    if "knowledge" not in history[-1]:
        known = greedy_known(model, tokenizer, facts)
    knowledge = sum(known) / len(known)
    return PretrainResult(model, known, knowledge, epoch, step, time.perf_counter() - start, history)

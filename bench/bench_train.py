"""Epoch time of the training loop: self-distillation against SFT (with and without the teacher cache), and our loop
against a plain PyTorch loop on the same model, batches and optimiser.

    python -m bench.bench_train [--facts 320] [--d-model 128] [--layers 4] [--vocab 384] [--epochs 2] [--rounds 3]
                                [--threads 1] [--model NAME] [--variants NAME ...] [--out bench_train.json]

By default the model is a small randomly initialised Llama with a character tokenizer; `--model` takes any name
`interference.models.load_model` takes (e.g. smollm2-135m) and times the same loop on that model and its tokenizer,
where the costs of the remedies at a real model's size are decided.

One process. The variants run round-robin (`--rounds` times, `--epochs` epochs each) so that load from other
processes hits them alike. Epoch times cover the optimisation only (evaluation excluded) and are read on the
process's CPU clock by default (`--clock cpu`): with one thread that is the work done, whatever other processes
take of the machine; `--clock wall` measures elapsed time (for an otherwise idle machine). A variant's time is its
fastest epoch (as `timeit` does; medians are reported too), and the ratios are between the fastest epochs.
Nothing is asserted: timings depend on the machine.
"""

from __future__ import annotations

import argparse
import copy
import random
import statistics
import time
from types import SimpleNamespace

import torch
from transformers import LlamaConfig, LlamaForCausalLM

from interference.facts import Fact
from interference.facts.examples import Examples, epoch_order
from interference.io import atomic
from interference.io.errors import InterferenceError
from interference.models import char_tokenizer, load_model
from interference.train import TrainConfig, build_teacher_cache, make_snapshot, train
from interference.train import loop as loop_module
from interference.train.losses import answer_cross_entropy

COUNTRIES = ["Norway", "Italy", "Peru", "Chile", "Kenya", "Japan", "Spain", "Nepal", "Ghana", "Cuba", "Oman", "Fiji"]
#: (name, method, teacher_cache) of the variants run through `interference.train.train`.
#: (name, method, teacher cache, other TrainConfig options): the remedies of `interference.studies.remedies` too.
LOOP_VARIANTS = [
    ("sft", "sft", "full", {}),
    ("self_distill cache=full", "self_distill", "full", {}),
    ("self_distill cache=topk", "self_distill", "topk", {}),
    ("self_distill cache=none", "self_distill", "none", {}),
    ("sft + ewc", "sft", "full", {"ewc_lambda": 1.0}),
    ("sft + replay 0.25", "sft", "full", {"replay_fraction": 0.25}),
    ("lora rank 8", "sft", "full", {"lora_rank": 8}),
]
PLAIN = "plain PyTorch sft"
#: (label, numerator, denominator) of the ratios reported, each where both variants ran.
RATIOS = [
    ("self_distill cache=full / sft", "self_distill cache=full", "sft"),
    ("self_distill cache=topk / sft", "self_distill cache=topk", "sft"),
    ("self_distill cache=none / sft", "self_distill cache=none", "sft"),
    ("our sft loop / plain PyTorch", "sft", PLAIN),
    ("sft + ewc / sft", "sft + ewc", "sft"),
    ("sft + replay 0.25 / sft (1 / 0.75 = 1.33 more examples)", "sft + replay 0.25", "sft"),
    ("lora rank 8 / sft", "lora rank 8", "sft"),
]


def make_facts(n: int, seed: int = 0) -> list[Fact]:
    """`n` country facts about distinct made-up place names."""
    rng = random.Random(seed)
    facts, seen = [], set()
    while len(facts) < n:
        name = "".join(rng.choice("bcdfghklmnprstvz") + rng.choice("aeiou") for _ in range(rng.randint(2, 4))).title()
        if name in seen:
            continue
        seen.add(name)
        facts.append(Fact(name, "P17", rng.choice(COUNTRIES), f"Which country is {name} located in?"))
    return facts


def make_model(args, vocab_size: int) -> LlamaForCausalLM:
    torch.manual_seed(0)
    return LlamaForCausalLM(
        LlamaConfig(
            vocab_size=vocab_size,
            hidden_size=args.d_model,
            intermediate_size=4 * args.d_model,
            num_hidden_layers=args.layers,
            num_attention_heads=4,
            num_key_value_heads=4,
            max_position_embeddings=256,
            tie_word_embeddings=False,
            pad_token_id=0,
            eos_token_id=1,
            bos_token_id=1,
        )
    )


def plain_epoch(model, examples: Examples, config: TrainConfig, optimizer, epoch: int, clock) -> float:
    """One SFT epoch written as the textbook PyTorch loop; returns its time on `clock`."""
    params = [p for p in model.parameters() if p.requires_grad]
    model.train()
    start = clock()
    for index in epoch_order(len(examples), config.batch_size, seed=config.seed, epoch=epoch):
        batch = examples.batch(index)
        logits = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits
        loss = answer_cross_entropy(logits, batch.labels)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, config.max_grad_norm)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return clock() - start


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--facts", type=int, default=320, help="training facts (half D_known, half D_unknown)")
    parser.add_argument("--d-model", type=int, default=128)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--vocab", type=int, default=384, help="model vocabulary (the tokenizer uses the first ~100)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=2, help="epochs per variant and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--topk", type=int, default=32, help="k of the top-k teacher cache")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--clock", choices=("cpu", "wall"), default="cpu", help="CPU time of this process, or elapsed")
    parser.add_argument("--model", default=None, help="time this model (any name load_model takes) and its tokenizer "
                        "instead of the random Llama; --d-model, --layers and --vocab are then unused")
    parser.add_argument("--variants", nargs="+", default=None, metavar="NAME",
                        help="run only these variants (sft always runs: every ratio is to it); default: all")
    parser.add_argument("--out", default=None, help="write the results here as JSON (atomically)")
    args = parser.parse_args(argv)
    names = [name for name, *_ in LOOP_VARIANTS] + [PLAIN]
    unknown_variants = [name for name in args.variants or () if name not in names]
    if unknown_variants:
        parser.error(f"unknown variant {unknown_variants[0]!r}; choose from: {', '.join(map(repr, names))}")
    chosen = set(args.variants or names) | {"sft"}  # every ratio is to sft
    torch.set_num_threads(args.threads)
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    # The loop times its epochs with time.perf_counter(); point it at the chosen clock.
    loop_module.time = SimpleNamespace(perf_counter=clock)

    if args.model:
        try:
            base, tokenizer = load_model(args.model)
        except InterferenceError as err:
            parser.error(str(err))

        def fresh():  # every variant trains from the snapshot; the copy only gives it its own parameters
            return copy.deepcopy(base)
    else:
        tokenizer = char_tokenizer()

        def fresh():
            return make_model(args, args.vocab)

        base = fresh()
    facts = make_facts(args.facts + 16)
    known, unknown, held = facts[: args.facts // 2], facts[args.facts // 2 : args.facts], facts[args.facts :]
    n_params = sum(p.numel() for p in base.parameters())
    common = dict(
        epochs=args.epochs,
        lr=1e-3,
        batch_size=args.batch_size,
        start="snapshot",
        teacher_topk=args.topk,
        eval_batch_size=128,
        eval_max_new_tokens=8,
        log_every=10,
    )
    snapshot = make_snapshot(base, tokenizer, known, TrainConfig(**common), progress=False)
    caches = {
        mode: build_teacher_cache(
            base,
            tokenizer,
            TrainConfig(method="self_distill", teacher_cache=mode, **common),
            snapshot,
            known=known,
            unknown=unknown,
            progress=False,
        )
        for mode in ("full", "topk")
        if f"self_distill cache={mode}" in chosen
    }
    examples = Examples(tokenizer, known + unknown)

    variants = [variant for variant in LOOP_VARIANTS if variant[0] in chosen]
    times: dict[str, list[float]] = {name: [] for name in names if name in chosen}
    for _ in range(args.rounds):
        for name, method, cache, options in variants:
            model = fresh()
            config = TrainConfig(method=method, teacher_cache=cache, **common, **options)
            result = train(
                model,
                tokenizer,
                config,
                known=known,
                unknown=unknown,
                held=held,
                snapshot=snapshot,
                teacher_cache=caches.get(cache) if method == "self_distill" else None,
                progress=False,
            )
            times[name] += [r.train_seconds for r in result.history[1:]]
        if PLAIN not in chosen:
            continue
        model = fresh()
        snapshot.load_into(model)
        config = TrainConfig(method="sft", **common)
        optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
        times[PLAIN] += [plain_epoch(model, examples, config, optimizer, e, clock) for e in range(1, args.epochs + 1)]

    best = {name: min(t) for name, t in times.items()}
    median = {name: statistics.median(t) for name, t in times.items()}
    ratios = {
        label: best[numerator] / best[denominator]
        for label, numerator, denominator in RATIOS
        if numerator in best and denominator in best
    }
    architecture = base.config
    setup = {
        "model": args.model or "random Llama",
        "facts": len(examples),
        "seq_len": int(examples.lengths.max()),
        "d_model": architecture.hidden_size,
        "layers": architecture.num_hidden_layers,
        "vocab": architecture.vocab_size,
        "parameters": n_params,
        "batch_size": args.batch_size,
        "steps_per_epoch": -(-len(examples) // args.batch_size),
        "topk": args.topk,
        "threads": args.threads,
        "epochs_per_round": args.epochs,
        "rounds": args.rounds,
        "clock": args.clock,
    }
    print(
        f"{setup['model']}: d_model {setup['d_model']}, {setup['layers']} layers, vocab {setup['vocab']} "
        f"({n_params / 1e6:.2f}M parameters); "
        f"{len(examples)} facts, batch {args.batch_size}, {torch.get_num_threads()} threads, {args.clock} clock"
    )
    print(f"{'variant':28s} {'epoch s: min':>12s} {'median':>8s} {'max':>8s}")
    for name, t in times.items():
        print(f"{name:28s} {best[name]:12.3f} {median[name]:8.3f} {max(t):8.3f}")
    for name, value in ratios.items():
        print(f"{name:34s} {value:6.3f}x")
    report = {
        "setup": setup,
        "epoch_seconds": times,
        "min_epoch_seconds": best,
        "median_epoch_seconds": median,
        "ratios": ratios,
    }
    if args.out:
        atomic.write_json(args.out, report)
    return report


if __name__ == "__main__":
    main()

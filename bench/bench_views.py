"""Cost of reading the residual stream through each backend, relative to a raw HF forward with hidden states.

    python -m bench.bench_views [--model smollm2-135m] [--batch 8] [--repeats 5]

Same model, same inputs, one process; reports medians and ratios (never asserted: timings depend on the machine).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from interference.models import SMOLLM2, load_model
from interference.views import BACKENDS, encode, residual_stream

PROMPT = "Answer the following question. Which country is Bergadena located in?\nAnswer:"


def _median_seconds(fn, repeats: int) -> float:
    fn()  # warm-up (builds the bridge / envoy once)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=SMOLLM2)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    model, tokenizer = load_model(args.model)
    ids, mask = encode(tokenizer, [PROMPT] * args.batch)

    def raw():
        with torch.no_grad():
            model(input_ids=ids, attention_mask=mask, output_hidden_states=True)

    base = _median_seconds(raw, args.repeats)
    print(f"model {args.model}, batch {args.batch} x {ids.shape[1]} tokens, {torch.get_num_threads()} threads")
    print(f"{'raw HF forward (hidden states)':34s} {base * 1e3:8.1f} ms   1.00x")
    # TransformerLens last: its bridge switches the model to eager attention in place.
    for backend in ("hf", "nnsight", "transformer_lens"):
        assert backend in BACKENDS
        t = _median_seconds(lambda b=backend: residual_stream(model, ids, mask, backend=b), args.repeats)
        print(f"{'residual_stream backend=' + backend:34s} {t * 1e3:8.1f} ms   {t / base:.2f}x")


if __name__ == "__main__":
    main()

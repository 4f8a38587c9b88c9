"""Cost of reading and patching activations through each backend, relative to a raw HF forward with hidden states.

    python -m bench.bench_views [--model smollm2-135m] [--batch 8] [--repeats 5]

Same model, same inputs, one process; reports medians and ratios (never asserted: timings depend on the machine):
- `residual_stream backend=...`: every layer's residual stream;
- `patch backend=...`: one forward pass with the last token's residual stream at the middle layer patched;
- `first call backend=...`: the one-off cost of the first view through a wrapping backend (building the shadow
  module tree that shares the model's weights, and the bridge or envoy over it).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from interference.models import SMOLLM2, load_model
from interference.models.views import BACKENDS, Patch, encode, last_positions, position_mask, residual_stream, run_sites

PROMPT = "Answer the following question. Which country is Bergadena located in?\nAnswer:"


def _median_seconds(fn, repeats: int) -> float:
    fn()  # warm-up (builds the bridge / envoy once)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _once(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=SMOLLM2)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    model, tokenizer = load_model(args.model)
    ids, mask = encode(tokenizer, [PROMPT] * args.batch)
    layer = model.config.num_hidden_layers // 2
    values = torch.randn(*ids.shape, model.config.hidden_size)
    patch = Patch(layer, "resid", values, position_mask(last_positions(mask), ids.shape[1]))

    def raw():
        with torch.no_grad():
            model(input_ids=ids, attention_mask=mask, output_hidden_states=True)

    base = _median_seconds(raw, args.repeats)
    print(f"model {args.model}, batch {args.batch} x {ids.shape[1]} tokens, {torch.get_num_threads()} threads")
    print(f"{'raw HF forward (hidden states)':34s} {base * 1e3:8.1f} ms   1.00x")
    for backend in BACKENDS:
        if backend != "hf":
            first = _once(lambda b=backend: residual_stream(model, ids, mask, backend=b))
            print(f"{'first call backend=' + backend:34s} {first * 1e3:8.1f} ms   {first / base:.2f}x")
        t = _median_seconds(lambda b=backend: residual_stream(model, ids, mask, backend=b), args.repeats)
        print(f"{'residual_stream backend=' + backend:34s} {t * 1e3:8.1f} ms   {t / base:.2f}x")
        t = _median_seconds(lambda b=backend: run_sites(model, ids, mask, patches=[patch], backend=b), args.repeats)
        print(f"{'patch backend=' + backend:34s} {t * 1e3:8.1f} ms   {t / base:.2f}x")


if __name__ == "__main__":
    main()

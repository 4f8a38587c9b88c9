"""One SmolLM2-135M condition on one GPU in float32, in bf16 autocast and with bfloat16 weights: time and outcome.

    python -m bench.bench_gpu_precision [--method self_distill] [--seed 0] [--knowledge TABLE] [--n-known 200]
                                        [--n-unknown 300] [--n-held 200] [--out reports/bench_gpu_precision.json]

Each variant trains the same condition (`interference.studies.setup.run_condition`: the snapshot, then the method to
matched acquisition, evaluation included) from a fresh copy of the model: `float32` (weights and math in float32,
matmuls at torch's default precision), `bf16-autocast` (float32 weights, `mixed_precision="bf16"` through
accelerate) and `bfloat16` (weights in bfloat16, no autocast). float32 runs first and again last: the first run
pays the GPU's warm-up, the last is the one the ratios use. Runs can stop at different steps (matched acquisition),
so the ratios are per optimiser step as well as per condition. Nothing is asserted; without CUDA it refuses.
"""

from __future__ import annotations

import argparse
import sys
import time

import torch

from bench.bench_gpu_table1 import add_setup_options, refuse_without_cuda, setup_settings
from interference.io import atomic

#: (label, weights' dtype, autocast), in the order run; float32 twice (warm-up, then measured).
VARIANTS = (("float32 (warm-up)", "float32", "no"), ("bf16-autocast", "float32", "bf16"),
            ("bfloat16", "bfloat16", "no"), ("float32", "float32", "no"))


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.bench_gpu_precision", description=__doc__.split("\n\n")[0])
    add_setup_options(p)
    p.add_argument("--method", default="self_distill", help="a method of the forgetting study")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="reports/bench_gpu_precision.json")
    return p.parse_args(argv)


def run_variant(args: argparse.Namespace, dtype: str, autocast: str, device: torch.device) -> dict:
    """Train the condition once with these weights and autocast; its times, steps, accuracies and peak memory."""
    from interference.studies.forgetting import METHODS
    from interference.studies.setup import ExperimentConfig, make_setup, run_condition

    config = ExperimentConfig.build(**setup_settings(args), seeds=(args.seed,), device=str(device), dtype=dtype,
                                    mixed_precision=autocast)
    setup = make_setup(config, args.seed, progress=False)
    torch.cuda.reset_peak_memory_stats(device)
    torch.cuda.synchronize(device)
    start = time.perf_counter()
    condition = run_condition(setup, args.method, config.train_config(args.seed, **METHODS[args.method]))
    torch.cuda.synchronize(device)
    seconds, history = time.perf_counter() - start, condition.result.history
    train_s = sum(r.train_seconds for r in history)
    summary = condition.result.summary()
    return {"dtype": dtype, "autocast": autocast, "condition_s": round(seconds, 2), "train_s": round(train_s, 2),
            "eval_s": round(sum(r.eval_seconds for r in history), 2), "steps": summary["steps"],
            "ms_per_step": round(1000 * train_s / max(1, summary["steps"]), 2), "epochs": summary["epochs"],
            "stopped": summary["stopped"], "new_acc": summary["new_acc"], "held_acc_start": summary["held_acc_start"],
            "held_acc_final": summary["held_acc_final"], "task_acc": summary["task_acc"],
            "peak_memory_gib": round(torch.cuda.max_memory_allocated(device) / 2**30, 2)}


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if refuse_without_cuda("bench_gpu_precision"):
        return 2
    from interference.io.errors import InterferenceError
    from interference.models.devices import device_description, resolve_device

    try:
        device = resolve_device(args.device)
        runs = {label: run_variant(args, dtype, autocast, device) for label, dtype, autocast in VARIANTS}
    except InterferenceError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    base = runs["float32"]
    ratios = {label: {"condition": round(r["condition_s"] / base["condition_s"], 3),
                      "per_step": round(r["ms_per_step"] / base["ms_per_step"], 3)}
              for label, r in runs.items() if label != "float32"}
    result = {"device": device_description(device), "torch": torch.__version__, "method": args.method,
              "seed": args.seed, "float32_matmul_precision": torch.get_float32_matmul_precision(),
              "settings": setup_settings(args), "runs": runs, "ratio_to_float32": ratios}
    atomic.write_json(args.out, result)
    print(f"{result['device']}: {args.method}, seed {args.seed}")
    for label, r in runs.items():
        ratio = ratios.get(label, {"condition": 1.0, "per_step": 1.0})
        print(f"  {label:<18} {r['condition_s']:7.1f} s ({ratio['condition']:.2f}x)  {r['ms_per_step']:6.1f} ms/step "
              f"({ratio['per_step']:.2f}x)  {r['steps']} steps  new {r['new_acc']:.3f}  held "
              f"{r['held_acc_start']:.3f} -> {r['held_acc_final']:.3f}  {r['peak_memory_gib']:.1f} GiB")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

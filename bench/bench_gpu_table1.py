"""Wall time of Table 1 on one GPU: SmolLM2-135M, six methods x five seeds, through the forgetting study itself.

    python -m bench.bench_gpu_table1 [--knowledge ../shared/data/slick/smollm2-135m-fast.jsonl] [--seeds 0 1 2 3 4]
                                     [--n-known 200] [--n-unknown 300] [--n-held 200] [--min-known-fraction 0.1]
                                     [--dtype float32] [--out reports/bench_gpu_table1.json]

Runs `interference.studies.forgetting.run_forgetting` (sft, self_distill, l2, attention-only, ffn-only, known-only,
every one from the same snapshot, matched acquisition) on CUDA, as `python -m analyses.forgetting --device cuda`
would, and times the whole study, the set-up (model load, splits) and every condition. The goal is the whole
Table 1 in at most 5 minutes; the reference is about 20 s a condition (10-12 min for 30 conditions). Nothing is
asserted. Without CUDA it refuses with one line: it measures a GPU, not a CPU.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

from interference.io import atomic

GOAL_S = 300.0  # the whole table on one GPU
REFERENCE_PER_CONDITION_S = 20.0  # one condition measured with the library on an H200 before this benchmark
TABLE = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "slick" / "smollm2-135m-fast.jsonl"


def add_setup_options(p: argparse.ArgumentParser) -> None:
    """The model, facts, sizes and training options shared by the GPU benchmarks."""
    p.add_argument("--model", default="smollm2-135m")
    p.add_argument("--knowledge", default=str(TABLE), help="SLiCK table of the model, or an EntityQuestions folder")
    p.add_argument("--n-known", type=int, default=200)
    p.add_argument("--n-unknown", type=int, default=300)
    p.add_argument("--n-held", type=int, default=200)
    p.add_argument("--min-known-fraction", type=float, default=0.1,
                   help="0.1 keeps the four relations of the shared table (0.3 keeps only P495: 185 HighlyKnown)")
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--target-new-acc", type=float, default=0.9)
    p.add_argument("--device", default="cuda", help="cuda or cuda:N")


def setup_settings(args: argparse.Namespace) -> dict:
    """`ExperimentConfig.build` settings from `add_setup_options`' values."""
    return dict(model=args.model, data=args.knowledge, n_known=args.n_known, n_unknown=args.n_unknown,
                n_held=args.n_held, min_known_fraction=args.min_known_fraction, lr=args.lr,
                batch_size=args.batch_size, epochs=args.epochs, target_new_acc=args.target_new_acc)


def refuse_without_cuda(name: str) -> bool:
    """Print the one-line refusal and return True when this machine has no CUDA device."""
    if torch.cuda.is_available():
        return False
    print(f"error: {name} measures a GPU and this machine has no CUDA device", file=sys.stderr)
    return True


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.bench_gpu_table1", description=__doc__.split("\n\n")[0])
    add_setup_options(p)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    p.add_argument("--methods", nargs="+", default=None, help="default: all six of Table 1")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"], help="the weights' dtype")
    p.add_argument("--mixed-precision", default="no", choices=["no", "bf16"], help="autocast in training")
    p.add_argument("--out", default="reports/bench_gpu_table1.json")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if refuse_without_cuda("bench_gpu_table1"):
        return 2
    from interference.io.errors import InterferenceError
    from interference.models.devices import device_description, resolve_device
    from interference.studies.forgetting import METHODS, run_forgetting
    from interference.studies.setup import ExperimentConfig

    try:
        device = resolve_device(args.device)
        config = ExperimentConfig.build(**setup_settings(args), seeds=tuple(args.seeds), device=str(device),
                                        dtype=args.dtype, mixed_precision=args.mixed_precision)
        methods = tuple(args.methods or METHODS)
        torch.cuda.synchronize(device)
        start = time.perf_counter()
        study = run_forgetting(config, methods, progress=False)
        torch.cuda.synchronize(device)
        total = time.perf_counter() - start
    except InterferenceError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    per_method = {m: [r["seconds"] for r in study.of(m)] for m in methods}
    conditions = sum(len(v) for v in per_method.values())
    in_conditions = sum(sum(v) for v in per_method.values())
    result = {
        "device": device_description(device),
        "dtype": args.dtype,
        "mixed_precision": args.mixed_precision,
        "torch": torch.__version__,
        "config": config.to_dict(),
        "methods": list(methods),
        "conditions": conditions,
        "wall_s": round(total, 2),
        "outside_conditions_s": round(total - in_conditions, 2),  # model load, splits, snapshots' drift reads
        "per_method_median_s": {m: round(statistics.median(v), 2) for m, v in per_method.items()},
        "per_condition_mean_s": round(in_conditions / conditions, 2),
        "goal_s": GOAL_S,
        "wall / goal": round(total / GOAL_S, 3),
        "per condition / reference": round(in_conditions / conditions / REFERENCE_PER_CONDITION_S, 3),
        "peak_memory_gib": round(torch.cuda.max_memory_allocated(device) / 2**30, 2),
        "summary": study.summary(),
    }
    atomic.write_json(args.out, result)
    print(f"{result['device']}, {args.dtype} (autocast {args.mixed_precision}): {len(methods)} methods x "
          f"{len(args.seeds)} seeds = {conditions} "
          f"conditions in {total:.1f} s (goal {GOAL_S:.0f} s: {total / GOAL_S:.2f}x); per condition "
          f"{result['per_condition_mean_s']:.1f} s (reference {REFERENCE_PER_CONDITION_S:.0f} s)")
    for method, seconds in result["per_method_median_s"].items():
        print(f"  {method:<15} median {seconds:6.1f} s")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

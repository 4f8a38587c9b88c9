"""Does the thread count change a run? The same condition trained under 1, 2, … torch threads, bit for bit.

    python -m bench.bench_threads [--model world] [--knowledge TABLE] [--threads 1 2] [--n-known 40]
                                  [--n-unknown 80] [--n-held 40] [--min-known-fraction 0.1] [--method sft]
                                  [--lr 1e-3] [--batch-size 16] [--target 0.9] [--epochs 40] [--seed 0]
                                  [--out reports/bench_threads.json]

Each thread count runs in its own process (`OMP_NUM_THREADS` and `MKL_NUM_THREADS` set before torch starts, and
`torch.set_num_threads`), on the CPU, from the same setup: the seed's facts, the snapshot (one epoch of SFT on
D_known) and one condition trained to the acquisition target. Per thread count it records the SHA-256 of the
snapshot's and of the trained model's parameters, the condition's per-epoch greedy accuracies, where it stopped,
and the process's wall and CPU seconds. Then it says whether every count gave the same bits as the first, and where
they first part: the snapshot, the trained weights, or (different bits, same accuracies) nowhere a report reads.

The embedded world's runs are thread-count independent (docs/reproducibility.md); a real model's matrix products
are large enough for PyTorch and MKL to split their sums between threads, which this measures. The seconds are a
by-product (what a second thread buys), never an assertion. Exit status 0 whether or not the bits agree: this is a
measurement; the JSON and the last line say which.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import resource
import subprocess
import sys
import time

import torch

from bench.bench_acquisition import add_condition_options, condition_config
from interference.io import atomic

CHILD = "--as-child"  # the flag a parent passes to the process it starts for one thread count


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.bench_threads", description=__doc__.split("\n\n")[0])
    add_condition_options(p)
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="torch thread counts to compare")
    p.add_argument("--out", default="reports/bench_threads.json")
    p.add_argument(CHILD, type=int, default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if len(set(args.threads)) < 2 or min(args.threads) < 1:
        p.error(f"--threads needs at least two different counts >= 1, got {args.threads}")
    return args


def weights_sha256(params: dict[str, torch.Tensor]) -> str:
    """SHA-256 over every parameter's name, shape, dtype and bytes, in name order."""
    digest = hashlib.sha256()
    for name in sorted(params):
        tensor = params[name].detach().cpu().contiguous()
        digest.update(f"{name}{tuple(tensor.shape)}{tensor.dtype}".encode())
        digest.update(tensor.view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()


def run_one(args: argparse.Namespace, threads: int) -> dict:
    """The child's work: one setup, its snapshot and one condition under `threads` torch threads."""
    from interference.studies.setup import load_base, make_setup, run_condition

    torch.set_num_threads(threads)
    start = time.perf_counter()
    config = condition_config(args, acquisition_check="teacher_forced")
    setup = make_setup(config, args.seed, base=load_base(config, progress=False), progress=False)
    train = config.train_config(args.seed, method=args.method)
    snapshot = setup.snapshot(train)
    condition = run_condition(setup, args.method, train)
    result, usage = condition.result, resource.getrusage(resource.RUSAGE_SELF)
    return {"threads": threads, "torch_threads": torch.get_num_threads(),
            "snapshot_sha256": weights_sha256(snapshot.params),
            "weights_sha256": weights_sha256(dict(condition.model.named_parameters())),
            "epochs": result.epochs, "stopped": result.stopped,
            "curves": {split: result.curve(split) for split in ("known", "unknown", "held")},
            "wall_seconds": round(time.perf_counter() - start, 2),
            "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 2)}


def spawn(argv: list[str], threads: int) -> dict:
    """Run this script for one thread count in a fresh process (the thread pools are sized at torch's start)."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    done = subprocess.run([sys.executable, "-m", "bench.bench_threads", *argv, CHILD, str(threads)], env=env,
                          stdout=subprocess.PIPE, text=True)
    if done.returncode:
        raise SystemExit(f"error: the run under {threads} thread(s) failed (exit {done.returncode})")
    return json.loads(done.stdout.strip().splitlines()[-1])


def compare(runs: list[dict]) -> dict:
    """Where each run first parts from the first run: "same bits", "snapshot", "trained weights" (same snapshot),
    and whether the accuracies a report reads (curves, epochs, stop) still agree."""
    first, verdicts = runs[0], {}
    for run in runs[1:]:
        if run["snapshot_sha256"] != first["snapshot_sha256"]:
            parts = "snapshot"
        elif run["weights_sha256"] != first["weights_sha256"]:
            parts = "trained weights"
        else:
            parts = "same bits"
        same_numbers = all(run[k] == first[k] for k in ("curves", "epochs", "stopped"))
        verdicts[str(run["threads"])] = {"parts_at": parts, "same_accuracies": same_numbers}
    return verdicts


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse(argv)
    if args.as_child is not None:
        print(json.dumps(run_one(args, args.as_child)))
        return 0
    from interference.io.errors import InterferenceError

    try:
        condition_config(args)  # bad options: one line here, before any child starts
    except InterferenceError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    runs = []
    for threads in args.threads:
        print(f"training under {threads} thread(s) …", file=sys.stderr, flush=True)
        runs.append(spawn(argv, threads))
    verdicts = compare(runs)
    result = {"machine": platform.processor() or platform.machine(), "torch": torch.__version__,
              "model": args.model, "method": args.method, "sizes": [args.n_known, args.n_unknown, args.n_held],
              "lr": args.lr, "batch_size": args.batch_size, "target": args.target, "seed": args.seed,
              "runs": runs, "against_first": verdicts,
              "identical": all(v["parts_at"] == "same bits" for v in verdicts.values())}
    atomic.write_json(args.out, result)
    for run in runs:
        print(f"  {run['threads']} thread(s): snapshot {run['snapshot_sha256'][:16]}  trained "
              f"{run['weights_sha256'][:16]}  held {run['curves']['held'][-1]:.3f}  new "
              f"{run['curves']['unknown'][-1]:.3f}  {run['epochs']} epochs  {run['wall_seconds']:.0f} s wall")
    for threads, verdict in verdicts.items():
        print(f"  {threads} vs {runs[0]['threads']} thread(s): "
              + ("bit-identical" if verdict["parts_at"] == "same bits" else
                 f"different bits from the {verdict['parts_at']} on; accuracies "
                 + ("the same" if verdict["same_accuracies"] else "differ")))
    print(f"{'identical' if result['identical'] else 'NOT identical'} across {args.threads} threads; "
          f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

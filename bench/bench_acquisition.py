"""What matched acquisition costs: a training step with acquisition checks, as a ratio to a pure training step.

    python -m bench.bench_acquisition [--model world] [--knowledge TABLE] [--n-known 40] [--n-unknown 80]
                                      [--n-held 40] [--method sft] [--lr 1e-3] [--batch-size 16] [--target 0.9]
                                      [--epochs 40] [--seed 0] [--device cpu] [--threads 1]
                                      [--out reports/bench_acquisition.json]

Trains one condition of the forgetting study (the quick embedded world by default, or `--model M --knowledge T`)
three times from the same snapshot: to the acquisition target with greedy checks inside each epoch, to the target
with the teacher-forced check (`TrainConfig.acquisition_check`), and for the greedy run's number of epochs with no
target (pure training steps: no check at all). Per run it reports the seconds per step inside epochs (checks
included, the per-epoch greedy evaluations excluded), their ratio to the pure step, the checks' share, and where the
run stopped (steps, greedy acquisition). Goal: the teacher-forced ratio ≤ 1.2 (a check is one forward pass of
D_unknown). Timings are wall seconds of this process; nothing is asserted.
"""

from __future__ import annotations

import argparse
import platform
import sys
from dataclasses import replace

import torch

from interference.io import atomic

GOAL_RATIO = 1.2


def add_condition_options(p: argparse.ArgumentParser) -> None:
    """The condition the CPU benches train: the quick embedded world by default, or `--model M --knowledge T`."""
    p.add_argument("--model", default="world", help="world (the quick embedded world) or a model name/folder")
    p.add_argument("--knowledge", default=None, help="with a real model: its SLiCK table or a splits folder")
    p.add_argument("--n-known", type=int, default=40)
    p.add_argument("--n-unknown", type=int, default=80)
    p.add_argument("--n-held", type=int, default=40)
    p.add_argument("--min-known-fraction", type=float, default=0.1)
    p.add_argument("--method", default="sft", choices=["sft", "self_distill"])
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--target", type=float, default=0.9)
    p.add_argument("--epochs", type=int, default=40)
    p.add_argument("--seed", type=int, default=0)


def condition_config(args: argparse.Namespace, device: str = "cpu", **settings):
    """The `ExperimentConfig` of `add_condition_options`' values (one seed), `settings` on top."""
    from interference.studies.setup import ExperimentConfig

    return ExperimentConfig.build(**{**dict(
        model=args.model, data=args.knowledge, quick=args.model == "world", n_known=args.n_known,
        n_unknown=args.n_unknown, n_held=args.n_held, min_known_fraction=args.min_known_fraction, device=device,
        lr=args.lr, batch_size=args.batch_size, epochs=args.epochs, target_new_acc=args.target,
        seeds=(args.seed,)), **settings})


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.bench_acquisition", description=__doc__.split("\n\n")[0])
    add_condition_options(p)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1, help="torch threads on a CPU")
    p.add_argument("--out", default="reports/bench_acquisition.json")
    return p.parse_args(argv)


def step_seconds(result) -> dict:
    """Seconds per step inside epochs (checks included) over a run's history, and its stop."""
    history = result.history
    steps = history[-1].step
    inside = sum(r.train_seconds for r in history[1:])
    return {"steps": steps, "epochs": result.epochs, "stopped": result.stopped,
            "new_acc_greedy": round(history[-1].accuracy["unknown"], 4),
            "seconds_in_epochs": round(inside, 3), "seconds_per_step": inside / max(steps, 1)}


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    from interference.io.errors import InterferenceError
    from interference.models.devices import device_description, resolve_device
    from interference.studies.setup import load_base, make_setup, run_condition

    torch.set_num_threads(args.threads)
    try:
        device = resolve_device(args.device)
        config = condition_config(args, str(device))
        setup = make_setup(config, args.seed, base=load_base(config, progress=False), progress=False)
    except InterferenceError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    base = config.train_config(args.seed, method=args.method)
    setup.snapshot(base)  # trained once, outside the timed runs
    runs = {}
    for name, train in (("greedy checks", replace(base, acquisition_check="greedy")),
                        ("teacher-forced checks", replace(base, acquisition_check="teacher_forced"))):
        runs[name] = step_seconds(run_condition(setup, name, train).result)
        print(f"{name}: {runs[name]}", file=sys.stderr)
    pure = replace(base, target_new_acc=None, epochs=max(1, runs["greedy checks"]["epochs"]))
    runs["pure steps"] = step_seconds(run_condition(setup, "pure", pure).result)
    reference = runs["pure steps"]["seconds_per_step"]
    for run in runs.values():
        run["ratio_to_pure_step"] = round(run["seconds_per_step"] / reference, 3)
        run["seconds_per_step"] = round(run["seconds_per_step"], 5)
    result = {"device": device_description(device), "machine": platform.processor() or platform.machine(),
              "threads": args.threads, "torch": torch.__version__, "model": args.model, "method": args.method,
              "sizes": [args.n_known, args.n_unknown, args.n_held], "batch_size": args.batch_size,
              "target": args.target, "goal_ratio": GOAL_RATIO, "runs": runs}
    atomic.write_json(args.out, result)
    print(f"{result['device']}, {args.model} {args.method}, {args.n_known}/{args.n_unknown}/{args.n_held} facts, "
          f"batch {args.batch_size}, target {args.target}:")
    for name, run in runs.items():
        print(f"  {name:<22} {run['seconds_per_step'] * 1e3:8.1f} ms/step  x{run['ratio_to_pure_step']:.2f} of a "
              f"pure step  ({run['steps']} steps, stopped: {run['stopped']}, greedy acquisition "
              f"{run['new_acc_greedy']:.3f})")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

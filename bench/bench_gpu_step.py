"""What one SFT step costs, and which lever makes it cheaper: eager, fixed width, torch.compile, CUDA graphs, and
several processes sharing the device.

    python -m bench.bench_gpu_step [--model world] [--knowledge TABLE] [--device cpu] [--steps 20]
                                   [--variants eager fixed compile graphs] [--processes 1 4]
                                   [--out reports/bench_gpu_step.json]

On an H200 a pure SFT step of SmolLM2-135M (batch 16, about 31 tokens) took 113 ms (`results/gpu-h200/2026-12-04`)
where its arithmetic needs under 10 ms: one forward and backward dispatches about 19,000 aten operators, so the step
is bound by Python and the dispatcher. This bench times the step (forward, answer cross-entropy, backward, clipping,
AdamW, as `interference.train` runs it) under each lever, each on a fresh copy of the same model and the same
batches, after warm-up steps (compilation included in `warmup_s`):

- `eager`: the training loop's step (each batch cut to its longest example);
- `fixed`: every batch at the examples' full width (the static shape the next two need);
- `compile`: `torch.compile` of the model (default mode), fixed width;
- `graphs`: `torch.compile(mode="reduce-overhead")` (CUDA graphs), fixed width; CUDA only;
  (`compile` and `graphs` are `TrainConfig.torch_compile` "default" and "reduce-overhead"; `best_mode` picks the
  one the GPU session's runs use, `bench/gpu_suite.sh`)
- `--processes N`: N processes each running `eager` at once on the device: their summed throughput against one
  (with or without MPS, as the device runs; the JSON records `CUDA_MPS_PIPE_DIRECTORY` when set).

Each variant's first-step loss is compared with eager's (`loss_rel_diff`) so that a fast variant that trains
something else shows. Wall times of this machine; nothing is asserted.
"""

from __future__ import annotations

import argparse
import copy
import multiprocessing as mp
import os
import platform
import sys
import time

import torch

from interference.io import atomic

VARIANTS = ("eager", "graphs", "compile", "fixed")
#: The `TrainConfig.torch_compile` mode each compiled variant times.
MODES = {"eager": "none", "compile": "default", "graphs": "reduce-overhead"}


def best_mode(runs: dict, *, margin: float = 0.8, tolerance: float = 1e-3) -> str:
    """The `--torch-compile` mode for the runs that follow a bench: the fastest variant that trains what eager does
    (first loss within `tolerance`) and takes at most `margin` of eager's step, else "none" (eager)."""
    eager = runs.get("eager", {}).get("ms_per_step")
    fast = {v: r["ms_per_step"] for v, r in runs.items()
            if v in MODES and v != "eager" and "ms_per_step" in r and r.get("loss_rel_diff", 1.0) <= tolerance}
    if eager is None or not fast:
        return "none"
    best = min(fast, key=fast.get)
    return MODES[best] if fast[best] <= margin * eager else "none"


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.bench_gpu_step", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="world", help="world (the quick embedded world) or a model name/folder")
    p.add_argument("--knowledge", default=None, help="with a real model: its SLiCK table or a splits folder")
    p.add_argument("--min-known-fraction", type=float, default=0.1)
    p.add_argument("--n-facts", type=int, default=160, help="training facts the batches are drawn from")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--steps", type=int, default=20, help="timed steps per variant")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps first (compilation happens here)")
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    p.add_argument("--processes", type=int, nargs="*", default=[], help="also time N concurrent eager processes")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1, help="torch threads on a CPU")
    p.add_argument("--out", default="reports/bench_gpu_step.json")
    return p.parse_args(argv)


def load(args):
    """(model, examples, device) of the quick world or a real model with its facts."""
    from interference.facts.examples import Examples
    from interference.models.devices import resolve_device
    from interference.studies.setup import ExperimentConfig, load_base, make_setup

    device = resolve_device(args.device)
    half = max(1, args.n_facts // 2)
    config = ExperimentConfig.build(model=args.model, data=args.knowledge, quick=args.model == "world",
                                    n_known=half, n_unknown=args.n_facts - half, n_held=8,
                                    min_known_fraction=args.min_known_fraction, device=str(device), seeds=(0,))
    setup = make_setup(config, 0, base=load_base(config, progress=False), progress=False)
    return setup.model, Examples(setup.tokenizer, setup.known + setup.unknown), device


def time_steps(model, examples, device, args, variant: str) -> dict:
    """Warm-up then timed steps of one variant on a copy of `model`; ms per step and the first step's loss."""
    from interference.facts.examples import epoch_order
    from interference.train.loop import step_forward
    from interference.train.losses import answer_cross_entropy

    model = copy.deepcopy(model).to(device).train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, args.lr, fused=True if device.type == "cuda" else None)
    forward = step_forward(model, MODES.get(variant, "none"))  # compiled as the training loop compiles it
    order, epoch = [], 0
    while len(order) < args.warmup + args.steps:  # full batches only, epoch after epoch
        epoch += 1
        order += [i for i in epoch_order(len(examples), args.batch_size, seed=0, epoch=epoch)
                  if len(i) == args.batch_size]

    def step(index):
        b = examples.batch(index, fixed=variant != "eager").to(device)
        logits = forward(input_ids=b.input_ids, attention_mask=b.attention_mask).logits
        loss = answer_cross_entropy(logits, b.labels)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return loss.detach()

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    start = time.perf_counter()
    first = step(order[0]).item()
    for index in order[1:args.warmup]:
        step(index)
    sync()
    warmup = time.perf_counter() - start
    start = time.perf_counter()
    for index in order[args.warmup:args.warmup + args.steps]:
        step(index)
    sync()
    return {"ms_per_step": 1e3 * (time.perf_counter() - start) / args.steps, "warmup_s": round(warmup, 2),
            "first_loss": first}


def _worker(args, queue, barrier) -> None:
    torch.set_num_threads(args.threads)
    model, examples, device = load(args)
    barrier.wait()  # every process loaded: the timed steps overlap
    queue.put(time_steps(model, examples, device, args, "eager")["ms_per_step"])


def concurrent(args, n: int) -> dict:
    """N processes timing eager steps at once: the slowest's ms per step and the summed steps per second."""
    context = mp.get_context("spawn")
    queue, barrier = context.Queue(), context.Barrier(n)
    workers = [context.Process(target=_worker, args=(args, queue, barrier)) for _ in range(n)]
    for w in workers:
        w.start()
    times = [queue.get() for _ in workers]
    for w in workers:
        w.join()
    return {"processes": n, "ms_per_step": max(times), "steps_per_s": sum(1e3 / t for t in times)}


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    from interference.io.errors import InterferenceError
    from interference.models.devices import device_description

    torch.set_num_threads(args.threads)
    try:
        model, examples, device = load(args)
        if len(examples) < args.batch_size:
            raise InterferenceError(f"{len(examples)} facts cannot fill a batch of {args.batch_size}: raise --n-facts")
    except InterferenceError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    runs, scaling = {}, []
    data = {"device": device_description(device), "machine": platform.machine(), "torch": torch.__version__,
            "model": args.model, "batch_size": args.batch_size, "width": int(examples.input_ids.shape[1]),
            "mps_pipe": os.environ.get("CUDA_MPS_PIPE_DIRECTORY"), "runs": runs, "processes": scaling}
    print(f"{data['device']}, {args.model}, batch {args.batch_size}, full width {data['width']}:", flush=True)
    # eager first, then the concurrent processes (cheap), then the compiled variants (slow to warm up); the JSON is
    # rewritten after each, so a run stopped by a time limit keeps what it measured
    order = ["eager"] * ("eager" in args.variants) + ["processes"] + [v for v in args.variants if v != "eager"]
    for variant in order:
        if variant == "processes":
            one = 1e3 / runs["eager"]["ms_per_step"] if "ms_per_step" in runs.get("eager", {}) else None
            for n in args.processes:
                row = concurrent(args, n)
                row["throughput_vs_one"] = round(row["steps_per_s"] / one, 2) if one else None
                scaling.append(row)
                print(f"  {n} processes: {row['ms_per_step']:.1f} ms/step each, {row['steps_per_s']:.1f} steps/s in "
                      f"all ({row['throughput_vs_one']}x one)", flush=True)
                atomic.write_json(args.out, data)
            continue
        if variant == "graphs" and device.type != "cuda":
            print("  graphs   skipped (CUDA graphs need a CUDA device)", flush=True)
            continue
        try:
            run = time_steps(model, examples, device, args, variant)
        except Exception as err:  # a lever that fails here is a result too
            run = {"error": f"{type(err).__name__}: {str(err).splitlines()[0][:300] if str(err) else ''}"}
        base = runs.get("eager", run)
        if "ms_per_step" in run and "ms_per_step" in base:
            run["ratio_to_eager"] = round(run["ms_per_step"] / base["ms_per_step"], 3)
            run["loss_rel_diff"] = abs(run["first_loss"] - base["first_loss"]) / abs(base["first_loss"])
        runs[variant] = run
        atomic.write_json(args.out, data)
        if "error" in run:
            print(f"  {variant:<8} failed: {run['error']}", flush=True)
        else:
            print(f"  {variant:<8} {run['ms_per_step']:8.1f} ms/step  x{run.get('ratio_to_eager', 1):.2f} of eager  "
                  f"(warm-up {run['warmup_s']} s, first loss off by {run.get('loss_rel_diff', 0):.1e})", flush=True)
    atomic.write_json(args.out, data)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

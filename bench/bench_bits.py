"""Which bits does this machine compute? A fingerprint of its CPU numerics, to tell machines apart by.

    python -m bench.bench_bits [--modes portable strict] [--table SLICK_TABLE | --no-model]
                               [--out reports/bench_bits.json]

Per numerics mode (`interference.numerics`; each in its own process under one thread, since a process fixes its
kernels at its first one) it records the branch MKL ran and these figures, each the first 16 hex digits of a
SHA-256:

- `product`: one float32 matrix product of fixed inputs (256 × 576 by 576 × 1536, a SmolLM2 MLP's shape): MKL alone;
- `start`: SmolLM2-135M's weights as read from the GGUF (dequantised, no arithmetic kernel: the same everywhere);
- `snapshot`: SmolLM2's seed-0 snapshot of the CPU studies (D_known 50, D_unknown 50, D_held 100 from the SLiCK
  table, one epoch of SFT on D_known: 4 steps at lr 1e-4, batch 16), the probe of `docs/reproducibility.md`.

Then it compares every mode's figures with the fingerprints measured so far (`KNOWN`, each with its machine and
dates) and names the ones they match. Two machines that match one fingerprint give the same bits: a run on one
repeats on the other record for record. The SmolLM2 figures take about 40 s a mode (`--no-model` skips them). Exit
status 0 whether or not anything matches: this is a measurement.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

import torch

from bench.bench_threads import weights_sha256
from interference.io import atomic

CHILD = "--as-child"  # the flag a parent passes to the process it starts for one mode
TABLE = "../shared/data/slick/smollm2-135m-fast.jsonl"
FIGURES = ("product", "start", "snapshot")
AMD = "AMD EPYC (avx2, avx512f, avx512_bf16)"
INTEL_AMX = "Intel(R) Xeon(R) Processor (avx2, avx512f, avx512_bf16, avx512_fp16, amx_bf16)"
#: Fingerprints measured so far (None: not measured on that machine). MKL honours MKL_CBWR=AVX2 on Intel CPUs only,
#: so "portable" differs between the two kinds; "strict" (MKL's COMPATIBLE branch) should not (not yet measured on
#: an Intel machine: the next one that runs this bench says).
KNOWN = [
    {"machine": AMD, "dates": "2026-12-05, 2026-12-08", "mode": "portable", "mkl": "AUTO",
     "product": "dba3ce01a6c531a9", "start": "16d877b1f385a3d5", "snapshot": "647ae4ac9dfb21a2"},
    {"machine": AMD, "dates": "2026-12-08", "mode": "strict", "mkl": "COMPATIBLE",
     "product": "4631840f8ba87f19", "start": "16d877b1f385a3d5", "snapshot": "78f9ea011b074529"},
    {"machine": INTEL_AMX, "dates": "2026-12-07 (two machines)", "mode": "portable", "mkl": None,
     "product": None, "start": "16d877b1f385a3d5", "snapshot": "86a78af107f88a99"},
]


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.bench_bits", description=__doc__.split("\n\n")[0])
    p.add_argument("--modes", nargs="+", default=["portable", "strict"], choices=["portable", "strict", "native"])
    p.add_argument("--table", default=TABLE, help="the SmolLM2 SLiCK table the snapshot's facts are drawn from")
    p.add_argument("--no-model", action="store_true", help="the matrix product alone (no SmolLM2)")
    p.add_argument("--out", default="reports/bench_bits.json")
    p.add_argument(CHILD, default=None, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def fixed_matrix(rows: int, cols: int, step: float) -> torch.Tensor:
    """Inputs any machine computes alike: the fractional parts of i·step in float64 (exact operations), centred."""
    return torch.arange(rows * cols, dtype=torch.float64).mul(step).frac().sub(0.5).float().reshape(rows, cols)


def digest16(params: dict[str, torch.Tensor]) -> str:
    return weights_sha256(params)[:16]


def fingerprint(args: argparse.Namespace) -> dict:
    """The child's work under the numerics its environment set: the MKL branch and the figures."""
    from interference import numerics

    torch.set_num_threads(1)
    product = fixed_matrix(256, 576, 0.6180339887) @ fixed_matrix(576, 1536, 0.7548776662)
    found = {"mode": numerics.mode(), "mkl": numerics.mkl_branch(), "cpu": numerics.cpu(),
             "product": digest16({"product": product})}
    if not args.no_model:
        from interference.models import load_model
        from interference.studies.setup import ExperimentConfig, load_base, make_setup

        model, _ = load_model("smollm2-135m")
        found["start"] = digest16(dict(model.named_parameters()))
        config = ExperimentConfig.build(model="smollm2-135m", data=args.table, n_known=50, n_unknown=50, n_held=100,
                                        min_known_fraction=0.1, device="cpu", lr=1e-4, batch_size=16, seeds=(0,),
                                        acquisition_check="teacher_forced")
        setup = make_setup(config, 0, base=load_base(config, progress=False), progress=False)
        found["snapshot"] = digest16(setup.snapshot(config.train_config(0, method="sft")).params)
    return found


def spawn(argv: list[str], mode: str) -> dict:
    """This script for one numerics mode in a fresh process, with no kernel settings inherited but the mode's."""
    env = {k: v for k, v in os.environ.items() if k not in ("ATEN_CPU_CAPABILITY", "MKL_CBWR")}
    env.update(INTERFERENCE_NUMERICS=mode, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    done = subprocess.run([sys.executable, "-m", "bench.bench_bits", *argv, CHILD, mode], env=env,
                          stdout=subprocess.PIPE, text=True)
    if done.returncode:
        raise SystemExit(f"error: the fingerprint under the {mode} numerics failed (exit {done.returncode})")
    return json.loads(done.stdout.strip().splitlines()[-1])


def matches(found: dict, known: list[dict] = KNOWN) -> list[dict]:
    """The known fingerprints `found` agrees with on every figure both have (at least one): machine, mode, and which
    figures were compared."""
    agree = []
    for entry in known:
        both = [f for f in FIGURES if found.get(f) is not None and entry.get(f) is not None]
        if both and all(found[f] == entry[f] for f in both):
            agree.append({"machine": entry["machine"], "mode": entry["mode"], "dates": entry["dates"],
                          "compared": both})
    return agree


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse(argv)
    if args.as_child is not None:
        print(json.dumps(fingerprint(args)))
        return 0
    if not args.no_model and not os.path.isfile(args.table):
        print(f"error: SLiCK table {args.table} not found: give --table, or --no-model for the product alone",
              file=sys.stderr)
        return 2
    runs = []
    for mode in dict.fromkeys(args.modes):
        print(f"fingerprint under the {mode} numerics …", file=sys.stderr, flush=True)
        runs.append({**spawn(argv, mode), "matches": None})
        runs[-1]["matches"] = matches(runs[-1])
    atomic.write_json(args.out, {"torch": torch.__version__, "runs": runs})
    for run in runs:
        figures = "  ".join(f"{f} {run[f]}" for f in FIGURES if f in run)
        same = "; ".join(f"{m['machine']}, {m['mode']} ({', '.join(m['compared'])})" for m in run["matches"])
        print(f"{run['mode']} (MKL {run['mkl']}): {figures}\n  matches: {same or 'no fingerprint measured so far'}")
    print(f"on {runs[0]['cpu']}; wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

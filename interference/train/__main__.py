"""Command line: fine-tune a model on D_known ∪ D_unknown and measure forgetting on D_held.

    python -m interference.train --model tiny-llama --splits DIR --method self_distill --epochs 10 --out runs/sd

DIR holds known.jsonl, unknown.jsonl and held.jsonl (`interference.splits.save_splits`). Writes into --out:
metrics.json (after every epoch), checkpoint-<epoch>/ + train_state.pt (resumable with --resume), snapshot.safetensors
and, at the end, model/ (HF format); prints the summary as JSON. Several GPUs: `torchrun --nproc-per-node N -m
interference.train ...` or `accelerate launch --multi_gpu --num_processes N -m interference.train ...` with the same
arguments (see `interference.train`).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import sys

import torch

from ..errors import InterferenceError, cli_errors
from .config import METHODS, STARTS, TrainConfig
from .freezing import GROUPS
from .teacher import CACHE_MODES


def _parser() -> argparse.ArgumentParser:
    defaults = TrainConfig()
    p = argparse.ArgumentParser(
        prog="python -m interference.train",
        description="Fine-tune on D_known ∪ D_unknown by SFT, self-distillation or the L2 control; evaluate "
        "known / new / held-out accuracy at step 0 and after every epoch.",
    )
    p.add_argument(
        "--model", required=True, help="tiny-llama | tiny-qwen2 | tiny-gpt2 | smollm2-135m | a folder | a Hub name"
    )
    p.add_argument("--splits", required=True, help="folder with known.jsonl, unknown.jsonl, held.jsonl")
    p.add_argument("--out", required=True, help="output folder (metrics, checkpoints, final model)")
    p.add_argument("--method", choices=METHODS, default=defaults.method)
    p.add_argument("--epochs", type=int, default=defaults.epochs, help="maximum epochs (default %(default)s)")
    p.add_argument(
        "--target-new-acc", type=float, default=None, help="stop once acc(D_unknown) reaches this (matched acquisition)"
    )
    p.add_argument("--lr", type=float, default=defaults.lr, help="AdamW learning rate (default %(default)s)")
    p.add_argument("--batch-size", type=int, default=defaults.batch_size)
    p.add_argument("--weight-decay", type=float, default=defaults.weight_decay)
    p.add_argument("--max-grad-norm", type=float, default=defaults.max_grad_norm, help="0 disables clipping")
    p.add_argument("--seed", type=int, default=defaults.seed)
    p.add_argument("--kd-lambda", type=float, default=defaults.kd_lambda, help="λ of the KD term")
    p.add_argument("--kd-tau", type=float, default=defaults.kd_tau, help="τ, distillation temperature")
    p.add_argument(
        "--start", choices=STARTS, default=None, help="student start (default: base for sft, snapshot otherwise)"
    )
    p.add_argument(
        "--snapshot-epochs",
        type=int,
        default=defaults.snapshot_epochs,
        help="epochs of SFT on D_known that make the teacher / anchor snapshot",
    )
    p.add_argument("--teacher-cache", choices=CACHE_MODES, default=defaults.teacher_cache)
    p.add_argument("--teacher-topk", type=int, default=defaults.teacher_topk)
    p.add_argument("--l2-mu", default=str(defaults.l2_mu), help="μ of the l2 method, or match_kd")
    p.add_argument(
        "--l2-match-steps",
        type=int,
        default=None,
        help="SFT probe steps before matching μ to the KD gradient (default: one epoch)",
    )
    p.add_argument(
        "--freeze", default=None, help=f"parameters to freeze: GROUP[@LAYER|@A-B],... with GROUP in {', '.join(GROUPS)}"
    )
    p.add_argument("--train-only", default=None, help="parameters to train (everything else frozen), same syntax")
    p.add_argument("--known-only", action="store_true", help="train on D_known only (D_unknown is still evaluated)")
    p.add_argument("--eval-batch-size", type=int, default=defaults.eval_batch_size)
    p.add_argument(
        "--eval-max-new-tokens",
        type=int,
        default=None,
        help="generated tokens per answer (default: longest gold answer + 8)",
    )
    p.add_argument(
        "--checkpoint-every",
        type=int,
        default=defaults.checkpoint_every,
        help="epochs between resumable checkpoints (default %(default)s)",
    )
    p.add_argument("--device", default="auto", help="cpu | cuda | auto (default: cuda when available)")
    p.add_argument("--resume", action="store_true", help="continue the interrupted run in --out")
    p.add_argument("--quiet", action="store_true", help="no progress bars or logs")
    return p


@cli_errors
def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    quiet = args.quiet or int(os.environ.get("RANK", "0")) != 0  # several processes: rank 0 speaks for all
    logging.basicConfig(level=logging.WARNING if quiet else logging.INFO, format="%(message)s", stream=sys.stderr)
    config = TrainConfig(
        method=args.method,
        epochs=args.epochs,
        target_new_acc=args.target_new_acc,
        lr=args.lr,
        batch_size=args.batch_size,
        weight_decay=args.weight_decay,
        max_grad_norm=args.max_grad_norm or None,
        seed=args.seed,
        kd_lambda=args.kd_lambda,
        kd_tau=args.kd_tau,
        start=args.start,
        snapshot_epochs=args.snapshot_epochs,
        teacher_cache=args.teacher_cache,
        teacher_topk=args.teacher_topk,
        l2_mu=args.l2_mu,
        l2_match_steps=args.l2_match_steps,
        freeze=args.freeze,
        train_only=args.train_only,
        train_splits=("known",) if args.known_only else ("known", "unknown"),
        eval_batch_size=args.eval_batch_size,
        eval_max_new_tokens=args.eval_max_new_tokens,
        checkpoint_every=args.checkpoint_every,
    )
    from ..models import load_model
    from ..splits import load_splits
    from .loop import train

    device = args.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise InterferenceError(f"device {device!r} requested but CUDA is not available")
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        device = "cpu"  # several processes: train() moves the model to this process's own device
    splits = load_splits(args.splits)
    model, tokenizer = load_model(args.model, device=device, seed=args.seed)
    result = train(
        model,
        tokenizer,
        config,
        known=splits.known,
        unknown=splits.unknown,
        held=splits.held,
        out_dir=args.out,
        resume=args.resume,
        progress=not args.quiet,
    )
    summary = {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in result.summary().items()}
    if int(os.environ.get("RANK", "0")) == 0:
        print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())

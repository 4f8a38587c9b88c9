"""Command line: `python -m interference.train --model M --splits DIR --out RUN [--method self_distill ...]`; every
`TrainConfig` field is an option (`--help`). DIR is a `interference.facts.splits.save_splits` folder; prints the
summary."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys

from ..io.atomic import nan_to_none
from ..io.dataclass_options import add_dataclass_options, dataclass_values
from ..io.errors import CommandParser, cli_errors
from ..train.config import TrainConfig


def _parser() -> argparse.ArgumentParser:
    p = CommandParser(prog="python -m interference.train", description="Fine-tune by SFT, "
                                "self-distillation or the L2 control; evaluate known / new / held-out accuracy.")
    p.add_argument("--model", required=True, help="tiny-llama | tiny-gpt2 | smollm2-135m | a folder | a Hub name")
    p.add_argument("--splits", required=True, help="folder with known.jsonl, unknown.jsonl, held.jsonl")
    p.add_argument("--out", required=True, help="output folder (metrics, checkpoints, final model)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N | mps (default: auto)")
    p.add_argument("--dtype", default="float32", help="weights: float32 | bfloat16 (default: float32)")
    p.add_argument("--resume", action="store_true", help="continue the interrupted run in --out")
    p.add_argument("--overwrite", action="store_true", help="replace an earlier run in --out (other files are kept)")
    p.add_argument("--quiet", action="store_true", help="no progress bars or logs")
    add_dataclass_options(p, TrainConfig)
    return p


@cli_errors
def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    config, main_process = TrainConfig(**dataclass_values(args, TrainConfig)), int(os.environ.get("RANK", "0")) == 0
    from transformers.utils import logging as hf_logging

    from ..facts.splits import load_splits
    from ..io.outputs import check_folder_target
    from ..models.devices import check_launch, resolve_device, resolve_dtype
    from ..models.loading import load_model
    from ..train.loop import train

    check_launch()
    device, dtype = resolve_device(args.device), resolve_dtype(args.dtype)
    check_folder_target(args.out, "--out")
    quiet = args.quiet or not main_process
    logging.basicConfig(level=logging.WARNING if quiet else logging.INFO, format="%(message)s", stream=sys.stderr)
    # accelerate's INFO is four lines per checkpoint ("Saving current state ...") through the progress bars
    logging.getLogger("accelerate").setLevel(logging.ERROR if quiet else logging.WARNING)
    if quiet:
        hf_logging.disable_progress_bar()  # "Writing model shards" and the like
    splits = load_splits(args.splits)
    several = int(os.environ.get("WORLD_SIZE", "1")) > 1  # then train() moves the model to this process's device
    model, tokenizer = load_model(args.model, device="cpu" if several else device, dtype=dtype, seed=config.seed)
    result = train(model, tokenizer, config, known=splits.known, unknown=splits.unknown, held=splits.held,
                   out_dir=args.out, resume=args.resume, overwrite=args.overwrite, progress=not quiet)
    if main_process:
        print(json.dumps(nan_to_none(result.summary())))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""`python -m interference.world`: build (or load) the embedded world and print what it is."""

from __future__ import annotations

import argparse
import time

from ..io.atomic import cache_root
from ..io.errors import CommandParser, check_seed, cli_errors
from ..io.outputs import check_folder_target
from ..world.config import WorldConfig
from ..world.store import load_world


def _parser() -> argparse.ArgumentParser:
    parser = CommandParser(
        prog="python -m interference.world",
        description="Build the embedded synthetic world and pretrain its model (cached; a second run only loads it).",
    )
    parser.add_argument("--quick", action="store_true", help="the small test world (seconds) instead of the default")
    parser.add_argument("--rebuild", action="store_true", help="retrain even when a cached copy exists")
    parser.add_argument("--seed", type=int, default=0, help="world seed (default 0)")
    parser.add_argument(
        "--cache-dir", default=None, help="cache root (default $INTERFERENCE_CACHE or ~/.cache/interference)"
    )
    return parser


@cli_errors
def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    check_seed(args.seed, "--seed")
    check_folder_target(args.cache_dir if args.cache_dir is not None else cache_root(), "cache folder")
    config = (WorldConfig.quick if args.quick else WorldConfig)(seed=args.seed)
    start = time.perf_counter()
    world = load_world(config, cache_dir=args.cache_dir, rebuild=args.rebuild)
    seconds = time.perf_counter() - start
    record = world.record
    n_params = record.get("n_parameters", sum(p.numel() for p in world.model.parameters()))
    print(f"world {config.digest()} at {world.path}")
    print(
        f"  facts: {len(world.facts)} ({len(world.corpus.stored_names())} entities x {len(config.relations)} relations)"
    )
    print(f"  model: {n_params:,} parameters, vocabulary {len(world.tokenizer)}")
    print(f"  knowledge: {world.knowledge:.3f} (target {config.knowledge_target}) after {record['epochs']} epochs")
    print(f"  built in {record['build_seconds']:.1f} s; this call took {seconds:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

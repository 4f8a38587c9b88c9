"""Pooled results folders, rebuilt rather than committed. A pool merges the records of committed results folders
(`--merge`, no training) into one report, so it holds nothing its parts do not: committing it would only grow the
tracked tree, which travels to a GPU machine within 64 MiB (`docs/gpu-session.md`). `results/pools.json` names each
pool's folder under results/ and the analysis command that makes it; this module runs those commands.

    python -m analyses.pools                  # every pool, written under results/ (git-ignored)
    python -m analyses.pools --out DIR NAME   # one pool, under DIR

A command over the other analyses' commands, so it lives with them, not in the library; it loads no model.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from interference.io.errors import CommandParser, InterferenceError, cli_errors

#: It reads and merges report folders only (no model, no device options).
MODEL_FREE = True

#: Where the pools are declared, relative to the repository root.
POOLS_FILE = Path("results") / "pools.json"


def read_pools(root: str | os.PathLike) -> dict[str, list[str]]:
    """{pool folder under results/: [analysis, its arguments…]} from `root`'s results/pools.json."""
    path = Path(root) / POOLS_FILE
    if not path.is_file():
        raise InterferenceError(f"{path} not found: not a checkout of this repository")
    return json.loads(path.read_text(encoding="utf-8"))["pools"]


def build_pool(root: str | os.PathLike, name: str, out: str | os.PathLike) -> Path:
    """Run pool `name`'s command from `root` (offline, one torch thread) and write its report folder to
    `out`/`name`; returns that folder. Raises InterferenceError naming the pool when it is unknown, a part is
    missing, or the command fails."""
    pools = read_pools(root)
    if name not in pools:
        raise InterferenceError(f"no pool named {name!r} in {POOLS_FILE} (pools: {', '.join(pools)})")
    analysis, *args = pools[name]
    parts = args[args.index("--merge") + 1:]
    if missing := [p for p in parts if not (Path(root) / p).is_dir()]:
        raise InterferenceError(f"pool {name}: its parts {missing} are missing")
    folder = Path(out) / name
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", f"analyses.{analysis}", "--no-progress", *args, "--out", str(folder)],
                          cwd=root, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise InterferenceError(f"pool {name}: the merge failed ({tail})")
    return folder


@cli_errors
def main(argv: list[str] | None = None) -> int:
    root = Path(__file__).resolve().parents[1]
    parser = CommandParser(prog="python -m analyses.pools", description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", metavar="NAME", help="pools to build (default: every pool)")
    parser.add_argument("--out", default=str(root / "results"), help="folder to write them under (default: results/)")
    args = parser.parse_args(argv)
    for name in args.names or read_pools(root):
        print(f"{name}: {build_pool(root, name, Path(args.out).resolve())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The real-model suite in one command: Table 1, the §5 hypotheses grid, drift and overlap, causal tracing and
freezing by layer blocks (and the remedies, with --parts remedies), written into one folder with one index page.
Seeds accumulate: a later run into the same folder adds its --seeds to Table 1, the grid and the remedies, and the
first of them the folder lacks to drift/overlap, tracing and freezing (same settings, checked by the run
fingerprint), and every report is recomputed over all of its seeds.

    python -m analyses.suite --model smollm2-135m --knowledge ../shared/data/slick/smollm2-135m-fast.jsonl \\
        --min-known-fraction 0.1 --n-known 200 --n-unknown 300 --n-held 200 --lr 1e-4 \\
        --acquisition-check teacher_forced --device cuda --workers 4 --out results/smollm2-135m-h200
    python -m analyses.suite --quick --out reports/suite        # the embedded world, small: a smoke run
    python -m analyses.suite ... --estimate-only                # the plan and its estimated time, nothing run

Options not listed below (model, facts, sizes, training, device) are passed to every analysis as given; see
`python -m analyses.forgetting --help`. It prints its plan and an estimate before the work starts, then each
analysis's own progress. Writes <out>/index.html and <out>/suite.json, and each analysis's report in <out>/<part>/.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

from interference.io.errors import CommandParser, InterferenceError, cli_errors
from interference.io.outputs import claim_output
from interference.report.accumulate import earlier_run
from interference.studies.remedies import METHODS as REMEDIES
from interference.studies.suite import (
    ASSUMED_EPOCHS,
    DEFAULT_PARTS,
    ONE_SEED_A_RUN,
    PARTS,
    calibrate,
    estimate,
    index_page,
    plan,
    rate_from_records,
)

from . import common

ROOT = Path(__file__).resolve().parents[1]
WORKERS = ".workers"
#: The freezing sweep's modes in the suite: train only a block of layers, and freeze only it.
FREEZING_MODES = ("train_only", "freeze")
#: The largest default count of the grid in the suite.
SUITE_MAX_COUNT = 10_000


def suite_parser() -> argparse.ArgumentParser:
    p = CommandParser(prog="python -m analyses.suite", description=__doc__.split("\n\n")[0], allow_abbrev=False,
                      add_help=False)
    p.add_argument("-h", "--help", action="store_true", help="this help, then the options passed to every analysis")
    p.add_argument("--out", default="reports/suite", help="the suite's folder (default reports/suite)")
    p.add_argument("--parts", nargs="+", default=list(DEFAULT_PARTS), choices=list(PARTS),
                   help="analyses to run (default: the paper's, all but remedies)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4],
                   help="seeds of Table 1, the grid and the remedies, added to those already in --out (default "
                        "0-4); overlap, tracing and freezing add the first of them they lack")
    p.add_argument("--workers", type=int, default=1,
                   help="processes that train seeds concurrently on the device (default 1): a small model leaves a "
                        "GPU mostly idle, so several processes share it")
    p.add_argument("--counts", type=int, nargs="+", default=None,
                   help="new facts per cell of the grid (default: analyses.hypotheses' up to 10000 — a real model "
                        "1000 10000 on a GPU, 10 100 on a CPU; the world 40 400, quick 20 200)")
    p.add_argument("--relation", default=None, help="the grid's new facts on a real model: their EntityQuestions "
                                                    "relation (see analyses.hypotheses)")
    p.add_argument("--subjects", default=None, metavar="DIR",
                   help="the grid's new facts on a real model: the EntityQuestions folder their name pieces come from")
    p.add_argument("--band", type=int, default=None, help="layers per block of the freezing sweep (default: five "
                                                          "blocks)")
    p.add_argument("--lora-lr", type=float, default=None,
                   help="the remedies' LoRA learning rate (analyses.remedies --lora-lr; default: --lr)")
    p.add_argument("--match-relations", action=argparse.BooleanOptionalAction, default=None,
                   help="the overlap part's causal test takes its high- and low-overlap sets from the same relations "
                        "(analyses.overlap --match-relations; default: on for a real model, whose relations differ "
                        "in overlap, and off on the world)")
    p.add_argument("--estimate-only", action="store_true", help="print the plan and its estimate, run nothing")
    p.add_argument("--max-minutes", type=float, default=None,
                   help="refuse to start when the estimate exceeds this many minutes (a GPU session's budget, say)")
    return p


def _counts(args, shared, config) -> list[int]:
    """The grid's counts: --counts, else analyses.hypotheses' defaults for this model and device up to
    `SUITE_MAX_COUNT` (10⁵ new facts do not fit one 15-minute GPU session)."""
    from .hypotheses import default_counts

    counts = args.counts or [c for c in default_counts(config, shared.quick) if c <= SUITE_MAX_COUNT]
    if min(counts) < 1:
        raise InterferenceError(f"--counts must be positive, got {counts}")
    return sorted(set(counts))


def _layers(config) -> int:
    from interference.models import declared_layers
    from interference.studies.setup import world_config

    layers = world_config(config).n_layers if config.model == "world" else declared_layers(config.model)
    if layers is None:
        raise InterferenceError(f"cannot tell how many layers {config.model} has before loading it: give --band")
    return layers


def match_relations(choice: bool | None, model: str) -> bool:
    """Whether the overlap part matches its causal test by relation: as --(no-)match-relations says, else on for a
    real model (whose relations differ in overlap, so that unmatched sets compare relations; see docs/overlap.md)
    and off on the world (its committed runs are unmatched, and pool only with runs like them)."""
    return model != "world" if choice is None else choice


def _part_args(part: str, rest: list[str], counts: list[int], band: int, new_facts: dict,
               lora_lr: float | None = None, match_relations: bool = False) -> list[str]:
    grid = [*(a for name, value in new_facts.items() if value is not None for a in (f"--{name}", value))]
    extra = {"hypotheses": ["--counts", *map(str, counts), *grid],
             "overlap": ["--match-relations"] if match_relations else [],
             "freezing": ["--band", str(band), "--mode", *FREEZING_MODES],
             "remedies": ["--lora-lr", repr(lora_lr)] if lora_lr else []}.get(part, [])
    if part == "tracing":  # it traces every layer and refuses --layer
        rest = [a for i, a in enumerate(rest)
                if a != "--layer" and not a.startswith("--layer=") and (i == 0 or rest[i - 1] != "--layer")]
    return [*rest, *extra]


def _fingerprint(part: str, argv: list[str]) -> dict:
    """The run fingerprint `python -m analyses.<part> argv` records (its options parsed and checked by the part's own
    command, its defaults its own), so that a folder of other settings is refused before any work."""
    from importlib import import_module

    return import_module(f"analyses.{part}").command(argv).fingerprint


def _analysis(part: str, argv: list[str], *, workers: int = 1, wait: bool = True):
    """Run `python -m analyses.<part> argv` (its output shown as it comes); with `workers` processes at once on a
    CPU, each gets its share of the cores unless OMP_NUM_THREADS says otherwise."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    if workers > 1:
        env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // workers)))
    process = subprocess.Popen([sys.executable, "-m", f"analyses.{part}", *argv], env=env)
    return _exit_code(process.wait()) if wait else process


def _exit_code(code: int) -> int:
    """A process's exit code as a shell gives it: 128 + N for one killed by signal N (Popen's -N)."""
    return code if code >= 0 else 128 - code


def _new_seeds(part: str, seeds: list[int], earlier) -> list[int]:
    """The seeds a run trains for `part`: those of `seeds` not in `earlier` (the folder's run), or only the first of
    them for the parts that take one seed a run (`ONE_SEED_A_RUN`)."""
    new = [s for s in seeds if earlier is None or s not in earlier.seeds]
    return new[:1] if part in ONE_SEED_A_RUN else new


def _run_accumulating(part: str, argv: list[str], seeds: list[int], earlier, out: Path, workers: int, folder) -> int:
    """Train the `_new_seeds` of `seeds` and pool them with `earlier` into out/part: in one process, or split over
    `workers` processes whose reports are then merged."""
    target = out / part
    new = _new_seeds(part, seeds, earlier)
    if not new:
        print(f"{part}: seeds {' '.join(map(str, seeds))} are all in {target} already", file=sys.stderr)
        return 0
    accumulate = ["--accumulate"] if earlier is not None else []
    groups = [new[k::workers] for k in range(min(workers, len(new)))]
    if len(groups) == 1:
        return _analysis(part, [*argv, "--seeds", *map(str, new), *accumulate, "--out", str(target)])
    parts = [out / WORKERS / f"{part}-{k}" for k in range(len(groups))]
    for path in parts:
        if path.exists():
            folder.remove(path.relative_to(out))  # a killed earlier run's worker report: this run redoes its seeds
    running = [_analysis(part, [*argv, "--seeds", *map(str, g), "--no-progress", "--out", str(path)],
                         workers=len(groups), wait=False) for g, path in zip(groups, parts, strict=True)]
    codes = [p.wait() for p in running]
    folder.register(WORKERS)
    failed = [(g, c) for g, c in zip(groups, codes, strict=True) if c]
    for g, c in failed:  # a worker killed by a signal (the OOM killer's 9, say) has a negative code
        how = f"was killed by signal {-c}" if c < 0 else f"exited with {c}"
        print(f"{part}: the worker of seeds {' '.join(map(str, g))} {how}; nothing was merged", file=sys.stderr)
    if failed:
        return _exit_code(failed[0][1])
    every = sorted(set(new) | set(earlier.seeds if earlier else ()))
    code = _analysis(part, [*argv, "--seeds", *map(str, every), *accumulate, "--merge", *map(str, parts),
                            "--out", str(target)])
    if code == 0:
        folder.remove(WORKERS)
    return code


@cli_errors
def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = suite_parser()
    args, rest = parser.parse_known_args(argv)
    if args.help:
        shared = common.parser("suite", "").format_help().split("\n\n", 1)[1]  # without the usage line
        print(parser.format_help() + "\noptions passed to every analysis:\n\n" + shared)
        raise SystemExit(0)
    if args.workers < 1:
        raise InterferenceError(f"--workers must be >= 1, got {args.workers}")
    if args.lora_lr is not None and "remedies" not in args.parts:
        raise InterferenceError("--lora-lr is the remedies' LoRA rate: add remedies to --parts, or leave it out")
    if args.match_relations is not None and "overlap" not in args.parts:
        raise InterferenceError("--match-relations sets the overlap part's causal test: add overlap to --parts, or "
                                "leave it out")
    if args.max_minutes is not None and not args.max_minutes > 0:
        raise InterferenceError(f"--max-minutes must be positive, got {args.max_minutes:g}")
    shared = common.parser("suite", "").parse_args([*rest, "--seeds", *map(str, args.seeds)])  # checks the rest
    config = common.experiment_config(shared)
    counts = _counts(args, shared, config)
    layers = _layers(config) if "freezing" in args.parts else 1  # read once, and only where a part needs it
    band = max(1, layers // 5) if args.band is None else args.band
    if band < 1:
        raise InterferenceError(f"--band must be >= 1, got {band}")
    out = Path(args.out).resolve()
    cells = plan(args.parts, n_known=config.n_known, n_unknown=config.n_unknown,
                 n_held=config.n_held, layers=layers, counts=counts, band=band, remedies=len(REMEDIES))
    new_facts = {"relation": args.relation, "subjects": args.subjects}
    matched = match_relations(args.match_relations, config.model)
    argvs = {part: _part_args(part, rest, counts, band, new_facts, args.lora_lr, matched) for part in args.parts}
    # other settings in the folder: refused here, before any work (and again by each part, under its folder's lock)
    earlier = {part: earlier_run(out / part, _fingerprint(part, argvs[part])) for part in args.parts}
    seeds = {part: len(_new_seeds(part, args.seeds, earlier[part])) for part in args.parts}
    known, compiling = rate_from_records(out), 0.0
    if known is not None:
        rate, epochs, n = known
        basis = (f"from the {n} conditions already in {out}: {rate * 1e3:.2f} ms per fact-epoch, {epochs:.1f} "
                 "epochs a condition")
    else:
        from interference.studies.setup import load_base, make_setup

        setup = make_setup(config, args.seeds[0], base=load_base(config, progress=False), progress=False)
        (rate, compiling), epochs = calibrate(setup, config.train), ASSUMED_EPOCHS
        basis = (f"calibrated here: {rate * 1e3:.2f} ms per fact-epoch, assuming {epochs} epochs a condition "
                 "(matched acquisition varies: read this as the order of magnitude)"
                 + (f"; compiling the step took {compiling:.0f} s, counted once a part" if compiling else ""))
    costs = {part: seconds / max(1, min(args.workers, seeds[part])) + (compiling if seeds[part] else 0.0)
             for part, seconds in estimate(cells, seeds, rate, epochs).items()}  # workers share a part's seeds
    print(f"suite into {out}: {config.model}, {config.n_known}/{config.n_unknown}/{config.n_held} facts, "
          f"grid counts {' '.join(map(str, counts))}, freezing blocks of {band} layers"
          + (", overlap's causal test matched by relation" if matched and "overlap" in args.parts else "")
          + f", {args.workers} worker(s)\nestimate ({basis}):", file=sys.stderr)
    for part in args.parts:
        conditions = sum(c.conditions for c in cells if c.part == part) * seeds[part]
        print(f"  {part:<11} {conditions:4d} conditions  ~{costs.get(part, 0) / 60:6.1f} min", file=sys.stderr)
    total = sum(costs.values()) / 60
    print(f"  total                  ~{total:6.1f} min" + (
        f" (Table 1 and the grid shared ideally over {args.workers} workers)" if args.workers > 1 else ""),
        file=sys.stderr)
    if args.max_minutes is not None and total > args.max_minutes:
        raise InterferenceError(f"the estimate ({total:.1f} min) exceeds --max-minutes {args.max_minutes:g}: run "
                                "fewer --seeds, --parts or --counts (nothing was run)")
    if args.estimate_only:
        return 0
    with claim_output(out, "analyses.suite", overwrite=shared.overwrite,
                      writes=("index.html", "suite.json", WORKERS)) as folder:
        codes, walls = {}, {}
        for part in args.parts:
            start = time.monotonic()
            print(f"== {part}", file=sys.stderr)
            codes[part] = _run_accumulating(part, argvs[part], args.seeds, earlier[part], out, args.workers, folder)
            walls[part] = round(time.monotonic() - start, 1)
            if (out / part).is_dir():
                folder.register(part)
            shown = [p for p in PARTS if p in DEFAULT_PARTS or (out / p).is_dir()]  # remedies once they ran
            page, data = index_page(out, shown, title=f"Suite: {config.model}",
                                    note=f"{config.n_known}/{config.n_unknown}/{config.n_held} facts; each row "
                                         "links to its report")
            folder.write_text("index.html", page)
            folder.write_json("suite.json", {**data, "estimate_s": costs, "estimate_basis": basis, "wall_s": walls,
                                             "exit_codes": codes, "command": ["python", "-m", "analyses.suite", *argv]})
    failed = [p for p, c in codes.items() if c]
    print(f"index: {out / 'index.html'}" + (f"\nfailed: {', '.join(failed)}" if failed else ""), file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())

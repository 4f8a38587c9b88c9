"""The three hypotheses (capacity, behaviour cloning, localized interference): SFT on name-like vs UUID-keyed new
facts at a small and a 10x larger count, each trained to matched acquisition, with a verdict per hypothesis.

    python -m analyses.hypotheses                 # embedded world (a few minutes on 2 cores)
    python -m analyses.hypotheses --quick
    python -m analyses.hypotheses --counts 100 1000 10000   # slower: tens of minutes
    python -m analyses.hypotheses --model smollm2-135m --knowledge ../shared/data/slick/smollm2-135m-fast.jsonl \\
        --min-known-fraction 0.1 --lr 1e-4        # a real model: known/held facts from its SLiCK table
    python -m analyses.hypotheses --model smollm2-135m --knowledge TABLE --relation P17 \\
        --subjects ../shared/data/entityquestions --counts 1000 10000 100000 --device cuda

On the embedded world the world makes the new facts (name-like keys from its stored syllables). With a real model
(--model with --knowledge or --data, see analyses.forgetting), D_known and D_held are the model's HighlyKnown real
facts, and the new facts are generated (`interference.facts.new_facts`): questions of --relation (default P17, "Which
country is [X] located in?") about subjects that do not exist, name-like ones recombined from the model's own tokens
of the relation's real subjects in the train split of --subjects (an EntityQuestions folder, default
../shared/data/entityquestions beside the repo) or random hex UUIDs, answers drawn uniformly from the relation's
answers. Default counts: the world 40 400 (quick 20 200); a real model 1000 10000 100000 on a GPU (the paper's
10^3..10^6 scale; hours on SmolLM2-135M) and 10 100 on a CPU or with --quick (on 2 CPU cores a SmolLM2-135M cell
of 10 new facts, 50 known and 100 held takes about a minute an epoch: a CPU grid to matched acquisition takes hours,
start with --seeds 0). A real model also defaults to
--lr 1e-4 (the toolkit's 1e-3 is for the tiny world) and, without --quick, --n-known 50 --n-held 100 (SmolLM2's
shared table has 185 HighlyKnown facts in the relation the paper's 30 % filter keeps); options given win.

Writes <out>/report.html and <out>/results.json. A thin shell over `interference.studies.hypotheses`.
"""

from __future__ import annotations

from interference.io.errors import InterferenceError
from interference.studies.hypotheses import HypothesesStudy, hypotheses_report, hypotheses_settings, run_hypotheses
from interference.studies.setup import WORLD

from . import common

#: Default counts of new facts: the embedded world (quick), a real model on a GPU, a real model on a CPU or quick.
WORLD_COUNTS, WORLD_QUICK_COUNTS = (40, 400), (20, 200)
GPU_COUNTS, CPU_COUNTS = (1000, 10000, 100000), (10, 100)


#: Defaults of a real model that options override: a real model's lr, and sizes that fit SmolLM2's shared table.
REAL_DEFAULTS = {"lr": 1e-4}
REAL_SIZES = {"n_known": 50, "n_held": 100}


def hypotheses_config(args):
    """The ExperimentConfig of the parsed options, with `REAL_DEFAULTS` (and `REAL_SIZES` without --quick) under
    them for a real model."""
    if args.model == WORLD:
        return common.experiment_config(args)
    return common.experiment_config(args, **REAL_DEFAULTS, **({} if args.quick else REAL_SIZES))


def default_counts(config, quick: bool) -> tuple[int, ...]:
    """The counts a run gets without --counts (see the module's docstring)."""
    if config.model == WORLD:
        return WORLD_QUICK_COUNTS if quick else WORLD_COUNTS
    return GPU_COUNTS if config.device.startswith("cuda") and not quick else CPU_COUNTS


def command(argv: list[str] | None = None) -> common.StudyCommand:
    """The parsed command (options and the new facts' folder checked, nothing run)."""
    parser = common.parser("hypotheses", __doc__.split("\n\n")[0])
    parser.add_argument("--counts", type=int, nargs="+", default=None,
                        help="numbers of new facts (default: the world 40 400, quick 20 200; a real model 1000 10000 "
                             "100000 on a GPU, 10 100 on a CPU or with --quick)")
    parser.add_argument("--relation", default=None,
                        help="with a real model: the EntityQuestions relation of the new facts (default P17, "
                             "'Which country is [X] located in?')")
    parser.add_argument("--subjects", default=None, metavar="DIR",
                        help="with a real model: the EntityQuestions folder whose train-split subjects of --relation "
                             "give the name-like keys their pieces (default ../shared/data/entityquestions beside the "
                             "repo)")
    args = parser.parse_args(argv)
    config = hypotheses_config(args)
    if config.model == WORLD and (args.relation is not None or args.subjects is not None):
        raise InterferenceError("--relation and --subjects need a real --model: the embedded world makes its own new "
                                "facts")
    counts = args.counts or default_counts(config, args.quick)
    if min(counts) < 1:
        raise InterferenceError(f"--counts must be positive, got {counts}")
    counts = tuple(sorted(set(counts)))
    settings = hypotheses_settings(config, counts, args.relation, args.subjects)  # a bad folder fails here
    return common.StudyCommand(
        args, config,
        lambda c: run_hypotheses(c, counts, relation=args.relation, subjects=args.subjects,
                                 progress=not args.no_progress),
        hypotheses_report,
        lambda c, records, results: HypothesesStudy(c, counts, results["layer"], records,
                                                    new_facts=results.get("new_facts")),
        settings=settings)


#: `python -m analyses.hypotheses`: the parsed command, run (a bad option is one line and exit 2).
main = common.study_main(command)


if __name__ == "__main__":
    raise SystemExit(main())

"""Table 1 and the self-distillation result: forgetting of held-out facts under SFT, self-distillation, the L2
control, attention-only, FFN-only and known-only training, over several seeds.

    python -m analyses.forgetting                 # embedded world, 10 seeds (about 10 minutes on 2 cores)
    python -m analyses.forgetting --quick         # about a minute
    python -m analyses.forgetting --model smollm2-135m --data ../shared/data/entityquestions --seeds 0
    python -m analyses.forgetting --seeds 3 4 --accumulate   # add two seeds to the run in reports/forgetting
    python -m analyses.forgetting --merge run-a run-b --out pooled   # pool runs made elsewhere (same settings)

Writes <out>/report.html and <out>/results.json. A thin shell over `interference.studies.forgetting`.
"""

from __future__ import annotations

from interference.report.accumulate import Part
from interference.studies.forgetting import METHODS, ForgettingStudy, forgetting_report, run_forgetting

from . import common

#: Seeds of a default run: with 3, the world's paired SD − SFT interval is wider than the effect and moves between
#: machines (docs/reproducibility.md); with 10 it lies above 0 (results/world-default/).
DEFAULT_SEEDS = tuple(range(10))


def command(argv: list[str] | None = None) -> common.StudyCommand:
    """The parsed command (options checked, nothing run)."""
    parser = common.parser("forgetting", __doc__.split("\n\n")[0])
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS),
                        help="methods to run (default: all)")
    args = parser.parse_args(argv)
    config = common.experiment_config(args, **({} if args.quick else {"seeds": DEFAULT_SEEDS}))
    methods = tuple(args.methods)
    return common.StudyCommand(
        args, config, lambda c: run_forgetting(c, methods, progress=not args.no_progress), forgetting_report,
        lambda c, records, results: ForgettingStudy(c, methods, results["layer"], records),
        settings={"methods": list(methods)}, order=list(methods),
        part=Part("methods", anchors=("sft",)))


#: `python -m analyses.forgetting`: the parsed command, run (a bad option is one line and exit 2).
main = common.study_main(command)


if __name__ == "__main__":
    raise SystemExit(main())

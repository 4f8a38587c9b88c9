"""How to stop it: LoRA, replay, EWC and WiSE-FT against SFT and self-distillation, and combined with it, from the
same start at matched acquisition; the headline is acquisition against held-out accuracy, one dot per seed.

    python -m analyses.remedies                   # embedded world, 10 seeds (about 15 minutes on 2 cores)
    python -m analyses.remedies --quick           # 3 seeds, under two minutes
    python -m analyses.remedies --methods sft self_distill lora self_distill+lora --lora-rank 4
    python -m analyses.remedies --methods sft self_distill ewc ewc:1e6 ewc:1e8   # EWC at three strengths
    python -m analyses.remedies --methods sft reshuffled self_distill wise-ft --alphas 0 0.2 0.4 0.5 0.6 0.8 0.9 1
                                                  # is self-distillation SFT, shrunk? (beside SFT's own noise)
    python -m analyses.remedies --model smollm2-135m --knowledge ../shared/data/slick/smollm2-135m-fast.jsonl
    python -m analyses.remedies --seeds 5 6 --accumulate   # add seeds to the run in reports/remedies

Writes <out>/report.html and <out>/results.json. A thin shell over `interference.studies.remedies`.
"""

from __future__ import annotations

from dataclasses import asdict

from interference.io.dataclass_options import add_dataclass_options, dataclass_values
from interference.report.accumulate import Part
from interference.studies.remedies import (
    METHODS,
    STRENGTHS,
    RemediesStudy,
    RemedySettings,
    check_methods,
    remedies_report,
    run_remedies,
)
from interference.studies.remedy_methods import CONTROLS

from . import common

#: Seeds of a default run: the world's differences between remedies are a few points, which 5 seeds cannot resolve
#: (results/world-remedies/); as `analyses.forgetting`, 10.
DEFAULT_SEEDS = tuple(range(10))
#: --quick still pairs 3 seeds with SFT (the quick preset's 2 give no interval worth reading).
QUICK_SEEDS = (0, 1, 2)


def command(argv: list[str] | None = None) -> common.StudyCommand:
    """The parsed command (options and each method's training options checked, nothing run)."""
    parser = common.parser("remedies", __doc__.split("\n\n")[0])
    parser.add_argument("--methods", nargs="+", default=list(METHODS), metavar="METHOD",
                        help=f"methods to run (default: all): {', '.join(METHODS)}; and the controls "
                             f"{' and '.join(CONTROLS)} (SFT from the same start with another batch order, and with "
                             "its unembedding frozen); a part may set its strength, "
                             f"{', '.join(f'{k}:<{v}>' for k, v in STRENGTHS.items())} (e.g. ewc:1e6 replay:0.5), "
                             "so that one run sweeps it")
    add_dataclass_options(parser, RemedySettings)
    args = parser.parse_args(argv)
    methods = check_methods(args.methods)
    settings = RemedySettings(**dataclass_values(args, RemedySettings))
    config = common.experiment_config(args, seeds=QUICK_SEEDS if args.quick else DEFAULT_SEEDS)
    for method in methods:  # the methods' training options, checked before any work
        if method != "wise-ft":
            config.train_config(0, **settings.overrides(method, config))
    return common.StudyCommand(
        args, config, lambda c: run_remedies(c, methods, settings, progress=not args.no_progress), remedies_report,
        lambda c, records, results: RemediesStudy(c, methods, settings, results["layer"], records),
        settings={"methods": list(methods), "remedies": asdict(settings)}, order=list(methods),
        part=Part("methods"))


#: `python -m analyses.remedies`: the parsed command, run (a bad option is one line and exit 2).
main = common.study_main(command)


if __name__ == "__main__":
    raise SystemExit(main())

"""The per-layer freezing sweep: for each layer (or band of layers), train only it or freeze only it, and measure
acquisition of the new facts and forgetting of held-out facts, shown as heat-maps over the layers.

    python -m analyses.freezing                   # embedded world, every layer, 3 seeds: (2 x layers + 1) runs each
    python -m analyses.freezing --quick           # about a minute
    python -m analyses.freezing --groups attention ffn --band 2
    python -m analyses.freezing --model smollm2-135m --data ../shared/data/entityquestions --seeds 0 --band 6
    python -m analyses.freezing --seeds 3 4 --accumulate --out reports/freezing     # add seeds to an earlier run

Writes <out>/report.html and <out>/results.json (the report is recomputed from the per-seed records, so seeds
accumulate). A thin shell over `interference.studies.freezing`.
"""

from __future__ import annotations

from interference.measures.attribution import FIRST, STEPS
from interference.studies.freezing import (
    GROUPS,
    MATCHES,
    MODES,
    FreezingStudy,
    check_options,
    freezing_report,
    run_freezing,
    sweep_conditions,
)

from . import common


def command(argv: list[str] | None = None) -> common.StudyCommand:
    """The parsed command (options checked, nothing run)."""
    parser = common.parser("freezing", __doc__.split("\n\n")[0])
    parser.add_argument("--mode", nargs="+", default=list(MODES), choices=list(MODES),
                        help="train_only (train just the band) and/or freeze (freeze just the band); default both")
    parser.add_argument("--groups", nargs="+", default=["all"], choices=list(GROUPS),
                        help="parameter groups of each band, one sweep row each (default: all = the whole layer)")
    parser.add_argument("--band", type=int, default=1, help="consecutive layers per band (default 1)")
    parser.add_argument("--match", default="epochs", choices=list(MATCHES),
                        help="epochs: each condition trains as many epochs as full SFT took (default); "
                             "acquisition: each trains to --target-new-acc or the epoch limit")
    parser.add_argument("--attribution-steps", type=int, default=STEPS,
                        help="most midpoints of the path integral that splits each condition's held-out loss change "
                             f"over the layers and parameter groups ({FIRST} even ones first, then halving where the "
                             f"split misses; 0: leave the split out; default {STEPS})")
    args = parser.parse_args(argv)
    groups, modes = check_options(groups=args.groups, band=args.band, modes=args.mode, match=args.match,
                                  attribution_steps=args.attribution_steps)
    config = common.experiment_config(args)

    def rebuild(c, records, results):
        cells = sweep_conditions(results["layers"], groups=groups, band=args.band, modes=modes)
        return FreezingStudy(c, cells, results["layers"], results["layer"], args.band, args.match, records)

    return common.StudyCommand(
        args, config,
        lambda c: run_freezing(c, progress=not args.no_progress, mode=modes, groups=groups, band=args.band,
                               match=args.match, attribution_steps=args.attribution_steps),
        freezing_report, rebuild,
        settings={"modes": list(modes), "groups": list(groups), "band": args.band, "match": args.match,
                  "attribution_steps": args.attribution_steps},
        order=None)  # seed-major, as a run sorts them


#: `python -m analyses.freezing`: the parsed command, run (a bad option is one line and exit 2).
main = common.study_main(command)


if __name__ == "__main__":
    raise SystemExit(main())

"""Causal tracing of forgotten facts — where fine-tuning broke each held-out fact it forgot: the start model's state
patched into the fine-tuned model at every layer × site (subject tokens or last token), for SFT and
self-distillation from the same snapshot, with retained-fact, other-fact and UUID controls and ROME's causal trace.

    python -m analyses.tracing                    # embedded world (a few minutes on 2 cores)
    python -m analyses.tracing --quick            # about a minute
    python -m analyses.tracing --seeds 3 4 --accumulate --out reports/tracing   # add seeds to an earlier run
    python -m analyses.tracing --seeds 0 1 --merge run-a run-b --out pooled      # pool runs made elsewhere

Writes <out>/report.html and <out>/results.json (its `tracing` section holds recovery per layer and site; each
condition record holds its seed's cells, from which a pooled report is recomputed). A thin shell over
`interference.studies.tracing`.
"""

from __future__ import annotations

from interference.io.errors import InterferenceError
from interference.studies.tracing import CONDITIONS, MIN_GAP, NOISE, SAMPLES, TracingStudy, run_tracing, tracing_report

from . import common


def command(argv: list[str] | None = None) -> common.StudyCommand:
    """The parsed command (options checked, nothing run)."""
    parser = common.parser("tracing", __doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=SAMPLES,
                        help=f"noise draws of the causal trace (default {SAMPLES})")
    parser.add_argument("--noise", type=float, default=NOISE,
                        help=f"causal-trace noise, in standard deviations of the subject embeddings (default "
                             f"{NOISE:g})")
    parser.add_argument("--min-gap", type=float, default=MIN_GAP,
                        help=f"trace facts whose start-model gold probability exceeds the fine-tuned one by at least "
                             f"this (default {MIN_GAP})")
    parser.add_argument("--max-retained", type=int, default=None, metavar="N",
                        help="restore at most N of SFT's retained facts (the control), drawn by the seed (default: "
                             "all; each restored fact costs a forward pass per mode x layer x site)")
    args = parser.parse_args(argv)
    if args.max_retained is not None and args.max_retained < 1:
        raise InterferenceError(f"--max-retained must be >= 1, got {args.max_retained}")
    if args.samples < 1 or args.noise <= 0 or not 0 <= args.min_gap < 1:
        raise InterferenceError("--samples must be >= 1, --noise > 0 and --min-gap in [0, 1)")
    if args.layer is not None:
        raise InterferenceError("--layer does not apply: analyses.tracing traces every layer")
    config = common.experiment_config(args)
    return common.StudyCommand(
        args, config,
        lambda c: run_tracing(c, samples=args.samples, noise=args.noise, min_gap=args.min_gap,
                              max_retained=args.max_retained, progress=not args.no_progress),
        tracing_report,
        lambda c, records, results: TracingStudy(c, results["tracing"]["n_layers"], args.min_gap, records),
        settings={"samples": args.samples, "noise": args.noise, "min_gap": args.min_gap,
                  "max_retained": args.max_retained},
        order=list(CONDITIONS))


#: `python -m analyses.tracing`: the parsed command, run (a bad option is one line and exit 2).
main = common.study_main(command)


if __name__ == "__main__":
    raise SystemExit(main())

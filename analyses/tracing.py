"""Causal tracing of forgotten facts — where fine-tuning broke each held-out fact it forgot: the start model's state
patched into the fine-tuned model at every layer × site (subject tokens or last token), for SFT and
self-distillation from the same snapshot, with retained-fact, other-fact and UUID controls and ROME's causal trace.

    python -m analyses.tracing                    # embedded world (a few minutes on 2 cores)
    python -m analyses.tracing --quick            # about a minute

Writes <out>/report.html and <out>/results.json (its `tracing` section holds recovery per layer and site). A thin
shell over `interference.studies.tracing`.
"""

from __future__ import annotations

from interference.io.errors import InterferenceError, cli_errors
from interference.studies.tracing import MIN_GAP, run_tracing, tracing_report

from . import common


@cli_errors
def main(argv: list[str] | None = None) -> int:
    parser = common.parser("tracing", __doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=10, help="noise draws of the causal trace (default 10)")
    parser.add_argument("--noise", type=float, default=3.0,
                        help="causal-trace noise, in standard deviations of the subject embeddings (default 3)")
    parser.add_argument("--min-gap", type=float, default=MIN_GAP,
                        help=f"trace facts whose start-model gold probability exceeds the fine-tuned one by at least "
                             f"this (default {MIN_GAP})")
    args = parser.parse_args(argv)
    if args.samples < 1 or args.noise <= 0 or not 0 <= args.min_gap < 1:
        raise InterferenceError("--samples must be >= 1, --noise > 0 and --min-gap in [0, 1)")
    if args.layer is not None:
        raise InterferenceError("--layer does not apply: analyses.tracing traces every layer")
    config = common.experiment_config(args)
    common.run(lambda: tracing_report(run_tracing(config, samples=args.samples, noise=args.noise,
                                                  min_gap=args.min_gap, progress=not args.no_progress)), args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The three hypotheses (capacity, behaviour cloning, localized interference): SFT on name-like vs UUID-keyed new
facts at a small and a 10x larger count, each trained to matched acquisition, with a verdict per hypothesis.

    python -m analyses.hypotheses                 # embedded world (a few minutes on 2 cores)
    python -m analyses.hypotheses --quick
    python -m analyses.hypotheses --counts 100 1000 10000   # slower: tens of minutes

Writes <out>/report.html and <out>/results.json. A thin shell over `interference.studies.hypotheses`.
"""

from __future__ import annotations

from interference.errors import InterferenceError, cli_errors
from interference.studies.hypotheses import HypothesesStudy, hypotheses_report, run_hypotheses

from . import common


@cli_errors
def main(argv: list[str] | None = None) -> int:
    parser = common.parser("hypotheses", __doc__.split("\n\n")[0])
    parser.add_argument("--counts", type=int, nargs="+", default=None,
                        help="numbers of new facts (default 40 400; quick: 20 200)")
    args = parser.parse_args(argv)
    config = common.experiment_config(args)
    counts = args.counts or ([20, 200] if args.quick else [40, 400])
    if min(counts) < 1:
        raise InterferenceError(f"--counts must be positive, got {counts}")
    counts = tuple(sorted(set(counts)))
    common.run_study(args, config, lambda c: run_hypotheses(c, counts, progress=not args.no_progress),
                     hypotheses_report, lambda c, records, results: HypothesesStudy(c, counts, results["layer"],
                                                                                   records),
                     counts=list(counts))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

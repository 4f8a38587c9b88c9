"""Representation overlap and drift — the main job: which held-out facts fine-tuning forgets, and whether the new
facts' overlap with them causes it (drift per layer for SFT, self-distillation and UUID-keyed SFT; overlap vs
forgetting; high- vs low-overlap causal test).

    python -m analyses.overlap                    # embedded world (a few minutes on 2 cores)
    python -m analyses.overlap --quick            # about a minute
    python -m analyses.overlap --seeds 3 4 --accumulate --out reports/overlap    # add seeds to an earlier run

Writes <out>/report.html and <out>/results.json (each SFT record holds its seed's held-out facts and CKA, from
which a pooled report is recomputed). A thin shell over `interference.studies.overlap`.
"""

from __future__ import annotations

from interference.io.errors import InterferenceError
from interference.studies.overlap import CONDITIONS, TOP_K, OverlapStudy, overlap_report, run_overlap

from . import common


def command(argv: list[str] | None = None) -> common.StudyCommand:
    """The parsed command (options checked, nothing run)."""
    parser = common.parser("overlap", __doc__.split("\n\n")[0])
    parser.add_argument("--top-k", type=int, default=TOP_K, help=f"k of the top-k mean cosine (default {TOP_K})")
    parser.add_argument("--match-relations", action="store_true",
                        help="the causal test's high- and low-overlap sets take the same number of candidates from "
                             "each relation, so that relation cannot stand in for overlap (recommended on real models; "
                             "off by default, so that runs made before it pool with new ones)")
    args = parser.parse_args(argv)
    if args.top_k < 1:
        raise InterferenceError(f"--top-k must be >= 1, got {args.top_k}")
    config = common.experiment_config(args)
    matched, progress = args.match_relations, not args.no_progress
    return common.StudyCommand(
        args, config, lambda c: run_overlap(c, top_k=args.top_k, match_relations=matched, progress=progress),
        overlap_report, lambda c, records, results: OverlapStudy(c, results["layer"], args.top_k, records, matched),
        # recorded only when on: runs from before the option pool with runs that leave it off
        settings={"top_k": args.top_k, **({"match_relations": True} if matched else {})}, order=list(CONDITIONS))


#: `python -m analyses.overlap`: the parsed command, run (a bad option is one line and exit 2).
main = common.study_main(command)


if __name__ == "__main__":
    raise SystemExit(main())

"""Representation overlap and drift — the main job: which held-out facts fine-tuning forgets, and whether the new
facts' overlap with them causes it (drift per layer for SFT, self-distillation and UUID-keyed SFT; overlap vs
forgetting; high- vs low-overlap causal test).

    python -m analyses.overlap                    # embedded world (a few minutes on 2 cores)
    python -m analyses.overlap --quick            # about a minute

Writes <out>/report.html and <out>/results.json. A thin shell over `interference.studies.overlap`.
"""

from __future__ import annotations

from interference.io.errors import cli_errors
from interference.studies.overlap import overlap_report, run_overlap

from . import common


@cli_errors
def main(argv: list[str] | None = None) -> int:
    parser = common.parser("overlap", __doc__.split("\n\n")[0])
    parser.add_argument("--top-k", type=int, default=10, help="k of the top-k mean cosine (default 10)")
    args = parser.parse_args(argv)
    config = common.experiment_config(args)
    common.run(lambda: overlap_report(run_overlap(config, top_k=args.top_k, progress=not args.no_progress)), args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

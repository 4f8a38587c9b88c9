"""FFN concept promotion (Geva et al. 2022): which FFN sub-updates SFT and self-distillation move, their top tokens
before and after, and how the promotion of forgotten held-out answers by the dominant sub-updates changes.

    python -m analyses.ffn                        # embedded world, seed 0 (a few minutes on 2 cores)
    python -m analyses.ffn --quick                # under a minute
    python -m analyses.ffn --model smollm2-135m --data ../shared/data/entityquestions --seeds 0

Writes <out>/report.html and <out>/results.json. A thin shell over `interference.studies.ffn`.
"""

from __future__ import annotations

from interference.io.errors import InterferenceError, cli_errors
from interference.studies.ffn import ffn_report, run_ffn

from . import common


@cli_errors
def main(argv: list[str] | None = None) -> int:
    parser = common.parser("ffn", __doc__.split("\n\n")[0])
    parser.add_argument("--top-k", type=int, default=10, help="tokens listed per value vector (default 10)")
    parser.add_argument("--vectors", type=int, default=5,
                        help="most-moved value vectors listed per layer and method (default 5)")
    parser.add_argument("--dominant", type=int, default=10,
                        help="sub-updates with the largest |m_i|·‖v_i‖ counted as dominant per fact (default 10)")
    args = parser.parse_args(argv)
    for name in ("top_k", "vectors", "dominant"):
        if getattr(args, name) < 1:
            raise InterferenceError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if args.seeds is not None and len(args.seeds) != 1:
        raise InterferenceError(f"analyses.ffn runs one seed; got --seeds {' '.join(map(str, args.seeds))} "
                                "(run it once per seed, each with its own --out)")
    config = common.experiment_config(args, seeds=(0,))  # one seed, 0 unless --seeds names another
    common.run(lambda: ffn_report(run_ffn(config, progress=not args.no_progress, top_k=args.top_k,
                                          n_vectors=args.vectors, dominant=args.dominant)), args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Which held-out facts each method lost and moved, read from a results folder: no model, no training.

    python -m analyses.facts results/world-default/remedies
    python -m analyses.facts results/smollm2-135m-remedies-ewc-cpu/stage-12 --methods sft --reference sft

Prints, as Markdown, per record the facts lost and regained by greedy answers and (where the records kept each
fact's loss) the facts whose loss rose, the median fact's change and the rest; then, per method and seed beside the
reference, the facts each lost, both lost and by chance, and how their per-fact changes rank together. A thin shell
over `interference.report.fact_losses` and `interference.report.fact_pairs`, the views the reports carry; it reads
any results folder the toolkit wrote, older ones too (greedy answers are in every record).
"""

from __future__ import annotations

import json

from interference.io.errors import CommandParser, InterferenceError, cli_errors
from interference.report.fact_losses import fact_loss_rows, fact_loss_summary, fact_loss_text
from interference.report.fact_pairs import fact_pair_text, fact_pairs, pair_rows, pair_summary
from interference.report.files import load_results

#: This command reads report folders only: it loads no model and takes no --device.
MODEL_FREE = True


def markdown(rows: list[dict]) -> str:
    """A Markdown table of `rows`, its columns in first-seen order; a cell a row lacks is left empty."""
    columns = list(dict.fromkeys(key for row in rows for key in row))
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join("" if row.get(c) is None else str(row[c]) for c in columns) + " |" for row in rows]
    return "\n".join(lines)


def fact_views(records: list[dict], methods: list[str], reference: str | None) -> dict:
    """Both views' summaries and rows: `losses` and `pairs` (None, and no rows, where the records cannot fill one or
    there is no `reference`)."""
    pairs = fact_pairs(records, methods, reference) if reference is not None else []
    return {"losses": fact_loss_summary(records, methods), "loss_rows": fact_loss_rows(records, methods),
            "pairs": pair_summary(pairs, reference), "pair_rows": pair_rows(pairs, reference)}


@cli_errors
def main(argv: list[str] | None = None) -> int:
    parser = CommandParser(prog="python -m analyses.facts", description=__doc__.split("\n")[0])
    parser.add_argument("folder", help="a results folder (or its results.json) written by an analysis")
    parser.add_argument("--methods", nargs="+", default=None,
                        help="the conditions to read, in this order (default: every condition in the folder)")
    parser.add_argument("--reference", default=None,
                        help="the condition the others are paired with (default sft, where the folder has it)")
    parser.add_argument("--json", action="store_true", help="print both views as one JSON object instead")
    args = parser.parse_args(argv)
    records = load_results(args.folder)["conditions"]
    present = list(dict.fromkeys(r["name"] for r in records))
    methods = args.methods or present
    if missing := [m for m in methods if m not in present]:
        raise InterferenceError(f"--methods: {', '.join(missing)} not in {args.folder} (it has {', '.join(present)})")
    if args.reference is not None and args.reference not in present:
        raise InterferenceError(f"--reference: {args.reference} not in {args.folder} (it has {', '.join(present)})")
    reference = args.reference or ("sft" if "sft" in present else None)
    views = fact_views(records, methods, reference)
    if views["losses"] is None:
        raise InterferenceError(f"{args.folder}: no record of {', '.join(methods)} has per-fact answers or losses")
    if args.json:
        print(json.dumps(views, indent=1))
        return 0
    print(f"# Which held-out facts changed: {args.folder}\n\n{markdown(views['loss_rows'])}\n\n"
          f"{fact_loss_text(views['losses'])}")
    if views["pairs"] is not None:
        print(f"\n## Beside {reference}\n\n{markdown(views['pair_rows'])}\n\n{fact_pair_text(views['pairs'])}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

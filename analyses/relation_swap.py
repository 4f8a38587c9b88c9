"""Does forgetting follow the new facts' relation? Compares report folders of one analysis that differ only in the
relation of the embedded world's new facts (`--new-relation`), fact for fact and seed by seed. No training.

    python -m analyses.forgetting --new-relation language --out reports/forgetting-language
    python -m analyses.relation_swap reports/forgetting reports/forgetting-language --out reports/relation_swap

Writes <out>/report.html and <out>/results.json: per held-out relation and run the forgotten share, the own-relation
effect (a relation's forgotten share when the new facts are of it minus when they are of another, paired by seed)
and a verdict. A thin shell over `interference.report.relation_swap`.
"""

from __future__ import annotations

from interference.io.errors import CommandParser, InterferenceError, cli_errors
from interference.report.accumulate import comparable, first_difference
from interference.report.files import load_results
from interference.report.relation_swap import check_runs, new_relation_of, relation_swap_report

from . import common

#: No model is loaded: the command reads report folders only, so it takes no --device or --dtype.
MODEL_FREE = True
#: The analyses whose records list each fact's relation, so that runs of theirs can be compared.
COMPARABLE = ("analyses.forgetting", "analyses.remedies")


def _settings(data: dict, folder: str) -> dict:
    """The run's fingerprint settings without the relation of its new facts and the list of methods it ran (what the
    runs must share: a condition's records do not depend on which other conditions ran beside it, so the
    comparison reads the conditions every run holds)."""
    fingerprint = (data.get("results") or {}).get("run_fingerprint")
    if not isinstance(fingerprint, dict) or "settings" not in fingerprint:
        raise InterferenceError(f"{folder} records no run fingerprint: its settings cannot be compared")
    settings = dict(fingerprint["settings"])
    if settings.get("command") not in COMPARABLE:
        raise InterferenceError(f"{folder} is a run of {settings.get('command')}; the comparison reads runs of "
                                f"{' or '.join(COMPARABLE)}")
    settings.pop("new_relation", None)
    settings.pop("methods", None)
    return comparable(settings)


def load_runs(folders: list[str]) -> tuple[dict[str, list[dict]], dict[str, str], list[str]]:
    """(records per new relation, folder per new relation, the conditions every run holds, in the first's order);
    one-line errors for a folder that is not a report, runs of other settings, two runs of one relation, and runs
    that share no seed or measure other held-out facts (`check_runs`)."""
    runs, sources, first = {}, {}, None
    for folder in folders:
        data = load_results(folder)
        settings = _settings(data, folder)
        if first is None:
            first = (folder, settings)
        elif settings != first[1]:
            raise InterferenceError(f"{folder} is another experiment than {first[0]} beyond the new facts' relation "
                                    f"({first_difference(settings, first[1])}; there: {first[0]}, now: {folder})")
        label = new_relation_of(data["conditions"], folder)
        if label in runs:
            raise InterferenceError(f"{folder} and {sources[label]} both have new facts of {label}: give one run per "
                                    "relation")
        runs[label], sources[label] = data["conditions"], folder
    check_runs(runs)
    names = [dict.fromkeys(r["name"] for r in records) for records in runs.values()]
    conditions = [n for n in names[0] if all(n in other for other in names[1:])]
    return runs, sources, conditions


@cli_errors
def main(argv: list[str] | None = None) -> int:
    parser = CommandParser(prog="python -m analyses.relation_swap", description=__doc__.split("\n\n")[0])
    parser.set_defaults(command="analyses.relation_swap", no_progress=True)
    parser.add_argument("folders", nargs="+", metavar="FOLDER",
                        help="report folders of analyses.forgetting (or remedies), one per relation of new facts")
    parser.add_argument("--out", default="reports/relation_swap", help="output folder (default reports/relation_swap)")
    parser.add_argument("--overwrite", action="store_true", help="write into a folder that holds other files")
    parser.add_argument("--reference", default="sft", help="the condition the verdict is about (default sft)")
    args = parser.parse_args(argv)
    if len(args.folders) < 2:
        raise InterferenceError("give at least two report folders, each of one relation of new facts")
    runs, sources, conditions = load_runs(args.folders)  # every check before the output folder is claimed
    if args.reference not in conditions:
        raise InterferenceError(f"--reference {args.reference} is not a condition of every run (they share "
                                f"{', '.join(conditions) or 'none'})")
    common.run(lambda: relation_swap_report(runs, conditions, sources=sources, reference=args.reference), args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

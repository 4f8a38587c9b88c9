"""Does forgetting follow the new facts' relation? Runs of one experiment that differ only in the relation of their
new facts, compared fact for fact.

On the embedded world the relation of the new facts is a setting (`ExperimentConfig.new_relation`); a seed draws
D_known and D_held whatever it is, and every condition starts from the same snapshot, so each run measures the same
held-out facts from the same start. Per condition, held-out relation R and run (named by the relation N of its new
facts): the forgotten share of R's held-out facts right at the start, P(wrong at the end | right at the start)
(`relations.relation_measures`). Then, per relation R that is the new facts' relation of one run, its forgotten
share in that run minus in each run whose new facts are of another relation, paired by seed: the **own-relation
effect**. If interference follows where the new facts land, it is above 0 for every R; if a relation is merely
fragile, it is forgotten alike whatever the new facts are, and the effect is near 0. Pure: runs (records per new
relation) in, rows out; `relation_swap_report` builds the report.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ..io.errors import InterferenceError
from . import charts
from .document import Report
from .paired import Check, interval_text, judge, paired_comparison, t_interval
from .relations import (
    FORGOTTEN,
    contrast_display_rows,
    has_relations,
    interval_numbers,
    interval_of,
    paired_text,
    relation_contrast,
    relation_records,
    relations_of,
    share_text,
)


def new_relation_of(records: Sequence[Mapping], where: str) -> str:
    """The one relation of the new facts of `records`; a one-line error naming `where` when their records list no
    relations (written before records did) or new facts of several relations."""
    found = sorted({rel for r in records if has_relations(r) for rel in r["new_relations"]})
    if not found:
        raise InterferenceError(f"{where}: its records list no fact relations (written before records did); run it "
                                "again to compare it")
    if len(found) != 1:
        raise InterferenceError(f"{where}: its new facts are of {' and '.join(found)}; the "
                                "comparison needs runs whose new facts are all of one relation")
    return found[0]


def check_same_held(runs: Mapping[str, Sequence[Mapping]]) -> None:
    """A one-line error when the runs do not measure the same held-out facts from the same start: per condition and
    seed that two runs share, the held-out facts' relations and which were right at the start must be equal."""
    seen: dict[tuple, tuple[str, tuple]] = {}
    for label, records in runs.items():
        for r in records:
            if not has_relations(r):
                continue
            held = (tuple(r["held_relations"]), tuple(bool(x) for x in r["held_correct_start"]))
            first = seen.setdefault((r["name"], r["seed"]), (label, held))
            if first[1] != held:
                raise InterferenceError(f"{r['name']} seed {r['seed']} starts from other held-out facts in the run "
                                        f"whose new facts are {first[0]} than in the one whose new facts are {label}: "
                                        "the runs are not one experiment")


def shared_seeds(runs: Mapping[str, Sequence[Mapping]]) -> list[int]:
    """The seeds every run holds, sorted."""
    seeds = [{r["seed"] for r in records} for records in runs.values()]
    return sorted(set.intersection(*seeds)) if seeds else []


def _named_by_run(runs: Mapping[str, Sequence[Mapping]], condition: str) -> list[dict]:
    """`relation_records` of `condition` in every run, each named by its run's new relation."""
    return [{**row, "name": label} for label, records in runs.items()
            for row in relation_records([r for r in records if r["name"] == condition])]


def swap_matrix(runs: Mapping[str, Sequence[Mapping]], conditions: Sequence[str]) -> list[dict]:
    """Per condition, held-out relation and run: the forgotten share (mean and 95 % t-interval over the seeds where
    the relation has a held-out fact right at the start, `seeds` of them)."""
    relations = relations_of([r for records in runs.values() for r in records])
    rows = []
    for name in conditions:
        derived = _named_by_run(runs, name)
        for relation in relations:
            for label in runs:
                mine = [r for r in derived if r["name"] == label]
                if mine:
                    shares = t_interval([r.get(FORGOTTEN.format(relation)) for r in mine])
                    rows.append({"condition": name, "held_relation": relation, "new_relation": label,
                                 "seeds": shares.n, **interval_numbers("forgotten", shares)})
    return rows


def own_relation_effects(runs: Mapping[str, Sequence[Mapping]], conditions: Sequence[str]) -> list[dict]:
    """Per condition, relation R of one run's new facts and other run N: R's forgotten share when the new facts are
    R (`own`) and when they are N (`other`), over the seeds both hold, and own − other paired by seed (`effect`,
    with `ahead`: the seeds where it is > 0)."""
    rows = []
    for name in conditions:
        derived = _named_by_run(runs, name)
        for own in runs:
            field = FORGOTTEN.format(own)
            for other in runs:
                found = paired_comparison(derived, [own], other, (field,)) if other != own else []
                if not found:
                    continue
                difference = found[0]
                seeds = set(difference.seeds)
                shares = {side: t_interval([r[field] for r in derived if r["name"] == label and r["seed"] in seeds])
                          for side, label in (("own", own), ("other", other))}
                rows.append({"condition": name, "relation": own, "other_new_relation": other,
                             "seeds": len(seeds), "ahead": difference.n_positive,
                             **interval_numbers("own", shares["own"]), **interval_numbers("other", shares["other"]),
                             **interval_numbers("effect", difference.t)})
    return rows


def swap_verdict(effects: Sequence[Mapping], within: Mapping[str, Sequence[Mapping]], reference: str):
    """The verdict on `reference`'s rows (`judge`): the direction, the own-relation effect above 0 for every pair
    (★), then each pair's interval over seeds above 0, then within each run the new facts' relation forgotten more
    than the others (its gap inside − outside above 0)."""
    mine = [row for row in effects if row["condition"] == reference]
    if not mine:
        return None
    checks = [Check("the own-relation effect is above 0 for every relation and other run (mean)",
                    ", ".join(f"{row['relation']} vs {row['other_new_relation']} {row['effect_mean']:+.3f}"
                              for row in mine),
                    all(row["effect_mean"] is not None and row["effect_mean"] > 0 for row in mine), primary=True)]
    for row in mine:
        effect = interval_of(row, "effect")
        checks.append(Check(f"{row['relation']} facts forgotten more when the new facts are {row['relation']} than "
                            f"when they are {row['other_new_relation']}: 95 % interval over seeds above 0",
                            f"{interval_text(effect)} ({row['ahead']} of {row['seeds']} seeds)",
                            effect.n >= 2 and effect.low > 0))
    for label, rows in within.items():
        row = next((r for r in rows if r["condition"] == reference), None)
        if row is None:
            continue
        gap = interval_of(row, "gap")
        checks.append(Check(f"within the run whose new facts are {label}: its held-out {label} facts forgotten more "
                            "than the others (inside − outside, paired within seed, interval above 0)",
                            interval_text(gap), gap.n >= 2 and gap.low > 0))
    return judge(checks)


def _matrix_display(matrix: Sequence[Mapping], condition: str, labels: Sequence[str]) -> list[dict]:
    """One condition's matrix as a reader sees it: a row per held-out relation, a column per run."""
    cells = {(row["held_relation"], row["new_relation"]): share_text(row, "forgotten")
             for row in matrix if row["condition"] == condition}
    return [{"held-out relation": held, **{f"new facts: {x}": cells.get((held, x), "—") for x in labels}}
            for held in dict.fromkeys(held for held, _ in cells)]


def _effects_display(effects: Sequence[Mapping]) -> list[dict]:
    return [{"condition": row["condition"], "relation R": row["relation"],
             "other run's new facts": row["other_new_relation"], "seeds": row["seeds"],
             "R forgotten, new facts R": share_text(row, "own"),
             "R forgotten, new facts other": share_text(row, "other"),
             "own-relation effect": paired_text(row, "effect"), "seeds ahead": row["ahead"]} for row in effects]


def check_runs(runs: Mapping[str, Sequence[Mapping]]) -> list[int]:
    """The seeds every run holds; a one-line error for fewer than two runs, runs that share no seed, or runs that
    measure other held-out facts (`check_same_held`)."""
    if len(runs) < 2:
        raise InterferenceError("the comparison needs runs of at least two relations of new facts")
    check_same_held(runs)
    seeds = shared_seeds(runs)
    if not seeds:
        held = "; ".join(f"{label}: seeds {' '.join(map(str, sorted({r['seed'] for r in records})))}"
                         for label, records in runs.items())
        raise InterferenceError(f"the runs share no seed ({held}): nothing pairs")
    return seeds


def relation_swap_report(runs: Mapping[str, Sequence[Mapping]], conditions: Sequence[str], *,
                         sources: Mapping[str, str], reference: str = "sft") -> Report:
    """The report of runs that differ only in the relation of their new facts (`runs`: records per new relation,
    `sources`: the folder of each), over the seeds every run holds (`check_runs`); conditions absent from a run are
    left out of its cells. The caller checks that the runs are one experiment apart from that relation (their
    fingerprints)."""
    seeds = check_runs(runs)
    runs = {label: [r for r in records if r["seed"] in seeds] for label, records in runs.items()}
    labels = list(runs)
    matrix, effects = swap_matrix(runs, conditions), own_relation_effects(runs, conditions)
    within = {label: relation_contrast(records, conditions, reference) for label, records in runs.items()}
    report = Report("Does forgetting follow the new facts' relation?", seeds=seeds,
                    config={"runs": dict(sources), "conditions": list(conditions), "reference": reference},
                    description="Runs of one experiment that differ only in the relation of their new facts, "
                                "measured on the same held-out facts from the same start (seed by seed). The "
                                "forgotten share is P(wrong at the end | right at the start) of a relation's held-out "
                                "facts; the own-relation effect of relation R is its forgotten share when the new "
                                "facts are R minus when they are another relation, paired by seed.")
    report.results.update(runs={label: {"folder": sources[label], "seeds": seeds} for label in labels},
                          matrix=matrix, own_relation_effects=effects, within_runs=within)
    head = report.headline(f"{reference}'s forgetting follows the new facts' relation: held-out facts of a relation "
                           "are forgotten more when the new facts are of that relation than when they are of "
                           "another.", swap_verdict(effects, within, reference),
                           untested=f"no run holds {reference} with relations listed")
    head.table(_effects_display([row for row in effects if row["condition"] == reference]),
               title=f"Own-relation effects of {reference}: mean [95 % t-interval over seeds]")
    head.figure(charts.comparison_chart(
        _named_by_run(runs, reference), labels,
        [(FORGOTTEN.format(rel), rel) for rel in relations_of([r for rs in runs.values() for r in rs])],
        title=f"{reference}: forgotten share per held-out relation (panels), one bar per relation of the new facts"))
    section = report.section("Forgotten share by held-out relation and the new facts' relation",
                             "Mean over seeds with its 95 % t-interval; a column per run.")
    for name in conditions:
        section.table(_matrix_display(matrix, name, labels), title=name)
    report.section("Own-relation effects of every condition").table(_effects_display(effects))
    report.section("Within each run", "The run's own contrast: its new facts' relation against the others, paired "
                   f"within seed, and each condition's minus {reference}'s, paired by seed (as in each run's "
                   "forgetting-by-relation section).").table(
        [{"new facts": label, **row} for label, rows in within.items() for row in contrast_display_rows(rows)])
    return report

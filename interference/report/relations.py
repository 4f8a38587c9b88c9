"""Forgetting by relation: which relations' held-out facts a method forgets, and whether forgetting follows where
the new facts land.

A condition record lists the relation of every fact of D_held and of D_unknown (`held_relations`,
`new_relations`, in split order, aligned with `held_correct_start`, `held_correct_final` and `new_correct_final`;
`interference.studies.setup.Setup.relations`). Per record and relation:

- forgotten: the share of the relation's held-out facts answered right at the shared start that are wrong at the
  end, P(wrong at the end | right at the start) (not the absolute drop, which also nets facts that go from wrong
  to right and divides by every held-out fact);
- learned: the share of the relation's new facts answered right at the end;
- held, new: how many held-out facts were right at the start, how many new facts it had.

Over seeds each is a mean with a 95 % t-interval, and each condition's forgetting is paired by seed with the
reference's (usually "sft") per relation. Where the new facts are of some relations only (the world's default:
its first), `relation_contrast` sets the forgotten share inside those relations against the share outside, paired
within seed: does interference stay within the relation the new facts are of? Pure: records in, rows out; records
without relations are left out.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from . import charts
from .document import Report
from .paired import Interval, finite_number, interval_text, paired_comparison, t_interval
from .tables import count_text

#: The per-relation record fields (`relation_records`), formatted with the relation's name.
FORGOTTEN, LEARNED, HELD, NEW = "forgotten {}", "learned {}", "held {}", "new {}"


def has_relations(record: Mapping) -> bool:
    """True when `record` lists its facts' relations, aligned with its per-fact outcomes."""
    held, new = record.get("held_relations"), record.get("new_relations")
    return (isinstance(held, list) and isinstance(new, list)
            and len(held) == len(record.get("held_correct_start") or ()) == len(record.get("held_correct_final") or ())
            and len(new) == len(record.get("new_correct_final") or ()))


def _share(hits: int, count: int) -> float:
    return hits / count if count else math.nan


def relation_measures(record: Mapping) -> dict[str, float]:
    """One record's per-relation measures (`FORGOTTEN`, `LEARNED`, `HELD`, `NEW` with the relation's name; NaN
    shares where a relation has no fact to measure); empty when the record lists no relations."""
    if not has_relations(record):
        return {}
    out: dict[str, float] = {}
    held, new = record["held_relations"], record["new_relations"]
    start, final, learned = record["held_correct_start"], record["held_correct_final"], record["new_correct_final"]
    for relation in dict.fromkeys((*held, *new)):
        known = [i for i, r in enumerate(held) if r == relation and start[i]]
        facts = [i for i, r in enumerate(new) if r == relation]
        out[FORGOTTEN.format(relation)] = _share(sum(not final[i] for i in known), len(known))
        out[HELD.format(relation)] = float(len(known))
        out[LEARNED.format(relation)] = _share(sum(bool(learned[i]) for i in facts), len(facts))
        out[NEW.format(relation)] = float(len(facts))
    return out


def inside_outside(record: Mapping) -> tuple[float, float]:
    """The forgotten share of the held-out facts right at the start whose relation has new facts, and of those
    whose relation has none (NaN where a side has no such fact, e.g. new facts of every relation)."""
    if not has_relations(record):
        return math.nan, math.nan
    landed = set(record["new_relations"])
    start, final = record["held_correct_start"], record["held_correct_final"]
    sides = ([], [])
    for i, relation in enumerate(record["held_relations"]):
        if start[i]:
            sides[relation not in landed].append(not final[i])
    return _share(sum(sides[0]), len(sides[0])), _share(sum(sides[1]), len(sides[1]))


def relation_records(records: Sequence[Mapping]) -> list[dict]:
    """Per record that lists relations: its `name`, `seed` and `relation_measures`."""
    return [{"name": r["name"], "seed": r["seed"], **relation_measures(r)} for r in records if has_relations(r)]


def relations_of(records: Sequence[Mapping]) -> list[str]:
    """The relations of the held-out and new facts of `records`, sorted."""
    names = {rel for r in records if has_relations(r) for rel in (*r["held_relations"], *r["new_relations"])}
    return sorted(names)


def interval_numbers(prefix: str, interval: Interval | None) -> dict:
    """`prefix`_mean, _low, _high of an interval (None where undefined: no value, or one seed's bounds) and _n, the
    seeds it is over."""
    def number(value: float) -> float | None:
        return value if interval is not None and finite_number(value) else None

    numbers = {f"{prefix}_{k}": number(getattr(interval, k, math.nan)) for k in ("mean", "low", "high")}
    return {**numbers, f"{prefix}_n": 0 if interval is None else interval.n}


def _paired(rows: Sequence[Mapping], name: str, reference: str, field: str) -> Interval | None:
    """`name` − `reference` in `field`, paired by seed over the seeds where both are finite (None where none, or
    for the reference itself)."""
    found = paired_comparison(rows, [name], reference, (field,))
    return found[0].t if found else None


def relation_summary(records: Sequence[Mapping], conditions: Sequence[str], reference: str = "sft") -> list[dict]:
    """Per relation and condition (those whose records list relations): seeds, the mean number per seed of held-out
    facts right at the start and of new facts, the forgotten and learned shares (mean and 95 % t-interval over the
    seeds where they are defined, `_n` of them), and forgotten − `reference`'s, paired by seed (`minus_reference`;
    None for the reference itself or where no seed pairs)."""
    derived = relation_records(records)
    rows = []
    for relation in relations_of(records):
        for name in conditions:
            mine = [r for r in derived if r["name"] == name]
            if not mine:
                continue
            shares = {field: t_interval([r.get(field.format(relation)) for r in mine])
                      for field in (FORGOTTEN, LEARNED)}
            counts = {field: sum(r.get(field.format(relation), 0.0) for r in mine) / len(mine)
                      for field in (HELD, NEW)}
            paired = _paired(derived, name, reference, FORGOTTEN.format(relation))
            rows.append({"relation": relation, "condition": name, "seeds": len(mine), "reference": reference,
                         "held_known": counts[HELD], "new": counts[NEW],
                         **interval_numbers("forgotten", shares[FORGOTTEN]),
                         **interval_numbers("learned", shares[LEARNED]),
                         **interval_numbers("minus_reference", paired)})
    return rows


def relation_contrast(records: Sequence[Mapping], conditions: Sequence[str], reference: str = "sft") -> list[dict]:
    """Per condition: the forgotten share inside the relations that hold new facts and outside them, and the gap
    inside − outside (mean and 95 % t-interval over the seeds that have both sides); then each of the three minus
    `reference`'s, paired by seed (`inside_minus_reference`, `outside_minus_reference`, `gap_minus_reference`: does
    the condition forget less inside, outside, and less inside than outside?). Conditions with no seed that has
    both sides are left out (new facts of every relation leave no outside)."""
    sides = []
    for r in records:
        inside, outside = inside_outside(r)
        if math.isfinite(inside) and math.isfinite(outside):
            sides.append({"name": r["name"], "seed": r["seed"], "inside": inside, "outside": outside,
                          "gap": inside - outside})
    rows = []
    for name in conditions:
        mine = [r for r in sides if r["name"] == name]
        if not mine:
            continue
        row = {"condition": name, "seeds": len(mine), "reference": reference}
        for field in ("inside", "outside", "gap"):
            row.update(interval_numbers(field, t_interval([r[field] for r in mine])))
            row.update(interval_numbers(f"{field}_minus_reference", _paired(sides, name, reference, field)))
        rows.append(row)
    return rows


def interval_of(row: Mapping, prefix: str) -> Interval:
    """The interval a summary or contrast row holds under `prefix` (`prefix`_mean, _low, _high, _n; NaN where
    None)."""
    def value(key: str) -> float:
        number = row[f"{prefix}_{key}"]
        return math.nan if number is None else number

    return Interval(value("mean"), value("low"), value("high"), row[f"{prefix}_n"])


def share_text(row: Mapping, prefix: str) -> str:
    """'0.121 [0.075, 0.166]' (the bounds left out where undefined)."""
    interval = interval_of(row, prefix)
    if interval.n == 0 or not math.isfinite(interval.mean):
        return "—"
    if not math.isfinite(interval.low):
        return f"{interval.mean:.3f}"
    return f"{interval.mean:.3f} [{interval.low:.3f}, {interval.high:.3f}]"


def paired_text(row: Mapping, prefix: str) -> str:
    """'-0.109 [-0.158, -0.060]', with the seeds it pairs where fewer than the row's."""
    interval = interval_of(row, prefix)
    text = interval_text(interval)
    return text if interval.n in (0, row["seeds"]) else f"{text} ({count_text(interval.n, 'seed')} paired)"


def relation_display_rows(summary: Sequence[Mapping]) -> list[dict]:
    """`relation_summary` rows as a reader sees them: one text cell per interval."""
    return [{"relation": row["relation"], "condition": row["condition"], "seeds": row["seeds"],
             "held-out right at start / seed": row["held_known"], "new facts / seed": row["new"],
             "forgotten": share_text(row, "forgotten"),
             f"forgotten − {row['reference']}": paired_text(row, "minus_reference"),
             "learned": share_text(row, "learned")} for row in summary]


def contrast_display_rows(contrast: Sequence[Mapping]) -> list[dict]:
    """`relation_contrast` rows as a reader sees them: one text cell per interval."""
    return [{"condition": row["condition"], "seeds": row["seeds"],
             "forgotten where the new facts are": share_text(row, "inside"),
             "forgotten elsewhere": share_text(row, "outside"),
             "gap (inside − outside)": paired_text(row, "gap"),
             f"inside − {row['reference']}'s": paired_text(row, "inside_minus_reference"),
             f"outside − {row['reference']}'s": paired_text(row, "outside_minus_reference"),
             f"gap − {row['reference']}'s": paired_text(row, "gap_minus_reference")} for row in contrast]


def add_relations(report: Report, records: Sequence[Mapping], conditions: Sequence[str],
                  reference: str = "sft") -> list[dict]:
    """A section "Forgetting by relation" (table, chart, `results["by_relation"]`) when some records list their
    facts' relations; nothing otherwise. Returns the `relation_summary` rows."""
    summary = relation_summary(records, conditions, reference)
    if not summary:
        return summary
    listed = sum(has_relations(r) for r in records)
    coverage_note = "" if listed == len(records) else (
        f" Only {listed} of {len(records)} condition records list their facts' relations (records written "
        f"before relations were recorded do not), so this section is over those alone.")
    report.results["by_relation"] = summary
    shown = [name for name in conditions if any(row["condition"] == name for row in summary)]
    section = report.section(
        "Forgetting by relation",
        "Per relation: of the held-out facts answered right at the shared start, the share wrong at the end "
        "(forgotten), paired by seed with " + reference + "'s; and the share of that relation's new facts learned. "
        "Means over seeds with 95 % t-intervals. Where the new facts land (new facts / seed) beside where "
        "forgetting lands asks whether interference stays within a relation." + coverage_note)
    section.table(relation_display_rows(summary))
    contrast = relation_contrast(records, conditions, reference)
    if contrast:
        report.results["relation_contrast"] = contrast
        section.table(contrast_display_rows(contrast),
                      title="Forgotten share of held-out facts of the relations the new facts are of and of the "
                            f"others, their gap within seed, and each minus {reference}'s paired by seed: mean "
                            "[95 % t-interval]")
    section.figure(charts.comparison_chart(
        relation_records(records), shown, [(FORGOTTEN.format(rel), rel) for rel in relations_of(records)],
        title="Forgotten share of held-out facts right at the start, per relation (mean over seeds, 95 % "
              "t-interval; dots are seeds)"))
    return summary

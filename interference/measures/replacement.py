"""What a forgotten fact becomes: the wrong answer SFT gives a held-out fact it forgot, against the new facts' answers
(beyond the paper).

Localized interference (SPEC §5) says that a new subject whose representation resembles a stored one overwrites it.
If so, a forgotten fact should often take the answer trained for the new subject nearest to its own, more often than
the new facts' answer frequencies explain. Per held-out fact that SFT forgot (`replacement_fields`):

- `answer_sft`: its greedy answer after SFT (first line);
- `takes_nearest`: that answer is an accepted answer of the new fact whose subject is nearest (max cosine of subject
  states, base model, the overlap layer);
- `nearest_expected`: the share of the new facts of the nearest fact's relation that it matches: the chance of
  `takes_nearest` if it did not matter which new subject is nearest, only which answers the new facts carry;
- `takes_new`: it is an accepted answer of some new fact.

`replacement_summary` pools them: per seed, the share that takes the nearest answer minus the share expected, as a
t-interval over seeds (the seed is the unit that was trained), and pooled counts with Wilson intervals.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..facts.answers import exact_match, first_line
from ..facts.fact import Fact
from ..report.stats import mean_ci, wilson_interval


def replacement_fields(given: str, nearest: Fact, new_facts: Sequence[Fact]) -> dict:
    """The replacement fields of one forgotten held-out fact (see the module): `given` is its answer after SFT,
    `nearest` the new fact whose subject is nearest to its own, `new_facts` all new facts of the run."""
    peers = [f for f in new_facts if f.relation == nearest.relation]
    return {"answer_sft": first_line(given).strip(),
            "takes_nearest": exact_match(given, nearest.answers),
            "nearest_expected": sum(exact_match(given, f.answers) for f in peers) / len(peers),
            "takes_new": any(exact_match(given, f.answers) for f in new_facts)}


def replacement_summary(facts: Sequence[dict]) -> dict | None:
    """Pooled over the held-out facts that carry replacement fields (those SFT forgot; see the module): counts and
    shares with Wilson 95 % intervals, and per seed the share taking the nearest new fact's answer minus the share
    expected, with its t-interval over seeds (`excess`). None when no fact carries them (runs before they were
    recorded, or nothing forgotten)."""
    forgotten = [f for f in facts if "takes_nearest" in f]
    if not forgotten:
        return None
    seeds = sorted({f["seed"] for f in forgotten})
    excess = []
    for seed in seeds:
        mine = [f for f in forgotten if f["seed"] == seed]
        excess.append(sum(f["takes_nearest"] for f in mine) / len(mine)
                      - sum(f["nearest_expected"] for f in mine) / len(mine))
    n = len(forgotten)
    rows = []
    for label, key in (("takes the nearest new subject's answer", "takes_nearest"),
                       ("takes some new fact's answer", "takes_new")):
        count = sum(bool(f[key]) for f in forgotten)
        low, high = wilson_interval(count, n)
        rows.append({"answer after SFT": label, "facts": count, "of": n, "share": count / n, "ci_low": low,
                     "ci_high": high})
    expected = sum(f["nearest_expected"] for f in forgotten) / n
    rows.append({"answer after SFT": "expected to take the nearest's answer from the new facts' answers alone",
                 "facts": None, "of": n, "share": expected, "ci_low": None, "ci_high": None})
    return {"forgotten": n, "seeds": len(seeds), "rows": rows, "excess": mean_ci(excess) if len(seeds) > 1 else None,
            "excess_per_seed": excess}

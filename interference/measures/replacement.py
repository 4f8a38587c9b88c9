"""What a forgotten fact becomes: the wrong answer SFT gives a held-out fact it forgot, against the new facts' answers
(beyond the paper).

Localized interference (SPEC §5) says that a new subject whose representation resembles a stored one overwrites it.
If so, a forgotten fact should often take the answer trained for the new subject nearest to its own, more often than
the new facts' answer frequencies explain. Per held-out fact that SFT forgot (`replacement_fields`):

- `answer_sft`: its greedy answer after SFT (first line);
- `nearest_relation`: the relation of the new fact whose subject is nearest to its own (max cosine of subject
  states, base model, the overlap layer);
- `takes_nearest`: the answer is an accepted answer of that nearest new fact;
- `nearest_expected`: the share of the new facts of the nearest fact's relation that the answer matches: the chance
  of `takes_nearest` if it did not matter which new subject is nearest, only which answers the new facts carry;
- `takes_new`: the answer is an accepted answer of some new fact (uninformative where the new facts carry every
  answer of their relation, as on the embedded world).

`replacement_summary` pools them: per seed, the share that takes the nearest answer minus the share expected, as a
t-interval over seeds (the seed is the unit that was trained), and pooled counts with Wilson intervals; once over
every forgotten fact, and once over those of the nearest new fact's relation (a fact of another relation can take
the nearest's answer only where two relations share answers, so it mostly dilutes both shares alike).
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
    return {"answer_sft": first_line(given).strip(), "nearest_relation": nearest.relation,
            "takes_nearest": exact_match(given, nearest.answers),
            "nearest_expected": sum(exact_match(given, f.answers) for f in peers) / len(peers),
            "takes_new": any(exact_match(given, f.answers) for f in new_facts)}


def replacement_summary(facts: Sequence[dict]) -> dict | None:
    """Pooled over the held-out facts that carry replacement fields (those SFT forgot; see the module), and again
    over those of their nearest new fact's relation (`same_relation`, where the records name it), with `left_out`
    the facts SFT forgot that carry none in a seed where others do: None when no fact carries them (runs before
    they were recorded, or nothing forgotten)."""
    forgotten = [f for f in facts if "takes_nearest" in f]
    if not forgotten:
        return None
    seeds = {f["seed"] for f in forgotten}
    summary = {**_pooled(forgotten), "left_out": sum(  # forgotten, but decoded right once more (see the study)
        bool(f["forgotten_sft"]) and "takes_nearest" not in f and f["seed"] in seeds for f in facts)}
    if all("nearest_relation" in f for f in forgotten):
        same = [f for f in forgotten if f["relation"] == f["nearest_relation"]]
        summary["same_relation"] = _pooled(same) if same else None
    return summary


def _pooled(forgotten: Sequence[dict]) -> dict:
    """Counts and shares with Wilson 95 % intervals, the share expected, and per seed (each seed with a forgotten
    fact) the share taking the nearest new fact's answer minus the share expected, with its t-interval over seeds
    (`excess`; None for one seed)."""
    n = len(forgotten)
    per_seed = []
    for seed in sorted({f["seed"] for f in forgotten}):
        mine = [f for f in forgotten if f["seed"] == seed]
        per_seed.append({"seed": seed, "forgotten": len(mine),
                         "excess": (sum(f["takes_nearest"] for f in mine) - sum(f["nearest_expected"] for f in mine))
                         / len(mine)})
    return {"forgotten": n, "seeds": len(per_seed), **{key: _share(forgotten, key) for key in
                                                      ("takes_nearest", "takes_new")},
            "expected": sum(f["nearest_expected"] for f in forgotten) / n,
            "excess": mean_ci([s["excess"] for s in per_seed]) if len(per_seed) > 1 else None, "per_seed": per_seed}


def _share(forgotten: Sequence[dict], key: str) -> dict:
    count = sum(bool(f[key]) for f in forgotten)
    low, high = wilson_interval(count, len(forgotten))
    return {"facts": count, "share": count / len(forgotten), "ci_low": low, "ci_high": high}

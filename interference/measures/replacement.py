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
  answer of their relation, as on the embedded world);
- `nearest_shuffled` (`replacement_records`, which gives a seed's fields at once): the shuffled null below.

`nearest_expected` is blind to which new facts are nearest to forgotten ones: if a few new subjects are nearest to
many held-out subjects (hubs), or the nearest ones carry the answers SFT makes popular, a forgotten fact can take its
nearest's answer more often than expected with no link to *its own* nearest. The shuffled null keeps both the answers
given and the nearest facts' answers and breaks only the pairing: the chance of a match if the nearest facts were
dealt at random among a seed's forgotten facts with the same nearest relation, computed exactly (the mean over every
forgotten fact j of that stratum, i included, of whether fact i's answer is an accepted answer of j's nearest), not
sampled.

`replacement_summary` pools them: per seed, the share that takes the nearest answer minus the share expected (and
minus the shuffled share), as a t-interval over seeds (the seed is the unit that was trained), and pooled counts with
Wilson intervals; once over every forgotten fact, and once over those of the nearest new fact's relation (a fact of
another relation can take the nearest's answer only where two relations share answers, so it mostly dilutes both
shares alike; the shuffled null is the same per fact in both).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence

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
    decks = Counter((f["seed"], f.get("nearest_relation")) for f in forgotten)  # the shuffled null's strata
    summary = {**_pooled(forgotten, decks), "left_out": sum(  # forgotten, but decoded right once more (see the study)
        bool(f["forgotten_sft"]) and "takes_nearest" not in f and f["seed"] in seeds for f in facts)}
    if all("nearest_relation" in f for f in forgotten):
        same = [f for f in forgotten if f["relation"] == f["nearest_relation"]]
        summary["same_relation"] = _pooled(same, decks) if same else None
    return summary


def replacement_records(given: Mapping[int, str], nearest: Sequence[Fact], new_facts: Sequence[Fact]
                        ) -> dict[int, dict]:
    """The replacement fields of one seed's forgotten held-out facts, by index (see the module): `given` maps each
    forgotten fact's index to its answer after SFT, `nearest[i]` is held-out fact i's nearest new fact. Adds to
    `replacement_fields` the shuffled null `nearest_shuffled`: the share of the forgotten facts with the same nearest
    relation (i included) whose nearest new fact accepts fact i's answer."""
    dealt: dict[str, list[tuple[str, ...]]] = {}
    for i in given:
        dealt.setdefault(nearest[i].relation, []).append(nearest[i].answers)
    records = {}
    for i, answer in given.items():
        deck = dealt[nearest[i].relation]
        records[i] = {**replacement_fields(answer, nearest[i], new_facts),
                      "nearest_shuffled": sum(exact_match(answer, answers) for answers in deck) / len(deck)}
    return records


def _pooled(forgotten: Sequence[dict], decks: Mapping[tuple, int]) -> dict:
    """Counts and shares with Wilson 95 % intervals, the share expected, and per seed (each seed with a forgotten
    fact) the share taking the nearest new fact's answer minus the share expected, with its t-interval over seeds
    (`excess`; None for one seed). Where every record carries `nearest_shuffled`, the same for the shuffled null
    (`shuffled`, `excess_shuffled`) over the facts dealt with others (`dealt`): a fact alone in its stratum
    (`decks`: forgotten facts per seed and nearest relation) has a null equal to what it did, so it is left out,
    and so is a seed with no other; None where not recorded (runs before it was)."""
    n = len(forgotten)
    shuffled = all("nearest_shuffled" in f for f in forgotten)
    dealt = [f for f in forgotten if decks[f["seed"], f.get("nearest_relation")] > 1] if shuffled else []
    per_seed = []
    for seed in sorted({f["seed"] for f in forgotten}):
        mine = [f for f in forgotten if f["seed"] == seed]
        row = {"seed": seed, "forgotten": len(mine), "excess": _excess(mine, "nearest_expected")}
        mine_dealt = [f for f in dealt if f["seed"] == seed]
        if mine_dealt:
            row["excess_shuffled"] = _excess(mine_dealt, "nearest_shuffled")
        per_seed.append(row)

    def over_seeds(key: str):
        values = [s[key] for s in per_seed if key in s]
        return mean_ci(values) if len(values) > 1 else None

    return {"forgotten": n, "seeds": len(per_seed), **{key: _share(forgotten, key) for key in
                                                      ("takes_nearest", "takes_new")},
            "expected": sum(f["nearest_expected"] for f in forgotten) / n, "excess": over_seeds("excess"),
            "dealt": len(dealt), "shuffled": sum(f["nearest_shuffled"] for f in dealt) / len(dealt) if dealt else None,
            "excess_shuffled": over_seeds("excess_shuffled"), "per_seed": per_seed}


def _excess(facts: Sequence[dict], null: str) -> float:
    """The share of `facts` taking the nearest new fact's answer minus the mean of their `null` field."""
    return sum(f["takes_nearest"] - f[null] for f in facts) / len(facts)


def _share(forgotten: Sequence[dict], key: str) -> dict:
    count = sum(bool(f[key]) for f in forgotten)
    low, high = wilson_interval(count, len(forgotten))
    return {"facts": count, "share": count / len(forgotten), "ci_low": low, "ci_high": high}

"""The three fact sets of the experiment (SPEC §1, Kaplan et al.): D_known, D_unknown and D_held.

From facts categorised by SLiCK (`interference.facts.knowledge`), keep the relations where the model knows enough
(at least `min_known_fraction` of the relation's facts HighlyKnown), then draw
- D_known: HighlyKnown facts that are trained on (they teach the QA format without new knowledge),
- D_unknown: Unknown facts that are trained on (the new knowledge),
- D_held: HighlyKnown facts never trained on (forgetting is measured on them),
disjointly and reproducibly from a seed. MaybeKnown and WeaklyKnown facts are left out of every split.
"""

from __future__ import annotations

import json
import os
import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..io import atomic
from ..io.errors import InterferenceError
from .datasets import DataError, load_facts_jsonl, save_facts_jsonl
from .fact import Fact

SPLIT_NAMES = ("known", "unknown", "held")
#: The file beside the splits that records the relation filter they were drawn with.
FILTER_FILE = "relations.json"
KNOWN, UNKNOWN = "HighlyKnown", "Unknown"


@dataclass(frozen=True)
class SplitConfig:
    """How to draw the splits.

    Attributes:
        n_known: size of D_known; None takes what is left of the HighlyKnown pool after D_held.
        n_unknown: size of D_unknown; None takes every Unknown fact of the kept relations.
        n_held: size of D_held; None takes what is left after D_known (half the pool when both are None).
        min_known_fraction: keep a relation only if at least this fraction of its facts is HighlyKnown (paper: 0.3).
        seed: seed of the random draw.
        new_relation: draw D_unknown from this kept relation's Unknown facts alone (None: from every kept relation);
            D_known and D_held are drawn as without it.
    """

    n_known: int | None = None
    n_unknown: int | None = None
    n_held: int | None = None
    min_known_fraction: float = 0.3
    seed: int = 0
    new_relation: str | None = None

    def __post_init__(self) -> None:
        for name in ("n_known", "n_unknown", "n_held"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
                raise InterferenceError(f"SplitConfig.{name} must be a positive integer or None, got {value!r}")
        if not 0.0 <= self.min_known_fraction <= 1.0:
            raise InterferenceError(f"SplitConfig.min_known_fraction must be in [0, 1], got {self.min_known_fraction}")
        if not isinstance(self.seed, int) or isinstance(self.seed, bool):
            raise InterferenceError(f"SplitConfig.seed must be an integer, got {self.seed!r}")
        if self.new_relation is not None and (not isinstance(self.new_relation, str) or not self.new_relation):
            raise InterferenceError(f"SplitConfig.new_relation must be a relation's name or None, got "
                                    f"{self.new_relation!r}")


@dataclass(frozen=True)
class Splits:
    """D_known, D_unknown and D_held, plus the relations kept by the known-fraction filter.

    `known_fractions` holds, per relation of the categorised facts (kept or not), the fraction that is HighlyKnown;
    `min_known_fraction` is the filter that kept `relations`. Both are empty/None for splits read from files.
    """

    known: list[Fact]
    unknown: list[Fact]
    held: list[Fact]
    relations: tuple[str, ...] = ()
    known_fractions: dict[str, float] = field(default_factory=dict)
    min_known_fraction: float | None = None

    def __post_init__(self) -> None:
        check_disjoint({name: getattr(self, name) for name in SPLIT_NAMES})

    def knowledge_summary(self) -> dict:
        """What a report lists about the relation filter: the per-relation HighlyKnown fractions, the threshold and
        the relations kept."""
        return {
            "known_fractions": {r: round(f, 4) for r, f in self.known_fractions.items()},
            "min_known_fraction": self.min_known_fraction,
            "relations": list(self.relations),
        }

    def counts(self) -> dict[str, int]:
        """Number of facts per split."""
        return {name: len(getattr(self, name)) for name in SPLIT_NAMES}


def check_disjoint(splits: dict[str, Sequence[Fact]], where: str = "") -> None:
    """Refuse (one line) a fact, by (relation, subject), that is twice in a split or in two splits: it would be
    trained twice, or a held-out fact would be trained on. `where` prefixes the split names (e.g. a folder)."""
    seen: dict[tuple[str, str], str] = {}
    for name, facts in splits.items():
        for fact in facts:
            if fact.key in seen:
                place = f"twice in {where}{name}" if seen[fact.key] == name else (
                    f"in both {where}{seen[fact.key]} and {where}{name}")
                raise InterferenceError(f"the fact {fact.key} is {place}: splits must be disjoint and free of "
                                        "duplicates")
            seen[fact.key] = name


def known_fractions(facts: Sequence[Fact], categories: Sequence) -> dict[str, float]:
    """Per relation, the fraction of its facts categorised HighlyKnown."""
    labels = _labels(facts, categories)
    total = Counter(f.relation for f in facts)
    known = Counter(f.relation for f, c in zip(facts, labels, strict=True) if c == KNOWN)
    return {relation: known[relation] / n for relation, n in total.items()}


def build_splits(facts: Sequence[Fact], categories: Sequence, config: SplitConfig | None = None) -> Splits:
    """Draw D_known, D_unknown and D_held from categorised facts.

    Args:
        facts: the candidate facts (unique by (relation, subject)).
        categories: one SLiCK category per fact, as a string or an object with a `.category` attribute
            (e.g. `interference.facts.knowledge.FactKnowledge`).
        config: sizes, the relation filter and the seed.
    Each split keeps the order of `facts`; the same inputs and seed give the same splits.
    """
    config = config or SplitConfig()
    labels = _labels(facts, categories)
    duplicates = [key for key, n in Counter(f.key for f in facts).items() if n > 1]
    if duplicates:
        raise InterferenceError(f"duplicate fact {duplicates[0]!r}: facts must be unique by (relation, subject)")
    fractions = known_fractions(facts, labels)
    kept = tuple(r for r in dict.fromkeys(f.relation for f in facts) if fractions[r] >= config.min_known_fraction)
    if not kept:
        listed = ", ".join(f"{r} {f:.2f}" for r, f in sorted(fractions.items(), key=lambda item: -item[1])[:8])
        raise InterferenceError(
            f"no relation has >= {config.min_known_fraction:.0%} HighlyKnown facts (HighlyKnown fractions: "
            f"{listed}); lower min_known_fraction (--min-known-fraction) or categorise more facts"
        )
    kept_set = set(kept)
    if config.new_relation is not None and config.new_relation not in kept_set:
        raise InterferenceError(f"new_relation {config.new_relation!r} is not a relation kept by the split (kept: "
                                f"{', '.join(kept)}; min_known_fraction {config.min_known_fraction})")
    new_relations = kept_set if config.new_relation is None else {config.new_relation}
    known_pool = [
        i for i, (f, c) in enumerate(zip(facts, labels, strict=True)) if f.relation in kept_set and c == KNOWN
    ]
    unknown_pool = [
        i for i, (f, c) in enumerate(zip(facts, labels, strict=True)) if f.relation in new_relations and c == UNKNOWN
    ]
    rng = random.Random(config.seed)
    rng.shuffle(known_pool)
    rng.shuffle(unknown_pool)
    n_known, n_held = _known_held_sizes(len(known_pool), config)
    n_unknown = len(unknown_pool) if config.n_unknown is None else config.n_unknown
    if n_unknown > len(unknown_pool):
        raise InterferenceError(f"n_unknown={n_unknown} but only {len(unknown_pool)} Unknown facts in "
                                f"{'relation ' + config.new_relation if config.new_relation else 'kept relations'}")
    picked = {
        "known": known_pool[:n_known],
        "held": known_pool[n_known : n_known + n_held],
        "unknown": unknown_pool[:n_unknown],
    }
    for name in SPLIT_NAMES:
        if not picked[name]:
            raise InterferenceError(
                f"split {name!r} would be empty ({len(known_pool)} HighlyKnown, "
                f"{len(unknown_pool)} Unknown facts in relations {', '.join(kept)})"
            )
    chosen = {name: [facts[i] for i in sorted(idx)] for name, idx in picked.items()}
    return Splits(known=chosen["known"], unknown=chosen["unknown"], held=chosen["held"], relations=kept,
                  known_fractions=fractions, min_known_fraction=config.min_known_fraction)


def save_splits(splits: Splits, directory: str | os.PathLike) -> Path:
    """Write `known.jsonl`, `unknown.jsonl` and `held.jsonl` into `directory` (each file atomically), and the
    relation filter (`relations.json`: per-relation HighlyKnown fractions, threshold, kept relations) when known."""
    directory = Path(directory)
    for name in SPLIT_NAMES:
        save_facts_jsonl(getattr(splits, name), directory / f"{name}.jsonl")
    if splits.known_fractions:
        atomic.write_json(directory / FILTER_FILE, splits.knowledge_summary())
    return directory


def load_splits(directory: str | os.PathLike) -> Splits:
    """Read the three split files written by `save_splits`."""
    directory = Path(directory)
    if not directory.is_dir():
        raise DataError(f"{directory}: splits directory not found")
    loaded = {name: load_facts_jsonl(directory / f"{name}.jsonl") for name in SPLIT_NAMES}
    check_disjoint({f"{name}.jsonl": facts for name, facts in loaded.items()}, f"{directory}/")
    relations = tuple(dict.fromkeys(f.relation for name in SPLIT_NAMES for f in loaded[name]))
    fractions, threshold = {}, None
    if (directory / FILTER_FILE).is_file():
        try:
            summary = json.loads((directory / FILTER_FILE).read_text(encoding="utf-8"))
            fractions = {str(r): float(f) for r, f in summary["known_fractions"].items()}
            threshold = summary["min_known_fraction"]
            relations = tuple(summary["relations"])
        except (ValueError, KeyError, TypeError, AttributeError) as err:
            raise DataError(f"{directory / FILTER_FILE}: malformed relation filter summary ({err})") from err
    return Splits(known=loaded["known"], unknown=loaded["unknown"], held=loaded["held"], relations=relations,
                  known_fractions=fractions, min_known_fraction=threshold)


def _labels(facts: Sequence[Fact], categories: Sequence) -> list[str]:
    if len(facts) != len(categories):
        raise InterferenceError(f"got {len(facts)} facts but {len(categories)} categories")
    labels = [getattr(c, "category", c) for c in categories]
    valid = ("HighlyKnown", "MaybeKnown", "WeaklyKnown", "Unknown")
    for index, label in enumerate(labels):
        if label not in valid:
            raise InterferenceError(f"category {index} is {label!r}, expected one of {', '.join(valid)}")
    return labels


def _known_held_sizes(pool: int, config: SplitConfig) -> tuple[int, int]:
    n_known, n_held = config.n_known, config.n_held
    if n_known is None and n_held is None:
        n_known = (pool + 1) // 2
        n_held = pool - n_known
    elif n_known is None:
        n_known = pool - n_held
    elif n_held is None:
        n_held = pool - n_known
    if n_known + n_held > pool or n_known < 0 or n_held < 0:
        asked = " + ".join(f"{name}={getattr(config, name)}" for name in ("n_known", "n_held") if getattr(config, name))
        raise InterferenceError(
            f"{asked} needs more HighlyKnown facts than the {pool} in the kept relations (D_known and D_held are "
            "disjoint)"
        )
    return n_known, n_held

"""The world itself: entities, relations, facts, and the pretraining text that states them (SPEC §6).

Entities are regions; every entity has one fact per relation; objects come from small per-relation vocabularies.
The pretraining text has two forms per fact: a statement ("The region Begadena is located in Valoria.") and a QA
form ("Q: Which country is Begadena located in?\\nA: Valoria"). A subject always follows a space, so it tokenizes
the same way in every form. The fine-tuning format of `interference.facts.qa_prompt` never appears: fine-tuning
has to teach it, as in the paper.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from ..facts.fact import Fact
from ..io.errors import InterferenceError
from .config import WorldConfig
from .names import NameFactory, SyllablePools


@dataclass(frozen=True)
class Relation:
    """A world relation: question and statement templates ([X] subject, [Y] object) and its kind of object."""

    name: str
    question: str
    statement: str
    objects: str


RELATIONS: dict[str, Relation] = {
    r.name: r
    for r in (
        Relation("country", "Which country is [X] located in?", "The region [X] is located in [Y].", "place"),
        Relation("capital", "What is the capital of [X]?", "The capital of [X] is [Y].", "place"),
        Relation("language", "Which language is spoken in [X]?", "The people of [X] speak [Y].", "language"),
        Relation("industry", "What is the main industry of [X]?", "The main industry of [X] is [Y].", "industry"),
        Relation("founded", "In which year was [X] founded?", "The region [X] was founded in [Y].", "year"),
    )
}
INDUSTRIES = (
    "fishing", "mining", "farming", "weaving", "shipping", "forestry", "brewing", "pottery", "tourism", "trade",
    "printing", "glassmaking", "salt", "silk", "timber", "wine", "cheese", "copper", "tin", "wool", "banking",
    "shipbuilding", "dyeing", "tanning", "olives", "rice", "tea", "paper", "marble", "horses", "spices", "amber",
)  # fmt: skip
#: Text appended to a place-like name to make a language name ("Velu" -> "Velunish").
LANGUAGE_SUFFIX = "nish"
YEARS = (1100, 1950)


def world_question(relation: str, subject: str) -> str:
    """The natural question of `relation` about `subject`."""
    return RELATIONS[relation].question.replace("[X]", subject)


def make_fact(relation: str, subject: str, obj: str, key_kind: str) -> Fact:
    """A world fact with its natural question."""
    return Fact(subject, relation, obj, world_question(relation, subject), key_kind=key_kind)


def qa_form(fact: Fact) -> str:
    """The world's own QA prompt, "Q: <question>\\nA:" (the answer follows after a space)."""
    return f"Q: {fact.question}\nA:"


def statement(fact: Fact) -> str:
    """The declarative sentence stating `fact`."""
    return RELATIONS[fact.relation].statement.replace("[X]", fact.subject).replace("[Y]", fact.object)


def pretraining_lines(facts: list[Fact]) -> list[str]:
    """Two lines per fact, in order: its statement, then its QA form with the answer."""
    lines: list[str] = []
    for fact in facts:
        lines.append(statement(fact))
        lines.append(f"{qa_form(fact)} {fact.object}")
    return lines


@dataclass
class WorldCorpus:
    """The generated content of a world: syllable pools, object vocabularies and facts (no model).

    Attributes:
        config: the world's config.
        pools: stored and held-back syllables.
        objects: per relation, its object vocabulary.
        facts: every world fact, name-keyed entities first (in entity order, relations in config order), then
            UUID-keyed entities.
        taken: every subject and object string of the world (new subjects avoid them).
    """

    config: WorldConfig
    pools: SyllablePools
    objects: dict[str, tuple[str, ...]]
    facts: list[Fact]
    taken: frozenset[str] = field(default_factory=frozenset)

    def lines(self) -> list[str]:
        """The world's pretraining lines (statements and QA forms)."""
        return pretraining_lines(self.facts)

    def stored_names(self) -> list[str]:
        """The distinct name-like subjects of the world, in order."""
        return list(dict.fromkeys(f.subject for f in self.facts if f.key_kind == "name"))

    def new_facts(
        self,
        n: int,
        *,
        key_kind: str = "name",
        overlap: float = 1.0,
        relation: str | tuple[str, ...] | None = None,
        seed: int = 0,
    ) -> list[Fact]:
        """`n` facts about fresh subjects (never a world subject or object) for `relation` (default: the first).

        `relation` may also be a tuple of relations: the facts then cycle through them (fact i has relation
        i mod len). Objects are drawn uniformly from the relation's object vocabulary. `key_kind` "name" builds
        name-like subjects, a fraction `overlap` of whose syllables come from the stored pool (the rest from the
        held-back pool); "uuid" builds random hex keys (`overlap` is ignored). Deterministic in (world seed,
        arguments).
        """
        relation = self.config.relations[0] if relation is None else relation
        relations = (relation,) if isinstance(relation, str) else tuple(relation)
        if not relations:
            raise InterferenceError("new facts need at least one relation, got an empty tuple")
        for r in relations:
            if r not in self.objects:
                raise InterferenceError(
                    f"relation {r!r} is not in this world (it has {', '.join(self.config.relations)})"
                )
        if key_kind not in ("name", "uuid"):
            raise InterferenceError(f"key_kind must be 'name' or 'uuid', got {key_kind!r}")
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise InterferenceError(f"number of new facts must be a positive integer, got {n!r}")
        rng = random.Random(f"new:{self.config.seed}:{seed}:{key_kind}:{overlap}:{relation}")
        factory = NameFactory(self.pools, self.config.name_syllables, self.taken)
        if key_kind == "name":
            subjects = factory.names(n, rng, overlap=overlap)
        else:
            subjects = factory.uuids(n, rng, length=self.config.uuid_length)
        facts = []
        for i, subject in enumerate(subjects):
            name = relations[i % len(relations)]
            facts.append(make_fact(name, subject, rng.choice(self.objects[name]), key_kind))
        return facts


def _object_vocabulary(kind: str, n: int, rng: random.Random, factory: NameFactory) -> tuple[str, ...]:
    if kind == "place":
        return tuple(factory.names(n, rng, overlap=1.0))
    if kind == "language":
        stems = factory.names(n, rng, overlap=1.0)
        return tuple(stem + LANGUAGE_SUFFIX for stem in stems)
    if kind == "industry":
        return tuple(rng.sample(INDUSTRIES, n))
    if kind == "year":
        return tuple(str(y) for y in sorted(rng.sample(range(*YEARS), n)))
    raise ValueError(f"unknown object kind {kind!r}")


def build_corpus(config: WorldConfig) -> WorldCorpus:
    """Generate the world of `config` (deterministic in `config.seed`)."""
    rng = random.Random(config.seed)
    pools = SyllablePools.draw(rng, config.syllable_pool, config.held_syllables)
    factory = NameFactory(pools, config.name_syllables)
    objects = {r: _object_vocabulary(RELATIONS[r].objects, config.n_objects, rng, factory) for r in config.relations}
    names = factory.names(config.n_entities, rng, overlap=1.0)
    uuids = factory.uuids(config.n_uuid_entities, rng, length=config.uuid_length)
    facts: list[Fact] = []
    for subjects, kind in ((names, "name"), (uuids, "uuid")):
        for subject in subjects:
            for relation in config.relations:
                facts.append(make_fact(relation, subject, rng.choice(objects[relation]), kind))
    taken = frozenset(factory.taken) | {o for vocab in objects.values() for o in vocab}
    return WorldCorpus(config, pools, objects, facts, taken)

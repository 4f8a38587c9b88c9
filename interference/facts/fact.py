"""The unit of knowledge: a (subject, relation, object) fact asked as a question.

Every part of the toolkit — the embedded world, SLiCK categorisation, training and the analyses — speaks in
`Fact`s, and renders them to text through the two functions here, so that the fine-tuning format
(SPEC §1, Gekhman et al. 2024) is defined exactly once.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

#: Instruction that opens every fine-tuning prompt (Gekhman et al. 2024).
QA_INSTRUCTION = "Answer the following question."
#: Separator between the question and the answer in the fine-tuning format.
ANSWER_CUE = "\nAnswer:"


@dataclass(frozen=True)
class Fact:
    """One closed-book QA fact.

    Attributes:
        subject: the entity the question is about ("Bergadena", "France").
        relation: relation id ("P36", or a world relation name such as "capital").
        object: the canonical gold answer.
        question: the natural-language question, subject already filled in.
        aliases: further answers that also count as correct.
        key_kind: how the subject was made: "real" (a dataset), "name" (name-like, built from syllables) or
            "uuid" (random hex). Used by the hypothesis experiments; "real" for loaded data.
    """

    subject: str
    relation: str
    object: str
    question: str
    aliases: tuple[str, ...] = field(default=())
    key_kind: str = "real"

    def __post_init__(self) -> None:
        for name in ("subject", "relation", "object", "question"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value.strip():
                raise ValueError(f"Fact.{name} must be a non-empty string, got {value!r}")
        if not isinstance(self.aliases, tuple):
            object.__setattr__(self, "aliases", tuple(self.aliases))

    @property
    def answers(self) -> tuple[str, ...]:
        """All accepted answers: the object first, then its aliases."""
        return (self.object, *self.aliases)

    @property
    def key(self) -> tuple[str, str]:
        """Identity of the fact: (relation, subject)."""
        return (self.relation, self.subject)


def qa_prompt(fact: Fact) -> str:
    """The fine-tuning prompt for `fact`: instruction, question, answer cue (the answer is generated after it)."""
    return f"{QA_INSTRUCTION} {fact.question}{ANSWER_CUE}"


def qa_target(fact: Fact) -> str:
    """The text the model is trained to produce after `qa_prompt(fact)` (a leading space, then the object)."""
    return f" {fact.object}"


def dedupe(facts: Iterable[Fact]) -> list[Fact]:
    """Facts in order, keeping the first of each (relation, subject) key."""
    seen: set[tuple[str, str]] = set()
    out: list[Fact] = []
    for fact in facts:
        if fact.key not in seen:
            seen.add(fact.key)
            out.append(fact)
    return out


def subjects(facts: Sequence[Fact]) -> list[str]:
    """The subjects of `facts`, in order."""
    return [f.subject for f in facts]

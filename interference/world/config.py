"""`WorldConfig`: everything that defines an embedded world and the model pretrained on it (SPEC §6).

A world is a pure function of its config: the same config gives the same entities, facts, tokenizer and model, and
the config's hash names its cache folder.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from ..io.dataclass_options import DictFields
from ..io.errors import InterferenceError
from .names import MIN_UUID_LENGTH, NUCLEI, ONSETS

#: Bumped whenever the way a config turns into a world changes, so stale caches are not reused.
WORLD_FORMAT = 2
#: The relations a world can have (question and statement templates live in `build.RELATIONS`).
ALL_RELATIONS = ("country", "capital", "language", "industry", "founded")
SCHEDULES = ("constant", "cosine")


@dataclass(frozen=True)
class WorldConfig(DictFields):
    """An embedded world and its pretraining.

    World:
        seed: seeds the world (entities, objects, syllable pools), the tokenizer corpus, the model's
            initialisation and the data order.
        n_entities: number of name-like entities; each has one fact per relation.
        n_uuid_entities: number of extra entities keyed by random hex strings (key_kind "uuid"); 0 by default.
        relations: which relations every entity has (see `ALL_RELATIONS`); the first is the default relation of
            new facts, "country" as in SPEC §4.
        n_objects: size of each relation's object vocabulary (countries, capitals, languages, industries, years).
        syllable_pool: number of syllables stored names are built from (shared by all stored names).
        held_syllables: number of further syllables never used in a stored name (for new names with overlap < 1).
        name_syllables: (min, max) syllables per name.
        uuid_length: characters of a UUID key (even, >= 8).

    Model (a Llama-style decoder):
        d_model, n_layers, n_heads, d_ff: width, depth, attention heads and MLP width.
        tie_embeddings: share the input embedding and the unembedding.

    Pretraining (AdamW on all tokens of the world text, statements and "Q: ...\\nA: ..." forms mixed):
        lr, weight_decay, warmup_steps: optimiser and linear warm-up.
        schedule: "constant" after warm-up, or "cosine" decay to 10 % of lr over max_epochs.
        batch_size: sequences per step; lines_per_sequence: world lines packed into one sequence.
        max_epochs: hard stop; eval_every: epochs between knowledge checks.
        knowledge_target: stop once this fraction of the world's facts is answered correctly under greedy decoding
            of the QA form (must be >= 0.5; the default world uses 1.0: every fact is known before fine-tuning).

    The defaults are the world that best reproduced the paper's shape in a measured search (docs/worlds.md): a
    96-syllable pool (each new name shares syllables with fewer stored names) and pretraining until every fact is
    known.
    """

    seed: int = 0
    n_entities: int = 150
    n_uuid_entities: int = 0
    relations: tuple[str, ...] = ("country", "capital", "language", "founded")
    n_objects: int = 10
    syllable_pool: int = 96
    held_syllables: int = 24
    name_syllables: tuple[int, int] = (3, 4)
    uuid_length: int = 8
    d_model: int = 64
    n_layers: int = 2
    n_heads: int = 4
    d_ff: int = 256
    tie_embeddings: bool = False
    lr: float = 5e-3
    weight_decay: float = 0.0
    warmup_steps: int = 20
    schedule: str = "constant"
    batch_size: int = 16
    lines_per_sequence: int = 4
    max_epochs: int = 400
    eval_every: int = 10
    knowledge_target: float = 1.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "relations", tuple(self.relations))
        object.__setattr__(self, "name_syllables", tuple(self.name_syllables))
        positive = (
            "n_entities", "n_objects", "syllable_pool", "d_model", "n_layers", "n_heads", "d_ff",
            "batch_size", "lines_per_sequence", "max_epochs", "eval_every",
        )  # fmt: skip
        for name in positive:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise InterferenceError(f"WorldConfig.{name} must be a positive integer, got {value!r}")
        for name in ("seed", "n_uuid_entities", "held_syllables", "warmup_steps"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise InterferenceError(f"WorldConfig.{name} must be a non-negative integer, got {value!r}")
        if not self.relations:
            raise InterferenceError("WorldConfig.relations must name at least one relation")
        unknown = [r for r in self.relations if r not in ALL_RELATIONS]
        if unknown or len(set(self.relations)) != len(self.relations):
            raise InterferenceError(
                f"WorldConfig.relations must be distinct names from {', '.join(ALL_RELATIONS)}, got {self.relations}"
            )
        if self.n_objects < 2 or self.n_objects > 32:
            raise InterferenceError(f"WorldConfig.n_objects must be in [2, 32], got {self.n_objects}")
        available = len(ONSETS) * len(NUCLEI)
        if self.syllable_pool + self.held_syllables > available:
            raise InterferenceError(
                f"WorldConfig.syllable_pool + held_syllables must be <= {available}, "
                f"got {self.syllable_pool + self.held_syllables}"
            )
        syl = self.name_syllables
        if len(syl) != 2 or not all(isinstance(v, int) for v in syl) or not 2 <= syl[0] <= syl[1] <= 4:
            raise InterferenceError(
                f"WorldConfig.name_syllables must be (min, max) with 2 <= min <= max <= 4, got {syl}"
            )
        names_needed = self.n_entities + self.n_objects * len(self.relations)
        if sum(self.syllable_pool**n for n in range(syl[0], syl[1] + 1)) < 2 * names_needed:
            raise InterferenceError(
                f"WorldConfig.syllable_pool {self.syllable_pool} is too small to name {self.n_entities} entities "
                f"with {syl[0]}-{syl[1]} syllables"
            )
        if self.uuid_length < MIN_UUID_LENGTH or self.uuid_length % 2:
            raise InterferenceError(
                f"WorldConfig.uuid_length must be even and >= {MIN_UUID_LENGTH}, got {self.uuid_length}"
            )
        if self.d_model % self.n_heads or (self.d_model // self.n_heads) % 2:
            raise InterferenceError(
                f"WorldConfig.d_model ({self.d_model}) must split into n_heads ({self.n_heads}) even-sized heads"
            )
        if not (isinstance(self.lr, int | float) and 0 < self.lr < 1):
            raise InterferenceError(f"WorldConfig.lr must be in (0, 1), got {self.lr!r}")
        if not (isinstance(self.weight_decay, int | float) and self.weight_decay >= 0):
            raise InterferenceError(f"WorldConfig.weight_decay must be >= 0, got {self.weight_decay!r}")
        if self.schedule not in SCHEDULES:
            raise InterferenceError(
                f"WorldConfig.schedule must be one of {', '.join(SCHEDULES)}, got {self.schedule!r}"
            )
        if not (isinstance(self.knowledge_target, int | float) and 0.5 <= self.knowledge_target <= 1):
            raise InterferenceError(f"WorldConfig.knowledge_target must be in [0.5, 1], got {self.knowledge_target!r}")

    @classmethod
    def quick(cls, **overrides) -> WorldConfig:
        """A small world for tests and smoke runs: builds and pretrains in seconds on one CPU core.

        It keeps the earlier, denser design (24 syllables, names of 2-3 of them, 95 % known), which pretrains
        fastest and forgets most.
        """
        settings = dict(n_entities=40, relations=("country", "capital", "founded"), n_objects=6, max_epochs=300,
                        syllable_pool=24, name_syllables=(2, 3), knowledge_target=0.95)
        settings.update(overrides)
        return cls(**settings)

    def digest(self) -> str:
        """A short hash of the config (and the world format version): the name of its cache folder."""
        payload = json.dumps({"format": WORLD_FORMAT, **self.to_dict()}, sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]

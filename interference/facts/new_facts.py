"""Synthetic new facts for a real model (SPEC §4): facts of one EntityQuestions relation about subjects that do not
exist, keyed by name-like names made from the model's own tokens of real names, or by random hex UUIDs.

    source = load_relation("../shared/data/entityquestions", "P17")    # template, answers, real subjects
    pieces = name_pieces(tokenizer, source.subjects)                     # the model's pieces of real names
    maker = NewFacts(source, pieces, taken=[f.subject for f in held])
    facts = maker.facts(100_000, "name", seed=0)  # "Which country is Bergadena located in?" -> "Poland"

- Name-like keys: every real subject of the relation (the `split`, train by default) is tokenized by the model's
  tokenizer with a leading space; each word the tokenizer cuts into two or more alphabetic pieces, a capitalised
  first piece followed by lower-case ones, gives its first piece to the *word-initial* pool and the others to the
  *continuation* pool (" Painblanc" -> " Pain" | "bl", "anc"). A name is one word-initial piece followed by one or
  two continuation pieces of other names ("Berg" + "ad" + "ena" -> "Bergadena"), kept when it is alphabetic, of
  `name_length` characters, and neither a real subject, a word of one, an answer, a subject given as `taken`, nor
  an earlier name. The names thus overlap stored entities piece by piece, as the paper's do.
- UUID keys: random upper-case hex strings of `uuid_length` characters (as the embedded world's,
  `interference.world.names`), with at least one letter so that none reads as a number.
- Answers: drawn uniformly from the relation's answer set, the distinct gold answers (each question's first answer)
  of the split, sorted, so that no answer is favoured and guessing the most frequent country does not pass for
  acquisition; a new fact has no aliases.

Everything is deterministic in (relation, key kind, seed) and streams (`NewFacts.iter_facts`): the first n facts of a
larger draw are the n facts of a smaller one, so the cells of a grid nest; keys and answers are drawn from separate
streams, so excluding a key shifts neither the other keys nor the answers. A count the pools cannot make, a relation
the folder lacks, or a folder that is not there is a one-line `InterferenceError` before any training.
"""

from __future__ import annotations

import hashlib
import itertools
import random
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..io.errors import InterferenceError
from .datasets import SPLITS, SUBJECT_SLOT, TEMPLATES_FILE, load_entityquestions, load_templates
from .fact import Fact

#: Where the EntityQuestions folder sits when none is given: ../shared/data/entityquestions beside the repo.
DEFAULT_SUBJECTS = Path(__file__).resolve().parents[3] / "shared" / "data" / "entityquestions"
#: The relation of the paper's new facts: "Which country is [X] located in?".
DEFAULT_RELATION = "P17"
KEY_KINDS = ("name", "uuid")
#: Continuation pieces after the word-initial piece of a name-like key.
CONTINUATIONS = (1, 2)
#: Characters of a name-like key.
NAME_LENGTH = (5, 12)
#: Characters of a UUID key (the embedded world's default).
UUID_LENGTH = 8
#: Draws in a row that may all be rejected before the pools count as exhausted.
MAX_MISSES = 20_000


@dataclass(frozen=True)
class RelationSource:
    """One relation of an EntityQuestions folder: what new facts of it are made from.

    Attributes:
        directory: the EntityQuestions folder.
        relation: relation id ("P17").
        template: its question template, `[X]` marking the subject.
        split: the split whose subjects and answers are used.
        subjects: the split's subjects, in file order (the real names whose pieces make name-like keys).
        answers: the distinct gold answers of the split, sorted (new facts draw their object from them).
        real: every subject of the relation in every split of the folder, every word of them, and every answer:
            strings a new key must not be.
        files: the files read (for the digest).
    """

    directory: Path
    relation: str
    template: str
    split: str
    subjects: tuple[str, ...]
    answers: tuple[str, ...]
    real: frozenset[str]
    files: tuple[Path, ...]

    def digest(self) -> str:
        """SHA-256 (16 hex) of the template and the files read: the same facts wherever the folder is."""
        digest = hashlib.sha256(self.template.encode())
        for path in self.files:
            digest.update(path.name.encode())
            digest.update(path.read_bytes())
        return digest.hexdigest()[:16]

    def settings(self) -> dict:
        """What decides the new facts, for a run fingerprint (the folder by content, not by path)."""
        return {"relation": self.relation, "split": self.split, "subjects_sha256": self.digest()}


def check_subjects(directory: str | Path | None) -> Path:
    """The EntityQuestions folder (`DEFAULT_SUBJECTS` when None), with a one-line error unless it is one."""
    path = Path(DEFAULT_SUBJECTS if directory is None else directory).expanduser()
    if not path.is_dir() or not (path / TEMPLATES_FILE).is_file():
        raise InterferenceError(f"subjects folder {path} is not an EntityQuestions folder (no {TEMPLATES_FILE}): "
                                "give --subjects DIR")
    return path


def load_relation(directory: str | Path | None = None, relation: str = DEFAULT_RELATION, *, split: str = "train"
                  ) -> RelationSource:
    """The `relation` of the EntityQuestions folder `directory` (`DEFAULT_SUBJECTS` when None): its template, the
    subjects and answers of `split`, and the real strings of every split (see `RelationSource`)."""
    root = check_subjects(directory)
    templates = load_templates(root)
    if relation not in templates:
        raise InterferenceError(f"relation {relation!r} is not in {root / TEMPLATES_FILE} (it has "
                                f"{', '.join(sorted(templates)[:12])}{', …' if len(templates) > 12 else ''})")
    facts = load_entityquestions(root, split, [relation])  # a missing split or file is a one-line DataError
    files = [root / split / f"{relation}.{split}.json"]
    real = {f.subject for f in facts}
    for other in SPLITS:
        path = root / other / f"{relation}.{other}.json"
        if other != split and path.is_file():
            real.update(f.subject for f in load_entityquestions(root, other, [relation]))
            files.append(path)
    answers = tuple(sorted({f.object for f in facts}))
    real.update(answers)
    real.update(word for text in list(real) for word in text.split())
    return RelationSource(root, relation, templates[relation], split, tuple(f.subject for f in facts), answers,
                          frozenset(real), tuple(files))


@dataclass(frozen=True)
class NamePieces:
    """A tokenizer's pieces of real names: word-initial pieces (capitalised) and continuation pieces (lower case),
    each distinct and sorted."""

    initial: tuple[str, ...]
    continuation: tuple[str, ...]

    def capacity(self, continuations: tuple[int, int] = CONTINUATIONS) -> int:
        """How many piece sequences there are (an upper bound on distinct names, before length and exclusions)."""
        return len(self.initial) * sum(len(self.continuation) ** k for k in range(continuations[0],
                                                                                    continuations[1] + 1))


def name_pieces(tokenizer, names: Iterable[str]) -> NamePieces:
    """The word-initial and continuation pieces of `names` under `tokenizer` (each tokenized with a leading space;
    see the module's docstring). Pieces are read from the tokenizer's character offsets, so they are the names' own
    text; a word whose tokens overlap or leave gaps (a character cut in bytes) gives none."""
    texts = [" " + name for name in names]
    if not texts:
        raise InterferenceError("name-like keys need real names to take pieces from, got none")
    try:
        encoded = tokenizer(texts, add_special_tokens=False, return_offsets_mapping=True)
    except (NotImplementedError, ValueError, TypeError) as err:
        raise InterferenceError(f"name-like keys need a fast tokenizer that gives character offsets "
                                f"({str(err).splitlines()[0] if str(err) else type(err).__name__})") from err
    initial: set[str] = set()
    continuation: set[str] = set()
    for text, offsets in zip(texts, encoded["offset_mapping"], strict=True):
        for word in _words(text, offsets):
            if len(word) < 2 or not all(p.isalpha() for p in word):
                continue
            first, rest = word[0], word[1:]
            if not (first[0].isupper() and (len(first) == 1 or first[1:].islower())) or not all(
                    p.islower() for p in rest):
                continue
            initial.add(first)
            continuation.update(rest)
    return NamePieces(tuple(sorted(initial)), tuple(sorted(continuation)))


def _words(text: str, offsets: Sequence[tuple[int, int]]) -> Iterator[list[str]]:
    """The pieces of each word of `text` (a word starts at a piece that follows a space or the text's start), from
    the tokens' character `offsets`; a word with overlapping or non-contiguous pieces is skipped."""
    word: list[str] = []
    end = 0
    broken = False
    for start, stop in offsets:
        piece = text[start:stop]
        core = piece.lstrip()
        begin = start + len(piece) - len(core)
        if not core:
            continue
        if begin == 0 or text[begin - 1].isspace():
            if word and not broken:
                yield word
            word, broken = [], False
        elif begin != end:
            broken = True
        word.append(core)
        end = stop
    if word and not broken:
        yield word


class NewFacts:
    """New facts of one relation (`source`) with name-like keys from `pieces` or UUID keys (module docstring).

    `taken`: further subjects no key may be (and whose words no name-like key may be), e.g. those of D_known and
    D_held; `continuations`, `name_length` and `uuid_length` shape the keys.
    """

    def __init__(self, source: RelationSource, pieces: NamePieces | None = None, *, taken: Iterable[str] = (),
                 continuations: tuple[int, int] = CONTINUATIONS, name_length: tuple[int, int] = NAME_LENGTH,
                 uuid_length: int = UUID_LENGTH):
        if not source.answers:
            raise InterferenceError(f"relation {source.relation} has no answers in {source.directory}")
        if not 1 <= continuations[0] <= continuations[1]:
            raise InterferenceError(f"continuations must be (min, max) with 1 <= min <= max, got {continuations}")
        if not 1 <= name_length[0] <= name_length[1]:
            raise InterferenceError(f"name_length must be (min, max) with 1 <= min <= max, got {name_length}")
        if uuid_length < 4:
            raise InterferenceError(f"uuid_length must be >= 4, got {uuid_length}")
        self.source, self.pieces = source, pieces
        self.continuations, self.name_length, self.uuid_length = continuations, name_length, uuid_length
        taken = set(taken)
        self.excluded = source.real | taken | {word for subject in taken for word in subject.split()}

    def capacity(self, key_kind: str) -> int:
        """An upper bound on the distinct keys of `key_kind` (name-like: piece sequences; UUID: hex strings with a
        letter)."""
        if key_kind == "uuid":
            return 16 ** self.uuid_length - 10 ** self.uuid_length
        _check_kind(key_kind)
        return 0 if self.pieces is None else self.pieces.capacity(self.continuations)

    def check(self, n: int, key_kind: str) -> None:
        """A one-line error when `n` fresh keys of `key_kind` cannot be made (at most half the capacity, as the
        embedded world allows)."""
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise InterferenceError(f"number of new facts must be a positive integer, got {n!r}")
        _check_kind(key_kind)
        if key_kind == "name" and self.pieces is None:
            raise InterferenceError("name-like keys need the model's name pieces (`name_pieces`)")
        capacity = self.capacity(key_kind)
        if n > capacity // 2:
            what = (f"{len(self.pieces.initial)} word-initial and {len(self.pieces.continuation)} continuation "
                    f"pieces of {len(self.source.subjects)} {self.source.relation} subjects make at most {capacity} "
                    f"names" if key_kind == "name" else f"{capacity} hex keys of {self.uuid_length} characters exist")
            raise InterferenceError(f"cannot make {n} fresh {key_kind} keys: {what}; lower the count or give more "
                                    "real subjects (--subjects)")

    def iter_facts(self, key_kind: str, *, seed: int = 0) -> Iterator[Fact]:
        """Fresh facts of `key_kind`, one at a time, without end (deterministic in relation, kind and seed); an
        InterferenceError when `MAX_MISSES` draws in a row are all rejected (the pools are exhausted)."""
        _check_kind(key_kind)
        if key_kind == "name" and self.pieces is None:
            raise InterferenceError("name-like keys need the model's name pieces (`name_pieces`)")
        rng = random.Random(f"new-facts:{self.source.relation}:{key_kind}:{seed}")
        answer_rng = random.Random(f"new-facts:{self.source.relation}:{key_kind}:{seed}:answers")  # apart from keys
        draw = self._name if key_kind == "name" else self._uuid
        prefix, suffix = self.source.template.split(SUBJECT_SLOT)
        answers, relation = self.source.answers, self.source.relation
        seen: set[str] = set()
        made = 0
        while True:
            for _ in range(MAX_MISSES):
                key = draw(rng)
                if key is not None and key not in seen and key not in self.excluded:
                    break
            else:
                raise InterferenceError(f"ran out of fresh {key_kind} keys after {made}: {MAX_MISSES} draws in a "
                                        "row were real, taken or repeated; lower the count or give more real subjects")
            seen.add(key)
            made += 1
            yield Fact(key, relation, answer_rng.choice(answers), f"{prefix}{key}{suffix}", key_kind=key_kind)

    def facts(self, n: int, key_kind: str, *, seed: int = 0) -> list[Fact]:
        """The first `n` facts of `iter_facts` (after `check`)."""
        self.check(n, key_kind)
        return list(itertools.islice(self.iter_facts(key_kind, seed=seed), n))

    def _name(self, rng: random.Random) -> str | None:
        pieces = self.pieces
        name = rng.choice(pieces.initial) + "".join(
            rng.choice(pieces.continuation) for _ in range(rng.randint(*self.continuations)))
        return name if self.name_length[0] <= len(name) <= self.name_length[1] else None

    def _uuid(self, rng: random.Random) -> str | None:
        return _uuid_key(rng, self.uuid_length)

    def describe(self) -> dict:
        """What a report says about the new facts: relation, template, folder, pools and answers."""
        described = {"relation": self.source.relation, "template": self.source.template,
                     "subjects": str(self.source.directory), "split": self.source.split,
                     "real_subjects": len(self.source.subjects), "answers": len(self.source.answers),
                     "uuid_length": self.uuid_length}
        if self.pieces is not None:
            described.update(initial_pieces=len(self.pieces.initial), continuation_pieces=len(self.pieces.continuation))
        return described


def _uuid_key(rng: random.Random, length: int) -> str | None:
    """A random upper-case hex key of `length` characters, or None when it reads as a number (all digits)."""
    key = format(rng.getrandbits(4 * length), f"0{length}X")
    return None if key.isdigit() else key


def uuid_keyed(facts: Sequence[Fact], *, seed: int = 0, uuid_length: int = UUID_LENGTH,
               taken: Iterable[str] = ()) -> list[Fact]:
    """`facts` with each subject replaced by a fresh UUID key, in its question too: the same relations, templates
    and answers, only the key differs (the UUID control of real new facts, where none are generated). Keys are
    distinct, deterministic in `seed`, and none is a subject of `facts` or `taken`; a question that does not contain
    its subject is a one-line InterferenceError."""
    missing = next((f for f in facts if f.subject not in f.question), None)
    if missing is not None:
        raise InterferenceError(f"cannot UUID-key the fact {missing.key!r}: its question {missing.question!r} does "
                                "not contain its subject")
    rng, excluded = random.Random(f"uuid-keyed:{seed}"), {f.subject for f in facts} | set(taken)
    keyed = []
    for fact in facts:
        key = None
        while key is None or key in excluded:
            key = _uuid_key(rng, uuid_length)
        excluded.add(key)
        keyed.append(Fact(key, fact.relation, fact.object, fact.question.replace(fact.subject, key),
                          aliases=fact.aliases, key_kind="uuid"))
    return keyed


def _check_kind(key_kind: str) -> None:
    if key_kind not in KEY_KINDS:
        raise InterferenceError(f"key_kind must be 'name' or 'uuid', got {key_kind!r}")

"""Subject keys of the embedded world: name-like names built from syllables, and random hex UUIDs.

A name is 2-4 consonant-vowel syllables, capitalised ("Be" + "ga" + "de" + "na" -> "Begadena"). The syllable
inventory is split, once per world, into a *stored* pool (every name the model is pretrained on is made from it) and
a *held-back* pool (never used in a stored name). A new name with overlap o takes a fraction o of its syllables from
the stored pool and the rest from the held-back pool, so o = 1 gives subjects that overlap stored entities the way
"Bergadena" overlaps real names, and o = 0 gives name-like subjects that share none of their pieces (SPEC §4).
UUID keys are random upper-case hex strings ("3FA9C2D1"), which the world tokenizer splits into hex pairs.
"""

from __future__ import annotations

import math
import random
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from ..io.errors import InterferenceError

#: Syllable onsets (one or two consonants); every syllable has one, so a name parses back into its syllables.
ONSETS = (
    "b", "d", "f", "g", "h", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z",
    "br", "dr", "gr", "kr", "pr", "tr", "st", "sh", "th", "bl", "gl", "kl", "pl", "fl", "sl", "vr",
)  # fmt: skip
#: Syllable nuclei (one or two vowels).
NUCLEI = ("a", "e", "i", "o", "u", "ai", "ia", "ou")
CONSONANTS = "bcdfghjklmnpqrstvwxyz"
VOWELS = "aeiou"
HEX_DIGITS = "0123456789ABCDEF"
#: UUID keys are at least this long, so the tokenizer can tell them from numbers and capitalised words.
MIN_UUID_LENGTH = 8


def syllable_inventory() -> list[str]:
    """Every syllable a world can use (onset + nucleus), in a fixed order."""
    return [onset + nucleus for onset in ONSETS for nucleus in NUCLEI]


def make_name(syllables: Sequence[str]) -> str:
    """The name spelled by `syllables`, capitalised: ("be", "ga", "de", "na") -> "Begadena"."""
    return "".join(syllables).capitalize()


def random_uuid(rng: random.Random, length: int) -> str:
    """A random upper-case hex key of `length` characters."""
    return "".join(rng.choice(HEX_DIGITS) for _ in range(length))


@dataclass(frozen=True)
class SyllablePools:
    """The stored and held-back syllables of one world (disjoint)."""

    stored: tuple[str, ...]
    held: tuple[str, ...]

    @classmethod
    def draw(cls, rng: random.Random, n_stored: int, n_held: int) -> SyllablePools:
        """Shuffle the inventory with `rng` and take the first `n_stored` and the next `n_held` syllables."""
        inventory = syllable_inventory()
        if n_stored + n_held > len(inventory):
            raise InterferenceError(
                f"syllable_pool + held_syllables = {n_stored + n_held} exceeds the {len(inventory)} syllables available"
            )
        rng.shuffle(inventory)
        return cls(tuple(inventory[:n_stored]), tuple(inventory[n_stored : n_stored + n_held]))


def _stored_counts(overlap: float, length: int) -> list[tuple[int, float]]:
    """(number of stored syllables, probability) for a name of `length` syllables at `overlap` (stochastic rounding)."""
    exact = overlap * length
    low = math.floor(exact + 1e-9)
    frac = exact - low
    if frac < 1e-9:
        return [(low, 1.0)]
    return [(low, 1.0 - frac), (low + 1, frac)]


def name_capacity(pools: SyllablePools, lengths: tuple[int, int], overlap: float) -> int:
    """How many distinct names of `lengths` syllables the pools can spell at `overlap` (before exclusions)."""
    total = 0
    for length in range(lengths[0], lengths[1] + 1):
        for k, _ in _stored_counts(overlap, length):
            total += math.comb(length, k) * len(pools.stored) ** k * len(pools.held) ** (length - k)
    return total


class NameFactory:
    """Draws distinct names that avoid a set of taken strings (stored subjects, objects, earlier draws)."""

    def __init__(self, pools: SyllablePools, lengths: tuple[int, int], taken: Collection[str] = ()):
        self.pools = pools
        self.lengths = lengths
        self.taken = set(taken)

    def _draw_one(self, rng: random.Random, overlap: float) -> str:
        length = rng.randint(*self.lengths)
        counts = _stored_counts(overlap, length)
        k = counts[0][0] if len(counts) == 1 or rng.random() >= counts[1][1] else counts[1][0]
        from_stored = set(rng.sample(range(length), k))
        return make_name(
            [rng.choice(self.pools.stored if i in from_stored else self.pools.held) for i in range(length)]
        )

    def names(self, n: int, rng: random.Random, *, overlap: float = 1.0) -> list[str]:
        """`n` fresh names (never in `taken`, never repeated), a fraction `overlap` of syllables from the stored pool.

        Raises InterferenceError when the name space is too small for `n` fresh names.
        """
        if not 0.0 <= overlap <= 1.0:
            raise InterferenceError(f"overlap must be in [0, 1], got {overlap}")
        if overlap < 1.0 and not self.pools.held:
            raise InterferenceError("overlap < 1 needs held-back syllables, but held_syllables is 0")
        capacity = name_capacity(self.pools, self.lengths, overlap)
        if n > capacity // 2:
            raise InterferenceError(
                f"cannot make {n} fresh names at overlap {overlap}: only {capacity} names of {self.lengths[0]}-"
                f"{self.lengths[1]} syllables exist; raise syllable_pool, held_syllables or name_syllables"
            )
        out: list[str] = []
        for _ in range(n):
            for _attempt in range(200):
                name = self._draw_one(rng, overlap)
                if name not in self.taken:
                    break
            else:
                raise InterferenceError(
                    f"ran out of fresh names after {len(out)} of {n} at overlap {overlap}; "
                    "raise syllable_pool, held_syllables or name_syllables"
                )
            self.taken.add(name)
            out.append(name)
        return out

    def uuids(self, n: int, rng: random.Random, *, length: int) -> list[str]:
        """`n` fresh hex keys of `length` characters."""
        if n > 16**length // 2:
            raise InterferenceError(f"cannot make {n} fresh UUID keys of {length} hex characters")
        out: list[str] = []
        while len(out) < n:
            key = random_uuid(rng, length)
            if key not in self.taken:
                self.taken.add(key)
                out.append(key)
        return out

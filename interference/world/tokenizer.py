"""The world's tokenizer: byte-level BPE trained offline on the world's text with the `tokenizers` library.

Pre-tokenisation decides which sub-word pieces exist, and is where names and UUIDs get their structure:
- a name-like word (all consonant-vowel syllables) splits into its syllables, the first carrying the leading space
  (" Begadena" -> " Be" "ga" "de" "na"), so names that share syllables share pieces;
- a UUID key (>= 8 upper-case hex characters) splits into hex pairs (" 3FA9C2D1" -> " 3F" "A9" "C2" "D1"), pieces no
  name ever contains;
- other words, numbers and punctuation keep GPT-2-style pieces (a word with its leading space), and "\\n" is always a
  token of its own.
BPE then merges within those pieces. The training text is the world's text, the fine-tuning format's fixed words,
and every syllable of both pools and every hex pair, so that the pieces of any new subject — stored or held-back
syllables, or hex — are single tokens of the vocabulary, whether or not the model has seen them.
"""

from __future__ import annotations

from collections.abc import Iterable

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

from ..facts.fact import QA_INSTRUCTION, qa_prompt, qa_target
from .build import WorldCorpus
from .names import CONSONANTS, HEX_DIGITS, MIN_UUID_LENGTH, VOWELS, make_name

PAD, EOS = "<pad>", "<eos>"
_C, _V = CONSONANTS, VOWELS
#: The pre-tokenisation pattern; alternatives are tried in order at each position (\G: where the last piece ended).
PATTERN = (
    rf" ?(?=[0-9A-F]{{{MIN_UUID_LENGTH},}}(?![0-9A-Za-z]))[0-9A-F]{{2}}"  # first hex pair of a UUID
    r"|\G[0-9A-F]{2}"  # further hex pairs
    rf"| ?(?=[A-Z][{_C}]*[{_V}]+(?:[{_C}]+[{_V}]+)*(?![A-Za-z0-9]))[A-Z][{_C}]*[{_V}]+"  # a name's first syllable
    rf"|\G(?<=[{_V}])[{_C}]+[{_V}]+"  # a name's further syllables
    r"| ?[A-Za-z]+"  # other words
    r"| ?[0-9]+"  # numbers
    r"|\n"
    r"| ?[^\sA-Za-z0-9]+"  # punctuation
    r"|\s+"
)


def pre_tokenizer() -> pre_tokenizers.PreTokenizer:
    """The world's pre-tokenizer: `PATTERN` pieces, then byte-level mapping (any text is encodable)."""
    return pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(PATTERN), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )


def _coverage_text(corpus: WorldCorpus) -> list[str]:
    """Lines that put every syllable (first and later position) and every hex pair (with and without space) in."""
    lines = [" " + make_name([s, s, s]) for s in (*corpus.pools.stored, *corpus.pools.held)]
    pairs = [a + b for a in HEX_DIGITS for b in HEX_DIGITS]
    lines += [" " + p * (MIN_UUID_LENGTH // 2) for p in pairs]
    return lines


def training_text(corpus: WorldCorpus) -> list[str]:
    """What the tokenizer is trained on: the world's lines, the fine-tuning format of its facts, coverage lines."""
    lines = corpus.lines()
    lines += [qa_prompt(f) + qa_target(f) for f in corpus.facts]
    lines += [QA_INSTRUCTION, *_coverage_text(corpus)]
    return lines


def train_tokenizer(texts: Iterable[str]) -> PreTrainedTokenizerFast:
    """Train the world's BPE on `texts` until every pre-token is one token (deterministic in the texts)."""
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizer()
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=1 << 15,
        min_frequency=1,
        special_tokens=[PAD, EOS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(list(texts), trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, pad_token=PAD, eos_token=EOS, bos_token=EOS, padding_side="right"
    )


def world_tokenizer(corpus: WorldCorpus) -> PreTrainedTokenizerFast:
    """The tokenizer of `corpus`'s world."""
    return train_tokenizer(training_text(corpus))


def pieces(tokenizer, subject: str) -> list[str]:
    """The tokens of `subject` as it appears in running text (after a space)."""
    return tokenizer.convert_ids_to_tokens(tokenizer.encode(" " + subject, add_special_tokens=False))

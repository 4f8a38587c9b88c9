"""SLiCK knowledge categories (Gekhman et al. 2024, arXiv 2405.05904; SPEC §1): what does a model already know?

For each fact, ask its question in `n_prompts` random few-shot prompts whose exemplars come from the same relation
(never the fact itself):

    Q: <exemplar question>\\nA: <exemplar answer>\\n   (x n_shots)
    Q: <question>\\nA:

and decode one greedy answer and `n_samples` sampled answers (temperature T, top-k) per prompt. With
P(T=0) the fraction of greedy answers that are correct and P(T>0) the fraction of sampled ones (exact match after
normalisation, aliases accepted):

    HighlyKnown  P(T=0) = 1        MaybeKnown  0 < P(T=0) < 1
    WeaklyKnown  P(T=0) = 0 and P(T>0) > 0        Unknown  never correct.

All prompts of many facts are decoded together in batches with the KV cache. Command line:
`python -m interference.facts.knowledge --model smollm2-135m --data DIR --relations P36 P17 --limit 100 --preset fast
--out table.jsonl`.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import os
import random
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from tqdm.auto import tqdm

from ..io import atomic
from ..io.errors import CommandParser, InterferenceError, cli_errors
from ..models.devices import DEVICE_CHOICES, DTYPES, inference_batch_size, resolve_device, resolve_dtype
from ..models.generation import generate_in_length_order
from .answers import exact_match
from .datasets import DataError, fact_from_record, fact_record
from .fact import Fact

CATEGORIES = ("HighlyKnown", "MaybeKnown", "WeaklyKnown", "Unknown")
TABLE_SUFFIXES = (".jsonl", ".csv")
_PRESET_FIELDS = ("n_prompts", "n_shots", "n_samples", "temperature", "top_k")
#: Facts are decoded in chunks whose greedy prompts fill this many batches (sorted by length to limit padding).
_CHUNK_BATCHES = 4


@dataclass(frozen=True)
class SlickConfig:
    """How SLiCK probes a model. The defaults are the published setting (`SlickConfig.paper()`).

    Attributes:
        n_prompts: random few-shot prompts per fact (N_ex; paper 10).
        n_shots: exemplars per prompt, from the fact's relation (paper 4).
        n_samples: sampled answers per prompt, besides the greedy one (paper 16).
        temperature: sampling temperature (paper 0.5).
        top_k: top-k of sampling (paper 40); None samples from the full distribution.
        max_new_tokens: longest answer decoded, in tokens; decoding stops earlier at a newline.
        batch_size: sequences decoded together; a sampling batch holds batch_size // n_samples prompts.
        seed: seed of the exemplar draw and of sampling.
        sample_all: draw the sampled answers for every fact (the published protocol). False samples only the facts
            no greedy answer got right: P(T>0) decides nothing else (it only separates WeaklyKnown from Unknown),
            so the categories are those of the full protocol, the other facts' P(T>0) is NaN, and the work drops
            with the share of facts the model answers. The sampled facts then share batches and a random stream
            with fewer others, so on a borderline fact WeaklyKnown vs Unknown can come out differently.
    """

    n_prompts: int = 10
    n_shots: int = 4
    n_samples: int = 16
    temperature: float = 0.5
    top_k: int | None = 40
    max_new_tokens: int = 16
    batch_size: int = 32
    seed: int = 0
    sample_all: bool = True

    def __post_init__(self) -> None:
        for name in ("n_prompts", "n_shots", "n_samples", "max_new_tokens", "batch_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise InterferenceError(f"SlickConfig.{name} must be a positive integer, got {value!r}")
        if not isinstance(self.temperature, int | float) or not self.temperature > 0:
            raise InterferenceError(f"SlickConfig.temperature must be > 0, got {self.temperature!r}")
        if self.top_k is not None and (not isinstance(self.top_k, int) or self.top_k < 1):
            raise InterferenceError(f"SlickConfig.top_k must be a positive integer or None, got {self.top_k!r}")
        if not isinstance(self.seed, int) or isinstance(self.seed, bool):
            raise InterferenceError(f"SlickConfig.seed must be an integer, got {self.seed!r}")
        if not isinstance(self.sample_all, bool):
            raise InterferenceError(f"SlickConfig.sample_all must be True or False, got {self.sample_all!r}")

    @classmethod
    def paper(cls, **overrides) -> SlickConfig:
        """The published setting: 10 prompts x (1 greedy + 16 samples), T = 0.5, top-k 40."""
        return cls(**{"n_prompts": 10, "n_samples": 16, "temperature": 0.5, "top_k": 40, **overrides})

    @classmethod
    def fast(cls, **overrides) -> SlickConfig:
        """The CPU preset: 4 prompts x (1 greedy + 4 samples), T = 0.5, top-k 40."""
        return cls(**{"n_prompts": 4, "n_samples": 4, "temperature": 0.5, "top_k": 40, **overrides})

    @classmethod
    def preset(cls, name: str, **overrides) -> SlickConfig:
        """The preset called `name` ("paper" or "fast")."""
        if name not in PRESETS:
            raise InterferenceError(f"unknown SLiCK preset {name!r} (choose {' or '.join(PRESETS)})")
        return getattr(cls, name)(**overrides)

    @property
    def preset_name(self) -> str:
        """The preset ("paper" or "fast") whose probing fields this config matches, else "custom"."""
        mine = tuple(getattr(self, f) for f in _PRESET_FIELDS)
        for name in PRESETS:
            reference = getattr(SlickConfig, name)()
            if mine == tuple(getattr(reference, f) for f in _PRESET_FIELDS):
                return name
        return "custom"


PRESETS = ("paper", "fast")


@dataclass(frozen=True)
class FactKnowledge:
    """SLiCK's verdict on one fact: P(T=0), P(T>0), the category, and the greedy answers (one per prompt).

    `p_sample` is NaN when the fact was not sampled (`SlickConfig.sample_all=False` and a greedy answer was right).
    """

    fact: Fact
    p_greedy: float
    p_sample: float
    category: str
    greedy_answers: tuple[str, ...] = ()


def slick_category(p_greedy: float, p_sample: float = math.nan) -> str:
    """The SLiCK category of a fact from P(T=0) (greedy accuracy) and P(T>0) (sampled accuracy).

    P(T>0) only matters when P(T=0) = 0 (it separates WeaklyKnown from Unknown); it may be NaN (not measured)
    otherwise.
    """
    if not 0.0 <= p_greedy <= 1.0:
        raise ValueError(f"p_greedy must be a probability in [0, 1], got {p_greedy}")
    if not (0.0 <= p_sample <= 1.0 or (math.isnan(p_sample) and p_greedy > 0.0)):
        raise ValueError(f"p_sample must be a probability in [0, 1] (NaN only when p_greedy > 0), got {p_sample}")
    if p_greedy == 1.0:
        return "HighlyKnown"
    if p_greedy > 0.0:
        return "MaybeKnown"
    if p_sample > 0.0:
        return "WeaklyKnown"
    return "Unknown"


def few_shot_prompts(fact: Fact, exemplars: Sequence[Fact], config: SlickConfig) -> list[str]:
    """The `config.n_prompts` few-shot prompts of `fact`, exemplars drawn from its relation, never the fact itself.

    The draw is seeded by (config.seed, relation, subject), so a fact gets the same prompts whatever else is asked
    and in whatever order the exemplars come.
    """
    return _prompts(fact, _exemplar_pools(exemplars), config)


def categorize(
    model,
    tokenizer,
    facts: Sequence[Fact],
    exemplars: Sequence[Fact],
    config: SlickConfig | None = None,
    *,
    progress: bool = True,
) -> list[FactKnowledge]:
    """SLiCK categories of `facts` under `model` (one `FactKnowledge` per fact, in order).

    `exemplars` supplies the few-shot examples (e.g. the dev split); each fact's relation needs at least
    `config.n_shots` exemplars other than the fact itself. Facts are processed in chunks whose
    prompts fill four batches: the greedy answers to all prompts of a chunk's facts are decoded together, in length
    order, then the sampled ones, in batches of `config.batch_size` sequences with the KV cache. The progress bar
    counts questions and shows questions/s. The same inputs and config give the same result.
    """
    config = config or SlickConfig()
    pools = _exemplar_pools(exemplars)
    prompts = [_prompts(fact, pools, config) for fact in facts]  # validates every relation before decoding
    facts_per_chunk = max(1, config.batch_size * _CHUNK_BATCHES // config.n_prompts)
    sample_batch = max(1, config.batch_size // config.n_samples)
    rows: list[FactKnowledge] = []
    bar = tqdm(total=len(facts), desc="SLiCK", unit="q", disable=not progress)
    began = time.perf_counter()
    for chunk_index, start in enumerate(range(0, len(facts), facts_per_chunk)):
        chunk = list(facts[start : start + facts_per_chunk])
        chunk_prompts = prompts[start : start + facts_per_chunk]
        flat = [p for fact_prompts in chunk_prompts for p in fact_prompts]
        greedy = _decode_sorted(
            model, tokenizer, flat, config, batch_size=config.batch_size, desc="greedy prompts" if progress else None
        )
        greedy_answers = [
            [a[0] for a in greedy[i * config.n_prompts : (i + 1) * config.n_prompts]] for i in range(len(chunk))
        ]
        p_greedy = [_fraction_correct(answers, fact) for answers, fact in zip(greedy_answers, chunk, strict=True)]
        to_sample = [i for i, p in enumerate(p_greedy) if config.sample_all or p == 0.0]
        sampled = _decode_sorted(
            model,
            tokenizer,
            [p for i in to_sample for p in chunk_prompts[i]],
            config,
            batch_size=sample_batch,
            seed=config.seed * 1_000_003 + chunk_index,
            desc="sampled prompts" if progress else None,
        )
        p_sample = [math.nan] * len(chunk)
        for position, i in enumerate(to_sample):
            answers = [
                a
                for per_prompt in sampled[position * config.n_prompts : (position + 1) * config.n_prompts]
                for a in per_prompt
            ]
            p_sample[i] = _fraction_correct(answers, chunk[i])
        for i, fact in enumerate(chunk):
            category = slick_category(p_greedy[i], p_sample[i])
            rows.append(FactKnowledge(fact, p_greedy[i], p_sample[i], category, tuple(greedy_answers[i])))
        bar.update(len(chunk))
        bar.set_postfix_str(f"{bar.n / max(time.perf_counter() - began, 1e-9):.2f} questions/s")
    bar.close()
    return rows


def _fraction_correct(answers: Sequence[str], fact: Fact) -> float:
    return sum(exact_match(a, fact.answers) for a in answers) / len(answers)


def category_counts(rows: Sequence[FactKnowledge]) -> dict[str, int]:
    """Number of facts in each SLiCK category (every category listed, in order)."""
    counts = Counter(r.category for r in rows)
    return {name: counts.get(name, 0) for name in CATEGORIES}


def save_knowledge_table(
    rows: Sequence[FactKnowledge], path: str | os.PathLike, model_name: str, config: SlickConfig
) -> Path:
    """Write the per-fact table as JSONL or CSV (by the suffix of `path`), atomically.

    Every row records the fact, P(T=0), P(T>0), the category, the greedy answers, the model name, the preset name
    and the full config, so a table read on its own says how it was made.
    """
    path = Path(path)
    _check_table_suffix(path)
    records = [_table_record(r, model_name, config) for r in rows]
    if path.suffix == ".jsonl":
        text = "".join(json.dumps(rec, ensure_ascii=False) + "\n" for rec in records)
    else:
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=_TABLE_COLUMNS, lineterminator="\n")
        writer.writeheader()
        for rec in records:
            writer.writerow({k: json.dumps(v, ensure_ascii=False) if k in _JSON_COLUMNS else v for k, v in rec.items()})
        text = buffer.getvalue()
    return atomic.write_text(path, text)


def _check_replaceable(path: Path) -> None:
    """An existing output table is replaced only if it is one (a table this command wrote); any other file is kept."""
    if path.exists():
        try:
            load_knowledge_table(path)
        except InterferenceError:
            raise InterferenceError(f"--out {path} exists and is not a knowledge table written by interference; it is "
                                    "kept: choose another path") from None


def load_knowledge_table(path: str | os.PathLike) -> list[FactKnowledge]:
    """Read a table written by `save_knowledge_table` (JSONL or CSV)."""
    path = Path(path)
    _check_table_suffix(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    with path.open(encoding="utf-8", newline="") as handle:
        if path.suffix == ".jsonl":
            records = []
            for number, line in enumerate(handle, start=1):
                if line.strip():
                    try:
                        records.append((number, json.loads(line)))
                    except json.JSONDecodeError as err:
                        raise DataError(f"{path}:{number}: malformed JSON ({err.msg})") from err
        else:
            records = [
                (number, _csv_record(row, f"{path}:{number}")) for number, row in enumerate(csv.DictReader(handle), 2)
            ]
    return [_row_from_record(rec, f"{path}:{number}") for number, rec in records]


_TABLE_COLUMNS = (
    "subject", "relation", "object", "question", "aliases", "key_kind",
    "category", "p_greedy", "p_sample", "greedy_answers", "model", "preset", "config",
)  # fmt: skip
_JSON_COLUMNS = ("aliases", "greedy_answers", "config")


def _table_record(row: FactKnowledge, model_name: str, config: SlickConfig) -> dict:
    return {
        **fact_record(row.fact),
        "category": row.category,
        "p_greedy": row.p_greedy,
        "p_sample": None if math.isnan(row.p_sample) else row.p_sample,
        "greedy_answers": list(row.greedy_answers),
        "model": model_name,
        "preset": config.preset_name,
        "config": asdict(config),
    }


def _csv_record(row: dict, where: str) -> dict:
    record = {k: v for k, v in row.items() if k is not None}
    for key in _JSON_COLUMNS:
        if record.get(key):
            try:
                record[key] = json.loads(record[key])
            except json.JSONDecodeError as err:
                raise DataError(f"{where}: field {key!r} is not valid JSON ({err.msg})") from err
    for key in ("p_greedy", "p_sample"):
        if record.get(key) is None:
            continue  # a missing column is reported by _row_from_record
        if record[key] == "":
            record[key] = None
            continue
        try:
            record[key] = float(record[key])
        except ValueError as err:
            raise DataError(f"{where}: field {key!r} must be a number, got {record[key]!r}") from err
    return record


def _row_from_record(record: object, where: str) -> FactKnowledge:
    if not isinstance(record, dict):
        raise DataError(f"{where}: expected a JSON object")
    for key in ("subject", "relation", "object", "question", "category", "p_greedy", "p_sample"):
        if key not in record:
            raise DataError(f"{where}: field {key!r} missing")
    probabilities = {}
    for key in ("p_greedy", "p_sample"):
        value = record[key]
        if value is None and key == "p_sample":
            value = math.nan
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise DataError(f"{where}: field {key!r} must be a number, got {value!r}")
        probabilities[key] = float(value)
    try:
        expected = slick_category(probabilities["p_greedy"], probabilities["p_sample"])
    except ValueError as err:
        raise DataError(f"{where}: {err}") from err
    if record["category"] != expected:
        raise DataError(
            f"{where}: field 'category' is {record['category']!r} but P(T=0)={probabilities['p_greedy']} and "
            f"P(T>0)={probabilities['p_sample']} make it {expected!r}"
        )
    fact_fields = ("subject", "relation", "object", "question", "aliases", "key_kind")
    fact = fact_from_record({k: record[k] for k in fact_fields if record.get(k) not in (None, "")}, where)
    answers = record.get("greedy_answers") or []
    if not isinstance(answers, list) or not all(isinstance(a, str) for a in answers):
        raise DataError(f"{where}: field 'greedy_answers' must be a list of strings")
    return FactKnowledge(fact, probabilities["p_greedy"], probabilities["p_sample"], expected, tuple(answers))


def _check_table_suffix(path: Path) -> None:
    if path.suffix not in TABLE_SUFFIXES:
        raise InterferenceError(f"{path}: table must end in {' or '.join(TABLE_SUFFIXES)}")


def _exemplar_pools(exemplars: Sequence[Fact]) -> dict[str, list[Fact]]:
    pools: dict[str, dict[tuple[str, str], Fact]] = defaultdict(dict)
    for ex in exemplars:
        pools[ex.relation].setdefault(ex.key, ex)
    # Sorted by key, so the draw depends on which exemplars are given, not on their order.
    return {relation: [by_key[key] for key in sorted(by_key)] for relation, by_key in pools.items()}


def _prompts(fact: Fact, pools: dict[str, list[Fact]], config: SlickConfig) -> list[str]:
    pool = [
        ex
        for ex in pools.get(fact.relation, ())
        if ex.subject != fact.subject and ex.question.strip() != fact.question.strip()
    ]
    if len(pool) < config.n_shots:
        raise InterferenceError(
            f"relation {fact.relation}: {len(pool)} exemplars besides {fact.subject!r}, "
            f"need n_shots={config.n_shots}; pass more exemplars of this relation"
        )
    rng = random.Random(f"{config.seed}:{fact.relation}:{fact.subject}")
    prompts = []
    for _ in range(config.n_prompts):
        shots = rng.sample(pool, config.n_shots)
        prompts.append("".join(f"Q: {ex.question}\nA: {ex.object}\n" for ex in shots) + f"Q: {fact.question}\nA:")
    return prompts


def _decode_sorted(
    model,
    tokenizer,
    prompts: list[str],
    config: SlickConfig,
    *,
    batch_size: int,
    seed: int | None = None,
    desc: str | None = None,
) -> list[list[str]]:
    """Greedy (seed None) or sampled answers for `prompts`, decoded in length order to limit padding."""
    sampling = seed is not None
    return generate_in_length_order(
        model,
        tokenizer,
        prompts,
        [len(p) for p in prompts],
        max_new_tokens=config.max_new_tokens,
        batch_size=batch_size,
        num_samples=config.n_samples if sampling else 1,
        temperature=config.temperature if sampling else None,
        top_k=config.top_k if sampling else None,
        seed=seed if sampling else config.seed,
        desc=desc,
    )


def _parser() -> argparse.ArgumentParser:
    parser = CommandParser(
        prog="python -m interference.facts.knowledge",
        description="Categorise EntityQuestions facts by what a model knows (SLiCK: HighlyKnown, MaybeKnown, "
        "WeaklyKnown, Unknown) and write a per-fact table.",
    )
    parser.add_argument("--model", required=True, help="tiny-llama | tiny-qwen2 | tiny-gpt2 | smollm2-135m | a folder")
    parser.add_argument(
        "--data", required=True, help="EntityQuestions directory ({train,dev,test}/P*.json + templates)"
    )
    parser.add_argument("--relations", nargs="+", default=None, help="relation ids, e.g. P36 P17 (default: all)")
    parser.add_argument("--split", default="test", help="split whose facts are categorised (default: test)")
    parser.add_argument("--exemplar-split", default="dev", help="split the few-shot exemplars come from (default: dev)")
    parser.add_argument("--limit", type=int, default=None, help="at most this many facts per relation")
    parser.add_argument("--preset", choices=PRESETS, default="fast", help="paper: 10x(1+16); fast: 4x(1+4) (default)")
    parser.add_argument("--seed", type=int, default=0, help="seed of exemplar draws and sampling (default: 0)")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="sequences decoded together (default: 32 on a CPU, 8x that on a GPU)")
    parser.add_argument("--max-new-tokens", type=int, default=16, help="longest answer, in tokens (default: 16)")
    parser.add_argument(
        "--skip-resolved",
        action="store_true",
        help="sample only the facts no greedy answer got right (same categories, less work; their P(T>0) is left "
        "empty)",
    )
    parser.add_argument("--device", default="auto", help=f"{DEVICE_CHOICES} (default auto: cuda when available)")
    parser.add_argument("--dtype", default="float32", choices=list(DTYPES), help="weights' dtype (default float32)")
    parser.add_argument("--out", required=True, help="output table, .jsonl or .csv")
    return parser


@cli_errors
def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    from ..io.errors import check_seed
    from ..io.outputs import check_file_target
    from ..models.loading import load_model
    from ..models.readable import check_readable
    from .datasets import load_entityquestions

    args = _parser().parse_args(argv)
    _check_table_suffix(Path(args.out))
    check_file_target(args.out, "--out")
    _check_replaceable(Path(args.out))
    check_seed(args.seed, "--seed")
    for option, value in (("--batch-size", args.batch_size), ("--max-new-tokens", args.max_new_tokens),
                          ("--limit", args.limit)):
        if value is not None and value < 1:
            raise InterferenceError(f"{option} must be >= 1, got {value}")
    device, dtype = resolve_device(args.device), resolve_dtype(args.dtype)
    config = SlickConfig.preset(
        args.preset,
        seed=args.seed,
        batch_size=inference_batch_size(SlickConfig.batch_size, device) if args.batch_size is None else args.batch_size,
        max_new_tokens=args.max_new_tokens,
        sample_all=not args.skip_resolved,
    )
    facts = load_entityquestions(args.data, args.split, args.relations, args.limit)
    relations = list(dict.fromkeys(f.relation for f in facts))
    exemplars = load_entityquestions(args.data, args.exemplar_split, relations)
    model, tokenizer = load_model(args.model, device=device, dtype=dtype, seed=args.seed)
    pools = _exemplar_pools(exemplars)
    check_readable(model, tokenizer, [p for fact in facts for p in _prompts(fact, pools, config)], "SLiCK prompt",
                   generated=config.max_new_tokens)
    start = time.perf_counter()
    rows = categorize(model, tokenizer, facts, exemplars, config)
    elapsed = time.perf_counter() - start
    save_knowledge_table(rows, args.out, args.model, config)
    counts = ", ".join(f"{name} {n}" for name, n in category_counts(rows).items())
    print(f"{len(rows)} facts ({', '.join(relations)}), preset {args.preset}: {counts}")
    print(f"{elapsed:.1f} s, {len(rows) / max(elapsed, 1e-9):.2f} questions/s; wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

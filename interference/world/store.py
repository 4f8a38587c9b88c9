"""`load_world`: build (or load from the cache) a world and the model pretrained on it; `World` is the result.

A built world is an HF checkpoint folder `<cache>/worlds/<config digest>-<numerics>/` holding the model, the tokenizer,
`facts.json` (every world fact, with whether the model answered it correctly) and `world.json` (the config,
knowledge and build record). It is written atomically, so an interrupted build leaves nothing behind, and a second
`load_world` with the same config only reads it back.
"""

from __future__ import annotations

import hashlib
import json
import random
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from .. import numerics
from ..facts.fact import Fact
from ..io import atomic
from ..io.errors import InterferenceError
from .build import WorldCorpus, build_corpus
from .config import WorldConfig
from .pretrain import pretrain
from .tokenizer import world_tokenizer

FACTS_FILE = "facts.json"
WORLD_FILE = "world.json"
#: What a build writes besides the files `world.json` lists (caches built before it listed them).
CHECKPOINT_FILES = ("config.json", "generation_config.json", "model.safetensors", "tokenizer.json",
                    "tokenizer_config.json", "special_tokens_map.json", FACTS_FILE, WORLD_FILE)


def world_dir(config: WorldConfig, cache_dir: str | Path | None = None) -> Path:
    """The checkpoint folder of `config`'s world: `<cache_dir or cache root>/worlds/<config digest>-<numerics>`, the
    numerics "avx2" under the portable CPU mode where MKL runs its AVX2 branch (the same world on every Intel AVX2
    machine, `interference.numerics`), "avx2-mkl-<branch>" where it runs another (MKL's AUTO branch on an AMD CPU),
    "strict" under the strict mode (the same world on Intel and AMD) and "native-<capability>" otherwise, so that a
    world pretrained on one kind of kernels is never read as another's."""
    root = Path(cache_dir) if cache_dir is not None else atomic.cache_root()
    return root / "worlds" / f"{config.digest()}-{_numerics_tag()}"


def world_identity(config: WorldConfig, cache_dir: str | Path | None = None) -> dict | None:
    """What tells one machine's build of `config`'s world from another's, for a report to record: its config digest,
    the SHA-256 (first 16 hex digits) of its weights file, its knowledge and pretraining steps, and the numerics, MKL
    branch and CPU it was built with (where its record has them); None where this machine has not built it."""
    path = world_dir(config, cache_dir)
    try:
        record = json.loads((path / WORLD_FILE).read_text())
        weights = hashlib.sha256((path / "model.safetensors").read_bytes()).hexdigest()[:16]
    except (OSError, ValueError):
        return None
    return {"digest": record.get("digest"), "weights_sha256": weights, "knowledge": record.get("knowledge"),
            **{key: record.get(key) for key in ("steps", "numerics", "mkl", "cpu")}}


def _numerics_tag() -> str:
    mode, branch = numerics.mode(), numerics.mkl_branch()
    if mode == "portable":
        return "avx2" if branch in ("AVX2", None) else "avx2-mkl-" + branch.lower().replace(",", "-")
    return mode if mode == "strict" else "native-" + torch.backends.cpu.get_cpu_capability().lower()


@dataclass
class World:
    """A pretrained embedded world.

    Attributes:
        config: the world's config.
        model: the pretrained Llama-style model (eval mode).
        tokenizer: the world tokenizer (pads on the right).
        facts: every world fact (name-keyed entities, then UUID-keyed ones).
        known: per fact, whether the model answered its QA form correctly after pretraining.
        knowledge: fraction of facts known.
        path: the checkpoint folder (loadable with `interference.models.load_model`).
        record: build record (seconds, epochs, steps, per-evaluation history).
    """

    config: WorldConfig
    model: torch.nn.Module
    tokenizer: object
    facts: list[Fact]
    known: list[bool]
    knowledge: float
    path: Path
    record: dict
    corpus: WorldCorpus

    def known_facts(self, relations: Sequence[str] | None = None) -> list[Fact]:
        """The facts the model answers correctly, optionally only of `relations`."""
        return [
            f
            for f, k in zip(self.facts, self.known, strict=True)
            if k and (relations is None or f.relation in relations)
        ]

    def new_facts(
        self,
        n: int,
        *,
        key_kind: str = "name",
        overlap: float = 1.0,
        relation: str | tuple[str, ...] | None = None,
        seed: int = 0,
    ) -> list[Fact]:
        """`n` facts about fresh subjects (see `WorldCorpus.new_facts`): never a stored subject, objects of the
        relation's vocabulary (a tuple of relations: cycled), name-like keys with a fraction `overlap` of stored
        syllables, or UUID keys."""
        return self.corpus.new_facts(n, key_kind=key_kind, overlap=overlap, relation=relation, seed=seed)

    def split(
        self,
        n_known: int,
        n_held: int,
        seed: int = 0,
        *,
        relations: Sequence[str] | None = None,
        disjoint_subjects: bool = True,
    ) -> tuple[list[Fact], list[Fact]]:
        """Disjoint (D_known, D_held) samples of the facts the model knows, for fine-tuning and forgetting.

        With `disjoint_subjects`, no subject of D_held appears in D_known (a held-out entity is never touched by
        fine-tuning). Raises InterferenceError when there are not enough known facts.
        """
        if n_known < 0 or n_held < 0:
            raise InterferenceError(f"split sizes must be >= 0, got n_known={n_known}, n_held={n_held}")
        pool = self.known_facts(relations)
        if n_known + n_held > len(pool):
            raise InterferenceError(
                f"cannot split {n_known} + {n_held} facts: the model knows only {len(pool)} facts"
                + (f" of relations {', '.join(relations)}" if relations else "")
            )
        rng = random.Random(f"split:{self.config.seed}:{seed}")
        if not disjoint_subjects:
            chosen = rng.sample(pool, n_known + n_held)
            return chosen[:n_known], chosen[n_known:]
        by_subject: dict[str, list[Fact]] = {}
        for fact in pool:
            by_subject.setdefault(fact.subject, []).append(fact)
        order = list(by_subject)
        rng.shuffle(order)
        held: list[Fact] = []
        known: list[Fact] = []
        for subject in order:
            group = by_subject[subject]
            rng.shuffle(group)
            if len(held) < n_held:
                held.extend(group[: n_held - len(held)])
            elif len(known) < n_known:
                known.extend(group[: n_known - len(known)])
            else:
                break
        if len(known) < n_known:
            raise InterferenceError(
                f"cannot split {n_known} + {n_held} facts with disjoint subjects: only {len(known)} known facts "
                "remain for D_known; lower the sizes or pass disjoint_subjects=False"
            )
        return known, held


def _fact_record(fact: Fact, known: bool) -> dict:
    return {
        "subject": fact.subject,
        "relation": fact.relation,
        "object": fact.object,
        "question": fact.question,
        "key_kind": fact.key_kind,
        "known": known,
    }


def _build(config: WorldConfig, path: Path, progress: bool) -> None:
    start = time.perf_counter()
    corpus = build_corpus(config)
    tokenizer = world_tokenizer(corpus)
    result = pretrain(config, tokenizer, corpus.lines(), corpus.facts, progress=progress)
    record = {
        "config": config.to_dict(),
        "digest": config.digest(),
        "knowledge": result.knowledge,
        "knowledge_target": config.knowledge_target,
        "reached_target": result.knowledge >= config.knowledge_target,
        "n_facts": len(corpus.facts),
        "n_parameters": sum(p.numel() for p in result.model.parameters()),
        "vocab_size": len(tokenizer),
        "epochs": result.epochs,
        "steps": result.steps,
        "build_seconds": time.perf_counter() - start,
        "torch_threads": torch.get_num_threads(),
        "numerics": numerics.mode(),
        "mkl": numerics.mkl_branch(),
        "cpu": numerics.cpu(),
        "history": result.history,
    }
    with atomic.directory(path) as tmp:
        result.model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        facts = [_fact_record(f, k) for f, k in zip(corpus.facts, result.known, strict=True)]
        (tmp / FACTS_FILE).write_text(json.dumps(facts, indent=1) + "\n")
        record["files"] = sorted([p.name for p in tmp.iterdir()] + [WORLD_FILE])
        (tmp / WORLD_FILE).write_text(json.dumps(record, indent=1) + "\n")
    if not record["reached_target"]:
        print(
            f"warning: world {config.digest()} reached knowledge {result.knowledge:.3f} < target "
            f"{config.knowledge_target} in {config.max_epochs} epochs",
            file=sys.stderr,
        )


def _check_own(path: Path) -> None:
    """Refuse, with one line, to build over a world folder that holds anything a build did not write (a build
    replaces the whole folder)."""
    if not path.is_dir():
        raise InterferenceError(f"world cache {path} is a file interference did not write: move it away")
    try:
        listed = json.loads((path / WORLD_FILE).read_text()).get("files", [])
    except (OSError, ValueError, AttributeError):
        listed = []
    own = {*CHECKPOINT_FILES, *(name for name in listed if isinstance(name, str))}
    foreign = sorted(p.name for p in path.iterdir() if p.name not in own or not p.is_file())
    if foreign:
        raise InterferenceError(f"world cache {path} holds {foreign[0]}, which interference did not write: move it "
                                "away (building the world replaces the whole folder)")


def _read(config: WorldConfig, path: Path) -> World:
    from ..models.loading import load_model

    try:
        record = json.loads((path / WORLD_FILE).read_text())
        rows = json.loads((path / FACTS_FILE).read_text())
    except (OSError, ValueError) as err:
        raise InterferenceError(f"world cache {path} is unreadable ({err}); rebuild it with rebuild=True") from err
    if WorldConfig.from_dict(record["config"]) != config:
        raise InterferenceError(f"world cache {path} holds a different config; rebuild it with rebuild=True")
    corpus = build_corpus(config)
    facts = [Fact(r["subject"], r["relation"], r["object"], r["question"], key_kind=r["key_kind"]) for r in rows]
    if facts != corpus.facts:
        raise InterferenceError(f"world cache {path} does not match its config's facts; rebuild it with rebuild=True")
    model, tokenizer = load_model(path)
    known = [bool(r["known"]) for r in rows]
    return World(config, model, tokenizer, facts, known, record["knowledge"], path, record, corpus)


def load_world(
    config: WorldConfig | None = None,
    *,
    cache_dir: str | Path | None = None,
    rebuild: bool = False,
    progress: bool = True,
) -> World:
    """The world of `config` (default: `WorldConfig()`), built and pretrained on first use, then read from the cache.

    `cache_dir` defaults to `$INTERFERENCE_CACHE` or `~/.cache/interference`; the world lives in its
    `worlds/<digest>-<numerics>` subfolder (`world_dir`). `rebuild` retrains even when a cached copy exists, and
    replaces it: a folder holding a file the build did not write is refused instead.
    """
    config = WorldConfig() if config is None else config
    if not isinstance(config, WorldConfig):
        raise InterferenceError(f"load_world needs a WorldConfig, got {type(config).__name__}")
    path = world_dir(config, cache_dir)
    if rebuild or not (path / WORLD_FILE).exists():
        if path.exists():
            _check_own(path)
        _build(config, path, progress)
    return _read(config, path)

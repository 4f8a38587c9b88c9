"""SLiCK tables kept on disk, so that every seed and every analysis of one model and data set categorises once.

    rows, path = categorised_facts("smollm2-135m", "../shared/data/entityquestions", model=m, tokenizer=t,
                                   relations=["P36", "P17"], limit_per_relation=200, preset="fast", seed=0)

A table is keyed by what made it: the model (a built-in name, or a folder's resolved path and its config), the data
(the EntityQuestions folder, and the size of each question file read), the relations, the per-relation limit, the
SLiCK preset, the seed, the dtype and the splits the questions and exemplars come from. It lives under
`$INTERFERENCE_CACHE/slick/` (default `~/.cache/interference/slick/`) as a table `interference.facts.knowledge` writes
and reads, so a cached table can be opened, shared and passed back with `--knowledge TABLE`.

`knowledge_source` reads such a saved table instead: the shared `smollm2-135m-fast.jsonl`, or one written by
`python -m interference.facts.knowledge`; its rows must have been made with the model they are used with.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Sequence
from pathlib import Path

import torch

from ..io import atomic
from ..io.errors import InterferenceError
from ..models.devices import inference_batch_size
from .datasets import DataError, load_entityquestions
from .knowledge import (
    TABLE_SUFFIXES,
    FactKnowledge,
    SlickConfig,
    categorize,
    load_knowledge_table,
    save_knowledge_table,
)

#: Bump when what a cached table holds changes meaning, so older tables are not reused.
CACHE_VERSION = 1


def cache_dir() -> Path:
    """Where cached SLiCK tables are kept."""
    return atomic.cache_root() / "slick"


def is_table(path: str | os.PathLike) -> bool:
    """Is `path` a SLiCK table file (rather than a folder of facts)?"""
    path = Path(path)
    return path.suffix in TABLE_SUFFIXES and not path.is_dir()


def cache_key(model_name: str, data: str | os.PathLike, *, relations: Sequence[str] | None,
              limit_per_relation: int | None, preset: str, seed: int, dtype: torch.dtype = torch.float32,
              split: str = "test", exemplar_split: str = "dev") -> dict:
    """What a cached table depends on, as a JSON-able dict (its digest names the file)."""
    folder = Path(data).resolve()
    return {
        "version": CACHE_VERSION,
        "model": _model_identity(model_name),
        "data": str(folder),
        "files": _data_fingerprint(folder, (split, exemplar_split)),
        "relations": sorted(relations) if relations else None,
        "limit_per_relation": limit_per_relation,
        "preset": preset,
        "seed": seed,
        "dtype": str(dtype).removeprefix("torch."),
        "split": split,
        "exemplar_split": exemplar_split,
    }


def cache_path(key: dict) -> Path:
    """The file of the table `key` describes (readable name, digest of the whole key)."""
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    label = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(str(key["model"]["name"])).name)[:40]
    return cache_dir() / f"{label}-{key['preset']}-{digest}.jsonl"


def categorised_facts(model_name: str, data: str | os.PathLike, *, model, tokenizer,
                      relations: Sequence[str] | None = None, limit_per_relation: int | None = 200,
                      preset: str = "fast", seed: int = 0, batch_size: int | None = None,
                      progress: bool = True) -> tuple[list[FactKnowledge], Path]:
    """SLiCK rows of the EntityQuestions test questions in `data` under `model`, from the cache when present.

    On a miss the questions (`limit_per_relation` per relation of `relations`, or all) are categorised with the
    `preset` (exemplars from dev, `seed`) and the table is written to the cache before it is returned. Returns the
    rows and the table's path. `batch_size` (sequences decoded together; default: the device's, see
    `interference.models.devices.inference_batch_size`) changes only the speed, so it is no part of the key.
    """
    dtype = next(model.parameters()).dtype
    key = cache_key(model_name, data, relations=relations, limit_per_relation=limit_per_relation, preset=preset,
                    seed=seed, dtype=dtype)
    path = cache_path(key)
    if path.is_file():
        return load_knowledge_table(path), path
    facts = load_entityquestions(data, "test", relations=relations, limit_per_relation=limit_per_relation)
    exemplars = load_entityquestions(data, "dev", relations=relations)
    device = next(model.parameters()).device
    batch_size = batch_size or inference_batch_size(SlickConfig.batch_size, device)  # 32 on a CPU, 256 on a GPU
    config = SlickConfig.preset(preset, seed=seed, batch_size=batch_size)
    rows = categorize(model, tokenizer, facts, exemplars, config, progress=progress)
    save_knowledge_table(rows, path, model_name, config)
    atomic.write_json(path.with_suffix(".key.json"), key)  # what made the table, beside it
    return rows, path


def knowledge_source(path: str | os.PathLike, model_name: str, *, relations: Sequence[str] | None = None,
                     limit_per_relation: int | None = None) -> list[FactKnowledge]:
    """The rows of a saved SLiCK table, checked to belong to `model_name`, cut to `relations` and
    `limit_per_relation` (the first rows of each relation, in table order) when given."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: SLiCK table not found")
    rows = load_knowledge_table(path)
    if not rows:
        raise DataError(f"{path}: SLiCK table holds no rows")
    made_with = _table_models(path)
    if made_with and made_with != {model_name} and made_with != {Path(model_name).name}:
        raise InterferenceError(
            f"{path} was categorised with model {', '.join(sorted(made_with))}, not {model_name!r}: "
            "a SLiCK table is only valid for the model that made it"
        )
    if relations:
        present = {r.fact.relation for r in rows}
        missing = [r for r in relations if r not in present]
        if missing:
            raise DataError(f"{path}: no rows of relation {missing[0]} (it has {', '.join(sorted(present))})")
        wanted = set(relations)
        rows = [r for r in rows if r.fact.relation in wanted]
    if limit_per_relation is not None:
        seen: dict[str, int] = {}
        kept = []
        for row in rows:
            seen[row.fact.relation] = seen.get(row.fact.relation, 0) + 1
            if seen[row.fact.relation] <= limit_per_relation:
                kept.append(row)
        rows = kept
    return rows


def _table_models(path: Path) -> set[str]:
    """The model names recorded in a table's rows (JSONL; a CSV's are not checked)."""
    if path.suffix != ".jsonl":
        return set()
    names = set()
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                name = json.loads(line).get("model")
                if name:
                    names.add(str(name))
    return names


def _model_identity(model_name: str) -> dict:
    """A built-in or Hub name as itself; a local folder as its resolved path and the digest of its config.json."""
    path = Path(model_name).expanduser()
    if (path / "config.json").is_file():
        config = hashlib.sha256((path / "config.json").read_bytes()).hexdigest()[:16]
        weights = sorted((p.name, p.stat().st_size) for p in path.glob("*.safetensors"))
        return {"name": str(path.resolve()), "config": config, "weights": weights}
    return {"name": model_name}


def _data_fingerprint(folder: Path, splits: Sequence[str]) -> list[tuple[str, int]]:
    """Name and size of every question file of `splits` (a changed data set gets a new key)."""
    files = []
    for split in splits:
        directory = folder / split
        if directory.is_dir():
            files.extend((f"{split}/{p.name}", p.stat().st_size) for p in sorted(directory.glob("*.json")))
    return files

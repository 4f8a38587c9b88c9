"""The real-data set-up: any causal LM with its facts (a splits folder, a SLiCK table, or EntityQuestions categorised
with SLiCK), loaded and categorised once per process, split per seed (`interference.splits.build_splits`).

    setup = data_setup("smollm2-135m", "data/entityquestions", n_known=100, n_unknown=200, n_held=100, seed=0)
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from .errors import InterferenceError
from .experiment import Setup

#: Questions per relation categorised from an EntityQuestions folder when no limit is given (SLiCK costs ~2 s a
#: question on a CPU).
EQ_LIMIT = 200

#: In-process cache of loaded real models and their SLiCK categories, so several seeds pay for them once.
_REAL: dict[tuple, tuple] = {}


def check_data(data: str | Path) -> Path:
    """`data` as a path, with a one-line error unless it is a folder or a SLiCK table (.jsonl/.csv) that exists."""
    from .knowledge_cache import is_table

    path = Path(data)
    if not (path.is_dir() or (is_table(path) and path.is_file())):
        raise InterferenceError(f"data {path} is neither a folder nor a SLiCK table (.jsonl/.csv) that exists")
    return path


def data_setup(model_name: str, data: str | Path, *, n_known: int | None = None, n_unknown: int | None = None,
               n_held: int | None = None, seed: int = 0, relations: Sequence[str] | None = None,
               limit_per_relation: int | None = None, preset: str = "fast", min_known_fraction: float = 0.3,
               device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32, progress: bool = True) -> Setup:
    """A setup from any causal LM and its facts.

    `data` is one of: a splits folder (`known.jsonl`, `unknown.jsonl`, `held.jsonl`, as written by
    `interference.splits.save_splits`), used as is (sizes cut it down); a saved SLiCK table (`.jsonl`/`.csv`, made
    with this model, e.g. by `python -m interference.knowledge`); or an EntityQuestions folder, whose test questions
    (`limit_per_relation` per relation, default `EQ_LIMIT`, of `relations` or all) are categorised with SLiCK
    (`preset`, exemplars from dev, seed 0) once and cached on disk (`interference.knowledge_cache`); a table is used
    whole unless `limit_per_relation` is given. Categorised facts are split by
    `interference.splits.build_splits` with `seed`, keeping the relations with at least `min_known_fraction`
    HighlyKnown facts; the setup's `knowledge` lists every relation's fraction.
    """
    from .knowledge_cache import categorised_facts, is_table, knowledge_source
    from .models import load_model
    from .splits import SplitConfig, build_splits, load_splits

    path = check_data(data)
    if limit_per_relation is None and path.is_dir():  # a table is used whole unless a limit is given
        limit_per_relation = EQ_LIMIT
    key = (model_name, str(path.resolve()), tuple(relations or ()), limit_per_relation, preset, str(device), dtype)
    if key not in _REAL:
        splits = rows = None
        if is_table(path):  # read and checked against the model before the model is loaded
            rows = knowledge_source(path, model_name, relations=relations, limit_per_relation=limit_per_relation)
        model, tokenizer = load_model(model_name, device=device, dtype=dtype)
        if path.is_dir() and (path / "known.jsonl").exists():
            splits = load_splits(path)
        elif rows is None:
            rows, _ = categorised_facts(model_name, path, model=model, tokenizer=tokenizer, relations=relations,
                                        limit_per_relation=limit_per_relation, preset=preset, progress=progress)
        _REAL[key] = (model, tokenizer, splits, rows)
    model, tokenizer, splits, rows = _REAL[key]
    if rows is None:
        sizes = (n_known, n_unknown, n_held)
        known, unknown, held = (list(s) if n is None else list(s)[:n]
                                for s, n in zip((splits.known, splits.unknown, splits.held), sizes, strict=True))
    else:
        splits = build_splits([r.fact for r in rows], rows, SplitConfig(
            n_known=n_known, n_unknown=n_unknown, n_held=n_held, min_known_fraction=min_known_fraction, seed=seed))
        known, unknown, held = list(splits.known), list(splits.unknown), list(splits.held)
    knowledge = splits.knowledge_summary() if splits.known_fractions else None
    return Setup(model_name, model, tokenizer, known, unknown, held, seed, knowledge=knowledge)

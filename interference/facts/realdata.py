"""Real data: any causal LM with its facts (a splits folder, a SLiCK table, or EntityQuestions categorised with SLiCK),
loaded and categorised once, then split per seed (`interference.facts.splits.build_splits`).

    data = load_real_data("smollm2-135m", "data/entityquestions")
    known, unknown, held, knowledge = data.draw(n_known=100, n_unknown=200, n_held=100, seed=0)

`interference.studies.setup.load_base` builds one `RealData` per study and draws every seed's setup from it.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from ..io.errors import InterferenceError
from .fact import Fact
from .splits import Splits

if TYPE_CHECKING:  # SLiCK loads only when a table is read
    from .knowledge import FactKnowledge

#: Questions per relation categorised from an EntityQuestions folder when no limit is given (SLiCK costs ~2 s a
#: question on a CPU).
EQ_LIMIT = 200


def check_data(data: str | Path) -> Path:
    """`data` as a path, with a one-line error unless it is a folder or a SLiCK table (.jsonl/.csv) that exists."""
    from .knowledge_cache import is_table

    path = Path(data)
    if not (path.is_dir() or (is_table(path) and path.is_file())):
        raise InterferenceError(f"data {path} is neither a folder nor a SLiCK table (.jsonl/.csv) that exists")
    return path


def data_relations(data: str | Path) -> list[str] | None:
    """The relations whose facts `data` holds, read without the model: a SLiCK table's rows', an EntityQuestions
    folder's (those with test questions and a template); None for a splits folder (its D_unknown is fixed)."""
    from .datasets import entityquestions_relations
    from .knowledge import load_knowledge_table
    from .knowledge_cache import is_table

    path = check_data(data)
    if is_table(path):
        return sorted({row.fact.relation for row in load_knowledge_table(path)})
    return None if is_splits_folder(path) else entityquestions_relations(path)


def is_splits_folder(path: Path) -> bool:
    """Is `path` a folder of fixed splits (`known.jsonl`, … as `save_splits` writes them) rather than facts to split?"""
    return path.is_dir() and (path / "known.jsonl").exists()


def _fixed_unknown(relation: str, folder: str | Path | None = None) -> InterferenceError:
    """The one-line refusal of a new relation for a splits folder, whose D_unknown is fixed."""
    return InterferenceError(f"new_relation {relation!r} needs categorised facts (a SLiCK table or an EntityQuestions "
                             f"folder), not {f'the splits folder {folder}' if folder else 'a splits folder'}: a splits "
                             "folder holds its own D_unknown")


def check_data_relation(data: str | Path, relation: str) -> None:
    """A one-line error, before the model loads, unless `data` holds facts of `relation` to draw new facts from."""
    relations = data_relations(data)
    if relations is None:
        raise _fixed_unknown(relation, data)
    if relation not in relations:
        raise InterferenceError(f"new_relation {relation!r} is not a relation of {data} (it has "
                                f"{', '.join(relations[:12])}{' …' if len(relations) > 12 else ''})")


@dataclass
class RealData:
    """A loaded model with its facts: fixed `splits` (from a splits folder) or SLiCK-categorised `rows` to split."""

    name: str
    model: torch.nn.Module
    tokenizer: object
    splits: Splits | None = None
    rows: list[FactKnowledge] | None = None

    def draw(self, n_known: int | None = None, n_unknown: int | None = None, n_held: int | None = None, *,
             seed: int = 0, min_known_fraction: float = 0.3, new_relation: str | None = None
             ) -> tuple[list[Fact], list[Fact], list[Fact], dict | None]:
        """D_known, D_unknown, D_held of one seed and the relation filter (`Splits.knowledge_summary`, None for a
        splits folder). Categorised facts are split by `build_splits` with `seed`, keeping the relations with at least
        `min_known_fraction` HighlyKnown facts, D_unknown of `new_relation` alone where given; a splits folder is used
        as is, cut to the sizes given (it holds its own D_unknown: no `new_relation`)."""
        from .splits import SplitConfig, build_splits

        splits = self.splits
        if self.rows is None and new_relation is not None:
            raise _fixed_unknown(new_relation)
        if self.rows is None:
            sizes = (n_known, n_unknown, n_held)
            known, unknown, held = (list(s) if n is None else list(s)[:n]
                                    for s, n in zip((splits.known, splits.unknown, splits.held), sizes, strict=True))
        else:
            splits = build_splits([r.fact for r in self.rows], self.rows, SplitConfig(
                n_known=n_known, n_unknown=n_unknown, n_held=n_held, min_known_fraction=min_known_fraction,
                seed=seed, new_relation=new_relation))
            known, unknown, held = list(splits.known), list(splits.unknown), list(splits.held)
        return known, unknown, held, splits.knowledge_summary() if splits.known_fractions else None

    def unknown_candidates(self, n: int, *, exclude: Sequence[Fact] = (), seed: int = 0,
                           min_known_fraction: float = 0.3, new_relation: str | None = None) -> list[Fact]:
        """Up to `n` Unknown facts of the relations `draw` keeps (of `new_relation` alone where given), none of
        `exclude` (a seed's D_unknown), drawn with `seed`: the candidate new facts of the overlap study's causal test.
        Empty for a splits folder (it holds only its own D_unknown)."""
        from .splits import SplitConfig, build_splits

        if self.rows is None:
            return []
        every = build_splits([r.fact for r in self.rows], self.rows, SplitConfig(
            n_known=1, n_unknown=None, n_held=1, min_known_fraction=min_known_fraction, seed=seed,
            new_relation=new_relation)).unknown
        taken = {f.key for f in exclude}
        rest = [f for f in every if f.key not in taken]
        return random.Random(f"unknown-candidates:{seed}").sample(rest, min(n, len(rest)))


def load_real_data(model_name: str, data: str | Path, *, relations: Sequence[str] | None = None,
                   limit_per_relation: int | None = None, preset: str = "fast", device: str | torch.device = "cpu",
                   dtype: torch.dtype = torch.float32, progress: bool = True) -> RealData:
    """`model_name` loaded with its facts.

    `data` is one of: a splits folder (`known.jsonl`, `unknown.jsonl`, `held.jsonl`, as written by
    `interference.facts.splits.save_splits`), used as is; a saved SLiCK table (`.jsonl`/`.csv`, made with this model,
    e.g. by `python -m interference.facts.knowledge`), read and checked against the model before the model loads; or an
    EntityQuestions folder, whose test questions (`limit_per_relation` per relation, default `EQ_LIMIT`, of
    `relations` or all) are categorised with SLiCK (`preset`, exemplars from dev, seed 0) once and cached on disk
    (`interference.facts.knowledge_cache`). A table is used whole unless `limit_per_relation` is given.
    """
    from ..models.loading import load_model
    from .knowledge_cache import categorised_facts, is_table, knowledge_source
    from .splits import load_splits

    path = check_data(data)
    if limit_per_relation is None and path.is_dir():  # a table is used whole unless a limit is given
        limit_per_relation = EQ_LIMIT
    rows = None
    if is_table(path):
        rows = knowledge_source(path, model_name, relations=relations, limit_per_relation=limit_per_relation)
    model, tokenizer = load_model(model_name, device=device, dtype=dtype)
    if is_splits_folder(path):
        return RealData(model_name, model, tokenizer, splits=load_splits(path))
    if rows is None:
        rows, _ = categorised_facts(model_name, path, model=model, tokenizer=tokenizer, relations=relations,
                                    limit_per_relation=limit_per_relation, preset=preset, progress=progress)
    return RealData(model_name, model, tokenizer, rows=list(rows))

"""The embedded synthetic world: entities with name-like (or UUID) keys, their facts, a tokenizer trained on them,
and a small Llama-style model pretrained until it knows them (SPEC §6).

    from interference.world import WorldConfig, load_world
    world = load_world(WorldConfig.quick())          # built once (seconds), then read from the cache
    known, held = world.split(n_known=40, n_held=40)  # facts the model knows: D_known, D_held
    new = world.new_facts(40, key_kind="name")        # D_unknown: facts about fresh subjects

Command line: `python -m interference.world [--quick] [--rebuild]`.

Layer 3: imports `interference.io`, `models` and `facts`.
"""

from .build import qa_form
from .config import WorldConfig
from .store import World, load_world, world_dir
from .tokenizer import pieces

__all__ = ["World", "WorldConfig", "load_world", "pieces", "qa_form", "world_dir"]

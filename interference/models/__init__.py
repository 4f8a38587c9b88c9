"""Models: loading any causal LM (`loading`) or the tiny test models (`tiny`); where each part of a decoder lives
(`layout`), the built-in layouts (`architectures`), detection of new ones (`layout_detection`) and their check on a
forward pass (`layout_check`); the three backends' views and patching (`views`), parameter groups for freezing
(`parameter_groups`), devices (`devices`), batched greedy generation (`generation`) and the check that a tokenizer
reads given texts (`readable`).

Layer 1: imports only `interference.io` (and `numerics`); knows nothing of facts, training or reports.
"""

from .architectures import layout_of, register_layout
from .layout import Layout
from .layout_check import check_layout
from .loading import (
    BUILTIN_MODELS,
    SMOLLM2,
    SMOLLM2_INSTALL,
    TINY_LAYERS,
    TINY_MODELS,
    char_tokenizer,
    declared_layers,
    load_model,
    save_checkpoint,
    smollm2_cache_dir,
    tiny_model,
)

__all__ = ["BUILTIN_MODELS", "Layout", "SMOLLM2", "SMOLLM2_INSTALL", "TINY_LAYERS", "TINY_MODELS", "char_tokenizer",
           "check_layout", "declared_layers", "layout_of", "load_model", "register_layout", "save_checkpoint",
           "smollm2_cache_dir", "tiny_model"]

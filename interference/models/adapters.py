"""LoRA adapters, through the maintained PEFT library (Hu et al. 2021; "LoRA learns less and forgets less",
Biderman et al. 2024).

`add_lora(model, "attention,ffn", rank=8, alpha=16)` puts an adapter W + (α/r)·B·A on every linear projection of the
selected parameter groups (the `interference.models.parameter_groups` syntax, so `ffn@2-3` works too), in place, and
returns the names of the modules that carry one; B starts at zero, so the model computes what it did. `merge_lora`
folds each adapter into its base weight and removes it: the model is again the plain Hugging Face model that every
view, the FFN analyses and `save_pretrained` read.
"""

from __future__ import annotations

import torch

from ..io.errors import InterferenceError
from .parameter_groups import resolve_trainable


def lora_modules(model: torch.nn.Module, targets: str) -> list[str]:
    """Names (as in `named_modules()`) of the linear projections (`nn.Linear`, GPT-2's `Conv1D`) whose weight is in
    the parameter selection `targets`, in model order."""
    chosen = set(resolve_trainable(model, train_only=targets))
    linear = (torch.nn.Linear,)
    names = [name for name, module in model.named_modules()
             if (isinstance(module, linear) or type(module).__name__ == "Conv1D") and f"{name}.weight" in chosen]
    if not names:
        raise InterferenceError(f"LoRA targets {targets!r} select no linear projection of this model")
    return names


def add_lora(model: torch.nn.Module, targets: str, *, rank: int, alpha: float, dropout: float = 0.0
             ) -> tuple[list[str], list[str]]:
    """Inject LoRA adapters of `rank` into the projections `lora_modules(model, targets)`, in place; only the adapters'
    A and B require grad afterwards. Returns the adapted modules' names and the adapters' parameter names. A is drawn
    from torch's RNG (seed it)."""
    from peft import LoraConfig, inject_adapter_in_model

    names = lora_modules(model, targets)
    conv1d = any(type(model.get_submodule(n)).__name__ == "Conv1D" for n in names)
    config = LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=dropout, target_modules=names, bias="none",
                        fan_in_fan_out=conv1d)
    inject_adapter_in_model(config, model)
    for name, param in model.named_parameters():
        param.requires_grad_(".lora_" in name)
    return names, lora_parameters(model)


def lora_parameters(model: torch.nn.Module) -> list[str]:
    """Names of the adapters' parameters in `model` (empty without adapters)."""
    return [name for name, _ in model.named_parameters() if ".lora_" in name]


def merge_lora(model: torch.nn.Module) -> None:
    """Fold every adapter into its base weight, W ← W + (α/r)·B·A, and put the base module back in its place."""
    from peft.tuners.lora import LoraLayer

    for name, module in list(model.named_modules()):
        if isinstance(module, LoraLayer):
            module.merge()
            parent, _, child = name.rpartition(".")
            setattr(model.get_submodule(parent) if parent else model, child, module.get_base_layer())

"""Hooked views of a model's insides, with one vocabulary across architectures and backends.

- residual stream after layer ℓ (before the final norm), ℓ = 0 … L-1;
- MLP hidden activations m (the input of the down/out projection, SPEC §5), so that FFN output = Σ_i m_i v_i;
- logit lens: unembedding of the final-normed residual.

Three backends read the same Hugging Face model, with no weight copies:
``"hf"`` (plain PyTorch hooks; the default, and the fastest), ``"transformer_lens"`` (a `TransformerBridge`
wrapping the model — note that the bridge inserts its wrappers into the model's module tree in place, once,
and switches attention to the eager kernel) and ``"nnsight"`` (an `nnsight.NNsight` envoy).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch

from .architectures import decoder_layers, down_proj, final_norm, get_module, layout_of
from .errors import InterferenceError
from .generation import inference_mode

BACKENDS = ("hf", "transformer_lens", "nnsight")
SITES = ("resid", "mlp")


def encode(tokenizer, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded `input_ids` and `attention_mask` for `texts`."""
    side = tokenizer.padding_side
    tokenizer.padding_side = "right"
    try:
        batch = tokenizer(list(texts), return_tensors="pt", padding=True)
    finally:
        tokenizer.padding_side = side
    return batch["input_ids"], batch["attention_mask"]


def right_pad(rows: Sequence[Sequence[int]], pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Token-id lists as right-padded `input_ids` (filled with `pad`) and their `attention_mask`."""
    width = max(len(row) for row in rows)
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = torch.tensor(list(row), dtype=torch.long)
        mask[i, : len(row)] = 1
    return ids, mask


def last_positions(attention_mask: torch.Tensor) -> torch.Tensor:
    """Index of the last non-pad token of each right-padded row."""
    return attention_mask.sum(dim=1) - 1


def _check(model, layers: Sequence[int] | None, backend: str) -> list[int]:
    if backend not in BACKENDS:
        raise InterferenceError(f"unknown backend {backend!r} (choose {', '.join(BACKENDS)})")
    n = len(decoder_layers(model))
    layers = list(range(n)) if layers is None else [int(i) for i in layers]
    bad = [i for i in layers if not -n <= i < n]
    if bad:
        raise InterferenceError(f"layer(s) {bad} out of range for a model with {n} layers")
    return [i % n for i in layers]


def _first(output):
    return output[0] if isinstance(output, tuple) else output


def _run_hf(model, input_ids, attention_mask, layers, site) -> list[torch.Tensor]:
    found: dict[int, torch.Tensor] = {}
    handles = []
    for i in layers:
        if site == "resid":
            module = decoder_layers(model)[i]
            handles.append(module.register_forward_hook(lambda m, a, out, i=i: found.__setitem__(i, _first(out))))
        else:
            module = down_proj(model, i)
            handles.append(module.register_forward_pre_hook(lambda m, a, i=i: found.__setitem__(i, a[0])))
    try:
        model(input_ids=input_ids, attention_mask=attention_mask)
    finally:
        for handle in handles:
            handle.remove()
    return [found[i] for i in layers]


def transformer_lens_bridge(model, tokenizer=None):
    """The `TransformerBridge` over `model` (built once, then reused; it wraps the model's modules in place)."""
    bridge = model.__dict__.get("_interference_bridge")
    if bridge is None:
        from transformer_lens.model_bridge import TransformerBridge

        if tokenizer is None:
            from .models import char_tokenizer

            tokenizer = char_tokenizer()
        # The bridge re-loads a tokenizer from disk unless told BOS handling is settled; we feed it token ids.
        bridge_tokenizer = copy.copy(tokenizer)
        bridge_tokenizer.init_kwargs = dict(tokenizer.init_kwargs, name_or_path="in-memory", add_bos_token=True)
        name = getattr(model.config, "_name_or_path", "") or model.config.model_type
        bridge = TransformerBridge.boot_transformers(name, hf_model=model, tokenizer=bridge_tokenizer)
        model.__dict__["_interference_bridge"] = bridge
    return bridge


def _run_transformer_lens(model, input_ids, attention_mask, layers, site) -> list[torch.Tensor]:
    bridge = transformer_lens_bridge(model)
    hook = "hook_resid_post" if site == "resid" else "mlp.out.hook_in"
    names = [f"blocks.{i}.{hook}" for i in layers]
    _, cache = bridge.run_with_cache(input_ids, attention_mask=attention_mask, names_filter=names)
    return [cache[name] for name in names]


def nnsight_model(model):
    """The `nnsight.NNsight` envoy over `model` (built once, then reused; it wraps without copying)."""
    envoy = model.__dict__.get("_interference_nnsight")
    if envoy is None:
        from nnsight import NNsight

        envoy = NNsight(model)
        model.__dict__["_interference_nnsight"] = envoy
    return envoy


def _run_nnsight(model, input_ids, attention_mask, layers, site) -> list[torch.Tensor]:
    import nnsight

    envoy = nnsight_model(model)
    layout = layout_of(model)
    blocks = get_module(envoy, layout.layers)
    with envoy.trace(input_ids=input_ids, attention_mask=attention_mask):
        saved = nnsight.save([])
        for i in layers:  # nnsight needs values requested in execution order
            if site == "resid":
                saved.append(_first(blocks[i].output))
            else:
                saved.append(get_module(blocks[i], layout.down_proj).input)
    return list(saved)


_RUNNERS = {"hf": _run_hf, "transformer_lens": _run_transformer_lens, "nnsight": _run_nnsight}


def read_site(
    model,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor | None = None,
    *,
    site: str = "resid",
    layers: Sequence[int] | None = None,
    positions: torch.Tensor | None = None,
    backend: str = "hf",
) -> torch.Tensor:
    """Activations at `site` ("resid" or "mlp") for each requested layer.

    Returns [n_layers, batch, seq, d] or, with `positions` (one token index per row), [n_layers, batch, d].
    """
    if site not in SITES:
        raise InterferenceError(f"unknown site {site!r} (choose {', '.join(SITES)})")
    layers = _check(model, layers, backend)
    if attention_mask is None:
        attention_mask = torch.ones_like(input_ids)
    device = next(model.parameters()).device
    input_ids, attention_mask = input_ids.to(device), attention_mask.to(device)
    with inference_mode(model):
        per_layer = _RUNNERS[backend](model, input_ids, attention_mask, layers, site)
    stacked = torch.stack([t.detach() for t in per_layer])
    if positions is not None:
        rows = torch.arange(stacked.shape[1], device=stacked.device)
        stacked = stacked[:, rows, positions.to(stacked.device)]
    return stacked


def residual_stream(model, input_ids, attention_mask=None, *, layers=None, positions=None, backend="hf"):
    """Residual stream after each requested layer (pre final norm); see `read_site`."""
    return read_site(model, input_ids, attention_mask, site="resid", layers=layers, positions=positions,
                     backend=backend)


def mlp_activations(model, input_ids, attention_mask=None, *, layers=None, positions=None, backend="hf"):
    """MLP hidden activations m_i (input of the down projection) at each requested layer; see `read_site`."""
    return read_site(model, input_ids, attention_mask, site="mlp", layers=layers, positions=positions,
                     backend=backend)


def logit_lens(model, residual: torch.Tensor) -> torch.Tensor:
    """Logits obtained by applying the final norm and the unembedding to residual-stream vectors [..., d_model]."""
    with torch.no_grad():
        return get_module(model, layout_of(model).unembedding)(final_norm(model)(residual))

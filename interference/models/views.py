"""Hooked views of a model's insides, with one vocabulary across architectures and backends: read and patch.

Sites, per decoder layer ℓ = 0 … L-1 (in the order the forward pass computes them):
- ``resid_pre``: the residual stream entering layer ℓ (layer 0: the embeddings);
- ``attn_out``: the attention block's output (after its output projection), added to the residual stream;
- ``mlp``: the MLP hidden activations m (the input of the down/out projection, SPEC §5): FFN output = Σ_i m_i v_i;
- ``mlp_out``: the MLP block's output, added to the residual stream;
- ``resid``: the residual stream after layer ℓ (before the final norm).
The logit lens unembeds final-normed residual vectors (`logit_lens`, `logit_lens_top_k`).

`read_site` reads a site; `run_sites` runs a model while reading sites and *patching* them (replacing the activation
at chosen token positions with given values, e.g. another model's activations on the same prompts — activation
patching); `patch_from` does the latter from a source model in one call.

Three backends give the same numbers on the same Hugging Face model: ``"hf"`` (plain PyTorch hooks on the model,
removed after each call; the default, and the fastest), ``"transformer_lens"`` (a `TransformerBridge`) and
``"nnsight"`` (an `nnsight.NNsight` envoy). Both libraries change the modules they wrap (the bridge inserts
wrappers into the module tree, nnsight replaces `forward`), so they wrap a *shadow* of the model: a copy of its
module tree that shares the model's parameter and buffer tensors (no weight copy, and training the model updates
the shadow). The user's model keeps its modules, `state_dict` keys and attention kernel, and saves as before.
"""

from __future__ import annotations

import copy
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from unittest import mock

import torch

from ..io.errors import InterferenceError
from .architectures import decoder_layers, down_proj, get_module, layout_of, unembed
from .generation import inference_mode, padded

BACKENDS = ("hf", "transformer_lens", "nnsight")
#: Sites of a decoder layer, in the order the forward pass computes them.
SITES = ("resid_pre", "attn_out", "mlp", "mlp_out", "resid")
#: The TransformerLens hook of each site (relative to `blocks.{layer}`).
_TL_HOOKS = {"resid_pre": "hook_resid_pre", "attn_out": "hook_attn_out", "mlp": "mlp.out.hook_in",
             "mlp_out": "hook_mlp_out", "resid": "hook_resid_post"}


def encode(tokenizer, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded `input_ids` and `attention_mask` for `texts`."""
    batch = padded(tokenizer, texts, "right")
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


def position_mask(positions: torch.Tensor, seq_len: int) -> torch.Tensor:
    """A [batch, seq_len] boolean mask from one token index per row ([batch]) or a [start, end) span per row
    ([batch, 2])."""
    index = torch.arange(seq_len, device=positions.device)
    if positions.ndim == 1:
        return index[None, :] == positions[:, None]
    if positions.ndim == 2 and positions.shape[1] == 2:
        return (index[None, :] >= positions[:, :1]) & (index[None, :] < positions[:, 1:])
    shape = tuple(positions.shape)
    raise InterferenceError(f"positions must be [batch] indices or [batch, 2] spans, got shape {shape}")


@dataclass(frozen=True)
class Patch:
    """Replace the activation at (`layer`, `site`) by `values` wherever `mask` is True.

    Attributes:
        layer: decoder layer (negative counts from the end).
        site: one of `SITES`.
        values: [batch, seq, d] replacement activations (e.g. another model's `read_site` on the same inputs).
        mask: [batch, seq] booleans, True at the token positions to replace (see `position_mask`).
    """

    layer: int
    site: str
    values: torch.Tensor
    mask: torch.Tensor

    def apply(self, activation: torch.Tensor) -> torch.Tensor:
        """The activation with this patch's values at its masked positions (a new tensor)."""
        if self.values.shape != activation.shape or self.mask.shape != activation.shape[:2]:
            raise InterferenceError(
                f"patch at layer {self.layer} {self.site}: values {tuple(self.values.shape)} and mask "
                f"{tuple(self.mask.shape)} do not fit the activation {tuple(activation.shape)}"
            )
        mask = self.mask.to(activation.device)[..., None]
        return torch.where(mask, self.values.to(device=activation.device, dtype=activation.dtype), activation)


def _layers(model, layers: Sequence[int] | None) -> list[int]:
    n = len(decoder_layers(model))
    layers = list(range(n)) if layers is None else [int(i) for i in layers]
    bad = [i for i in layers if not -n <= i < n]
    if bad:
        raise InterferenceError(f"layer(s) {bad} out of range for a model with {n} layers")
    return [i % n for i in layers]


def _check_site(site: str) -> None:
    if site not in SITES:
        raise InterferenceError(f"unknown site {site!r} (choose {', '.join(SITES)})")


def _check_backend(backend: str) -> None:
    if backend not in BACKENDS:
        raise InterferenceError(f"unknown backend {backend!r} (choose {', '.join(BACKENDS)})")


def _first(output):
    return output[0] if isinstance(output, tuple) else output


# --- shadows: what the wrapping backends wrap, so that the user's model is left as it was -------------------------

_SHADOWS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _tensors(model) -> list[torch.Tensor]:
    return [*model.parameters(), *model.buffers()]


def shadow(model: torch.nn.Module, backend: str) -> torch.nn.Module:
    """A copy of `model`'s module tree sharing its parameter and buffer tensors, one per wrapping `backend` (built
    once, rebuilt if the model's parameters were replaced); that backend wraps it instead of the model."""
    ids = [id(t) for t in _tensors(model)]
    entry = _SHADOWS.get(model)
    if entry is None or entry["ids"] != ids:
        entry = {"ids": ids, "copies": {}}
        _SHADOWS[model] = entry
    if backend not in entry["copies"]:
        entry["copies"][backend] = copy.deepcopy(model, {id(t): t for t in _tensors(model)})
    copy_ = entry["copies"][backend]
    if copy_.training != model.training:  # dropout as in the model (eval inside the views)
        copy_.train(model.training)
    return copy_


def transformer_lens_bridge(model, tokenizer=None):
    """The `TransformerBridge` over `model`'s shadow (built once, then reused; `model` itself is not wrapped).

    The bridge switches its model to the eager attention kernel: only the shadow's copy of the config changes. A
    family the bridge cannot boot, or whose bridge does not reproduce the model's own logits (eager attention, a
    few tokens) to 2e-5 of their scale, is a one-line InterferenceError saying so: use the hf or nnsight backend.
    """
    copy_ = shadow(model, "transformer_lens")
    bridge = copy_.__dict__.get("_interference_bridge")
    if isinstance(bridge, InterferenceError):  # refused before: refuse again without booting it twice
        raise bridge
    if bridge is None:
        try:
            bridge = _boot_bridge(model, copy_, tokenizer)
        except InterferenceError as err:
            copy_.__dict__["_interference_bridge"] = err
            raise
        copy_.__dict__["_interference_bridge"] = bridge
    return bridge


def _no_installs(command, *args, **kwargs):
    """Stands in for `subprocess.check_call` while the bridge boots: TransformerBridge pip-installs torchvision when a
    multimodal model has no image processor, which would replace the pinned torch with another build mid-run."""
    raise RuntimeError(f"interference does not let TransformerBridge run {' '.join(map(str, command))!r}")


def _boot_bridge(model, copy_, tokenizer):
    """A checked `TransformerBridge` over the shadow `copy_` of `model` (see `transformer_lens_bridge`)."""
    from transformer_lens.model_bridge import TransformerBridge

    if tokenizer is None:
        from .tiny import char_tokenizer

        tokenizer = char_tokenizer()
    model_type = getattr(copy_.config, "model_type", None)
    refusal = layout_of(model).transformer_lens
    if refusal:
        raise InterferenceError(f"the transformer_lens backend does not support {model_type!r}: {refusal}; "
                                "use the hf or nnsight backend")
    if not getattr(copy_.config, "architectures", None):  # a model built in memory: name its class for the bridge
        copy_.config.architectures = [type(copy_).__name__]
    # The bridge re-loads a tokenizer from disk unless told BOS handling is settled; we feed it token ids.
    bridge_tokenizer = copy.copy(tokenizer)
    bridge_tokenizer.init_kwargs = dict(tokenizer.init_kwargs, name_or_path="in-memory", add_bos_token=True)
    name = getattr(copy_.config, "_name_or_path", "") or model_type
    copy_.set_attn_implementation("eager")
    ids = (torch.arange(1, 9) * 7 % copy_.get_output_embeddings().weight.shape[0])[None, :]
    ids = ids.to(next(copy_.parameters()).device)
    with torch.no_grad():
        expected = copy_(input_ids=ids).logits
    try:
        with mock.patch("subprocess.check_call", _no_installs):
            bridge = TransformerBridge.boot_transformers(name, hf_model=copy_, tokenizer=bridge_tokenizer)
    except Exception as err:  # the bridge's own errors (unsupported architecture, missing config fields)
        reason = (str(err).splitlines() or [type(err).__name__])[0][:200]
        raise InterferenceError(f"the transformer_lens backend does not support {model_type!r}: TransformerBridge "
                                f"cannot wrap it ({reason}); use the hf or nnsight backend") from err
    with torch.no_grad():
        got = bridge.run_with_hooks(ids, attention_mask=torch.ones_like(ids), fwd_hooks=[])
    tolerance = (2e-5 if expected.dtype == torch.float32 else 2e-2) * (1 + float(expected.abs().max()))
    error = float((got.float() - expected.float()).abs().max())
    if not error <= tolerance:
        raise InterferenceError(f"the transformer_lens backend does not support {model_type!r}: TransformerBridge's "
                                f"{type(copy_).__name__} adapter gives logits {error:.1e} away from the model's "
                                "own; use the hf or nnsight backend")
    return bridge


def nnsight_model(model):
    """The `nnsight.NNsight` envoy over `model`'s shadow (built once, then reused; `model` itself is not wrapped)."""
    copy_ = shadow(model, "nnsight")
    envoy = copy_.__dict__.get("_interference_nnsight")
    if envoy is None:
        from nnsight import NNsight

        envoy = NNsight(copy_)
        copy_.__dict__["_interference_nnsight"] = envoy
    return envoy


# --- one forward pass that reads and patches sites, per backend --------------------------------------------------

Key = tuple[int, str]


def _plan(reads: Sequence[Key], patches: Sequence[Patch], shape: tuple[int, int]
          ) -> tuple[list[tuple[Key, Callable]], dict]:
    """Per (layer, site) in execution order, a function of the activation that returns its patched value (None when
    the site is only read) and records reads, taken after any patch at the same site, into the returned dict.

    `shape` is the inputs' (batch, seq): an activation flattened to [batch·seq, d] (OPT runs its MLP so) is read and
    patched as [batch, seq, d] and handed back flat."""
    found: dict[Key, torch.Tensor] = {}
    by_key: dict[Key, list[Patch]] = {}
    for patch in patches:
        by_key.setdefault((patch.layer, patch.site), []).append(patch)
    keys = sorted(set(reads) | set(by_key), key=lambda k: (k[0], SITES.index(k[1])))
    wanted = set(reads)

    def action(key: Key):
        def act(activation: torch.Tensor) -> torch.Tensor | None:
            flat = activation.ndim == 2 and activation.shape[0] == shape[0] * shape[1]
            new = activation.view(*shape, -1) if flat else activation
            for patch in by_key.get(key, ()):
                new = patch.apply(new)
            if key in wanted:
                found[key] = new.clone()
            if key not in by_key:
                return None
            return new.reshape(activation.shape) if flat else new

        return act

    return [(key, action(key)) for key in keys], found


def _hf_hook(model, layer: int, site: str, act):
    block = decoder_layers(model)[layer]
    if site == "resid_pre":
        def pre_block(module, args, kwargs):
            if args:
                new = act(args[0])
                return None if new is None else ((new, *args[1:]), kwargs)
            new = act(kwargs["hidden_states"])
            return None if new is None else (args, {**kwargs, "hidden_states": new})

        return block.register_forward_pre_hook(pre_block, with_kwargs=True)
    if site == "mlp":
        def pre_down(module, args):
            new = act(args[0])
            return None if new is None else (new, *args[1:])

        return down_proj(model, layer).register_forward_pre_hook(pre_down)
    layout = layout_of(model)
    module = {"resid": block, "attn_out": get_module(block, layout.attn_out_path),
              "mlp_out": get_module(block, layout.mlp_out_path)}[site]

    def post(module, args, output):
        new = act(_first(output))
        if new is None:
            return None
        return (new, *output[1:]) if isinstance(output, tuple) else new

    return module.register_forward_hook(post)


def _run_hf(model, input_ids, attention_mask, actions) -> torch.Tensor:
    handles = [_hf_hook(model, layer, site, act) for (layer, site), act in actions]
    try:
        return model(input_ids=input_ids, attention_mask=attention_mask).logits
    finally:
        for handle in handles:
            handle.remove()


def _run_transformer_lens(model, input_ids, attention_mask, actions) -> torch.Tensor:
    bridge = transformer_lens_bridge(model)
    hooks = [(f"blocks.{layer}.{_TL_HOOKS[site]}", lambda t, hook, act=act: act(t)) for (layer, site), act in actions]
    return bridge.run_with_hooks(input_ids, attention_mask=attention_mask, fwd_hooks=hooks)


def _nnsight_value(block, layout, site):
    if site == "resid_pre":
        return block.input
    if site == "mlp":
        return get_module(block, layout.down_proj).input
    module = {"resid": block, "attn_out": get_module(block, layout.attn_out_path),
              "mlp_out": get_module(block, layout.mlp_out_path)}[site]
    return _first(module.output)


def _run_nnsight(model, input_ids, attention_mask, actions) -> torch.Tensor:
    import nnsight

    envoy = nnsight_model(model)
    layout = layout_of(model)
    blocks = get_module(envoy, layout.layers)
    with envoy.trace(input_ids=input_ids, attention_mask=attention_mask):
        for (layer, site), act in actions:  # nnsight needs values requested in execution order
            activation = _nnsight_value(blocks[layer], layout, site)
            new = act(activation)
            if new is not None:
                activation[...] = new  # in place: the forward pass goes on with the patched tensor
        logits = nnsight.save(envoy.output.logits)
    return logits


_RUNNERS = {"hf": _run_hf, "transformer_lens": _run_transformer_lens, "nnsight": _run_nnsight}


def run_sites(
    model,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor | None = None,
    *,
    read: Sequence[tuple[int, str]] = (),
    patches: Sequence[Patch] = (),
    backend: str = "hf",
) -> tuple[torch.Tensor, dict[tuple[int, str], torch.Tensor]]:
    """One forward pass that applies `patches` and reads the (layer, site) pairs in `read`.

    Returns the logits [batch, seq, vocab] and, per requested (layer, site), its activation [batch, seq, d] (after
    any patch at that site). Without patches the logits are the model's own. The model is not changed.
    """
    _check_backend(backend)
    reads = [(_layers(model, [layer])[0], site) for layer, site in read]
    patches = [Patch(_layers(model, [p.layer])[0], p.site, p.values, p.mask) for p in patches]
    for _, site in reads + [(p.layer, p.site) for p in patches]:
        _check_site(site)
    if attention_mask is None:
        attention_mask = torch.ones_like(input_ids)
    device = next(model.parameters()).device
    input_ids, attention_mask = input_ids.to(device), attention_mask.to(device)
    actions, found = _plan(reads, patches, tuple(input_ids.shape))
    with inference_mode(model):
        logits = _RUNNERS[backend](model, input_ids, attention_mask, actions)
    return logits.detach(), {key: found[key].detach() for key in reads}


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
    """Activations at `site` (one of `SITES`) for each requested layer (default: all).

    Returns [n_layers, batch, seq, d] or, with `positions` (one token index per row), [n_layers, batch, d].
    """
    _check_site(site)
    _check_backend(backend)
    layers = _layers(model, layers)
    _, found = run_sites(model, input_ids, attention_mask, read=[(i, site) for i in layers], backend=backend)
    stacked = torch.stack([found[(i, site)] for i in layers])
    if positions is not None:
        rows = torch.arange(stacked.shape[1], device=stacked.device)
        stacked = stacked[:, rows, positions.to(stacked.device)]
    return stacked


def patch_from(
    model,
    source,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor | None = None,
    *,
    layer: int,
    site: str,
    positions: torch.Tensor,
    backend: str = "hf",
) -> torch.Tensor:
    """Logits of `model` on the inputs with its (`layer`, `site`) activation at `positions` ([batch] indices,
    [batch, 2] spans or a [batch, seq] boolean mask) replaced by `source`'s activation on the same inputs."""
    values = read_site(source, input_ids, attention_mask, site=site, layers=[layer], backend=backend)[0]
    mask = positions if positions.dtype == torch.bool else position_mask(positions, input_ids.shape[1])
    logits, _ = run_sites(model, input_ids, attention_mask, patches=[Patch(layer, site, values, mask)],
                          backend=backend)
    return logits


def residual_stream(model, input_ids, attention_mask=None, *, layers=None, positions=None, backend="hf"):
    """Residual stream after each requested layer (pre final norm); see `read_site`."""
    return read_site(model, input_ids, attention_mask, site="resid", layers=layers, positions=positions,
                     backend=backend)


def mlp_activations(model, input_ids, attention_mask=None, *, layers=None, positions=None, backend="hf"):
    """MLP hidden activations m_i (input of the down projection) at each requested layer; see `read_site`."""
    return read_site(model, input_ids, attention_mask, site="mlp", layers=layers, positions=positions,
                     backend=backend)


def logit_lens(model, residual: torch.Tensor) -> torch.Tensor:
    """Logits obtained by applying the final norm and the unembedding to residual-stream vectors [..., d_model], then
    whatever the model does to its logits (soft-capping, scaling; `interference.models.architectures.unembed`)."""
    with torch.no_grad():
        return unembed(model, residual)


def logit_lens_top_k(model, tokenizer, residual: torch.Tensor, k: int = 5) -> list[list[tuple[str, float]]]:
    """The `k` most likely tokens (decoded) and their probabilities under the logit lens, per residual vector.

    `residual` is [d_model] or [n, d_model]; returns one list of (token, probability) per vector, most likely first.
    """
    if k < 1:
        raise InterferenceError(f"k must be at least 1, got {k}")
    vectors = residual.reshape(-1, residual.shape[-1])
    probs = torch.softmax(logit_lens(model, vectors.to(next(model.parameters()).device)).float(), dim=-1)
    top = probs.topk(min(k, probs.shape[-1]), dim=-1)
    return [[(tokenizer.decode([int(t)]), float(p)) for p, t in zip(row_p, row_t, strict=True)]
            for row_p, row_t in zip(top.values.tolist(), top.indices.tolist(), strict=True)]

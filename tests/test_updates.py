"""Where fine-tuning changed the weights: the relative update norm per layer, and the Fisher-weighted distance."""

from __future__ import annotations

import copy

import pytest
import torch

from interference.measures.updates import fisher_distance, layer_update_norms, update_alignment
from interference.models import load_model
from interference.models.weights import Snapshot
from interference.train.losses import ewc_penalty


@pytest.fixture
def moved():
    """A tiny model, its start, and the name of the one parameter moved (layer 1's down projection, by 0.5)."""
    model, _ = load_model("tiny-llama")
    start = Snapshot.of(model)
    name = "model.layers.1.mlp.down_proj.weight"
    with torch.no_grad():
        dict(model.named_parameters())[name].add_(0.5)
    return model, start, name


def test_the_update_norm_is_relative_and_lands_in_the_moved_layer(moved):
    model, start, name = moved
    norms = layer_update_norms(start, model)
    assert list(norms) == ["layer 0", "layer 1", "other"]
    assert norms["layer 0"] == norms["other"] == 0.0
    layer = {n: p for n, p in start.params.items() if n.startswith("model.layers.1.")}
    size = torch.sqrt(sum(p.double().pow(2).sum() for p in layer.values())).item()
    change = 0.5 * start.params[name].numel() ** 0.5
    assert norms["layer 1"] == pytest.approx(change / size, rel=1e-6)


def test_the_fisher_distance_is_ewcs_penalty_at_lambda_one(moved):
    model, start, name = moved
    generator = torch.Generator().manual_seed(0)
    fisher = {n: torch.rand(p.shape, generator=generator) for n, p in model.named_parameters()}
    named = dict(model.named_parameters())
    expected = ewc_penalty([named[n] for n in fisher], [start.params[n] for n in fisher], list(fisher.values()))
    assert fisher_distance(start, model, fisher) == pytest.approx(expected.item(), rel=1e-6)
    assert fisher_distance(start, model, {name: fisher[name]}) == pytest.approx(0.25 * fisher[name].sum().item(),
                                                                                rel=1e-6)
    assert fisher_distance(start, model, {n: f for n, f in fisher.items() if n != name}) == 0.0  # nothing else moved
    assert fisher_distance(start, model, {name: 2 * fisher[name]}) == pytest.approx(
        2 * fisher_distance(start, model, {name: fisher[name]}))


def _moved_copy(model, start, change):
    """A copy of `model` at θ⁰ + change(name, Δ_model) for every parameter."""
    other = copy.deepcopy(model)
    with torch.no_grad():
        for name, param in other.named_parameters():
            param.copy_(start.params[name] + change(name, dict(model.named_parameters())[name] - start.params[name]))
    return other


def test_an_interpolation_of_the_reference_is_aligned_with_cosine_one_and_scale_alpha(moved):
    model, start, name = moved
    with torch.no_grad():  # a second moved layer, so "all" mixes two slots
        dict(model.named_parameters())["model.layers.0.self_attn.q_proj.weight"].sub_(0.25)
    shrunk = _moved_copy(model, start, lambda _, delta: 0.3 * delta)
    alignment = update_alignment(start, shrunk, model)
    assert set(alignment) == {"cosine", "scale", "norm_ratio", "sideways"}
    for slot in ("layer 0", "layer 1", "ffn", "attention", "all"):
        assert alignment["cosine"][slot] == pytest.approx(1.0, abs=1e-6)
        assert alignment["scale"][slot] == pytest.approx(0.3, rel=1e-5)
        assert alignment["norm_ratio"][slot] == pytest.approx(0.3, rel=1e-5)
        assert alignment["sideways"][slot] == pytest.approx(0.0, abs=1e-5)
    assert alignment["cosine"]["other"] is None  # nothing moved outside the layers
    assert alignment["cosine"]["norms"] is None


def test_an_orthogonal_update_has_cosine_zero_whatever_its_size(moved):
    model, start, name = moved
    generator = torch.Generator().manual_seed(1)
    noise = torch.randn(start.params[name].shape, generator=generator)
    reference = model.get_parameter(name) - start.params[name]
    noise -= (noise * reference).sum() / reference.pow(2).sum() * reference  # the part along the reference removed
    sideways = _moved_copy(model, start, lambda n, delta: 5 * noise if n == name else 0 * delta)
    alignment = update_alignment(start, sideways, model)
    assert alignment["cosine"]["all"] == pytest.approx(0.0, abs=1e-6)
    assert alignment["scale"]["all"] == pytest.approx(0.0, abs=1e-6)
    sideways = 5 * noise.norm().item() / reference.norm().item()
    assert alignment["norm_ratio"]["layer 1"] == pytest.approx(sideways, rel=1e-5)
    assert alignment["sideways"]["layer 1"] == pytest.approx(sideways, rel=1e-5)
    mixed = update_alignment(start, _moved_copy(model, start, lambda n, delta: 2 * delta + 5 * noise if n == name
                                                else delta), model)
    expected = 2 * reference.norm() / torch.sqrt(4 * reference.pow(2).sum() + 25 * noise.pow(2).sum())
    assert mixed["cosine"]["layer 1"] == pytest.approx(expected.item(), rel=1e-5)
    assert mixed["scale"]["layer 1"] == pytest.approx(2.0, rel=1e-5)  # the step along the reference, ...
    assert mixed["sideways"]["layer 1"] == pytest.approx(sideways, rel=1e-4)  # ... and the step off it, apart

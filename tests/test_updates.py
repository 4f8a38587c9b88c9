"""Where fine-tuning changed the weights: the relative update norm per layer, and the Fisher-weighted distance."""

from __future__ import annotations

import pytest
import torch

from interference.measures.updates import fisher_distance, layer_update_norms
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

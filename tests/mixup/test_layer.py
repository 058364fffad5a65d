import copy

import pytest
import torch
from torch import nn

from mixtune.config import MixupConfig
from mixtune.mixup import (
    MixupLinear,
    inject_mixup,
    merge_and_unload,
    mixup_layers,
    unload,
)
from mixtune.mixup.inject import DEFAULT_TARGET_MODULES, target_module_names
from tests.conftest import tiny_batch, tiny_bert


def logits(model, batch):
    model.eval()
    with torch.no_grad():
        return model(**{k: v for k, v in batch.items() if k != "labels"}).logits


def test_default_targets_are_the_released_ones_for_bert():
    names = target_module_names(tiny_bert(), DEFAULT_TARGET_MODULES)
    per_layer = {n.split("layer.0.")[1] for n in names if "layer.0." in n}
    assert per_layer == {
        "attention.self.query", "attention.self.key", "attention.self.value",
        "attention.output.dense", "intermediate.dense", "output.dense",
    }
    assert "bert.pooler.dense" in names
    assert not any("classifier" in n or "embeddings" in n for n in names)
    assert len(names) == 2 * 6 + 1


@pytest.mark.parametrize("rank", [1, 3, None])
def test_convex_form_equals_plain_model_while_w_equals_w0_for_any_alpha(rank):
    model = tiny_bert()
    batch = tiny_batch()
    expected = logits(model, batch)
    inject_mixup(model, MixupConfig(form="convex", rank=rank))
    for _, layer in mixup_layers(model):
        for p in layer.alpha_parameters():
            p.data.uniform_(0, 1)
    assert torch.allclose(logits(model, batch), expected, atol=1e-6)


@pytest.mark.parametrize("form", ["released", "convex"])
def test_alpha_all_ones_gives_the_task_weights(form):
    model = tiny_bert()
    inject_mixup(model, MixupConfig(form=form, rank=1))
    for _, layer in mixup_layers(model):
        layer.base_layer.weight.data.normal_()  # W far from W0
        for p in layer.alpha_parameters():
            p.data.fill_(1.0)
    batch = tiny_batch()
    plain = copy.deepcopy(model)
    unload(plain)
    assert torch.allclose(logits(model, batch), logits(plain, batch), atol=1e-5)


def test_released_form_matches_its_formula():
    torch.manual_seed(0)
    layer = MixupLinear(nn.Linear(5, 4), rank=2, form="released")
    layer.base_layer.weight.data.normal_()
    for p in layer.alpha_parameters():
        p.data.uniform_(0, 1)
    a, b, w, w0 = layer.alpha_a, layer.alpha_b, layer.base_layer.weight, layer.weight0
    expected = (a @ b) * w + ((1 - a) @ (1 - b)) * w0
    assert torch.allclose(layer.mixed_weight(), expected)


def test_init_is_near_one_and_within_bounds():
    layer = MixupLinear(nn.Linear(64, 32), rank=1, init_mean=1.0, init_std=0.005)
    for p in layer.alpha_parameters():
        assert p.min() >= 0 and p.max() <= 1
        assert p.mean() > 0.99


@pytest.mark.parametrize("form", ["released", "convex"])
def test_merge_gives_the_same_logits_and_plain_linears(form):
    model = tiny_bert()
    inject_mixup(model, MixupConfig(form=form, rank=1, init_mean=0.6, init_std=0.2))
    for _, layer in mixup_layers(model):
        layer.base_layer.weight.data.add_(torch.randn_like(layer.base_layer.weight) * 0.1)
    batch = tiny_batch()
    expected = logits(model, batch)
    merge_and_unload(model)
    assert not list(mixup_layers(model))
    assert all(type(m) is not MixupLinear for m in model.modules())
    assert torch.allclose(logits(model, batch), expected, atol=1e-5)


def test_unload_restores_original_module_types_and_state_keys():
    model = tiny_bert()
    reference_types = {n: type(m) for n, m in model.named_modules()}
    reference_keys = set(model.state_dict())
    inject_mixup(model)
    unload(model)
    assert {n: type(m) for n, m in model.named_modules()} == reference_types
    assert set(model.state_dict()) == reference_keys


def test_frozen_alpha_coefficients_are_cached_and_refreshed_when_alpha_changes():
    layer = MixupLinear(nn.Linear(5, 4), rank=1, init_mean=0.5, init_std=0.1)
    layer.base_layer.weight.data.normal_()
    for p in layer.alpha_parameters():
        p.requires_grad_(False)
    x = torch.randn(3, 5)
    first = layer(x)
    assert layer.mixing_terms()[1] is layer.mixing_terms()[1]  # cached while alpha is unchanged
    with torch.no_grad():
        layer.alpha_a.fill_(1.0)
        layer.alpha_b.fill_(1.0)
    assert torch.allclose(layer(x), layer.base_layer(x), atol=1e-6)  # the cache saw the change
    assert not torch.allclose(first, layer(x))

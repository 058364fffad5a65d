"""The share form and the granularities (issue #12): forward values, no saddle at the start, merge, init."""

import copy
import math

import pytest
import torch
from torch import nn

import mixtune.config as config_module
from mixtune.config import MixupConfig, SearchConfig, build_config
from mixtune.errors import MixtuneError
from mixtune.mixup import (
    MixupLinear,
    alpha_parameters,
    bilevel_search,
    inject_mixup,
    merge_and_unload,
    mixup_layers,
    task_parameters,
)
from mixtune.mixup.bilevel import inner_step
from tests.conftest import tiny_batch, tiny_bert

GRANULARITIES = [("module", 1), ("row", 1), ("rank", 1), ("rank", 3), ("rank", None)]


def logits(model, batch):
    model.eval()
    with torch.no_grad():
        return model(**{k: v for k, v in batch.items() if k != "labels"}).logits


def share_layer(granularity, rank, init_share=0.3, init_std=0.1, seed=0):
    torch.manual_seed(seed)
    layer = MixupLinear(nn.Linear(5, 4), rank=rank, form="share", init_std=init_std, granularity=granularity, init_share=init_share)
    layer.base_layer.weight.data.normal_()  # W off W0
    return layer


@pytest.mark.parametrize("granularity,rank", GRANULARITIES)
def test_share_form_forward_matches_its_formula(granularity, rank):
    layer = share_layer(granularity, rank)
    a, b = layer.alpha_a, layer.alpha_b
    theta = a if b is None else a @ b
    expected_shape = {"module": (1, 1), "row": (4, 1)}.get(granularity, (4, 5) if rank is None else (4, rank))
    assert tuple(a.shape) == expected_shape and (b is None) == (granularity != "rank" or rank is None)
    share = torch.sigmoid(theta).expand(4, 5)
    w, w0 = layer.base_layer.weight, layer.weight0
    assert torch.allclose(layer.mixed_weight(), (1 - share) * w + share * w0)
    assert torch.allclose(layer.pretrained_share(), share)
    x = torch.randn(3, 5)
    assert torch.allclose(layer(x), x @ ((1 - share) * w + share * w0).T + layer.base_layer.bias, atol=1e-6)


@pytest.mark.parametrize("granularity,rank", GRANULARITIES)
def test_share_form_starts_at_init_share_and_in_the_interior(granularity, rank):
    layer = share_layer(granularity, rank, init_share=0.3, init_std=0.0)
    assert torch.allclose(layer.pretrained_share(), torch.full((4, 5), 0.3), atol=1e-6)


@pytest.mark.parametrize("granularity,rank", GRANULARITIES)
def test_share_form_has_no_saddle_at_the_start(granularity, rank):
    """The W0 coefficient's gradient with respect to the parameters is non-zero at the start (the released form's
    is exactly zero with every factor at 1), and so is the loss gradient once W has moved off W0."""
    layer = share_layer(granularity, rank, init_share=0.5, init_std=0.005)
    grads = torch.autograd.grad(layer.coefficients()[1].sum(), layer.alpha_parameters())
    assert grads[0].abs().min() > 0  # every theta entry (A for rank r) moves the share
    x = torch.randn(6, 5)
    grads = torch.autograd.grad(layer(x).pow(2).sum(), layer.alpha_parameters())
    assert all(g.abs().sum() > 0 for g in grads)

    released = MixupLinear(nn.Linear(5, 4), rank=1, init_std=0.0)  # every factor at 1
    saddle = torch.autograd.grad(released.coefficients()[1].sum(), released.alpha_parameters())
    assert all(torch.equal(g, torch.zeros_like(g)) for g in saddle)


def test_share_form_alpha_gradient_on_a_real_model_after_one_inner_step():
    model = tiny_bert()
    inject_mixup(model, MixupConfig(form="share", granularity="module"))
    weights = [p for _, p in task_parameters(model)]
    inner_step(model, tiny_batch(seed=1), weights, torch.optim.AdamW(weights, lr=1e-2), None)
    grads = torch.autograd.grad(model(**tiny_batch(seed=2)).loss, alpha_parameters(model))
    assert all(g.shape == (1, 1) and g.abs().item() > 0 for g in grads)


@pytest.mark.parametrize("form,granularity,rank", [("share", g, r) for g, r in GRANULARITIES] + [("released", "row", 1), ("convex", "module", 1)])
def test_merge_gives_the_same_logits(form, granularity, rank):
    model = tiny_bert()
    inject_mixup(model, MixupConfig(form=form, granularity=granularity, rank=rank, init_mean=0.6, init_std=0.2, init_share=0.3))
    for _, layer in mixup_layers(model):
        layer.base_layer.weight.data.add_(torch.randn_like(layer.base_layer.weight) * 0.1)
    batch = tiny_batch()
    expected = logits(model, batch)
    merged = merge_and_unload(copy.deepcopy(model))
    assert not list(mixup_layers(merged))
    assert torch.allclose(logits(merged, batch), expected, atol=1e-5)


def test_one_factor_released_and_convex_coincide_and_stay_clamped():
    torch.manual_seed(0)
    base = nn.Linear(5, 4)
    released = MixupLinear(copy.deepcopy(base), form="released", granularity="row", init_mean=0.7, init_std=0.5)
    convex = MixupLinear(copy.deepcopy(base), form="convex", granularity="row", init_mean=0.7, init_std=0.5)
    convex.alpha_a.data.copy_(released.alpha_a)
    assert 0 <= released.alpha_a.min() and released.alpha_a.max() <= 1
    assert all(torch.equal(a, b) for a, b in zip(released.coefficients(), convex.coefficients()))


def test_share_form_is_not_clamped_and_reset_is_seeded():
    layer = share_layer("row", 1, init_share=0.9, init_std=1.0)
    layer.clamp_alpha()
    assert layer.alpha_a.max() > 1  # logits, not factors
    again = share_layer("row", 1, init_share=0.9, init_std=1.0)
    first, second = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    layer.reset_alpha(0.2, 0.1, first)
    again.reset_alpha(0.2, 0.1, second)
    assert torch.equal(layer.alpha_a, again.alpha_a)
    assert abs(layer.alpha_a.mean().item() - math.log(0.2 / 0.8)) < 0.2


def test_released_default_is_unchanged():
    layer = MixupLinear(nn.Linear(5, 4))
    assert layer.form == "released" and layer.granularity == "rank" and layer.alpha_b.shape == (1, 5)
    assert MixupConfig().resolved().granularity == "rank" and MixupConfig().init_center == 1.0
    assert MixupConfig(form="share", init_share=0.2).init_center == 0.2


def test_the_python_api_follows_the_default_form(monkeypatch):
    """inject_mixup(model, MixupConfig()) and bilevel_search(..., SearchConfig()) take the default form's settings;
    the search takes those of the form injected in the model."""
    monkeypatch.setattr(config_module, "DEFAULT_MIXUP_FORM", "share")
    model = inject_mixup(tiny_bert(), MixupConfig(init_share=0.3, init_std=0.0))
    layers = [layer for _, layer in mixup_layers(model)]
    assert {(layer.form, layer.granularity) for layer in layers} == {("share", "module")}
    assert torch.allclose(layers[0].pretrained_share(), torch.tensor(0.3))
    loader = [tiny_batch(seed=s) for s in range(10)]
    log = bilevel_search(model, loader, loader, SearchConfig(), progress=False)
    assert (log["inner_steps"], log["alpha_steps"]) == (20, 4)  # 2 epochs, an alpha step every 5 inner steps
    assert log["alpha_lr_sum"] == pytest.approx(1.0)
    released = inject_mixup(tiny_bert(), MixupConfig(form="released"))
    log = bilevel_search(released, loader[:2], loader[:2], SearchConfig(), progress=False)
    assert (log["inner_steps"], log["alpha_steps"], log["alpha_lr"]) == (4, 4, 2e-3)  # 2 epochs, unroll 1


def test_config_rejects_bad_share_settings():
    with pytest.raises(MixtuneError, match="mixup.granularity"):
        build_config({"mixup": {"granularity": "column"}})
    with pytest.raises(MixtuneError, match="mixup.init_share"):
        build_config({"mixup": {"form": "share", "init_share": 1.0}})
    with pytest.raises(MixtuneError, match="search.alpha_lr_sum"):
        build_config({"search": {"alpha_lr_sum": 0}})

"""Mixed precision keeps the mixup (issue 30): the coefficients, W~ and the finite difference are fp32 under autocast.

The released alpha's whole learned signal, |1 - coef| below 6e-3, is smaller than bf16's spacing near 1 (2^-8):
a coefficient rounded to bf16 is 1.0. The layers here hold |1 - coef| about 1e-3 and W off W0, so a W~ formed in
bf16 is off by about 1e-3 relative and one formed in fp32 by about 1e-7.
"""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mixtune.config import MixupConfig
from mixtune.device import Runtime, activated
from mixtune.mixup import MixupLinear, alpha_parameters, inject_mixup, merge_and_unload, mixup_layers, task_parameters
from mixtune.mixup.bilevel import adam_preconditioner, finite_difference_hypergradient, inner_step
from tests.conftest import tiny_batch, tiny_bert

CPU = torch.device("cpu")
FP32_W_TILDE = 1e-6  # relative: W~ formed in fp32 against the same W~ formed in float64

# form, granularity, rank: every form at rank r and at each single-factor granularity
LAYOUTS = [
    ("released", "rank", 1), ("released", "rank", 4), ("released", "rank", None), ("released", "row", None),
    ("released", "module", None), ("convex", "rank", 4), ("share", "rank", 4), ("share", "row", None),
    ("share", "module", None),
]


@torch.no_grad()
def hold_near_one(layer: MixupLinear, generator: torch.Generator) -> MixupLinear:
    """Alpha with a W coefficient of about 0.9986 (the share form: a pretrained share of about 1.5e-3), W off W0,
    alpha frozen (the finetune phase, where the coefficients are cached)."""
    factors = 1 if layer.alpha_b is None else layer.alpha_b.shape[0]
    centre_a, centre_b = (-6.5, 1.0 / factors) if layer.form == "share" else (0.9993, 0.9993 / factors)
    layer.alpha_a.copy_(centre_a + 2e-4 * torch.rand(layer.alpha_a.shape, generator=generator))
    if layer.alpha_b is not None:
        layer.alpha_b.copy_(centre_b + 2e-4 / factors * torch.rand(layer.alpha_b.shape, generator=generator))
    layer.base_layer.weight.add_(0.05 * torch.randn(layer.weight0.shape, generator=generator))
    for param in layer.alpha_parameters():
        param.requires_grad_(False)
    return layer


def near_one_layer(form: str, granularity: str, rank: int | None) -> MixupLinear:
    torch.manual_seed(0)
    layer = MixupLinear(nn.Linear(64, 32), rank=rank, form=form, granularity=granularity)
    return hold_near_one(layer, torch.Generator().manual_seed(1))


@torch.no_grad()
def float64_mix(layer: MixupLinear) -> torch.Tensor:
    """W~ from a float64 copy of the layer, straight from its coefficients (no cache, no autocast)."""
    wide = copy.deepcopy(layer).double()
    on_task, on_pretrained = wide.coefficients()
    return on_task * wide.base_layer.weight + on_pretrained * wide.weight0


def relative_gap(tensor: torch.Tensor, reference: torch.Tensor) -> float:
    return ((tensor.double() - reference).abs().max() / reference.abs().max()).item()


def bf16_autocast() -> torch.autocast:
    return torch.autocast("cpu", dtype=torch.bfloat16)


@pytest.mark.parametrize("form, granularity, rank", LAYOUTS)
def test_w_tilde_under_bf16_autocast_is_the_fp32_one(form, granularity, rank):
    layer = near_one_layer(form, granularity, rank)
    on_task = layer.coefficients()[0]
    assert (on_task.bfloat16().float() - on_task).abs().max() > 5e-4  # bf16 would round the learned signal away
    reference = float64_mix(layer)
    with bf16_autocast():
        mixed = layer.mixed_weight()
        coefficients = layer.coefficients()
    assert mixed.dtype == torch.float32 and all(c.dtype == torch.float32 for c in coefficients)
    assert relative_gap(mixed, reference) < FP32_W_TILDE
    # the cache filled under autocast serves fp32 evaluation and the merge: both still the fp32 W~
    assert relative_gap(layer.mixed_weight(), reference) < FP32_W_TILDE
    assert relative_gap(layer.merged_linear().weight, reference) < FP32_W_TILDE


@pytest.mark.parametrize("form, granularity, rank", LAYOUTS)
def test_alpha_gradients_under_bf16_autocast_come_from_fp32_coefficients(form, granularity, rank):
    """Training alpha (no cache): W~ is still formed in fp32, so only the x @ W~ matmul runs in bf16."""
    layer = near_one_layer(form, granularity, rank)
    for param in layer.alpha_parameters():
        param.requires_grad_(True)
    reference = float64_mix(layer)
    with bf16_autocast():
        mixed = layer.mixed_weight()
    assert mixed.requires_grad and relative_gap(mixed.detach(), reference) < FP32_W_TILDE


@pytest.mark.parametrize("form, granularity, rank", [("released", "rank", 1), ("share", "rank", 4), ("convex", "row", None)])
def test_the_forward_under_bf16_autocast_is_a_bf16_matmul_of_the_fp32_w_tilde(form, granularity, rank):
    layer = near_one_layer(form, granularity, rank)
    x = torch.randn(8, 64, generator=torch.Generator().manual_seed(2))
    with bf16_autocast():
        in_bf16 = layer(x)  # first: the cache is filled under autocast
    in_fp32 = layer(x)
    w_tilde = float64_mix(layer).float()
    expected = F.linear(x.bfloat16(), w_tilde.bfloat16(), layer.base_layer.bias.bfloat16())
    assert in_bf16.dtype == torch.bfloat16 and torch.equal(in_bf16, expected)
    # and within bf16 matmul tolerance of the fp32 output (operands rounded to 2^-9 relative, 64 terms)
    assert torch.allclose(in_bf16.float(), in_fp32, rtol=2e-2, atol=2e-2)


def test_a_model_evaluated_under_bf16_merges_to_the_fp32_w_tilde():
    model = tiny_bert()
    inject_mixup(model, MixupConfig(rank=1))
    generator = torch.Generator().manual_seed(3)
    layers = dict(mixup_layers(model))
    for layer in layers.values():
        hold_near_one(layer, generator)
    references = {name: float64_mix(layer) for name, layer in layers.items()}
    model.eval()
    batch = {k: v for k, v in tiny_batch().items() if k != "labels"}
    fresh = copy.deepcopy(model)
    with torch.no_grad():
        with activated(Runtime(CPU, "bf16")), bf16_autocast():
            in_bf16 = model(**batch).logits  # the run's evaluation: fills every layer's cache under autocast
        after = model(**batch).logits  # then the export check's fp32 pass
        expected = fresh(**batch).logits  # a copy whose caches never saw autocast
    assert torch.allclose(in_bf16.float(), expected, atol=5e-2)
    assert torch.allclose(after, expected, atol=1e-6)  # no stale W~
    merge_and_unload(model)
    for name, reference in references.items():
        assert relative_gap(model.get_submodule(name).weight.detach(), reference) < FP32_W_TILDE, name
    with torch.no_grad():
        assert torch.allclose(model(**batch).logits, expected, atol=1e-5)


def test_the_frozen_alpha_cache_is_keyed_by_dtype_and_device():
    layer = near_one_layer("released", "rank", 4)
    fp32_terms = layer.mixing_terms()
    assert layer.mixing_terms()[1] is fp32_terms[1]  # served again while nothing changed
    with bf16_autocast():
        assert layer.mixing_terms()[1] is fp32_terms[1]  # autocast does not change the fp32 mix: no recompute
    layer.to(torch.bfloat16)  # a bf16 layer: alpha, W and W0 now bf16
    bf16_terms = layer.mixing_terms()
    assert bf16_terms[1] is not fp32_terms[1]
    fresh_task, fresh_pretrained = layer.coefficients()
    assert torch.equal(bf16_terms[0], fresh_task) and torch.equal(bf16_terms[1], fresh_pretrained * layer.weight0.float())
    layer.to(torch.float32)  # and back: the bf16 entry is not served to fp32
    assert layer.mixing_terms()[1] is not bf16_terms[1] and layer.mixing_terms()[1].dtype == torch.float32
    layer.to("meta")  # another device: never the CPU's tensors
    assert layer.mixing_terms()[1].device.type == "meta"
    layer.to_empty(device=CPU)
    assert layer.mixing_terms()[1].device == CPU


def test_a_float64_layer_mixes_in_float64():
    """fp32 is the floor, not a cap: float64 weights (the exact-hypergradient tests) keep float64."""
    layer = near_one_layer("share", "rank", 4).double()
    assert layer.mixed_weight().dtype == torch.float64 and layer.coefficients()[0].dtype == torch.float64


def test_the_finite_difference_hypergradient_under_bf16_is_the_fp32_one():
    """The nudge eps * d is about 1/20 of a bf16 step: in bf16 g+ - g- would be rounding noise."""
    model = tiny_bert()
    inject_mixup(model, MixupConfig(init_mean=0.6, init_std=0.2))
    weights = [p for _, p in task_parameters(model)]
    optimizer = torch.optim.AdamW(weights, lr=5e-2)
    train_batch, val_batch = tiny_batch(seed=4), tiny_batch(seed=5)
    inner_step(model, train_batch, weights, optimizer, None)
    alphas, precondition = alpha_parameters(model), adam_preconditioner(optimizer, weights)

    def hypergradient() -> torch.Tensor:
        grads = finite_difference_hypergradient(model, val_batch, train_batch, alphas, weights, 5e-2, precondition)
        return torch.cat([g.flatten() for g in grads])

    in_fp32 = hypergradient()
    with activated(Runtime(CPU, "bf16")):  # the run's bf16: batch_loss autocasts every forward
        in_bf16_run = hypergradient()
    with bf16_autocast():  # a caller's own autocast
        in_bf16_autocast = hypergradient()
    assert in_fp32.dtype == torch.float32 and in_fp32.abs().max() > 0
    for other in (in_bf16_run, in_bf16_autocast):
        assert (other - in_fp32).norm() <= 1e-5 * in_fp32.norm()

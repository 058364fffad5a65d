"""The optimiser path (mixtune.optim): fused AdamW where torch has the kernel, matching the single-tensor loop."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest
import torch

from mixtune.config import SearchConfig
from mixtune.mixup.bilevel import inner_optimizer
from mixtune.optim import decay_groups, fused_supported, make_optimizer, optimizer_path

from .conftest import tiny_batch, tiny_bert

STEPS = 5


def train_steps(model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> None:
    for step in range(STEPS):
        model(**tiny_batch(seed=step)).loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)


def test_the_fused_path_matches_the_single_tensor_loop_within_float_tolerance():
    fused_model, reference_model, initial = tiny_bert(), tiny_bert(), tiny_bert().state_dict()
    fused = make_optimizer(decay_groups(fused_model.named_parameters(), 0.01), lr=1e-2)
    reference = torch.optim.AdamW(decay_groups(reference_model.named_parameters(), 0.01), lr=1e-2, foreach=False, fused=False)
    assert fused.defaults["fused"] is True
    train_steps(fused_model, fused)
    train_steps(reference_model, reference)
    moved = False
    for (name, got), (_, expected) in zip(fused_model.named_parameters(), reference_model.named_parameters()):
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6, msg=name)
        moved |= not torch.equal(got, initial[name])
    assert moved  # the steps did something to compare


def test_fused_where_torch_has_the_kernel_and_the_record_names_it():
    assert fused_supported([torch.zeros(2), torch.zeros(2, dtype=torch.bfloat16)])
    assert not fused_supported([torch.zeros(2, dtype=torch.long)])
    assert not fused_supported([torch.zeros(2, device="meta")])
    assert optimizer_path(torch.device("cpu")) == "adamw-fused"
    assert optimizer_path(torch.device("meta")) == "adamw"


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_the_cpu_fused_kernel_steps_the_dtypes_a_run_holds(dtype):
    weight = torch.nn.Parameter(torch.ones(4, dtype=dtype))
    weight.grad = torch.ones(4, dtype=dtype)
    optimizer = make_optimizer([{"params": [weight], "weight_decay": 0.0}], lr=0.1)
    optimizer.step()
    assert optimizer.defaults["fused"] is True and torch.all(weight < 1)


def test_both_levels_of_the_search_build_their_optimisers_here():
    model = tiny_bert()
    inner, _ = inner_optimizer(list(model.named_parameters()), SearchConfig().resolved(), total_steps=4)
    assert inner.defaults["fused"] is True
    source = Path(inspect.getsourcefile(inner_optimizer)).read_text()
    assert "torch.optim.AdamW(" not in source  # the alpha optimiser too goes through make_optimizer

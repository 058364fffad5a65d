"""method arg finetune_mask_p of mixup-blo and soup-start: CHILD-TUNING_F's gradient mask in the finetune phase."""

from __future__ import annotations

import pytest
import torch

from mixtune.config import build_config
from mixtune.errors import MixtuneError
from mixtune.methods import make_method


def masked_gradients(method, model, step: int = 0) -> torch.Tensor:
    for param in model.parameters():
        param.grad = torch.ones_like(param)
    method.before_optimizer_step(model, step)
    return torch.cat([p.grad.flatten() for p in model.parameters()])


@pytest.mark.parametrize("name", ["mixup-blo", "soup-start"])
def test_the_mask_zeros_about_1_minus_p_of_the_gradients_and_rescales_the_rest(name, make_run, tiny_model):
    method, _ = make_run(name, method_args={"finetune_mask_p": 0.4})
    fractions = []
    for step in range(3):
        grads = masked_gradients(method, tiny_model, step)
        kept = grads[grads != 0]
        torch.testing.assert_close(kept, torch.full_like(kept, 1 / 0.4))
        fractions.append(float((grads == 0).float().mean()))
    assert fractions == pytest.approx([0.6] * 3, abs=0.02) and len(set(fractions)) > 1  # a fresh mask each step


@pytest.mark.parametrize("name", ["mixup-blo", "soup-start"])
def test_the_mask_is_child_tuning_fs_for_the_same_seed_and_p(name, make_run, tiny_model):
    ours, _ = make_run(name, seed=5, method_args={"finetune_mask_p": 0.3})
    theirs, _ = make_run("child-tuning-f", seed=5, method_args={"p": 0.3})
    assert torch.equal(masked_gradients(ours, tiny_model), masked_gradients(theirs, tiny_model))


@pytest.mark.parametrize("name", ["mixup-blo", "soup-start"])
def test_the_mask_is_on_by_default_and_null_turns_it_off(name, make_run, tiny_model):
    """Issue 32's recipe masks the finetune by default (p 0.3); finetune_mask_p null is the paper's unmasked one."""
    assert make_run(name)[0].hp.finetune_mask_p == 0.3
    method, _ = make_run(name, method_args={"finetune_mask_p": None})
    assert method.hp.finetune_mask_p is None
    assert torch.equal(masked_gradients(method, tiny_model), torch.ones(sum(p.numel() for p in tiny_model.parameters())))


def test_the_mask_acts_in_the_finetune_only(make_run, tiny_model, monkeypatch):
    """A whole mixup-blo run: the mask is drawn once per finetune step, never during the search."""
    method, ctx = make_run("mixup-blo", n=24, epochs=1, method_args={"finetune_mask_p": 0.5})
    method.config.search.splits, method.config.search.epochs = 1, 1
    calls = []
    original = method.finetune_mask.apply
    monkeypatch.setattr(method.finetune_mask, "apply", lambda params: calls.append(1) or original(params))
    method.fit(tiny_model, ctx)
    assert len(calls) == ctx.log["finetune"]["steps"] == 3


@pytest.mark.parametrize("value", ["0", "1.5", "-0.2"])
def test_p_outside_0_1_is_a_one_line_error(value):
    with pytest.raises(MixtuneError, match="finetune_mask_p is the fraction of gradient entries kept") as error:
        make_method(build_config({"method": "mixup-blo", "method_args": {"finetune_mask_p": value}}))
    assert "\n" not in str(error.value)

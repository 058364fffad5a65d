"""CHILD-TUNING_D keeps a fixed Fisher child network; CHILD-TUNING_F draws an unbiased random child per step."""

import pytest
import torch
from torch import nn

import mixtune.methods.child_tuning as child_tuning
from mixtune.methods.child_tuning import RandomChildMask, touched_rows
from mixtune.config import build_config
from mixtune.errors import MixtuneError
from mixtune.methods import make_method


def snapshot(model):
    return {n: p.detach().clone() for n, p in model.named_parameters()}


def test_d_entries_outside_the_mask_never_change_without_weight_decay(make_run, tiny_model, train):
    method, ctx = make_run("child-tuning-d", lr=1e-3, epochs=2, weight_decay=0.0)
    before = snapshot(tiny_model)
    train(method, tiny_model, ctx)
    after = snapshot(tiny_model)
    assert method.masks and all("encoder.layer." in name for name in method.masks)
    for name, mask in method.masks.items():
        assert torch.equal(after[name][~mask], before[name][~mask]), name  # bit-identical
    moved = sum(int((after[n][m] != before[n][m]).sum()) for n, m in method.masks.items())
    assert moved > 0.5 * sum(int(m.sum()) for m in method.masks.values())
    for name in ("bert.embeddings.word_embeddings.weight", "bert.pooler.dense.weight", "classifier.weight"):
        assert name not in method.masks and not torch.equal(after[name], before[name])  # update normally


def test_d_weight_decay_still_shrinks_entries_outside_the_mask_as_published(make_run, tiny_model, train):
    """AdamW's decoupled decay: each step multiplies every decayed weight by (1 - lr * wd)."""
    lr, wd = 1e-3, 0.01
    method, ctx = make_run("child-tuning-d", lr=lr, epochs=1, weight_decay=wd, scheduler="constant", warmup_ratio=0.0)
    before = snapshot(tiny_model)
    train(method, tiny_model, ctx)
    steps = 4  # 32 examples, batch 8
    name = "bert.encoder.layer.0.attention.self.query.weight"
    outside = ~method.masks[name]
    expected = before[name][outside] * (1 - lr * wd) ** steps
    torch.testing.assert_close(tiny_model.get_parameter(name).detach()[outside], expected, rtol=1e-6, atol=0)


def test_d_keeps_fraction_p_and_computes_the_mask_once(make_run, tiny_model, train, monkeypatch):
    calls = []
    original = child_tuning.fisher_information
    monkeypatch.setattr(child_tuning, "fisher_information", lambda *a: calls.append(1) or original(*a))
    method, ctx = make_run("child-tuning-d", epochs=2)
    seen = []
    step_hook = method.before_optimizer_step

    def spy(model, step):
        seen.append({n: m.clone() for n, m in method.masks.items()})
        step_hook(model, step)

    method.before_optimizer_step = spy
    train(method, tiny_model, ctx)
    assert len(calls) == 1 and len(seen) == 8
    assert all(torch.equal(s[n], method.masks[n]) for s in seen for n in method.masks)
    kept = sum(int(m.sum()) for m in method.masks.values()) / sum(m.numel() for m in method.masks.values())
    assert kept == pytest.approx(0.3, abs=1e-3)


def test_global_top_masks_uses_one_threshold_across_tensors():
    scores = {"a": torch.tensor([1.0, 2.0, 3.0, 4.0]), "b": torch.tensor([5.0, 6.0, 7.0, 8.0, 9.0, 10.0])}
    masks = child_tuning.global_top_masks(scores, 0.3)
    assert masks["a"].sum() == 0 and masks["b"].tolist() == [False, False, False, True, True, True]


def test_f_updates_about_p_of_the_entries_each_step_rescaled_by_1_over_p(make_run, tiny_model):
    method, _ = make_run("child-tuning-f")
    fractions = []
    for step in range(3):
        for param in tiny_model.parameters():
            param.grad = torch.ones_like(param)
        method.before_optimizer_step(tiny_model, step)
        grads = torch.cat([p.grad.flatten() for p in tiny_model.parameters()])
        kept = grads[grads != 0]
        torch.testing.assert_close(kept, torch.full_like(kept, 1 / 0.3))
        fractions.append(float((grads != 0).float().mean()))
    assert fractions == pytest.approx([0.3] * 3, abs=0.02)
    assert len(set(fractions)) > 1  # a fresh mask every step


def test_f_masked_gradient_is_unbiased(make_run):
    method, _ = make_run("child-tuning-f")
    layer = nn.Linear(50, 50)
    gradient = torch.randn_like(layer.weight)
    total = torch.zeros_like(gradient)
    draws = 2000
    for step in range(draws):
        layer.weight.grad, layer.bias.grad = gradient.clone(), None
        method.before_optimizer_step(layer, step)
        total += layer.weight.grad
    assert float((total / draws - gradient).norm() / gradient.norm()) < 0.06


def test_f_masks_repeat_for_the_same_seed(make_run, tiny_model):
    def masks(seed):
        method, _ = make_run("child-tuning-f", seed=seed)
        for param in tiny_model.parameters():
            param.grad = torch.ones_like(param)
        method.before_optimizer_step(tiny_model, 0)
        return torch.cat([p.grad.flatten() for p in tiny_model.parameters()])

    assert torch.equal(masks(1), masks(1)) and not torch.equal(masks(1), masks(2))


@pytest.mark.parametrize("method", ["child-tuning-d", "child-tuning-f"])
def test_p_outside_0_1_is_a_clear_error(method):
    with pytest.raises(MixtuneError, match="fraction of entries kept"):
        make_method(build_config({"method": method, "method_args": {"p": "1.5"}}))


def test_f_masks_only_the_rows_an_embedding_gradient_touched_and_keeps_fraction_p():
    """A word-embedding gradient: 100 of 4096 rows non-zero. Untouched rows stay exactly zero, touched entries are
    zero or rescaled by 1/p, about p of them kept; a gradient with most rows touched goes the dense way."""
    grad = torch.zeros(4096, 64)
    rows = torch.randperm(4096, generator=torch.Generator().manual_seed(0))[:100]
    grad[rows] = 1.0
    param = nn.Parameter(torch.zeros_like(grad))
    param.grad = grad.clone()
    assert torch.equal(touched_rows(param.grad), rows.sort().values)
    RandomChildMask(0.3, seed=1).apply([param])
    untouched = torch.ones(4096, dtype=torch.bool)
    untouched[rows] = False
    assert not param.grad[untouched].any()
    kept = param.grad[rows]
    assert kept.unique().tolist() == pytest.approx([0.0, 1 / 0.3])
    assert float((kept != 0).float().mean()) == pytest.approx(0.3, abs=0.03)
    assert touched_rows(torch.ones(4096, 4)) is None and touched_rows(torch.zeros(100, 4)) is None
    assert touched_rows(torch.zeros(4096, 4, device="meta")) is None  # off the CPU: always the dense way

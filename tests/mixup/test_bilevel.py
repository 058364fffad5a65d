import copy

import pytest
import torch
from torch.func import functional_call, grad, jvp

from mixtune.config import MixupConfig, SearchConfig
from mixtune.mixup import (
    alpha_parameters,
    bilevel_search,
    inject_mixup,
    mixup_layers,
    repeated_search,
    task_parameters,
)
from mixtune.mixup.bilevel import (
    finite_difference_hypergradient,
    first_order_hypergradient,
    inner_step,
)
from tests.conftest import tiny_batch, tiny_bert


def mixup_bert(dtype=torch.float32, **mixup):
    model = tiny_bert(dtype=dtype)
    inject_mixup(model, MixupConfig(**mixup))
    return model


def snapshot(tensors):
    return [t.detach().clone() for t in tensors]


def frozen_copies(model):
    return [layer.weight0 for _, layer in mixup_layers(model)]


def test_inner_step_changes_no_alpha_and_no_frozen_copy():
    model = mixup_bert()
    alphas, w0 = snapshot(alpha_parameters(model)), snapshot(frozen_copies(model))
    weights = [p for _, p in task_parameters(model)]
    before = snapshot(weights)
    inner_step(model, tiny_batch(), weights, torch.optim.AdamW(weights, lr=1e-2), 5.0)
    assert all(torch.equal(a, b) for a, b in zip(alphas, alpha_parameters(model)))
    assert all(torch.equal(a, b) for a, b in zip(w0, frozen_copies(model)))
    assert any(not torch.equal(a, b) for a, b in zip(before, weights))


def test_outer_step_changes_only_alpha_and_keeps_it_in_bounds():
    model = mixup_bert(init_mean=0.5, init_std=0.2)
    weights = [p for _, p in task_parameters(model)]
    inner_step(model, tiny_batch(seed=1), weights, torch.optim.AdamW(weights, lr=1e-2), None)
    before_weights, before_w0 = snapshot(weights), snapshot(frozen_copies(model))
    before_alpha = snapshot(alpha_parameters(model))
    config = SearchConfig(epochs=1, alpha_lr=0.5, inner_lr=0.0, warmup_ratio=0.0, alpha_scheduler="constant")
    loader = [tiny_batch(seed=s) for s in range(3)]
    bilevel_search(model, loader, loader, config, progress=False)
    # inner lr 0: AdamW with lr 0 leaves task weights unchanged, so only alpha can move
    assert all(torch.equal(a, b) for a, b in zip(before_weights, weights))
    assert all(torch.equal(a, b) for a, b in zip(before_w0, frozen_copies(model)))
    alphas = alpha_parameters(model)
    assert any(not torch.equal(a, b) for a, b in zip(before_alpha, alphas))
    assert all(a.min() >= 0 and a.max() <= 1 for a in alphas)
    assert any((a == 0).any() or (a == 1).any() for a in alphas)  # lr 0.5 pushes some entries onto the bounds


def test_first_order_hypergradient_equals_plain_autograd():
    model = mixup_bert(init_mean=0.7, init_std=0.1)
    batch = tiny_batch(seed=3)
    alphas = alpha_parameters(model)
    ours = first_order_hypergradient(model, batch, alphas)
    model.zero_grad()
    model(**batch).loss.backward()
    assert all(torch.allclose(o, a.grad) for o, a in zip(ours, alphas))


def exact_second_order(model, val_batch, train_batch, xi, preconditioner=None):
    """grad_a L_val - xi * d/da [grad_W L_tr . (P * v)], v = grad_W L_val, by torch.func (no finite differences).

    P: one tensor per task parameter (Adam's 1 / (sqrt(v_hat) + eps)); None = 1 (plain SGD unroll)."""
    names_a = [n for n, p in model.named_parameters() if n.endswith(("alpha_a", "alpha_b"))]
    names_w = [n for n, _ in task_parameters(model)]
    params = dict(model.named_parameters())
    buffers = dict(model.named_buffers())

    def loss(alpha, weights, batch):
        return functional_call(model, ({**alpha, **weights}, buffers), args=(), kwargs=batch).loss

    alpha = {n: params[n].detach() for n in names_a}
    weights = {n: params[n].detach() for n in names_w}
    direct = grad(loss, argnums=0)(alpha, weights, val_batch)
    v = grad(loss, argnums=1)(alpha, weights, val_batch)
    tangent = v if preconditioner is None else {n: p * v[n] for n, p in zip(names_w, preconditioner)}
    # d/dW [grad_a L_tr(a, W)] applied to P * v: a forward-mode derivative of the alpha gradient along it
    _, mixed = jvp(lambda w: grad(loss, argnums=0)(alpha, w, train_batch), (weights,), (tangent,))
    return [direct[n] - xi * mixed[n] for n in names_a]


def test_finite_difference_hypergradient_matches_exact_hessian_vector_product():
    model = mixup_bert(dtype=torch.float64, init_mean=0.6, init_std=0.2)
    weights = [p for _, p in task_parameters(model)]
    inner_step(model, tiny_batch(seed=4), weights, torch.optim.AdamW(weights, lr=5e-2), None)  # move W off W0
    val_batch, train_batch, xi = tiny_batch(seed=5), tiny_batch(seed=6), 0.5
    before = snapshot(weights)
    fd = finite_difference_hypergradient(model, val_batch, train_batch, alpha_parameters(model), weights, xi)
    exact = exact_second_order(model, val_batch, train_batch, xi)
    assert all(torch.allclose(a, b) for a, b in zip(before, weights)), "W must be restored exactly"
    fd_flat, exact_flat = torch.cat([g.flatten() for g in fd]), torch.cat([g.flatten() for g in exact])
    first_flat = torch.cat([g.flatten() for g in first_order_hypergradient(model, val_batch, alpha_parameters(model))])
    # stated tolerance: relative error 1e-3 in float64 (central differences with eps = 0.01/||v|| are O(eps^2));
    # the second-order term itself is at least ten times that, so a first-order answer would fail
    assert (exact_flat - first_flat).norm() > 1e-2 * exact_flat.norm()
    assert (fd_flat - exact_flat).norm() <= 1e-3 * exact_flat.norm()


@pytest.mark.parametrize("average", ["all", "alpha"])
def test_repeated_search_averages_what_the_config_says(average, monkeypatch):
    model = mixup_bert()
    start = copy.deepcopy(model.state_dict())
    features = list(range(10))
    finals = []

    def fake_search(model, train_loader, val_loader, config, desc, progress):
        k = len(finals)
        with torch.no_grad():
            for p in model.parameters():
                p.add_(float(k + 1))
        finals.append(copy.deepcopy(model.state_dict()))
        return {"seconds": 0.0}

    monkeypatch.setattr("mixtune.mixup.repeated.bilevel_search", fake_search)
    config = SearchConfig(splits=3, average=average)
    repeated_search(model, features, lambda f, s: f, config, seed=1, reset_alpha=lambda k: None, progress=False)
    state = model.state_dict()
    for key in start:
        is_alpha = key.endswith(("alpha_a", "alpha_b"))
        is_param = key in dict(model.named_parameters())
        if is_alpha or (average == "all" and is_param):
            expected = sum(f[key] for f in finals) / 3
        else:
            expected = start[key]
        assert torch.allclose(state[key], expected), key


def test_each_split_starts_from_the_same_weights(monkeypatch):
    model = mixup_bert()
    start = copy.deepcopy(model.state_dict())
    seen = []

    def fake_search(model, *args, **kwargs):
        seen.append({k: v.clone() for k, v in model.state_dict().items() if "alpha" not in k})
        with torch.no_grad():
            for p in model.parameters():
                p.add_(1.0)
        return {"seconds": 0.0}

    monkeypatch.setattr("mixtune.mixup.repeated.bilevel_search", fake_search)
    repeated_search(model, list(range(10)), lambda f, s: f, SearchConfig(splits=2), 1, lambda k: None, False)
    for state in seen:
        assert all(torch.equal(state[k], start[k]) for k in state)

"""The faithful second-order hypergradient (xi * P under AdamW), the outer-pass options and the alpha lr budget."""

import pytest
import torch

from mixtune.config import SearchConfig
from mixtune.errors import MixtuneError
from mixtune.mixup import (
    alpha_parameters,
    bilevel_search,
    mixup_layers,
    task_parameters,
)
from mixtune.mixup.bilevel import (
    adam_preconditioner,
    dropout_mode,
    finite_difference_hypergradient,
    first_order_hypergradient,
    inner_step,
    mean_loss_gradients,
    derived_alpha_lr,
    schedule_sum,
)
from tests.conftest import tiny_batch
from tests.mixup.test_bilevel import exact_second_order, mixup_bert


def flat(tensors):
    return torch.cat([t.flatten() for t in tensors])


def unmasked_adam_preconditioner(optimizer, weights):
    """1 / (sqrt(v_hat) + eps) everywhere, also where v = 0 (there it is 1 / eps)."""
    out = []
    for w in weights:
        state, group = optimizer.state[w], optimizer.param_groups[0]
        v_hat = state["exp_avg_sq"] / (1 - group["betas"][1] ** float(state["step"]))
        out.append(1.0 / (v_hat.sqrt() + group["eps"]))
    return out


def test_adam_preconditioner_is_the_step_adamw_took():
    """At AdamW's first step (no weight decay) the update is exactly lr * P * g: P is Adam's preconditioner."""
    model = mixup_bert(dtype=torch.float64)
    weights = [p for _, p in task_parameters(model)]
    before = [w.detach().clone() for w in weights]
    optimizer = torch.optim.AdamW(weights, lr=1e-3, weight_decay=0.0)
    batch = tiny_batch(seed=4)
    gradients = torch.autograd.grad(model(**batch).loss, weights, allow_unused=True)
    inner_step(model, batch, weights, optimizer, None)
    preconditioner = adam_preconditioner(optimizer, weights)
    for w, b, g, p in zip(weights, before, gradients, preconditioner):
        expected = torch.zeros_like(w) if g is None else 1e-3 * p * g
        assert torch.allclose(b - w, expected, atol=1e-12)
    assert adam_preconditioner(torch.optim.SGD(weights, lr=0.1), weights) is None  # SGD: P = 1


def test_preconditioned_finite_difference_matches_the_exact_second_order_term():
    """A tiny float64 BERT after one AdamW inner step: the finite difference along xi * P * v against torch.func's
    exact Hessian-vector product with the same P (entries the inner loss never touched: P = 1 / eps there in the
    reference, 0 in ours; they contribute exactly nothing either way)."""
    model = mixup_bert(dtype=torch.float64, init_mean=0.6, init_std=0.2)
    weights = [p for _, p in task_parameters(model)]
    optimizer = torch.optim.AdamW(weights, lr=5e-2)
    train_batch, val_batch = tiny_batch(seed=4), tiny_batch(seed=5)
    inner_step(model, train_batch, weights, optimizer, None)  # W off W0, and Adam's second moment
    xi = optimizer.param_groups[0]["lr"]
    before = [w.detach().clone() for w in weights]
    alphas = alpha_parameters(model)
    fd = finite_difference_hypergradient(
        model, val_batch, train_batch, alphas, weights, xi, adam_preconditioner(optimizer, weights)
    )
    assert all(torch.equal(a, b) for a, b in zip(before, weights)), "W must be restored bit for bit"
    exact = flat(exact_second_order(model, val_batch, train_batch, xi, unmasked_adam_preconditioner(optimizer, weights)))
    first = flat(first_order_hypergradient(model, val_batch, alphas))
    # stated tolerance: relative error 1e-3 (central differences, eps = 0.01 / ||P v||, are O(eps^2) in float64);
    # the second-order term is at least a tenth of the whole, so the first-order answer would fail
    assert (exact - first).norm() > 0.1 * exact.norm()
    assert (flat(fd) - exact).norm() <= 1e-3 * exact.norm()
    unpreconditioned = flat(finite_difference_hypergradient(model, val_batch, train_batch, alphas, weights, xi))
    assert (unpreconditioned - exact).norm() > 1e-2 * exact.norm()  # P matters


def test_finite_difference_restores_the_weights_bit_for_bit_in_float32():
    model = mixup_bert(init_mean=0.6, init_std=0.2)
    weights = [p for _, p in task_parameters(model)]
    optimizer = torch.optim.AdamW(weights, lr=1e-2)
    inner_step(model, tiny_batch(seed=1), weights, optimizer, None)
    before = [w.detach().clone() for w in weights]
    finite_difference_hypergradient(
        model, [tiny_batch(seed=2), tiny_batch(seed=3)], tiny_batch(seed=1), alpha_parameters(model), weights, 1e-2,
        adam_preconditioner(optimizer, weights), val_dropout=False,
    )
    assert all(torch.equal(a, b) for a, b in zip(before, weights))


def test_several_validation_batches_give_the_gradient_of_the_mean_loss():
    model = mixup_bert(init_mean=0.7, init_std=0.1)
    alphas = alpha_parameters(model)
    parts = [tiny_batch(batch_size=3, seed=1), tiny_batch(batch_size=5, seed=2)]
    whole = {k: torch.cat([p[k] for p in parts]) for k in parts[0]}
    ours = mean_loss_gradients(model, parts, alphas)
    assert all(torch.allclose(a, b, atol=1e-7) for a, b in zip(ours, first_order_hypergradient(model, whole, alphas)))


def test_the_outer_pass_without_dropout_is_deterministic_and_restores_the_mode():
    model = mixup_bert()
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.5
    model.train()
    batch, alphas = tiny_batch(seed=3), alpha_parameters(model)
    with dropout_mode(model, False):
        first = first_order_hypergradient(model, batch, alphas)
        second = first_order_hypergradient(model, batch, alphas)
    assert model.training
    assert all(torch.equal(a, b) for a, b in zip(first, second))
    noisy = first_order_hypergradient(model, batch, alphas)
    assert not all(torch.equal(a, b) for a, b in zip(first, noisy))


def test_released_alpha_learning_rates_sum_to_about_0_045():
    """The issue's measurement: 45 alpha steps at 2e-3 under cosine with 10% warm-up add up to about 0.045."""
    assert 0.040 < 2e-3 * schedule_sum("cosine", 45, 0.1) < 0.046
    assert schedule_sum("constant", 10, 0.0) == pytest.approx(10.0)


@pytest.mark.parametrize("hypergradient", ["first-order", "finite-difference"])
def test_alpha_lr_sum_sets_the_budget_and_the_share_form_travels(hypergradient):
    loader = [tiny_batch(seed=s) for s in range(6)]
    travels = {}
    for form, budget in (("released", None), ("share", 1.0)):
        model = mixup_bert(form=form, granularity="rank" if form == "released" else "module")
        config = SearchConfig(
            epochs=2, inner_lr=1e-2, alpha_lr_sum=budget, unroll_steps=2, hypergradient=hypergradient,
            outer_full_split=form == "share", outer_dropout=form != "share",
        )
        log = bilevel_search(model, loader, loader[:3], config, progress=False)
        assert log["alpha_steps"] == 6 and log["diagnostics"]["alpha_steps"] == 6
        if budget is not None:
            assert log["alpha_lr_sum"] == pytest.approx(budget)
        else:
            assert log["alpha_lr"] == 2e-3 and log["alpha_lr_sum"] < 0.01
        travels[form] = log["diagnostics"]["share_travel"]
        assert all(layer.form == form for _, layer in mixup_layers(model))
    assert travels["share"] > 10 * travels["released"]


def test_an_unreachable_alpha_lr_sum_is_a_one_line_error():
    assert derived_alpha_lr(1.0, schedule_sum("cosine", 6, 0.1), 6) == pytest.approx(1.0 / schedule_sum("cosine", 6, 0.1))
    with pytest.raises(MixtuneError, match="warm-up"):
        derived_alpha_lr(1.0, schedule_sum("cosine", 1, 0.1), 1)  # one alpha step, in warm-up: lr 0

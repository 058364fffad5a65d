"""The bi-level search (docs/method.md section 2), written directly in torch.

lower level: the task weights W (every trainable parameter except alpha) minimise the loss on D_tr;
upper level: alpha minimises the loss on D_val of the model with those W. The two alternate:
`unroll_steps` inner optimiser steps on D_tr batches, then one alpha step on a D_val batch.
"""

from __future__ import annotations

import time
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from mixtune.config import SearchConfig
from mixtune.mixup.inject import alpha_parameters, clamp_alpha, task_parameters
from mixtune.optim import decay_groups, make_optimizer, make_schedule, steps_for
from mixtune.train import batch_loss, cycle


def first_order_hypergradient(model: nn.Module, val_batch: dict, alphas: list[nn.Parameter]) -> list[torch.Tensor]:
    """grad_alpha L_val at the current task weights (DARTS first order)."""
    return list(torch.autograd.grad(batch_loss(model, val_batch), alphas))


def finite_difference_hypergradient(
    model: nn.Module,
    val_batch: dict,
    train_batch: dict,
    alphas: list[nn.Parameter],
    weights: list[nn.Parameter],
    xi: float,
) -> list[torch.Tensor]:
    """DARTS second order: grad_alpha L_val - xi * [g+ - g-] / (2 eps), g± = grad_alpha L_tr(W ± eps v).

    v = grad_W L_val and eps = 0.01 / ||v||. W is the current (already stepped) task weights, and is
    restored exactly afterwards. The two perturbed passes share one dropout mask (same RNG state).
    """
    grads = torch.autograd.grad(batch_loss(model, val_batch), alphas + weights, allow_unused=True)
    direct = list(grads[: len(alphas)])
    v = [torch.zeros_like(w) if g is None else g for w, g in zip(weights, grads[len(alphas) :])]
    norm = torch.sqrt(sum((g.double() ** 2).sum() for g in v))
    if norm == 0:
        return direct
    eps = 0.01 / norm.item()
    rng_state = torch.get_rng_state()

    def perturbed_alpha_grad(scale: float) -> tuple[torch.Tensor, ...]:
        with torch.no_grad():
            torch._foreach_add_(weights, v, alpha=scale)
        torch.set_rng_state(rng_state)
        return torch.autograd.grad(batch_loss(model, train_batch), alphas)

    plus = perturbed_alpha_grad(eps)
    minus = perturbed_alpha_grad(-2 * eps)
    with torch.no_grad():
        torch._foreach_add_(weights, v, alpha=eps)
    return [d - xi * (p - m) / (2 * eps) for d, p, m in zip(direct, plus, minus)]


def bilevel_search(
    model: nn.Module,
    train_loader: DataLoader,
    val_loader: DataLoader,
    config: SearchConfig,
    desc: str = "search",
    progress: bool = True,
) -> dict[str, Any]:
    """Alternate inner steps on D_tr and alpha steps on D_val for config.epochs passes over D_tr."""
    alphas = alpha_parameters(model)
    named_weights = [(n, p) for n, p in task_parameters(model) if p.requires_grad]
    weights = [p for _, p in named_weights]
    for alpha in alphas:
        alpha.requires_grad_(True)
    inner_opt = make_optimizer(decay_groups(named_weights, config.inner_weight_decay), config.inner_lr)
    outer_opt = torch.optim.AdamW(alphas, lr=config.alpha_lr, weight_decay=config.alpha_weight_decay)
    total_inner = steps_for(config.epochs, len(train_loader))
    total_outer = -(-total_inner // config.unroll_steps)
    inner_schedule = make_schedule(inner_opt, config.inner_scheduler, total_inner, config.warmup_ratio)
    outer_schedule = make_schedule(outer_opt, config.alpha_scheduler, total_outer, config.warmup_ratio)
    val_batches = cycle(val_loader)
    model.train()
    started = time.perf_counter()
    inner_losses, outer_losses = [], []
    with tqdm(total=total_inner, desc=desc, disable=not progress, leave=False) as bar:
        for step, batch in zip(range(total_inner), cycle(train_loader)):
            inner_losses.append(_inner_step(model, batch, weights, inner_opt, config.inner_max_grad_norm))
            inner_schedule.step()
            if (step + 1) % config.unroll_steps == 0 or step + 1 == total_inner:
                val_batch = next(val_batches)
                if config.hypergradient == "finite-difference":
                    xi = config.fd_xi if config.fd_xi is not None else inner_opt.param_groups[0]["lr"]
                    hyper = finite_difference_hypergradient(model, val_batch, batch, alphas, weights, xi)
                else:
                    hyper = first_order_hypergradient(model, val_batch, alphas)
                for alpha, grad in zip(alphas, hyper):
                    alpha.grad = grad
                outer_opt.step()
                outer_schedule.step()
                outer_opt.zero_grad(set_to_none=True)
                clamp_alpha(model)
            bar.update(1)
            bar.set_postfix(loss=f"{inner_losses[-1]:.4f}")
    return {
        "inner_steps": total_inner,
        "alpha_steps": total_outer,
        "final_inner_loss": sum(inner_losses[-10:]) / len(inner_losses[-10:]),
        "seconds": time.perf_counter() - started,
    }


def _inner_step(
    model: nn.Module, batch: dict, weights: list[nn.Parameter], optimizer: torch.optim.Optimizer, max_norm: float | None
) -> float:
    """One optimiser step on the task weights only: alpha gets no gradient and does not move."""
    loss = batch_loss(model, batch)
    grads = torch.autograd.grad(loss, weights, allow_unused=True)
    for weight, grad in zip(weights, grads):
        weight.grad = grad
    if max_norm:
        torch.nn.utils.clip_grad_norm_(weights, max_norm)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return loss.item()

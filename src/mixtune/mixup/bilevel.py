"""The bi-level search (docs/method.md section 2), written directly in torch.

lower level: the task weights W (every trainable parameter except alpha) minimise the loss on D_tr;
upper level: alpha minimises the loss on D_val of the model with those W. The two alternate:
`unroll_steps` inner optimiser steps on D_tr batches, then one alpha step on a D_val batch (or, with
search.outer_full_split, on the whole of D_val; with search.outer_dropout false, in eval mode).
Every split records what mixtune.mixup.diagnostics measures (did alpha learn?).
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any, TypeVar

import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from mixtune.config import SearchConfig
from mixtune.device import full_precision, model_device, set_rng_state
from mixtune.device import rng_state as device_rng_state
from mixtune.errors import MixtuneError
from mixtune.mixup.diagnostics import SearchDiagnostics
from mixtune.mixup.inject import (
    alpha_parameters,
    clamp_alpha,
    injected_form,
    task_parameters,
)
from mixtune.mixup.layer import autocast_disabled
from mixtune.optim import decay_groups, make_optimizer, make_schedule, steps_for
from mixtune.train import batch_loss, cycle

T = TypeVar("T")


@contextlib.contextmanager
def dropout_mode(model: nn.Module, dropout: bool) -> Iterator[None]:
    """Run the block with dropout on (train mode) or off (eval mode), then restore the model's mode."""
    was_training = model.training
    model.train(dropout)
    try:
        yield
    finally:
        model.train(was_training)


def mean_loss_gradients(
    model: nn.Module, batches: dict | list[dict], params: list[nn.Parameter], allow_unused: bool = False
) -> list[torch.Tensor | None]:
    """Gradients of the mean loss over the examples of `batches` (one batch: plain autograd of its loss)."""
    batches = [batches] if isinstance(batches, Mapping) else list(batches)
    if len(batches) == 1:
        return list(torch.autograd.grad(batch_loss(model, batches[0]), params, allow_unused=allow_unused))
    sizes = [len(batch["input_ids"]) for batch in batches]
    total: list[torch.Tensor | None] = [None] * len(params)
    for batch, size in zip(batches, sizes):
        grads = torch.autograd.grad(batch_loss(model, batch) * (size / sum(sizes)), params, allow_unused=allow_unused)
        total = [t if g is None else (g if t is None else t + g) for t, g in zip(total, grads)]
    return total


def first_order_hypergradient(
    model: nn.Module, val_batch: dict | list[dict], alphas: list[nn.Parameter]
) -> list[torch.Tensor]:
    """grad_alpha L_val at the current task weights (DARTS first order); L_val over one batch or several."""
    return mean_loss_gradients(model, val_batch, alphas)


@torch.no_grad()
def adam_preconditioner(optimizer: torch.optim.Optimizer, weights: list[nn.Parameter]) -> list[torch.Tensor] | None:
    """Adam's per-entry preconditioner P = 1 / (sqrt(v_hat) + eps) from the optimiser's state; None otherwise (SGD: P = 1).

    v_hat is the bias-corrected second moment after the latest step, as AdamW's own update uses it. Entries with
    no second moment yet (v = 0: the inner loss has never had a gradient there) get P = 0: the inner step cannot
    move them through alpha, so they add nothing to the second-order term, and a 1 / eps there would swamp the
    finite difference's direction.
    """
    if not isinstance(optimizer, (torch.optim.Adam, torch.optim.AdamW)):
        return None
    group_of = {id(p): group for group in optimizer.param_groups for p in group["params"]}
    out = []
    for weight in weights:
        state = optimizer.state.get(weight, {})
        if "exp_avg_sq" not in state or id(weight) not in group_of:
            out.append(torch.zeros_like(weight))
            continue
        group = group_of[id(weight)]
        correction = 1.0 - group["betas"][1] ** float(state["step"])
        second = state["exp_avg_sq"]
        precondition = 1.0 / ((second / correction).sqrt() + group["eps"])
        out.append(torch.where(second > 0, precondition, torch.zeros_like(precondition)))
    return out


def in_fp32(passes: Callable[..., T]) -> Callable[..., T]:
    """Runs `passes(model, ...)` in fp32 whatever the run's precision: autocast off, full-precision matmuls."""

    @functools.wraps(passes)
    def wrapper(model: nn.Module, *args: Any, **kwargs: Any) -> T:
        with full_precision(), autocast_disabled(model_device(model)):
            return passes(model, *args, **kwargs)

    return wrapper


@in_fp32
def finite_difference_hypergradient(
    model: nn.Module,
    val_batch: dict | list[dict],
    train_batch: dict,
    alphas: list[nn.Parameter],
    weights: list[nn.Parameter],
    xi: float,
    preconditioner: list[torch.Tensor] | None = None,
    val_dropout: bool = True,
) -> list[torch.Tensor]:
    """DARTS second order for the one-step unroll W' = W - xi * P * grad_W L_tr(W, alpha):

        grad_alpha L_val - xi * [g+ - g-] / (2 eps),   g± = grad_alpha L_tr(W ± eps d),   d = P * v,

    v = grad_W L_val, eps = 0.01 / ||d||. P is the inner optimiser's preconditioner (adam_preconditioner: under
    AdamW 1 / (sqrt(v_hat) + eps), with xi the inner lr; None = 1, the SGD unroll and textbook DARTS). Adam's
    momentum is not unrolled (the step is taken as xi * P * gradient, as Betty's DARTS variant does).
    W is the current (already stepped) task weights: saved before the perturbation and copied back after, so it
    is restored bit for bit. The two perturbed passes share one dropout mask (same RNG state); the validation
    pass runs without dropout when `val_dropout` is False.
    All three passes run in fp32 whatever the run's precision: the nudge eps * d is about 1/20 of a bf16 step,
    so under bf16 autocast g+ - g- is rounding noise (issue 30).
    """
    with dropout_mode(model, val_dropout):
        grads = mean_loss_gradients(model, val_batch, alphas + weights, allow_unused=True)
    direct = list(grads[: len(alphas)])
    v = [torch.zeros_like(w) if g is None else g for w, g in zip(weights, grads[len(alphas) :])]
    d = v if preconditioner is None else [p * g for p, g in zip(preconditioner, v)]
    norm = torch.sqrt(sum((g.double() ** 2).sum() for g in d))
    if norm == 0:
        return direct
    eps = 0.01 / norm.item()
    device = weights[0].device if weights else None
    rng_state = device_rng_state(device)  # the CPU's and, on a GPU, its generator (dropout there draws from it)
    saved = [w.detach().clone() for w in weights]

    def perturbed_alpha_grad(scale: float) -> tuple[torch.Tensor, ...]:
        with torch.no_grad():
            for weight, original, step in zip(weights, saved, d):
                weight.copy_(original).add_(step, alpha=scale)
        set_rng_state(rng_state, device)
        return torch.autograd.grad(batch_loss(model, train_batch), alphas)

    try:
        plus = perturbed_alpha_grad(eps)
        minus = perturbed_alpha_grad(-eps)
    finally:
        with torch.no_grad():
            for weight, original in zip(weights, saved):
                weight.copy_(original)
    return [g - xi * (p - m) / (2 * eps) for g, p, m in zip(direct, plus, minus)]


def schedule_sum(name: str, total_steps: int, warmup_ratio: float) -> float:
    """The sum over `total_steps` optimiser steps of a schedule's lr multipliers (what lr x this adds up to)."""
    probe = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    schedule = make_schedule(probe, name, total_steps, warmup_ratio)
    total = 0.0
    for _ in range(total_steps):
        total += probe.param_groups[0]["lr"]
        probe.step()
        schedule.step()
    return total


def inner_optimizer(
    named_weights: list[tuple[str, nn.Parameter]], config: SearchConfig, total_steps: int
) -> tuple[torch.optim.Optimizer, Any]:
    """The search's lower-level optimiser and schedule (shared with soup-start, which runs the same inner steps)."""
    optimizer = make_optimizer(decay_groups(named_weights, config.inner_weight_decay), config.inner_lr)
    return optimizer, make_schedule(optimizer, config.inner_scheduler, total_steps, config.warmup_ratio)


def derived_alpha_lr(lr_sum: float, multipliers: float, alpha_steps: int) -> float:
    """The alpha learning rate whose scheduled values over the split's alpha steps sum to lr_sum."""
    if multipliers <= 0:
        raise MixtuneError(
            f"search.alpha_lr_sum cannot be reached: each search split makes {alpha_steps} alpha step(s), all in the "
            "schedule's warm-up at learning rate 0; lower search.unroll_steps or search.warmup_ratio, or train on more examples"
        )
    return lr_sum / multipliers


def bilevel_search(
    model: nn.Module,
    train_loader: DataLoader,
    val_loader: DataLoader,
    config: SearchConfig,
    desc: str = "search",
    progress: bool = True,
) -> dict[str, Any]:
    """Alternate inner steps on D_tr and alpha steps on D_val for config.epochs passes over D_tr.

    Keys `config` leaves unset take the defaults of the form injected in `model` (SearchConfig.resolved).
    """
    config = config.resolved(injected_form(model))
    alphas = alpha_parameters(model)
    named_weights = [(n, p) for n, p in task_parameters(model) if p.requires_grad]
    weights = [p for _, p in named_weights]
    for alpha in alphas:
        alpha.requires_grad_(True)
    total_inner = steps_for(config.epochs, len(train_loader))
    total_outer = -(-total_inner // config.unroll_steps)
    inner_opt, inner_schedule = inner_optimizer(named_weights, config, total_inner)
    multipliers = schedule_sum(config.alpha_scheduler, total_outer, config.warmup_ratio)
    alpha_lr = config.alpha_lr if config.alpha_lr_sum is None else derived_alpha_lr(config.alpha_lr_sum, multipliers, total_outer)
    outer_opt = make_optimizer([{"params": alphas, "weight_decay": config.alpha_weight_decay}], alpha_lr)
    outer_schedule = make_schedule(outer_opt, config.alpha_scheduler, total_outer, config.warmup_ratio)
    val_batches = cycle(val_loader)
    whole_val = list(val_loader) if config.outer_full_split else None
    diagnostics = SearchDiagnostics(model)
    model.train()
    started = time.perf_counter()
    inner_losses = []
    with tqdm(total=total_inner, desc=desc, disable=not progress, leave=False) as bar:
        for step, batch in zip(range(total_inner), cycle(train_loader)):
            inner_losses.append(inner_step(model, batch, weights, inner_opt, config.inner_max_grad_norm))
            inner_schedule.step()
            if (step + 1) % config.unroll_steps == 0 or step + 1 == total_inner:
                val_batch = whole_val if whole_val is not None else next(val_batches)
                if config.hypergradient == "finite-difference":
                    xi = config.fd_xi if config.fd_xi is not None else inner_opt.param_groups[0]["lr"]
                    precondition = adam_preconditioner(inner_opt, weights) if config.fd_precondition else None
                    hyper = finite_difference_hypergradient(
                        model, val_batch, batch, alphas, weights, xi, precondition, config.outer_dropout
                    )
                else:
                    with dropout_mode(model, config.outer_dropout):
                        hyper = first_order_hypergradient(model, val_batch, alphas)
                diagnostics.add(hyper)
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
        "alpha_lr": alpha_lr,
        "alpha_lr_sum": alpha_lr * multipliers,
        "diagnostics": diagnostics.result(),
    }


def inner_step(
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

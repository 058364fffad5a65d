"""The one training loop every method shares; methods plug in through the hooks of methods.base.Method."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from mixtune.data.batching import make_loader
from mixtune.device import GradStep, active, forward_context, model_device, rng_state, set_rng_state, to_device
from mixtune.errors import TrainingDiverged
from mixtune.optim import make_optimizer, make_schedule, steps_for

if TYPE_CHECKING:
    from mixtune.config import RunConfig, TrainConfig
    from mixtune.methods.base import Method


@dataclass
class FitContext:
    """What a method needs to train: the encoded training set, the tokenizer, the config, the seed.

    Methods record their phases' wall times in `phase_times` and anything worth keeping in `log`.
    `dev_features` and `evaluate_dev(model) -> score` (the task's main metric on the run's dev split, higher is
    better) let the loop keep the best checkpoint and let methods choose a setting on dev.
    `search_cache`: a folder where mixup-blo keeps finished searches (None: no caching); a method that
    loaded its search from there sets `search_cached`.
    """

    features: list[dict]
    tokenizer: Any
    config: RunConfig
    seed: int
    progress: bool = True
    search_cache: Path | None = None
    dev_features: list[dict] = field(default_factory=list)
    evaluate_dev: Callable[[nn.Module], float] | None = None
    phase_times: dict[str, float] = field(default_factory=dict)
    log: dict[str, Any] = field(default_factory=dict)
    search_cached: bool = False
    last_step_state: dict[str, torch.Tensor] | None = None

    def loader(self, features: list[dict] | None = None, shuffle: bool = True, seed_offset: int = 0) -> DataLoader:
        features = self.features if features is None else features
        return make_loader(features, self.tokenizer, self.config.train.batch_size, shuffle, self.seed + seed_offset)


def cycle(loader: DataLoader) -> Iterator[dict]:
    """Batches forever, reshuffling each pass (the loader's generator advances)."""
    while True:
        yield from loader


def batch_loss(model: nn.Module, batch: dict, scaled: bool = False) -> torch.Tensor:
    """The batch's loss, the batch moved to the model's device, under the run's autocast (mixtune.device).

    `scaled`: a gradient scaler follows (the shared loop), so fp16 autocast applies; raw-gradient passes
    (the search, the Fisher pass) leave it False and run fp32 under fp16.
    """
    with forward_context(scaled):
        loss = model(**to_device(batch, model_device(model))).loss
    if not torch.isfinite(loss):
        raise TrainingDiverged(f"training loss became {loss.item()}: lower the learning rate")
    return loss


DIVERGENCE_FACTOR = 100.0  # a running loss this many times the first one means the run diverged
LOSS_FLOOR = 0.1  # a start below this (a head that already fits) counts as this: noise is not divergence
DIVERGENCE_WINDOW = 5
LOSS_WINDOW = 10  # the final loss reported: the mean of the last 10 steps


class DivergenceGuard:
    """Fails the run when the running loss climbs far above the first step's, or a weight is not finite.

    The first loss is the model before any update: a short run (a dozen steps) is judged too.
    """

    def __init__(self) -> None:
        self.losses: list[float] = []

    def add(self, loss: float) -> None:
        self.losses.append(loss)
        recent = self.losses[-DIVERGENCE_WINDOW:]
        running = sum(recent) / len(recent)
        start = self.losses[0]
        if len(self.losses) > 2 and running > DIVERGENCE_FACTOR * max(start, LOSS_FLOOR):
            raise TrainingDiverged(
                f"training diverged (loss {running:.3g}, started at {start:.3g}): lower the learning rate"
            )

    @staticmethod
    def check_weights(params: list[nn.Parameter]) -> None:
        if not all(torch.isfinite(p).all() for p in params):
            raise TrainingDiverged("training diverged (a weight is not finite after the last step): lower the learning rate")


def trainable_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """A copy of every trainable parameter, by name."""
    return {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}


@torch.no_grad()
def load_trainable_state(model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    for name, param in model.named_parameters():
        if name in state:
            param.copy_(state[name])


class DevSelector:
    """Evaluates on dev every `every` steps, keeps the best trainable state in memory, restores it at the end.

    select = "last" with an evaluator (train.eval_every set: see dev_evaluator) records the dev curve (for plots)
    but keeps the final weights. Ties go to the later step: a dev split of a few dozen examples ties often, and a
    tie is no evidence against training on. `patience` dev evaluations without improvement stop training early.
    An evaluation leaves the random state as it found it (a DataLoader pass draws a seed from it): how often dev
    is scored never changes the dropout masks, so the weights a run trains do not depend on it.
    """

    def __init__(self, model: nn.Module, evaluate: Callable[[nn.Module], float] | None, every: int, select: str, patience: int | None):
        self.model, self.evaluate, self.every = model, evaluate, every
        self.select, self.patience = select, patience
        self.curve: list[dict[str, float]] = []
        self.best_score, self.best_step, self.best_state = -math.inf, 0, None
        self.since_best = 0

    @property
    def active(self) -> bool:
        return self.evaluate is not None

    def after_step(self, step: int, total: int) -> bool:
        """Evaluate when due (and after the last step); True when patience ran out."""
        done = step + 1
        if not self.active or (done % self.every and done != total):
            return False
        device = model_device(self.model)
        saved = rng_state(device)
        score = self.evaluate(self.model)
        set_rng_state(saved, device)
        self.curve.append({"step": done, "dev": score})
        if score >= self.best_score:
            self.best_score, self.best_step, self.since_best = score, done, 0
            if self.select == "best-dev":
                self.best_state = trainable_state(self.model)
        else:
            self.since_best += 1
        return self.patience is not None and self.since_best >= self.patience

    def restore(self) -> None:
        if self.best_state is not None:
            load_trainable_state(self.model, self.best_state)

    def summary(self, steps_run: int) -> dict[str, Any]:
        if not self.active:
            return {"select": "last"}
        chosen = self.best_step if self.select == "best-dev" else steps_run
        return {"select": self.select, "selected_step": chosen, "best_dev": self.best_score, "dev_curve": self.curve}


def dev_evaluator(cfg: TrainConfig, evaluate: Callable[[nn.Module], float] | None) -> Callable[[nn.Module], float] | None:
    """The dev evaluator when the loop has a use for its scores, else None (no dev passes at all).

    Uses: best-dev selection, patience, and a dev curve asked for by setting train.eval_every. Under
    select = last with eval_every unset nothing reads the scores: the loop evaluates nothing.
    """
    wanted = cfg.select == "best-dev" or cfg.patience is not None or cfg.eval_every is not None
    return evaluate if wanted else None


def eval_interval(config_every: int | None, batches_per_epoch: int) -> int:
    """Steps between dev evaluations: as configured, else four per epoch."""
    return config_every or max(1, batches_per_epoch // 4)


def train_loop(
    model: nn.Module,
    loader: DataLoader,
    method: Method,
    lr: float,
    epochs: float,
    ctx: FitContext,
    desc: str,
    total_steps: int | None = None,
) -> dict[str, Any]:
    """AdamW with a warmup schedule and gradient clipping; the method's hooks shape what moves.

    `total_steps`, when given, replaces the step count that `epochs` would give (vanilla-long: an exact count).

    With a dev evaluator in ctx, and a use for its scores (dev_evaluator), the loop evaluates every
    train.eval_every steps and, under train.select = best-dev, ends holding the trainable state of the best dev score.
    """
    cfg = ctx.config.train
    runtime = active()
    if runtime is not None:
        runtime.place(model)  # modules a method added in prepare() (peft, mixout) join the model's device
    groups = method.parameter_groups(model, cfg.weight_decay, lr)
    params = [p for g in groups for p in g["params"]]
    optimizer = make_optimizer(groups, lr)
    grad_step = GradStep(optimizer, runtime)
    total = total_steps if total_steps is not None else steps_for(epochs, len(loader))
    schedule = make_schedule(optimizer, cfg.scheduler, total, cfg.warmup_ratio)
    selector = DevSelector(model, dev_evaluator(cfg, ctx.evaluate_dev), eval_interval(cfg.eval_every, len(loader)), cfg.select, cfg.patience)
    guard = DivergenceGuard()
    method.on_train_start(model, loader, total)
    model.train()
    started = time.perf_counter()
    steps_run = 0
    with tqdm(total=total, desc=desc, disable=not ctx.progress, leave=False) as bar:
        for step, batch in zip(range(total), cycle(loader)):
            loss = batch_loss(model, batch, scaled=True)
            grad_step.backward(loss)
            finite = grad_step.unscale()  # False only under fp16, when the step is skipped
            if finite:
                method.before_optimizer_step(model, step)
            if cfg.max_grad_norm:
                torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
            grad_step.step()
            schedule.step()
            optimizer.zero_grad(set_to_none=True)
            if finite:
                method.after_optimizer_step(model, step)
            guard.add(loss.item())
            steps_run = step + 1
            bar.update(1)
            bar.set_postfix(loss=f"{loss.item():.4f}")
            if selector.after_step(step, total):
                break
    guard.check_weights(params)
    if cfg.report_last_step and selector.best_state is not None:
        ctx.last_step_state = trainable_state(model)
    selector.restore()
    recent = guard.losses[-LOSS_WINDOW:]
    return {
        "steps": steps_run,
        "planned_steps": total,
        "final_loss": sum(recent) / len(recent),
        "seconds": time.perf_counter() - started,
        **selector.summary(steps_run),
    }

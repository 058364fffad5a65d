"""The one training loop every method shares; methods plug in through the hooks of methods.base.Method."""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from mixtune.averaging import WeightAverager
from mixtune.config import average_default
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
    loaded its search from there sets `search_cached`, and `cached_search_cpu_s` to the CPU seconds that search took.
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
    cached_search_cpu_s: float | None = None
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


DIVERGENCE_WINDOW = 5  # the running loss: the mean of the last 5 steps, judged once 5 steps have run
UNIFORM_LOSS_MULTIPLE = 3.0  # classification: a running cross-entropy above 3 ln C has diverged
REGRESSION_LOSS_MULTIPLE = 10.0  # regression: a running MSE above 10 x max(first loss, label variance) has diverged
LOSS_WINDOW = 10  # the final loss reported: the mean of the last 10 steps


class DivergenceGuard:
    """Fails the run when the running loss passes a ceiling no learning run reaches, or a weight is not finite.

    Classification (C classes): the ceiling is 3 ln C. ln C is the cross-entropy of a uniform guess, where a
    fresh head starts and which a learning run goes below; at 3 ln C the true class gets, in geometric mean
    over the window, probability 1/C^3 (1/8 for two classes): confidently wrong batch after batch, while a
    diverged run's logits run into the hundreds. A ratio to the first loss cannot say this: cross-entropy
    rarely climbs 100-fold from ln C before it turns NaN.
    Regression (one output, MSE): no fixed scale, so the ceiling is 10 x the larger of the first loss (the
    untrained head) and the labels' variance (the loss of predicting their mean): predictions off by over
    three times what either reference misses by. The variance keeps a head that already fits (lp-ft) from being
    judged against its own tiny start.
    The window's first steps are the warm-up: nothing is judged before DIVERGENCE_WINDOW losses are in.
    """

    def __init__(self, num_labels: int, label_variance: float = 0.0) -> None:
        self.num_labels, self.label_variance = num_labels, label_variance
        self.losses: list[float] = []

    @classmethod
    def for_model(cls, model: nn.Module, features: list[dict]) -> DivergenceGuard:
        """The guard for `model`'s head: classes from its config, the label variance of `features` for regression."""
        num_labels = model.config.num_labels
        if num_labels > 1:
            return cls(num_labels)
        return cls(num_labels, statistics.pvariance([float(f["labels"]) for f in features]) if features else 0.0)

    def ceiling(self) -> tuple[float, str]:
        """The running loss above which the run has diverged, and how it was set (for the message)."""
        if self.num_labels > 1:
            return UNIFORM_LOSS_MULTIPLE * math.log(self.num_labels), f"{UNIFORM_LOSS_MULTIPLE:g} x ln {self.num_labels}"
        if self.losses[0] >= self.label_variance:
            return REGRESSION_LOSS_MULTIPLE * self.losses[0], f"{REGRESSION_LOSS_MULTIPLE:g} x the first loss"
        return REGRESSION_LOSS_MULTIPLE * self.label_variance, f"{REGRESSION_LOSS_MULTIPLE:g} x the label variance"

    def add(self, loss: float) -> None:
        self.losses.append(loss)
        if len(self.losses) < DIVERGENCE_WINDOW:
            return
        running = sum(self.losses[-DIVERGENCE_WINDOW:]) / DIVERGENCE_WINDOW
        ceiling, rule = self.ceiling()
        if running > ceiling:
            raise TrainingDiverged(
                f"training diverged (mean loss {running:.3g} over steps {len(self.losses) - DIVERGENCE_WINDOW + 1}-"
                f"{len(self.losses)}, above {ceiling:.3g} = {rule}): lower the learning rate"
            )

    def check_weights(self, params: list[nn.Parameter]) -> None:
        """One fused norm over every weight (a NaN or inf anywhere makes it non-finite): cheap enough for each evaluation."""
        if params and not torch.isfinite(torch.nn.utils.get_total_norm(params)):
            raise TrainingDiverged(
                f"training diverged (a weight is not finite after step {len(self.losses)}): lower the learning rate"
            )

    def checked(
        self, evaluate: Callable[[nn.Module], float] | None, params: list[nn.Parameter]
    ) -> Callable[[nn.Module], float] | None:
        """`evaluate` that checks the weights first: a dev score of broken weights must never be selected."""
        if evaluate is None:
            return None

        def evaluate_finite(model: nn.Module) -> float:
            self.check_weights(params)
            return evaluate(model)

        return evaluate_finite


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


def loop_uses_dev(cfg: TrainConfig) -> bool:
    """Whether the loop reads dev scores: best-dev selection, patience, or a dev curve asked for by setting
    train.eval_every. Under select = last with eval_every unset nothing reads them."""
    return cfg.select == "best-dev" or cfg.patience is not None or cfg.eval_every is not None


def dev_evaluator(cfg: TrainConfig, evaluate: Callable[[nn.Module], float] | None) -> Callable[[nn.Module], float] | None:
    """The dev evaluator when the loop has a use for its scores (loop_uses_dev), else None (no dev passes at all)."""
    return evaluate if loop_uses_dev(cfg) else None


def eval_interval(config_every: int | None, batches_per_epoch: int) -> int:
    """Steps between dev evaluations: as configured, else twice per epoch.

    Twice, not four times (before issue 31): a dev pass then costs about 5% of a vanilla run's training, and a
    50-example dev split cannot tell neighbouring checkpoints apart anyway (docs/method.md section 8).
    """
    return config_every or max(1, batches_per_epoch // 2)


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
    guard = DivergenceGuard.for_model(model, ctx.features)
    evaluate_dev = guard.checked(dev_evaluator(cfg, ctx.evaluate_dev), params)
    selector = DevSelector(model, evaluate_dev, eval_interval(cfg.eval_every, len(loader)), cfg.select, cfg.patience)
    average = average_default(cfg, method.name)  # train.average, or the method's (averaging.py)
    averager = WeightAverager(average, cfg.average_start, cfg.ema_decay, total)
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
            averager.after_step(model, step)
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
    averager.apply(model)  # the averaged weights are what gets evaluated and exported
    recent = guard.losses[-LOSS_WINDOW:]
    return {
        "steps": steps_run,
        "planned_steps": total,
        "final_loss": sum(recent) / len(recent),
        "seconds": time.perf_counter() - started,
        **selector.summary(steps_run),
        **averager.summary(),
    }

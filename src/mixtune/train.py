"""The one training loop every method shares; methods plug in through the hooks of methods.base.Method."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from mixtune.data.batching import make_loader
from mixtune.optim import make_optimizer, make_schedule, steps_for

if TYPE_CHECKING:
    from mixtune.config import RunConfig
    from mixtune.methods.base import Method


@dataclass
class FitContext:
    """What a method needs to train: the encoded training set, the tokenizer, the config, the seed.

    Methods record their phases' wall times in `phase_times` and anything worth keeping in `log`.
    `search_cache`: a folder where mixup-blo keeps finished searches (None: no caching); a method that
    loaded its search from there sets `search_cached`.
    """

    features: list[dict]
    tokenizer: Any
    config: RunConfig
    seed: int
    progress: bool = True
    search_cache: Path | None = None
    phase_times: dict[str, float] = field(default_factory=dict)
    log: dict[str, Any] = field(default_factory=dict)
    search_cached: bool = False

    def loader(self, features: list[dict] | None = None, shuffle: bool = True, seed_offset: int = 0) -> DataLoader:
        features = self.features if features is None else features
        return make_loader(features, self.tokenizer, self.config.train.batch_size, shuffle, self.seed + seed_offset)


def cycle(loader: DataLoader) -> Iterator[dict]:
    """Batches forever, reshuffling each pass (the loader's generator advances)."""
    while True:
        yield from loader


def batch_loss(model: nn.Module, batch: dict) -> torch.Tensor:
    loss = model(**batch).loss
    if not torch.isfinite(loss):
        raise FloatingPointError(f"training loss became {loss.item()}: lower the learning rate")
    return loss


def train_loop(
    model: nn.Module, loader: DataLoader, method: Method, lr: float, epochs: float, ctx: FitContext, desc: str
) -> dict[str, Any]:
    """AdamW with a warmup schedule and gradient clipping; the method's hooks shape what moves."""
    cfg = ctx.config.train
    groups = method.parameter_groups(model, cfg.weight_decay, lr)
    params = [p for g in groups for p in g["params"]]
    optimizer = make_optimizer(groups, lr)
    total = steps_for(epochs, len(loader))
    schedule = make_schedule(optimizer, cfg.scheduler, total, cfg.warmup_ratio)
    method.on_train_start(model, loader, total)
    model.train()
    losses: list[float] = []
    started = time.perf_counter()
    with tqdm(total=total, desc=desc, disable=not ctx.progress, leave=False) as bar:
        for step, batch in zip(range(total), cycle(loader)):
            loss = batch_loss(model, batch)
            loss.backward()
            method.before_optimizer_step(model, step)
            if cfg.max_grad_norm:
                torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
            optimizer.step()
            schedule.step()
            optimizer.zero_grad(set_to_none=True)
            method.after_optimizer_step(model, step)
            losses.append(loss.item())
            bar.update(1)
            bar.set_postfix(loss=f"{loss.item():.4f}")
    return {"steps": total, "final_loss": sum(losses[-10:]) / len(losses[-10:]), "seconds": time.perf_counter() - started}

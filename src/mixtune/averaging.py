"""Weight averaging over the last part of a training run (train.average): SWA or EMA of the trainable weights.

Why: at n = 300 the last step's weights move with the last few batches, and choosing a checkpoint on 50 dev
examples adds more seed variance than it removes (issue 32). Averaging the trajectory's tail smooths the step
noise without any extra labels. The averaged weights replace the last step's at the end of the loop, so they are
what gets evaluated and exported.

    swa: the plain mean of the weights after every step from step ceil(average_start * total) on (Izmailov et
         al. 2018, at the run's own schedule);
    ema: avg <- decay * avg + (1 - decay) * w after each of those steps, started at the first of them.

The running averages are torch.optim.swa_utils.AveragedModel's; only trainable parameters are copied back
(frozen ones never change, so their average is themselves).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

AVERAGE_CHOICES = ("none", "swa", "ema")


def first_averaged_step(average_start: float, total_steps: int) -> int:
    """The 0-based index of the first step whose weights enter the average (the last step always does)."""
    return min(math.ceil(average_start * total_steps), total_steps - 1)


class WeightAverager:
    """Keeps the running SWA / EMA of a model's weights from a start step on; `apply` loads it into the model."""

    def __init__(self, mode: str, average_start: float, ema_decay: float, total_steps: int) -> None:
        if mode not in AVERAGE_CHOICES:
            raise ValueError(f"unknown weight average {mode!r}: choose one of {', '.join(AVERAGE_CHOICES)}")
        self.mode, self.ema_decay = mode, ema_decay
        self.start = first_averaged_step(average_start, max(total_steps, 1))
        self.averaged: AveragedModel | None = None

    @property
    def active(self) -> bool:
        return self.mode != "none"

    def after_step(self, model: nn.Module, step: int) -> None:
        """Add the weights after 0-based step `step` to the average when it is due."""
        if not self.active or step < self.start:
            return
        if self.averaged is None:  # created here, so its copy costs nothing before the averaged tail
            multi_avg_fn = get_ema_multi_avg_fn(self.ema_decay) if self.mode == "ema" else None
            self.averaged = AveragedModel(model, multi_avg_fn=multi_avg_fn)
        self.averaged.update_parameters(model)

    @torch.no_grad()
    def apply(self, model: nn.Module) -> None:
        """Replace the model's trainable weights by their average (no-op when nothing was averaged)."""
        if self.averaged is None:
            return
        averaged = dict(self.averaged.module.named_parameters())
        for name, param in model.named_parameters():
            if param.requires_grad:
                param.copy_(averaged[name])

    def summary(self) -> dict[str, Any]:
        """What the run log records: the mode, and for an average, its first step (1-based) and how many it holds."""
        if not self.active:
            return {}
        count = 0 if self.averaged is None else int(self.averaged.n_averaged)
        return {"average": self.mode, "average_from_step": self.start + 1, "averaged_steps": count}

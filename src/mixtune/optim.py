"""Optimiser and schedule construction shared by the training loop and the bi-level search."""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch import nn
from transformers import get_scheduler

NO_DECAY_MARKERS = ("bias", "LayerNorm", "layer_norm", "layernorm")


def decay_groups(named_params: Iterable[tuple[str, nn.Parameter]], weight_decay: float) -> list[dict]:
    """AdamW groups as in the released code: no weight decay on biases and LayerNorm parameters."""
    decay, no_decay = [], []
    for name, param in named_params:
        if not param.requires_grad:
            continue
        (no_decay if any(m in name for m in NO_DECAY_MARKERS) else decay).append(param)
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return [g for g in groups if g["params"]]


def make_optimizer(groups: list[dict], lr: float) -> torch.optim.AdamW:
    return torch.optim.AdamW(groups, lr=lr)


def make_schedule(optimizer: torch.optim.Optimizer, name: str, total_steps: int, warmup_ratio: float):
    return get_scheduler(
        name if name != "constant" else "constant_with_warmup",
        optimizer,
        num_warmup_steps=math.ceil(warmup_ratio * total_steps),
        num_training_steps=max(total_steps, 1),
    )


def steps_for(epochs: float, batches_per_epoch: int) -> int:
    """Optimiser steps for a (possibly fractional) number of epochs; at least one."""
    return max(1, math.ceil(epochs * batches_per_epoch))

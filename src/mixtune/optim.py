"""Optimiser and schedule construction shared by the training loop and the bi-level search.

AdamW takes torch's fused kernel wherever it has one for the weights' device: on one CPU thread a step over
all-MiniLM-L6-v2 costs about 25 ms fused against 121 ms in the single-tensor loop torch picks on the CPU by
default (about a fifth of a vanilla run; issue 31). Fused and single-tensor steps agree to float rounding
(tests/test_optim.py), not bit for bit: runs from before the switch repeat within rounding, not exactly.
"""

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


# Device types with a fused AdamW kernel for every floating dtype (torch 2.13; CPU checked for fp32/64, bf16, fp16).
FUSED_DEVICE_TYPES = ("cpu", "cuda")


def fused_supported(params: Iterable[torch.Tensor]) -> bool:
    """Whether torch's fused AdamW kernel takes these parameters: floating point, on a device it covers."""
    return all(torch.is_floating_point(p) and p.device.type in FUSED_DEVICE_TYPES for p in params)


def optimizer_path(device: torch.device) -> str:
    """The run record's name for the AdamW implementation make_optimizer takes for float weights on `device`."""
    return "adamw-fused" if device.type in FUSED_DEVICE_TYPES else "adamw"


def make_optimizer(groups: list[dict], lr: float) -> torch.optim.AdamW:
    """AdamW over the parameter groups (each may set its own lr and weight_decay), fused where supported."""
    params = [p for group in groups for p in group["params"]]
    return torch.optim.AdamW(groups, lr=lr, fused=fused_supported(params))


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

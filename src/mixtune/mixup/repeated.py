"""Repeated search: K independent random D_tr/D_val splits, each from the same fresh start, then averaged."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from mixtune.config import SearchConfig
from mixtune.data.sampling import random_split
from mixtune.mixup.bilevel import bilevel_search
from mixtune.mixup.inject import mixup_layers

SPLIT_SEED_STRIDE = 1000  # split k of run seed s uses seed s * 1000 + k


def averaged_keys(model: nn.Module, average: str) -> list[str]:
    """State-dict keys averaged across splits: alpha only, or every parameter ("all", released total_avg)."""
    if average == "all":
        return [name for name, _ in model.named_parameters()]
    return [f"{name}.{p}" for name, layer in mixup_layers(model) for p in ("alpha_a", "alpha_b") if getattr(layer, p) is not None]


def repeated_search(
    model: nn.Module,
    features: list[dict],
    make_loader: Callable[[list[dict], int], DataLoader],
    config: SearchConfig,
    seed: int,
    reset_alpha: Callable[[int], None],
    progress: bool = True,
) -> dict[str, Any]:
    """Run config.splits bi-level searches and load their average into `model`.

    Every split starts from the model's state on entry (pretrained weights with a seeded head) and a
    fresh alpha drawn by `reset_alpha(k)`. Parameters outside `averaged_keys` return to that start.
    """
    start = {k: v.detach().clone() for k, v in model.state_dict().items()}
    keys = averaged_keys(model, config.average)
    totals = {k: torch.zeros_like(start[k], dtype=torch.float64) for k in keys}
    logs, splits = [], []
    for k in range(config.splits):
        model.load_state_dict(start)
        reset_alpha(k)
        split_seed = seed * SPLIT_SEED_STRIDE + k
        train_idx, val_idx = random_split(len(features), config.split_ratio, split_seed)
        logs.append(
            bilevel_search(
                model,
                make_loader([features[i] for i in train_idx], split_seed),
                make_loader([features[i] for i in val_idx], split_seed + 1),
                config,
                desc=f"search split {k + 1}/{config.splits}",
                progress=progress,
            )
        )
        splits.append(val_idx)
        state = model.state_dict()
        for key in keys:
            totals[key] += state[key].double()
    averaged = dict(start)
    averaged.update({key: (total / config.splits).to(start[key].dtype) for key, total in totals.items()})
    model.load_state_dict(averaged)
    return {"splits": logs, "val_indices": splits, "averaged": config.average}

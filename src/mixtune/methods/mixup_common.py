"""What the three mixup methods share: injection with a seeded alpha, alpha saved beside the merged model."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mixtune.config import MixupConfig
from mixtune.methods.base import Method
from mixtune.mixup.inject import (
    inject_mixup,
    merge_and_unload,
    mixup_layers,
    save_alpha,
)

ALPHA_FILE = "alpha.safetensors"


def reset_all_alpha(model: nn.Module, config: MixupConfig, seed: int, mean: float | None = None, std: float | None = None) -> None:
    generator = torch.Generator().manual_seed(seed)
    for _, layer in mixup_layers(model):
        layer.reset_alpha(config.init_center if mean is None else mean, config.init_std if std is None else std, generator)


@dataclass
class AlphaReset:
    """`reset_alpha` for repeated_search: split k's alpha drawn with seed base_seed + k (picklable, so
    search.workers can send it to worker processes along with the model it acts on)."""

    model: nn.Module
    config: MixupConfig
    base_seed: int

    def __call__(self, k: int) -> None:
        reset_all_alpha(self.model, self.config, self.base_seed + k)


class MixupMethod(Method):
    """Base of mixup-blo, joint and random-alpha: the model is trained with W~ in place of W."""

    def inject(self, model: nn.Module, seed: int, mean: float | None = None, std: float | None = None) -> nn.Module:
        inject_mixup(model, self.config.mixup)
        reset_all_alpha(model, self.config.mixup, seed, mean, std)
        return model

    def hyperparameters(self) -> dict[str, Any]:
        return {**super().hyperparameters(), "mixup": asdict(self.config.mixup)}

    def save(self, model: nn.Module, directory: Path, tokenizer: Any) -> nn.Module:
        """The merged model (W~ folded into plain weights) with the learned alpha beside it as safetensors."""
        directory.mkdir(parents=True, exist_ok=True)
        save_alpha(model, directory / ALPHA_FILE)
        return super().save(merge_and_unload(model), directory, tokenizer)

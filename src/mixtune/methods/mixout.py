"""Mixout (Lee et al. 2020): in training, each weight entry is swapped for its pretrained value with
probability p, and the mix rescaled so its expectation is the current weight; a stochastic pull
towards the pretrained model, in place of dropout's pull towards zero.

    W_mix = (M * W + (1 - M) * W0 - p * W0) / (1 - p),   M ~ Bernoulli(1 - p) entrywise
    E[W_mix] = ((1 - p) W + p W0 - p W0) / (1 - p) = W

computed in the equal form W0 + M * (W - W0) / (1 - p). Evaluation uses W itself. Mixout wraps the
same nn.Linear modules as weight mixup (attention q/k/v/output, FFN, pooler; never the classifier);
biases are not mixed; dropout stays as configured. The export unloads the wrappers: a plain checkpoint.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from mixtune.errors import MixtuneError
from mixtune.methods.base import Method, register
from mixtune.mixup.inject import target_module_names
from mixtune.train import FitContext


@dataclass
class MixoutHyperparameters:
    p: float = 0.1  # probability of swapping an entry for its pretrained value (the authors' code)
    target_modules: list[str] | None = None  # None = weight mixup's default targets for the architecture

    def __post_init__(self) -> None:
        if not 0.0 <= self.p < 1.0:
            raise MixtuneError(f"mixout p must be in [0, 1), got {self.p}: pass e.g. --method-arg p=0.1")


class MixoutLinear(nn.Module):
    """An nn.Linear (kept as `base_layer`, trained as usual) with a frozen copy of its pretrained weight."""

    def __init__(self, base_layer: nn.Linear, p: float) -> None:
        super().__init__()
        self.base_layer = base_layer
        self.p = p
        self.register_buffer("weight0", base_layer.weight.detach().clone(), persistent=False)

    def mixed_weight(self) -> torch.Tensor:
        weight = self.base_layer.weight
        if not self.training or self.p == 0.0:
            return weight
        keep = torch.empty_like(weight).bernoulli_(1.0 - self.p)
        return self.weight0 + keep * (weight - self.weight0) / (1.0 - self.p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.mixed_weight(), self.base_layer.bias)


@register
class Mixout(Method):
    """Mixout with p = 0.1; defaults lr 2e-5, 3 epochs (the released finetuning settings)."""

    name = "mixout"
    Hyperparameters = MixoutHyperparameters

    def prepare(self, model: nn.Module, ctx: FitContext) -> nn.Module:
        names = target_module_names(model, self.hp.target_modules)
        if not names:
            raise MixtuneError(
                f"no nn.Linear module matches mixout target_modules {self.hp.target_modules or 'the defaults'}: "
                "pass --method-arg target_modules=NAME,NAME with names from model.named_modules()"
            )
        for name in names:
            model.set_submodule(name, MixoutLinear(model.get_submodule(name), self.hp.p))
        return model

    def save(self, model: nn.Module, directory: Path, tokenizer: Any) -> nn.Module:
        """Unwrap every MixoutLinear back to its nn.Linear (holding W) and save a plain checkpoint."""
        for name, module in list(model.named_modules()):
            if isinstance(module, MixoutLinear):
                model.set_submodule(name, module.base_layer)
        return super().save(model, directory, tokenizer)

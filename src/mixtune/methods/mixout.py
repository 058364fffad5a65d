"""Mixout (Lee et al. 2020, github.com/bloodwass/mixout): in training, weights are swapped for their
pretrained values with probability p, and the mix rescaled so its expectation is the current weight;
a stochastic pull towards the pretrained model, in place of dropout's pull towards zero.

    W_mix = (M * W + (1 - M) * W0 - p * W0) / (1 - p),   M ~ Bernoulli(1 - p)
    E[W_mix] = ((1 - p) W + p W0 - p W0) / (1 - p) = W

computed in the equal form W0 + M * (W - W0) / (1 - p). Evaluation uses W itself; biases are not mixed.

mask = "neuron" (default, as published): one draw per input neuron, shared by every output row (M has
shape (1, in_features), broadcast); EVERY nn.Linear is wrapped, the classifier included (its
"pretrained" value is its initial value), and every dropout is set to 0.
mask = "entry" (this package's earlier variant): one draw per weight entry, on weight mixup's targets
(attention q/k/v/output, FFN, pooler; never the classifier), dropout as configured. A per-entry mask
averages out and barely regularises (docs/method.md section 8).
The export unloads the wrappers: a plain checkpoint.
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
from mixtune.methods.dps import disable_dropout
from mixtune.mixup.inject import target_module_names
from mixtune.train import FitContext

MASKS = ("neuron", "entry")


@dataclass
class MixoutHyperparameters:
    p: float = 0.1  # probability of swapping a weight for its pretrained value (the authors' code)
    mask: str = "neuron"  # "neuron": one draw per input neuron, as published; "entry": one per weight entry
    target_modules: list[str] | None = None  # None = every nn.Linear (neuron) or weight mixup's defaults (entry)

    def __post_init__(self) -> None:
        if not 0.0 <= self.p < 1.0:
            raise MixtuneError(f"mixout p must be in [0, 1), got {self.p}: pass e.g. --method-arg p=0.1")
        if self.mask not in MASKS:
            raise MixtuneError(f"mixout mask must be neuron or entry, got {self.mask!r}: pass --method-arg mask=neuron")


class MixoutLinear(nn.Module):
    """An nn.Linear (kept as `base_layer`, trained as usual) with a frozen copy of its pretrained weight."""

    def __init__(self, base_layer: nn.Linear, p: float, mask: str = "neuron") -> None:
        super().__init__()
        self.base_layer = base_layer
        self.p = p
        self.mask = mask
        self.register_buffer("weight0", base_layer.weight.detach().clone(), persistent=False)

    def mixed_weight(self) -> torch.Tensor:
        weight = self.base_layer.weight
        if not self.training or self.p == 0.0:
            return weight
        shape = (1, weight.shape[1]) if self.mask == "neuron" else weight.shape
        keep = weight.new_empty(shape).bernoulli_(1.0 - self.p)
        return self.weight0 + keep * (weight - self.weight0) / (1.0 - self.p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.mixed_weight(), self.base_layer.bias)


@register
class Mixout(Method):
    """Mixout with p = 0.1, per-neuron mask; defaults lr 2e-5 (the released finetuning lr), 10 epochs."""

    name = "mixout"
    Hyperparameters = MixoutHyperparameters

    def prepare(self, model: nn.Module, ctx: FitContext) -> nn.Module:
        if self.hp.mask == "neuron":
            disable_dropout(model)
        names = self.target_names(model)
        if not names:
            raise MixtuneError(
                f"no nn.Linear module matches mixout target_modules {self.hp.target_modules or 'the defaults'}: "
                "pass --method-arg target_modules=NAME,NAME with names from model.named_modules()"
            )
        for name in names:
            model.set_submodule(name, MixoutLinear(model.get_submodule(name), self.hp.p, self.hp.mask))
        return model

    def target_names(self, model: nn.Module) -> list[str]:
        """The given targets; else every nn.Linear (neuron, as published) or weight mixup's defaults (entry)."""
        if self.hp.target_modules is None and self.hp.mask == "neuron":
            return target_module_names(model, ".*")
        return target_module_names(model, self.hp.target_modules)

    def save(self, model: nn.Module, directory: Path, tokenizer: Any) -> nn.Module:
        """Unwrap every MixoutLinear back to its nn.Linear (holding W) and save a plain checkpoint."""
        for name, module in list(model.named_modules()):
            if isinstance(module, MixoutLinear):
                model.set_submodule(name, module.base_layer)
        return super().save(model, directory, tokenizer)

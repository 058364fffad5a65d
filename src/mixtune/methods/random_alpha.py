"""Ablation: alpha drawn at random (N(mean, sigma), clamped) and kept fixed; finetune phase only."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from mixtune.errors import MixtuneError
from mixtune.methods.base import register
from mixtune.methods.mixup_common import MixupMethod
from mixtune.mixup.inject import set_alpha_trainable
from mixtune.train import FitContext


@dataclass
class RandomAlphaHyperparameters:
    mean: float = 1.0  # the released init's mean; only sigma varies in the paper's ablation
    sigma: float = 0.1


@register
class RandomAlpha(MixupMethod):
    name = "random-alpha"
    Hyperparameters = RandomAlphaHyperparameters

    def prepare(self, model: nn.Module, ctx: FitContext) -> nn.Module:
        if self.config.mixup.resolved().form == "share" and not 0.0 < self.hp.mean < 1.0:
            raise MixtuneError(
                f"random-alpha with mixup.form share draws a pretrained share, in (0, 1); mean is {self.hp.mean}: "
                "pass e.g. --method-arg mean=0.5"
            )
        self.inject(model, ctx.seed, mean=self.hp.mean, std=self.hp.sigma)
        set_alpha_trainable(model, False)
        return model

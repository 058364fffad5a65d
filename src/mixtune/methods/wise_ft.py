"""WiSE-FT (Wortsman et al. 2022): after finetuning, every encoder weight becomes (1 - a) W0 + a W.

One scalar a, chosen on the run's dev split from a grid: the training-free, scalar form of weight mixup,
and so the nearest cheap rival of mixup-blo's learned, per-weight mix. The task head is new (it has no
pretrained value to return to), so it keeps its finetuned weights. The finetune is vanilla's.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from mixtune.errors import MixtuneError
from mixtune.heads import is_head_parameter
from mixtune.methods.base import Method, register
from mixtune.train import FitContext


@dataclass
class WiseFTHyperparameters:
    mixing: list[float] = field(default_factory=lambda: [round(0.1 * i, 1) for i in range(11)])  # a: 0 = pretrained

    def __post_init__(self) -> None:
        if not self.mixing or not all(0.0 <= a <= 1.0 for a in self.mixing):
            raise MixtuneError("wise-ft mixing values must lie in [0, 1]: pass e.g. --method-arg mixing=0.5,0.75,1")


def encoder_state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters() if not is_head_parameter(n)}


@torch.no_grad()
def interpolate(model: nn.Module, start: dict[str, torch.Tensor], end: dict[str, torch.Tensor], a: float) -> None:
    """Every encoder parameter to (1 - a) * start + a * end."""
    for name, param in model.named_parameters():
        if name in start:
            param.copy_(torch.lerp(start[name], end[name], a))


@register
class WiseFT(Method):
    name = "wise-ft"
    chooses_on_dev = True
    Hyperparameters = WiseFTHyperparameters

    def fit(self, model: nn.Module, ctx: FitContext) -> nn.Module:
        pretrained = encoder_state(model)
        model = super().fit(model, ctx)
        finetuned = encoder_state(model)
        scores: dict[float, float] = {}
        for a in self.hp.mixing:
            interpolate(model, pretrained, finetuned, a)
            scores[a] = ctx.evaluate_dev(model) if ctx.evaluate_dev else 0.0
        chosen = max(self.hp.mixing, key=lambda a: (scores[a], a))  # ties: nearer the finetuned weights
        interpolate(model, pretrained, finetuned, chosen)
        ctx.log["wise_ft"] = {"chosen": chosen, "dev_scores": scores}
        return model

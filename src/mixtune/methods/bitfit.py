"""BitFit (Ben Zaken et al. 2022): train only the bias terms of the encoder, and the task head.

About 0.1% of the parameters move, so it needs a much larger learning rate than full finetuning
(the paper: 1e-4 to 1e-3 on BERT); default 1e-3. The export is an ordinary checkpoint.
"""

from __future__ import annotations

from torch import nn

from mixtune.heads import is_head_parameter
from mixtune.methods.base import Method, register
from mixtune.train import FitContext


def is_bias(name: str) -> bool:
    return name.endswith(".bias")


@register
class BitFit(Method):
    name = "bitfit"
    default_lr = 1e-3
    full_finetuning = False

    def prepare(self, model: nn.Module, ctx: FitContext) -> nn.Module:
        for name, param in model.named_parameters():
            param.requires_grad_(is_bias(name) or is_head_parameter(name))
        return model

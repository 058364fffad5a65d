"""LP-FT (Kumar et al. 2022): fit the head as a linear probe on frozen features first, then finetune everything.

Starting the finetune from a good head, not a random one, keeps the early large gradients of a random
head from distorting the pretrained features. The probe is mixtune.methods.linear_probe's (regularisation
chosen on dev); the finetune is the shared loop with vanilla's defaults.
"""

from __future__ import annotations

from torch import nn

from mixtune.methods.base import Method, register
from mixtune.probe import DEFAULT_GRID, probe_phase
from mixtune.train import FitContext


@register
class LPFT(Method):
    name = "lp-ft"
    chooses_on_dev = True

    def fit(self, model: nn.Module, ctx: FitContext) -> nn.Module:
        return super().fit(probe_phase(model, ctx, DEFAULT_GRID), ctx)

"""Control: vanilla with mixup-blo's whole step budget (issue #12).

mixup-blo makes K x (search inner steps) optimiser steps on the weights during its search, then its finetune
steps. vanilla-long is vanilla (the shared loop, the same lr, schedule and best-dev selection) run for that
many steps in one go, so a gain of mixup-blo over it is not just more training. The count comes from this
run's own config (search.splits, search.split_ratio, search.epochs, train.batch_size, the finetune epochs) and
is recorded in log.vanilla_long; alpha's own steps (search / unroll_steps per split) are recorded beside it
but not counted: they move alpha only.
"""

from __future__ import annotations

import math
from dataclasses import asdict
from typing import Any

from torch import nn

from mixtune.config import RunConfig
from mixtune.data.sampling import first_part
from mixtune.methods.base import Method, register
from mixtune.optim import steps_for
from mixtune.train import FitContext


def mixup_blo_steps(config: RunConfig, examples: int, finetune_epochs: float) -> dict[str, int]:
    """The weight-optimiser steps mixup-blo makes on `examples` training examples under `config`."""
    search, batch_size = config.search.resolved(config.mixup.form), config.train.batch_size
    per_split = steps_for(search.epochs, math.ceil(first_part(examples, search.split_ratio) / batch_size))
    finetune = steps_for(finetune_epochs, math.ceil(examples / batch_size))
    return {
        "steps": search.splits * per_split + finetune,
        "search_steps": search.splits * per_split,
        "finetune_steps": finetune,
        "alpha_steps": search.splits * -(-per_split // search.unroll_steps),
    }


@register
class VanillaLong(Method):
    name = "vanilla-long"

    def hyperparameters(self) -> dict[str, Any]:
        return {**super().hyperparameters(), "search": asdict(self.config.search)}

    def fit(self, model: nn.Module, ctx: FitContext) -> nn.Module:
        model = self.prepare(model, ctx)
        budget = mixup_blo_steps(self.config, len(ctx.features), self.epochs)
        ctx.log["vanilla_long"] = budget
        return self.finetune(model, ctx, total_steps=budget["steps"])

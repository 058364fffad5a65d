"""Ablation: W and alpha trained together on all of D in one loop (no bi-level split)."""

from __future__ import annotations

from torch import nn

from mixtune.methods.base import register
from mixtune.methods.mixup_common import MixupMethod
from mixtune.mixup.inject import alpha_parameters, clamp_alpha, task_parameters
from mixtune.train import FitContext


@register
class Joint(MixupMethod):
    name = "joint"

    def prepare(self, model: nn.Module, ctx: FitContext) -> nn.Module:
        return self.inject(model, ctx.seed)

    def parameter_groups(self, model: nn.Module, weight_decay: float, lr: float) -> list[dict]:
        """Task weights as usual (per-layer lrs under train.layer_decay); alpha with the search phase's alpha lr
        and weight decay, never layer-decayed: alpha has its own lr scale, not a layer's."""
        search = self.config.search.resolved(self.config.mixup.form)
        alpha_group = {"params": alpha_parameters(model), "lr": search.alpha_lr, "weight_decay": search.alpha_weight_decay}
        return self.task_groups(model, task_parameters(model), weight_decay, lr) + [alpha_group]

    def after_optimizer_step(self, model: nn.Module, step: int) -> None:
        clamp_alpha(model)

"""The method: attention-guided weight mixup learned by bi-level optimisation (METHOD.md sections 1-3).

Search phase: K bi-level searches on random 80/20 splits, averaged. Finetune phase: alpha frozen at the
average, the task weights trained on all n examples with the shared loop.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from torch import nn

from mixtune.data.batching import make_loader
from mixtune.methods.base import register
from mixtune.methods.mixup_common import MixupMethod, reset_all_alpha
from mixtune.mixup.inject import set_alpha_trainable
from mixtune.mixup.repeated import repeated_search
from mixtune.train import FitContext, train_loop


@register
class MixupBLO(MixupMethod):
    name = "mixup-blo"

    def hyperparameters(self) -> dict[str, Any]:
        return {**super().hyperparameters(), "search": asdict(self.config.search)}

    def fit(self, model: nn.Module, ctx: FitContext) -> nn.Module:
        cfg = self.config
        self.inject(model, ctx.seed)

        def loader(features: list[dict], seed: int):
            return make_loader(features, ctx.tokenizer, cfg.train.batch_size, True, seed)

        search = repeated_search(
            model,
            ctx.features,
            loader,
            cfg.search,
            ctx.seed,
            reset_alpha=lambda k: reset_all_alpha(model, cfg.mixup, ctx.seed * 1000 + k),
            progress=ctx.progress,
        )
        ctx.phase_times["search"] = sum(s["seconds"] for s in search["splits"])
        ctx.log["search"] = search
        set_alpha_trainable(model, False)
        result = train_loop(model, ctx.loader(), self, self.lr, self.epochs, ctx, desc="mixup-blo finetune")
        ctx.phase_times["finetune"] = result["seconds"]
        ctx.log["finetune"] = result
        return model

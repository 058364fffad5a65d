"""Control: mixup-blo's warm start without the mixup (issue #12).

mixup-blo's finetune starts from the average of its K search models, not from the pretrained weights. This
method runs exactly that warm start with no mixup: the same K random D_tr / D_val splits (repeated_search,
same split seeds), on each the same inner optimiser steps on the same D_tr batches (bilevel.inner_optimizer:
AdamW at search.inner_lr, its schedule, clipping and weight decay, search.epochs passes), no alpha and no
outer steps, every parameter averaged over the splits as search.average = all does; then the same finetune
phase (the shared loop, the same selection and averaging). A gain of mixup-blo over this row is what the mixup adds.
It takes mixup-blo's search.average greedy (a greedy soup of the K models) and method arg finetune_mask_p too.
"""

from __future__ import annotations

import time
from dataclasses import asdict
from typing import Any

from torch import nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from mixtune.config import SearchConfig
from mixtune.device import active, worker_devices
from mixtune.errors import MixtuneError
from mixtune.methods.base import register
from mixtune.methods.mixup_common import FinetuneMasked
from mixtune.mixup.bilevel import inner_optimizer, inner_step
from mixtune.mixup.repeated import SplitLoaders, keep_alpha, repeated_search, search_seconds
from mixtune.optim import steps_for
from mixtune.train import FitContext, cycle


def inner_steps_only(
    model: nn.Module, train_loader: DataLoader, val_loader: DataLoader, config: SearchConfig, desc: str, progress: bool
) -> dict[str, Any]:
    """One split of the search without its upper level: the inner optimiser's steps on D_tr, nothing on D_val."""
    named_weights = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    weights = [p for _, p in named_weights]
    total = steps_for(config.epochs, len(train_loader))
    optimizer, schedule = inner_optimizer(named_weights, config, total)
    model.train()
    started = time.perf_counter()
    losses = []
    with tqdm(total=total, desc=desc, disable=not progress, leave=False) as bar:
        for _, batch in zip(range(total), cycle(train_loader)):
            losses.append(inner_step(model, batch, weights, optimizer, config.inner_max_grad_norm))
            schedule.step()
            bar.update(1)
    return {
        "inner_steps": total,
        "alpha_steps": 0,
        "final_inner_loss": sum(losses[-10:]) / len(losses[-10:]),
        "seconds": time.perf_counter() - started,
    }


@register
class SoupStart(FinetuneMasked):
    name = "soup-start"
    default_lr = 2e-4  # the masked finetune's rate (issue 32's pilot; the paper's unmasked finetune ran 2e-5)

    def hyperparameters(self) -> dict[str, Any]:
        return {**super().hyperparameters(), "search": asdict(self.config.search)}

    def fit(self, model: nn.Module, ctx: FitContext) -> nn.Module:
        cfg = self.config
        if cfg.search.average == "alpha":
            raise MixtuneError(
                "soup-start averages the K search models (search.average: all or greedy); with search.average alpha its "
                "finetune would start from the pretrained weights, which is vanilla: set search.average to all or greedy"
            )
        model = self.prepare(model, ctx)
        runtime = active()
        search_config = cfg.search.resolved(cfg.mixup.form)  # the inner steps of the search of the config's form
        search = repeated_search(
            model, ctx.features, SplitLoaders(ctx.tokenizer, cfg.train.batch_size), search_config, ctx.seed,
            reset_alpha=keep_alpha, progress=ctx.progress, search_split=inner_steps_only,
            devices=None if runtime is None else worker_devices(runtime, cfg.search.workers),
        )
        ctx.phase_times["search"] = search_seconds(search)
        ctx.log["search"] = search
        return self.finetune(model, ctx)

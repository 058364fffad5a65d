"""The method: attention-guided weight mixup learned by bi-level optimisation (docs/method.md sections 1-3).

Search phase: K bi-level searches on random 80/20 splits, averaged. Finetune phase: alpha frozen at the
average, the task weights trained on all n examples with the shared loop (method arg finetune_mask_p: with
CHILD-TUNING_F's gradient mask, mixup_common.FinetuneMasked).
With a search cache (FitContext.search_cache), a search already run for the same model, data, seed, mixup
and search settings is loaded instead of run again: finetune variants (lr, epochs) share one search.
"""

from __future__ import annotations

import time

from dataclasses import asdict
from typing import Any

from torch import nn

from mixtune.device import active, model_device, set_rng_state, worker_devices
from mixtune.methods.base import register
from mixtune.methods.mixup_common import AlphaReset, FinetuneMasked, MixupMethod
from mixtune.mixup.diagnostics import summarize_search
from mixtune.mixup.inject import set_alpha_trainable
from mixtune.mixup.repeated import SplitLoaders, repeated_search, search_seconds
from mixtune.mixup.search_cache import SearchCache, search_key
from mixtune.train import FitContext


@register
class MixupBLO(FinetuneMasked, MixupMethod):
    name = "mixup-blo"
    default_lr = 2e-4  # the masked finetune's rate (issue 32's pilot; the paper's unmasked finetune ran 2e-5)

    def hyperparameters(self) -> dict[str, Any]:
        return {**super().hyperparameters(), "search": asdict(self.config.search)}

    def fit(self, model: nn.Module, ctx: FitContext) -> nn.Module:
        self.inject(model, ctx.seed)
        if ctx.search_cache is None:
            self.search(model, ctx)
        else:
            self.cached_search(model, ctx, SearchCache(ctx.search_cache))
        diagnostics = summarize_search(ctx.log["search"])
        if diagnostics is not None:
            ctx.log["alpha_diagnostics"] = diagnostics  # did alpha learn? (mixtune.mixup.diagnostics)
        set_alpha_trainable(model, False)
        return self.finetune(model, ctx)

    def search(self, model: nn.Module, ctx: FitContext) -> dict[str, Any]:
        """The repeated bi-level search; leaves the averaged state in `model`."""
        cfg = self.config
        runtime = active()
        search = repeated_search(
            model,
            ctx.features,
            SplitLoaders(ctx.tokenizer, cfg.train.batch_size),
            cfg.search,
            ctx.seed,
            reset_alpha=AlphaReset(model, cfg.mixup, ctx.seed * 1000),
            progress=ctx.progress,
            devices=None if runtime is None else worker_devices(runtime, cfg.search.workers),
        )
        ctx.phase_times["search"] = search_seconds(search)
        ctx.log["search"] = search
        return search

    def cached_search(self, model: nn.Module, ctx: FitContext, cache: SearchCache) -> None:
        """The search from the cache if there, else run and stored; the log says which (cached / cache_key)."""
        key, inputs = search_key(model, ctx.features, self.config, ctx.seed)
        with cache.locked(key):
            hit = cache.load(key)
            if hit is None:
                cpu_started = time.process_time()
                search = self.search(model, ctx)
                cache.save(key, model, inputs, search, ctx.phase_times["search"], time.process_time() - cpu_started)
                ctx.log["search"] = {"cache_key": key, **search}
                return
        model.load_state_dict(hit.state)
        # the finetune then draws what it would have after searching (on a GPU, from its generator too)
        set_rng_state({"cpu": hit.rng_state, "cuda": hit.cuda_rng_state}, model_device(model))
        ctx.phase_times["search"] = hit.info["seconds"]  # the search's real cost, not the load's
        ctx.cached_search_cpu_s = hit.info.get("cpu_seconds")  # None in entries from before it was stored
        ctx.log["search"] = {"cached": key, "peak_memory_mb": hit.info["peak_memory_mb"], **hit.info["log"]}
        ctx.search_cached = True

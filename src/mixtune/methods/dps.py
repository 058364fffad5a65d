"""DPS dense (Zhang et al. 2022): alternate full updates with updates of an adaptively chosen subnetwork.

Training runs in cyclic stages of u = max(1, round(update_ratio * total_steps)) steps: I, II, I, II, ...
Stage I updates everything and accumulates each weight matrix's squared gradients; stage II updates only
the top (1 - p) entries of each matrix by that score and leaves the rest exactly where they were.
p is the fraction EXCLUDED from stage II (0.3 by default), unlike CHILD-TUNING's p (the fraction kept).
The matrices are the 2-D weights of every nn.Linear (attention, FFN, pooler, classifier); other
parameters (embeddings, biases, LayerNorms) update normally in both stages. Dropout is switched off.

Under fp16 the loop leaves the hooks out of a step the gradient scaler skips (an overflow): a stage II's
mask is chosen on its first step that runs, whichever that is, so no step of a stage II uses another
stage's mask; a stage II whose steps are all skipped chooses none, and its stage I score carries over.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.data import DataLoader

from mixtune.config import RunConfig
from mixtune.errors import MixtuneError
from mixtune.methods.base import Method, register
from mixtune.train import FitContext


@dataclass
class DPSHyperparameters:
    p: float = 0.3  # fraction of each matrix EXCLUDED from the stage-II update
    update_ratio: float = 0.05  # stage length as a fraction of all steps

    def __post_init__(self) -> None:
        if not 0.0 <= self.p < 1.0:
            raise MixtuneError(f"dps p is the fraction excluded, in [0, 1), got {self.p}: pass e.g. --method-arg p=0.3")
        if not 0.0 < self.update_ratio <= 1.0:
            raise MixtuneError(
                f"dps update_ratio must be in (0, 1], got {self.update_ratio}: pass e.g. --method-arg update_ratio=0.05"
            )


def linear_weights(model: nn.Module) -> list[tuple[str, nn.Parameter]]:
    return [
        (f"{name}.weight", module.weight)
        for name, module in model.named_modules()
        if isinstance(module, nn.Linear) and module.weight.requires_grad
    ]


def top_entries(score: torch.Tensor, keep: float) -> torch.Tensor:
    """A mask with exactly round(keep * numel) True entries, at the highest scores."""
    mask = torch.zeros(score.numel(), dtype=torch.bool, device=score.device)
    mask[score.flatten().topk(round(keep * score.numel())).indices] = True
    return mask.view_as(score)


def disable_dropout(model: nn.Module) -> None:
    """DPS trains without dropout: every Dropout module and the config's dropout probabilities to 0."""
    for module in model.modules():
        if isinstance(module, nn.Dropout):
            module.p = 0.0
    config = getattr(model, "config", None)
    for key, value in list(vars(config).items() if config is not None else []):
        if "dropout" in key and isinstance(value, float):
            setattr(config, key, 0.0)


@register
class DPS(Method):
    """DPS dense; defaults lr 2e-5 (the released finetuning lr), 10 epochs, p 0.3, update_ratio 0.05.

    At n = 300 the released code's stage length rounds to 0 and it divides by it (docs/method.md section 6); u >= 1 here.
    Masking stage II's gradient alone would still let AdamW's momentum and weight decay move excluded
    entries, so they are also restored to their values from before the step.
    """

    name = "dps"
    Hyperparameters = DPSHyperparameters

    def __init__(self, config: RunConfig) -> None:
        super().__init__(config)
        self.stage_length = 1
        self.scores: dict[str, torch.Tensor] = {}
        self.masks: dict[str, torch.Tensor] = {}
        self.masks_stage: int | None = None  # the stage (step // stage_length) the masks were chosen for
        self.before_step: dict[str, torch.Tensor] = {}

    def prepare(self, model: nn.Module, ctx: FitContext) -> nn.Module:
        disable_dropout(model)
        return model

    def on_train_start(self, model: nn.Module, loader: DataLoader, total_steps: int) -> None:
        self.stage_length = max(1, round(self.hp.update_ratio * total_steps))
        self.scores = {name: torch.zeros_like(w) for name, w in linear_weights(model)}
        self.masks, self.masks_stage = {}, None

    def stage(self, step: int) -> int:
        return 1 + (step // self.stage_length) % 2

    def before_optimizer_step(self, model: nn.Module, step: int) -> None:
        weights = [(name, w) for name, w in linear_weights(model) if w.grad is not None]
        if self.stage(step) == 1:
            for name, w in weights:
                self.scores[name] += w.grad.detach() ** 2
            return
        if self.masks_stage != step // self.stage_length:  # this stage II's first step that runs
            self.choose_masks(step // self.stage_length)
        self.before_step = {}
        for name, w in weights:
            w.grad.mul_(self.masks[name])
            self.before_step[name] = w.detach().clone()

    def choose_masks(self, stage_index: int) -> None:
        """Stage II's subnetwork from the score of the stage I before it; the score starts afresh."""
        self.masks = {name: top_entries(score, 1.0 - self.hp.p) for name, score in self.scores.items()}
        self.masks_stage = stage_index
        for score in self.scores.values():
            score.zero_()

    @torch.no_grad()
    def after_optimizer_step(self, model: nn.Module, step: int) -> None:
        """In stage II, put the excluded entries back: momentum and weight decay moved them too."""
        weights = dict(linear_weights(model))
        for name, saved in self.before_step.items():
            weights[name].copy_(torch.where(self.masks[name], weights[name], saved))
        self.before_step = {}

"""What the mixup methods share: injection with a seeded alpha, alpha saved beside the merged model, the check that
alpha weight decay pulls toward the pretrained weights; and the finetune mask that mixup-blo and soup-start share."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mixtune.config import MixupConfig, RunConfig
from mixtune.errors import MixtuneError
from mixtune.methods.base import Method
from mixtune.methods.child_tuning import RandomChildMask
from mixtune.mixup.inject import (
    inject_mixup,
    merge_and_unload,
    mixup_layers,
    save_alpha,
)

ALPHA_FILE = "alpha.safetensors"


def reset_all_alpha(model: nn.Module, config: MixupConfig, seed: int, mean: float | None = None, std: float | None = None) -> None:
    generator = torch.Generator().manual_seed(seed)
    for _, layer in mixup_layers(model):
        layer.reset_alpha(config.init_center if mean is None else mean, config.init_std if std is None else std, generator)


@dataclass
class AlphaReset:
    """`reset_alpha` for repeated_search: split k's alpha drawn with seed base_seed + k (picklable, so
    search.workers can send it to worker processes along with the model it acts on)."""

    model: nn.Module
    config: MixupConfig
    base_seed: int

    def __call__(self, k: int) -> None:
        reset_all_alpha(self.model, self.config, self.base_seed + k)


def zero_alpha_is_pretrained(config: MixupConfig) -> bool:
    """Whether alpha = 0 gives W~ = W0, so that weight decay on alpha (toward 0) pulls the mix toward the pretrained
    weights, as the paper means it: the convex form at any granularity, the released form with one factor (row,
    module, full rank or rank 1). Not the share form (theta = 0 is a half share) nor the released form at rank r > 1
    (its W0 coefficient (1 - A) @ (1 - B) goes to r, not 1)."""
    resolved = config.resolved()
    if resolved.form == "convex":
        return True
    return resolved.form == "released" and (resolved.granularity != "rank" or resolved.rank in (None, 1))


def check_alpha_weight_decay(config: RunConfig) -> None:
    """search.alpha_weight_decay > 0 only where it decays toward the pretrained weights (zero_alpha_is_pretrained)."""
    if config.search.alpha_weight_decay > 0 and not zero_alpha_is_pretrained(config.mixup):
        mixup = config.mixup.resolved()
        raise MixtuneError(
            f"search.alpha_weight_decay pulls alpha toward 0, which for mixup form {mixup.form} ({mixup.granularity}, "
            f"rank {mixup.rank}) is not the pretrained weights: set it to 0, or use form convex or a rank-1 released mixup"
        )


@dataclass
class FinetuneMaskHyperparameters:
    # CHILD-TUNING_F's gradient mask in the finetune phase: the fraction of gradient entries kept; None = off.
    # 0.3 since issue 32's pilot (benchmarks/pilot_promise.yaml: the masked finetune at lr 2e-4 ranked first).
    finetune_mask_p: float | None = 0.3

    def __post_init__(self) -> None:
        if self.finetune_mask_p is not None and not 0.0 < self.finetune_mask_p <= 1.0:
            raise MixtuneError(
                f"finetune_mask_p is the fraction of gradient entries kept, in (0, 1], got {self.finetune_mask_p}: "
                "pass e.g. --method-arg finetune_mask_p=0.3, or null for no mask"
            )


class FinetuneMasked(Method):
    """A method whose finetune phase may mask gradients as CHILD-TUNING_F does (method arg finetune_mask_p).

    The paper frames the mixup as a continuous relaxation of CHILD-TUNING's subnetwork choice; this runs the discrete
    choice on top of it. The mask acts only in the shared loop (the finetune), never in the search.
    """

    Hyperparameters = FinetuneMaskHyperparameters

    def __init__(self, config: RunConfig) -> None:
        super().__init__(config)
        p = self.hp.finetune_mask_p
        self.finetune_mask = None if p is None else RandomChildMask(p, config.seed)

    def before_optimizer_step(self, model: nn.Module, step: int) -> None:
        if self.finetune_mask is not None:
            self.finetune_mask.apply(model.parameters())


class MixupMethod(Method):
    """Base of mixup-blo, joint and random-alpha: the model is trained with W~ in place of W."""

    def inject(self, model: nn.Module, seed: int, mean: float | None = None, std: float | None = None) -> nn.Module:
        check_alpha_weight_decay(self.config)
        inject_mixup(model, self.config.mixup)
        reset_all_alpha(model, self.config.mixup, seed, mean, std)
        return model

    def hyperparameters(self) -> dict[str, Any]:
        return {**super().hyperparameters(), "mixup": asdict(self.config.mixup)}

    def save(self, model: nn.Module, directory: Path, tokenizer: Any) -> nn.Module:
        """The merged model (W~ folded into plain weights) with the learned alpha beside it as safetensors."""
        directory.mkdir(parents=True, exist_ok=True)
        save_alpha(model, directory / ALPHA_FILE)
        return super().save(merge_and_unload(model), directory, tokenizer)

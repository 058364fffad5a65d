"""Linear probe: the encoder stays frozen; a linear model on its pooled features, fitted with scikit-learn.

The fit is mixtune.probe's: logistic regression or ridge on the standardised features the classifier layer
reads, the regularisation chosen on dev, folded into the classifier layer, so the export is an ordinary
checkpoint. Seconds per run: one forward pass over the training and dev examples.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from torch import nn

from mixtune.errors import MixtuneError
from mixtune.methods.base import Method, register
from mixtune.probe import DEFAULT_GRID, probe_phase
from mixtune.train import FitContext


@dataclass
class LinearProbeHyperparameters:
    # Regularisation strengths tried on dev: logistic regression's inverse strength C, ridge's 1 / alpha.
    grid: list[float] = field(default_factory=lambda: list(DEFAULT_GRID))

    def __post_init__(self) -> None:
        if not self.grid or min(self.grid) <= 0:
            raise MixtuneError("linear-probe grid needs positive values: pass e.g. --method-arg grid=0.01,0.1,1,10")


@register
class LinearProbe(Method):
    """A linear model on the frozen encoder's pooled features (no gradient steps)."""

    name = "linear-probe"
    chooses_on_dev = True
    Hyperparameters = LinearProbeHyperparameters
    full_finetuning = False
    pair_encoding = "separate"  # sentence-embedding features of each sentence, as the backbone was trained

    def hyperparameters(self) -> dict[str, Any]:
        return {"grid": self.hp.grid}

    def fit(self, model: nn.Module, ctx: FitContext) -> nn.Module:
        return probe_phase(model, ctx, self.hp.grid)

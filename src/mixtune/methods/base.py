"""The method plug-in interface and registry.

A method says which parameters train, what happens to gradients before the optimiser step, what
happens after it, and which phases it runs; the loop itself (mixtune.train.train_loop) is shared.
State a method needs across steps (masks, stages, Fisher information) lives on the method object.
"""

from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, ClassVar

from torch import nn
from torch.utils.data import DataLoader
from transformers import AutoModelForSequenceClassification

from mixtune.config import RunConfig, _coerce, _type_hints
from mixtune.errors import MixtuneError
from mixtune.optim import decay_groups
from mixtune.train import FitContext, train_loop


@dataclass
class NoHyperparameters:
    """A method with no hyperparameters of its own."""


class Method:
    """Plain finetuning of every parameter; subclasses override the hooks they need."""

    name: ClassVar[str] = ""
    Hyperparameters: ClassVar[type] = NoHyperparameters
    default_lr: ClassVar[float] = 2e-5
    default_epochs: ClassVar[float] = 3
    supports_regression: ClassVar[bool] = True

    def __init__(self, config: RunConfig) -> None:
        self.config = config
        self.hp = parse_hyperparameters(self.Hyperparameters, config.method_args, self.name)

    @property
    def lr(self) -> float:
        return self.config.train.lr if self.config.train.lr is not None else self.default_lr

    @property
    def epochs(self) -> float:
        return self.config.train.epochs if self.config.train.epochs is not None else self.default_epochs

    def hyperparameters(self) -> dict[str, Any]:
        """Everything that defines this method's run, for the run record."""
        return {"lr": self.lr, "epochs": self.epochs, **asdict(self.hp)}

    # --- phases -------------------------------------------------------------------------------
    def fit(self, model: nn.Module, ctx: FitContext) -> nn.Module:
        """Train `model` on ctx's examples; the default is one run of the shared loop."""
        model = self.prepare(model, ctx)
        result = train_loop(model, ctx.loader(), self, self.lr, self.epochs, ctx, desc=f"{self.name} finetune")
        ctx.phase_times["finetune"] = result["seconds"]
        ctx.log["finetune"] = result
        return model

    def prepare(self, model: nn.Module, ctx: FitContext) -> nn.Module:
        """Wrap or modify the model before training (inject layers, freeze parameters)."""
        return model

    # --- hooks of the shared loop -------------------------------------------------------------
    def parameter_groups(self, model: nn.Module, weight_decay: float, lr: float) -> list[dict]:
        return decay_groups(model.named_parameters(), weight_decay)

    def on_train_start(self, model: nn.Module, loader: DataLoader, total_steps: int) -> None:
        """Called once before the first step (e.g. to compute a Fisher mask)."""

    def before_optimizer_step(self, model: nn.Module, step: int) -> None:
        """Gradients are populated; change them here (masks, rescaling)."""

    def after_optimizer_step(self, model: nn.Module, step: int) -> None:
        """Parameters are updated; project or record here."""

    # --- export -------------------------------------------------------------------------------
    def save(self, model: nn.Module, directory: Path, tokenizer: Any) -> nn.Module:
        """Write a checkpoint plain transformers can load; returns the model as saved (for checks)."""
        model.save_pretrained(directory)
        tokenizer.save_pretrained(directory)
        return model

    @classmethod
    def load_saved(cls, directory: Path) -> nn.Module:
        return AutoModelForSequenceClassification.from_pretrained(directory)


def parse_hyperparameters(cls: type, values: dict[str, Any], method: str) -> Any:
    """The method's hyperparameter dataclass from --method-arg / method_args, with type checks."""
    names = {f.name for f in dataclasses.fields(cls)}
    hints = _type_hints(cls)
    parsed = {}
    for key, value in (values or {}).items():
        if key not in names:
            valid = ", ".join(sorted(names)) or "none"
            raise MixtuneError(f"method '{method}' has no hyperparameter '{key}': its hyperparameters are {valid}")
        parsed[key] = _coerce(value, hints[key], f"method_args.{key}")
    return cls(**parsed)


METHODS: dict[str, type[Method]] = {}


def register(cls: type[Method]) -> type[Method]:
    METHODS[cls.name] = cls
    return cls


def method_class(name: str) -> type[Method]:
    if name not in METHODS:
        raise MixtuneError(f"unknown method '{name}': choose one of {', '.join(sorted(METHODS))}")
    return METHODS[name]


def make_method(config: RunConfig) -> Method:
    return method_class(config.method)(config)

"""The method plug-in interface and registry.

A method says which parameters train, what happens to gradients before the optimiser step, what
happens after it, and which phases it runs; the loop itself (mixtune.train.train_loop) is shared.
State a method needs across steps (masks, stages, Fisher information) lives on the method object.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, ClassVar

from torch import nn
from torch.utils.data import DataLoader

from mixtune.config import RunConfig, _coerce, _type_hints
from mixtune.errors import MixtuneError
from mixtune.heads import load_exported
from mixtune.layers import layerwise_groups, num_hidden_layers
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
    # 10 epochs: the released 3 epochs (57 steps at n = 300) leave a small model at chance (Mosbach et al. 2021
    # train 20); issue 32's pilot ran them to the last step, the default selection.
    default_epochs: ClassVar[float] = 10
    supports_regression: ClassVar[bool] = True
    # How sentence pairs are encoded unless the config says (mixtune.heads.resolve_pair_encoding): auto = the cosine
    # head for similarity scores on a sentence-embedding backbone, joint otherwise.
    pair_encoding: ClassVar[str] = "auto"
    full_finetuning: ClassVar[bool] = True  # False: train.layer_decay / train.reinit_layers do not apply
    chooses_on_dev: ClassVar[bool] = False  # True: the method picks a setting by dev scores (the run draws dev)

    def __init__(self, config: RunConfig) -> None:
        self.config = config
        self.hp = parse_hyperparameters(self.Hyperparameters, config.method_args, self.name)
        check_full_finetuning(self)

    @property
    def lr(self) -> float:
        return self.config.train.lr if self.config.train.lr is not None else self.default_lr

    @property
    def epochs(self) -> float:
        return self.config.train.epochs if self.config.train.epochs is not None else self.default_epochs

    @property
    def reserved_positions(self) -> int:
        """Input positions the method itself takes (virtual tokens), kept free of text."""
        return 0

    def hyperparameters(self) -> dict[str, Any]:
        """Everything that defines this method's run, for the run record."""
        return {"lr": self.lr, "epochs": self.epochs, **asdict(self.hp)}

    # --- phases -------------------------------------------------------------------------------
    def fit(self, model: nn.Module, ctx: FitContext) -> nn.Module:
        """Train `model` on ctx's examples; the default is one run of the shared loop."""
        return self.finetune(self.prepare(model, ctx), ctx)

    def finetune(self, model: nn.Module, ctx: FitContext, total_steps: int | None = None) -> nn.Module:
        """The finetune phase: one run of the shared loop at the method's lr and epochs, logged as "finetune"."""
        result = train_loop(
            model, ctx.loader(), self, self.lr, self.epochs, ctx, desc=f"{self.name} finetune", total_steps=total_steps
        )
        ctx.phase_times["finetune"] = result["seconds"]
        ctx.log["finetune"] = result
        return model

    def prepare(self, model: nn.Module, ctx: FitContext) -> nn.Module:
        """Wrap or modify the model before training (inject layers, freeze parameters)."""
        return model

    # --- hooks of the shared loop -------------------------------------------------------------
    def parameter_groups(self, model: nn.Module, weight_decay: float, lr: float) -> list[dict]:
        return self.task_groups(model, model.named_parameters(), weight_decay, lr)

    def task_groups(
        self, model: nn.Module, named_params: Iterable[tuple[str, nn.Parameter]], weight_decay: float, lr: float
    ) -> list[dict]:
        """AdamW groups for the task weights: with train.layer_decay, one lr per layer (mixtune.layers)."""
        decay = self.config.train.layer_decay
        if decay is None:
            return decay_groups(named_params, weight_decay)
        return layerwise_groups(named_params, weight_decay, lr, decay, num_hidden_layers(model))

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
        return load_exported(directory)


def check_full_finetuning(method: Method) -> None:
    """Layer-wise lr decay and re-initialisation assume every layer trains: refuse them elsewhere."""
    train = method.config.train
    if not method.full_finetuning and (train.layer_decay is not None or train.reinit_layers):
        raise MixtuneError(
            "train.layer_decay / train.reinit_layers apply to full-finetuning methods; "
            f"method {method.name} does not finetune the whole model: remove them"
        )


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

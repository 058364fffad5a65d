"""Parameter-efficient baselines through peft: LoRA, prefix tuning, prompt tuning.

The pretrained weights stay frozen; peft trains its few added parameters and, with TaskType.SEQ_CLS,
a copy of the new classification head (modules_to_save). These methods train very few parameters,
so they need far higher learning rates than full finetuning. Epochs: vanilla's 3 by default.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from peft import (
    LoraConfig,
    PeftConfig,
    PeftModel,
    PrefixTuningConfig,
    PromptTuningConfig,
    TaskType,
    get_peft_model,
)
from torch import nn
from transformers import AutoConfig

from mixtune.errors import MixtuneError
from mixtune.heads import build_classifier, pair_encoding_of
from mixtune.methods.base import Method, register
from mixtune.train import FitContext

# The attention query/value projections by architecture: BERT/RoBERTa, DistilBERT, most decoders, MPNet.
QUERY_VALUE_NAMES = [("query", "value"), ("q_lin", "v_lin"), ("q_proj", "v_proj"), ("q", "v")]


def query_value_modules(model: nn.Module) -> list[str]:
    """The first pair of QUERY_VALUE_NAMES that names nn.Linear modules of `model`."""
    leaves = {name.rpartition(".")[2] for name, module in model.named_modules() if isinstance(module, nn.Linear)}
    for pair in QUERY_VALUE_NAMES:
        if set(pair) <= leaves:
            return list(pair)
    raise MixtuneError(
        "lora found no attention query/value projections by name: pass --method-arg target_modules=NAME,NAME "
        "with names from model.named_modules()"
    )


@contextmanager
def quiet_peft_deprecation() -> Iterator[None]:
    """peft 0.21 calls a transformers 5 name deprecated since: a warning for peft, not for our users."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="`is_gradient_checkpointing` is deprecated")
        yield


class PeftMethod(Method):
    """Wraps the model with get_peft_model; subclasses give the peft config."""

    full_finetuning = False

    def peft_config(self, model: nn.Module) -> PeftConfig:
        raise NotImplementedError

    def prepare(self, model: nn.Module, ctx: FitContext) -> nn.Module:
        with quiet_peft_deprecation():
            return get_peft_model(model, self.peft_config(model))


@dataclass
class LoraHyperparameters:
    r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.1
    target_modules: list[str] | None = None  # None = the attention query and value projections


@register
class Lora(PeftMethod):
    """LoRA r = 8, alpha = 16, dropout 0.1 on query/value; lr 5e-4 (the LoRA paper's GLUE settings: 4e-4 to 5e-4).

    The export merges the update into the weights (merge_and_unload): a plain checkpoint.
    """

    name = "lora"
    Hyperparameters = LoraHyperparameters
    default_lr = 5e-4

    def peft_config(self, model: nn.Module) -> PeftConfig:
        return LoraConfig(
            task_type=TaskType.SEQ_CLS,
            r=self.hp.r,
            lora_alpha=self.hp.lora_alpha,
            lora_dropout=self.hp.lora_dropout,
            target_modules=self.hp.target_modules or query_value_modules(model),
        )

    def save(self, model: nn.Module, directory: Path, tokenizer: Any) -> nn.Module:
        return super().save(model.merge_and_unload(), directory, tokenizer)


@dataclass
class VirtualTokenHyperparameters:
    num_virtual_tokens: int = 20


class VirtualTokenMethod(PeftMethod):
    """Prefix and prompt tuning change the forward pass itself, so they export the peft adapter.

    The folder holds the adapter (it records the base model's path, which must still exist to reload),
    the task's model config (labels) and the tokenizer.
    """

    Hyperparameters = VirtualTokenHyperparameters
    pair_encoding = "joint"  # the virtual tokens go in front of one joint input

    @property
    def reserved_positions(self) -> int:
        return self.hp.num_virtual_tokens

    def prepare(self, model: nn.Module, ctx: FitContext) -> nn.Module:
        if pair_encoding_of(model) != "joint":
            raise MixtuneError(f"{self.name} adds virtual tokens to one joint input: use --pair-encoding joint")
        return super().prepare(model, ctx)

    def save(self, model: nn.Module, directory: Path, tokenizer: Any) -> nn.Module:
        model.save_pretrained(directory)
        model.get_base_model().config.save_pretrained(directory)
        tokenizer.save_pretrained(directory)
        return model

    @classmethod
    def load_saved(cls, directory: Path) -> nn.Module:
        base_path = PeftConfig.from_pretrained(directory).base_model_name_or_path
        try:
            config = AutoConfig.from_pretrained(directory)
            base = build_classifier(base_path, getattr(config, "mixtune_pooling", "cls"), config)
        except OSError:
            raise MixtuneError(
                f"the adapter in {directory} needs its base model {base_path}, which cannot be loaded: restore that model folder"
            ) from None
        with quiet_peft_deprecation():
            return PeftModel.from_pretrained(base, directory)


@register
class PrefixTuning(VirtualTokenMethod):
    """Prefix tuning, 20 virtual tokens, lr 5e-3 (half of prompt tuning's).

    The prefix sets keys and values in every layer directly (peft's default: no reparameterisation MLP),
    so a step of the same size moves the model more than a prompt at the input does.
    """

    name = "prefix-tuning"
    default_lr = 5e-3

    def peft_config(self, model: nn.Module) -> PeftConfig:
        return PrefixTuningConfig(task_type=TaskType.SEQ_CLS, num_virtual_tokens=self.hp.num_virtual_tokens)


@register
class PromptTuning(VirtualTokenMethod):
    """Prompt tuning, 20 randomly initialised virtual tokens at the input, lr 1e-2.

    Only the input embeddings of the prompt train and their signal passes through the whole frozen
    network, so it takes the larger step of the two.
    """

    name = "prompt-tuning"
    default_lr = 1e-2

    def prepare(self, model: nn.Module, ctx: FitContext) -> nn.Module:
        if getattr(model.config, "mixtune_pooling", None):  # a pooled head: the prompt is not text, pool past it
            model.config.mixtune_skip_leading_tokens = self.hp.num_virtual_tokens
        return super().prepare(model, ctx)

    def peft_config(self, model: nn.Module) -> PeftConfig:
        return PromptTuningConfig(task_type=TaskType.SEQ_CLS, num_virtual_tokens=self.hp.num_virtual_tokens)

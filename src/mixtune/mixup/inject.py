"""Model-level operations, in the manner of peft: inject mixup by module name, merge, unload, save alpha."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from mixtune.config import MixupConfig
from mixtune.errors import MixtuneError
from mixtune.mixup.layer import MixupLinear

# The released code's targets (BERT: q, k, v, attention-output dense, FFN in/out, pooler) and the same
# roles under other architectures' names (RoBERTa as BERT; MPNet attn.q/k/v/o; DistilBERT *_lin, ffn.lin*).
# Matched as name suffixes, as peft's target_modules lists are. Classifier heads never match.
DEFAULT_TARGET_MODULES = [
    "attention.self.query",
    "attention.self.key",
    "attention.self.value",
    "attention.output.dense",
    "intermediate.dense",
    "output.dense",
    "pooler.dense",
    "attn.q",
    "attn.k",
    "attn.v",
    "attn.o",
    "attention.q_lin",
    "attention.k_lin",
    "attention.v_lin",
    "attention.out_lin",
    "ffn.lin1",
    "ffn.lin2",
]


def matches_target(name: str, targets: list[str] | str) -> bool:
    """peft semantics: a string is a full regex match; a list matches a name or a '.'-suffix of it."""
    if isinstance(targets, str):
        return re.fullmatch(targets, name) is not None
    return any(name == t or name.endswith("." + t) for t in targets)


def target_module_names(model: nn.Module, targets: list[str] | str | None = None) -> list[str]:
    targets = DEFAULT_TARGET_MODULES if targets is None else targets
    return [
        name
        for name, module in model.named_modules()
        if isinstance(module, nn.Linear) and matches_target(name, targets)
    ]


def _set_submodule(model: nn.Module, name: str, module: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, module)


def inject_mixup(model: nn.Module, config: MixupConfig | None = None, generator: torch.Generator | None = None) -> nn.Module:
    """Replace every target nn.Linear of `model` by a MixupLinear, in place; returns the model."""
    config = config or MixupConfig()
    names = target_module_names(model, config.target_modules)
    if not names:
        wanted = config.target_modules or "the default targets"
        raise MixtuneError(
            f"no nn.Linear module of this model matches mixup target_modules {wanted}: "
            "set mixup.target_modules to names printed by model.named_modules()"
        )
    for name in names:
        layer = MixupLinear.from_config(model.get_submodule(name), config)
        if generator is not None:
            layer.reset_alpha(config.init_center, config.init_std, generator)
        _set_submodule(model, name, layer)
    return model


def mixup_layers(model: nn.Module) -> Iterator[tuple[str, MixupLinear]]:
    for name, module in model.named_modules():
        if isinstance(module, MixupLinear):
            yield name, module


def injected_form(model: nn.Module) -> str | None:
    """The mixup form of the model's layers (None: none injected): the form whose search defaults apply to it."""
    return next((layer.form for _, layer in mixup_layers(model)), None)


def alpha_parameters(model: nn.Module) -> list[nn.Parameter]:
    return [p for _, layer in mixup_layers(model) for p in layer.alpha_parameters()]


def task_parameters(model: nn.Module) -> list[tuple[str, nn.Parameter]]:
    """Every trainable parameter except alpha: the lower level of the bi-level problem."""
    alpha_ids = {id(p) for p in alpha_parameters(model)}
    return [(n, p) for n, p in model.named_parameters() if id(p) not in alpha_ids]


def set_alpha_trainable(model: nn.Module, trainable: bool) -> None:
    for param in alpha_parameters(model):
        param.requires_grad_(trainable)


def clamp_alpha(model: nn.Module) -> None:
    for _, layer in mixup_layers(model):
        layer.clamp_alpha()


def _replace_layers(model: nn.Module, merge: bool) -> nn.Module:
    for name, layer in list(mixup_layers(model)):
        _set_submodule(model, name, layer.merged_linear() if merge else layer.base_layer)
    return model


def merge_and_unload(model: nn.Module) -> nn.Module:
    """Fold W~ into plain nn.Linear weights: an ordinary model with identical outputs."""
    return _replace_layers(model, merge=True)


def unload(model: nn.Module) -> nn.Module:
    """Remove mixup without merging: the original module types holding the current task weights W."""
    return _replace_layers(model, merge=False)


def alpha_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    return {
        f"{name}.{pname}": param.detach().contiguous()
        for name, layer in mixup_layers(model)
        for pname, param in (("alpha_a", layer.alpha_a), ("alpha_b", layer.alpha_b))
        if param is not None
    }


def save_alpha(model: nn.Module, path: str | Path) -> None:
    save_file(alpha_state_dict(model), str(path))


@torch.no_grad()
def load_alpha(model: nn.Module, source: str | Path | dict[str, torch.Tensor]) -> None:
    state = load_file(str(source)) if not isinstance(source, dict) else source
    own = alpha_state_dict(model)
    if set(state) != set(own):
        raise MixtuneError("the alpha file does not match this model's mixup layers: inject with the same config first")
    for name, layer in mixup_layers(model):
        layer.alpha_a.copy_(state[f"{name}.alpha_a"])
        if layer.alpha_b is not None:
            layer.alpha_b.copy_(state[f"{name}.alpha_b"])

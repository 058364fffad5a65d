"""Which transformer layer a parameter belongs to, and the two tricks of Zhang et al. 2021 ("Revisiting
few-sample BERT fine-tuning") built on it: layer-wise learning-rate decay and re-initialising the top layers.

Depth 0 is the embeddings, 1..L the transformer layers, L + 1 everything above the last layer (pooler,
head, classifier). Layers are found by name (`layer.N.`, `layers.N.`, DistilBERT `transformer.layer.N.`),
so wrapped modules (mixup, mixout) keep their depth.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable

import torch
from torch import nn

from mixtune.errors import MixtuneError
from mixtune.optim import decay_groups

LAYER_INDEX = re.compile(r"(?:^|\.)layers?\.(\d+)(?=\.|$)")


def layer_index(name: str) -> int | None:
    """The transformer layer index in a parameter or module name, None outside the layers."""
    match = LAYER_INDEX.search(name)
    return int(match.group(1)) if match else None


def layer_depth(name: str, num_layers: int) -> int:
    """0 for the embeddings, 1 + i for layer i, num_layers + 1 for everything above the last layer."""
    index = layer_index(name)
    if index is not None:
        return index + 1
    if "embeddings" in name:
        return 0
    return num_layers + 1


def layer_modules(model: nn.Module) -> dict[int, nn.Module]:
    """The transformer layers by index: the modules whose name ends in `layer.N` / `layers.N`."""
    layers = {}
    for name, module in model.named_modules():
        match = LAYER_INDEX.search(name)
        if match and match.end() == len(name):
            layers[int(match.group(1))] = module
    return layers


def num_hidden_layers(model: nn.Module) -> int:
    """L, counted from the module names that layer_depth reads, so both always agree."""
    layers = layer_modules(model)
    if not layers:
        raise MixtuneError(
            f"{type(model).__name__} has no modules named layer.N or layers.N: "
            "train.layer_decay and train.reinit_layers need a BERT-style encoder; remove them"
        )
    return len(layers)


def layerwise_groups(
    named_params: Iterable[tuple[str, nn.Parameter]], weight_decay: float, lr: float, decay: float, num_layers: int
) -> list[dict]:
    """decay_groups per depth, each with lr * decay^(L + 1 - depth): the head gets lr, the embeddings the least.

    LambdaLR schedules scale each group's own initial lr, so warmup and decay keep the layer ratios.
    """
    by_depth: dict[int, list[tuple[str, nn.Parameter]]] = defaultdict(list)
    for name, param in named_params:
        by_depth[layer_depth(name, num_layers)].append((name, param))
    groups = []
    for depth in sorted(by_depth):
        depth_lr = lr * decay ** (num_layers + 1 - depth)
        groups += [{**group, "lr": depth_lr} for group in decay_groups(by_depth[depth], weight_decay)]
    return groups


def reinit_top_layers(model: nn.Module, k: int, seed: int) -> None:
    """Re-initialise the top k layers (and the pooler, if any) with the encoder's own _init_weights.

    The encoder's (model.base_model), not the wrapper's: a pooled head's _init_weights knows only its
    classifier. k = 0 changes nothing. The draws come from a forked RNG seeded by `seed`: reproducible,
    and the run's own random stream (head, dropout, shuffling) stays what it would be without it.
    """
    if k == 0:
        return
    layers = layer_modules(model)
    if k > len(layers):
        raise MixtuneError(
            f"train.reinit_layers is {k} but the model has {len(layers)} layers: set it to at most {len(layers)}"
        )
    encoder = getattr(model, "base_model", model)
    modules = [layers[i] for i in sorted(layers)[len(layers) - k :]]
    if isinstance(getattr(encoder, "pooler", None), nn.Module):
        modules.append(encoder.pooler)
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        torch.manual_seed(seed)
        for module in modules:
            _forget_loaded(module)
            module.apply(encoder._init_weights)


def _forget_loaded(module: nn.Module) -> None:
    """transformers' init functions skip tensors flagged as loaded from a checkpoint: clear the flag."""
    for tensor in [*module.parameters(), *module.buffers()]:
        if hasattr(tensor, "_is_hf_initialized"):
            del tensor._is_hf_initialized

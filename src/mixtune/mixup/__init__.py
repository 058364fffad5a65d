"""Attention-guided weight mixup: the layer, model-level inject/merge/unload, and the bi-level search."""

from mixtune.config import MixupConfig, SearchConfig
from mixtune.mixup.bilevel import bilevel_search, finite_difference_hypergradient, first_order_hypergradient
from mixtune.mixup.inject import (
    DEFAULT_TARGET_MODULES,
    alpha_parameters,
    inject_mixup,
    load_alpha,
    merge_and_unload,
    mixup_layers,
    save_alpha,
    task_parameters,
    unload,
)
from mixtune.mixup.layer import MixupLinear
from mixtune.mixup.repeated import repeated_search

__all__ = [
    "DEFAULT_TARGET_MODULES",
    "MixupConfig",
    "MixupLinear",
    "SearchConfig",
    "alpha_parameters",
    "bilevel_search",
    "finite_difference_hypergradient",
    "first_order_hypergradient",
    "inject_mixup",
    "load_alpha",
    "merge_and_unload",
    "mixup_layers",
    "repeated_search",
    "save_alpha",
    "task_parameters",
    "unload",
]

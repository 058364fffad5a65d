"""mixtune: stable, generalizable finetuning on small labelled datasets with attention-guided weight mixup."""

from importlib import import_module
from typing import Any

from mixtune.config import (
    DataConfig,
    MixupConfig,
    RunConfig,
    SearchConfig,
    TrainConfig,
    build_config,
)
from mixtune.errors import MixtuneError

MIXUP_API = ("MixupLinear", "bilevel_search", "inject_mixup", "load_alpha", "merge_and_unload", "repeated_search", "save_alpha", "unload")


def __getattr__(name: str) -> Any:
    """The mixup API needs torch: loaded on first use, so `mixtune --help` and argument errors answer at once."""
    if name in MIXUP_API:
        return getattr(import_module("mixtune.mixup"), name)
    raise AttributeError(f"module 'mixtune' has no attribute {name!r}")

__version__ = "0.1.0"

__all__ = [
    "DataConfig",
    "MixtuneError",
    "MixupConfig",
    "MixupLinear",
    "RunConfig",
    "SearchConfig",
    "TrainConfig",
    "bilevel_search",
    "build_config",
    "inject_mixup",
    "load_alpha",
    "merge_and_unload",
    "repeated_search",
    "save_alpha",
    "unload",
]

"""mixtune: stable, generalizable finetuning on small labelled datasets with attention-guided weight mixup."""

from mixtune.config import DataConfig, MixupConfig, RunConfig, SearchConfig, TrainConfig, build_config
from mixtune.errors import MixtuneError
from mixtune.mixup import (
    MixupLinear,
    bilevel_search,
    inject_mixup,
    load_alpha,
    merge_and_unload,
    repeated_search,
    save_alpha,
    unload,
)

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

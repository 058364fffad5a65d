"""The checks a run configuration must pass beyond its types: allowed values, ranges, device and precision.

Apart from mixtune.config so that both stay short; torch-free, so the CLI rejects a bad value before importing torch.
"""

from __future__ import annotations

import re

from mixtune.config import FORM_DEFAULTS, PAIR_ENCODINGS, RunConfig
from mixtune.errors import MixtuneError

POOLING_CHOICES = ("auto", "cls", "mean", "max")  # resolved by mixtune.heads at load time
# The device and precision settings, checked here (torch-free: the CLI rejects a bad value before importing torch)
# and used by mixtune.device, which decides at run time whether the machine can do them and what auto means.
PRECISION_CHOICES = ("fp32", "bf16", "fp16", "auto")
DEVICE_SETTING = re.compile(r"auto|cpu|cuda|cuda:\d+")
CHOICES = {
    "mixup.form": tuple(FORM_DEFAULTS),
    "mixup.granularity": ("rank", "row", "module"),
    "search.hypergradient": ("first-order", "finite-difference"),
    "search.average": ("all", "alpha", "greedy"),
    "train.average": ("auto", "none", "swa", "ema"),
    "data.task_type": ("classification", "regression"),
    "train.scheduler": ("linear", "cosine", "constant"),
    "train.select": ("best-dev", "last"),
    "search.inner_scheduler": ("linear", "cosine", "constant"),
    "search.alpha_scheduler": ("linear", "cosine", "constant"),
}


def check_device_setting(spec: str) -> None:
    if not DEVICE_SETTING.fullmatch(spec):
        raise MixtuneError(f"config key 'device' is {spec!r}: choose auto, cpu, cuda or cuda:N")


def check_precision_setting(precision: str) -> None:
    if precision not in PRECISION_CHOICES:
        raise MixtuneError(f"config key 'precision' is {precision!r}: choose one of {', '.join(PRECISION_CHOICES)}")


def validate(config: RunConfig) -> None:
    """Range and choice checks that types alone cannot express."""
    if config.pair_encoding not in (None, *PAIR_ENCODINGS):
        raise MixtuneError(f"config key 'pair_encoding' is {config.pair_encoding!r}: choose one of {', '.join(PAIR_ENCODINGS)}")
    if config.pooling not in POOLING_CHOICES:
        raise MixtuneError(f"config key 'pooling' is {config.pooling!r}: choose one of {', '.join(POOLING_CHOICES)}")
    check_device_setting(config.device)
    check_precision_setting(config.precision)
    for key, allowed in CHOICES.items():
        section, name = key.split(".")
        value = getattr(getattr(config, section), name)
        if value is not None and value not in allowed:  # None only where the type allows it: the form's default
            raise MixtuneError(f"config key '{key}' is {value!r}: choose one of {', '.join(allowed)}")
    checks = [
        ("search.split_ratio", 0.0 < config.search.split_ratio < 1.0, "a fraction strictly between 0 and 1"),
        ("search.splits", config.search.splits >= 1, "at least 1"),
        ("search.unroll_steps", config.search.unroll_steps is None or config.search.unroll_steps >= 1, "at least 1"),
        ("search.workers", config.search.workers >= 1, "at least 1"),
        ("mixup.rank", config.mixup.rank is None or config.mixup.rank >= 1, "at least 1, or null for full rank"),
        ("mixup.init_share", 0.0 < config.mixup.init_share < 1.0, "strictly between 0 and 1 (a sigmoid's value)"),
        ("search.alpha_lr_sum", config.search.alpha_lr_sum is None or config.search.alpha_lr_sum > 0, "positive, or null"),
        ("train.batch_size", config.train.batch_size >= 1, "at least 1"),
        ("train.max_length", config.train.max_length >= 8, "at least 8"),
        ("train.eval_every", config.train.eval_every is None or config.train.eval_every >= 1, "at least 1, or null"),
        ("train.patience", config.train.patience is None or config.train.patience >= 1, "at least 1, or null"),
        ("train.warmup_ratio", 0.0 <= config.train.warmup_ratio < 1.0, "in [0, 1)"),
        ("train.layer_decay", config.train.layer_decay is None or 0.0 < config.train.layer_decay <= 1.0,
         "in (0, 1], or null for off"),
        ("train.reinit_layers", config.train.reinit_layers >= 0, "at least 0"),
        ("train.average_start", 0.0 <= config.train.average_start < 1.0, "a fraction of the run's steps in [0, 1)"),
        ("train.ema_decay", 0.0 < config.train.ema_decay < 1.0, "strictly between 0 and 1"),
        ("data.train_size", config.data.train_size is None or config.data.train_size >= 1, "at least 1"),
        ("data.pool_test_size", config.data.pool_test_size is None or config.data.pool_test_size >= 1, "at least 1, or null for none"),
    ]
    for key, ok, expected in checks:
        if not ok:
            raise MixtuneError(f"config key '{key}' must be {expected}")
    if config.train.average not in ("auto", "none") and config.train.select != "last":
        raise MixtuneError(f"train.average {config.train.average} and train.select best-dev both choose the final weights: set train.select to last")
    for key in ("train.lr", "train.epochs"):
        section, name = key.split(".")
        value = getattr(getattr(config, section), name)
        if value is not None and value <= 0:
            raise MixtuneError(f"config key '{key}' must be positive, got {value}")

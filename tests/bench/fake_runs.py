"""Fake run functions for the runner tests: synthetic records in milliseconds, loadable by file path
in a spawned process (the runner's target 'tests/bench/fake_runs.py:ok_run')."""

from __future__ import annotations

import os
import time
from typing import Any

from mixtune.config import RunConfig

FAKE_INDICES = list(range(10))


def ok_run(config: RunConfig) -> dict[str, Any]:
    """A record shaped like mixtune.run.run's, with a score that depends on the seed."""
    score = 50.0 + config.seed
    return {
        "config": config.to_dict(),
        "method": config.method,
        "hyperparameters": {"lr": 2e-5, "epochs": 3},
        "task": {"name": config.data.task, "metrics": ["accuracy"]},
        "data_sources": {},
        "indices": {"train": FAKE_INDICES, "dev": [10, 11]},
        "metrics": {"dev": {"accuracy": score}, "test": {"accuracy": score, "constant_predictions": 0.0}},
        "main_metric": "accuracy",
        "log": {"search": {"val_indices": [[1, 2], [3, 4]], "splits": [{"seconds": 0.1}]}},
        "versions": {},
        "time_s": {"total": 0.01},
        "peak_memory_mb": 1.0,
        "pid": os.getpid(),
    }


def nan_on_mixup(config: RunConfig) -> dict[str, Any]:
    """mixup-blo diverges (as a NaN loss does), every other method finishes."""
    if config.method == "mixup-blo":
        raise FloatingPointError("training loss became nan: lower the learning rate")
    return ok_run(config)


def interrupt_at_seed_3(config: RunConfig) -> dict[str, Any]:
    """Ctrl-C (or a kill) arriving during the run of seed 3."""
    if config.seed == 3:
        raise KeyboardInterrupt
    return ok_run(config)


def die_or_fail(config: RunConfig) -> dict[str, Any]:
    """Seed 2's process dies outright (as an out-of-memory kill would); seed 3 raises; the rest finish."""
    if config.seed == 2:
        os._exit(3)
    if config.seed == 3:
        raise FloatingPointError("training loss became nan: lower the learning rate")
    return ok_run(config)


def echo_options(config: RunConfig, search_cache: str | None = None) -> dict[str, Any]:
    """A finished run that records the search_cache option it was given."""
    return {**ok_run(config), "search_cache": search_cache}


def raise_anything(config: RunConfig) -> dict[str, Any]:
    """Seeds 1-3 fail in ways other than a NaN loss (a two-line message, a KeyError, no message); the rest finish."""
    errors = {1: RuntimeError("out of patience\nsecond line"), 2: KeyError("head"), 3: ValueError()}
    if config.seed in errors:
        raise errors[config.seed]
    return ok_run(config)


def sleep_run(config: RunConfig) -> dict[str, Any]:
    """A long run that first writes its process id to $MIXTUNE_TEST_PID_FILE (the orphan test kills its parent)."""
    with open(os.environ["MIXTUNE_TEST_PID_FILE"], "w") as handle:
        handle.write(str(os.getpid()))
    time.sleep(60)
    return ok_run(config)


def killed_once(config: RunConfig) -> dict[str, Any]:
    """Seed 2's first attempt writes its process id to <output_dir>/seed2.pid and waits to be killed (the Ray
    test kills that worker); the attempt Ray retries finds the file and finishes. Other seeds finish at once."""
    marker = os.path.join(config.output_dir, f"seed{config.seed}.pid")
    if config.seed == 2 and not os.path.exists(marker):
        with open(marker + ".tmp", "w") as handle:
            handle.write(str(os.getpid()))
        os.replace(marker + ".tmp", marker)
        time.sleep(60)
    return ok_run(config)


def slow_run(config: RunConfig) -> dict[str, Any]:
    """A run of about a second (the driver-restart test kills its driver while some are in flight)."""
    time.sleep(1.0)
    return ok_run(config)

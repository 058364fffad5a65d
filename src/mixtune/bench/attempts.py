"""One run's attempt as an outcome dict, for whichever backend runs it (mixtune.bench.runner, ray_backend).

Kept free of torch and of the grid (which imports every method): a worker process that runs a light target
(the tests' fake runs) starts in a fraction of a second; the real target imports what it needs itself.
"""

from __future__ import annotations

import importlib
import importlib.util
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mixtune.config import RunConfig, build_config
from mixtune.errors import MixtuneError

TRACEBACK_CHARS = 4000


def resolve_target(target: str) -> Callable[[RunConfig], dict[str, Any]]:
    """The run function named by 'module:function', or by 'file.py:function' (loadable in any process)."""
    where, sep, name = target.rpartition(":")
    if not sep or not where:
        raise MixtuneError(f"run target {target!r} is not 'module:function' or 'file.py:function'")
    if where.endswith(".py"):
        if not Path(where).is_file():
            raise MixtuneError(f"run target file {where} does not exist: check the path")
        spec = importlib.util.spec_from_file_location(f"mixtune_bench_target_{Path(where).stem}", where)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    else:
        module = importlib.import_module(where)
    return getattr(module, name)


def attempt(target: str, values: dict[str, Any], options: dict[str, Any]) -> dict[str, Any]:
    """One run as an outcome dict: the record with status "ok", or the error with status "failed". Exceptions (NaN
    loss is a FloatingPointError) become failures; KeyboardInterrupt and SystemExit pass."""
    started = time.perf_counter()
    try:
        record = resolve_target(target)(build_config(values), **options)
    except Exception as exc:  # noqa: BLE001  (any failure of one run is recorded, not fatal to the sweep)
        reason = f"{type(exc).__name__}: {exc}" if str(exc).strip() else type(exc).__name__
        return failure(reason, time.perf_counter() - started, traceback.format_exc())
    return {"status": "ok", **record}


def failure(error: str, seconds: float, trace: str = "") -> dict[str, Any]:
    first_line = error.strip().splitlines()[0] if error.strip() else "unknown error"
    return {"status": "failed", "error": first_line, "traceback": trace[-TRACEBACK_CHARS:], "time_s": {"total": seconds}}

"""`mixtune bench --backend ray`: each run a Ray task, on a local Ray instance or an existing cluster.

The driver (the `mixtune bench` process) keeps the local pool's guarantees, because it alone writes the
results file (mixtune.bench.runner.run_sweep appends one line per outcome this module yields):
- one atomic line per finished run; a run that fails, or whose task dies, is a failed line with one reason;
- resume: only cells without a line are submitted, so a restarted driver redoes just the runs in flight;
- no duplicates: a task whose worker (or machine) dies is retried by Ray once (RAY_RETRIES) and its one
  result written once; a driver that dies takes its tasks with it (Ray ends a dead job's tasks), and their
  results, never written, are redone by the next sweep. The results file's lock keeps a second driver out.
Each task runs in a fresh worker process (max_calls=1: its own peak memory, nothing left over from
another run) with the grid's `resources` request ({cpus: N} and/or {gpus: G}; default one CPU), in the
driver's working folder where that machine has it (relative data paths then resolve as on the driver).

Ray is imported only here, and only for this backend. This module's top level stays light (no torch, no
grid): a Ray worker imports it to run a task.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from mixtune.bench.attempts import attempt, failure
from mixtune.errors import MixtuneError

if TYPE_CHECKING:
    from mixtune.bench.grid import Cell

RAY_RETRIES = 1  # a task whose worker process or machine died runs once more, then counts as failed
WAIT_S = 5.0  # how often the driver looks again at the cluster's size (nodes may join) while runs are going


def import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise MixtuneError("--backend ray needs the ray package: pip install 'mixtune[ray]'") from None
    return ray


def run_task(target: str, values: dict[str, Any], options: dict[str, Any], threads: int, cwd: str) -> dict[str, Any]:
    """One run inside a Ray worker: the driver's working folder where this machine has it, `threads` CPU threads."""
    os.environ["OMP_NUM_THREADS"] = str(threads)  # read when torch loads (a fresh worker has not loaded it)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(threads)
    if os.path.isdir(cwd):
        os.chdir(cwd)
    return attempt(target, values, options)


@contextlib.contextmanager
def connected(address: str | None) -> Iterator[Any]:
    """Ray, connected: to `address` (an existing cluster; 'auto' = the one this machine belongs to), else a
    local instance started here and stopped after. A process already connected (tests) keeps its connection."""
    ray = import_ray()
    if ray.is_initialized():
        yield ray
        return
    try:
        ray.init(address=address, include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = f"the Ray cluster at {address}" if address else "a local Ray instance"
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise MixtuneError(
            f"could not connect to {where} ({reason}): start one with `ray start --head`, or drop --address"
        ) from None
    try:
        yield ray
    finally:
        ray.shutdown()


def task_options(resources: dict[str, float] | None) -> dict[str, Any]:
    """Ray's options for one run's task: its resource request, a fresh process, retries on worker death only."""
    request = resources or {}  # what it leaves out: one CPU, no GPU
    return {
        "num_cpus": request.get("cpus", 1.0), "num_gpus": request.get("gpus", 0.0), "max_calls": 1,
        "max_retries": RAY_RETRIES, "retry_exceptions": False,
    }


def capacity(ray: Any, options: dict[str, Any]) -> int:
    """How many runs the cluster holds at once now; a resource it lacks altogether is the one-line error."""
    total = ray.cluster_resources()
    fits = []
    for name, key in (("CPU", "num_cpus"), ("GPU", "num_gpus")):
        wanted, have = options[key], total.get(name, 0.0)
        if wanted > 0 and have < wanted:
            raise MixtuneError(
                f"each run asks for {wanted:g} {name}(s), but the Ray cluster has {have:g}: "
                f"change the grid's resources: or add machines with {name}s"
            )
        if wanted > 0:
            fits.append(int(have // wanted))
    return max(1, min(fits, default=1))


def run_on_ray(
    cells: list[Cell], target: str, on_start: Callable[[Cell], None], options: dict[str, Any],
    resources: dict[str, float] | None, address: str | None, max_in_flight: int | None,
) -> Iterator[tuple[Cell, dict]]:
    """Run cells as Ray tasks, as many at once as the cluster holds (or max_in_flight); yields (cell, outcome)
    as each ends. Closing the generator (Ctrl-C, an error in the driver) cancels the tasks in flight."""
    with connected(address) as ray:
        request = task_options(resources)
        remote = ray.remote(**request)(run_task)
        threads = max(1, int(request["num_cpus"]))
        cwd = os.getcwd()
        pending = list(reversed(cells))
        running: dict[Any, tuple[Cell, float]] = {}
        try:
            while pending or running:
                limit = capacity(ray, request) if max_in_flight is None else max_in_flight
                while pending and len(running) < limit:
                    cell = pending.pop()
                    ref = remote.remote(target, cell.values, options, threads, cwd)
                    running[ref] = (cell, time.perf_counter())
                    on_start(cell)
                done, _ = ray.wait(list(running), num_returns=1, timeout=WAIT_S)
                for ref in done:
                    cell, started = running.pop(ref)
                    yield cell, collect(ray, ref, started)
        finally:
            for ref in running:
                with contextlib.suppress(Exception):
                    ray.cancel(ref, force=True)


def collect(ray: Any, ref: Any, started: float) -> dict[str, Any]:
    try:
        return ray.get(ref)
    except ray.exceptions.RayError as exc:
        text = str(exc).strip()
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        detail = f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__
        return failure(f"the run's Ray task ended without a result ({detail})", time.perf_counter() - started, text)

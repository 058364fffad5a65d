"""Running a grid: every run in a fresh spawned process (or a Ray task: run_sweep), every finished run appended to
the results file.

A fresh process per run makes peak_memory_mb (ru_maxrss) that run's own, and a crash (or an out-of-memory
kill) costs only that run: it is recorded as failed and the sweep goes on.
Resume is the default: cells already "ok" in the results file are skipped; failed cells are skipped too
unless retry_failed (a failure is usually deterministic: fix the cause, then pass --retry-failed).
Killing the sweep loses at most the runs in flight.

The function that does one run is named by a target string, 'package.module:function' or
'path/to/file.py:function', taking a RunConfig and returning a run record; tests pass a fake one.
Run options (the grid's search_cache) reach it as keyword arguments, and only when set.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from mixtune.bench.attempts import attempt, failure
from mixtune.bench.grid import Cell
from mixtune.bench.results import ResultsWriter, cell_status, read_results, result_line
from mixtune.config import RunConfig
from mixtune.errors import MixtuneError
from mixtune.paths import check_writable

DEFAULT_TARGET = "mixtune.bench.runner:run_cell"
BACKENDS = ("local", "ray")
PARENT_CHECK_S = 0.5


# --- one run ----------------------------------------------------------------------------------------
def run_cell(config: RunConfig, search_cache: str | None = None) -> dict[str, Any]:
    """The real run, not exported; mixup runs also get a per-layer summary of the learned alpha. With `search_cache`
    (a folder), mixup-blo runs that differ only in their finetune settings share a search."""
    from mixtune.run import run

    cache = Path(search_cache) if search_cache else None
    return run(config, progress=False, write=False, on_trained=add_alpha_summary, search_cache=cache)


def add_alpha_summary(model: Any, record: dict[str, Any]) -> None:
    from mixtune.mixup.diagnostics import alpha_summary

    if summary := alpha_summary(model, record.get("log", {}).get("alpha_diagnostics")):
        record["alpha_summary"] = summary


def _child(
    target: str, values: dict[str, Any], options: dict[str, Any], threads: int, conn: Connection, parent: int
) -> None:
    """Entry point of a run's process: send back the outcome through the pipe. Ctrl-C is left to the sweep, which
    stops its runs itself (no traceback from every child). A sweep killed outright (kill -9) cannot stop them: each
    notices it is orphaned and ends quietly instead."""
    import torch

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    exit_when_orphaned(parent)
    torch.set_num_threads(threads)
    outcome = attempt(target, values, options)
    with contextlib.suppress(BrokenPipeError):  # the sweep died within the watchdog's last interval: nobody to tell
        conn.send(outcome)
    conn.close()


def exit_when_orphaned(parent: int) -> None:
    """End this process, silently, once `parent` is no longer its parent (an orphan's run serves no one)."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_CHECK_S)
        os._exit(0)

    threading.Thread(target=watch, name="mixtune-parent-watch", daemon=True).start()


# --- many runs ----------------------------------------------------------------------------------------
@dataclass
class Job:
    cell: Cell
    process: BaseProcess
    conn: Connection
    started: float


def run_in_processes(
    cells: list[Cell], target: str, workers: int, on_start: Callable[[Cell], None], options: dict[str, Any]
) -> Iterator[tuple[Cell, dict]]:
    """Run cells in fresh spawned processes, `workers` at a time; yields (cell, outcome) as each ends."""
    context = multiprocessing.get_context("spawn")
    threads = max(1, len(os.sched_getaffinity(0)) // workers)
    pending = list(reversed(cells))
    running: list[Job] = []
    try:
        while pending or running:
            while pending and len(running) < workers:
                cell = pending.pop()
                receiver, sender = context.Pipe(duplex=False)
                args = (target, cell.values, options, threads, sender, os.getpid())
                process = context.Process(target=_child, args=args)
                process.start()
                sender.close()  # the child holds the only sending end: its death shows as end-of-file
                running.append(Job(cell, process, receiver, time.perf_counter()))
                on_start(cell)
            wait([job.conn for job in running] + [job.process.sentinel for job in running])
            for job in [j for j in running if j.conn.poll() or not j.process.is_alive()]:
                running.remove(job)
                yield job.cell, _collect(job)
    finally:
        for job in running:
            job.process.terminate()
            job.process.join()


def _collect(job: Job) -> dict[str, Any]:
    try:
        outcome = job.conn.recv() if job.conn.poll() else None
    except EOFError:
        outcome = None
    job.conn.close()
    job.process.join()
    if outcome is not None:
        return outcome
    code = job.process.exitcode
    how = f"killed by signal {-code} (out of memory?)" if code is not None and code < 0 else f"exit code {code}"
    return failure(f"the run's process died without a result ({how})", time.perf_counter() - job.started)


def run_in_this_process(
    cells: list[Cell], target: str, on_start: Callable[[Cell], None], options: dict[str, Any]
) -> Iterator[tuple[Cell, dict]]:
    """Sequential runs in the calling process: for debugging (pdb) and fast tests; memory peaks accumulate."""
    for cell in cells:
        on_start(cell)
        yield cell, attempt(target, cell.values, options)


# --- the sweep ----------------------------------------------------------------------------------------
@dataclass
class SweepSummary:
    ok: int = 0
    failed: int = 0
    done_before: int = 0
    failed_before: int = 0  # failed earlier and not retried
    not_started: int = 0  # left for a later sweep by --limit
    dropped_partial_line: bool = False


def plan(cells: list[Cell], results: Path, retry_failed: bool) -> list[tuple[Cell, str]]:
    """Each cell with what the sweep will do: "run", "done" (ok in the results) or "failed" (skipped)."""
    status = cell_status(read_results(results))
    action = {"ok": "done", "failed": "run" if retry_failed else "failed"}  # by the cell's status; none: "run"
    return [(cell, action.get(status.get(cell.id), "run")) for cell in cells]


def run_sweep(
    cells: list[Cell], results: Path, target: str = DEFAULT_TARGET, workers: int | None = None, limit: int | None = None,
    retry_failed: bool = False, isolate: bool = True, progress: bool = True, search_cache: Path | None = None,
    backend: str = "local", address: str | None = None, resources: dict[str, float] | None = None,
) -> SweepSummary:
    """Run every cell not yet in `results`, appending one line per finished run (search_cache: see run_cell).
    backend "local": spawned processes here, `workers` at a time (default 1). "ray": Ray tasks with the grid's
    `resources` request (mixtune.bench.ray_backend), on the cluster at `address` or a local instance; `workers`
    then caps the runs in flight (default: as many as the cluster holds); the results file is still written here
    alone, with the same guarantees."""
    if backend not in BACKENDS:  # the CLI's choices check this too; a Python caller gets the same answer
        raise MixtuneError(f"--backend {backend!r} is not known: choose one of {', '.join(BACKENDS)}")
    if workers is not None and workers < 1:
        raise MixtuneError(f"--workers must be at least 1, got {workers}")
    if not isolate and (workers or 1) != 1:
        raise MixtuneError("--in-process runs one at a time: drop --workers or --in-process")
    if not isolate and backend != "local":
        raise MixtuneError(f"--in-process runs here, one at a time: drop --backend {backend} or --in-process")
    if backend == "ray":
        from mixtune.bench.ray_backend import import_ray, run_on_ray

        import_ray()  # missing: the one-line error before the results file is touched
    if search_cache is not None:
        check_writable(search_cache, "search cache folder", folder=True)
    with ResultsWriter(results) as writer:
        planned = plan(cells, results, retry_failed)
        todo = [cell for cell, action in planned if action == "run"]
        actions = [action for _, action in planned]
        summary = SweepSummary(
            done_before=actions.count("done"), failed_before=actions.count("failed"), dropped_partial_line=writer.dropped_partial
        )
        if limit is not None:
            summary.not_started = max(0, len(todo) - limit)
            todo = todo[:limit]
        with contextlib.closing(SweepProgress(summary, len(todo), progress)) as shown:
            options = {} if search_cache is None else {"search_cache": str(search_cache)}  # only those set
            if backend == "ray":
                runs = run_on_ray(todo, target, shown.started, options, resources, address, workers)
            elif isolate:
                runs = run_in_processes(todo, target, workers or 1, shown.started, options)
            else:
                runs = run_in_this_process(todo, target, shown.started, options)
            with contextlib.closing(runs) as outcomes:  # closing stops the runs in flight on any exit
                for cell, outcome in outcomes:
                    writer.append(result_line(cell, outcome))
                    shown.finished(cell, outcome)
    return summary


class SweepProgress:
    """The tqdm bar over the grid: runs in flight as its description, ETA from this sweep's runs."""

    def __init__(self, summary: SweepSummary, todo: int, enabled: bool) -> None:
        self.summary = summary
        self.enabled = enabled
        initial = summary.done_before + summary.failed_before
        self.bar = tqdm(total=initial + todo, initial=initial, disable=not enabled, unit="run", dynamic_ncols=True)
        self.in_flight: list[str] = []

    def started(self, cell: Cell) -> None:
        self.in_flight.append(cell.describe())
        self.bar.set_description_str(", ".join(self.in_flight))

    def finished(self, cell: Cell, outcome: dict[str, Any]) -> None:
        self.in_flight.remove(cell.describe())
        self.bar.set_description_str(", ".join(self.in_flight))
        if outcome["status"] == "ok":
            self.summary.ok += 1
        else:
            self.summary.failed += 1
        self.bar.set_postfix(failed=self.summary.failed, refresh=False)
        self.bar.update(1)
        if self.enabled:
            self.bar.write(outcome_line(cell, outcome))

    def close(self) -> None:
        self.bar.close()


def outcome_line(cell: Cell, outcome: dict[str, Any]) -> str:
    """One line per finished run, e.g. 'ok      rte mixup-blo n300 s1: accuracy 61.73 (412 s, 1830 MB)'."""
    seconds = outcome.get("time_s", {}).get("total", 0.0)
    if outcome["status"] != "ok":
        return f"FAILED  {cell.describe()}: {outcome['error']} ({seconds:.0f} s)"
    metric = outcome.get("main_metric", "")
    scores = [v.get(metric) for k, v in outcome.get("metrics", {}).items() if k != "dev"]
    shown = " / ".join(f"{s:.2f}" for s in scores if isinstance(s, (int, float)))
    memory = outcome.get("peak_memory_mb", 0.0)
    return f"ok      {cell.describe()}: {metric} {shown} ({seconds:.0f} s, {memory:.0f} MB)"

"""Repeated search: K independent random D_tr/D_val splits, each from the same fresh start, then averaged.

Each split is seeded on its own (its data split, loaders, alpha and dropout draws), so the K searches can run
side by side: search.workers > 1 runs them in that many spawned processes (one per GPU where the run left the
GPU to mixtune and several are visible, mixtune.device.worker_devices), and the average, summed in split order,
is the same as one process computes, bit for bit on the same device and thread count.

search.average = greedy makes a greedy soup instead (Wortsman et al. 2022): the K models ranked by their own
D_val's held-out loss, then added best first, each kept only if the soup's loss on the pooled D_val splits does
not rise. The score is the task loss, not the metric: the search knows no metric, and on a few dozen examples an
accuracy ties where a loss still ranks. The K draws are independent, so a pooled example is held out from its own
split's model but may be in another model's D_tr: the pooled check is not wholly held out. It needs no extra labels.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import pickle
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from mixtune.config import SearchConfig
from mixtune.data.batching import make_loader as shuffled_loader
from mixtune.data.sampling import random_split
from mixtune.device import Runtime, activated, active, model_device, rng_state, set_rng_state
from mixtune.errors import MixtuneError
from mixtune.mixup.bilevel import bilevel_search, dropout_mode
from mixtune.mixup.inject import mixup_layers
from mixtune.train import batch_loss

SPLIT_SEED_STRIDE = 1000  # split k of run seed s uses seed s * 1000 + k
DROPOUT_SEED_OFFSET = 1 << 30  # split k's dropout stream: its split seed moved clear of the loaders' seeds


@dataclass(frozen=True)
class SplitLoaders:
    """`make_loader` for repeated_search that worker processes can receive (a closure cannot be pickled)."""

    tokenizer: Any
    batch_size: int

    def __call__(self, features: list[dict], seed: int) -> DataLoader:
        return shuffled_loader(features, self.tokenizer, self.batch_size, True, seed)


def keep_alpha(k: int) -> None:
    """`reset_alpha` for searches without alpha (soup-start)."""


def averaged_keys(model: nn.Module, average: str) -> list[str]:
    """State-dict keys averaged across splits: alpha only, or every parameter ("all", released total_avg; "greedy")."""
    if average in ("all", "greedy"):
        return [name for name, _ in model.named_parameters()]
    return [f"{name}.{p}" for name, layer in mixup_layers(model) for p in ("alpha_a", "alpha_b") if getattr(layer, p) is not None]


def repeated_search(
    model: nn.Module,
    features: list[dict],
    make_loader: Callable[[list[dict], int], DataLoader],
    config: SearchConfig,
    seed: int,
    reset_alpha: Callable[[int], None],
    progress: bool = True,
    search_split: Callable[..., dict[str, Any]] | None = None,
    devices: list[torch.device] | None = None,
) -> dict[str, Any]:
    """Run config.splits bi-level searches and load their average (search.average greedy: a greedy soup) into `model`.

    Every split starts from the model's state on entry (pretrained weights with a seeded head) and a
    fresh alpha drawn by `reset_alpha(k)`. Parameters outside `averaged_keys` return to that start.
    `search_split(model, train_loader, val_loader, config, desc=, progress=)` is what runs on each split:
    bilevel_search by default; soup-start passes the same inner steps without alpha (methods/soup_start.py).
    config.workers > 1: the splits in parallel processes, worker i on devices[i] (default: the model's device);
    make_loader, reset_alpha and search_split must then be picklable (SplitLoaders, AlphaReset, module functions).
    The RNG state on return is the one on entry (each split draws from its own seed).
    """
    search_split = search_split or bilevel_search
    device = model_device(model)
    entry_rng = rng_state(device)
    start = {k: v.detach().clone() for k, v in model.state_dict().items()}
    keys = averaged_keys(model, config.average)
    totals = {k: torch.zeros_like(start[k], dtype=torch.float64) for k in keys} if config.average != "greedy" else {}
    logs, splits, members = [], [], []
    job = (features, make_loader, config, seed, reset_alpha, search_split)
    if config.workers > 1 and config.splits > 1:
        outcomes = parallel_splits(model, job, keys, devices or [device] * config.workers, progress)
    else:
        outcomes = (run_split(model, job, start, k, progress) for k in range(config.splits))
    for log, val_idx, state in outcomes:  # in split order, whichever process ran them: the same sums
        logs.append(log)
        splits.append(val_idx)
        if config.average == "greedy":  # a copy: the sequential path hands over the model's own tensors
            members.append({key: state[key].detach().to(device, copy=True) for key in keys})
            continue
        for key in keys:
            totals[key] += state[key].to(device).double()
    result = {"splits": logs, "val_indices": splits, "averaged": config.average}
    if config.average == "greedy":
        started = time.perf_counter()
        score = SoupScorer(model, start, features, make_loader, seed * SPLIT_SEED_STRIDE)
        souped, result["soup"] = greedy_soup(members, score, splits)
        result["soup"]["seconds"] = time.perf_counter() - started
    else:
        souped = {key: (total / config.splits).to(start[key].dtype) for key, total in totals.items()}
    set_rng_state(entry_rng, device)  # what follows draws the same, however the splits ran
    model.load_state_dict({**start, **souped})
    return result


def search_seconds(search: dict[str, Any]) -> float:
    """A repeated search's time: its splits' and, for a greedy soup, the soup's scoring."""
    return sum(s["seconds"] for s in search["splits"]) + search.get("soup", {}).get("seconds", 0.0)


def mean_state(states: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """The entry-wise mean of state dicts (summed in float64 in list order), in each tensor's own dtype."""
    return {key: (sum(s[key].double() for s in states) / len(states)).to(states[0][key].dtype) for key in states[0]}


@dataclass
class SoupScorer:
    """score(state, indices): minus the mean held-out loss of the start state with `state` loaded, on those examples.

    Eval mode (no dropout), no gradients; the examples in one loader of the search's own batching.
    """

    model: nn.Module
    start: dict[str, torch.Tensor]
    features: list[dict]
    make_loader: Callable[[list[dict], int], DataLoader]
    loader_seed: int

    @torch.no_grad()
    def __call__(self, state: dict[str, torch.Tensor], indices: list[int]) -> float:
        self.model.load_state_dict({**self.start, **state})
        total, count = 0.0, 0
        with dropout_mode(self.model, False):
            for batch in self.make_loader([self.features[i] for i in indices], self.loader_seed):
                size = len(batch["input_ids"])
                total += batch_loss(self.model, batch).item() * size
                count += size
        return -total / count


def greedy_soup(
    members: list[dict[str, torch.Tensor]], score: Callable[[dict[str, torch.Tensor], list[int]], float], val_indices: list[list[int]]
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """(the soup's state, its log): members ranked by score on their own D_val, then added best first, each kept
    only if the soup's score on the pooled D_val splits does not drop. One member: that member, unchanged."""
    own = [score(state, val) for state, val in zip(members, val_indices)]
    order = sorted(range(len(members)), key=lambda k: -own[k])  # ties keep split order
    pooled = sorted(set().union(*val_indices))
    kept = [order[0]]
    best = score(members[order[0]], pooled) if len(members) > 1 else own[0]
    tried = []
    for k in order[1:]:
        candidate = score(mean_state([members[i] for i in [*kept, k]]), pooled)
        tried.append({"split": k, "pooled_score": candidate, "kept": candidate >= best})
        if candidate >= best:
            kept, best = [*kept, k], candidate
    log = {"own_scores": own, "order": order, "kept": kept, "pooled_score": best, "tried": tried, "score": "-held-out loss"}
    return mean_state([members[i] for i in kept]), log


def run_split(model: nn.Module, job: tuple, start: dict[str, torch.Tensor], k: int, progress: bool) -> tuple:
    """Split k from the start state: (its log, its D_val indices, the model's state after it)."""
    features, make_loader, config, seed, reset_alpha, search_split = job
    model.load_state_dict(start)
    reset_alpha(k)
    split_seed = seed * SPLIT_SEED_STRIDE + k
    torch.manual_seed(split_seed + DROPOUT_SEED_OFFSET)  # CPU and every GPU: the split's own dropout draws
    train_idx, val_idx = random_split(len(features), config.split_ratio, split_seed)
    log = search_split(
        model,
        make_loader([features[i] for i in train_idx], split_seed),
        make_loader([features[i] for i in val_idx], split_seed + 1),
        config,
        desc=f"search split {k + 1}/{config.splits}",
        progress=progress,
    )
    return log, val_idx, model.state_dict()


def parallel_splits(model: nn.Module, job: tuple, keys: list[str], devices: list[torch.device], progress: bool) -> Iterator[tuple]:
    """The splits in spawned worker processes (worker i on devices[i]); yields run_split's outcomes in split order.

    The model (as it is on entry), the loaders' and alpha's functions go to the workers in one file, so the
    alpha reset still acts on the model it came with; each split's averaged tensors come back through a file.
    """
    config = job[2]
    workers = min(config.workers, config.splits)
    runtime = active()
    context = multiprocessing.get_context("spawn")
    with tempfile.TemporaryDirectory(prefix="mixtune-search-") as scratch:
        job_file = Path(scratch) / "job.pt"
        try:
            torch.save({"model": model, "job": job, "keys": keys}, job_file)
        except (pickle.PicklingError, AttributeError, TypeError) as exc:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise MixtuneError(
                f"search.workers {config.workers} sends the model and the search's functions to worker processes, "
                f"and they cannot be pickled ({reason}): set search.workers to 1"
            ) from None
        queue = context.Queue()
        for device in devices[:workers]:
            queue.put(str(device))
        threads = max(1, torch.get_num_threads() // workers) if devices[0].type == "cpu" else torch.get_num_threads()
        precision = runtime.precision if runtime is not None else None
        init = (str(job_file), queue, threads, precision)
        try:
            with ProcessPoolExecutor(workers, mp_context=context, initializer=_start_worker, initargs=init) as pool:
                futures = [pool.submit(_split_in_worker, k, scratch) for k in range(config.splits)]
                with tqdm(total=config.splits, desc=f"search splits ({workers} workers)", disable=not progress, leave=False) as bar:
                    for future in futures:
                        log, val_idx, path = future.result()
                        state = torch.load(path, weights_only=True)
                        os.unlink(path)
                        bar.update(1)
                        yield log, val_idx, state
        except BrokenProcessPool:
            raise RuntimeError("a search worker process died (out of memory?): lower search.workers") from None


_WORKER: dict[str, Any] = {}


def _start_worker(job_file: str, queue: Any, threads: int, precision: str | None) -> None:
    """A search worker: its device from the queue, the job loaded onto it, the run's precision active."""
    torch.set_num_threads(threads)
    device = torch.device(queue.get())
    loaded = torch.load(job_file, map_location=device, weights_only=False)
    if precision is not None:
        stack = contextlib.ExitStack()
        stack.enter_context(activated(Runtime(device, precision)))
        _WORKER["runtime"] = stack  # active for the worker's lifetime
    model = loaded["model"]
    _WORKER.update(model=model, job=loaded["job"], keys=loaded["keys"])
    _WORKER["start"] = {k: v.detach().clone() for k, v in model.state_dict().items()}


def _split_in_worker(k: int, scratch: str) -> tuple[dict[str, Any], list[int], str]:
    log, val_idx, state = run_split(_WORKER["model"], _WORKER["job"], _WORKER["start"], k, progress=False)
    path = Path(scratch) / f"split-{k}.pt"
    torch.save({key: state[key].detach().cpu() for key in _WORKER["keys"]}, path)
    return log, val_idx, str(path)

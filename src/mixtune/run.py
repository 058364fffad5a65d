"""One run end to end: data, subsample, method.fit, evaluation, export, run record.

The output folder is built under a temporary name and renamed only when everything is written,
so a failed or interrupted run never leaves a folder that looks complete. A run holds an exclusive lock
on its output folder (`<out>.lock`, beside it) from before any work to its end: a second run on the same
folder refuses at once instead of sharing `<out>.partial` and failing at the final rename.
"""

from __future__ import annotations

import contextlib
import json
import platform
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from mixtune.config import RunConfig, resolve_defaults, save_yaml
from mixtune.config_checks import validate
from mixtune.data import load_task
from mixtune.data.batching import by_length, clamp_max_length, encode, length_order, make_loader
from mixtune.data.examples import TaskSpec
from mixtune.data.pool_test import with_pool_test
from mixtune.data.sampling import low_resource_indices
from mixtune.device import Runtime, activated, bf16_risk, full_precision, model_device, peak_memory_mb
from mixtune.errors import MixtuneError
from mixtune.heads import pair_encoding_of
from mixtune.layers import reinit_top_layers
from mixtune.methods import Method, method_class
from mixtune.metrics import compact_predictions, evaluate, evaluate_with_predictions, predict_logits
from mixtune.models import load_model
from mixtune.optim import optimizer_path
from mixtune.output_lock import beside, output_lock
from mixtune.paths import check_writable, describe_contents
from mixtune.probe import start_cosine_head
from mixtune.train import FitContext, load_trainable_state, loop_uses_dev, trainable_state
from mixtune.trust import code_hashes

RECORD_FILE = "run.json"
RECORD_VERSION = 2  # 2: mixup alpha kept in full precision under bf16/fp16 (older mixup records are not comparable)
CONFIG_FILE = "config.yaml"
MODEL_DIR = "model"
EXPORT_CHECK_EXAMPLES = 64
# all-mpnet-base-v2 with a head: the largest backbone a default rate was checked on (results/check_mpnet_lr.jsonl)
LARGEST_CHECKED_PARAMETERS = 120_000_000


def library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for package in ("mixtune", "torch", "transformers", "peft", "numpy", "scikit-learn", "scipy"):
        try:
            versions[package] = version(package)
        except PackageNotFoundError:
            versions[package] = "not installed"
    return versions


def default_output_dir(config: RunConfig) -> Path:
    data = config.data.task or Path(config.data.train_file or "data").stem
    size = config.data.train_size if config.data.train_size is not None else "all"
    return Path("runs") / f"{data}-{config.method}-n{size}-s{config.seed}"


@contextlib.contextmanager
def claim_output_dir(path: Path, overwrite: bool) -> Iterator[None]:
    """Before any work, and held to the end: the folder can be written, no other run holds it, and it is new,
    empty, or a run that --overwrite may replace (checked under the lock, so a run that finished meanwhile counts)."""
    check_writable(path, "output folder", folder=True, replaced=True)  # nothing is created where nothing can be
    with output_lock(path):
        check_output_dir(path, overwrite)
        yield


def check_output_dir(path: Path, overwrite: bool) -> None:
    """The folder is new, empty, or a run that --overwrite may replace."""
    if not path.is_dir() or not any(path.iterdir()):
        return
    if not (path / RECORD_FILE).is_file():
        raise MixtuneError(
            f"output folder {path} holds {describe_contents(path)} and no {RECORD_FILE}: it is not a mixtune run; "
            "pass a new or empty --output-dir (--overwrite replaces only a run)"
        )
    if not overwrite:
        raise MixtuneError(f"output folder {path} already holds a run: pass --overwrite or another --output-dir")


def run(
    config: RunConfig,
    progress: bool = True,
    overwrite: bool = False,
    write: bool = True,
    on_trained: Callable[[nn.Module, dict[str, Any]], None] | None = None,
    search_cache: Path | None = None,
) -> dict[str, Any]:
    """Train, evaluate and (if `write`) export one run; returns its record.

    `on_trained(model, record)` sees the trained, evaluated model before export, so a caller can add to
    the record what only the model holds (the benchmark's per-layer alpha summary) without exporting it.
    `search_cache`: a folder where mixup-blo stores and reuses its search phase (see mixtune.mixup.search_cache);
    a run that reused one has "search_cached": true, its time_s.search is the original search's, and
    "cached_search_cpu_s" that search's CPU seconds (cpu_s counts only what this run computed).
    The run computes on config.device in config.precision (mixtune.device); the record's "device" says which.
    """
    validate(config)
    # a GPU that is not there fails here, at once; precision auto becomes fp32 or bf16 (the record says why)
    runtime = Runtime.resolve(config.device, config.precision, bf16_risk(config))
    output = Path(config.output_dir) if config.output_dir else default_output_dir(config)
    with activated(runtime), claim_output_dir(output, overwrite) if write else contextlib.nullcontext():
        return _run(config, output, runtime, progress, overwrite, write, on_trained, search_cache)


def _run(
    config: RunConfig,
    output: Path,
    runtime: Runtime,
    progress: bool,
    overwrite: bool,
    write: bool,
    on_trained: Callable[[nn.Module, dict[str, Any]], None] | None,
    search_cache: Path | None,
) -> dict[str, Any]:
    started, cpu_started = time.perf_counter(), time.process_time()
    # Here, before anything reads the config: the method, the search cache key and the record all see one set of
    # concrete values, while the caller's config (and a benchmark cell's settings hash) keeps only what was set.
    config = resolve_defaults(config)
    config.precision = runtime.precision  # auto's choice, concrete for everything downstream (the search cache)
    method_cls = method_class(config.method)
    task = load_task(config.data)
    spec = task.spec
    if spec.kind == "regression" and not method_cls.supports_regression:
        raise MixtuneError(f"method '{config.method}' does not support regression tasks: choose another method")
    dev_needed = task.dev is None and (method_cls.chooses_on_dev or loop_uses_dev(config.train))
    train_idx, dev_idx = low_resource_indices(len(task.pool), config.data.train_size, config.seed, dev_needed)
    task, pool_test_idx = with_pool_test(task, config.data.pool_test_size, train_idx, dev_idx)  # after: subsets as before
    method = method_cls(config)

    torch.manual_seed(config.seed)
    np.random.seed(config.seed)
    pair_encoding = config.pair_encoding or method_cls.pair_encoding
    tokenizer, model, head = load_model(config.model, spec, config.seed, config.pooling, pair_encoding)
    note_untested_default_rate(model, method, config)
    if config.train.reinit_layers > 0:
        reinit_top_layers(model, config.train.reinit_layers, config.seed)
    runtime.place(model)  # initialised on the CPU (the same head for every device), then moved
    regression = spec.kind == "regression"
    config.train.max_length = clamp_max_length(config.train.max_length, tokenizer, model, method.reserved_positions)
    max_length = config.train.max_length
    train_features = encode(task.pool.subset(train_idx), tokenizer, max_length, regression)
    dev_examples = task.dev if task.dev is not None else task.pool.subset(dev_idx)
    encode_eval = lambda examples: encode(examples, tokenizer, max_length, regression)  # noqa: E731
    loader_of = lambda features: make_loader(features, tokenizer, config.train.eval_batch_size, shuffle=False)  # noqa: E731
    eval_loader = lambda examples: loader_of(by_length(encode_eval(examples)))  # noqa: E731

    dev_features = encode(dev_examples, tokenizer, max_length, regression) if len(dev_examples) else []
    dev_loader = make_loader(by_length(dev_features), tokenizer, config.train.eval_batch_size, shuffle=False)
    ctx = FitContext(
        train_features, tokenizer, config, config.seed, progress=progress, search_cache=search_cache,
        dev_features=dev_features,
        evaluate_dev=(lambda m: evaluate(m, dev_loader, spec)[spec.main_metric]) if dev_features else None,
    )
    if pair_encoding_of(model) == "cosine":
        start_cosine_head(model, ctx)
    model = method.fit(model, ctx)

    eval_started = time.perf_counter()
    metrics, predictions = ({"dev": evaluate(model, dev_loader, spec)} if dev_features else {}), {}
    test_features = {name: encode_eval(examples) for name, examples in task.tests.items()}  # encoded once
    for name, features in test_features.items():
        metrics[name], predictions[name] = score_split(model, features, loader_of, spec)
    last_step = None
    if ctx.last_step_state is not None:
        last_step = last_step_metrics(model, ctx.last_step_state, test_features, loader_of, spec)
    ctx.phase_times["eval"] = time.perf_counter() - eval_started

    record = {
        "record_version": RECORD_VERSION,
        "config": config.to_dict(),
        "method": config.method,
        "hyperparameters": method.hyperparameters(),
        "head": {"pooling": head, "pair_encoding": pair_encoding_of(model)},
        "device": runtime.describe(),
        "optimizer": optimizer_path(runtime.device),
        "task": asdict(spec),
        "data_sources": task.sources,
        "indices": {
            "train": train_idx, "dev": dev_idx if task.dev is None else "dev file",
            **({"pool_test": pool_test_idx} if pool_test_idx is not None else {}),
        },
        "metrics": metrics,
        "predictions": predictions,  # per test split, in example order: class indices, or values at 4 decimals
        "main_metric": spec.main_metric,
        **({"metrics_last_step": last_step} if last_step else {}),
        "log": _jsonable(ctx.log),
        "versions": library_versions(),
    }
    record["time_s"] = {**ctx.phase_times, "total": time.perf_counter() - started}
    record["cpu_s"] = time.process_time() - cpu_started  # all threads: what the run costs even on a busy machine
    record["peak_memory_mb"] = peak_memory_mb()
    if ctx.search_cached:
        record["search_cached"] = True
        if ctx.cached_search_cpu_s is not None:
            record["cached_search_cpu_s"] = ctx.cached_search_cpu_s  # cpu_s leaves it out: this run did not search
    if on_trained is not None:
        on_trained(model, record)
    if not write:
        return record
    partial = beside(output, ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    try:
        record["export"] = _export(method, model, tokenizer, next(iter(task.tests.values())), eval_loader, partial)
        record["export"]["directory"] = str(output / MODEL_DIR)
        save_yaml(config, partial / CONFIG_FILE)
        (partial / RECORD_FILE).write_text(json.dumps(record, indent=1))
        if overwrite and output.exists():
            shutil.rmtree(output)
        partial.rename(output)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return record


def note_untested_default_rate(model: nn.Module, method: Method, config: RunConfig) -> None:
    """A note when a full-finetuning default rate above 5e-5 (mixup-blo's and soup-start's 2e-4, tuned on the 22M
    MiniLM; vanilla at 2e-4 was level with 2e-5 on the 110M MPNet) meets a larger backbone, where published recipes
    use 1e-5 to 5e-5. A note, not a change: the rate stays what the user's config says."""
    if config.train.lr is not None or not method.full_finetuning or method.default_lr <= 5e-5:
        return
    parameters = sum(p.numel() for p in model.parameters())
    if parameters > LARGEST_CHECKED_PARAMETERS:
        print(
            f"mixtune: note: {config.method}'s default lr {method.default_lr:g} was measured on backbones of up to 110M "
            f"parameters; this one has {parameters / 1e6:.0f}M: pass --lr (2e-5 is the usual start at this size)",
            file=sys.stderr,
        )


def score_split(
    model: nn.Module, features: list[dict], loader_of: Callable[[list[dict]], DataLoader], spec: TaskSpec
) -> tuple[dict[str, float], list[int] | list[float]]:
    """One test split's scores and its compact predictions from the same pass; batches run by length (less
    padding), the predictions are put back in the split's example order so seeds and methods line up."""
    order = length_order(features)
    scores, sorted_predictions = evaluate_with_predictions(model, loader_of([features[i] for i in order]), spec)
    predictions = np.empty_like(sorted_predictions)
    predictions[order] = sorted_predictions
    return scores, compact_predictions(spec, predictions)


def last_step_metrics(
    model: nn.Module, last: dict, test_features: dict[str, list[dict]], loader_of: Callable[[list[dict]], DataLoader], spec
) -> dict[str, dict[str, float]]:
    """The test scores of the last step's weights; the model goes back to the selected ones after."""
    selected = trainable_state(model)
    load_trainable_state(model, last)
    scores = {name: evaluate(model, loader_of(by_length(features)), spec) for name, features in test_features.items()}
    load_trainable_state(model, selected)
    return scores


def _export(method, model, tokenizer, test_examples, eval_loader, directory: Path) -> dict:
    """Save the model, reload it with plain transformers and compare logits on test examples.

    Both forward passes run in fp32 on the run's device: the check measures the export, not the precision.
    code_sha256: the hashes of the files that loading the folder runs (mixtune.trust), which predict checks
    before it runs them.
    """
    subset = test_examples.subset(range(min(EXPORT_CHECK_EXAMPLES, len(test_examples))))
    device = model_device(model)
    with full_precision():
        reference, _ = predict_logits(model, eval_loader(subset))
        method.save(model, directory / MODEL_DIR, tokenizer)
        reloaded = type(method).load_saved(directory / MODEL_DIR).to(device)
        exported, _ = predict_logits(reloaded, eval_loader(subset))
    return {
        "max_abs_logit_diff": float(np.abs(reference - exported).max()),
        "checked_examples": len(subset),
        "code_sha256": code_hashes(directory / MODEL_DIR),
    }


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    return value

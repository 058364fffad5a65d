"""A folder of finished mixup-blo searches, so runs that differ only in their finetune phase share one.

The search phase depends only on the model (its weights and architecture, with the seeded head and the
injected alpha), the training features (content: input ids and labels, so the task data and the subset),
the seed, the mixup and search configs, the batch size and max length; not on train.lr or train.epochs.
A sha256 over exactly those is the key, taken on the resolved settings (config.resolve_defaults): a key
left at the form's default and the same value set explicitly key alike. An entry is two files:

    <key>.safetensors   the model's state_dict after repeated_search (every tensor), and the torch RNG
                        state at that moment, the GPU's too when it ran on one (so the finetune that
                        follows draws the same dropout masks)
    <key>.json          what was hashed, the search's log and seconds, the peak memory when it ended

Both are written to a temporary name and renamed (the JSON first: a present .safetensors means a whole
entry). A lock file per key makes a second run of the same search wait for the first, then reuse it.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from mixtune.config import RunConfig, form_defaults, resolve_defaults
from mixtune.device import model_device, peak_memory_mb, rng_state

# Bump when the search's code changes what it produces: old entries are then never hit.
# 2: each split draws its dropout from its own seed, and the RNG state after the search is the one before it
#    (so the K splits can run in parallel processes: search.workers).
CACHE_FORMAT = 2
RNG_STATE = "__mixtune_torch_rng_state__"  # the reserved tensor name of the RNG state in the safetensors file
CUDA_RNG_STATE = "__mixtune_cuda_rng_state__"  # and of the GPU's, for a search that ran on one
MODEL_CONFIG_IGNORED = ("_name_or_path", "transformers_version")  # where the model lives, not what it is


def search_key(model: nn.Module, features: list[dict], config: RunConfig, seed: int) -> tuple[str, dict[str, Any]]:
    """(sha256 hex key, what went into it) for the search `model` is about to run on `features`."""
    config = resolve_defaults(config)
    form = config.mixup.form
    model_config = getattr(model, "config", None)
    architecture = {} if model_config is None else model_config.to_dict()
    inputs = {
        "format": CACHE_FORMAT,
        "torch": torch.__version__,
        "model_state_sha256": state_sha256(model.state_dict()),
        "model_config": {k: v for k, v in architecture.items() if k not in MODEL_CONFIG_IGNORED},
        "features_sha256": features_sha256(features),
        "examples": len(features),
        "seed": seed,
        "mixup": keyed_settings(config.mixup, form_defaults(form, "mixup")),
        "search": keyed_settings(config.search, form_defaults(form, "search")),
        "batch_size": config.train.batch_size,
        "max_length": config.train.max_length,
    }
    device = model_device(model)
    if device.type != "cpu":  # a GPU computes slightly differently: its own entries (CPU keys as before)
        inputs["device"] = f"{device.type}: {torch.cuda.get_device_name(device) if device.type == 'cuda' else ''}"
    if config.precision != "fp32":
        inputs["precision"] = config.precision
    if config.precision == "bf16":  # bf16 searches since issue 30 form the mixup and the finite difference in fp32
        inputs["mixup_precision"] = "fp32"
    text = json.dumps(inputs, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest(), json.loads(text)


# Options added after CACHE_FORMAT 1, at the value that leaves the search as it was (the released one): left out
# of the key at that value, so the searches cached before them stay valid (the released mixup is unchanged).
ADDED_OPTIONS = {
    "granularity": "rank", "init_share": 0.5, "alpha_lr_sum": None, "outer_full_split": False, "outer_dropout": True
}


def keyed_settings(section: Any, form_values: dict[str, Any]) -> dict[str, Any]:
    """A resolved mixup or search config as the key sees it: every field, except added options at their old value.

    A value equal to the form's default (`form_values`) keys as that default, and whole epochs key as a whole
    number: an explicit `search.epochs: 3`, read as 3.0, keys as the paper's default 3 did. fd_precondition (and the bit-exact restore that came with it)
    changes finite-difference searches, so it is keyed whenever the hypergradient is finite-difference, and left
    out when it has no effect (first order).
    """
    values = asdict(section)
    values.update({name: value for name, value in form_values.items() if values[name] == value})
    if isinstance(values.get("epochs"), float) and values["epochs"].is_integer():
        values["epochs"] = int(values["epochs"])
    for name, old in ADDED_OPTIONS.items():
        if name in values and values[name] == old:
            del values[name]
    if values.get("hypergradient") == "first-order":
        values.pop("fd_precondition", None)
    values.pop("workers", None)  # how many processes ran the splits, not what they computed
    return values


def state_sha256(state: Mapping[str, torch.Tensor]) -> str:
    """sha256 of every tensor's name, dtype, shape and bytes, in name order."""
    digest = hashlib.sha256()
    for name in sorted(state):
        tensor = state[name].detach().cpu().contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}\n".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy())
    return digest.hexdigest()


def features_sha256(features: list[dict]) -> str:
    """sha256 of the encoded examples in order (input ids, masks, labels): the data and the subset, by content."""
    text = json.dumps(features, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass
class CachedSearch:
    state: dict[str, torch.Tensor]
    rng_state: torch.Tensor
    info: dict[str, Any]
    cuda_rng_state: torch.Tensor | None = None  # the GPU generator's, when the search ran on one


@dataclass
class SearchCache:
    directory: Path

    def state_path(self, key: str) -> Path:
        return self.directory / f"{key}.safetensors"

    def info_path(self, key: str) -> Path:
        return self.directory / f"{key}.json"

    @contextlib.contextmanager
    def locked(self, key: str) -> Iterator[None]:
        """Hold the key's lock: one process searches, the others wait and then find the entry."""
        self.directory.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.directory / f"{key}.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # also releases the lock

    def load(self, key: str) -> CachedSearch | None:
        if not self.state_path(key).is_file():
            return None
        state = load_file(str(self.state_path(key)))
        rng_state = state.pop(RNG_STATE)
        cuda_rng_state = state.pop(CUDA_RNG_STATE, None)
        return CachedSearch(state, rng_state, json.loads(self.info_path(key).read_text()), cuda_rng_state)

    def save(
        self, key: str, model: nn.Module, inputs: dict[str, Any], log: dict[str, Any], seconds: float, cpu_seconds: float
    ) -> None:
        """Store the model's current state and RNG state with the search's log and cost (wall and CPU seconds:
        a run that reuses the entry is priced with the search it did not run), atomically."""
        info = {
            "key": key,
            "inputs": inputs,
            "seconds": seconds,
            "cpu_seconds": cpu_seconds,
            "peak_memory_mb": peak_memory_mb(),
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "log": log,
        }
        tensors = {name: value.detach().cpu().contiguous().clone() for name, value in model.state_dict().items()}
        for name, value in rng_state(model_device(model)).items():
            tensors[CUDA_RNG_STATE if name == "cuda" else RNG_STATE] = value
        _atomic_write(self.info_path(key), lambda tmp: tmp.write_text(json.dumps(info, indent=1)))
        _atomic_write(self.state_path(key), lambda tmp: save_file(tensors, str(tmp)))


def _atomic_write(path: Path, write: Callable[[Path], object]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise

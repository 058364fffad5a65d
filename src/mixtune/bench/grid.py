"""The benchmark grid: a YAML file naming models x tasks x train sizes x methods x seeds, expanded into cells.

    results: results/table.jsonl          # optional; default results/<config stem>.jsonl
    base: {data: {data_dir: ...}, train: {max_length: 128}}   # run-config values shared by every cell
    overrides:                            # per method (or per labelled variant) on top of base
      lora: {train: {lr: 5.0e-4}}
      vanilla-released: {method: vanilla, train: {lr: 2.0e-5, epochs: 3}}   # a variant: its own row
    tasks: [rte]                          # the axes: at the top level, or per block under grids:
    sizes: [300]
    methods: [vanilla, mixup-blo]
    seeds: [1, 2, 3]
    grids:                                # optional; each block's missing axes come from the top level
      - {tasks: [rte, mrpc], methods: [joint, random-alpha]}

Relative paths (results, data_dir) are taken from the working directory, as `mixtune train` does.
A cell's key includes a short hash of its effective settings (everything that differs from the defaults,
except the grid's own axes and where the data lives), so changing an override makes new cells.
"""

from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mixtune.config import RunConfig, build_config, load_yaml
from mixtune.data.glue import glue_task
from mixtune.errors import MixtuneError
from mixtune.methods import METHODS
from mixtune.methods.base import parse_hyperparameters
from mixtune.models import resolve_model

AXES = ("models", "tasks", "sizes", "methods", "seeds")
TOP_KEYS = ("results", "base", "overrides", "grids", *AXES)
KEY_FIELDS = ("model", "task", "size", "method", "seed", "config_hash")
# Set by the grid only; and left out of the settings hash together with where data and output live.
GRID_OWNED = ("method", "model", "seed", "data.task", "data.train_size")
UNHASHED = {*GRID_OWNED, "output_dir", "data.data_dir"}
HASH_CHARS = 8


@dataclass(frozen=True)
class Cell:
    """One run of the grid. `method` is the row label: a method name or a variant defined in overrides."""

    model: str | None
    task: str
    size: int | None
    method: str
    seed: int
    config_hash: str
    values: dict[str, Any] = field(compare=False, hash=False, repr=False)  # nested values for build_config

    @property
    def key(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in KEY_FIELDS}

    @property
    def id(self) -> str:
        return cell_id(self.key)

    def describe(self) -> str:
        size = "all" if self.size is None else self.size
        model = "" if self.model is None else f" {Path(self.model).name}"
        return f"{self.task} {self.method} n{size} s{self.seed}{model}"


@dataclass
class Grid:
    cells: list[Cell]
    skipped: list[str]  # why some combinations are not cells (a method that cannot do regression)
    results: Path


def cell_id(key: dict[str, Any]) -> str:
    """A cell's identity as one string (results lines are matched to cells by it)."""
    return "|".join(str(key.get(name)) for name in KEY_FIELDS)


def load_grid(path: str | Path, results: str | Path | None = None) -> Grid:
    """Read, validate and expand a bench config; `results` (the --results flag) beats its results: key."""
    path = Path(path)
    values = load_yaml(path)
    _check_keys(values, TOP_KEYS, "bench config")
    base = _mapping(values.get("base"), "base")
    overrides = _mapping(values.get("overrides"), "overrides")
    for key in GRID_OWNED:
        if _has_dotted(base, key):
            raise MixtuneError(f"bench config base sets '{key}': the grid sets it; list it under the grid's axes instead")
    labels = {label: _variant(label, spec) for label, spec in overrides.items()}
    blocks = values.get("grids")
    if blocks is None:
        blocks = [{}]
    if not isinstance(blocks, list) or not blocks:
        raise MixtuneError("bench config key 'grids' must be a list of blocks, each with its own tasks/methods/sizes/seeds")
    cells: dict[str, Cell] = {}
    skipped: list[str] = []
    for number, block in enumerate(blocks):
        where = f"grids[{number}]" if "grids" in values else "bench config"
        block = _mapping(block, where)
        _check_keys(block, AXES, where)
        axes = {axis: _axis(block.get(axis, values.get(axis)), axis, where) for axis in AXES}
        for cell in _expand(axes, base, labels, skipped, where):
            cells.setdefault(cell.id, cell)
    return Grid(list(cells.values()), skipped, _results_path(path, results or values.get("results")))


def _results_path(config: Path, given: object) -> Path:
    if given is None:
        return Path("results") / f"{config.stem}.jsonl"
    if not isinstance(given, (str, Path)):
        raise MixtuneError(f"bench config key 'results' must be a file path, got {given!r}")
    return Path(given)


def _check_keys(mapping: dict, allowed: tuple[str, ...], where: str) -> None:
    for key in mapping:
        if key not in allowed:
            raise MixtuneError(f"unknown key '{key}' in {where}: valid keys are {', '.join(allowed)}")


def _mapping(value: Any, where: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise MixtuneError(f"bench config key '{where}' must be a mapping, got {value!r}")
    return value


def _has_dotted(values: dict, dotted: str) -> bool:
    node: Any = values
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


def _variant(label: str, spec: Any) -> tuple[str, dict]:
    """(method name, override values) for an overrides entry: a method's own, or a labelled variant."""
    spec = dict(_mapping(spec, f"overrides.{label}"))
    method = spec.pop("method", label)
    if label in METHODS and method != label:
        raise MixtuneError(f"bench config overrides.{label} sets method: {method}: give this variant a name that is not a method")
    if method not in METHODS:
        raise MixtuneError(
            f"bench config overrides.{label}: unknown method '{method}': use one of {', '.join(sorted(METHODS))}, "
            f"or add method: <one of them> to make '{label}' a labelled variant"
        )
    for key in GRID_OWNED:
        if _has_dotted(spec, key):
            raise MixtuneError(f"bench config overrides.{label} sets '{key}': the grid sets it; remove it there")
    return method, spec


def _axis(value: Any, axis: str, where: str) -> list:
    if value is None:
        if axis == "models":
            return [None]  # the packaged default model
        raise MixtuneError(f"{where} gives no {axis}: list them, e.g. {axis}: [...]")
    items = value if isinstance(value, list) else [value]
    if not items:
        raise MixtuneError(f"{where}: {axis} is empty: list at least one")
    return [_axis_item(item, axis, where) for item in items]


def _axis_item(item: Any, axis: str, where: str) -> Any:
    if axis == "tasks":
        if not isinstance(item, str):
            raise MixtuneError(f"{where}: task {item!r} is not a name: write e.g. tasks: [rte, mrpc]")
        return glue_task(item).spec.name
    if axis == "seeds":
        if isinstance(item, int) and not isinstance(item, bool):
            return item
        raise MixtuneError(f"{where}: seed {item!r} must be a whole number: write e.g. seeds: [1, 2, 3]")
    if axis == "sizes":
        if item is None or (isinstance(item, int) and not isinstance(item, bool) and item >= 1):
            return item
        raise MixtuneError(f"{where}: size {item!r} must be a whole number >= 1 (or null for the whole pool)")
    if item is not None and not isinstance(item, str):
        raise MixtuneError(f"{where}: {axis} entry {item!r} must be a name")
    if axis == "models" and item is not None:
        resolve_model(item)  # a missing model folder fails here, not in every run
    return item


def _expand(axes: dict[str, list], base: dict, labels: dict[str, tuple[str, dict]], skipped: list[str], where: str):
    """Every cell of one block, in table order: model, size, task, method, seed."""
    for model in axes["models"]:
        for size in axes["sizes"]:
            for task in axes["tasks"]:
                for label in axes["methods"]:
                    method, override = _resolve_label(label, labels, where)
                    if glue_task(task).spec.kind == "regression" and not METHODS[method].supports_regression:
                        skipped.append(f"{task} x {label}: {method} does not support regression")
                        continue
                    for seed in axes["seeds"]:
                        yield make_cell(model, task, size, label, method, seed, deep_merge(base, override))


def _resolve_label(label: str, labels: dict[str, tuple[str, dict]], where: str) -> tuple[str, dict]:
    if label in labels:
        return labels[label]
    if label in METHODS:
        return label, {}
    raise MixtuneError(
        f"{where}: unknown method '{label}': choose one of {', '.join(sorted(METHODS))}, "
        "or define it as a variant under overrides: with a method: key"
    )


def make_cell(model: str | None, task: str, size: int | None, label: str, method: str, seed: int, settings: dict) -> Cell:
    """A cell with its validated run-config values (errors name the method whose settings are wrong)."""
    values = copy.deepcopy(settings)
    values.update(method=method, model=model, seed=seed)
    values.setdefault("data", {}).update(task=task, train_size=size)
    try:
        config = build_config(copy.deepcopy(values))
        parse_hyperparameters(METHODS[method].Hyperparameters, config.method_args, method)
    except MixtuneError as exc:
        raise MixtuneError(f"bench config (base + overrides of {label}): {exc}") from None
    _check_data_dir(config)
    return Cell(model, task, size, label, seed, settings_hash(config), values)


def _check_data_dir(config: RunConfig) -> None:
    data_dir = config.data.data_dir
    if data_dir and not Path(data_dir).is_dir():
        raise MixtuneError(
            f"bench config data_dir {data_dir} does not exist (relative to {Path.cwd()}): "
            "fix the path or run from the folder it is relative to"
        )


def settings_hash(config: RunConfig) -> str:
    """Short hash of the settings that differ from the defaults, minus the grid axes and data location."""
    defaults = _flatten(RunConfig().to_dict())
    changed = {k: v for k, v in _flatten(config.to_dict()).items() if k not in UNHASHED and defaults.get(k) != v}
    text = json.dumps(changed, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:HASH_CHARS]


def _flatten(values: dict, prefix: str = "") -> dict[str, Any]:
    flat = {}
    for key, value in values.items():
        if isinstance(value, dict) and value:
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def deep_merge(base: dict, extra: dict) -> dict:
    """base with extra on top, nested mappings merged key by key (neither input is changed)."""
    merged = copy.deepcopy(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged

"""The benchmark grid: a YAML file naming models x tasks x train sizes x methods x seeds, expanded into cells.

    results: results/table.jsonl          # optional; default results/<config stem>.jsonl
    search_cache: runs/search-cache       # optional: mixup-blo runs share searches through this folder
    resources: {gpus: 1}                  # optional, for --backend ray: what each run asks of the cluster
    order: seeds-first                    # optional: run every cell of seed 1 first (default: table order)
    base: {data: {data_dir: ...}, train: {max_length: 128}}   # run-config values shared by every cell
    overrides_file: benchmarks/tuned.yaml # optional: more overrides (e.g. from `mixtune select`), under
    overrides:                            # these own ones (a key set in both: the own value wins)
      lora: {train: {lr: 5.0e-4}}
      joint: {tuned_as: mixup-blo}        # take the overrides_file's mixup-blo entry (ablations share its settings)
      vanilla-released: {method: vanilla, train: {lr: 2.0e-5, epochs: 3}}   # a variant: its own row
      vanilla: {sweep: {train.lr: [2.0e-5, 1.0e-4]}}   # one row per value: vanilla[lr=2e-05], vanilla[lr=1e-04]
    sweep: {train.epochs: [3, 10]}        # optional: swept for every method (a block may set its own)
    tasks: [rte]                          # the axes: at the top level, or per block under grids:
    sizes: [300]
    methods: [vanilla, mixup-blo]
    seeds: [1, 2, 3]
    grids:                                # optional; each block's missing axes (and sweep) come from the top
      - {tasks: [rte, mrpc], methods: [joint, random-alpha]}
    headline_tasks: [rte]                 # optional, read by mixtune report --config: named before the run (Protocol)
    rivals: [joint]                       # optional: the rows the report judges the focus method against

A sweep maps dotted run-config keys to lists of values; a method (or variant) with one becomes one
labelled row per combination, e.g. vanilla[lr=2e-05,epochs=3]. The method's own sweep comes first in the
label and wins over the block's for the same key.
Relative paths (results, search_cache, overrides_file, data_dir) are taken from the working directory, as
`mixtune train` does. A cell's key includes a short hash of its resolved settings (settings_hash: every value the
run uses, the method's own defaults included, except the grid's own axes and where the data lives, and the record
format version), so changing an override or a default makes new cells.
"""

from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mixtune.bench.checks import GRID_OWNED, check_keys, deep_merge, has_dotted, mapping, optional_path
from mixtune.bench.overrides import Variant, load_variants, parse_sweep, resolve_label, sweep_rows
from mixtune.config import RunConfig, build_config, load_yaml, resolve_defaults
from mixtune.data.glue import glue_task
from mixtune.errors import MixtuneError
from mixtune.methods import METHODS, make_method
from mixtune.methods.base import parse_hyperparameters
from mixtune.models import resolve_model
from mixtune.run import RECORD_VERSION

AXES = ("models", "tasks", "sizes", "methods", "seeds")
BLOCK_KEYS = (*AXES, "sweep")
PROTOCOL_KEYS = ("headline_tasks", "rivals")  # what the report judges, named before the run (Protocol)
TOP_KEYS = ("results", "base", "overrides", "overrides_file", "search_cache", "order", "resources", "grids")
TOP_KEYS += (*PROTOCOL_KEYS, *BLOCK_KEYS)
RESOURCE_KEYS = ("cpus", "gpus")
ORDERS = ("table", "seeds-first")
KEY_FIELDS = ("model", "task", "size", "method", "seed", "config_hash")
# GRID_OWNED (set by the grid only) is left out of the settings hash together with where data and output live.
# Where and how fast a run computes, not what it computes: moving a sweep to GPUs resumes it (records say the device).
UNHASHED = {*GRID_OWNED, "output_dir", "data.data_dir", "device", "search.workers"}
RESOLVED_BY_METHOD = ("train.lr", "train.epochs", "method_args")  # hashed as the method resolves them (its defaults)
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
    settings_from: str | None = field(default=None, compare=False)  # the overrides_file its settings came from

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


@dataclass(frozen=True)
class Protocol:
    """What the report judges, fixed in the grid config before any run so no test score can choose it: the headline
    tasks (the verdict is given again on them alone) and the rivals (the rows the focus method is judged against;
    empty: every row)."""

    headline_tasks: tuple[str, ...] = ()
    rivals: tuple[str, ...] = ()


@dataclass
class Grid:
    cells: list[Cell]
    skipped: list[str]  # why some combinations are not cells (a method that cannot do regression)
    results: Path
    search_cache: Path | None = None
    resources: dict[str, float] | None = None  # each run's request under --backend ray ({cpus: N} / {gpus: 1})
    protocol: Protocol = field(default_factory=Protocol)


def cell_id(key: dict[str, Any]) -> str:
    """A cell's identity as one string (results lines are matched to cells by it)."""
    return "|".join(str(key.get(name)) for name in KEY_FIELDS)


def load_grid(path: str | Path, results: str | Path | None = None) -> Grid:
    """Read, validate and expand a bench config; `results` (the --results flag) beats its results: key."""
    path = Path(path)
    values = load_yaml(path)
    check_keys(values, TOP_KEYS, "bench config")
    base = mapping(values.get("base"), "base")
    for key in GRID_OWNED:
        if has_dotted(base, key):
            raise MixtuneError(f"bench config base sets '{key}': the grid sets it; list it under the grid's axes instead")
    labels = load_variants(mapping(values.get("overrides"), "overrides"), values.get("overrides_file"))
    top_sweep = parse_sweep(values.get("sweep"), "sweep")
    blocks = [{}] if values.get("grids") is None else values["grids"]
    if not isinstance(blocks, list) or not blocks:
        raise MixtuneError("bench config key 'grids' must be a list of blocks, each with its own tasks/methods/sizes/seeds")
    cells: dict[str, Cell] = {}
    skipped: list[str] = []
    protocol = load_protocol(path, values)
    for number, block in enumerate(blocks):
        where = f"grids[{number}]" if "grids" in values else "bench config"
        block = mapping(block, where)
        check_keys(block, BLOCK_KEYS, where)
        axes = {axis: _axis(block.get(axis, values.get(axis)), axis, where) for axis in AXES}
        sweep = parse_sweep(block["sweep"], f"{where}.sweep") if "sweep" in block else top_sweep
        for cell in _expand(axes, base, labels, sweep, skipped, where):
            cells.setdefault(cell.id, cell)
    if unknown := [r for r in protocol.rivals if r not in {c.method.split("[")[0] for c in cells.values()}]:
        raise MixtuneError(f"{path}: rivals {', '.join(unknown)} are not rows of the grid: list them under methods")
    search_cache = optional_path(values.get("search_cache"), "search_cache", "folder")
    in_order = _ordered(list(cells.values()), values.get("order", "table"))
    results = optional_path(results or values.get("results"), "results") or Path("results") / f"{path.stem}.jsonl"
    return Grid(in_order, skipped, results, search_cache, _resources(values.get("resources")), protocol)


def load_protocol(path: str | Path, values: dict[str, Any] | None = None) -> Protocol:
    """The headline tasks and rivals of a grid config (mixtune report --config), without expanding its cells."""
    values = load_yaml(path) if values is None else values
    for key in PROTOCOL_KEYS:
        given = values.get(key, [])
        if not isinstance(given, list) or not all(isinstance(item, str) for item in given):
            raise MixtuneError(f"{path}: {key} must be a list of names, e.g. {key}: [sst2, stsb]")
    headline = tuple(_axis_item(task, "tasks", f"{path} headline_tasks") for task in values.get("headline_tasks", []))
    return Protocol(headline, tuple(values.get("rivals", [])))


def _resources(value: Any) -> dict[str, float] | None:
    """The per-run resource request: {cpus: N} and/or {gpus: G}, non-negative numbers, not both zero."""
    if value is None:
        return None
    resources = mapping(value, "resources")
    check_keys(resources, RESOURCE_KEYS, "bench config resources")
    for key, amount in resources.items():
        if isinstance(amount, bool) or not isinstance(amount, (int, float)) or amount < 0:
            raise MixtuneError(f"bench config resources.{key} must be a number >= 0, got {amount!r}: write e.g. resources: {{gpus: 1}}")
    if not any(resources.values()):
        raise MixtuneError("bench config resources asks for nothing: write e.g. resources: {cpus: 1} or {gpus: 1}")
    return {key: float(amount) for key, amount in resources.items()}


def _ordered(cells: list[Cell], order: object) -> list[Cell]:
    """The run order. table: model, size, task, method, seed (blocks in turn); seeds-first: every cell of
    seed 1 (in table order), then seed 2, ..., so a sweep stopped early still covers every (task, method)."""
    if order not in ORDERS:
        raise MixtuneError(f"bench config order: {order!r} is not known: use one of {', '.join(ORDERS)}")
    if order == "table":
        return cells
    seeds = list(dict.fromkeys(cell.seed for cell in cells))
    return sorted(cells, key=lambda cell: seeds.index(cell.seed))


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


def _expand(
    axes: dict[str, list], base: dict, labels: dict[str, Variant], sweep: dict[str, list], skipped: list[str], where: str
):
    """Every cell of one block, in table order: model, size, task, method (each sweep row in turn), seed."""
    variants = {label: resolve_label(label, labels, where) for label in axes["methods"]}
    rows = {label: sweep_rows(label, variant, sweep, where) for label, variant in variants.items()}
    for model in axes["models"]:
        for size in axes["sizes"]:
            for task in axes["tasks"]:
                for label, variant in variants.items():
                    if glue_task(task).spec.kind == "regression" and not METHODS[variant.method].supports_regression:
                        skipped.append(f"{task} x {label}: {variant.method} does not support regression")
                        continue
                    for row, override in rows[label]:
                        for seed in axes["seeds"]:
                            settings = deep_merge(base, override)
                            yield make_cell(model, task, size, row, variant.method, seed, settings, variant.settings_from)


def make_cell(
    model: str | None, task: str, size: int | None, label: str, method: str, seed: int, settings: dict, settings_from: str | None,
) -> Cell:
    """A cell with its validated run-config values (errors name the method whose settings are wrong)."""
    values = copy.deepcopy(settings)
    values.update(method=method, model=model, seed=seed)
    values.setdefault("data", {}).update(task=task, train_size=size)
    try:
        config = build_config(copy.deepcopy(values))
        parse_hyperparameters(METHODS[method].Hyperparameters, config.method_args, method)
    except MixtuneError as exc:
        raise MixtuneError(f"bench config (base + overrides of {label}): {exc}") from None
    if config.data.data_dir and not Path(config.data.data_dir).is_dir():
        raise MixtuneError(
            f"bench config data_dir {config.data.data_dir} does not exist (relative to {Path.cwd()}): "
            "fix the path or run from the folder it is relative to"
        )
    return Cell(model, task, size, label, seed, settings_hash(config), values, settings_from)


def settings_hash(config: RunConfig) -> str:
    """Short hash of everything the run computes with: the config as the run resolves it (form defaults filled in)
    minus the grid axes and where data and output live, the method's resolved hyperparameters (its own default lr
    and epochs included), and the record format version. A changed default anywhere makes new cells."""
    resolved = resolve_defaults(config)
    settings = {
        k: v for k, v in flatten(resolved.to_dict()).items() if k not in UNHASHED and not k.startswith(RESOLVED_BY_METHOD)
    }
    payload = {"record_version": RECORD_VERSION, "settings": settings, "method": make_method(resolved).hyperparameters()}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:HASH_CHARS]


def flatten(values: dict, prefix: str = "") -> dict[str, Any]:
    """Nested values as dotted keys: {"train": {"lr": 1}} -> {"train.lr": 1}."""
    flat = {}
    for key, value in values.items():
        if isinstance(value, dict) and value:
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat

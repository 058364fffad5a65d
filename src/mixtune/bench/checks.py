"""Small checks shared by the parts of a bench config: key names, mappings, paths, and merging values."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from mixtune.errors import MixtuneError

# Set by the grid only (its axes); an override or sweep that sets one is refused.
GRID_OWNED = ("method", "model", "seed", "data.task", "data.train_size")


def check_keys(mapping: dict, allowed: tuple[str, ...], where: str) -> None:
    for key in mapping:
        if key not in allowed:
            raise MixtuneError(f"unknown key '{key}' in {where}: valid keys are {', '.join(allowed)}")


def mapping(value: Any, where: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise MixtuneError(f"bench config key '{where}' must be a mapping, got {value!r}")
    return value


def optional_path(given: object, key: str, kind: str = "file") -> Path | None:
    if given is None:
        return None
    if not isinstance(given, (str, Path)) or not str(given):
        raise MixtuneError(f"bench config key '{key}' must be a {kind} path, got {given!r}")
    return Path(given)


def has_dotted(values: dict, dotted: str) -> bool:
    node: Any = values
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


def deep_merge(base: dict, extra: dict) -> dict:
    """base with extra on top, nested mappings merged key by key (neither input is changed)."""
    merged = copy.deepcopy(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged

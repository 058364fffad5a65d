"""The overrides: and sweep: parts of a bench config: named variants of methods, and the rows their sweeps make.

An overrides entry is a method's own settings or a labelled variant (method: NAME); overrides_file entries
(e.g. from `mixtune select`) sit under the config's own, and tuned_as borrows another entry's settings.
"""

from __future__ import annotations

import copy
import itertools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mixtune.bench.checks import GRID_OWNED, deep_merge, has_dotted, mapping, optional_path
from mixtune.config import build_config, load_yaml, set_dotted
from mixtune.errors import MixtuneError
from mixtune.methods import METHODS


@dataclass(frozen=True)
class Variant:
    """An overrides entry: the method it runs, its override values, its own sweep, where they came from."""

    method: str
    values: dict[str, Any]
    sweep: dict[str, list]
    settings_from: str | None = None


def load_variants(own: dict, overrides_file: object) -> dict[str, Variant]:
    """Every overrides entry, those of overrides_file merged under the config's own (own keys win)."""
    source = optional_path(overrides_file, "overrides_file")
    if source is not None and not source.is_file():
        raise MixtuneError(
            f"bench config overrides_file {source} does not exist (relative to {Path.cwd()}): run the tuning first "
            f"(mixtune bench <tuning config>, then mixtune select <its results> --out {source})"
        )
    given, origin = ({}, None) if source is None else (load_yaml(source), _describe_source(source))
    labels = {}
    for label in [*own, *(label for label in given if label not in own)]:
        spec = dict(mapping(own.get(label), f"overrides.{label}"))
        entry = spec.pop("tuned_as", label)
        if entry not in given:
            if entry != label and source is None:
                raise MixtuneError(f"bench config overrides.{label} has tuned_as but the config has no overrides_file: add one or remove tuned_as")
            if entry != label:
                raise MixtuneError(
                    f"bench config overrides.{label} has tuned_as: {entry}, but {source} has no entry '{entry}': "
                    f"use one of {', '.join(given) or '(none)'}"
                )
            labels[label] = _variant(label, spec)
            continue
        merged = deep_merge(mapping(given[entry], f"{source}: {entry}"), spec)
        labels[label] = _variant(label, merged, origin if entry == label else f"{origin} (the {entry} entry)")
    return labels


def _describe_source(source: Path) -> str:
    """The overrides file and the first line of its header comment (`mixtune select` says what it chose from)."""
    for line in source.read_text().splitlines():
        if not line.startswith("#"):
            break
        if text := line.lstrip("#").strip():
            return f"{source}: {text}"
    return str(source)


def _variant(label: str, spec: dict, settings_from: str | None = None) -> Variant:
    """An overrides entry: a method's own, or a labelled variant (with method: NAME); maybe with a sweep."""
    method = spec.pop("method", label)
    sweep = parse_sweep(spec.pop("sweep", None), f"overrides.{label}.sweep")
    if label in METHODS and method != label:
        raise MixtuneError(f"bench config overrides.{label} sets method: {method}: give this variant a name that is not a method")
    if method not in METHODS:
        raise MixtuneError(
            f"bench config overrides.{label}: unknown method '{method}': use one of {', '.join(sorted(METHODS))}, "
            f"or add method: <one of them> to make '{label}' a labelled variant"
        )
    for key in GRID_OWNED:
        if has_dotted(spec, key):
            raise MixtuneError(f"bench config overrides.{label} sets '{key}': the grid sets it; remove it there")
    for key in sweep:
        if has_dotted(spec, key):
            raise MixtuneError(f"bench config overrides.{label} sets '{key}' and also sweeps it: keep one of the two")
    return Variant(method, spec, sweep, settings_from)


def resolve_label(label: str, labels: dict[str, Variant], where: str) -> Variant:
    if label in labels:
        return labels[label]
    if label in METHODS:
        return Variant(label, {}, {})
    raise MixtuneError(
        f"{where}: unknown method '{label}': choose one of {', '.join(sorted(METHODS))}, "
        "or define it as a variant under overrides: with a method: key"
    )


def parse_sweep(value: Any, where: str) -> dict[str, list]:
    """A sweep: dotted run-config keys to non-empty lists of distinct values, each checked by build_config."""
    sweep = mapping(value, where)
    for key, items in sweep.items():
        if not isinstance(key, str) or not key:
            raise MixtuneError(f"bench config {where}: key {key!r} is not a dotted config key such as train.lr")
        if key in GRID_OWNED or any(key.startswith(f"{owned}.") for owned in GRID_OWNED):
            raise MixtuneError(f"bench config {where} sweeps '{key}': the grid sets it; list values under the grid's axes")
        if not isinstance(items, list) or not items:
            raise MixtuneError(f"bench config {where}: '{key}' must be a non-empty list of values, e.g. {key}: [1, 2]")
        shown = [_short(item) for item in items]
        if len(set(shown)) != len(shown):
            raise MixtuneError(f"bench config {where}: '{key}' lists a value twice ({', '.join(shown)})")
        for item in items:
            values: dict[str, Any] = {}
            set_dotted(values, key, copy.deepcopy(item))
            try:
                build_config(values)
            except MixtuneError as exc:
                raise MixtuneError(f"bench config {where}: {exc}") from None
    return sweep


def sweep_rows(label: str, variant: Variant, block_sweep: dict[str, list], where: str) -> list[tuple[str, dict]]:
    """(row label, override values) for every combination of the variant's sweep and the block's: the variant's own
    keys come first and win over the block's; with no sweep, the variant itself."""
    sweep = {**variant.sweep, **{k: v for k, v in block_sweep.items() if k not in variant.sweep}}
    if not sweep:
        return [(label, variant.values)]
    for key in sweep:
        if key not in variant.sweep and has_dotted(variant.values, key):
            raise MixtuneError(f"bench config {where} sweeps '{key}', which overrides.{label} sets: keep one of the two")
    names = _sweep_names(list(sweep))
    rows = []
    for combination in itertools.product(*sweep.values()):
        values = copy.deepcopy(variant.values)
        for key, value in zip(sweep, combination):
            set_dotted(values, key, copy.deepcopy(value))
        shown = ",".join(f"{names[key]}={_short(value)}" for key, value in zip(sweep, combination))
        rows.append((f"{label}[{shown}]", values))
    return rows


def _sweep_names(keys: list[str]) -> dict[str, str]:
    """Each key's name in a row label: its last part (lr), or the whole key where two share a last part."""
    last = [key.rsplit(".", 1)[-1] for key in keys]
    return {key: name if last.count(name) == 1 else key for key, name in zip(keys, last)}


def _short(value: Any) -> str:
    """A compact label text: 3.0 -> 3, 0.0001 -> 1e-04, 0.00125 -> 1.25e-03, 0.3 -> 0.3, None -> null."""
    if value is None or isinstance(value, bool):
        return json.dumps(value)
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e6:
            return str(int(value))
        if value != 0 and not 1e-2 <= abs(value) < 1e6:
            mantissa, exponent = f"{value:.14e}".split("e")
            return f"{float(mantissa):.15g}e{exponent}"
        return repr(value)
    if isinstance(value, (int, str)):
        return str(value)
    return json.dumps(value, separators=(",", ":"), sort_keys=True, default=str)

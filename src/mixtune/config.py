"""Run configuration: nested dataclasses, loadable from YAML, overridable from the command line.

Every field has the released code's value as its default unless docs/usage.md says otherwise; a field that depends
on the mixup form defaults to None, "the form's default" (FORM_DEFAULTS), filled in when a run starts.
Unknown keys and values of the wrong type raise MixtuneError naming the key and the fix.
"""

from __future__ import annotations

import copy
import dataclasses
import types
import typing
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, TypeVar

import yaml

from mixtune.errors import MixtuneError
from mixtune.method_names import OWN_AVERAGES

# Sentence pairs: joint (a cross-encoder), separate (a bi-encoder over [u, v, |u - v|, u * v]) or cosine (a
# bi-encoder scoring the cosine similarity of u and v); the last two need a pooled head (mixtune.heads).
# auto: cosine for similarity scores (regression) on a sentence-embedding backbone, joint otherwise.
PAIR_ENCODINGS = ("auto", "joint", "separate", "cosine")

# The mixup form a config without mixup.form runs; its values below are what its unset keys take. released: the best
# mean dev score of issue #12's pilot (benchmarks/pilot_mixup.yaml, `mixtune select --by method`), ahead of share.
DEFAULT_MIXUP_FORM = "released"
# Each form's values of the keys that depend on it (left at None in a config: "the form's default"). released and
# convex: the paper's search, at 2 epochs a split where the paper runs 3 (issue 32's pilot: the cheaper search with a
# masked finetune, benchmarks/pilot_promise.yaml); share: the pilot's search for the form whose alpha learns
# (granularity module won over row there). Epochs are floats, as a value set in a config is stored: a config that
# pins a default then hashes as the default did (bench.grid.settings_hash).
_RELEASED_SETTINGS = {
    "mixup.granularity": "rank",
    "search.epochs": 2.0,
    "search.unroll_steps": 1,
    "search.outer_full_split": False,
    "search.outer_dropout": True,
    "search.alpha_lr": 2e-3,
    "search.alpha_lr_sum": None,
}
FORM_DEFAULTS: dict[str, dict[str, Any]] = {
    "released": _RELEASED_SETTINGS,
    "convex": dict(_RELEASED_SETTINGS),
    "share": {
        "mixup.granularity": "module",
        "search.epochs": 2.0,
        "search.unroll_steps": 5,
        "search.outer_full_split": True,
        "search.outer_dropout": False,
        "search.alpha_lr": 2e-3,
        "search.alpha_lr_sum": 1.0,
    },
}
Section = TypeVar("Section")


def form_defaults(form: str | None, section: str) -> dict[str, Any]:
    """One section's keys of the form's FORM_DEFAULTS entry (None: DEFAULT_MIXUP_FORM), without the section."""
    prefix = f"{section}."
    values = FORM_DEFAULTS[form or DEFAULT_MIXUP_FORM]
    return {key.removeprefix(prefix): value for key, value in values.items() if key.startswith(prefix)}


def _filled(section: Section, values: dict[str, Any]) -> Section:
    """A copy of `section` whose None fields take `values` (a set field keeps its own value)."""
    return dataclasses.replace(section, **{k: v for k, v in values.items() if getattr(section, k) is None})


@dataclass
class TrainConfig:
    """The ordinary training loop (vanilla, baselines, and the finetune phase of mixup-blo).

    lr and epochs default to None, meaning "the method's own default" (see methods/).
    """

    lr: float | None = None
    epochs: float | None = None
    batch_size: int = 16
    max_length: int = 128
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    scheduler: str = "linear"
    max_grad_norm: float | None = 1.0
    eval_batch_size: int = 32  # evaluation batches run by length: smaller ones pad less (on one CPU thread, faster)
    # Steps between dev evaluations; None = twice per epoch. Evaluated only where used: best-dev, patience, or a set
    # eval_every (a dev curve under select last); select last with eval_every None scores dev only at the end.
    eval_every: int | None = None
    # "last": the weights after the last step (the paper's protocol, and the default since issue 32: a 50-example
    # dev split choosing the step added most of the seed variance); "best-dev": the state with the best dev score
    select: str = "last"
    patience: int | None = None  # stop after this many dev evaluations without improvement; None = never
    report_last_step: bool = False  # also score the test sets at the last step (what best-dev selection changed)
    layer_decay: float | None = None  # None = off; layer l trains at lr * decay^(L + 1 - l) (Zhang et al. 2021)
    reinit_layers: int = 0  # re-initialise the top k layers and the pooler before training (Zhang et al. 2021)
    # swa / ema: the weights averaged over the run's last part replace the last step's; none; auto: the method's
    # (average_default: swa for mixup-blo and soup-start under select last, issue 32's recipe; none otherwise)
    average: str = "auto"
    average_start: float = 0.5  # the average takes the weights after every step from this fraction of the run on
    ema_decay: float = 0.98  # ema: avg <- decay * avg + (1 - decay) * w (a horizon of about 1 / (1 - decay) steps)


@dataclass
class MixupConfig:
    """Attention-guided weight mixup (docs/method.md section 1)."""

    # "released": (A@B)*W + ((1-A)@(1-B))*W0 ; "convex": a*W + (1-a)*W0 ; "share" below; None = DEFAULT_MIXUP_FORM
    form: str | None = None
    rank: int | None = 1  # None = full rank (one alpha entry per weight); used by granularity "rank"
    init_mean: float = 1.0
    init_std: float = 0.005
    target_modules: list[str] | None = None  # None = the released targets for the architecture
    # "rank": alpha per entry, in rank-`rank` form (the released layout); "row": one per output row; "module": one
    # scalar per module. With one factor (row, module, full rank) the released and convex forms coincide.
    granularity: str | None = None  # None = the form's (FORM_DEFAULTS)
    # form "share": W~ = (1 - b) W + b W0, b = sigmoid(theta), theta started at logit(init_share) (no saddle)
    init_share: float = 0.5

    @property
    def init_center(self) -> float:
        """Where alpha is drawn around: the pretrained share for the share form, the W factor otherwise."""
        return self.init_share if self.resolved().form == "share" else self.init_mean

    def resolved(self) -> MixupConfig:
        """A copy with form and granularity set: what the layers are built from, whatever the defaults are."""
        form = self.form or DEFAULT_MIXUP_FORM
        return _filled(dataclasses.replace(self, form=form), form_defaults(form, "mixup"))


@dataclass
class SearchConfig:
    """The bi-level search phase, repeated over K random splits (docs/method.md section 2).

    epochs, unroll_steps, alpha_lr, alpha_lr_sum, outer_full_split and outer_dropout default to None, meaning
    "the mixup form's default" (FORM_DEFAULTS; see resolved).
    """

    splits: int = 3  # the paper runs 5; 3 since issue 32's pilot (with 2 epochs a split: the cost of the default)
    split_ratio: float = 0.8
    epochs: float | None = None
    hypergradient: str = "first-order"  # or "finite-difference" (DARTS second order)
    fd_xi: float | None = None  # None = the inner optimiser's current learning rate (DARTS)
    unroll_steps: int | None = None
    average: str = "all"  # "all" (released "total_avg"), "alpha", "greedy" (a greedy soup: mixtune.mixup.repeated)
    inner_lr: float = 2e-5
    inner_weight_decay: float = 0.01
    inner_scheduler: str = "linear"
    inner_max_grad_norm: float | None = 5.0
    alpha_lr: float | None = None
    alpha_weight_decay: float = 0.0
    alpha_scheduler: str = "cosine"
    warmup_ratio: float = 0.1
    # Set: alpha_lr is derived so that the scheduled alpha learning rates, summed over one split's alpha steps,
    # equal this (Adam moves a parameter by about lr per step: this bounds how far alpha can travel). The
    # released settings sum to about 0.045 at n = 300; order 1 lets a logit (share form) move by about 1.
    alpha_lr_sum: float | None = None
    outer_full_split: bool | None = None  # True: every alpha step on the whole D_val (mean loss over its batches)
    outer_dropout: bool | None = None  # False: the outer (validation) passes run in eval mode, without dropout
    fd_precondition: bool = True  # finite-difference direction xi * P v with AdamW's P = 1 / (sqrt(v_hat) + eps)
    workers: int = 1  # the K searches in this many processes at once (one per GPU where there are several)

    def resolved(self, form: str | None = None) -> SearchConfig:
        """A copy with the unset keys at `form`'s values (None: DEFAULT_MIXUP_FORM), for the search to run on.

        A set alpha_lr is the rate: the form's alpha_lr_sum, which would override it, is then not taken.
        """
        values = form_defaults(form, "search")
        if self.alpha_lr is not None:
            values.pop("alpha_lr_sum", None)
        return _filled(self, values)


@dataclass
class DataConfig:
    """Where the examples come from: a GLUE task or the user's own files."""

    task: str | None = None
    data_dir: str | None = None
    train_file: str | None = None
    dev_file: str | None = None
    test_file: str | None = None
    text_columns: list[str] | None = None
    label_column: str = "label"
    task_type: str = "classification"  # for user files: "classification" or "regression"
    train_size: int | None = None  # None = the whole training pool
    pool_test_size: int | None = None  # size of a second test split drawn from the pool (data/pool_test.py); None = off


@dataclass
class RunConfig:
    method: str = "mixup-blo"
    model: str | None = None  # None = the packaged all-MiniLM-L6-v2
    pooling: str = "auto"  # the head: auto (the backbone's own pooling), cls (the architecture's head), mean, max
    pair_encoding: str | None = None  # sentence pairs: one of PAIR_ENCODINGS; None = the method's
    seed: int = 1
    output_dir: str | None = None
    device: str = "auto"  # auto (CUDA when present), cpu, cuda, cuda:N (mixtune.device)
    # fp32, bf16 (autocast), fp16 (autocast and a gradient scaler; CUDA only), auto (mixtune.device.auto_precision)
    precision: str = "fp32"
    method_args: dict[str, Any] = field(default_factory=dict)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    mixup: MixupConfig = field(default_factory=MixupConfig)
    search: SearchConfig = field(default_factory=SearchConfig)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


SECTIONS = {"data": DataConfig, "train": TrainConfig, "mixup": MixupConfig, "search": SearchConfig}


def resolve_defaults(config: RunConfig) -> RunConfig:
    """A copy with the form-dependent keys set (MixupConfig.resolved, SearchConfig.resolved) and train.average:
    done when a run starts, not in build_config, so a config (and a benchmark cell's settings hash) holds only what
    was set, and the hash sees what the run computes with."""
    resolved = copy.deepcopy(config)
    resolved.mixup = resolved.mixup.resolved()
    resolved.search = resolved.search.resolved(resolved.mixup.form)
    resolved.train = dataclasses.replace(resolved.train, average=average_default(resolved.train, resolved.method))
    return resolved


def average_default(train: TrainConfig, method: str) -> str:
    """train.average as set; auto: the method's (OWN_AVERAGES) under select last (best-dev keeps a step instead)."""
    if train.average != "auto":
        return train.average
    return OWN_AVERAGES.get(method, "none") if train.select == "last" else "none"


def _type_hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _coerce(value: Any, hint: Any, key: str) -> Any:
    """Check (and gently convert) one value against a field's type hint."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if type(None) in args and (value is None or (isinstance(value, str) and value.lower() in ("none", "null", "full"))):
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _coerce(value, arg, key)
            except MixtuneError as exc:
                errors.append(exc)
        raise errors[0]
    if origin is list:
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, list):
            raise MixtuneError(f"config key '{key}' must be a list, got {value!r}: write e.g. [a, b]")
        return [_coerce(v, args[0], key) for v in value]
    if origin is dict:
        if not isinstance(value, dict):
            raise MixtuneError(f"config key '{key}' must be a mapping, got {value!r}")
        return value
    if hint is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
            return value.lower() in ("true", "1", "yes")
        raise MixtuneError(f"config key '{key}' must be true or false, got {value!r}")
    if hint is int:
        if isinstance(value, bool):
            raise MixtuneError(f"config key '{key}' must be an integer, got {value!r}")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        return _parse_text(value, int, key, "an integer")
    if hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        return _parse_text(value, float, key, "a number")
    if hint is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
        raise MixtuneError(f"config key '{key}' must be a string, got {value!r}")
    return value


def _parse_text(value: Any, parse: Callable[[str], Any], key: str, kind: str) -> Any:
    """A number given as text (a flag, a quoted YAML value), else the one-line error naming the key."""
    if isinstance(value, str):
        try:
            return parse(value)
        except ValueError:
            pass
    raise MixtuneError(f"config key '{key}' must be {kind}, got {value!r}")


def _update_dataclass(obj: Any, values: dict[str, Any], prefix: str) -> None:
    hints = _type_hints(type(obj))
    names = {f.name for f in fields(obj)}
    for key, value in values.items():
        full = f"{prefix}{key}"
        if key not in names:
            valid = ", ".join(sorted(names))
            raise MixtuneError(f"unknown config key '{full}': valid keys here are {valid}")
        current = getattr(obj, key)
        if dataclasses.is_dataclass(current):
            if not isinstance(value, dict):
                raise MixtuneError(f"config key '{full}' must be a mapping of its own keys")
            _update_dataclass(current, value, f"{full}.")
        else:
            setattr(obj, key, _coerce(value, hints[key], full))


def build_config(values: dict[str, Any] | None = None, base: RunConfig | None = None) -> RunConfig:
    """A RunConfig from nested values (as in YAML), on top of `base` or the defaults."""
    config = base if base is not None else RunConfig()
    _update_dataclass(config, values or {}, "")
    from mixtune.config_checks import validate  # its checks name this module's defaults: imported here, not above

    validate(config)
    return config


def load_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise MixtuneError(f"config file {path} does not exist: check the path")
    try:
        values = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        first = str(exc).splitlines()[0]
        raise MixtuneError(f"config file {path} is not valid YAML ({first}): fix its syntax") from None
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise MixtuneError(f"config file {path} must hold a mapping of keys to values")
    return values


def save_yaml(config: RunConfig, path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))


def flag_specs() -> list[tuple[str, str, Any]]:
    """(flag, dotted key, type hint) for every section field: --train-lr sets train.lr, etc."""
    specs = []
    for section, cls in SECTIONS.items():
        hints = _type_hints(cls)
        for f in fields(cls):
            prefix = "" if section == "data" else f"{section}-"
            specs.append((f"--{prefix}{f.name.replace('_', '-')}", f"{section}.{f.name}", hints[f.name]))
    return specs


def set_dotted(values: dict[str, Any], dotted: str, value: Any) -> None:
    """Put value at a dotted key ('search.splits') inside a nested dict."""
    node = values
    *parents, last = dotted.split(".")
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = value

import dataclasses

import pytest

import mixtune.config as config_module
from mixtune.bench.grid import settings_hash
from mixtune.cli import build_parser, config_from_args
from mixtune.config import (
    FORM_DEFAULTS,
    RunConfig,
    build_config,
    resolve_defaults,
)
from mixtune.config_checks import validate
from mixtune.errors import MixtuneError
from mixtune.methods import make_method

RELEASED = {
    "mixup.granularity": "rank", "search.epochs": 2, "search.unroll_steps": 1, "search.outer_full_split": False,
    "search.outer_dropout": True, "search.alpha_lr": 2e-3, "search.alpha_lr_sum": None,
}
SHARE = {
    "mixup.granularity": "module", "search.epochs": 2, "search.unroll_steps": 5, "search.outer_full_split": True,
    "search.outer_dropout": False, "search.alpha_lr": 2e-3, "search.alpha_lr_sum": 1.0,
}


def form_values(config: RunConfig) -> dict:
    """The config's values of the form-dependent keys, as dotted keys."""
    return {key: getattr(getattr(config, key.split(".")[0]), key.split(".")[1]) for key in RELEASED}


def test_defaults_are_the_released_mixup_with_the_pilots_recipe():
    """Issue 32's pilot choice: the released mixup, 3 splits x 2 epochs of search, a masked finetune at 2e-4, its
    weights averaged (SWA) over its last half."""
    config = resolve_defaults(build_config())
    assert (config.method, config.mixup.form, config.mixup.rank) == ("mixup-blo", "released", 1)
    assert (config.search.splits, config.search.epochs, config.search.split_ratio, config.search.average) == (3, 2.0, 0.8, "all")
    method = make_method(config)
    assert (method.lr, method.hp.finetune_mask_p, config.train.select) == (2e-4, 0.3, "last")
    assert (config.train.average, config.train.average_start) == ("swa", 0.5)
    assert (config.search.inner_lr, config.search.alpha_lr, config.search.inner_max_grad_norm) == (2e-5, 2e-3, 5.0)
    assert (config.train.batch_size, config.train.max_length, config.train.max_grad_norm) == (16, 128, 1.0)


def test_unknown_key_and_wrong_type_are_named():
    with pytest.raises(MixtuneError, match="unknown config key 'search.splitz'"):
        build_config({"search": {"splitz": 3}})
    with pytest.raises(MixtuneError, match="'search.splits' must be an integer"):
        build_config({"search": {"splits": "many"}})
    with pytest.raises(MixtuneError, match="choose one of released, convex"):
        build_config({"mixup": {"form": "paper"}})


def test_yaml_then_flags_override(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("method: vanilla\nsearch:\n  splits: 2\ntrain:\n  lr: 1e-4\nmixup:\n  rank: full\n")
    args = build_parser().parse_args(["train", "--config", str(path), "--search-splits", "3", "--task", "rte"])
    config = config_from_args(args)
    assert (config.method, config.search.splits, config.train.lr, config.data.task) == ("vanilla", 3, 1e-4, "rte")
    assert config.mixup.rank is None
    args = build_parser().parse_args(["train", "--lr", "3e-5", "--mixup-target-modules", "query,value"])
    config = config_from_args(args)
    assert config.train.lr == 3e-5 and config.mixup.target_modules == ["query", "value"]


def test_the_form_dependent_keys_are_unset_until_a_run_resolves_them():
    config = build_config()
    assert config.mixup.form is None and set(form_values(config).values()) == {None}
    resolved = resolve_defaults(config)
    assert resolved.mixup.form == "released" and form_values(resolved) == RELEASED
    assert config.mixup.form is None and config.search.epochs is None  # a copy: the given config is left as it was


@pytest.mark.parametrize("form,expected", [("released", RELEASED), ("convex", RELEASED), ("share", SHARE)])
def test_each_form_resolves_to_its_table(form, expected):
    assert FORM_DEFAULTS[form] == expected
    resolved = resolve_defaults(build_config({"mixup": {"form": form}}))
    assert resolved.mixup.form == form and form_values(resolved) == expected
    validate(resolved)


def test_mixup_form_released_brings_the_released_search_whatever_the_default_form(monkeypatch):
    monkeypatch.setattr(config_module, "DEFAULT_MIXUP_FORM", "share")
    parse = lambda *flags: config_from_args(build_parser().parse_args(["train", *flags]))  # noqa: E731
    assert form_values(resolve_defaults(parse())) == SHARE  # the patched default is the one resolved
    resolved = resolve_defaults(parse("--mixup-form", "released"))
    assert resolved.mixup.form == "released" and form_values(resolved) == RELEASED


@pytest.mark.parametrize("form", sorted(FORM_DEFAULTS))
def test_an_explicit_value_always_wins(form):
    explicit = {
        "mixup": {"form": form, "granularity": "row"},
        "search": {"epochs": 7, "unroll_steps": 3, "outer_full_split": not FORM_DEFAULTS[form]["search.outer_full_split"],
                   "outer_dropout": not FORM_DEFAULTS[form]["search.outer_dropout"], "alpha_lr": 5e-3, "alpha_lr_sum": 0.3},
        "train": {"average": "ema"},
    }
    resolved = resolve_defaults(build_config(explicit))
    assert dataclasses.asdict(resolved) == dataclasses.asdict(build_config(explicit))


def test_an_explicit_alpha_lr_is_the_rate_the_forms_alpha_lr_sum_is_not_taken():
    resolve = lambda search: resolve_defaults(build_config({"mixup": {"form": "share"}, "search": search})).search  # noqa: E731
    assert (resolve({"alpha_lr": 1e-2}).alpha_lr, resolve({"alpha_lr": 1e-2}).alpha_lr_sum) == (1e-2, None)
    assert (resolve({"alpha_lr": 1e-2, "alpha_lr_sum": 0.5}).alpha_lr_sum) == 0.5
    assert (resolve({"alpha_lr_sum": 0.5}).alpha_lr, resolve({"alpha_lr_sum": 0.5}).alpha_lr_sum) == (2e-3, 0.5)


def test_explicit_values_are_still_validated():
    with pytest.raises(MixtuneError, match="config key 'search.unroll_steps' must be at least 1"):
        build_config({"search": {"unroll_steps": 0}})
    with pytest.raises(MixtuneError, match="config key 'mixup.granularity' is 'column': choose one of rank, row, module"):
        build_config({"mixup": {"granularity": "column"}})
    with pytest.raises(MixtuneError, match="'search.outer_dropout' must be true or false"):
        build_config({"search": {"outer_dropout": "sometimes"}})


def test_a_settings_hash_covers_the_resolved_form_defaults(monkeypatch):
    """A benchmark cell's hash covers the values the run resolves (mixtune.bench.grid.settings_hash): a cell that
    leaves the form-dependent keys unset gets a new hash when the default form or its table changes, so a finished
    cell computed under other defaults is not counted as done; setting a key changes it too."""
    unset = {"method": "mixup-blo", "train": {"lr": 1e-4}, "search": {"splits": 2}, "mixup": {"rank": 2}}
    share = {"method": "mixup-blo", "search": {"epochs": 2}, "mixup": {"form": "share"}}
    hashes = lambda: (settings_hash(build_config(unset)), settings_hash(build_config(share)))  # noqa: E731
    before = hashes()
    monkeypatch.setattr(config_module, "DEFAULT_MIXUP_FORM", "share")
    assert hashes()[0] != before[0] and hashes()[1] == before[1]  # share sets its form: only the unset cell moves
    monkeypatch.setitem(FORM_DEFAULTS, "share", {**SHARE, "search.unroll_steps": 2})
    assert hashes()[1] != before[1]
    assert settings_hash(build_config({"search": {"epochs": 3}})) != settings_hash(build_config())


@pytest.mark.parametrize(
    ("values", "average"),
    [
        ({}, "swa"),  # mixup-blo's recipe (issue 32): SWA over the last half of its finetune
        ({"method": "soup-start"}, "swa"),  # its control, the same finetune
        ({"method": "vanilla"}, "none"),
        ({"train": {"select": "best-dev"}}, "none"),  # a chosen step, not an average
        ({"train": {"average": "none"}}, "none"),  # "none" is a choice, not "unset"
        ({"method": "vanilla", "train": {"average": "ema"}}, "ema"),
    ],
)
def test_train_average_auto_is_the_methods_under_select_last(values, average):
    assert build_config(values).train.average == values.get("train", {}).get("average", "auto")
    assert resolve_defaults(build_config(values)).train.average == average


def test_an_average_left_to_the_method_hashes_as_the_same_average_set():
    assert settings_hash(build_config({})) == settings_hash(build_config({"train": {"average": "swa"}}))
    assert settings_hash(build_config({})) != settings_hash(build_config({"train": {"average": "none"}}))

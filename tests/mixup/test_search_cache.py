"""The search cache: a cached run is bit-identical to an uncached one, skips the search, and keys by content."""

from __future__ import annotations

import json
from pathlib import Path

import mixtune.methods.mixup_blo as blo
from mixtune.config import build_config
from mixtune.mixup.inject import inject_mixup
from mixtune.mixup.search_cache import search_key
from mixtune.run import run
from tests.conftest import tiny_bert


def config_for(model_dir: Path, glue_dir: Path, **train):
    return build_config({
        "method": "mixup-blo", "model": str(model_dir), "seed": 3,
        "data": {"task": "rte", "data_dir": str(glue_dir), "train_size": 16},
        "train": {"epochs": 1, "max_length": 24, "batch_size": 8, "lr": 1e-3, **train},
        "search": {"splits": 2, "epochs": 1},
    })


def no_search(*args, **kwargs):
    raise AssertionError("repeated_search ran although the search is in the cache")


def test_a_cached_search_gives_bit_identical_metrics_and_is_not_run(dropout_model_dir, glue_dir, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    config = config_for(dropout_model_dir, glue_dir)
    plain = run(config, progress=False, write=False)
    first = run(config, progress=False, write=False, search_cache=cache)
    key = first["log"]["search"]["cache_key"]
    assert sorted(p.name for p in cache.iterdir()) == [f"{key}.json", f"{key}.lock", f"{key}.safetensors"]

    monkeypatch.setattr(blo, "repeated_search", no_search)
    second = run(config, progress=False, write=False, search_cache=cache)
    assert plain["metrics"] == first["metrics"] == second["metrics"]
    assert plain["log"]["finetune"]["final_loss"] == second["log"]["finetune"]["final_loss"]
    assert second["search_cached"] is True and "search_cached" not in first and "search_cached" not in plain
    assert second["log"]["search"]["cached"] == key
    assert second["time_s"]["search"] == first["time_s"]["search"] > 0  # the real search's seconds
    stored = json.loads((cache / f"{key}.json").read_text())["cpu_seconds"]
    assert second["cached_search_cpu_s"] == stored > 0 and "cached_search_cpu_s" not in first
    assert second["cpu_s"] < first["cpu_s"]  # the reusing run's own CPU time leaves the search out
    assert second["log"]["search"]["val_indices"] == first["log"]["search"]["val_indices"]

    other = run(config_for(dropout_model_dir, glue_dir, lr=5e-4, epochs=2), progress=False, write=False, search_cache=cache)
    assert other["log"]["search"]["cached"] == key  # finetune variants share the search


def test_the_key_follows_search_data_seed_and_model_not_finetune_settings(tmp_path):
    def key(model_seed=0, seed=1, features=None, **sections) -> str:
        values = {"train": {"max_length": 24}, "search": {"splits": 2}}
        for section, changes in sections.items():
            values.setdefault(section, {}).update(changes)
        config = build_config(values)
        model = inject_mixup(tiny_bert(seed=model_seed), config.mixup)
        data = features or [{"input_ids": [2, 7, 9, 3], "attention_mask": [1, 1, 1, 1], "labels": label} for label in (0, 1)]
        return search_key(model, data, config, seed)[0]

    plain = key()
    assert key() == plain and len(plain) == 64
    assert key(train={"lr": 1e-3, "epochs": 10, "scheduler": "cosine"}) == plain  # the finetune phase
    assert key(search={"splits": 3}) != plain
    assert key(search={"alpha_lr": 1e-2}) != plain
    assert key(mixup={"rank": 2}) != plain
    assert key(train={"batch_size": 4}) != plain
    assert key(seed=2) != plain
    assert key(model_seed=1) != plain  # other weights under the same name
    flipped = [{"input_ids": [2, 7, 9, 3], "attention_mask": [1, 1, 1, 1], "labels": label} for label in (1, 0)]
    assert key(features=flipped) != plain


def test_options_added_later_leave_the_released_key_as_it_was():
    """Searches cached before the share form, the outer-pass options, the lr budget and the form's defaults stay
    valid: the default config keys exactly as it did (these dicts are the keyed settings from before); the added
    options at their released values are not in the key; set, they are; fd_precondition is keyed for finite
    differences."""
    from mixtune.config import MixupConfig, SearchConfig, form_defaults
    from mixtune.mixup.search_cache import keyed_settings

    released_mixup = {"form": "released", "init_mean": 1.0, "init_std": 0.005, "rank": 1, "target_modules": None}
    released_search = {
        "alpha_lr": 0.002, "alpha_scheduler": "cosine", "alpha_weight_decay": 0.0, "average": "all", "epochs": 3,
        "fd_xi": None, "hypergradient": "first-order", "inner_lr": 2e-05, "inner_max_grad_norm": 5.0,
        "inner_scheduler": "linear", "inner_weight_decay": 0.01, "split_ratio": 0.8, "splits": 5, "unroll_steps": 1,
        "warmup_ratio": 0.1,
    }
    mixup = lambda config: keyed_settings(config.resolved(), form_defaults(config.resolved().form, "mixup"))  # noqa: E731
    search = lambda config, form=None: keyed_settings(config.resolved(form), form_defaults(form, "search"))  # noqa: E731
    assert mixup(MixupConfig()) == released_mixup
    paper = SearchConfig(splits=5, epochs=3.0)  # the default before issue 32, now set (a config reads 3 as 3.0)
    assert search(paper) == released_search and type(search(paper)["epochs"]) is int
    assert search(SearchConfig()) == {**released_search, "splits": 3, "epochs": 2}  # today's default
    assert mixup(MixupConfig(form="share", granularity="row"))["granularity"] == "row"
    assert search(SearchConfig(alpha_lr_sum=1.0, outer_dropout=False)).keys() >= {"alpha_lr_sum", "outer_dropout"}
    assert search(SearchConfig(), "share").keys() >= {"alpha_lr_sum", "outer_dropout", "outer_full_split"}
    assert "fd_precondition" in search(SearchConfig(hypergradient="finite-difference"))


def test_a_key_left_at_the_forms_default_and_the_same_value_set_key_alike(monkeypatch):
    import mixtune.config as config_module

    model = inject_mixup(tiny_bert(), build_config().mixup)
    data = [{"input_ids": [2, 7, 9, 3], "attention_mask": [1, 1, 1, 1], "labels": label} for label in (0, 1)]
    key = lambda values: search_key(model, data, build_config(values), 1)[0]  # noqa: E731
    released = {"mixup": {"form": "released", "granularity": "rank"}, "search": {
        "epochs": 3, "unroll_steps": 1, "outer_full_split": False, "outer_dropout": True, "alpha_lr": 2e-3}}
    assert key({}) == key(released | {"search": {**released["search"], "epochs": 2}}) == key({"search": {"epochs": 2.0}})
    assert key({"search": {"epochs": 3}}) != key({})
    share = {"mixup": {"form": "share", "granularity": "module"}, "search": {
        "epochs": 2, "unroll_steps": 5, "outer_full_split": True, "outer_dropout": False, "alpha_lr_sum": 1.0}}
    monkeypatch.setattr(config_module, "DEFAULT_MIXUP_FORM", "share")
    assert key({}) == key(share) != key(released)


def test_bf16_searches_cached_before_the_fp32_mixup_are_not_reused():
    """Issue 30 changed what a bf16 search computes (the mixup and the finite difference in fp32), not an fp32 or
    fp16 one (fp16 searches already ran in fp32): only bf16 keys change."""
    model = inject_mixup(tiny_bert(), build_config().mixup)
    data = [{"input_ids": [2, 7, 9, 3], "attention_mask": [1, 1, 1, 1], "labels": label} for label in (0, 1)]
    inputs = {p: search_key(model, data, build_config({"precision": p}), 1)[1] for p in ("fp32", "bf16", "fp16")}
    assert "mixup_precision" not in inputs["fp32"] and "precision" not in inputs["fp32"]
    assert "mixup_precision" not in inputs["fp16"]
    assert inputs["bf16"]["mixup_precision"] == "fp32"

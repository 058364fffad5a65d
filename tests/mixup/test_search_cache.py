"""The search cache: a cached run is bit-identical to an uncached one, skips the search, and keys by content."""

from __future__ import annotations

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
    """Searches cached before the share form, the outer-pass options and the lr budget stay valid: at their
    defaults those options are not in the key; set, they are; fd_precondition is keyed for finite differences."""
    from mixtune.config import MixupConfig, SearchConfig
    from mixtune.mixup.search_cache import keyed_settings

    released_mixup = {"form", "rank", "init_mean", "init_std", "target_modules"}
    released_search = {
        "splits", "split_ratio", "epochs", "hypergradient", "fd_xi", "unroll_steps", "average", "inner_lr",
        "inner_weight_decay", "inner_scheduler", "inner_max_grad_norm", "alpha_lr", "alpha_weight_decay",
        "alpha_scheduler", "warmup_ratio",
    }
    assert set(keyed_settings(MixupConfig())) == released_mixup
    assert set(keyed_settings(SearchConfig())) == released_search
    assert keyed_settings(MixupConfig(form="share", granularity="row"))["granularity"] == "row"
    assert keyed_settings(SearchConfig(alpha_lr_sum=1.0, outer_dropout=False)).keys() >= {"alpha_lr_sum", "outer_dropout"}
    assert "fd_precondition" in keyed_settings(SearchConfig(hypergradient="finite-difference"))

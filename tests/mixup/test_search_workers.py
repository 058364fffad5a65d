"""search.workers: the K searches in parallel processes give what one process gives, bit for bit (same seed,
device and threads), and a search whose functions cannot be sent to a worker says so in one line."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from mixtune.config import SearchConfig, build_config
from mixtune.errors import MixtuneError
from mixtune.mixup.repeated import repeated_search
from mixtune.run import run
from tests.conftest import tiny_bert


def config_for(model_dir: Path, glue_dir: Path, workers: int):
    return build_config({
        "method": "mixup-blo", "model": str(model_dir), "seed": 5,
        "data": {"task": "rte", "data_dir": str(glue_dir), "train_size": 20},
        "train": {"epochs": 1, "max_length": 24, "batch_size": 8, "lr": 1e-3, "select": "best-dev"},
        "search": {"splits": 3, "epochs": 1, "hypergradient": "finite-difference", "workers": workers},
    })


def test_two_workers_give_what_one_process_gives(dropout_model_dir, glue_dir):
    sequential = run(config_for(dropout_model_dir, glue_dir, 1), progress=False, write=False)
    started = time.perf_counter()
    parallel = run(config_for(dropout_model_dir, glue_dir, 2), progress=False, write=False)
    assert time.perf_counter() - started < 120
    first, second = sequential["log"]["search"], parallel["log"]["search"]
    assert first["val_indices"] == second["val_indices"]
    assert [s["final_inner_loss"] for s in first["splits"]] == [s["final_inner_loss"] for s in second["splits"]]
    assert sequential["metrics"] == parallel["metrics"]
    assert sequential["log"]["finetune"]["final_loss"] == parallel["log"]["finetune"]["final_loss"]
    assert sequential["log"]["finetune"]["dev_curve"] == parallel["log"]["finetune"]["dev_curve"]


def test_functions_a_worker_cannot_receive_are_the_one_line_error():
    model = tiny_bert()
    with pytest.raises(MixtuneError, match="cannot be pickled .*: set search.workers to 1$"):
        repeated_search(model, list(range(10)), lambda f, s: f, SearchConfig(splits=2, workers=2), 1, lambda k: None, False)


@pytest.mark.gpu
def test_workers_on_the_gpu_match_one_process(dropout_model_dir, glue_dir):
    """On CUDA (one GPU: both workers share it; several: one each). Some CUDA kernels (embedding backward) add
    in a varying order, so equality is asked of the split logs to a tolerance, not bit for bit."""
    results = []
    for workers in (1, 2):
        config = config_for(dropout_model_dir, glue_dir, workers)
        config.device = "cuda"
        results.append(run(config, progress=False, write=False))
    losses = [[s["final_inner_loss"] for s in r["log"]["search"]["splits"]] for r in results]
    assert losses[0] == pytest.approx(losses[1], abs=1e-4)
    assert results[0]["log"]["search"]["val_indices"] == results[1]["log"]["search"]["val_indices"]


def test_the_cache_key_ignores_workers_and_keys_precision():
    """Workers do not change what the search computes; bf16 does (and a GPU: its own entries, tested on one)."""
    from mixtune.mixup.inject import inject_mixup
    from mixtune.mixup.search_cache import search_key

    features = [{"input_ids": [2, 7, 9, 3], "attention_mask": [1, 1, 1, 1], "labels": 1}]

    def key(**values) -> str:
        config = build_config({"train": {"max_length": 24}, **values})
        return search_key(inject_mixup(tiny_bert(), config.mixup), features, config, 1)[0]

    plain = key()
    assert key(search={"workers": 4}) == plain
    assert key(precision="bf16") != plain

import pytest

from mixtune.cli import build_parser, config_from_args
from mixtune.config import build_config
from mixtune.errors import MixtuneError


def test_defaults_are_the_released_settings():
    config = build_config()
    assert (config.method, config.mixup.form, config.mixup.rank) == ("mixup-blo", "released", 1)
    assert (config.search.splits, config.search.split_ratio, config.search.average) == (5, 0.8, "all")
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

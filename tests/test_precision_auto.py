"""Precision auto (mixtune.device.auto_precision): its decision table, and what a run records of its choice."""

from __future__ import annotations

import pytest

from mixtune.config import build_config
from mixtune.device import Runtime, auto_precision, bf16_risk, cpu_has_amx_bf16
from mixtune.errors import MixtuneError
from mixtune.run import run

RISK = "the recipe is unsafe in bf16"

# (device type, CUDA bf16, CPU AMX-BF16, risk, CPU parity measured) -> (precision, words of the reason)
TABLE = [
    (("cuda", True, False, None, False), ("bf16", "GPU with bfloat16 support")),
    (("cuda", True, False, RISK, False), ("fp32", RISK)),
    (("cuda", False, False, RISK, False), ("fp32", "no bfloat16 support")),
    (("cpu", False, False, None, False), ("fp32", "no AMX-BF16")),
    (("cpu", False, False, None, True), ("fp32", "no AMX-BF16")),
    (("cpu", False, True, None, False), ("fp32", "not measured yet")),
    (("cpu", False, True, None, True), ("bf16", "AMX-BF16 (score parity measured)")),
    (("cpu", False, True, RISK, True), ("fp32", RISK)),
]


@pytest.mark.parametrize("inputs, expected", TABLE)
def test_the_decision_table(inputs, expected):
    precision, reason = auto_precision(*inputs)
    assert precision == expected[0] and expected[1] in reason


def test_finite_difference_hypergradients_are_the_bf16_risk():
    assert bf16_risk(build_config()) is None
    risk = bf16_risk(build_config({"search": {"hypergradient": "finite-difference"}}))
    assert risk is not None and "finite-difference" in risk


def test_auto_is_a_setting_and_other_words_are_the_one_line_error():
    assert build_config({"precision": "auto"}).precision == "auto"
    with pytest.raises(MixtuneError, match="config key 'precision' is 'half': choose one of fp32, bf16, fp16, auto"):
        build_config({"precision": "half"})


def test_this_cpu_resolves_auto_by_the_table_and_says_why():
    runtime = Runtime.resolve("cpu", "auto")
    expected, reason = auto_precision("cpu", False, cpu_has_amx_bf16(), None)
    assert runtime.precision == expected == "fp32"  # no CPU resolves to bf16 before parity is measured
    assert runtime.describe() == {"device": "cpu", "precision": "fp32", "precision_setting": "auto", "precision_reason": reason}
    assert "precision_setting" not in Runtime.resolve("cpu", "bf16").describe()  # a set precision needs no reason


def test_a_run_under_auto_records_the_choice_and_the_optimiser(tiny_model_dir, glue_dir, tmp_path):
    config = build_config({
        "method": "vanilla", "model": str(tiny_model_dir), "device": "cpu", "precision": "auto",
        "output_dir": str(tmp_path / "run"),
        "data": {"task": "rte", "data_dir": str(glue_dir), "train_size": 16},
        "train": {"epochs": 1, "max_length": 24, "batch_size": 8, "lr": 1e-3},
    })
    record = run(config, progress=False)
    assert record["device"]["precision"] == record["config"]["precision"] == "fp32"
    assert record["device"]["precision_setting"] == "auto" and record["device"]["precision_reason"]
    assert record["optimizer"] == "adamw-fused"
    assert config.precision == "auto"  # the caller's config (and a benchmark cell's hash) keeps what was set

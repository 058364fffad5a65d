"""Device and precision (mixtune.device): resolution and validation, autocast and the fp16 scaler's
mechanics on the CPU, the run record; the tests marked gpu repeat what matters on CUDA (skipped without it)."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from mixtune.cli import main
from mixtune.config import build_config
from mixtune.device import (
    GradStep,
    Runtime,
    activated,
    active,
    forward_context,
    model_device,
    resolve_device,
    rng_state,
    set_rng_state,
    to_device,
    worker_devices,
)
from mixtune.errors import MixtuneError
from mixtune.methods import METHODS
from mixtune.methods.mixup_common import MixupMethod
from mixtune.mixup import mixup_layers
from mixtune.run import MODEL_DIR, run

from .conftest import tiny_batch, tiny_bert

CPU = torch.device("cpu")
without_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="the error for a machine without CUDA")


def tiny_config(tiny_model_dir, glue_dir, method="vanilla", **extra):
    values = {
        "method": method, "model": str(tiny_model_dir), "seed": 3,
        "data": {"task": "rte", "data_dir": str(glue_dir), "train_size": 16},
        "train": {"epochs": 1, "max_length": 24, "batch_size": 8, "lr": 1e-3},
        "search": {"splits": 2, "epochs": 1},
        **extra,
    }
    return build_config(values)


@pytest.fixture
def fresh_merges(monkeypatch) -> dict[str, torch.Tensor]:
    """Filled at a mixup method's export: each layer's W~ merged afresh in float64 from alpha, W and W0 (a copy:
    no cache, no autocast), the reference the exported weights are checked against."""
    merges: dict[str, torch.Tensor] = {}
    save = MixupMethod.save

    def save_recording(method, model, directory, tokenizer):
        for name, layer in mixup_layers(model):
            wide = copy.deepcopy(layer).double()
            with torch.no_grad():
                on_task, on_pretrained = wide.coefficients()
                merges[name] = (on_task * wide.base_layer.weight + on_pretrained * wide.weight0).cpu()
        return save(method, model, directory, tokenizer)

    monkeypatch.setattr(MixupMethod, "save", save_recording)
    return merges


def assert_exported_the_fresh_merge(merges: dict[str, torch.Tensor], run_dir: Path) -> None:
    """The saved weights are the fp32 W~ (about 1e-7 relative off float64), not one formed in bf16 or fp16 (1e-3)."""
    exported = load_file(str(run_dir / MODEL_DIR / "model.safetensors"))
    assert merges
    for name, reference in merges.items():
        gap = (exported[f"{name}.weight"].double() - reference).abs().max() / reference.abs().max()
        assert gap < 1e-6, f"{name}: the export is {gap:.1e} off the fp32 W~"


# --- choosing -------------------------------------------------------------------------------------------
def test_auto_means_cuda_when_present_and_cpu_is_always_there():
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("cpu") == CPU


@without_cuda
@pytest.mark.parametrize("spec", ["cuda", "cuda:0", "cuda:3"])
def test_a_gpu_that_is_not_there_is_the_one_line_error(spec):
    with pytest.raises(MixtuneError, match=rf"^device {spec} asked for, but torch .* sees no CUDA GPU here: pass --device cpu or auto$"):
        resolve_device(spec)


def test_settings_are_checked_with_the_config_before_torch_is_needed():
    for spec in ("auto", "cpu", "cuda", "cuda:1"):
        assert build_config({"device": spec}).device == spec
    with pytest.raises(MixtuneError, match="config key 'device' is 'gpu': choose auto, cpu, cuda or cuda:N"):
        build_config({"device": "gpu"})
    with pytest.raises(MixtuneError, match="config key 'precision' is 'half': choose one of fp32, bf16, fp16"):
        build_config({"precision": "half"})
    assert (build_config().device, build_config().precision) == ("auto", "fp32")


def test_fp16_needs_a_gpu_and_bf16_runs_on_the_cpu():
    with pytest.raises(MixtuneError, match="precision fp16 needs a CUDA GPU .*: use bf16 or fp32 on the CPU"):
        Runtime.resolve("cpu", "fp16")
    assert Runtime.resolve("cpu", "bf16") == Runtime(CPU, "bf16")
    assert Runtime(CPU, "bf16").describe() == {"device": "cpu", "precision": "bf16"}


@without_cuda
def test_the_cli_refuses_a_missing_gpu_in_one_line_with_exit_2(tmp_path, capsys, glue_dir):
    args = ["train", "--task", "rte", "--data-dir", str(glue_dir), "--output-dir", str(tmp_path / "run"), "--quiet"]
    assert main([*args, "--device", "cuda"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mixtune: error: device cuda asked for") and err.count("\n") == 1
    assert main([*args, "--device", "cpu", "--precision", "fp16"]) == 2
    assert "precision fp16 needs a CUDA GPU" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


# --- using ------------------------------------------------------------------------------------------------
def test_batches_follow_the_model_and_the_cpu_path_is_untouched():
    model, batch = tiny_bert(), tiny_batch()
    assert model_device(model) == CPU and model_device(torch.nn.Module()) == CPU
    moved = to_device({**batch, "note": "kept"}, CPU)
    assert moved["input_ids"] is batch["input_ids"] and moved["note"] == "kept"  # no copy on the same device
    assert worker_devices(Runtime(CPU), 3) == [CPU] * 3


def test_bf16_autocast_on_the_cpu_and_none_in_fp32_or_outside_a_run():
    model, batch = tiny_bert(), tiny_batch()
    with forward_context():
        assert model(**batch).logits.dtype == torch.float32  # no active runtime: plain fp32
    for precision, dtype in (("bf16", torch.bfloat16), ("fp32", torch.float32)):
        with activated(Runtime(CPU, precision)):
            with forward_context():
                assert model(**batch).logits.dtype == dtype
    assert active() is None


def test_fp16_autocast_only_where_a_scaler_follows():
    """The search and the Fisher pass take raw gradients (no scaler): under fp16 they compute in fp32."""
    model, batch = tiny_bert(), tiny_batch()
    with activated(Runtime(CPU, "fp16")):  # built directly: the mechanics, not a supported CPU setting
        with forward_context(scaled=False):
            assert model(**batch).logits.dtype == torch.float32
        with forward_context(scaled=True):
            assert model(**batch).logits.dtype == torch.float16


def test_the_fp16_scaler_skips_an_overflowing_step_and_unscales_the_others():
    weight = torch.nn.Parameter(torch.ones(3))
    optimizer = torch.optim.SGD([weight], lr=0.5)
    step = GradStep(optimizer, Runtime(CPU, "fp16"))
    step.backward((weight * torch.tensor([1.0, float("inf"), 1.0])).sum())
    assert step.unscale() is False
    step.step()
    assert torch.equal(weight.detach(), torch.ones(3))  # skipped
    optimizer.zero_grad()
    step.backward((weight * torch.tensor([1.0, 2.0, 3.0])).sum())
    assert step.unscale() is True
    assert torch.equal(weight.grad, torch.tensor([1.0, 2.0, 3.0]))  # true scale before hooks and clipping
    step.step()
    assert torch.allclose(weight.detach(), torch.tensor([0.5, 0.0, -0.5]))
    plain = GradStep(optimizer, Runtime(CPU, "bf16"))
    assert plain.scaler is None and plain.unscale() is True


def test_rng_state_round_trip():
    state = rng_state(CPU)
    drawn = torch.rand(4)
    set_rng_state(state, CPU)
    assert torch.equal(torch.rand(4), drawn) and set(state) == {"cpu"}


# --- whole runs -------------------------------------------------------------------------------------------
def test_the_record_says_which_device_and_precision_ran(tiny_model_dir, glue_dir, tmp_path):
    record = run(tiny_config(tiny_model_dir, glue_dir, output_dir=str(tmp_path / "run")), progress=False)
    assert record["device"] == {"device": "cpu", "precision": "fp32"}
    assert json.loads((tmp_path / "run" / "run.json").read_text())["device"] == record["device"]
    assert record["export"]["max_abs_logit_diff"] < 1e-4


@pytest.mark.parametrize("method", ["vanilla", "child-tuning-d", "child-tuning-f", "dps", "mixout", "mixup-blo", "lora"])
def test_bf16_on_the_cpu_trains_evaluates_and_exports(method, tiny_model_dir, glue_dir, tmp_path, fresh_merges):
    config = tiny_config(tiny_model_dir, glue_dir, method, precision="bf16", output_dir=str(tmp_path / "run"))
    record = run(config, progress=False)
    assert record["device"] == {"device": "cpu", "precision": "bf16"}
    assert np.isfinite(record["log"]["finetune"]["final_loss"])
    assert record["export"]["max_abs_logit_diff"] < 1e-3  # checked in fp32: the export, not the precision
    if method == "mixup-blo":  # evaluated under bf16 autocast before the export: the merge is still the fp32 one
        assert_exported_the_fresh_merge(fresh_merges, tmp_path / "run")


# --- on a GPU (skipped without one; benchmarks/gpu_check.sh runs them) ---------------------------------------
GPU_CASES = [(name, "bf16") for name in sorted(METHODS) if name != "setfit"] + [
    (name, precision) for precision in ("fp32", "fp16") for name in ("vanilla", "mixup-blo", "child-tuning-d", "child-tuning-f", "dps")
]


@pytest.mark.gpu
@pytest.mark.parametrize("method, precision", GPU_CASES)
def test_every_method_runs_on_the_gpu(method, precision, tiny_model_dir, glue_dir, tmp_path, fresh_merges):
    config = tiny_config(tiny_model_dir, glue_dir, method, device="cuda", precision=precision, output_dir=str(tmp_path / "run"))
    record = run(config, progress=False)
    assert record["device"]["device"].startswith("cuda:") and record["device"]["precision"] == precision
    assert record["export"]["max_abs_logit_diff"] < 1e-3
    if issubclass(METHODS[method], MixupMethod):
        assert_exported_the_fresh_merge(fresh_merges, tmp_path / "run")


@pytest.mark.gpu
@pytest.mark.parametrize("method", ["vanilla", "mixup-blo"])
def test_a_gpu_run_repeats_exactly_and_is_near_the_cpu_run(method, tiny_model_dir, glue_dir):
    on_gpu = [run(tiny_config(tiny_model_dir, glue_dir, method, device="cuda"), progress=False, write=False) for _ in range(2)]
    on_cpu = run(tiny_config(tiny_model_dir, glue_dir, method, device="cpu"), progress=False, write=False)
    assert on_gpu[0]["indices"] == on_cpu["indices"]
    assert abs(on_gpu[0]["log"]["finetune"]["final_loss"] - on_cpu["log"]["finetune"]["final_loss"]) < 0.05
    assert on_gpu[0]["log"]["finetune"]["final_loss"] == pytest.approx(on_gpu[1]["log"]["finetune"]["final_loss"], abs=1e-4)


@pytest.mark.gpu
def test_cuda_rng_state_round_trip_repeats_dropout():
    device = torch.device("cuda", torch.cuda.current_device())
    dropout = torch.nn.Dropout(0.5)
    x = torch.ones(1000, device=device)
    state = rng_state(device)
    first = dropout(x)
    set_rng_state(state, device)
    assert torch.equal(dropout(x), first) and "cuda" in state


@pytest.mark.gpu
def test_a_cached_search_on_the_gpu_gives_the_same_run(tiny_model_dir, glue_dir, tmp_path):
    """The cache stores the GPU's RNG state too: the finetune after a cached search draws the same dropout."""
    config = tiny_config(tiny_model_dir, glue_dir, "mixup-blo", device="cuda")
    first = run(config, progress=False, write=False, search_cache=tmp_path / "cache")
    second = run(config, progress=False, write=False, search_cache=tmp_path / "cache")
    assert second["search_cached"] is True
    assert first["log"]["finetune"]["final_loss"] == pytest.approx(second["log"]["finetune"]["final_loss"], abs=1e-5)


@pytest.mark.gpu
def test_predict_on_the_gpu(tiny_model_dir, glue_dir, tmp_path):
    from mixtune.predict import predict_file

    run(tiny_config(tiny_model_dir, glue_dir, device="cuda", output_dir=str(tmp_path / "run")), progress=False)
    rows = tmp_path / "in.jsonl"
    rows.write_text(json.dumps({"sentence1": "the cat sat", "sentence2": "a dog sat"}) + "\n")
    on_gpu = predict_file(tmp_path / "run", rows, device="cuda")
    on_cpu = predict_file(tmp_path / "run", rows, device="cpu")
    assert on_gpu[0]["label"] == on_cpu[0]["label"]

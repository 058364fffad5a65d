"""Whole runs: determinism on a tiny model, bad input through the CLI, and the real MiniLM end to end."""

import json
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

import mixtune.config as config_module
from mixtune.cli import main
from mixtune.config import build_config
from mixtune.data import load_task
from mixtune.data.batching import make_loader
from mixtune.data.examples import TaskSpec
from mixtune.mixup import mixup_layers
from mixtune.metrics import METRICS
from mixtune.run import run, score_split


def tiny_run_config(tiny_model_dir, glue_dir, method="mixup-blo", **extra):
    values = {
        "method": method, "model": str(tiny_model_dir), "seed": 7,
        "data": {"task": "rte", "data_dir": str(glue_dir), "train_size": 20},
        "train": {"epochs": 1, "max_length": 32, "batch_size": 8, "lr": 1e-3},
        "search": {"splits": 2, "epochs": 1, "hypergradient": "finite-difference"},
    }
    values.update(extra)
    return build_config(values)


def test_same_seed_gives_bit_identical_metrics(tiny_model_dir, glue_dir):
    first = run(tiny_run_config(tiny_model_dir, glue_dir), progress=False, write=False)
    second = run(tiny_run_config(tiny_model_dir, glue_dir), progress=False, write=False)
    assert first["metrics"] == second["metrics"] and first["predictions"] == second["predictions"]
    assert first["log"]["finetune"]["final_loss"] == second["log"]["finetune"]["final_loss"]
    assert first["indices"] == second["indices"]


def test_record_holds_each_test_split_predictions_in_example_order(tiny_model_dir, glue_dir):
    config = tiny_run_config(tiny_model_dir, glue_dir, method="vanilla")
    record = run(config, progress=False, write=False)
    predictions = record["predictions"]
    assert set(predictions) == set(record["metrics"]) - {"dev"} == {"test"}
    labels = load_task(config.data).tests["test"].labels
    assert len(predictions["test"]) == len(labels) and all(type(p) is int for p in predictions["test"])
    assert 100 * METRICS["accuracy"](predictions["test"], labels) == record["metrics"]["test"]["accuracy"]


class LengthModel(torch.nn.Module):
    """Predicts from the number of tokens alone (class 1 when longer than 4.5; value 4.5 - length)."""

    def forward(self, input_ids, attention_mask, **_):
        length = attention_mask.sum(dim=1, keepdim=True).float()
        return SimpleNamespace(logits=torch.cat([4.5 - length, length - 4.5], dim=1))


def test_split_predictions_come_back_in_example_order_though_batches_run_by_length(tiny_model_dir):
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    lengths = [7, 2, 5, 3]
    features = [{"input_ids": [2] * n, "attention_mask": [1] * n, "labels": int(n > 4.5)} for n in lengths]
    loader_of = lambda chosen: make_loader(chosen, tokenizer, 2, shuffle=False)  # noqa: E731
    classes = TaskSpec("t", "classification", ["s"], ["short", "long"], ["accuracy"])
    scores, predictions = score_split(LengthModel(), features, loader_of, classes)
    assert predictions == [1, 0, 1, 0] and scores["accuracy"] == 100.0
    values = TaskSpec("t", "regression", ["s"], None, ["pearson"])
    assert score_split(LengthModel(), features, loader_of, values)[1] == [-2.5, 2.5, -0.5, 1.5]


def test_a_similarity_task_runs_mixup_on_the_cosine_head_and_exports_it(tiny_model_dir, glue_dir, tmp_path):
    config = tiny_run_config(
        tiny_model_dir, glue_dir, pooling="mean", pair_encoding="cosine", output_dir=str(tmp_path / "run"),
        data={"task": "stsb", "data_dir": str(glue_dir), "train_size": 20},
        mixup={"form": "share", "granularity": "module"},
        search={"splits": 2, "epochs": 1, "unroll_steps": 1, "outer_full_split": True, "outer_dropout": False, "alpha_lr_sum": 1.0},
    )
    record = run(config, progress=False)
    assert record["head"] == {"pooling": "mean", "pair_encoding": "cosine"}
    assert "head_start" in record["log"] and record["export"]["max_abs_logit_diff"] < 1e-4
    assert all(isinstance(p, float) for p in record["predictions"]["test"])


def test_the_record_holds_the_form_settings_the_run_resolved(tiny_model_dir, glue_dir, monkeypatch):
    monkeypatch.setattr(config_module, "DEFAULT_MIXUP_FORM", "share")
    config = tiny_run_config(tiny_model_dir, glue_dir, search={"splits": 1, "epochs": 5})
    record = run(config, progress=False, write=False)
    assert (record["config"]["mixup"]["form"], record["config"]["mixup"]["granularity"]) == ("share", "module")
    search = record["config"]["search"]
    keys = ("epochs", "unroll_steps", "outer_full_split", "outer_dropout", "alpha_lr", "alpha_lr_sum")
    assert tuple(search[k] for k in keys) == (5.0, 5, True, False, 2e-3, 1.0)  # epochs as set, the rest the form's
    assert record["hyperparameters"]["search"] == search
    split = record["log"]["search"]["splits"][0]  # the search ran on them: 10 inner steps, an alpha step every 5
    assert (split["inner_steps"], split["alpha_steps"], split["alpha_lr_sum"]) == (10, 2, pytest.approx(1.0))
    assert config.mixup.form is None and config.search.unroll_steps is None  # the caller's config as it was set


def test_methods_of_one_seed_share_the_training_subset(tiny_model_dir, glue_dir):
    records = [run(tiny_run_config(tiny_model_dir, glue_dir, method=m), progress=False, write=False) for m in ("vanilla", "joint")]
    assert records[0]["indices"] == records[1]["indices"]


def test_finetune_phase_keeps_alpha_fixed(tiny_model_dir, glue_dir, monkeypatch):
    """Capture alpha right after the search and compare with the exported alpha file."""
    import mixtune.methods.base as blo  # the finetune phase runs the shared loop through Method.finetune

    captured = {}
    original = blo.train_loop

    def spy(model, *args, **kwargs):
        captured["alpha"] = {n: l.alpha_a.detach().clone() for n, l in mixup_layers(model)}
        captured["requires_grad"] = any(p.requires_grad for _, l in mixup_layers(model) for p in l.alpha_parameters())
        result = original(model, *args, **kwargs)
        captured["after"] = {n: l.alpha_a.detach().clone() for n, l in mixup_layers(model)}
        return result

    monkeypatch.setattr(blo, "train_loop", spy)
    run(tiny_run_config(tiny_model_dir, glue_dir), progress=False, write=False)
    assert not captured["requires_grad"]
    assert all(torch.equal(captured["alpha"][n], captured["after"][n]) for n in captured["alpha"])


def cli(args, capsys):
    code = main(args)
    captured = capsys.readouterr()
    return code, captured.err.strip()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--task", "glue9"], "unknown task 'glue9'"),
        (["--method", "magic"], "unknown method 'magic'"),
        (["--data-dir", "/nonexistent/glue"], "does not exist"),
        (["--train-size", "3000"], "exceeds"),
        (["--train-size", "1"], "too small to split"),
        (["--model", "./no/such/model"], "does not exist"),
        (["--search-splits", "two"], "must be an integer"),
        (["--train-file", "/nonexistent.csv", "--text-columns", "t"], "does not exist"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_no_output(args, message, tmp_path, capsys, glue_dir, tiny_model_dir):
    out = tmp_path / "out"
    base = ["train", "--task", "rte", "--data-dir", str(glue_dir), "--model", str(tiny_model_dir), "--max-length", "32", "--quiet",
            "--output-dir", str(out)]
    code, err = cli(base + args, capsys)
    assert code == 2
    assert message in err and len(err.splitlines()) == 1 and "Traceback" not in err
    assert not out.exists() and not (tmp_path / "out.partial").exists()


def test_config_errors_and_not_a_model(tmp_path, capsys, glue_dir):
    config = tmp_path / "c.yaml"
    config.write_text("train:\n  learning_rate: 1e-3\n")
    code, err = cli(["train", "--config", str(config)], capsys)
    assert code == 2 and "unknown config key 'train.learning_rate'" in err
    not_model = tmp_path / "empty"
    not_model.mkdir()
    code, err = cli(["train", "--task", "rte", "--data-dir", str(glue_dir), "--model", str(not_model)], capsys)
    assert code == 2 and "no config.json" in err


def test_existing_run_folder_is_not_overwritten(tmp_path, capsys, glue_dir):
    out = tmp_path / "out"
    out.mkdir()
    (out / "run.json").write_text("{}")
    code, err = cli(["train", "--task", "rte", "--data-dir", str(glue_dir), "--output-dir", str(out)], capsys)
    assert code == 2 and "--overwrite" in err


def test_process_exit_code_and_no_traceback(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "mixtune.cli", "train", "--task", "nosuch", "--output-dir", str(tmp_path / "o")],
        capture_output=True, text=True,
    )
    assert result.returncode == 2
    assert result.stderr.strip().startswith("mixtune: error: unknown task") and "Traceback" not in result.stderr


@pytest.mark.integration
def test_cli_end_to_end_on_minilm_exports_a_plain_checkpoint(tmp_path, capsys, glue_dir):
    out = tmp_path / "run"
    code = main([
        "train", "--task", "rte", "--train-size", "24", "--seed", "1", "--data-dir", str(glue_dir),
        "--search-splits", "1", "--search-epochs", "1", "--epochs", "1", "--max-length", "64",
        "--output-dir", str(out), "--quiet",
    ])
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert code == 0 and line.startswith("rte mixup-blo seed 1 | test: accuracy")
    record = json.loads((out / "run.json").read_text())
    assert record["export"]["max_abs_logit_diff"] < 1e-4
    assert set(record["time_s"]) >= {"search", "finetune", "eval", "total"}
    assert record["cpu_s"] > 0
    assert len(record["indices"]["train"]) == 24 and record["peak_memory_mb"] > 0
    assert (out / "model" / "alpha.safetensors").is_file() and (out / "config.yaml").is_file()

    # plain transformers, no mixtune: the same logits as the mixup model, which we rebuild from the record
    # the pooled head is the folder's own code (auto_map, model_type mixtune_pooled): without trust_remote_code
    # transformers refuses the folder, rather than building a BERT head with a freshly drawn pooler
    with pytest.raises(ValueError, match="trust_remote_code=True"):
        AutoModelForSequenceClassification.from_pretrained(out / "model", trust_remote_code=False)
    model = AutoModelForSequenceClassification.from_pretrained(out / "model", trust_remote_code=True)
    tokenizer = AutoTokenizer.from_pretrained(out / "model")
    assert not any("alpha" in name for name, _ in model.named_parameters())
    batch = tokenizer(["A cat sat."], ["An animal sat."], return_tensors="pt")
    with torch.no_grad():
        plain = model(**batch).logits
    assert plain.shape == (1, 2) and torch.isfinite(plain).all()

    inputs = tmp_path / "new.jsonl"
    inputs.write_text(json.dumps({"sentence1": "A cat sat.", "sentence2": "An animal sat."}) + "\n")
    assert main(["predict", "--model", str(out), "--input", str(inputs), "--output", str(tmp_path / "p.jsonl")]) == 0
    prediction = json.loads((tmp_path / "p.jsonl").read_text())
    expected = ["entailment", "not_entailment"][int(plain.argmax())]
    assert prediction["label"] == expected
    assert np.isclose(sum(prediction["probabilities"].values()), 1.0, atol=1e-4)


# --- one run per output folder ----------------------------------------------------------------------------
HOLD_LOCK = """
import sys, time
from pathlib import Path
from mixtune.output_lock import output_lock
with output_lock(Path(sys.argv[1])):
    print("held", flush=True)
    time.sleep(120)
"""


@pytest.fixture
def lock_holder(tmp_path):
    """Another process holding the lock of tmp_path/out, as a run in progress does; killed at the end."""
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(tmp_path / "out")], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    yield holder
    holder.kill()
    holder.wait()


def tiny_train_args(tiny_model_dir, glue_dir, out):
    return ["train", "--method", "vanilla", "--task", "rte", "--data-dir", str(glue_dir), "--model", str(tiny_model_dir),
            "--train-size", "16", "--epochs", "1", "--max-length", "32", "--quiet", "--output-dir", str(out)]


@pytest.mark.parametrize("overwrite", [[], ["--overwrite"]])
def test_a_second_run_on_a_folder_in_use_refuses_before_any_work(
    lock_holder, tmp_path, capsys, glue_dir, tiny_model_dir, monkeypatch, overwrite
):
    import mixtune.run

    monkeypatch.setattr(mixtune.run, "load_task", lambda *_: pytest.fail("the data was read: the lock came too late"))
    out = tmp_path / "out"
    code, err = cli(tiny_train_args(tiny_model_dir, glue_dir, out) + overwrite, capsys)
    assert code == 2 and len(err.splitlines()) == 1
    assert err == (f"mixtune: error: output folder {out} is in use by another mixtune run (pid {lock_holder.pid}, "
                   f"lock {tmp_path / 'out.lock'}): wait for it to finish, or pass another --output-dir")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.lock"]  # the holder's lock, nothing of this run


def test_the_lock_of_a_killed_run_blocks_nothing_and_overwrite_still_replaces(
    lock_holder, tmp_path, capsys, glue_dir, tiny_model_dir
):
    lock_holder.kill()
    lock_holder.wait()
    out = tmp_path / "out"
    assert (tmp_path / "out.lock").read_text() == f"pid {lock_holder.pid}\n"  # left behind, flock gone with it
    assert cli(tiny_train_args(tiny_model_dir, glue_dir, out), capsys)[0] == 0
    first = json.loads((out / "run.json").read_text())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no lock, no .partial
    code, err = cli(tiny_train_args(tiny_model_dir, glue_dir, out) + ["--seed", "2"], capsys)
    assert code == 2 and "already holds a run: pass --overwrite" in err
    assert cli(tiny_train_args(tiny_model_dir, glue_dir, out) + ["--seed", "2", "--overwrite"], capsys)[0] == 0
    assert json.loads((out / "run.json").read_text())["config"]["seed"] == 2 != first["config"]["seed"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_a_failed_run_leaves_no_lock_and_no_folder_it_made(tmp_path, capsys, glue_dir, tiny_model_dir):
    out = tmp_path / "runs" / "deep" / "out"
    code, err = cli(tiny_train_args(tiny_model_dir, glue_dir, out) + ["--train-size", "3000"], capsys)
    assert code == 2 and "exceeds" in err
    assert list(tmp_path.iterdir()) == []


def test_a_default_rate_tuned_on_small_backbones_is_named_on_a_larger_one(tiny_model_dir, monkeypatch, capsys):
    """mixup-blo's 2e-4 on a backbone beyond the measured sizes: a one-line note; a set rate or vanilla: silence."""
    import mixtune.run as run_module
    from mixtune.methods import make_method

    tiny_model = AutoModelForSequenceClassification.from_pretrained(tiny_model_dir)
    monkeypatch.setattr(run_module, "LARGEST_CHECKED_PARAMETERS", 1000)  # the tiny BERT is "large" here
    for values, noted in (
        ({"method": "mixup-blo"}, True),
        ({"method": "soup-start"}, True),
        ({"method": "mixup-blo", "train": {"lr": 2e-5}}, False),
        ({"method": "vanilla"}, False),
        ({"method": "lora"}, False),  # parameter-efficient: a high rate is its recipe
    ):
        config = build_config(values)
        run_module.note_untested_default_rate(tiny_model, make_method(config), config)
        err = capsys.readouterr().err
        assert ("default lr 0.0002 was measured on backbones of up to 110M" in err) == noted, values
    monkeypatch.setattr(run_module, "LARGEST_CHECKED_PARAMETERS", 120_000_000)
    config = build_config({"method": "mixup-blo"})
    run_module.note_untested_default_rate(tiny_model, make_method(config), config)
    assert capsys.readouterr().err == ""

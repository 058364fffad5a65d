"""`mixtune predict` takes the path train prints (run/model) as well as the run folder, and runs a model folder's
code only when mixtune exported it unchanged (run.json's code_sha256), else refuses in one line naming
--trust-remote-code."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from mixtune.cli import main
from mixtune.trust import OWN_MODELING_FILE, sha256


@pytest.fixture(scope="module")
def pooled_run(tiny_model_dir, glue_dir, tmp_path_factory) -> Path:
    """A finished RTE run of the tiny BERT with the pooled head (its export carries modeling_mixtune.py)."""
    out = tmp_path_factory.mktemp("predict") / "run"
    code = main([
        "train", "--method", "vanilla", "--model", str(tiny_model_dir), "--pooling", "mean", "--task", "rte",
        "--data-dir", str(glue_dir), "--train-size", "16", "--epochs", "1", "--max-length", "32", "--output-dir", str(out),
        "--quiet",
    ])
    assert code == 0
    return out


@pytest.fixture
def inputs(tmp_path) -> Path:
    path = tmp_path / "new.jsonl"
    rows = [{"sentence1": "the cat sat", "sentence2": "a cat is on the mat"}, {"sentence1": "it was bad", "sentence2": "good"}]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def predict(model: Path, inputs: Path, capsys, *flags: str) -> tuple[int, list[dict], str]:
    code = main(["predict", "--model", str(model), "--input", str(inputs), "--device", "cpu", *flags])
    captured = capsys.readouterr()
    return code, [json.loads(line) for line in captured.out.splitlines()], captured.err


def copy_run(run: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "copy"
    shutil.copytree(run, copy)
    return copy


def test_the_export_records_the_hash_of_its_code(pooled_run):
    record = json.loads((pooled_run / "run.json").read_text())
    assert record["export"]["code_sha256"] == {"modeling_mixtune.py": sha256(OWN_MODELING_FILE)}


def test_predict_takes_the_run_folder_and_the_model_folder_train_prints(pooled_run, inputs, capsys):
    code, from_run, _ = predict(pooled_run, inputs, capsys)
    assert code == 0 and len(from_run) == 2 and from_run[0]["label"] in ("entailment", "not_entailment")
    code, from_model, _ = predict(pooled_run / "model", inputs, capsys)
    assert code == 0 and from_model == from_run


def test_a_folder_that_is_no_run_names_both_accepted_paths(tmp_path, inputs, capsys):
    (tmp_path / "model").mkdir()
    code, _, err = predict(tmp_path / "model", inputs, capsys)
    assert code == 2 and err.count("\n") == 1
    assert "is not a finished mixtune run (no run.json in it or beside it)" in err and "or its model/ folder" in err


def test_a_tampered_modeling_file_is_refused_unless_trusted(pooled_run, tmp_path, inputs, capsys):
    run = copy_run(pooled_run, tmp_path)
    modeling = run / "model" / "modeling_mixtune.py"
    modeling.write_text(modeling.read_text() + "\n# edited\n")
    code, predictions, err = predict(run, inputs, capsys)
    assert code == 2 and predictions == [] and err.count("\n") == 1
    assert err.startswith(f"mixtune: error: {modeling} changed after the export") and "--trust-remote-code" in err
    code, trusted, _ = predict(run, inputs, capsys, "--trust-remote-code")
    assert code == 0 and trusted == predict(pooled_run, inputs, capsys)[1]


def test_foreign_code_in_a_run_folder_is_refused_before_it_runs(pooled_run, tmp_path, inputs, capsys):
    """A folder whose auto_map names code mixtune did not export: refused, and the code never ran."""
    run = copy_run(pooled_run, tmp_path)
    ran = tmp_path / "ran"
    (run / "model" / "evil.py").write_text(f"open({str(ran)!r}, 'w').close()\n")
    config_file = run / "model" / "config.json"
    config = json.loads(config_file.read_text())
    config["auto_map"]["AutoModelForSequenceClassification"] = "evil.Model"
    config_file.write_text(json.dumps(config))
    code, _, err = predict(run, inputs, capsys)
    assert code == 2 and err.count("\n") == 1 and "evil.py is not among the code files run.json recorded" in err
    (run / "model" / "evil.py").unlink()  # an auto_map naming code that is not there at all
    code, _, err = predict(run, inputs, capsys)
    assert code == 2 and "auto_map names code (evil) that is not a file mixtune exported" in err
    assert not ran.exists()


def test_a_head_from_another_mixtune_version_is_refused(pooled_run, tmp_path, inputs, capsys):
    """Recorded at export, unchanged since, but not this mixtune's code: it would run code not running here."""
    run = copy_run(pooled_run, tmp_path)
    modeling = run / "model" / "modeling_mixtune.py"
    modeling.write_text(modeling.read_text() + "\n# another version\n")
    record = json.loads((run / "run.json").read_text())
    record["export"]["code_sha256"]["modeling_mixtune.py"] = sha256(modeling)
    (run / "run.json").write_text(json.dumps(record))
    code, _, err = predict(run, inputs, capsys)
    assert code == 2 and err.count("\n") == 1 and "is not this mixtune's pooled head" in err

"""Every baseline through `mixtune train` on the real MiniLM; `mixtune predict` on the folders in their own format."""

import json
from pathlib import Path

import pytest

from mixtune.cli import main
from mixtune.predict import predict_file

GLUE_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "glue"
CHEAP_ARGS = {"setfit": ["--method-arg", "num_iterations=1"]}  # 24 pairs instead of 120
OWN_EXPORT = {"prefix-tuning", "prompt-tuning", "setfit"}  # the others export plain checkpoints, as vanilla


@pytest.mark.integration
@pytest.mark.parametrize(
    "method", ["child-tuning-d", "child-tuning-f", "dps", "mixout", "lora", "prefix-tuning", "prompt-tuning", "setfit"]
)
def test_train_exports_a_folder_that_reloads(method, tmp_path, capsys):
    if not GLUE_DIR.is_dir():
        pytest.skip(f"GLUE data not found at {GLUE_DIR}")
    out = tmp_path / method
    code = main([
        "train", "--method", method, "--task", "rte", "--train-size", "12", "--data-dir", str(GLUE_DIR),
        "--epochs", "1", "--max-length", "64", "--quiet", "--output-dir", str(out), *CHEAP_ARGS.get(method, []),
    ])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert captured.out.startswith(f"rte {method} seed 1 | test: accuracy")
    record = json.loads((out / "run.json").read_text())
    assert record["export"]["max_abs_logit_diff"] < 1e-4  # run.py reloaded the folder with load_saved
    assert record["hyperparameters"]["epochs"] == 1.0 and "lr" in record["hyperparameters"]
    assert record["time_s"]["finetune"] > 0 and (method != "child-tuning-d" or record["time_s"]["fisher"] > 0)
    if method not in OWN_EXPORT:
        return
    rows = out.parent / "rows.tsv"
    rows.write_text("sentence1\tsentence2\nA cat sat on the mat.\tA cat is sitting.\nIt rained.\tThe sun shone.\n")
    predictions = predict_file(out, rows)
    assert [sorted(p["probabilities"]) for p in predictions] == [["entailment", "not_entailment"]] * 2

"""Issue 32's candidate recipe end to end: mixup-blo with a greedy-soup search, the finetune mask and SWA, written
and exported as any run (benchmarks/pilot_promise.yaml runs its variants)."""

from __future__ import annotations

import json

from transformers import AutoModelForSequenceClassification

from mixtune.config import build_config
from mixtune.run import MODEL_DIR, RECORD_FILE, run


def test_the_recipe_runs_writes_its_record_and_exports_the_averaged_model(tiny_model_dir, glue_dir, tmp_path):
    config = build_config({
        "method": "mixup-blo", "model": str(tiny_model_dir), "seed": 7, "output_dir": str(tmp_path / "out"),
        "method_args": {"finetune_mask_p": 0.3},
        "data": {"task": "rte", "data_dir": str(glue_dir), "train_size": 24},
        "train": {"epochs": 2, "max_length": 32, "batch_size": 8, "lr": 1e-3, "select": "last", "average": "swa"},
        "search": {"splits": 2, "epochs": 1, "average": "greedy"},
    })
    record = run(config, progress=False)
    finetune, soup = record["log"]["finetune"], record["log"]["search"]["soup"]
    assert finetune["average"] == "swa" and finetune["averaged_steps"] == 3 and finetune["average_from_step"] == 4
    assert sorted(soup["order"]) == [0, 1] and soup["kept"][0] == soup["order"][0]
    assert record["hyperparameters"]["finetune_mask_p"] == 0.3
    written = json.loads((tmp_path / "out" / RECORD_FILE).read_text())
    assert written["log"]["finetune"]["averaged_steps"] == 3
    AutoModelForSequenceClassification.from_pretrained(tmp_path / "out" / MODEL_DIR)

"""Predictions of an exported run folder for new texts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from transformers import AutoTokenizer

from mixtune.data.batching import clamp_max_length, make_loader
from mixtune.data.readers import read_table
from mixtune.device import Runtime
from mixtune.errors import MixtuneError
from mixtune.methods import method_class
from mixtune.metrics import predict_logits
from mixtune.run import MODEL_DIR, RECORD_FILE
from mixtune.trust import check_trusted


def load_run(path: str | Path) -> tuple[dict[str, Any], Path]:
    """(run record, model folder) of a run folder, or of its model/ folder (the path train prints)."""
    path = Path(path)
    if (path / RECORD_FILE).is_file():
        run_dir = path
    elif path.name == MODEL_DIR and (path.parent / RECORD_FILE).is_file():
        run_dir = path.parent
    else:
        raise MixtuneError(
            f"{path} is not a finished mixtune run (no {RECORD_FILE} in it or beside it): "
            f"pass the output folder of `mixtune train` or its {MODEL_DIR}/ folder"
        )
    return json.loads((run_dir / RECORD_FILE).read_text()), run_dir / MODEL_DIR


def predict_file(
    run_dir: str | Path, input_file: str | Path, text_columns: list[str] | None = None, batch_size: int = 64,
    device: str = "auto", trust_remote_code: bool = False,
) -> list[dict]:
    """One dict per input row: the predicted label (or score) and, for classifiers, the probabilities.

    `run_dir`: a run folder or its model/ folder. `device`: as a run's setting (auto = CUDA when present);
    predictions are computed in fp32. The folder's code (the pooled head's modeling_mixtune.py) runs only
    if mixtune exported it unchanged (mixtune.trust), or with `trust_remote_code`.
    """
    runtime = Runtime.resolve(device)
    record, model_dir = load_run(run_dir)
    if not trust_remote_code:
        check_trusted(model_dir, record.get("export", {}).get("code_sha256", {}))
    task = record["task"]
    columns = text_columns or task["text_columns"]
    rows = read_table(input_file)
    missing = [c for c in columns if c not in rows[0]]
    if missing:
        raise MixtuneError(
            f"{input_file} has no column {missing[0]!r} (it has {', '.join(rows[0])}): name the text columns with --text-columns"
        )
    tokenizer = AutoTokenizer.from_pretrained(model_dir, trust_remote_code=trust_remote_code)
    model = runtime.place(method_class(record["method"]).load_saved(model_dir))
    max_length = clamp_max_length(record["config"]["train"]["max_length"], tokenizer, model)
    encoded = tokenizer(*[[row[c] for row in rows] for c in columns], truncation=True, max_length=max_length)
    features = [{k: v[i] for k, v in encoded.items()} | {"labels": 0} for i in range(len(rows))]
    logits, _ = predict_logits(model, make_loader(features, tokenizer, batch_size, shuffle=False))
    if task["kind"] == "regression":
        return [{"score": float(v)} for v in logits[:, 0]]
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    probabilities = shifted / shifted.sum(axis=1, keepdims=True)
    names = task["label_names"]
    return [
        {"label": names[int(p.argmax())], "probabilities": {n: round(float(x), 6) for n, x in zip(names, p)}}
        for p in probabilities
    ]

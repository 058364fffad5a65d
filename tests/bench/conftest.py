"""Fixtures of the benchmark tests: grid configs, fake run targets, a hand-made results file, a tiny model."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from mixtune.bench.grid import Cell, load_grid

FAKES = Path(__file__).with_name("fake_runs.py")


def fake(name: str) -> str:
    """The runner target of a fake run function, by file path (so a spawned process can load it)."""
    return f"{FAKES}:{name}"


@pytest.fixture
def make_grid(tmp_path: Path) -> Callable[..., list[Cell]]:
    """Cells of a one-block grid written as YAML (rte by default), results in tmp_path."""

    def make(methods=("vanilla", "mixup-blo"), seeds=(1, 2, 3), **extra: Any) -> list[Cell]:
        values = {"tasks": ["rte"], "sizes": [24], "methods": list(methods), "seeds": list(seeds), **extra}
        path = tmp_path / "grid.yaml"
        path.write_text(yaml.safe_dump(values))
        return load_grid(path).cells

    return make


@pytest.fixture
def results_path(tmp_path: Path) -> Path:
    return tmp_path / "results" / "grid.jsonl"


def write_records(path: Path, lines: list[dict[str, Any]]) -> None:
    """A results file holding `lines`, one JSON object per line, as mixtune bench writes it."""
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))


def record_line(task: str, method: str, seed: int, score: float, **extra: Any) -> dict[str, Any]:
    """One ok results line as mixtune bench writes it, with only what the report reads."""
    metric = {"cola": "mcc", "stsb": "spearman"}.get(task, "accuracy")
    test = {metric: score}
    if task != "stsb":
        test["constant_predictions"] = float(extra.pop("constant", 0))
    line = {
        "key": {"model": None, "task": task, "size": extra.pop("size", 300), "method": method, "seed": seed, "config_hash": "h"},
        "status": "ok",
        "metrics": {"dev": {metric: 0.0}, "test": test},
        "main_metric": metric,
        "hyperparameters": {"lr": 2e-5, "epochs": 3},
        "time_s": {"total": extra.pop("seconds", 10.0)},
        "peak_memory_mb": extra.pop("memory", 1000.0),
    }
    return {**line, **extra}


def alpha_row(module: str, layer: int | None, role: str, on_task: float, on_pretrained: float) -> dict[str, Any]:
    return {"module": module, "layer": layer, "role": role, "task_mean": on_task, "pretrained_mean": on_pretrained}


ALPHA = [
    alpha_row("bert.encoder.layer.0.attention.self.query", 0, "query", 0.90, 0.01),
    alpha_row("bert.encoder.layer.1.attention.self.query", 1, "query", 0.91, 0.01),
    alpha_row("bert.pooler.dense", None, "pooler", 0.5, 0.2),
]


def failed_line(task: str, method: str, seed: int, error: str) -> dict[str, Any]:
    key = {"model": None, "task": task, "size": 300, "method": method, "seed": seed, "config_hash": "h"}
    return {"key": key, "status": "failed", "error": error}


@pytest.fixture
def report_results(tmp_path: Path) -> Path:
    """A hand-made results file whose report numbers are worked out by hand in test_bench_report.py.

    rte (accuracy): vanilla 50 52 54 (seed 1 constant predictions); mixup-blo 53 52 57; lora 60 62 (seeds 1-2).
    cola (mcc): vanilla 10 20 30; mixup-blo 0 25 35. Times: vanilla 10 s, mixup-blo rte 30/20/40 s and
    cola 20 s; memory 1000 vs 1500 MB. Also: a failure later fixed, a failure never fixed, n = 500
    vanilla/mixup-blo rte runs (score against size), and a partial last line.
    """
    lines = [
        record_line("rte", "vanilla", 1, 50, constant=1),
        record_line("rte", "vanilla", 2, 52),
        record_line("rte", "vanilla", 3, 54),
        record_line("cola", "vanilla", 1, 10),
        record_line("cola", "vanilla", 2, 20),
        record_line("cola", "vanilla", 3, 30),
        failed_line("rte", "mixup-blo", 1, "FloatingPointError: nan"),
        record_line("rte", "mixup-blo", 1, 53, seconds=30.0, memory=1500.0, alpha_summary=ALPHA),
        record_line("rte", "mixup-blo", 2, 52, seconds=20.0, memory=1500.0, alpha_summary=ALPHA),
        record_line("rte", "mixup-blo", 3, 57, seconds=40.0, memory=1500.0, alpha_summary=ALPHA),
        record_line("cola", "mixup-blo", 1, 0, seconds=20.0, memory=1500.0, alpha_summary=ALPHA),
        record_line("cola", "mixup-blo", 2, 25, seconds=20.0, memory=1500.0, alpha_summary=ALPHA),
        record_line("cola", "mixup-blo", 3, 35, seconds=20.0, memory=1500.0, alpha_summary=ALPHA),
        record_line("rte", "lora", 1, 60),
        record_line("rte", "lora", 2, 62),
        failed_line("cola", "lora", 1, "RuntimeError: boom | bang"),
        record_line("rte", "vanilla", 1, 56, size=500),
        record_line("rte", "mixup-blo", 1, 58, size=500, alpha_summary=ALPHA),
    ]
    path = tmp_path / "bench.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines) + '{"key": {"model": nu')
    return path

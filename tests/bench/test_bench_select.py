"""`mixtune select` on a hand-made tuning results file: the rule, dropped variants, the overrides file."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import pytest
import yaml

from mixtune.bench.grid import load_grid
from mixtune.bench.select import overrides_yaml, select, table
from mixtune.cli import main
from mixtune.errors import MixtuneError

from .conftest import write_records

DAY = date(2025, 1, 2)


def tuned_line(method: str, lr: float, epochs: int, task: str, seed: int, dev: float, **extra: Any) -> dict[str, Any]:
    """An ok line of a tuning sweep: the row label holds the sweep values; test scores run opposite to dev."""
    label = f"{method}[lr={lr:.0e},epochs={epochs}]"
    metric = {"mrpc": "f1"}.get(task, "accuracy")
    return {
        "key": {"model": None, "task": task, "size": 300, "method": label, "seed": seed, "config_hash": f"{lr}-{epochs}"},
        "status": "ok",
        "method": method,
        "config": {"method": method, "seed": seed, "train": {"lr": lr, "epochs": float(epochs), "batch_size": 16}},
        "hyperparameters": {"lr": lr, "epochs": float(epochs)},
        "metrics": {"dev": {"accuracy": 0.0, metric: dev}, "test": {metric: 100.0 - dev}},
        "main_metric": metric,
        **extra,
    }


def failed(method: str, lr: float, epochs: int, task: str, seed: int, error: str) -> dict[str, Any]:
    label = f"{method}[lr={lr:.0e},epochs={epochs}]"
    key = {"model": None, "task": task, "size": 300, "method": label, "seed": seed, "config_hash": f"{lr}-{epochs}"}
    return {"key": key, "status": "failed", "method": method, "error": error}


def cells(method: str, lr: float, epochs: int, rte: tuple[float, float], mrpc: tuple[float, float]) -> list[dict]:
    """Seeds 1 and 2 on rte, then on mrpc, with these dev scores."""
    scores = {"rte": rte, "mrpc": mrpc}
    return [tuned_line(method, lr, epochs, task, seed, scores[task][seed - 1]) for task in scores for seed in (1, 2)]


@pytest.fixture
def tuning(tmp_path) -> Path:
    """vanilla: 2e-5 mean 61; 1e-4 mean 69.5 (chosen); 5e-4 best on its cells but mrpc s2 failed (dropped).
    lora: 5e-4/10 and 5e-4/3 tie at 65 (fewer epochs win); 1e-3 has no mrpc s2 run yet (dropped).
    A failed first attempt of vanilla 2e-5 rte s1, fixed by a later run, does not count against it."""
    lines = [
        failed("vanilla", 2e-5, 3, "rte", 1, "FloatingPointError: nan"),
        *cells("vanilla", 2e-5, 3, (50, 52), (70, 72)),
        *cells("vanilla", 1e-4, 3, (60, 62), (80, 76)),
        *cells("vanilla", 5e-4, 3, (90, 90), (90, 0))[:3],
        failed("vanilla", 5e-4, 3, "mrpc", 2, "FloatingPointError: training loss became nan"),
        *cells("lora", 5e-4, 10, (60, 60), (70, 70)),
        *cells("lora", 5e-4, 3, (70, 70), (60, 60)),
        *cells("lora", 1e-3, 10, (99, 99), (99, 99))[:3],
    ]
    path = tmp_path / "tune.jsonl"
    write_records(path, lines)
    return path


def test_the_best_mean_dev_score_over_every_cell_wins(tuning):
    selection = select(tuning)
    assert {m: c.label for m, c in selection.chosen.items()} == {
        "vanilla": "vanilla[lr=1e-04,epochs=3]", "lora": "lora[lr=5e-04,epochs=3]",
    }
    assert selection.chosen["vanilla"].mean == 69.5 and selection.chosen["vanilla"].task_mean("mrpc") == 78.0
    assert selection.overrides() == {
        "vanilla": {"train": {"lr": 1e-4, "epochs": 3}}, "lora": {"train": {"lr": 5e-4, "epochs": 3}},
    }
    dropped = {c.label: c.why_dropped() for variants in selection.candidates.values() for c in variants if not c.eligible}
    assert dropped == {
        "vanilla[lr=5e-04,epochs=3]": "mrpc s2 failed (FloatingPointError: training loss became nan)",
        "lora[lr=1e-03,epochs=10]": "no run on mrpc s2",
    }


def test_the_table_marks_the_choice_and_the_file_says_where_it_came_from(tuning, tmp_path):
    selection = select(tuning)
    shown = table(selection).splitlines()
    assert shown[0].split() == ["row", "variant", "mean", "dev", "mrpc", "rte", "cells", "ok"]
    assert shown[2].split() == ["*", "vanilla", "vanilla[lr=1e-04,epochs=3]", "69.50", "78.00", "61.00", "4/4"]
    assert shown[3].split() == ["vanilla", "vanilla[lr=5e-04,epochs=3]", "90.00", "90.00", "90.00", "3/4"]  # not eligible
    text = overrides_yaml(selection, DAY)
    header = [line for line in text.splitlines() if line.startswith("#")]
    assert header[0] == f"# Tuned settings chosen by `mixtune select` from {tuning} (dev split) on 2025-01-02."
    assert "best mean dev score (each task's main metric: mrpc f1, rte accuracy)" in header[1]
    assert "only variants with every cell ok; ties to fewer epochs, then lower lr" in header[1]
    assert header[2] == "# vanilla: vanilla[lr=1e-04,epochs=3], mean dev 69.50 over 4 cells (3 variants, 1 dropped)"
    assert yaml.safe_load(text) == selection.overrides()

    tuned = tmp_path / "tuned.yaml"
    tuned.write_text(text)
    grid = tmp_path / "table.yaml"
    grid.write_text(f"overrides_file: {tuned}\ntasks: [rte]\nsizes: [24]\nmethods: [vanilla, lora]\nseeds: [1]\n")
    vanilla, lora = load_grid(grid).cells
    assert vanilla.values["train"] == {"lr": 1e-4, "epochs": 3} and lora.values["train"] == {"lr": 5e-4, "epochs": 3}
    assert vanilla.settings_from == f"{tuned}: " + header[0].lstrip("# ")


def test_select_command_prints_the_table_and_writes_the_overrides(tuning, tmp_path, capsys):
    out = tmp_path / "benchmarks" / "tuned.yaml"
    assert main(["select", str(tuning), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "dropped vanilla[lr=5e-04,epochs=3]: mrpc s2 failed" in printed and "dropped lora[lr=1e-03,epochs=10]" in printed
    assert f"wrote {out}: vanilla vanilla[lr=1e-04,epochs=3], lora lora[lr=5e-04,epochs=3]" in printed
    assert yaml.safe_load(out.read_text())["lora"] == {"train": {"lr": 5e-4, "epochs": 3}}
    assert main(["select", str(tuning)]) == 0  # no --out: the overrides are printed
    assert "vanilla:\n  train:\n    lr: 0.0001\n    epochs: 3\n" in capsys.readouterr().out


def variant_cells(label: str, method: str, lr: float, rte: tuple[float, float], mrpc: tuple[float, float]) -> list[dict]:
    """cells() of a labelled variant: the row label `label[lr=...]`, running `method`."""
    lines = cells(method, lr, 10, rte, mrpc)
    for line in lines:
        line["key"] = {**line["key"], "method": line["key"]["method"].replace(method, label, 1)}
        line["key"]["config_hash"] = f"{label}-{lr}"
    return lines


def test_two_variants_of_one_method_are_tuned_apart_by_row_and_compete_by_method(tmp_path, capsys):
    """mixup-blo and mixup-blo-share both run mixup-blo: each table row needs its own rate (--by row, the
    default); --by method picks one of the four candidates, as a pilot choosing the method's default does."""
    path = tmp_path / "tune.jsonl"
    lines = [
        *variant_cells("mixup-blo", "mixup-blo", 2e-5, (50, 50), (60, 60)),
        *variant_cells("mixup-blo", "mixup-blo", 1e-4, (55, 55), (65, 65)),
        *variant_cells("mixup-blo-share", "mixup-blo", 2e-5, (70, 70), (80, 80)),
        *variant_cells("mixup-blo-share", "mixup-blo", 1e-4, (60, 60), (70, 70)),
    ]
    write_records(path, lines)
    by_row = select(path)
    assert {row: c.label for row, c in by_row.chosen.items()} == {
        "mixup-blo": "mixup-blo[lr=1e-04,epochs=10]", "mixup-blo-share": "mixup-blo-share[lr=2e-05,epochs=10]",
    }
    assert by_row.overrides() == {
        "mixup-blo": {"train": {"lr": 1e-4, "epochs": 10}}, "mixup-blo-share": {"train": {"lr": 2e-5, "epochs": 10}},
    }
    by_method = select(path, by="method")
    assert {m: c.label for m, c in by_method.chosen.items()} == {"mixup-blo": "mixup-blo-share[lr=2e-05,epochs=10]"}
    assert main(["select", str(path), "--by", "method"]) == 0
    printed = capsys.readouterr().out
    assert "per method, the variant with the best mean dev score" in printed
    assert table(by_method).splitlines()[0].split()[:2] == ["method", "variant"]
    with pytest.raises(MixtuneError, match="select --by 'task' is not known: use one of row, method"):
        select(path, by="task")


def test_a_method_with_no_complete_variant_is_an_error_and_nothing_is_written(tmp_path, capsys):
    path = tmp_path / "tune.jsonl"
    lines = [*cells("vanilla", 2e-5, 3, (50, 52), (70, 72)), *cells("dps", 2e-5, 3, (50, 52), (70, 72))[:3]]
    write_records(path, lines)
    out = tmp_path / "tuned.yaml"
    assert main(["select", str(path), "--out", str(out)]) == 2
    captured = capsys.readouterr()
    assert "dropped dps[lr=2e-05,epochs=3]: no run on mrpc s2" in captured.out
    assert "no variant of dps has every cell ok" in captured.err and captured.err.count("\n") == 1
    assert not out.exists()


def test_user_errors(tmp_path):
    with pytest.raises(MixtuneError, match="does not exist: run the tuning sweep"):
        select(tmp_path / "missing.jsonl")
    path = tmp_path / "tune.jsonl"
    lines = [*cells("vanilla", 2e-5, 3, (50, 52), (70, 72)), {**tuned_line("vanilla", 2e-5, 3, "rte", 3, 50.0)}]
    lines[-1]["key"]["size"] = 500
    write_records(path, lines)
    with pytest.raises(MixtuneError, match="several models or train sizes"):
        select(path)
    write_records(path, lines[:-1])
    with pytest.raises(MixtuneError, match="has no 'validation' scores: choose --split from dev, test"):
        select(path, split="validation")


def test_select_can_rank_on_pool_test_where_dev_would_choose_otherwise(tmp_path, capsys):
    """Issue 32's pilot ranked on 2,000 pool_test examples of tuning seeds, not 50 dev ones: select does the same."""
    from mixtune.cli import main

    lines = [*cells("vanilla", 2e-5, 3, (60, 60), (60, 60)), *cells("vanilla", 1e-4, 3, (70, 70), (70, 70))]
    for line in lines:  # pool_test runs opposite to dev: 2e-5 is better there
        line["metrics"]["pool_test"] = {line["main_metric"]: 130.0 - line["metrics"]["dev"][line["main_metric"]]}
    path = tmp_path / "tune.jsonl"
    write_records(path, lines)
    assert select(path).chosen["vanilla"].label == "vanilla[lr=1e-04,epochs=3]"
    assert select(path, split="pool_test").chosen["vanilla"].label == "vanilla[lr=2e-05,epochs=3]"
    assert main(["select", str(path), "--split", "pool_test", "--out", str(tmp_path / "tuned.yaml")]) == 0
    assert "(pool_test split)" in (tmp_path / "tuned.yaml").read_text()
    assert "mean pool_test" in capsys.readouterr().out

"""Instability beyond the std (seed disagreement, failed runs) and the verdict, on hand-made results."""

from __future__ import annotations

import numpy as np
import pytest

from mixtune.bench.report import write_report
from mixtune.bench.runs import load_runs
from mixtune.bench.stability import disagreement, failed_counts, shared_predictions
from mixtune.bench.stats import compare
from mixtune.bench.verdict import interval

from .conftest import failed_line, record_line, write_records
from .test_bench_report import row


def write_results(tmp_path, lines: list[dict]) -> str:
    """report.md of a results file holding `lines`."""
    path = tmp_path / "bench.jsonl"
    write_records(path, lines)
    write_report([path], tmp_path / "report")
    return (tmp_path / "report" / "report.md").read_text()


def section(text: str, title: str) -> str:
    return text.split(f"### {title}")[1].split("###")[0]


def predicted(task: str, method: str, seed: int, score: float, predictions: list | None) -> dict:
    """A results line whose record stored `predictions` for its test split (None: a record from before)."""
    line = record_line(task, method, seed, score)
    line["task"] = {"kind": "regression" if task == "stsb" else "classification"}
    if predictions is not None:
        line["predictions"] = {"test": predictions}
    return line


def test_classification_disagreement_is_the_fraction_of_examples_predicted_differently():
    assert disagreement([0, 1, 2, 1], [0, 1, 2, 1], regression=False) == 0.0
    assert disagreement([0, 1, 1, 0], [0, 1, 0, 1], regression=False) == 0.5
    assert disagreement([0, 0, 0, 0], [0, 0, 0, 2], regression=False) == 0.25


def test_regression_disagreement_is_one_minus_pearson():
    values = [0.5, 1.25, 3.0, 4.75]
    assert disagreement(values, values, regression=True) == 0.0
    assert disagreement(values, [2 * v + 1 for v in values], regression=True) == pytest.approx(0.0)  # same ranking and spacing
    assert disagreement(values, [-v for v in values], regression=True) == pytest.approx(2.0)
    assert disagreement(values, [2.0] * 4, regression=True) == 1.0  # a constant prediction correlates with nothing
    other = [1.0, 0.0, 3.0, 5.0]
    assert disagreement(values, other, regression=True) == pytest.approx(1 - np.corrcoef(values, other)[0, 1])


def test_seeds_scoring_different_examples_are_compared_on_the_ones_they_share(tmp_path):
    """pool_test gives each seed its own examples (its own training examples left out): pairs match by pool index."""
    lines = []
    for seed, ids, predictions in ((1, [3, 5, 8, 9], [1, 0, 1, 1]), (2, [2, 3, 5, 8], [0, 1, 0, 0])):
        line = record_line("rte", "vanilla", seed, 50)
        line["task"] = {"kind": "classification"}
        line["predictions"], line["indices"] = {"pool_test": predictions}, {"pool_test": ids}
        line["metrics"]["pool_test"] = line["metrics"]["test"]
        lines.append(line)
    path = tmp_path / "bench.jsonl"
    write_records(path, lines)
    first, second = load_runs([path], "pool_test").runs
    assert shared_predictions(first, second) == ([1, 0, 1], [1, 0, 0])  # examples 3, 5, 8
    assert disagreement(*shared_predictions(first, second), regression=False) == pytest.approx(1 / 3)  # by position: 1


def test_disagreement_table_averages_seed_pairs_and_needs_two_seeds(tmp_path):
    text = write_results(
        tmp_path,
        [
            # rte pairs: (1,2) differ on 1 of 4, (1,3) on 2, (2,3) on 1: mean 1/3
            predicted("rte", "vanilla", 1, 50, [0, 0, 0, 0]),
            predicted("rte", "vanilla", 2, 52, [0, 0, 0, 1]),
            predicted("rte", "vanilla", 3, 54, [1, 0, 0, 1]),
            predicted("rte", "mixup-blo", 1, 53, [1, 0, 1, 0]),
            predicted("rte", "mixup-blo", 2, 53, [1, 0, 1, 0]),
            predicted("stsb", "vanilla", 1, 40, [1.0, 2.0, 3.0, 4.0]),
            predicted("stsb", "vanilla", 2, 20, [4.0, 3.0, 2.0, 1.0]),  # perfectly anti-correlated: 1 - (-1)
            predicted("stsb", "mixup-blo", 1, 30, [1.0, 2.0, 3.0, 4.0]),
            predicted("stsb", "mixup-blo", 2, 30, None),  # an older record: no predictions
        ],
    )
    table = section(text, "Stability")
    assert "Seed disagreement is the mean over pairs of seeds" in table
    disagreements = table.split("Seed disagreement")[1]
    assert row(disagreements, "vanilla") == ["2.000 (n=2)", "0.333 (n=3)"]  # GLUE order: stsb, then rte
    assert row(disagreements, "mixup-blo") == ["—", "0.000 (n=2)"]  # stsb: one seed with predictions


def test_failed_count_counts_cells_never_finished():
    failed = [
        failed_line("rte", "vanilla", 4, "boom"),
        failed_line("rte", "vanilla", 5, "boom"),
        failed_line("cola", "vanilla", 1, "boom"),
        {**failed_line("rte", "vanilla", 6, "boom"), "key": {**failed_line("rte", "vanilla", 6, "")["key"], "size": 500}},
        {**failed_line("rte", "lora", 1, "boom"), "key": {**failed_line("rte", "lora", 1, "")["key"], "config_hash": "h2"}},
    ]
    counts = failed_counts(failed, "default", 300, ["vanilla", "lora@h1", "lora@h2"])
    assert counts == {("vanilla", "rte"): 2, ("vanilla", "cola"): 1, ("lora@h2", "rte"): 1}  # n = 500 is another group


def test_stability_table_shows_failed_runs_beside_degenerate_ones(tmp_path):
    text = write_results(
        tmp_path,
        [
            record_line("rte", "vanilla", 1, 50, constant=1),
            record_line("rte", "vanilla", 2, 54),
            failed_line("rte", "vanilla", 3, "FloatingPointError: nan"),
            failed_line("rte", "mixup-blo", 1, "FloatingPointError: nan"),
            record_line("rte", "mixup-blo", 1, 53),  # the failure was fixed by a later run: not counted
        ],
    )
    table = section(text, "Stability")
    assert row(table, "vanilla") == ["σ 2.83 · worst 50.00 (s1) · degenerate 1/2 · failed 1"]
    assert row(table, "mixup-blo") == ["σ — · worst 53.00 (s1) · degenerate 0/1 · failed 0"]
    assert len(load_runs([tmp_path / "bench.jsonl"]).failed) == 1


def verdict_lines(extra: list[dict] | None = None) -> list[dict]:
    """Five seeds: rte +5 +6 +6 +5 +7 (won), mrpc -3 -4 -4 -3 -5 (lost), sst2 +1 -1 0 +1 -1 (tied)."""
    differences = {"rte": (5, 6, 6, 5, 7), "mrpc": (-3, -4, -4, -3, -5), "sst2": (1, -1, 0, 1, -1)}
    lines = []
    for task, diffs in differences.items():
        for seed, diff in enumerate(diffs, start=1):
            lines += [record_line(task, "vanilla", seed, 60 + seed), record_line(task, "mixup-blo", seed, 60 + seed + diff)]
    return lines + [record_line("qnli", "lora", 1, 60)] + (extra or [])  # lora shares no pair with mixup-blo: no row


def test_verdict_pools_on_the_per_seed_mean_and_calls_tasks_from_five_seeds(tmp_path):
    table = section(write_results(tmp_path, verdict_lines()), "Verdict")
    pooled = compare([(5 - 3 + 1) / 3, (6 - 4 - 1) / 3, (6 - 4) / 3, (5 - 3 + 1) / 3, (7 - 5 - 1) / 3])  # seed by seed
    assert "| against | seeds | tasks | mean difference (mixup-blo - other) [95% t-interval] |" in table
    assert row(table, "vanilla")[:4] == ["5", "3", interval(pooled), f"{pooled.p:.3f} / {pooled.p_sign_flip:.3f}"]
    assert row(table, "vanilla")[5:] == ["better" if pooled.low > 0 else "no clear difference", "1 / 1 / 1"]
    assert "| lora |" not in table


def test_a_seed_missing_from_a_task_leaves_the_pool_and_few_seeds_are_not_called(tmp_path):
    cola = [record_line("cola", "vanilla", 1, 10), record_line("cola", "mixup-blo", 1, 30)]  # seed 1 only: (5 - 3 + 1 + 20) / 4
    table = section(write_results(tmp_path, verdict_lines(cola)), "Verdict")
    assert row(table, "vanilla") == ["1", "4", "+5.75 (1 seed)", "— / —", "—", "n too small", "1 / 1 / 1 (n too small: 1)"]
    three = [line for line in verdict_lines() if line["key"]["seed"] <= 3]
    table = section(write_results(tmp_path, three), "Verdict")
    assert row(table, "vanilla")[0] == "3" and row(table, "vanilla")[5:] == ["n too small", "n too small"]

"""The chance reference: the constant prediction's test score beside the table, on hand-made GLUE files and results.
It only informs: no verdict is chosen from it (tests/bench/test_report_protocol.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mixtune.bench.chance import constant_prediction
from mixtune.data.examples import TaskSpec

from mixtune.bench.report import write_report

from .conftest import record_line, write_records
from .test_bench_report import row
from .test_report_stability import section, write_results


def spec(metric: str, kind: str = "classification") -> TaskSpec:
    return TaskSpec("t", kind, ["sentence"], None if kind == "regression" else ["no", "yes"], [metric])


def test_constant_prediction_is_the_best_single_class():
    labels = [1, 1, 1, 0]
    assert constant_prediction(spec("accuracy"), labels).score == pytest.approx(75.0)
    assert constant_prediction(spec("accuracy"), labels).prediction == "always 'yes'"
    assert constant_prediction(spec("accuracy"), [0, 0, 0, 1]).prediction == "always 'no'"
    assert constant_prediction(spec("f1"), [0, 0, 0, 1]).score == pytest.approx(40.0)  # all positive: F1 = 2/5
    assert constant_prediction(spec("mcc"), labels).score == 0.0
    assert constant_prediction(spec("spearman", "regression"), [0.5, 2.0, 4.0]).score == 0.0


def glue_folder(root: Path) -> Path:
    """A GLUE folder whose test (dev.tsv) labels are RTE 3 of 4 'entailment' and SST-2 1 of 4 positive."""
    rte, sst2 = root / "RTE", root / "SST-2"
    rte.mkdir(parents=True)
    sst2.mkdir()
    pair = "index\tsentence1\tsentence2\tlabel\n"
    rte_rows = "".join(f"{i}\ta\tb\t{label}\n" for i, label in enumerate(["entailment"] * 3 + ["not_entailment"]))
    for name in ("train.tsv", "dev.tsv"):
        (rte / name).write_text(pair + rte_rows)
        (sst2 / name).write_text("sentence\tlabel\n" + "".join(f"s{i}\t{label}\n" for i, label in enumerate("1000")))
    return root


def with_data(line: dict, data_dir: Path | str) -> dict:
    return {**line, "config": {"data": {"task": line["key"]["task"], "data_dir": str(data_dir), "train_size": 300}}}


def scored(tmp_path: Path, data_dir: Path | str) -> str:
    """rte: vanilla 76-78 (within 5 of the constant 75), mixup-blo +5; sst2: vanilla 85-87, mixup-blo -1 each."""
    lines = []
    for seed in (1, 2, 3):
        lines += [record_line("rte", "vanilla", seed, 75 + seed), record_line("rte", "mixup-blo", seed, 80 + seed)]
        lines += [record_line("sst2", "vanilla", seed, 84 + seed), record_line("sst2", "mixup-blo", seed, 83 + seed)]
    return write_results(tmp_path, [with_data(line, data_dir) for line in lines])


def test_report_shows_the_constant_prediction_and_chooses_nothing_from_it(tmp_path):
    text = scored(tmp_path, glue_folder(tmp_path / "glue"))
    scores = section(text, "Test scores (main metric of each task)")
    assert row(scores, "*constant prediction*") == ["75.00", "75.00", "75.00"]  # sst2, rte, their average
    assert "sst2: always '0'; rte: always 'entailment'" in scores
    assert "At chance" not in text and "tasks that learn" not in text  # no task set is picked from test means


def test_unreadable_labels_are_said_not_guessed(tmp_path):
    text = scored(tmp_path, tmp_path / "no-such-folder")
    scores = section(text, "Test scores (main metric of each task)")
    assert "*constant prediction*" not in scores.split("No chance reference")[0]
    assert "No chance reference for sst2, rte: their test labels could not be read from the data their runs name." in scores


def test_a_pool_test_report_takes_its_reference_from_the_seeds_pool_test_labels(tmp_path):
    """The official test split (dev.tsv) is 1 of 4 positive, the training pool all positive: scored on pool_test,
    the reference is the pool's 'always 1' at 100, not the test split's 'always 0' at 75."""
    glue = glue_folder(tmp_path / "glue")
    (glue / "SST-2" / "train.tsv").write_text("sentence\tlabel\n" + "".join(f"s{i}\t1\n" for i in range(40)))
    lines = []
    for seed in (1, 2):
        for method, score in (("vanilla", 90.0), ("mixup-blo", 91.0)):
            line = record_line("sst2", method, seed, score)
            line["metrics"]["pool_test"] = {"accuracy": score, "constant_predictions": 0.0}
            line["config"] = {"data": {"task": "sst2", "data_dir": str(glue), "train_size": 8, "pool_test_size": 10}}
            lines.append(line)
    path = tmp_path / "bench.jsonl"
    write_records(path, lines)
    write_report([path], tmp_path / "report", split="pool_test")
    scores = section((tmp_path / "report" / "report.md").read_text(), "Test scores (main metric of each task)")
    assert row(scores, "*constant prediction*") == ["100.00", "100.00"]
    assert "sst2: always '1'" in scores

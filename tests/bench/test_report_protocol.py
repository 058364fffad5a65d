"""What the report judges is fixed before the run: headline tasks and rivals from the grid config, rivals ranked
on dev, selection on dev only; and runs whose alpha was quantised are left out of every table."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import yaml

from mixtune.bench.grid import Protocol
from mixtune.bench.report import write_report
from mixtune.bench.runs import load_runs
from mixtune.cli import main
from mixtune.errors import MixtuneError

from .conftest import record_line, write_records
from .test_bench_report import row
from .test_report_stability import section

PICK_RIVALS = Path(__file__).parents[2] / "benchmarks" / "pick_rivals.py"


def table_lines() -> list[dict]:
    """rte: mixup-blo +5 on vanilla, -2 on lora; sst2: -1 on vanilla, +1 on lora (seeds 1-3)."""
    offsets = {"vanilla": (0, 0), "mixup-blo": (5, -1), "lora": (7, -2)}
    return [
        record_line(task, method, seed, 60 + seed + offset)
        for method, pair in offsets.items()
        for task, offset in zip(("rte", "sst2"), pair)
        for seed in (1, 2, 3)
    ]


def report_text(tmp_path: Path, lines: list[dict], protocol: Protocol = Protocol()) -> str:
    path = tmp_path / "results.jsonl"
    write_records(path, lines)
    write_report([path], tmp_path / "report", protocol=protocol)
    return (tmp_path / "report" / "report.md").read_text()


def test_headline_verdict_only_for_tasks_named_in_the_config(tmp_path):
    assert "Verdict on the headline tasks" not in report_text(tmp_path, table_lines())
    text = report_text(tmp_path, table_lines(), Protocol(headline_tasks=("sst2", "qnli")))
    headline = section(text, "Verdict on the headline tasks")
    assert "named in the grid config (headline_tasks: sst2)" in headline  # qnli has no runs here
    assert row(headline, "vanilla")[:3] == ["3", "1", "-1.00 [-1.00, -1.00]"]
    assert row(headline, "lora")[:3] == ["3", "1", "+1.00 [+1.00, +1.00]"]


def test_rivals_are_the_only_rows_of_the_verdict(tmp_path):
    text = report_text(tmp_path, table_lines(), Protocol(rivals=("lora",)))
    verdict = section(text, "Verdict")
    assert "| lora |" in verdict and "| vanilla |" not in verdict
    assert "against the rivals named in the grid config (lora)" in verdict
    assert "| vanilla |" in section(text, "mixup-blo against each method, task by task")  # still shown, not judged


def test_report_command_reads_the_protocol_from_the_grid_config(tmp_path, capsys):
    results = tmp_path / "results.jsonl"
    write_records(results, table_lines())
    config = tmp_path / "grid.yaml"
    grid = {"tasks": ["rte", "sst2"], "sizes": [300], "methods": ["vanilla", "mixup-blo", "lora"], "seeds": [1, 2, 3]}
    config.write_text(yaml.safe_dump({**grid, "headline_tasks": ["rte"]}))
    assert main(["report", str(results), "--out", str(tmp_path / "out"), "--config", str(config)]) == 0
    assert "(headline_tasks: rte)" in section((tmp_path / "out" / "report.md").read_text(), "Verdict on the headline tasks")


def test_select_on_test_is_refused_with_one_line(tmp_path, capsys):
    results = tmp_path / "tune.jsonl"
    write_records(results, table_lines())
    assert main(["select", str(results), "--split", "test"]) == 2
    error = capsys.readouterr().err.strip()
    assert "select --split test: the protocol selects on dev or pool_test only" in error and "\n" not in error


def test_pick_rivals_ranks_on_dev_scores_not_test(tmp_path, capsys):
    module_spec = importlib.util.spec_from_file_location("pick_rivals", PICK_RIVALS)
    pick_rivals = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(pick_rivals)
    scores = {  # method: (dev, test) on every task; the test order is the reverse of the dev order
        "dps": (70, 90),
        "lora": (80, 70),
        "mixout": (75, 80),
        "soup-start": (99, 60),  # a control, not a rival
        "mixup-blo-share": (99, 60),  # a variant of the method
    }
    lines = []
    for method, (dev, test) in scores.items():
        for task in ("rte", "stsb"):
            for seed in (1, 2, 3):
                line = record_line(task, method, seed, test + (seed == 3) * 50)
                line["metrics"]["dev"] = {line["main_metric"]: dev + (seed == 3) * 50}
                lines.append(line)
    lines.append(record_line("rte", "bitfit", 1, 99))  # did not run stsb
    path = tmp_path / "results.jsonl"
    write_records(path, lines)
    assert pick_rivals.main([str(path), "--seeds", "1-2", "--tasks", "rte", "stsb"]) == 0
    ranked = [line.split() for line in capsys.readouterr().out.splitlines()[1:]]
    assert ranked == [["lora", "80.00"], ["mixout", "75.00"], ["dps", "70.00"]]  # seed 3's +50 left out


def test_mixup_runs_with_a_quantised_alpha_are_left_out_with_a_note(tmp_path):
    def line(method: str, seed: int, precision: str, version: int | None, score: float = 60.0) -> dict:
        record = {**record_line("rte", method, seed, score, config={"precision": precision}), "method": method}
        return {**record, **({"record_version": version} if version else {})}

    lines = [
        line("vanilla", 1, "bf16", None),  # not a mixup method: kept
        line("mixup-blo", 1, "bf16", None, score=99.0),  # quantised alpha: out
        line("joint", 1, "fp16", None),  # out
        line("random-alpha", 1, "fp32", None),  # full precision: kept
        line("joint", 2, "bf16", 2),  # recorded after the fix: kept
    ]
    path = tmp_path / "results.jsonl"
    write_records(path, lines)
    loaded = load_runs([path])
    assert sorted((r.method, r.seed) for r in loaded.runs) == [("joint", 2), ("random-alpha", 1), ("vanilla", 1)]
    assert [r["key"]["method"] for r in loaded.excluded] == ["mixup-blo", "joint"]
    text = report_text(tmp_path, lines)
    assert "Left out of every table: 2 mixup-family run(s) in bf16/fp16 recorded before record version 2" in text
    assert "99.00" not in text


def test_report_scores_the_pool_test_split_when_asked_and_refuses_runs_without_it(tmp_path):
    lines = []
    for seed in (11, 12, 13):
        for method, test, pool in (("vanilla", 70.0, 60.0 + seed), ("mixup-blo", 71.0, 62.0 + seed)):
            line = record_line("sst2", method, seed, test)
            line["metrics"]["pool_test"] = {"accuracy": pool}
            lines.append(line)
    results = tmp_path / "results.jsonl"
    write_records(results, lines)
    assert main(["report", str(results), "--out", str(tmp_path / "out"), "--split", "pool_test"]) == 0
    text = (tmp_path / "out" / "report.md").read_text()
    assert "'pool_test' split" in text and "| mixup-blo | **74.00 ± 1.00** |" in text  # the pool_test scores, not 71
    assert "+2.00 [+2.00, +2.00]" in text
    lines[0]["metrics"].pop("pool_test")
    write_records(results, lines)
    with pytest.raises(MixtuneError, match="1 finished runs have no 'pool_test' split .*sst2 vanilla n300 s11"):
        write_report([results], tmp_path / "out2", split="pool_test")

"""`mixtune bench` and `mixtune report` through the command line (runs faked by monkeypatching run_cell)."""

from __future__ import annotations

import pytest
import yaml

from mixtune.bench import runner
from mixtune.bench.results import read_results
from mixtune.cli import main

from . import fake_runs


@pytest.fixture
def config(tmp_path):
    path = tmp_path / "mini.yaml"
    path.write_text(yaml.safe_dump({"tasks": ["rte"], "sizes": [24], "methods": ["vanilla", "mixup-blo"], "seeds": [1, 2]}))
    return path


def test_bench_runs_the_grid_and_resumes(config, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(runner, "run_cell", fake_runs.ok_run)
    results = tmp_path / "out" / "mini.jsonl"
    assert main(["bench", str(config), "--results", str(results), "--in-process", "--quiet", "--limit", "3"]) == 0
    assert "3 ok, 0 failed in this sweep; 0 done before" in capsys.readouterr().out
    assert main(["bench", str(config), "--results", str(results), "--in-process", "--quiet"]) == 0
    assert "1 ok, 0 failed in this sweep; 3 done before" in capsys.readouterr().out
    assert len(read_results(results)) == 4


def test_bench_seeds_runs_some_seeds_now_and_the_rest_later(config, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(runner, "run_cell", fake_runs.ok_run)
    results = tmp_path / "out" / "mini.jsonl"
    assert main(["bench", str(config), "--results", str(results), "--in-process", "--quiet", "--seeds", "2"]) == 0
    out, err = capsys.readouterr()
    assert "2 ok, 0 failed in this sweep" in out and "2 cells now, 2 of other seeds left for a later sweep" in err
    assert {r["key"]["seed"] for r in read_results(results)} == {2}
    assert main(["bench", str(config), "--results", str(results), "--in-process", "--quiet"]) == 0
    assert "2 ok, 0 failed in this sweep; 2 done before" in capsys.readouterr().out


@pytest.mark.parametrize("seeds, message", [("1-3", "the grid has no seed 3"), ("one", "write seeds and ranges")])
def test_bench_seeds_outside_the_grid_are_a_one_line_error(config, tmp_path, capsys, seeds, message):
    assert main(["bench", str(config), "--results", str(tmp_path / "r.jsonl"), "--seeds", seeds]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and not (tmp_path / "r.jsonl").exists()


def test_bench_exits_1_when_a_run_failed(config, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(runner, "run_cell", fake_runs.nan_on_mixup)
    assert main(["bench", str(config), "--results", str(tmp_path / "r.jsonl"), "--in-process", "--quiet"]) == 1
    assert "2 ok, 2 failed in this sweep" in capsys.readouterr().out


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--workers", "0"], "--workers must be at least 1"),
        (["--workers", "2", "--in-process"], "--in-process runs one at a time"),
    ],
)
def test_bad_sweep_options_are_user_errors(config, tmp_path, capsys, flags, message):
    assert main(["bench", str(config), "--results", str(tmp_path / "r.jsonl"), "--quiet", *flags]) == 2
    assert message in capsys.readouterr().err


def test_dry_run_lists_cells_and_runs_nothing(config, tmp_path, capsys):
    results = tmp_path / "r.jsonl"
    assert main(["bench", str(config), "--results", str(results), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "run     rte vanilla n24 s1 [" in out and "4 cells: 4 to run, 0 done, 0 failed" in out
    assert not results.exists()


def test_a_bad_config_is_one_line_and_exit_2(tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text("tasks: [rte]\nsizes: [24]\nmethods: [vanila]\nseeds: [1]\n")
    assert main(["bench", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mixtune: error: bench config: unknown method 'vanila'") and err.count("\n") == 1


def test_report_writes_beside_the_results_and_prints_the_headline(report_results, capsys):
    assert main(["report", str(report_results)]) == 0
    out = capsys.readouterr().out
    assert "| mixup-blo | **20.00 ± 18.03** | 54.00 ± 2.65 | **37.00 ± 9.84** |" in out
    assert (report_results.parent / "bench-report" / "report.md").is_file()

"""Bench and report fail before any work on a location they cannot write; a run's failure never stops the
sweep; a run whose sweep was killed outright ends quietly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from mixtune.bench import runner
from mixtune.bench.results import read_results
from mixtune.bench.runner import run_sweep
from mixtune.cli import main
from mixtune.errors import MixtuneError

from .conftest import fake

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "mini.yaml"
    path.write_text(yaml.safe_dump({"tasks": ["rte"], "sizes": [24], "methods": ["vanilla"], "seeds": [1, 2]}))
    return path


@pytest.fixture
def blocker(tmp_path: Path) -> Path:
    """A regular file where a folder is needed."""
    path = tmp_path / "blocker"
    path.write_text("not a folder\n")
    return path


def test_bench_results_under_a_regular_file_fails_before_the_first_run(config, blocker, monkeypatch, capsys):
    started = []
    monkeypatch.setattr(runner, "run_cell", lambda cfg: started.append(cfg))
    assert main(["bench", str(config), "--results", str(blocker / "r.jsonl"), "--in-process", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err == f"mixtune: error: results file {blocker / 'r.jsonl'} cannot be created: {blocker} is a file, not a folder; choose another location\n"
    assert started == [] and blocker.read_text() == "not a folder\n"


def test_a_search_cache_under_a_regular_file_fails_before_the_first_run(make_grid, results_path, blocker):
    with pytest.raises(MixtuneError, match="search cache folder .* is a file, not a folder"):
        run_sweep(make_grid(), results_path, target=fake("ok_run"), isolate=False, progress=False, search_cache=blocker / "cache")
    assert not results_path.exists()


def test_report_out_under_a_regular_file_is_one_line_and_writes_nothing(report_results, blocker, capsys):
    assert main(["report", str(report_results), "--out", str(blocker / "report")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mixtune: error: report folder") and "is a file, not a folder" in err and err.count("\n") == 1
    assert not (report_results.parent / "bench-report").exists()


def test_any_exception_is_a_failed_run_with_a_one_line_reason_and_the_sweep_goes_on(make_grid, results_path):
    cells = make_grid(methods=["vanilla"], seeds=[1, 2, 3, 4])
    summary = run_sweep(cells, results_path, target=fake("raise_anything"), isolate=False, progress=False)
    assert (summary.ok, summary.failed) == (1, 3)
    errors = {r["key"]["seed"]: r.get("error") for r in read_results(results_path)}
    assert errors == {1: "RuntimeError: out of patience", 2: "KeyError: 'head'", 3: "ValueError", 4: None}


def alive(pid: int) -> bool:
    """Running, and not a zombie left for a parent that no longer reaps it."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads process states from /proc (Linux)")
def test_a_run_orphaned_by_kill_9_of_the_sweep_ends_quietly(make_grid, tmp_path):
    make_grid(methods=["vanilla"], seeds=[1])
    pid_file, log = tmp_path / "child.pid", tmp_path / "sweep.err"
    script = (
        "import sys; from pathlib import Path; from mixtune.bench.grid import load_grid; "
        "from mixtune.bench.runner import run_sweep; "
        "run_sweep(load_grid(sys.argv[1]).cells, Path(sys.argv[2]), target=sys.argv[3], progress=False)"
    )
    env = {**os.environ, "MIXTUNE_TEST_PID_FILE": str(pid_file)}
    with log.open("w") as err:
        sweep = subprocess.Popen(
            [sys.executable, "-c", script, str(tmp_path / "grid.yaml"), str(tmp_path / "r.jsonl"), fake("sleep_run")],
            stderr=err, env=env, cwd=REPO,
        )
    child = None
    try:
        deadline = time.monotonic() + 120
        while not pid_file.exists() or not pid_file.read_text():
            assert sweep.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        child = int(pid_file.read_text())
        sweep.send_signal(signal.SIGKILL)
        sweep.wait()
        deadline = time.monotonic() + 20
        while alive(child) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not alive(child), "the orphaned run kept going"
        assert "Traceback" not in log.read_text() and "BrokenPipeError" not in log.read_text()
        assert not (tmp_path / "r.jsonl").read_text()
    finally:
        if child is not None and alive(child):
            os.kill(child, signal.SIGKILL)
        if sweep.poll() is None:
            sweep.kill()

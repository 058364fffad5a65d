"""--backend ray against a local Ray instance this module starts (2 CPUs): one line per run, failures recorded,
resume, a worker killed mid-run and a driver killed mid-sweep lose nothing and duplicate nothing.
Skipped without ray (pip install 'mixtune[ray]'); fake runs keep each task to a fraction of a second."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from mixtune.bench.results import read_results
from mixtune.bench.runner import run_sweep
from mixtune.cli import main
from mixtune.errors import MixtuneError

from .conftest import fake

needs_ray = pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="ray is not installed: pip install 'mixtune[ray]'")
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def ray_cluster():
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="warning")
    yield ray
    ray.shutdown()


def ray_sweep(cells, results, name="ok_run", **options):
    return run_sweep(cells, results, target=fake(name), progress=False, backend="ray", **options)


def lines_by_seed(results) -> dict[int, list[dict]]:
    by_seed: dict[int, list[dict]] = {}
    for line in read_results(results):
        by_seed.setdefault(line["key"]["seed"], []).append(line)
    return by_seed


def test_missing_ray_and_a_stray_address_are_one_line_errors(make_grid, results_path, monkeypatch, capsys, tmp_path):
    monkeypatch.setitem(sys.modules, "ray", None)  # as if not installed
    with pytest.raises(MixtuneError, match=r"^--backend ray needs the ray package: pip install 'mixtune\[ray\]'$"):
        ray_sweep(make_grid(), results_path)
    assert not results_path.exists()
    config = tmp_path / "grid.yaml"
    config.write_text("tasks: [rte]\nsizes: [24]\nmethods: [vanilla]\nseeds: [1]\n")
    assert main(["bench", str(config), "--address", "auto"]) == 2
    assert capsys.readouterr().err == "mixtune: error: --address names a Ray cluster: add --backend ray\n"


@needs_ray
def test_every_run_is_a_task_with_one_line_and_a_rerun_does_nothing(ray_cluster, make_grid, results_path):
    cells = make_grid(seeds=[1, 2])
    summary = ray_sweep(cells, results_path, name="nan_on_mixup")
    assert (summary.ok, summary.failed) == (2, 2)
    lines = read_results(results_path)
    assert sorted(line["key"]["seed"] for line in lines) == [1, 1, 2, 2]
    ok = [line for line in lines if line["status"] == "ok"]
    assert all(line["pid"] != os.getpid() for line in ok) and len({line["pid"] for line in ok}) == 2  # fresh processes
    failed = [line for line in lines if line["status"] == "failed"]
    assert failed[0]["error"] == "FloatingPointError: training loss became nan: lower the learning rate"
    again = ray_sweep(cells, results_path)
    assert (again.ok, again.done_before, again.failed_before) == (0, 2, 2)
    assert len(read_results(results_path)) == 4


@needs_ray
def test_a_resource_the_cluster_lacks_is_one_line(ray_cluster, make_grid, results_path):
    with pytest.raises(MixtuneError, match=r"each run asks for 1 GPU\(s\), but the Ray cluster has 0"):
        ray_sweep(make_grid(seeds=[1]), results_path, resources={"gpus": 1.0})
    assert read_results(results_path) == []


@needs_ray
def test_a_worker_killed_mid_run_is_retried_and_recorded_once(ray_cluster, make_grid, results_path, tmp_path):
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    cells = make_grid(methods=["vanilla"], seeds=[1, 2, 3], base={"output_dir": str(scratch)})
    marker = scratch / "seed2.pid"
    killed: list[int] = []

    def kill_when_started() -> None:
        deadline = time.monotonic() + 60
        while not marker.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        if marker.exists():
            killed.append(int(marker.read_text()))
            os.kill(killed[0], signal.SIGKILL)

    killer = threading.Thread(target=kill_when_started)
    killer.start()
    summary = ray_sweep(cells, results_path, name="killed_once", resources={"cpus": 1.0})
    killer.join()
    assert killed, "the run to kill never started"
    assert (summary.ok, summary.failed) == (3, 0)
    by_seed = lines_by_seed(results_path)
    assert {seed: len(lines) for seed, lines in by_seed.items()} == {1: 1, 2: 1, 3: 1}
    assert by_seed[2][0]["status"] == "ok" and by_seed[2][0]["pid"] != killed[0]  # the retry's record


@needs_ray
def test_a_driver_killed_mid_sweep_is_resumed_without_duplicates(ray_cluster, tmp_path, results_path):
    config = tmp_path / "grid.yaml"
    config.write_text("tasks: [rte]\nsizes: [24]\nmethods: [vanilla]\nseeds: [1, 2, 3, 4, 5, 6]\n")
    address = ray_cluster.get_runtime_context().gcs_address
    script = (
        "import sys; from mixtune.bench.grid import load_grid; from mixtune.bench.runner import run_sweep; "
        "run_sweep(load_grid(sys.argv[1]).cells, __import__('pathlib').Path(sys.argv[2]), target=sys.argv[3], "
        "progress=False, backend='ray', address=sys.argv[4])"
    )
    driver = subprocess.Popen(
        [sys.executable, "-c", script, str(config), str(results_path), fake("slow_run"), address], cwd=REPO,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and driver.poll() is None:
            if results_path.exists() and results_path.read_text().count("\n") >= 2:
                break
            time.sleep(0.05)
        assert driver.poll() is None, "the driver ended before it could be killed"
        driver.send_signal(signal.SIGKILL)
    finally:
        driver.kill()
        driver.wait()
    written = len(read_results(results_path))
    assert 2 <= written < 6
    from mixtune.bench.grid import load_grid

    summary = ray_sweep(load_grid(config).cells, results_path, name="slow_run")
    assert (summary.ok, summary.done_before) == (6 - written, written)
    keys = [json.dumps(line["key"], sort_keys=True) for line in read_results(results_path)]
    assert len(keys) == len(set(keys)) == 6

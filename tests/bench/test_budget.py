"""benchmarks/budget.py: pricing a bench config's cells from finished runs' times."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import yaml

from mixtune.config import RunConfig

BUDGET = Path(__file__).parents[2] / "benchmarks" / "budget.py"


@pytest.fixture(scope="module")
def budget():
    spec = importlib.util.spec_from_file_location("budget", BUDGET)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def record(method: str, task: str, seed: int, total: float, search: float | None = None, cached: bool = False) -> dict:
    config = RunConfig(method=method, seed=seed)
    config.train.epochs = 10
    config.search.epochs = 2
    config.mixup.form, config.mixup.granularity = "share", "module"
    times = {"total": total, **({"search": search} if search is not None else {})}
    key = {"model": None, "task": task, "size": 300, "method": method, "seed": seed, "config_hash": "x"}
    line = {"key": key, "status": "ok", "method": method, "config": config.to_dict(), "time_s": times}
    return {**line, "search_cached": True} if cached else line  # as mixtune.run writes a reused search


def priced(out: str, group: str) -> str:
    """The CPU-seconds printed on a group's line."""
    line = next(line for line in out.splitlines() if line.split()[:1] == [group])
    return line.split()[1]


def write_config(tmp_path: Path, methods: list[str], overrides: dict, tasks=("sst2",), seeds=(1,)) -> Path:
    values = {
        "results": str(tmp_path / "planned.jsonl"),
        "search_cache": str(tmp_path / "cache"),
        "base": {"train": {"epochs": 20}},
        "overrides": overrides,
        "tasks": list(tasks),
        "sizes": [150],
        "seeds": list(seeds),
        "methods": methods,
    }
    path = tmp_path / "grid.yaml"
    path.write_text(yaml.safe_dump(values))
    return path


def write_records(tmp_path: Path, records: list[dict]) -> Path:
    path = tmp_path / "timed.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def test_prices_by_the_median_scaled_to_the_cells_budget(budget, tmp_path, capsys):
    """Median of 100/200/900 s at 300 x 10 examples is 200 s; a cell of 150 x 20 examples costs the same."""
    timed = write_records(tmp_path, [record("vanilla", "sst2", s, t) for s, t in ((1, 100.0), (2, 200.0), (3, 900.0))])
    config = write_config(tmp_path, ["vanilla"], {}, seeds=(1, 2))
    assert budget.main([str(config), "--from", str(timed), "--workers", "2"]) == 0
    out = capsys.readouterr().out
    assert "2 of 2 cells to run" in out
    assert priced(out, "vanilla") == "400"
    assert "0.1 h on 2 workers" in out


def test_cpu_seconds_beat_wall_time_where_recorded(budget, tmp_path, capsys):
    """A run that waited for the CPU half the time: 400 s of wall time, 200 CPU-seconds."""
    timed = write_records(tmp_path, [{**record("vanilla", "sst2", 1, 400.0), "cpu_s": 200.0}])
    config = write_config(tmp_path, ["vanilla"], {})
    assert budget.main([str(config), "--from", str(timed)]) == 0
    assert priced(capsys.readouterr().out, "vanilla") == "200"


def test_the_total_is_also_given_at_the_runs_own_wall_time_per_cpu_second(budget, tmp_path, capsys):
    """Runs that waited for the cores: 3,600 s of wall time for 2,400 CPU-s, 1.5x; 3,600 CPU-s to run is 1.5 h."""
    timed = write_records(tmp_path, [{**record("vanilla", "sst2", s, 1800.0), "cpu_s": 1200.0} for s in (1, 2)])
    config = write_config(tmp_path, ["vanilla"], {}, seeds=(1, 2, 3))
    assert budget.main([str(config), "--from", str(timed), "--workers", "1"]) == 0
    out = capsys.readouterr().out
    assert "1.0 h of wall time for 0.7 CPU-h (1.50x): at that rate, 1.5 h on 1 workers" in out


def test_cells_sharing_a_cached_search_pay_for_it_once(budget, tmp_path, capsys):
    timed = write_records(tmp_path, [
        record("vanilla", "sst2", 1, 100.0),
        record("mixup-blo", "sst2", 1, 300.0, search=200.0),  # search 200 s over 300 x 2, the rest 100 s over 300 x 10
        record("mixup-blo", "sst2", 2, 100.0, search=200.0, cached=True),  # the same: a reused search is not in total
    ])
    lrs = {"mixup-blo": {"mixup": {"form": "share", "granularity": "module"}, "sweep": {"train.lr": [1e-5, 2e-5, 3e-5]}}}
    config = write_config(tmp_path, ["mixup-blo"], lrs)
    assert budget.main([str(config), "--from", str(timed)]) == 0
    # search: 200 / 600 per example x (150 x 2) = 100 s, once; the rest: 100 / 3000 x (150 x 20) = 100 s, three times
    assert priced(capsys.readouterr().out, "mixup-blo") == "400"


def test_an_untimed_task_is_priced_by_the_methods_ratio_to_vanilla(budget, tmp_path, capsys):
    timed = write_records(tmp_path, [
        record("vanilla", "sst2", 1, 100.0),
        record("vanilla", "stsb", 1, 300.0),
        record("dps", "sst2", 1, 150.0),  # 1.5x vanilla; never ran on STS-B
    ])
    config = write_config(tmp_path, ["dps"], {}, tasks=("stsb",))
    assert budget.main([str(config), "--from", str(timed), "--by", "task"]) == 0
    out = capsys.readouterr().out
    assert priced(out, "stsb") == "450"
    assert "no timing" not in out


def test_a_method_never_timed_is_counted_apart(budget, tmp_path, capsys):
    timed = write_records(tmp_path, [record("vanilla", "sst2", 1, 100.0)])
    config = write_config(tmp_path, ["vanilla", "lora"], {})
    assert budget.main([str(config), "--from", str(timed)]) == 0
    out = capsys.readouterr().out
    assert "(1 cells with no timing)" in out
    assert "1 cells have no timing in the given files and are not counted" in out

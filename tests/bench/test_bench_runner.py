"""The sweep: resume, --limit, interruption, failures, the partial last line, spawned processes, a real run."""

from __future__ import annotations

import json
import os

import pytest

from mixtune.bench.grid import load_grid
from mixtune.bench.results import indices_sha256, read_results
from mixtune.bench.runner import plan, run_sweep
from mixtune.mixup.diagnostics import layer_position

from .conftest import fake


def sweep(cells, results, name="ok_run", **options):
    return run_sweep(cells, results, target=fake(name), isolate=False, progress=False, **options)


def seeds_in(results) -> list[tuple[str, int, str]]:
    return [(r["key"]["method"], r["key"]["seed"], r["status"]) for r in read_results(results)]


def test_every_cell_gets_one_line_and_a_rerun_does_nothing(make_grid, results_path):
    cells = make_grid()
    summary = sweep(cells, results_path)
    assert (summary.ok, summary.failed, summary.done_before) == (6, 0, 0)
    lines = read_results(results_path)
    assert [line["key"] for line in lines] == [c.key for c in cells]
    assert all(line["status"] == "ok" for line in lines)
    assert lines[0]["metrics"]["test"]["accuracy"] == 51.0
    again = sweep(cells, results_path)
    assert (again.ok, again.done_before) == (0, 6)
    assert len(read_results(results_path)) == 6


def test_limit_then_restart_keeps_every_line_once(make_grid, results_path):
    cells = make_grid()
    first = sweep(cells, results_path, limit=2)
    assert (first.ok, first.not_started) == (2, 4)
    sweep(cells, results_path)
    assert len(read_results(results_path)) == 6
    assert len({json.dumps(r["key"], sort_keys=True) for r in read_results(results_path)}) == 6


def test_an_interrupted_sweep_keeps_finished_runs_and_resumes(make_grid, results_path):
    cells = make_grid(methods=["vanilla"], seeds=[1, 2, 3, 4, 5])
    with pytest.raises(KeyboardInterrupt):
        sweep(cells, results_path, name="interrupt_at_seed_3")
    assert seeds_in(results_path) == [("vanilla", 1, "ok"), ("vanilla", 2, "ok")]
    summary = sweep(cells, results_path)
    assert (summary.ok, summary.done_before) == (3, 2)
    assert [seed for _, seed, _ in seeds_in(results_path)] == [1, 2, 3, 4, 5]


def test_a_failed_run_is_recorded_and_the_sweep_goes_on(make_grid, results_path):
    cells = make_grid(seeds=[1, 2])
    summary = sweep(cells, results_path, name="nan_on_mixup")
    assert (summary.ok, summary.failed) == (2, 2)
    failed = [r for r in read_results(results_path) if r["status"] == "failed"]
    assert [r["key"]["method"] for r in failed] == ["mixup-blo", "mixup-blo"]
    assert failed[0]["error"] == "FloatingPointError: training loss became nan: lower the learning rate"
    assert "Traceback" in failed[0]["traceback"]
    skipped = sweep(cells, results_path)  # failures are not retried by default
    assert (skipped.ok, skipped.failed_before) == (0, 2)
    retried = sweep(cells, results_path, retry_failed=True)
    assert (retried.ok, retried.done_before) == (2, 2)
    assert [action for _, action in plan(cells, results_path, retry_failed=False)] == ["done"] * 4


def test_a_run_killed_while_writing_is_redone(make_grid, results_path):
    cells = make_grid(seeds=[1, 2])
    sweep(cells, results_path, limit=2)
    text = results_path.read_text()
    results_path.write_text(text[: len(text) - 40])  # the second line, cut mid-write
    assert [seed for _, seed, _ in seeds_in(results_path)] == [1]
    summary = sweep(cells, results_path)
    assert summary.dropped_partial_line and (summary.ok, summary.done_before) == (3, 1)
    assert [(m, s) for m, s, _ in seeds_in(results_path)] == [("vanilla", 1), ("vanilla", 2), ("mixup-blo", 1), ("mixup-blo", 2)]


def test_runs_in_spawned_processes_survive_a_dying_run(make_grid, results_path):
    """The real path: one fresh process per run, two at a time; a run whose process dies is a failure."""
    cells = make_grid(methods=["vanilla"], seeds=[1, 2, 3])
    summary = run_sweep(cells, results_path, target=fake("die_or_fail"), workers=2, progress=False)
    assert (summary.ok, summary.failed) == (1, 2)
    by_seed = {r["key"]["seed"]: r for r in read_results(results_path)}
    assert by_seed[1]["status"] == "ok" and by_seed[1]["pid"] != os.getpid()
    assert by_seed[2]["error"] == "the run's process died without a result (exit code 3)"
    assert by_seed[3]["error"].startswith("FloatingPointError")


def test_search_cache_and_settings_source_reach_the_runs_and_their_lines(tmp_path, results_path):
    """The grid's search_cache is passed to the run (here in a spawned process); lines say where settings came from."""
    tuned = tmp_path / "tuned.yaml"
    tuned.write_text("# Tuned settings chosen by `mixtune select` on 2025-01-02.\nvanilla: {train: {lr: 1.0e-4}}\n")
    config = tmp_path / "grid.yaml"
    config.write_text(
        f"search_cache: {tmp_path / 'cache'}\noverrides_file: {tuned}\n"
        "overrides: {mixup-blo: {sweep: {train.epochs: [2]}}}\n"
        "tasks: [rte]\nsizes: [24]\nmethods: [vanilla, mixup-blo]\nseeds: [1]\n"
    )
    grid = load_grid(config)
    options = {"target": fake("echo_options"), "progress": False, "search_cache": grid.search_cache}
    assert run_sweep(grid.cells[:1], results_path, **options).ok == 1  # a spawned process
    assert run_sweep(grid.cells, results_path, isolate=False, **options).ok == 1  # the other, in this one
    vanilla, mixup = read_results(results_path)
    assert vanilla["search_cache"] == mixup["search_cache"] == str(tmp_path / "cache")
    assert vanilla["settings_from"].startswith(f"{tuned}: Tuned settings chosen by") and "settings_from" not in mixup
    assert mixup["key"]["method"] == "mixup-blo[epochs=2]" and mixup["method"] == "mixup-blo"
    failed = run_sweep(grid.cells, tmp_path / "failed.jsonl", target=fake("nan_on_mixup"), isolate=False, progress=False)
    assert failed.failed == 1 and read_results(tmp_path / "failed.jsonl")[1]["method"] == "mixup-blo"


def test_layer_position_names_layer_and_role():
    assert layer_position("bert.encoder.layer.3.attention.self.query") == (3, "query")
    assert layer_position("bert.encoder.layer.0.attention.output.dense") == (0, "attention.output")
    assert layer_position("bert.encoder.layer.5.output.dense") == (5, "output")
    assert layer_position("bert.pooler.dense") == (None, "pooler")
    assert layer_position("mpnet.encoder.layer.2.attention.attn.q") == (2, "q")


def test_real_runs_pair_subsets_across_methods_and_summarise_alpha(tmp_path, glue_dir, tiny_model_dir, results_path):
    """mixtune.run.run on a tiny BERT: same seed, same training subset for every method; mixup keeps alpha."""
    grid = tmp_path / "real.yaml"
    grid.write_text(
        f"base: {{data: {{data_dir: {glue_dir}}}, train: {{max_length: 32, eval_batch_size: 128}}}}\n"
        f"models: [{tiny_model_dir}]\n"
        "overrides: {mixup-blo: {search: {splits: 1, epochs: 1}}}\n"
        "tasks: [rte]\nsizes: [24]\nmethods: [vanilla, mixup-blo]\nseeds: [1]\n"
    )
    summary = run_sweep(load_grid(grid).cells, results_path, isolate=False, progress=False)
    assert summary.ok == 2, read_results(results_path)
    vanilla, mixup = read_results(results_path)
    assert vanilla["indices"]["train"] == mixup["indices"]["train"] and len(vanilla["indices"]["train"]) == 24
    assert vanilla["indices"]["train_sha256"] == mixup["indices"]["train_sha256"] == indices_sha256(vanilla["indices"]["train"])
    assert "alpha_summary" not in vanilla
    layers = mixup["alpha_summary"]
    assert {(row["layer"], row["role"]) for row in layers} >= {(0, "query"), (1, "output"), (None, "pooler")}
    assert len(layers) == 2 * 6 + 1
    assert all(0.0 <= row["task_min"] <= row["task_mean"] <= row["task_max"] <= 1.0 for row in layers)
    diagnostics = mixup["log"]["alpha_diagnostics"]  # every mixup-blo record says whether alpha learned
    assert diagnostics["alpha_steps"] > 0 and diagnostics["snr_noise"] > 0 and diagnostics["share_travel"] >= 0
    assert all(0.0 <= row["share_mean"] <= 1.0 and row["share_travel"] is not None for row in layers)
    assert set(mixup["log"]["search"]["val_indices"]) == {"sha256"}

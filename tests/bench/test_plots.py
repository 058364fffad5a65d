"""The report's plots stay readable: few series per panel, a bounded width, named axes, no flat heatmap."""

from __future__ import annotations

import struct
from dataclasses import replace

import pytest

from mixtune.bench import plots
from mixtune.bench.runs import Run

TASKS = ["cola", "sst2", "mrpc", "stsb", "qnli", "rte"]
METRICS = {"cola": "mcc", "sst2": "accuracy", "mrpc": "f1", "stsb": "spearman", "qnli": "accuracy", "rte": "accuracy"}
METHODS = [f"method-{i}" for i in range(16)]


def png_size(path) -> tuple[int, int]:
    width, height = struct.unpack(">II", path.read_bytes()[16:24])  # the IHDR chunk
    return width, height


def run(task: str, method: str, seed: int, shares: tuple[float, ...] = (), size: int = 300) -> Run:
    curve = [{"step": step, "dev": 50.0 + seed + step / 10} for step in (4, 8, 12)]
    alpha = [{"role": "query", "layer": layer, "share_mean": share} for layer, share in enumerate(shares)]
    return Run(
        model="default", size=size, task=task, method=method, seed=seed, metric=METRICS[task], score=50.0 + seed,
        degenerate=False, seconds=1.0, memory_mb=1.0, dev_curve=curve, alpha=alpha or None,
    )


@pytest.fixture
def table_runs() -> list[Run]:
    return [run(task, method, seed) for task in TASKS for method in METHODS for seed in (1, 2, 3)]


def test_sixteen_methods_are_faceted_with_the_baseline_in_every_group():
    groups = plots.method_groups(METHODS)
    assert all(len(group) <= plots.MAX_SERIES for group in groups)
    assert all(group[0] == METHODS[0] for group in groups)
    assert sorted({m for group in groups for m in group}) == sorted(METHODS)
    assert [len(group) for group in groups] == [6, 6, 6]  # 15 rivals as 5 + 5 + 5, not 7 + 7 + 1
    assert plots.method_groups(METHODS[:5]) == [METHODS[:5]]


@pytest.mark.parametrize("draw", ["seed_plot", "dev_curve_plot"])
def test_a_sixteen_row_table_plots_at_most_1600_px_wide(table_runs, tmp_path, draw):
    path = tmp_path / f"{draw}.png"
    getattr(plots, draw)(table_runs, TASKS, METHODS, path, "Model default, n = 300")
    width, _ = png_size(path)
    assert width <= 1600


def test_axis_labels_name_the_metric_and_its_unit():
    assert plots.metric_label("accuracy", "dev") == "dev accuracy (%)"
    assert plots.metric_label("spearman", "test") == "test spearman (x 100)"


def test_dev_curve_steps_are_integer_ticks(table_runs, tmp_path, monkeypatch):
    saved = {}
    monkeypatch.setattr(plots, "_save", lambda figure, path, title: saved.setdefault("figure", figure))
    plots.dev_curve_plot(table_runs, ["sst2"], METHODS[:3], tmp_path / "dev.png", "t")
    ax = saved["figure"].axes[0]
    assert ax.get_xlabel() == "training step" and ax.get_ylabel() == "dev accuracy (%)"
    ticks = [t for t in ax.get_xticks() if 4 <= t <= 12]
    assert ticks and all(float(t).is_integer() for t in ticks)


def test_a_flat_alpha_is_reported_as_one_share_and_a_moving_one_is_not():
    flat = [run("sst2", "mixup-blo", seed, shares=(0.0, 0.0, 0.0015)) for seed in (1, 2)]  # as run 2's alpha
    moving = [run("sst2", "mixup-blo-share", seed, shares=(0.30, 0.36, 0.41)) for seed in (1, 2)]
    assert plots.flat_share(flat) == pytest.approx(0.0, abs=1e-3)
    assert plots.flat_share(moving) is None


def test_the_heatmap_scale_stays_inside_zero_to_one(tmp_path, monkeypatch):
    images = []
    real_imshow = plots.plt.Axes.imshow
    monkeypatch.setattr(plots.plt.Axes, "imshow", lambda self, *a, **k: images.append(k) or real_imshow(self, *a, **k))
    runs = [run("sst2", "mixup-blo-share", 1, shares=(0.0, 0.2, 0.4))]
    plots.alpha_heatmap(runs, ["sst2"], tmp_path / "alpha.png", "t")
    assert images[0]["vmin"] >= 0.0 and images[0]["vmax"] <= 1.0


def test_one_seed_draws_no_error_bar(tmp_path, monkeypatch):
    bars = []
    real_errorbar = plots.plt.Axes.errorbar
    monkeypatch.setattr(plots.plt.Axes, "errorbar", lambda self, *a, **k: bars.append(a) or real_errorbar(self, *a, **k))
    one_seed = [run("sst2", "vanilla", 1, size=size) for size in (300, 1000)]
    plots.size_plot(one_seed, ["sst2"], ["vanilla"], tmp_path / "one.png", "t")
    assert bars == []
    two_seeds = one_seed + [run("sst2", "vanilla", 2, size=300)]
    plots.size_plot(two_seeds, ["sst2"], ["vanilla"], tmp_path / "two.png", "t")
    assert [list(a[0]) for a in bars] == [[300]]


def test_the_score_axis_names_the_split_the_runs_were_scored_on(tmp_path, monkeypatch):
    saved = {}
    monkeypatch.setattr(plots, "_save", lambda figure, path, title: saved.setdefault("figure", figure))
    runs = [replace(run("sst2", "vanilla", seed), test_split="pool_test") for seed in (1, 2)]
    plots.seed_plot(runs, ["sst2"], ["vanilla"], tmp_path / "seeds.png", "t")
    assert saved["figure"].axes[0].get_xlabel() == "pool_test accuracy (%)"

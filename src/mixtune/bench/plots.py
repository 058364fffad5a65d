"""The report's plots (matplotlib, Agg: no display needed): every seed per method, score against train size,
and the learned alpha per layer and module role."""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the backend)
import numpy as np  # noqa: E402

from mixtune.bench.runs import scores_of  # noqa: E402

if TYPE_CHECKING:
    from mixtune.bench.runs import Run

MAX_COLUMNS = 4


def _grid(count: int, width: float, height: float):
    """As few rows as MAX_COLUMNS allows, filled evenly (6 panels: 2 x 3, not 4 + 2)."""
    rows = math.ceil(count / MAX_COLUMNS)
    columns = math.ceil(count / rows)
    figure, axes = plt.subplots(rows, columns, figsize=(width * columns, height * rows), squeeze=False)
    for ax in axes.flat[count:]:
        ax.set_visible(False)
    return figure, list(axes.flat[:count])


def _save(figure, path: Path, title: str) -> None:
    """Save with the title above the panels; the tight box keeps a long title inside the image."""
    figure.tight_layout()
    figure.suptitle(title, y=1.0, va="bottom")
    figure.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(figure)


def seed_plot(runs: list[Run], tasks: list[str], methods: list[str], path: Path, title: str) -> None:
    """Per task: one point per seed for every method (spread out sideways), the mean as a bar."""
    figure, axes = _grid(len(tasks), max(3.0, 0.7 * len(methods) + 1.5), 3.4)
    for ax, task in zip(axes, tasks, strict=True):
        for x, method in enumerate(methods):
            scores = scores_of(runs, method, task)
            if not scores:
                continue
            offsets = np.linspace(-0.15, 0.15, len(scores)) if len(scores) > 1 else [0.0]
            ax.scatter([x + o for o in offsets], scores, s=14, alpha=0.8, color=f"C{x % 10}")
            ax.hlines(np.mean(scores), x - 0.3, x + 0.3, color="black", linewidth=1.5)
        metric = next((r.metric for r in runs if r.task == task), "")
        ax.set_title(task)
        ax.set_ylabel(metric)
        ax.set_xticks(range(len(methods)), methods, rotation=45, ha="right", fontsize=8)
        ax.grid(axis="y", alpha=0.3)
    _save(figure, path, f"{title}\nevery seed (bar: mean)")


def size_plot(runs: list[Run], tasks: list[str], methods: list[str], path: Path, title: str) -> None:
    """Per task: mean ± std over seeds against train size, one line per method (one legend for all)."""
    figure, axes = _grid(len(tasks), 4.0, 3.2)
    handles = {}
    for ax, task in zip(axes, tasks, strict=True):
        for index, method in enumerate(methods):
            by_size = defaultdict(list)
            for r in runs:
                if r.task == task and r.method == method and r.size is not None:
                    by_size[r.size].append(r.score)
            if not by_size:
                continue
            sizes = sorted(by_size)
            means = [np.mean(by_size[s]) for s in sizes]
            stds = [np.std(by_size[s], ddof=1) if len(by_size[s]) > 1 else 0.0 for s in sizes]
            handles[method] = ax.errorbar(sizes, means, yerr=stds, marker="o", capsize=3, color=f"C{index % 10}")
        ax.set_xticks(sorted({r.size for r in runs if r.task == task and r.size is not None}))
        ax.set_title(task)
        ax.set_xlabel("train size n")
        ax.set_ylabel(next((r.metric for r in runs if r.task == task), ""))
        ax.grid(alpha=0.3)
    figure.legend(list(handles.values()), list(handles), loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8)
    _save(figure, path, f"{title}\nscore against train size (mean ± std over seeds)")


def alpha_matrix(runs: list[Run]) -> tuple[np.ndarray, list[str], list[str]]:
    """(roles x layers) mean pretrained share over the runs (tables.share_of); layer-less modules (pooler) in a
    last column, "other"."""
    from mixtune.bench.tables import share_of

    values = defaultdict(list)
    for run in runs:
        for row in run.alpha or []:
            values[(row["role"], row["layer"])].append(share_of(row))
    roles = list(dict.fromkeys(role for role, _ in values))
    layers = sorted({layer for _, layer in values}, key=lambda v: (v is None, v if v is not None else 0))
    matrix = np.full((len(roles), len(layers)), np.nan)
    for (role, layer), samples in values.items():
        matrix[roles.index(role), layers.index(layer)] = np.mean(samples)
    return matrix, roles, ["other" if layer is None else str(layer) for layer in layers]


def alpha_heatmap(runs: list[Run], tasks: list[str], path: Path, title: str) -> None:
    """Per task: module role x layer, coloured and annotated by the mean pretrained share (over seeds)."""
    tasks = [task for task in tasks if any(r.task == task for r in runs)]
    matrices = {task: alpha_matrix([r for r in runs if r.task == task]) for task in tasks}
    finite = np.concatenate([m[np.isfinite(m)] for m, _, _ in matrices.values()])
    low, high = float(finite.min()), float(finite.max())
    if high - low < 1e-3:
        low, high = low - 5e-4, high + 5e-4
    figure, axes = _grid(len(tasks), 4.6, 3.6)
    for ax, task in zip(axes, tasks, strict=True):
        matrix, roles, layers = matrices[task]
        image = ax.imshow(matrix, cmap="viridis", vmin=low, vmax=high, aspect="auto")
        ax.set_xticks(range(len(layers)), layers)
        ax.set_yticks(range(len(roles)), roles, fontsize=8)
        ax.set_xlabel("layer")
        ax.set_title(task)
        for (i, j), value in np.ndenumerate(matrix):
            if np.isfinite(value):
                shade = "black" if value > (low + high) / 2 else "white"
                ax.text(j, i, f"{value:.3f}", ha="center", va="center", fontsize=6, color=shade)
    figure.colorbar(image, ax=axes, shrink=0.8, label="pretrained share")
    figure.suptitle(title, y=1.0, va="bottom")
    figure.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(figure)


def dev_curve_plot(runs: list[Run], tasks: list[str], methods: list[str], path: Path, title: str) -> None:
    """Per task: the dev score against the training step, one thin line per seed, one colour per method."""
    figure, axes = _grid(len(tasks), 4.0, 3.2)
    for ax, task in zip(axes, tasks, strict=True):
        for x, method in enumerate(methods):
            curves = [r.dev_curve for r in runs if r.method == method and r.task == task and r.dev_curve]
            for i, curve in enumerate(curves):
                label = method if i == 0 else None
                ax.plot([p["step"] for p in curve], [p["dev"] for p in curve], color=f"C{x % 10}", alpha=0.6, linewidth=0.9, label=label)
        ax.set_title(task)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    _save(figure, path, f"{title}\ndev score during finetuning (every seed)")

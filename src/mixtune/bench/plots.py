"""The report's plots (matplotlib, Agg: no display needed): every seed per method, score against train size,
the dev curves, and the learned alpha per layer and module role. Each stays readable: at most MAX_SERIES
coloured series per panel, about 1,500 px wide at most, axes named with their metric and unit."""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the backend)
import numpy as np  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from mixtune.bench.runs import Run  # noqa: E402
from mixtune.bench.tables import share_of  # noqa: E402

MAX_SERIES = 8  # lines per panel: more and the colours repeat or blur together, so methods are faceted
FACET_COLUMNS = 3  # panels per row in a faceted figure: with a legend beside it, about 1,500 px wide
DPI = 110
PERCENT_METRICS = {"accuracy", "f1", "macro_f1"}  # the rest (mcc, spearman, pearson) are correlations x 100
FLAT_SHARE = 0.01  # shares that all lie within one point of each other: alpha hardly moved, a heatmap shows noise


def metric_label(metric: str, split: str) -> str:
    """An axis label that names the metric and its unit (scores are stored as percent / correlation x 100)."""
    unit = "%" if metric in PERCENT_METRICS else "x 100"
    return f"{split} {metric} ({unit})"


def _colours(count: int) -> list:
    """Distinct colours for up to MAX_SERIES series (tab10 never repeats within a panel)."""
    return [plt.get_cmap("tab10")(i) for i in range(count)]


def method_groups(methods: list[str]) -> list[list[str]]:
    """At most MAX_SERIES methods per panel; the first method (the report's baseline) heads every group, so each
    panel shows its methods against the same reference."""
    if len(methods) <= MAX_SERIES:
        return [list(methods)]
    reference, rest = methods[0], methods[1:]
    count = math.ceil(len(rest) / (MAX_SERIES - 1))
    size = math.ceil(len(rest) / count)  # even groups: 13 rivals as 7 + 6, 15 as 5 + 5 + 5, never 7 + 7 + 1
    return [[reference, *rest[i : i + size]] for i in range(0, len(rest), size)]


def _facets(tasks: list[str], width: float, height: float, groups: int = 1, layout: str | None = None):
    """One block of task panels per method group (FACET_COLUMNS wide, the spare axes of its last row hidden);
    returns the figure and, per group, its task -> axes map."""
    columns = min(len(tasks), FACET_COLUMNS)
    rows = math.ceil(len(tasks) / columns)  # per group
    figure, axes = plt.subplots(
        rows * groups, columns, figsize=(width * columns, height * rows * groups), squeeze=False, layout=layout
    )
    blocks = [list(axes[g * rows : (g + 1) * rows].flat) for g in range(groups)]
    for ax in (ax for block in blocks for ax in block[len(tasks) :]):
        ax.set_visible(False)
    return figure, [dict(zip(tasks, block, strict=False)) for block in blocks]


def _finish_group(panels: dict, tasks: list[str], runs: list[Run], xlabel: str, split: str) -> None:
    """Name each task panel and its axes; then the group's legend (every method drawn in any of its panels, once)
    beside the last panel of its first row."""
    for task, ax in panels.items():
        ax.set_title(task)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(metric_label(next((r.metric for r in runs if r.task == task), ""), split))
        ax.grid(alpha=0.3)
    _legend_beside(panels, tasks)


def _legend_beside(panels: dict, tasks: list[str]) -> None:
    """One legend (every label drawn in any panel, once) beside the last panel of the first row, outside them all."""
    entries = {}
    for ax in panels.values():
        handles, labels = ax.get_legend_handles_labels()
        entries.update({label: handle for label, handle in zip(labels, handles, strict=True) if label not in entries})
    if entries:
        anchor = panels[tasks[min(len(tasks), FACET_COLUMNS) - 1]]
        anchor.legend(list(entries.values()), list(entries), fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0))


def _save(figure, path: Path, title: str, tight: bool = True) -> None:
    """Save with the title above the panels; the tight box keeps a long title inside the image."""
    if tight:
        figure.tight_layout()
    figure.suptitle(title, y=1.0, va="bottom")
    figure.savefig(path, dpi=DPI, bbox_inches="tight")
    plt.close(figure)


def seed_plot(runs: list[Run], tasks: list[str], methods: list[str], path: Path, title: str) -> None:
    """Per task: the methods down the side (the figure stays narrow however many rows the table has), one point per
    seed (coloured by seed), the mean as a bar."""
    seeds = sorted({r.seed for r in runs})
    colours = dict(zip(seeds, _colours(len(seeds)))) if len(seeds) <= 10 else {}
    figure, (panels,) = _facets(tasks, 4.2, max(2.4, 0.28 * len(methods) + 1.0))
    for task, ax in panels.items():
        for y, method in enumerate(methods):
            own = sorted((r.seed, r.score) for r in runs if r.method == method and r.task == task)
            if not own:
                continue
            offsets = np.linspace(-0.15, 0.15, len(own)) if len(own) > 1 else [0.0]
            for (seed, score), offset in zip(own, offsets, strict=True):
                ax.scatter(score, y + offset, s=14, color=colours.get(seed, "C0"), label=f"seed {seed}" if colours else None)
            ax.vlines(np.mean([s for _, s in own]), y - 0.3, y + 0.3, color="black", linewidth=1.5)
        ax.set_title(task)
        scored = next((r for r in runs if r.task == task), None)
        ax.set_xlabel(metric_label(scored.metric if scored else "", scored.test_split if scored else "test"))
        ax.set_yticks(range(len(methods)), methods, fontsize=7)
        ax.set_ylim(len(methods) - 0.5, -0.5)  # the first method (the baseline) at the top
        ax.grid(axis="x", alpha=0.3)
    _legend_beside(panels, tasks)  # outside the panels: inside, it hid the points of the top rows
    _save(figure, path, f"{title}\nevery seed (bar: mean)")


def size_plot(runs: list[Run], tasks: list[str], methods: list[str], path: Path, title: str) -> None:
    """Per task: the mean over seeds against train size, one line per method, ± std only where two or more seeds
    ran (one seed has no spread to show); more than MAX_SERIES methods are faceted."""
    groups = method_groups(methods)
    figure, panels = _facets(tasks, 3.8, 3.0, len(groups))
    for group, axes in zip(groups, panels, strict=True):
        for colour, method in zip(_colours(len(group)), group, strict=True):
            for task, ax in axes.items():
                by_size = defaultdict(list)
                for r in runs:
                    if r.task == task and r.method == method and r.size is not None:
                        by_size[r.size].append(r.score)
                if not by_size:
                    continue
                sizes = sorted(by_size)
                means = [np.mean(by_size[s]) for s in sizes]
                ax.plot(sizes, means, marker="o", color=colour, label=method)
                spread = [(s, m, np.std(by_size[s], ddof=1)) for s, m in zip(sizes, means, strict=True) if len(by_size[s]) > 1]
                if spread:
                    xs, ys, errors = zip(*spread, strict=True)
                    ax.errorbar(xs, ys, yerr=errors, fmt="none", capsize=3, color=colour)
        for task, ax in axes.items():
            ax.set_xticks(sorted({r.size for r in runs if r.task == task and r.size is not None}))
        _finish_group(axes, tasks, runs, "train size n (examples)", runs[0].test_split if runs else "test")
    _save(figure, path, f"{title}\nscore against train size (mean over seeds; bars: ± std where 2+ seeds ran)")


def alpha_matrix(runs: list[Run]) -> tuple[np.ndarray, list[str], list[str]]:
    """(roles x layers) mean pretrained share over the runs (tables.share_of); layer-less modules (pooler) in a
    last column, "other"."""
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


def flat_share(runs: list[Run]) -> float | None:
    """The one pretrained share of every (task, role, layer) cell when they all lie within FLAT_SHARE (a heatmap
    of it would show only noise: alpha hardly moved); None when they differ."""
    tasks = sorted({r.task for r in runs})
    matrices = [alpha_matrix([r for r in runs if r.task == task])[0] for task in tasks]
    finite = np.concatenate([m[np.isfinite(m)] for m in matrices]) if matrices else np.array([])
    if finite.size == 0 or float(finite.max() - finite.min()) >= FLAT_SHARE:
        return None
    return float(finite.mean())


def alpha_heatmap(runs: list[Run], tasks: list[str], path: Path, title: str) -> None:
    """Per task: module role x layer, coloured and annotated by the mean pretrained share (over seeds); the colour
    scale is the shares' own range inside [0, 1]. Callers skip it when flat_share() says alpha hardly moved."""
    tasks = [task for task in tasks if any(r.task == task for r in runs)]
    matrices = {task: alpha_matrix([r for r in runs if r.task == task]) for task in tasks}
    finite = np.concatenate([m[np.isfinite(m)] for m, _, _ in matrices.values()])
    low, high = max(0.0, float(finite.min())), min(1.0, float(finite.max()))
    # constrained layout: the colour bar spans the panels and the role names do not run into the next panel
    figure, (panels,) = _facets(tasks, 4.4, 3.2, layout="constrained")
    for task, ax in panels.items():
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
    figure.colorbar(image, ax=list(panels.values()), shrink=0.8, label="pretrained share (0: all W, 1: all W0)")
    _save(figure, path, title, tight=False)  # tight_layout would fight the constrained layout


def dev_curve_plot(runs: list[Run], tasks: list[str], methods: list[str], path: Path, title: str) -> None:
    """Per task: the dev score against the training step, one thin line per seed, one colour per method; more
    than MAX_SERIES methods are faceted, the baseline in every group."""
    groups = method_groups(methods)
    figure, panels = _facets(tasks, 3.8, 3.0, len(groups))
    for group, axes in zip(groups, panels, strict=True):
        for colour, method in zip(_colours(len(group)), group, strict=True):
            for task, ax in axes.items():
                curves = [r.dev_curve for r in runs if r.method == method and r.task == task and r.dev_curve]
                for i, curve in enumerate(curves):
                    steps, scores = [p["step"] for p in curve], [p["dev"] for p in curve]
                    ax.plot(steps, scores, color=colour, alpha=0.6, linewidth=0.9, label=method if i == 0 else None)
        for ax in axes.values():
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        _finish_group(axes, tasks, runs, "training step", "dev")
    _save(figure, path, f"{title}\ndev score during finetuning (every seed)")

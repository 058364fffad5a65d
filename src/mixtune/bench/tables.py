"""The report's markdown tables: scores, cost, alpha, settings (stability and the comparisons have their own
modules)."""

from __future__ import annotations

import re
import statistics
from collections import Counter
from collections.abc import Callable
from operator import attrgetter

import numpy as np

from mixtune.bench.runs import DASH, Run, cell_runs, mean_std, ordered, paired_ratio, seed_averages

COST_FIELDS = (attrgetter("seconds"), attrgetter("cpu_seconds"), attrgetter("memory_mb"))  # ratios in cost_table


def markdown_table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def fmt(value: float | None, signed: bool = False) -> str:
    if value is None:
        return DASH
    return f"{value:+.2f}" if signed else f"{value:.2f}"


def score_table(runs: list[Run], tasks: list[str], methods: list[str]) -> list[str]:
    """Methods x (tasks + Average): mean ± std over seeds, best mean per column in bold, (n=k) where n differs."""
    columns = {task: {m: [r.score for r in cell_runs(runs, m, task)] for m in methods} for task in tasks}
    columns["Average"] = {m: seed_averages(runs, m, tasks) for m in methods}
    counts = Counter(len(v) for column in columns.values() for v in column.values() if v)
    usual_n = counts.most_common(1)[0][0]
    cells = {name: _column_cells(column, usual_n) for name, column in columns.items()}
    rows = [[method] + [cells[name][method] for name in columns] for method in methods]
    caption = f"Mean ± std over seeds (n = {usual_n} per cell" + (", except where marked)" if len(counts) > 1 else ")")
    return [caption, ""] + markdown_table(["method", *tasks, "Average"], rows)


def _column_cells(column: dict[str, list[float]], usual_n: int) -> dict[str, str]:
    means = {m: round(float(np.mean(v)), 2) for m, v in column.items() if v}
    best = max(means.values(), default=None)
    cells = {}
    for method, values in column.items():
        if not values:
            cells[method] = DASH
            continue
        mean, std = mean_std(values)
        text = fmt(mean) + (f" ± {std:.2f}" if std is not None else "")
        text = f"**{text}**" if means[method] == best else text
        cells[method] = text + (f" (n={len(values)})" if len(values) != usual_n else "")
    return cells


def cost_table(runs: list[Run], methods: list[str], baseline: str) -> list[str]:
    """Median wall time and peak memory per method, and the median paired ratio to the baseline; CPU time too
    (records with cpu_s), which a busy machine does not inflate as it does wall time."""
    rows = []
    for method in methods:
        own = [r for r in runs if r.method == method]
        ratios = [paired_ratio(runs, method, baseline, value) for value in COST_FIELDS]
        times = [fmt(ratio) + ("x" if ratio is not None else "") for ratio in ratios]
        rows.append([method, str(len(own)), f"{statistics.median(r.seconds for r in own):.1f}", *times[:2],
                     f"{statistics.median(r.memory_mb for r in own):.0f}", times[2]])
    header = ["method", "runs", "median time (s)", f"time / {baseline}", f"CPU time / {baseline}",
              "median peak memory (MB)", f"memory / {baseline}"]
    return markdown_table(header, rows)


def per_role_table(runs: list[Run], methods: list[str], cell: Callable[[list[dict]], str]) -> list[str]:
    """Methods x module roles of the learned alpha; `cell` turns one role's per-layer rows into a cell."""
    if not (with_alpha := [m for m in methods if any(r.alpha for r in runs if r.method == m)]):
        return []
    roles = ordered(row["role"] for r in runs if r.alpha for row in r.alpha)
    rows = []
    for method in with_alpha:
        layers = [row for r in runs if r.method == method and r.alpha for row in r.alpha]
        picked = [[row for row in layers if row["role"] == role] for role in roles]
        rows.append([method, *(cell(rows_of_role) if rows_of_role else DASH for rows_of_role in picked)])
    return markdown_table(["method", *roles], rows)


def alpha_role_table(runs: list[Run], methods: list[str]) -> list[str]:
    """Per method and module role: mean coefficient on W / on W0, over layers, tasks and seeds."""
    return per_role_table(
        runs, methods,
        lambda picked: f"{np.mean([r['task_mean'] for r in picked]):.3f} / {np.mean([r['pretrained_mean'] for r in picked]):.3f}",
    )


def share_of(row: dict) -> float:
    """A layer's mean pretrained share; records from before share_mean: coef_W0 / (coef_W + coef_W0) of the means."""
    if row.get("share_mean") is not None:
        return row["share_mean"]
    total = row["task_mean"] + row["pretrained_mean"]
    return row["pretrained_mean"] / total if total > 0 else 0.0


def alpha_share_table(runs: list[Run], methods: list[str]) -> list[str]:
    """Per method and module role: the mean pretrained share over layers, tasks and seeds, and (where the
    search recorded it) how far the share travelled from its start during the search."""

    def cell(picked: list[dict]) -> str:
        travel = [row["share_travel"] for row in picked if row.get("share_travel") is not None]
        return f"{np.mean([share_of(row) for row in picked]):.3f}" + (f" (moved {np.mean(travel):.3f})" if travel else "")

    return per_role_table(runs, methods, cell)


def alpha_diagnostics_table(runs: list[Run], methods: list[str]) -> list[str]:
    """Did alpha learn? Per method with search diagnostics, the header's columns as means over tasks and seeds
    (travel: mean |change| per weight entry; the SNR against what pure noise gives over as many alpha steps)."""
    rows = []
    for method in methods:
        if not (found := [r.alpha_diagnostics for r in runs if r.method == method and r.alpha_diagnostics]):
            continue

        def mean(key: str, digits: int = 3, values: list[dict] = found) -> str:
            present = [d[key] for d in values if d.get(key) is not None]
            return f"{np.mean(present):.{digits}f}" if present else DASH

        layer_travel: dict[str, list[float]] = {}
        for d in found:
            for name, layer in d.get("layers", {}).items():
                if layer.get("travel") is not None:
                    layer_travel.setdefault(name, []).append(layer["travel"])
        most = max(layer_travel, key=lambda n: np.mean(layer_travel[n]), default=None)
        most_text = f"{np.mean(layer_travel[most]):.3f} ({most.split('.', 1)[-1]})" if most else DASH
        rows.append([
            method, str(len(found)), f"{mean('share_start')} → {mean('share')}", mean("share_travel", 4), most_text,
            mean("param_travel_rms", 4), f"{mean('hypergradient_snr')} / {mean('snr_noise')}", mean("alpha_steps", 0),
            mean("alpha_lr_sum"),
        ])
    header = [
        "method", "runs", "pretrained share (start → end)", "share travel", "most-moved layer", "param travel (rms)",
        "hypergradient SNR / noise", "alpha steps per split", "alpha lr sum",
    ]
    return markdown_table(header, rows) if rows else []


def split_source(settings_from: str) -> tuple[str, str, str]:
    """A record's `settings_from` ("FILE: HEADER", with " (the METHOD entry)" appended when a row took another
    method's entry) as (file, header, entry note)."""
    file, _, header = settings_from.partition(": ")
    entry = re.search(r" \(the \S+ entry\)$", header)
    return (file, header[: entry.start()], entry.group()) if entry else (file, header, "")


def settings_table(runs: list[Run], methods: list[str]) -> list[str]:
    """The learning rate and epochs each row ran with (the protocol fixes them per method and backbone),
    and, where rows took their settings from an overrides_file (the tuned ones), that file and its header."""
    sources = [(r.method, *split_source(r.settings_from)) for r in runs if r.settings_from]
    rows = []
    for method in methods:
        own = [r for r in runs if r.method == method]
        settings = [{str(r.hyperparameters.get(key, DASH)) for r in own} for key in ("lr", "epochs")]
        row = [method, *(", ".join(sorted(values)) for values in [*settings, {r.config_hash for r in own}])]
        if sources:
            files = ordered(f"`{file}`{entry}" for m, file, _, entry in sources if m == method)
            row.append(", ".join(files) or "the bench config")
        rows.append(row)
    header = ["method", "lr", "epochs", "config hash"] + (["settings from"] if sources else [])
    headers = dict.fromkeys((file, text) for _, file, text, _ in sources)
    notes = [f"- `{file}`: {text or '(no header)'}" for file, text in headers]
    return markdown_table(header, rows) + ([""] + notes if notes else [])


def selection_table(runs: list[Run], tasks: list[str], methods: list[str]) -> list[str]:
    """Rows that also scored their last step: selected (best dev) and last-step test means, their difference."""
    rows = []
    for method in methods:
        for task in tasks:
            both = [r for r in runs if r.method == method and r.task == task and r.last_step_score is not None]
            if not both:
                continue
            selected = statistics.mean(r.score for r in both)
            last = statistics.mean(r.last_step_score for r in both)
            steps = statistics.mean(_selected_step(r) for r in both)
            rows.append([method, task, str(len(both)), fmt(selected), fmt(last), fmt(selected - last, signed=True), f"{steps:.0f}"])
    header = ["method", "task", "seeds", "best-dev step", "last step", "difference", "mean selected step"]
    return markdown_table(header, rows) if rows else []


def mixing_table(runs: list[Run], tasks: list[str], methods: list[str]) -> list[str]:
    """Per row that chose a WiSE-FT scalar on dev: the scalars of its seeds per task, and how often it kept W alone."""
    rows = []
    for method in methods:
        mixed = sorted((r for r in runs if r.method == method and r.wise_ft_mixing is not None), key=lambda r: r.seed)
        if not mixed:
            continue
        cells = [", ".join(f"{r.wise_ft_mixing:g}" for r in mixed if r.task == task) or DASH for task in tasks]
        kept = sum(r.wise_ft_mixing == 1.0 for r in mixed)
        rows.append([method, *cells, f"{kept} of {len(mixed)}"])
    return markdown_table(["method", *tasks, "finetuned weights kept (1)"], rows) if rows else []


def _selected_step(run: Run) -> float:
    """The step best-dev selection kept: the last of the best dev scores (ties go to the later step)."""
    best = max(reversed(run.dev_curve), key=lambda point: point["dev"], default={"step": 0})
    return best["step"]

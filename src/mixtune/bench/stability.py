"""The report's stability tables: beyond the std over seeds, the runs that collapsed or failed, and how often
seeds disagree on the same test examples (two seeds can score alike while predicting differently)."""

from __future__ import annotations

from collections import Counter
from itertools import combinations
from typing import Any

import numpy as np

from mixtune.bench.runs import DASH, Run, cell_runs, mean_std
from mixtune.bench.tables import fmt, markdown_table


def failed_counts(failed: list[dict[str, Any]], model: str, size: int | None, methods: list[str]) -> Counter[tuple[str, str]]:
    """(row label, task) -> cells of this model and train size whose last attempt failed and never finished."""
    counts: Counter[tuple[str, str]] = Counter()
    for record in failed:
        key = record["key"]
        if ((key["model"] or "default"), key["size"]) == (model, size):
            tagged = f"{key['method']}@{key['config_hash']}"  # where finished runs show one row per config hash
            counts[(tagged if tagged in methods else key["method"], key["task"])] += 1
    return counts


def stability_table(runs: list[Run], tasks: list[str], methods: list[str], failed: Counter[tuple[str, str]]) -> list[str]:
    """Per method and task: std over seeds, the worst seed, degenerate runs (constant predictions), failed runs."""
    rows = [[method, *(_stability_cell(cell_runs(runs, method, t), failed[(method, t)]) for t in tasks)] for method in methods]
    return markdown_table(["method", *tasks], rows)


def _stability_cell(cell: list[Run], failures: int) -> str:
    if not cell:
        return f"failed {failures}" if failures else DASH
    worst = min(cell, key=lambda r: r.score)
    std = mean_std([r.score for r in cell])[1]
    degenerate = sum(r.degenerate for r in cell)
    return f"σ {fmt(std)} · worst {worst.score:.2f} (s{worst.seed}) · degenerate {degenerate}/{len(cell)} · failed {failures}"


def disagreement(first: list, second: list, regression: bool) -> float:
    """How differently two seeds predict one test split: classes, the fraction of examples whose predicted class
    differs; values, 1 - Pearson r (a constant prediction correlates with nothing: 1, unless both are the same)."""
    a, b = np.asarray(first, dtype=float), np.asarray(second, dtype=float)
    if not regression:
        return float(np.mean(a != b))
    if np.array_equal(a, b):
        return 0.0
    if np.std(a) == 0 or np.std(b) == 0:
        return 1.0
    return float(1.0 - np.corrcoef(a, b)[0, 1])


def disagreement_table(runs: list[Run], tasks: list[str], methods: list[str]) -> list[str]:
    """Per method and task: the mean pairwise seed disagreement (n = seeds with predictions)."""
    rows = [[method, *(_disagreement_cell(cell_runs(runs, method, t)) for t in tasks)] for method in methods]
    return markdown_table(["method", *tasks], rows)


def _disagreement_cell(cell: list[Run]) -> str:
    found = [r for r in cell if r.predictions is not None]
    pairs = [disagreement(a.predictions, b.predictions, a.regression) for a, b in combinations(found, 2)]
    return f"{float(np.mean(pairs)):.3f} (n={len(found)})" if pairs else DASH

"""The report's stability tables: beyond the std over seeds, the runs that collapsed or failed, and how often
seeds disagree on the same test examples (two seeds can score alike while predicting differently)."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from itertools import combinations
from typing import Any

import numpy as np

from mixtune.bench.runs import DASH, Run, cell_runs, mean_std
from mixtune.bench.tables import fmt, markdown_table
from mixtune.config import build_config
from mixtune.data.pool_test import POOL_TEST_SPLIT
from mixtune.errors import MixtuneError


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
    runs = with_example_ids(runs)
    rows = [[method, *(_disagreement_cell(cell_runs(runs, method, t)) for t in tasks)] for method in methods]
    return markdown_table(["method", *tasks], rows)


def _disagreement_cell(cell: list[Run]) -> str:
    found = [r for r in cell if r.predictions is not None and (r.test_split != POOL_TEST_SPLIT or r.example_ids)]
    pairs = [disagreement(*shared_predictions(a, b), a.regression) for a, b in combinations(found, 2)]
    return f"{float(np.mean(pairs)):.3f} (n={len(found)})" if pairs else DASH


def with_example_ids(runs: list[Run]) -> list[Run]:
    """The runs, those scored on pool_test with the pool indices of their examples: each seed scores its own set
    there, of which the records keep only a hash, so it is drawn again (pool_test_of_seed). A run whose data cannot
    be read keeps none and is left out of the pairs."""
    from mixtune.data import load_task
    from mixtune.data.pool_test import pool_test_of_seed

    tasks: dict[str, Any] = {}
    found: dict[tuple[str, int], list[int] | None] = {}
    for run in runs:
        if run.test_split != POOL_TEST_SPLIT or run.example_ids is not None or (run.task, run.seed) in found:
            continue
        try:
            config = build_config({"data": run.data}).data
            if run.task not in tasks:  # loaded once per task: each seed only draws its own split again
                tasks[run.task] = load_task(config)
            found[(run.task, run.seed)] = pool_test_of_seed(tasks[run.task], config, run.seed)[1]
        except (MixtuneError, OSError):
            found[(run.task, run.seed)] = None
    return [replace(run, example_ids=found[(run.task, run.seed)]) if (run.task, run.seed) in found else run for run in runs]


def shared_predictions(first: Run, second: Run) -> tuple[list, list]:
    """Both runs' predictions on the examples both scored, in one order: all of them where the seeds share one test
    set; by example id where each seed has its own (pool_test skips each seed's own training examples)."""
    if first.example_ids is None or second.example_ids is None:
        return first.predictions, second.predictions
    theirs = dict(zip(second.example_ids, second.predictions))
    common = [(mine, theirs[i]) for i, mine in zip(first.example_ids, first.predictions) if i in theirs]
    return [a for a, _ in common], [b for _, b in common]

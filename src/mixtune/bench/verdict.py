"""The report's verdict: the focus method against every other row over all the (task, seed) pairs both ran,
with a paired bootstrap interval, and the tasks where its paired difference is clearly above or below zero."""

from __future__ import annotations

import numpy as np

from mixtune.bench.runs import Run, bootstrap_ci, paired_differences
from mixtune.bench.tables import fmt, markdown_table

MIN_PAIRS = 2  # one pair gives no interval: such a task counts as tied, not as won or lost on one seed


def task_outcome(differences: list[float]) -> int:
    """1 won, -1 lost, 0 tied: whether the 95% bootstrap interval of the mean paired difference is above or below 0."""
    if len(differences) < MIN_PAIRS:
        return 0
    low, high = bootstrap_ci(differences)
    return 1 if low > 0 else -1 if high < 0 else 0


def verdict_table(runs: list[Run], tasks: list[str], methods: list[str], focus: str) -> list[str]:
    """Per other row: the mean of (focus - row) over all shared (task, seed) pairs [95% bootstrap CI over the
    pairs], and the tasks won / tied / lost by task_outcome."""
    rows = []
    for other in (m for m in methods if m != focus):
        per_task = [d for d in (paired_differences(runs, focus, other, t) for t in tasks) if d]
        if not per_task:
            continue
        pooled = [d for differences in per_task for d in differences]
        low, high = bootstrap_ci(pooled)
        outcomes = [task_outcome(d) for d in per_task]
        rows.append(
            [
                other,
                str(len(pooled)),
                f"{fmt(float(np.mean(pooled)), True)} [{fmt(low, True)}, {fmt(high, True)}]",
                f"{outcomes.count(1)} / {outcomes.count(0)} / {outcomes.count(-1)}",
            ]
        )
    header = ["against", "pairs", f"mean difference ({focus} - other) [95% CI]", "tasks won / tied / lost"]
    return markdown_table(header, rows)

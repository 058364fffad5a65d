"""The chance reference: the test score of the best constant prediction on each task, printed beside the scores so
a reader sees which rows learned a task at all (a comparison in which the baseline sits at chance proves nothing,
docs/method.md section 8). MRPC's F1 is the trap this shows: always answering "paraphrase" scores 81 on its test
set, above most rows finetuned on 300 examples. It only informs: which tasks the headline verdict covers is named
before the run (the grid config's headline_tasks), never chosen from test scores.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from mixtune.bench.runs import Run
from mixtune.config import build_config
from mixtune.data.examples import TaskSpec
from mixtune.errors import MixtuneError


@dataclass(frozen=True)
class Chance:
    score: float  # the main metric of the best constant prediction on the reported test split
    prediction: str  # what that prediction is, in words


def constant_prediction(spec: TaskSpec, labels: list[int] | list[float]) -> Chance:
    """The best score of predicting one class for every example (for accuracy the majority class, for F1 the
    positive one); 0 for a regression task, since a constant has no correlation. MCC gives 0 for any class."""
    from mixtune.metrics import compute_metrics

    if spec.kind == "regression":
        return Chance(0.0, "any constant")
    truth = np.asarray(labels)
    scores = {c: compute_metrics(spec, np.full(len(truth), c), truth)[spec.main_metric] for c in range(spec.num_labels)}
    best = max(scores, key=lambda c: scores[c])
    return Chance(scores[best], f"always {(spec.label_names or [])[best]!r}")


def chance_levels(runs: list[Run]) -> dict[str, Chance]:
    """Per task, the chance reference from the test labels its runs were scored on (found through the first run's
    data config; a pool_test split through that run's seed too, since each seed has its own). A task whose labels
    cannot be read here has none: the report says so instead of guessing."""
    levels = {}
    for task in dict.fromkeys(r.task for r in runs):
        run = next(r for r in runs if r.task == task)
        if (labels := _test_labels(run.data, run.test_split, run.seed)) is not None:
            levels[task] = constant_prediction(*labels)
    return levels


def _test_labels(data: dict[str, Any], split: str, seed: int) -> tuple[TaskSpec, list] | None:
    from mixtune.data import load_task
    from mixtune.data.pool_test import POOL_TEST_SPLIT, pool_test_of_seed

    if not data:
        return None  # a record without its config: nothing to find the labels by
    try:
        config = build_config({"data": data}).data
        task = load_task(config)
        if split == POOL_TEST_SPLIT:
            task, _ = pool_test_of_seed(task, config, seed)
    except (MixtuneError, OSError):
        return None
    return (task.spec, task.tests[split].labels) if split in task.tests else None


def chance_row(levels: dict[str, Chance], tasks: list[str]) -> str:
    """The score table's reference row: the constant prediction's score per task, and their average when every
    task has one."""
    cells = [f"{levels[t].score:.2f}" if t in levels else "—" for t in tasks]
    average = f"{np.mean([levels[t].score for t in tasks]):.2f}" if all(t in levels for t in tasks) else "—"
    return "| *constant prediction* | " + " | ".join([*cells, average]) + " |"


def chance_note(levels: dict[str, Chance], tasks: list[str]) -> list[str]:
    lines = []
    if levels:
        how = "; ".join(f"{task}: {levels[task].prediction}" for task in tasks if task in levels)
        lines.append(f"*constant prediction*: the best test score of predicting one class for every example ({how}).")
    if unreadable := [t for t in tasks if t not in levels]:
        lines.append(
            f"No chance reference for {', '.join(unreadable)}: their test labels could not be read from the data "
            "their runs name."
        )
    return lines + ([""] if lines else [])

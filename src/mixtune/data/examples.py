"""The in-memory form every data source is turned into."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass
class TaskSpec:
    """What a task is: its texts, its labels, how it is scored."""

    name: str
    kind: str  # "classification" or "regression"
    text_columns: list[str]
    label_names: list[str] | None  # None for regression
    metrics: list[str]  # the first is the main metric

    @property
    def num_labels(self) -> int:
        return 1 if self.kind == "regression" else len(self.label_names or [])

    @property
    def main_metric(self) -> str:
        return self.metrics[0]


@dataclass
class Examples:
    """Texts (one or two per example) and labels (class index, or float for regression)."""

    texts: list[tuple[str, ...]]
    labels: list[float] | list[int]

    def __len__(self) -> int:
        return len(self.texts)

    def subset(self, indices: Sequence[int]) -> Examples:
        return Examples([self.texts[i] for i in indices], [self.labels[i] for i in indices])


@dataclass
class TaskData:
    """A task's training pool and its labelled test set(s), with where each came from."""

    spec: TaskSpec
    pool: Examples
    tests: dict[str, Examples]  # e.g. {"test": ...}, or {"matched": ..., "mismatched": ...} for MNLI
    dev: Examples | None = None  # a user's own dev file; otherwise dev is drawn from the pool
    sources: dict[str, str] = field(default_factory=dict)

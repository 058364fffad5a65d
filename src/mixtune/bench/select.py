"""`mixtune select`: pick each method's settings from a tuning sweep, on dev or pool_test (docs/method.md section 4).

The rule, the same for every row: among a row's variants (the rows of its sweep, e.g.
vanilla[lr=5e-05,epochs=10] for the row vanilla), those with an ok run on every (task, seed) cell of the results
file are eligible (a method that cannot do regression is not asked for regression tasks); the chosen one has the
best mean score on the selection split (each run's main metric on its dev split, or on pool_test) over those cells; ties go to fewer epochs,
then the smaller learning rate (the cheaper, more conservative setting). The choice is written as bench
overrides, {row: {train: {lr, epochs}, ...any other key its variants differ in}}, for a table
config's overrides_file.

A row is the label before its sweep values, so two variants of one method (mixup-blo and mixup-blo-share) are
tuned apart, each for its own table row (`by="row"`, the default). `by="method"` makes every variant of a method
compete instead: how a pilot chooses a method's default among its forms.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from mixtune.bench.grid import UNHASHED, flatten
from mixtune.bench.results import latest_records, read_results, record_method, row_labels
from mixtune.config import set_dotted
from mixtune.data.glue import glue_task
from mixtune.errors import MixtuneError
from mixtune.methods import METHODS

TaskSeed = tuple[str, int]  # (task, seed)
GROUPINGS = ("row", "method")  # what competes: a row's sweep values, or every variant of a method
# The splits a choice may be made on: the seed's n/6 dev examples, or (runs made with data.pool_test_size, on tuning
# seeds) its 2,000 pool_test examples, which issue 32's pilot ranked on because 50 dev examples are mostly noise.
SELECTION_SPLITS = ("dev", "pool_test")


@dataclass
class Candidate:
    """One variant of a method: its runs' scores on the selection split, cell by cell."""

    label: str  # the row label, with @hash where one label ran under several settings
    method: str
    scores: dict[TaskSeed, float] = field(default_factory=dict)
    failed: dict[TaskSeed, str] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)  # flattened run config of its runs (dotted keys)
    missing: list[TaskSeed] = field(default_factory=list)

    @property
    def eligible(self) -> bool:
        return not self.failed and not self.missing

    @property
    def mean(self) -> float:
        return float(np.mean(list(self.scores.values()))) if self.scores else float("nan")

    def rank(self) -> tuple[float, float, float]:
        """Sorts best first: the higher mean, then fewer epochs, then the smaller lr."""
        mean = -np.inf if np.isnan(self.mean) else self.mean
        return -mean, self.settings.get("train.epochs") or 0.0, self.settings.get("train.lr") or 0.0

    def task_mean(self, task: str) -> float | None:
        values = [score for (t, _), score in self.scores.items() if t == task]
        return float(np.mean(values)) if values else None

    def why_dropped(self) -> str:
        parts = [f"{task} s{seed} failed ({error})" for (task, seed), error in sorted(self.failed.items())]
        if self.missing:
            parts.append("no run on " + ", ".join(f"{task} s{seed}" for task, seed in sorted(self.missing)))
        return "; ".join(parts)


@dataclass
class Selection:
    results: Path
    split: str
    tasks: list[str]
    seeds: list[int]
    metrics: dict[str, str]  # task -> main metric
    candidates: dict[str, list[Candidate]]  # row (or method) -> its variants, in results order
    chosen: dict[str, Candidate]
    by: str = "row"

    def overrides(self) -> dict[str, dict[str, Any]]:
        return {group: chosen_overrides(candidate, self.candidates[group]) for group, candidate in self.chosen.items()}


def select(results: Path, split: str = "dev", by: str = "row") -> Selection:
    """Read a tuning results file and choose one variant per row, or per method (see the module's rule)."""
    if by not in GROUPINGS:
        raise MixtuneError(f"select --by {by!r} is not known: use one of {', '.join(GROUPINGS)}")
    if not results.is_file():
        raise MixtuneError(f"results file {results} does not exist: run the tuning sweep (mixtune bench) first, or fix the path")
    if not (records := latest_records(read_results(results))):
        raise MixtuneError(f"no runs in {results}: run the tuning sweep (mixtune bench) first")
    groups = {(r["key"]["model"], r["key"]["size"]) for r in records}
    if len(groups) > 1:
        shown = ", ".join(f"{model or 'default'} n{size}" for model, size in sorted(groups, key=str))
        raise MixtuneError(f"{results} holds runs of several models or train sizes ({shown}): select needs one of each")
    candidates = _candidates(records, split, results, by)
    cells = sorted({(r["key"]["task"], r["key"]["seed"]) for r in records})
    for candidate in (c for variants in candidates.values() for c in variants):
        needed = [cell for cell in cells if _can_run(candidate.method, cell[0])]
        candidate.missing = [cell for cell in needed if cell not in candidate.scores and cell not in candidate.failed]
    eligible = {group: [c for c in variants if c.eligible] for group, variants in candidates.items()}
    chosen = {group: min(found, key=Candidate.rank) for group, found in eligible.items() if found}
    metrics = {r["key"]["task"]: r["main_metric"] for r in records if "main_metric" in r}
    tasks = sorted({task for task, _ in cells})
    return Selection(results, split, tasks, sorted({seed for _, seed in cells}), metrics, candidates, chosen, by)


def _candidates(records: list[dict[str, Any]], split: str, results: Path, by: str) -> dict[str, list[Candidate]]:
    labels = row_labels(records)
    by_id: dict[tuple[str, str], Candidate] = {}
    for record in records:
        key = record["key"]
        label = labels[(key["method"], key["config_hash"])]
        candidate = by_id.setdefault((key["method"], key["config_hash"]), Candidate(label, record_method(record)))
        cell = (key["task"], key["seed"])
        if record["status"] != "ok":
            candidate.failed[cell] = record.get("error", "failed")
            continue
        if (scores := record["metrics"].get(split)) is None:
            shown = ", ".join(record["metrics"])
            where = f"the {label} run on {cell[0]} s{cell[1]}"
            raise MixtuneError(f"{results}: {where} has no '{split}' scores: choose --split from {shown}")
        candidate.scores[cell] = float(scores[record["main_metric"]])
        candidate.settings = candidate.settings or _settings(record)
    grouped: dict[str, list[Candidate]] = defaultdict(list)
    for candidate in by_id.values():
        grouped[candidate.method if by == "method" else _row_of(candidate.label)].append(candidate)
    return dict(grouped)


def _row_of(label: str) -> str:
    """The table row a sweep variant tunes: its label without the sweep values and the @hash."""
    return label.split("[")[0].split("@")[0]


def _settings(record: dict[str, Any]) -> dict[str, Any]:
    """The run config as dotted keys, with train.lr and train.epochs as the method actually used them."""
    flat = {k: v for k, v in flatten(record.get("config", {})).items() if k not in UNHASHED}
    used = record.get("hyperparameters", {})
    return flat | {f"train.{name}": used[name] for name in ("lr", "epochs") if used.get(name) is not None}


def _can_run(method: str, task: str) -> bool:
    """Whether the method runs on the task at all (the grid skips regression for methods without it)."""
    try:
        regression = glue_task(task).spec.kind == "regression"
    except MixtuneError:
        return True
    return not regression or method not in METHODS or METHODS[method].supports_regression


def chosen_overrides(chosen: Candidate, variants: list[Candidate]) -> dict[str, Any]:
    """train.lr, train.epochs and every key the method's variants differ in, at the chosen variant's values."""
    known = [c for c in variants if c.settings]  # variants with at least one ok run
    keys = {k for c in known for k in c.settings if any(c.settings.get(k) != other.settings.get(k) for other in known)}
    keys |= {k for k in ("train.lr", "train.epochs") if k in chosen.settings}
    values: dict[str, Any] = {}
    for key in sorted(keys, key=lambda k: (k not in ("train.lr", "train.epochs"), k != "train.lr", k)):
        set_dotted(values, key, _tidy(chosen.settings.get(key)))
    return values


def _tidy(value: Any) -> Any:
    """10.0 -> 10 (the YAML reads as written); everything else as it is."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


def rule_text(selection: Selection) -> str:
    metrics = ", ".join(f"{task} {selection.metrics.get(task, '?')}" for task in selection.tasks)
    seeds = ", ".join(map(str, selection.seeds))
    return (
        f"per {selection.by}, the variant with the best mean {selection.split} score (each task's main metric: {metrics}) "
        f"over every (task, seed) cell (seeds {seeds}); only variants with every cell ok; ties to fewer epochs, then lower lr"
    )


def table(selection: Selection) -> str:
    """Row (or method) x variant: mean score, per-task means, cells ok; the chosen variant marked with *."""
    header = ["", selection.by, "variant", f"mean {selection.split}", *selection.tasks, "cells ok"]
    rows = []
    for group, variants in selection.candidates.items():
        for candidate in variants:
            needed = len(candidate.scores) + len(candidate.failed) + len(candidate.missing)
            tasks = [_score(candidate.task_mean(task)) for task in selection.tasks]
            mark = "*" if selection.chosen.get(group) is candidate else ""
            rows.append([mark, group, candidate.label, _score(candidate.mean), *tasks, f"{len(candidate.scores)}/{needed}"])
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    right = range(3, len(header))  # the numbers: mean, per-task means, cells ok
    lines = []
    for row in [header, *rows]:
        cells = [str(v).rjust(w) if i in right else str(v).ljust(w) for i, (v, w) in enumerate(zip(row, widths))]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def _score(value: float | None) -> str:
    return "—" if value is None or np.isnan(value) else f"{value:.2f}"


def overrides_yaml(selection: Selection, today: date | None = None) -> str:
    """The overrides file: a header saying where the choice came from, then {method: overrides}."""
    day = (today or date.today()).isoformat()
    lines = [
        f"# Tuned settings chosen by `mixtune select` from {selection.results} ({selection.split} split) on {day}.",
        f"# Rule: {rule_text(selection)}.",
    ]
    lines += [
        f"# {group}: {candidate.label}, mean {selection.split} {candidate.mean:.2f} over {len(candidate.scores)} cells "
        f"({len(selection.candidates[group])} variants, {sum(not c.eligible for c in selection.candidates[group])} dropped)"
        for group, candidate in selection.chosen.items()
    ]
    body = yaml.safe_dump(selection.overrides(), sort_keys=False, default_flow_style=False)
    return "\n".join(lines) + "\n" + body


def run_select(results: Path, split: str, out: Path | None, by: str = "row") -> int:
    """The command: print the table and what was dropped, write (or print) the overrides."""
    if split not in SELECTION_SPLITS:
        raise MixtuneError(
            f"select --split {split}: the protocol selects on dev or pool_test only (test scores never choose settings): "
            "drop --split, or pass --split pool_test"
        )
    selection = select(results, split, by)
    print(f"{selection.results}: {rule_text(selection)}.")
    print(table(selection))
    for candidate in (c for variants in selection.candidates.values() for c in variants if not c.eligible):
        print(f"dropped {candidate.label}: {candidate.why_dropped()}")
    if missing := [group for group in selection.candidates if group not in selection.chosen]:
        raise MixtuneError(
            f"no variant of {', '.join(missing)} has every cell ok: finish or fix those runs "
            "(mixtune bench <tuning config> [--retry-failed]), then select again; nothing written"
        )
    text = overrides_yaml(selection)
    if out is None:
        print("\n" + text, end="")
        return 0
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    print(f"wrote {out}: " + ", ".join(f"{group} {c.label}" for group, c in selection.chosen.items()))
    return 0

"""The report's runs: records read from results files into Run rows, and the statistics over them."""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mixtune.bench.results import latest_records, read_results, record_method, row_labels
from mixtune.errors import MixtuneError
from mixtune.methods import METHODS
from mixtune.methods.mixup_common import MixupMethod

GLUE_ORDER = ("cola", "sst2", "mrpc", "stsb", "qqp", "mnli", "qnli", "rte")
CORRELATION_METRICS = ("mcc", "spearman", "pearson")  # exactly 0 means a constant prediction
DASH = "—"


@dataclass
class Run:
    """One finished run, as the report needs it."""

    model: str
    size: int | None
    task: str
    method: str  # row label
    seed: int
    metric: str
    score: float
    degenerate: bool
    seconds: float
    memory_mb: float
    cpu_seconds: float | None = None  # CPU time (cpu_s), search included as seconds is; None in older records
    hyperparameters: dict[str, Any] = field(default_factory=dict)
    config_hash: str = ""
    alpha: list[dict[str, Any]] | None = None
    notes: dict[str, str] = field(default_factory=dict)
    settings_from: str | None = None  # the overrides_file (e.g. tuned settings) its settings came from
    search_cached: bool = False  # loaded its search from the cache: seconds and memory are the search's
    last_step_score: float | None = None  # the test score of the last step (train.report_last_step)
    dev_curve: list[dict[str, float]] = field(default_factory=list)  # the finetune's dev evaluations
    alpha_diagnostics: dict[str, Any] | None = None  # did alpha learn: log.alpha_diagnostics (mixtune.mixup.diagnostics)
    predictions: list | None = None  # the reported split's predictions (records from before "predictions": None)
    # which examples those are, where seeds score different sets (pool_test: its pool indices); None: one set for all
    example_ids: list[int] | None = None
    regression: bool = False  # predictions are values, not class indices
    test_split: str = "test"  # the split the score is on ("test"; MNLI: "matched")
    data: dict[str, Any] = field(default_factory=dict)  # the run's data config (config.data): where its labels are
    wise_ft_mixing: float | None = None  # wise-ft's dev-chosen scalar (log.wise_ft.chosen): 1 = the finetuned weights
    dev_score: float | None = None  # the main metric on the run's dev split (what rivals are ranked on)

    @property
    def pair_key(self) -> tuple:
        """What a run is paired on across methods: the same subset and head init."""
        return (self.model, self.size, self.task, self.seed)


@dataclass
class Loaded:
    runs: list[Run]
    failed: list[dict[str, Any]]  # last failed attempt of each cell that never finished
    excluded: list[dict[str, Any]] = field(default_factory=list)  # finished runs left out (quantised_alpha)


def load_runs(paths: list[Path], split: str | None = None) -> Loaded:
    """The last ok record of every cell, and the last failure of cells with no ok record; runs whose alpha was
    quantised (quantised_alpha) are set aside in `excluded`, out of every table. `split` scores every run on that
    split (e.g. pool_test) instead of its test set."""
    records = []
    for path in paths:
        if not path.is_file():
            raise MixtuneError(f"results file {path} does not exist: run mixtune bench first, or check the path")
        records += read_results(path)
    latest = latest_records(records)
    if not (ok := [r for r in latest if r["status"] == "ok" and not quantised_alpha(r)]):
        raise MixtuneError(f"no finished runs in {', '.join(map(str, paths))}: run mixtune bench first")
    labels = row_labels(ok)
    excluded = [r for r in latest if r["status"] == "ok" and quantised_alpha(r)]
    if missing := [r["key"] for r in ok if split is not None and split not in r["metrics"]]:
        k = missing[0]
        raise MixtuneError(f"{len(missing)} finished runs have no {split!r} split (first: {k['task']} {k['method']} "
                           f"n{k['size']} s{k['seed']}): report them without --split, or rerun with data.pool_test_size")
    return Loaded([to_run(r, labels, split) for r in ok], [r for r in latest if r["status"] != "ok"], excluded)


def quantised_alpha(record: dict[str, Any]) -> bool:
    """A mixup-family run in bf16 or fp16 recorded before RECORD_VERSION 2: its alpha was stored in the low
    precision and moved in quantised steps (a bug since fixed), so its scores are not the method's."""
    method = METHODS.get(record_method(record))
    return (
        method is not None
        and issubclass(method, MixupMethod)
        and record.get("config", {}).get("precision") in ("bf16", "fp16")
        and record.get("record_version", 1) < 2
    )


def reported_split(metrics: dict[str, dict], split: str | None = None) -> str:
    """The split a table reports: the one asked for, else "test", or MNLI's "matched"."""
    if split is not None:
        return split
    return next(name for name in ("test", "matched", *metrics) if name in metrics and name != "dev")


def searched_cpu_seconds(record: dict[str, Any], seconds: float) -> float:
    """CPU seconds of a reused search that the run's cpu_s leaves out: as stored with the search, or (older cache
    entries) its wall seconds, which a busy machine inflates; 0 for a run that searched itself."""
    if not record.get("search_cached"):
        return 0.0
    return float(record.get("cached_search_cpu_s", seconds - float(record["time_s"]["total"])))


def to_run(record: dict[str, Any], labels: dict[tuple[str, str], str], split: str | None = None) -> Run:
    key = record["key"]
    metric = record["main_metric"]
    split = reported_split(record["metrics"], split)
    scores = record["metrics"][split]
    score = float(scores[metric])
    degenerate = scores.get("constant_predictions") == 1 or (metric in CORRELATION_METRICS and score == 0.0)
    notes = {k: v for k, v in record.get("data_sources", {}).items() if k.endswith("_note")}
    seconds, memory = run_cost(record)
    cpu, last = record.get("cpu_s"), record.get("metrics_last_step")
    return Run(
        model=key["model"] or "default", size=key["size"], task=key["task"],
        method=labels[(key["method"], key["config_hash"])], seed=key["seed"], metric=metric, score=score,
        degenerate=degenerate, seconds=seconds, memory_mb=memory,
        cpu_seconds=None if cpu is None else cpu + searched_cpu_seconds(record, seconds),
        hyperparameters=record.get("hyperparameters", {}), config_hash=key["config_hash"],
        alpha=record.get("alpha_summary"), notes=notes, settings_from=record.get("settings_from"),
        search_cached=bool(record.get("search_cached")),
        last_step_score=float(last[reported_split(last, split)][metric]) if last and split in last else None,
        dev_curve=record.get("log", {}).get("finetune", {}).get("dev_curve", []),
        alpha_diagnostics=record.get("log", {}).get("alpha_diagnostics"),
        predictions=record.get("predictions", {}).get(split),
        example_ids=record.get("indices", {}).get(split),
        regression=record.get("task", {}).get("kind") == "regression", test_split=split,
        data=record.get("config", {}).get("data", {}),
        wise_ft_mixing=record.get("log", {}).get("wise_ft", {}).get("chosen"),
        dev_score=record["metrics"].get("dev", {}).get(metric),
    )


def run_cost(record: dict[str, Any]) -> tuple[float, float]:
    """(seconds, peak MB) of a run as if it had run alone: a search loaded from the cache counts at the
    original search's wall time (time_s.search) and peak memory (log.search.peak_memory_mb)."""
    times = record.get("time_s", {})
    seconds = float(times.get("total", float("nan")))
    memory = float(record.get("peak_memory_mb", float("nan")))
    if record.get("search_cached"):
        seconds += float(times.get("search", 0.0))
        memory = max(memory, float(record.get("log", {}).get("search", {}).get("peak_memory_mb", 0.0)))
    return seconds, memory


def mean_std(values: list[float]) -> tuple[float, float | None]:
    """Mean and sample standard deviation (None for a single value)."""
    return float(np.mean(values)), (float(np.std(values, ddof=1)) if len(values) > 1 else None)


def paired_scores(runs: list[Run], method: str, baseline: str, task: str) -> dict[int, tuple[float, float]]:
    """seed -> (method's score, baseline's), on every seed both have (same model, size, task), in seed order."""
    base = {r.pair_key: r.score for r in runs if r.method == baseline and r.task == task}
    own = sorted((r for r in runs if r.method == method and r.task == task and r.pair_key in base), key=lambda r: r.seed)
    return {r.seed: (r.score, base[r.pair_key]) for r in own}


def paired_differences(runs: list[Run], method: str, baseline: str, task: str) -> dict[int, float]:
    """seed -> method - baseline, on every seed both have (same model, size, task), in seed order."""
    return {seed: own - base for seed, (own, base) in paired_scores(runs, method, baseline, task).items()}


def paired_ratio(runs: list[Run], method: str, baseline: str, value: Callable[[Run], float | None]) -> float | None:
    """Median over shared cells of value(method run) / value(baseline run); cells where either is None are left out."""
    base = {r.pair_key: value(r) for r in runs if r.method == baseline}
    ratios = [
        own / base[r.pair_key]
        for r in runs
        if r.method == method and (own := value(r)) is not None and base.get(r.pair_key) and base[r.pair_key] > 0
    ]
    return statistics.median(ratios) if ratios else None


def cell_runs(runs: list[Run], method: str, task: str) -> list[Run]:
    return [r for r in runs if r.method == method and r.task == task]


def seed_averages(runs: list[Run], method: str, tasks: list[str]) -> list[float]:
    """Per seed present on every task: the method's average over tasks (the Average column's samples)."""
    by_seed: dict[int, dict[str, float]] = defaultdict(dict)
    for run in runs:
        if run.method == method:
            by_seed[run.seed][run.task] = run.score
    complete = [scores for _, scores in sorted(by_seed.items()) if all(t in scores for t in tasks)]
    return [float(np.mean([scores[t] for t in tasks])) for scores in complete]


def ordered(values: Iterable[str], order: tuple[str, ...] = ()) -> list[str]:
    """Unique values: those in `order` first (in its order), then the rest as first seen."""
    seen = list(dict.fromkeys(values))
    return [v for v in order if v in seen] + [v for v in seen if v not in order]

"""The benchmark report, regenerated from results files alone: report.md with tables, and PNG plots.

Per (model, train size): the headline table (mean ± sample std over seeds of each task's main test metric;
MNLI: matched), stability (std, worst seed, degenerate runs), a paired comparison with the baseline
(mean difference over shared seeds, 95% bootstrap CI over seeds, win rate with ties as half a win), the
focus method (the main method by default) against every other row task by task, cost (median wall time and
peak memory, and their median paired ratio to the baseline) and the learned alpha.
A method label with runs under several config hashes is shown as one row per hash ("lora@1a2b3c4d").
"""

from __future__ import annotations

import re
import statistics
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mixtune.bench.grid import cell_id
from mixtune.bench.results import read_results
from mixtune.errors import MixtuneError

GLUE_ORDER = ("cola", "sst2", "mrpc", "stsb", "qqp", "mnli", "qnli", "rte")
CORRELATION_METRICS = ("mcc", "spearman", "pearson")  # exactly 0 means a constant prediction
BOOTSTRAP_RESAMPLES = 10_000
BOOTSTRAP_SEED = 0
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
    hyperparameters: dict[str, Any] = field(default_factory=dict)
    config_hash: str = ""
    alpha: list[dict[str, Any]] | None = None
    notes: dict[str, str] = field(default_factory=dict)
    settings_from: str | None = None  # the overrides_file (e.g. tuned settings) its settings came from
    search_cached: bool = False  # loaded its search from the cache: seconds and memory are the search's

    @property
    def pair_key(self) -> tuple:
        """What a run is paired on across methods: the same subset and head init."""
        return (self.model, self.size, self.task, self.seed)


@dataclass
class Loaded:
    runs: list[Run]
    failed: list[dict[str, Any]]  # last failed attempt of each cell that never finished


# --- reading ------------------------------------------------------------------------------------------
def load_runs(paths: list[Path]) -> Loaded:
    """The last ok record of every cell, and the last failure of cells with no ok record."""
    latest: dict[str, dict] = {}
    for path in paths:
        if not path.is_file():
            raise MixtuneError(f"results file {path} does not exist: run mixtune bench first, or check the path")
        for record in read_results(path):
            key = cell_id(record["key"])
            if record["status"] == "ok" or latest.get(key, {}).get("status") != "ok":
                latest[key] = record
    ok = [r for r in latest.values() if r["status"] == "ok"]
    if not ok:
        raise MixtuneError(f"no finished runs in {', '.join(map(str, paths))}: run mixtune bench first")
    labels = _row_labels(ok)
    return Loaded([to_run(r, labels) for r in ok], [r for r in latest.values() if r["status"] != "ok"])


def _row_labels(records: list[dict]) -> dict[tuple[str, str], str]:
    """(method, config hash) -> row label; the hash is shown only where a method has several."""
    hashes = defaultdict(set)
    for record in records:
        hashes[record["key"]["method"]].add(record["key"]["config_hash"])
    return {
        (method, h): method if len(seen) == 1 else f"{method}@{h}"
        for method, seen in hashes.items()
        for h in seen
    }


def reported_split(metrics: dict[str, dict]) -> str:
    """The split a table reports: "test", or MNLI's "matched"."""
    for name in ("test", "matched"):
        if name in metrics:
            return name
    return next(name for name in metrics if name != "dev")


def to_run(record: dict[str, Any], labels: dict[tuple[str, str], str]) -> Run:
    key = record["key"]
    metric = record["main_metric"]
    scores = record["metrics"][reported_split(record["metrics"])]
    score = float(scores[metric])
    degenerate = scores.get("constant_predictions") == 1 or (metric in CORRELATION_METRICS and score == 0.0)
    notes = {k: v for k, v in record.get("data_sources", {}).items() if k.endswith("_note")}
    seconds, memory = run_cost(record)
    return Run(
        model=key["model"] or "default",
        size=key["size"],
        task=key["task"],
        method=labels[(key["method"], key["config_hash"])],
        seed=key["seed"],
        metric=metric,
        score=score,
        degenerate=degenerate,
        seconds=seconds,
        memory_mb=memory,
        hyperparameters=record.get("hyperparameters", {}),
        config_hash=key["config_hash"],
        alpha=record.get("alpha_summary"),
        notes=notes,
        settings_from=record.get("settings_from"),
        search_cached=bool(record.get("search_cached")),
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


# --- statistics ---------------------------------------------------------------------------------------
def mean_std(values: list[float]) -> tuple[float, float | None]:
    """Mean and sample standard deviation (None for a single value)."""
    return float(np.mean(values)), (float(np.std(values, ddof=1)) if len(values) > 1 else None)


def bootstrap_ci(
    differences: list[float], resamples: int = BOOTSTRAP_RESAMPLES, seed: int = BOOTSTRAP_SEED
) -> tuple[float, float]:
    """95% percentile interval of the mean difference, resampling seeds with replacement."""
    values = np.asarray(differences, dtype=float)
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, len(values), size=(resamples, len(values)))].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return float(low), float(high)


def win_rate(differences: list[float]) -> float:
    """Fraction of seeds where the method beats the baseline; a tie counts half."""
    return float(np.mean([1.0 if d > 0 else 0.5 if d == 0 else 0.0 for d in differences]))


def paired_differences(runs: list[Run], method: str, baseline: str, task: str) -> list[float]:
    """method - baseline on every seed both have (same model, size, task), in seed order."""
    base = {r.pair_key: r.score for r in runs if r.method == baseline and r.task == task}
    own = sorted((r for r in runs if r.method == method and r.task == task and r.pair_key in base), key=lambda r: r.seed)
    return [r.score - base[r.pair_key] for r in own]


def paired_ratio(runs: list[Run], method: str, baseline: str, value: Callable[[Run], float]) -> float | None:
    """Median over shared cells of value(method run) / value(baseline run)."""
    base = {r.pair_key: value(r) for r in runs if r.method == baseline}
    ratios = [value(r) / base[r.pair_key] for r in runs if r.method == method and r.pair_key in base and base[r.pair_key] > 0]
    return statistics.median(ratios) if ratios else None


def scores_of(runs: list[Run], method: str, task: str) -> list[float]:
    """One cell's scores, one per seed."""
    return [r.score for r in runs if r.method == method and r.task == task]


def seed_averages(runs: list[Run], method: str, tasks: list[str]) -> list[float]:
    """Per seed present on every task: the method's average over tasks (the Average column's samples)."""
    by_seed: dict[int, dict[str, float]] = defaultdict(dict)
    for run in runs:
        if run.method == method:
            by_seed[run.seed][run.task] = run.score
    complete = [scores for _, scores in sorted(by_seed.items()) if all(t in scores for t in tasks)]
    return [float(np.mean([scores[t] for t in tasks])) for scores in complete]


# --- tables -------------------------------------------------------------------------------------------
def ordered(values: Iterable[str], order: tuple[str, ...] = ()) -> list[str]:
    """Unique values: those in `order` first (in its order), then the rest as first seen."""
    seen = list(dict.fromkeys(values))
    return [v for v in order if v in seen] + [v for v in seen if v not in order]


def markdown_table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def fmt(value: float | None, signed: bool = False) -> str:
    if value is None:
        return DASH
    return f"{value:+.2f}" if signed else f"{value:.2f}"


def score_table(runs: list[Run], tasks: list[str], methods: list[str]) -> list[str]:
    """Methods x (tasks + Average): mean ± std over seeds, best mean per column in bold, (n=k) where n differs."""
    columns = {task: {m: scores_of(runs, m, task) for m in methods} for task in tasks}
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


def stability_table(runs: list[Run], tasks: list[str], methods: list[str]) -> list[str]:
    """Per method and task: std over seeds, the worst seed, and degenerate runs (constant predictions)."""
    rows = []
    for method in methods:
        row = [method]
        for task in tasks:
            cell = [r for r in runs if r.method == method and r.task == task]
            if not cell:
                row.append(DASH)
                continue
            worst = min(cell, key=lambda r: r.score)
            std = mean_std([r.score for r in cell])[1]
            degenerate = sum(r.degenerate for r in cell)
            row.append(f"σ {fmt(std)} · worst {worst.score:.2f} (s{worst.seed}) · degenerate {degenerate}/{len(cell)}")
        rows.append(row)
    return markdown_table(["method", *tasks], rows)


def paired_table(runs: list[Run], tasks: list[str], methods: list[str], baseline: str) -> list[str]:
    """Per method and task: mean of (method - baseline) over shared seeds [95% bootstrap CI], win rate."""
    rows = []
    for method in (m for m in methods if m != baseline):
        row = [method]
        for task in tasks:
            diffs = paired_differences(runs, method, baseline, task)
            if not diffs:
                row.append(DASH)
                continue
            low, high = bootstrap_ci(diffs)
            mean = fmt(float(np.mean(diffs)), True)
            row.append(f"{mean} [{fmt(low, True)}, {fmt(high, True)}] · win {win_rate(diffs):.0%} (n={len(diffs)})")
        rows.append(row)
    return markdown_table(["method", *tasks], rows)


def head_to_head_table(runs: list[Run], tasks: list[str], methods: list[str], focus: str) -> list[str]:
    """The focus method against every other row, on the tasks both ran: the mean over those tasks of the
    difference of task means, how many tasks the focus method's mean is higher / equal / lower (at two
    decimals, as in the score table), and the mean of each one's std over seeds (tasks where both have one)."""
    focus_scores = {t: scores_of(runs, focus, t) for t in tasks}
    rows = []
    for other in (m for m in methods if m != focus):
        other_scores = {t: scores_of(runs, other, t) for t in tasks}
        shared = [t for t in tasks if focus_scores[t] and other_scores[t]]
        if not shared:
            continue
        own = [mean_std(focus_scores[t]) for t in shared]
        theirs = [mean_std(other_scores[t]) for t in shared]
        gaps = [round(a[0], 2) - round(b[0], 2) for a, b in zip(own, theirs)]
        won, tied = sum(g > 0 for g in gaps), sum(g == 0 for g in gaps)
        rows.append(
            [
                other,
                str(len(shared)),
                fmt(float(np.mean(gaps)), True),
                f"{won} / {tied} / {len(shared) - won - tied}",
                _mean_stds(own, theirs),
            ]
        )
    header = ["against", "tasks", f"mean difference ({focus} - other)", "tasks won / tied / lost", f"mean std ({focus} / other)"]
    return markdown_table(header, rows)


def _mean_stds(own: list[tuple[float, float | None]], theirs: list[tuple[float, float | None]]) -> str:
    """"a / b": the mean per-task std of each side, over the tasks where both ran several seeds."""
    pairs = [(a[1], b[1]) for a, b in zip(own, theirs) if a[1] is not None and b[1] is not None]
    if not pairs:
        return DASH
    return f"{fmt(float(np.mean([a for a, _ in pairs])))} / {fmt(float(np.mean([b for _, b in pairs])))}"


def cost_table(runs: list[Run], methods: list[str], baseline: str) -> list[str]:
    """Median wall time and peak memory per method, and the median paired ratio to the baseline."""
    rows = []
    for method in methods:
        own = [r for r in runs if r.method == method]
        time_ratio = paired_ratio(runs, method, baseline, lambda r: r.seconds)
        memory_ratio = paired_ratio(runs, method, baseline, lambda r: r.memory_mb)
        rows.append(
            [
                method,
                str(len(own)),
                f"{statistics.median(r.seconds for r in own):.1f}",
                fmt(time_ratio) + ("x" if time_ratio is not None else ""),
                f"{statistics.median(r.memory_mb for r in own):.0f}",
                fmt(memory_ratio) + ("x" if memory_ratio is not None else ""),
            ]
        )
    header = ["method", "runs", "median time (s)", f"time / {baseline}", "median peak memory (MB)", f"memory / {baseline}"]
    return markdown_table(header, rows)


def alpha_role_table(runs: list[Run], methods: list[str]) -> list[str]:
    """Per method and module role: mean coefficient on W / on W0, over layers, tasks and seeds."""
    with_alpha = [m for m in methods if any(r.alpha for r in runs if r.method == m)]
    if not with_alpha:
        return []
    roles = ordered(row["role"] for r in runs if r.alpha for row in r.alpha)
    rows = []
    for method in with_alpha:
        layers = [row for r in runs if r.method == method and r.alpha for row in r.alpha]
        cells = []
        for role in roles:
            picked = [row for row in layers if row["role"] == role]
            cells.append(
                f"{np.mean([row['task_mean'] for row in picked]):.3f} / {np.mean([row['pretrained_mean'] for row in picked]):.3f}"
                if picked
                else DASH
            )
        rows.append([method, *cells])
    return markdown_table(["method", *roles], rows)


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
        lrs = sorted({str(r.hyperparameters.get("lr", DASH)) for r in own})
        epochs = sorted({str(r.hyperparameters.get("epochs", DASH)) for r in own})
        hashes = sorted({r.config_hash for r in own})
        row = [method, ", ".join(lrs), ", ".join(epochs), ", ".join(hashes)]
        if sources:
            files = ordered(f"`{file}`{entry}" for m, file, _, entry in sources if m == method)
            row.append(", ".join(files) or "the bench config")
        rows.append(row)
    header = ["method", "lr", "epochs", "config hash"] + (["settings from"] if sources else [])
    headers = dict.fromkeys((file, text) for _, file, text, _ in sources)
    notes = [f"- `{file}`: {text or '(no header)'}" for file, text in headers]
    return markdown_table(header, rows) + ([""] + notes if notes else [])


# --- the report ---------------------------------------------------------------------------------------
def slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in Path(text).name)


def write_report(paths: list[Path], out: Path, baseline: str = "vanilla", focus: str = "mixup-blo") -> str:
    """Write out/report.md and the plots; returns the headline table(s) as text."""
    from mixtune.bench import plots

    loaded = load_runs(paths)
    runs = loaded.runs
    out.mkdir(parents=True, exist_ok=True)
    lines = ["# Benchmark report", "", *_overview(paths, loaded, baseline)]
    headline = []
    groups = ordered_groups(runs)
    for model, size in groups:
        group = [r for r in runs if r.model == model and r.size == size]
        tasks = ordered((r.task for r in group), GLUE_ORDER)
        methods = method_order(group, baseline)
        size_text = "all" if size is None else str(size)
        title = f"Model {model}, n = {size_text}"
        table = score_table(group, tasks, methods)
        headline += [f"## {title}", "", *table, ""]
        name = f"{slug(model)}_n{size_text}"
        lines += [f"## {title}", "", "### Test scores (main metric of each task)", "", *table, ""]
        plots.seed_plot(group, tasks, methods, out / f"seeds_{name}.png", title)
        lines += [f"![every seed](seeds_{name}.png)", ""]
        lines += ["### Stability", "", "Degenerate: constant predictions (a correlation metric of exactly 0).", ""]
        lines += [*stability_table(group, tasks, methods), ""]
        lines += _paired_section(group, tasks, methods, baseline)
        lines += _head_to_head_section(group, tasks, methods, focus)
        lines += ["### Cost", "", *_cached_note(group), *cost_table(group, methods, baseline), ""]
        lines += _alpha_section(group, tasks, methods, name, title, out)
        lines += ["### Settings", "", *settings_table(group, methods), ""]
    lines += _size_section(runs, out, baseline)
    lines += _failed_section(loaded.failed)
    (out / "report.md").write_text("\n".join(lines) + "\n")
    return "\n".join(headline)


def ordered_groups(runs: list[Run]) -> list[tuple[str, int | None]]:
    return sorted({(r.model, r.size) for r in runs}, key=lambda g: (g[0], -1 if g[1] is None else g[1]))


def method_order(runs: list[Run], baseline: str) -> list[str]:
    """The baseline first, then methods as they first appear in the results (the config's order)."""
    return ordered((r.method for r in runs), (baseline,))


def _overview(paths: list[Path], loaded: Loaded, baseline: str) -> list[str]:
    lines = [
        f"From {', '.join(f'`{p}`' for p in paths)}: {len(loaded.runs)} finished runs; "
        f"{len(loaded.failed)} cells failed with no finished run" + (" (listed at the end)." if loaded.failed else "."),
        f"Scores are in percent on the task's test set (the official GLUE dev set; MNLI: matched). Baseline: {baseline}.",
        "",
    ]
    notes = sorted({(r.task, text) for r in loaded.runs for text in r.notes.values()})
    lines += [f"- {task}: {text}" for task, text in notes]
    return lines + ([""] if notes else [])


def _cached_note(runs: list[Run]) -> list[str]:
    cached = [r for r in runs if r.search_cached]
    if not cached:
        return []
    labels = ", ".join(ordered(r.method for r in cached))
    return [
        f"{len(cached)} runs ({labels}) loaded their search from the search cache; their time and memory count "
        "the original search's, as if they had searched themselves.",
        "",
    ]


def _paired_section(runs: list[Run], tasks: list[str], methods: list[str], baseline: str) -> list[str]:
    head = ["### Paired comparison with " + baseline, ""]
    if baseline not in methods:
        return head + [f"No {baseline} runs here: nothing to compare with (see --baseline).", ""]
    text = (
        f"Mean of (method - {baseline}) over the seeds both ran (same subset, same head init), "
        f"[95% bootstrap CI over seeds, {BOOTSTRAP_RESAMPLES} resamples], and the win rate (ties count half)."
    )
    return head + [text, "", *paired_table(runs, tasks, methods, baseline), ""]


def _head_to_head_section(runs: list[Run], tasks: list[str], methods: list[str], focus: str) -> list[str]:
    if focus not in methods or len(methods) < 2:
        return []
    text = (
        f"{focus} against every other row, on the tasks both ran: the mean difference of the task means, "
        "the tasks where its mean is higher / equal / lower, and the mean std over seeds on the tasks where both ran several."
    )
    return [f"### {focus} against each method", "", text, "", *head_to_head_table(runs, tasks, methods, focus), ""]


def _alpha_section(runs: list[Run], tasks: list[str], methods: list[str], name: str, title: str, out: Path) -> list[str]:
    from mixtune.bench import plots

    table = alpha_role_table(runs, methods)
    if not table:
        return []
    lines = [
        "### Learned alpha",
        "",
        "Mean coefficient on the finetuned weight W / on the pretrained W0 per module role (over layers, tasks, seeds). "
        "A W coefficient well below 1 keeps that module near its pretrained weights.",
        "",
        *table,
        "",
    ]
    for method in methods:
        picked = [r for r in runs if r.method == method and r.alpha]
        if picked:
            file = f"alpha_{name}_{slug(method)}.png"
            caption = f"{title}: {method}\nmean coefficient on the task weight W (over seeds)"
            plots.alpha_heatmap(picked, tasks, out / file, caption)
            lines += [f"![alpha {method}]({file})", ""]
    return lines


def _size_section(runs: list[Run], out: Path, baseline: str) -> list[str]:
    from mixtune.bench import plots

    lines = []
    for model in sorted({r.model for r in runs}):
        own = [r for r in runs if r.model == model]
        if len({r.size for r in own}) < 2:
            continue
        file = f"sizes_{slug(model)}.png"
        tasks = ordered((r.task for r in own), GLUE_ORDER)
        plots.size_plot(own, tasks, method_order(own, baseline), out / file, f"Model {model}")
        lines += [f"## Score against train size: {model}", "", f"![score against train size]({file})", ""]
    return lines


def _failed_section(failed: list[dict[str, Any]]) -> list[str]:
    if not failed:
        return []
    rows = [[*(str(f["key"][k]) for k in ("task", "method", "size", "seed")), f["error"].replace("|", "/")] for f in failed]
    note = "Cells whose last attempt failed (mixtune bench --retry-failed runs them again):"
    return ["## Failed runs", "", note, "", *markdown_table(["task", "method", "n", "seed", "error"], rows), ""]

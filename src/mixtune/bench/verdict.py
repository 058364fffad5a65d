"""The report's comparisons (statistics in mixtune.bench.stats): paired differences task by task, and the verdict of
the focus method against every other row, the seed being the unit both times."""

from __future__ import annotations

from collections import Counter

from mixtune.bench.runs import DASH, Run, paired_differences, paired_scores
from mixtune.bench.stats import MIN_SEEDS_TO_CALL, Comparison, SpreadRatio, compare, seed_means, std_ratio
from mixtune.bench.tables import fmt, markdown_table

POOLED_CALLS = {"won": "better", "lost": "worse", "tied": "no clear difference", "n too small": "n too small"}


def task_legend(first: str, second: str) -> str:
    """The one-line legend under a task-by-task table of (first - second)."""
    return (
        f"Each cell: mean of ({first} - {second}) over the seeds both ran [95% t-interval over those seeds] · p of the "
        "paired t-test (in brackets: exact sign-flip test) · MDE, the smallest true difference these seeds detect 80% "
        f"of the time (two-sided 5%, from the observed sd). Won / lost is called only from {MIN_SEEDS_TO_CALL} seeds "
        "on (fewer: n too small); one seed gives no interval."
    )


def task_table(runs: list[Run], tasks: list[str], pairs: dict[str, tuple[str, str]]) -> list[str]:
    """Row label -> (a, b): per task, the paired comparison of a - b over seeds; "n=k" where k is not the usual n."""
    cells = {label: [compare(list(paired_differences(runs, a, b, t).values())) for t in tasks] for label, (a, b) in pairs.items()}
    counts = Counter(c.n for row in cells.values() for c in row if c.n)
    usual = counts.most_common(1)[0][0] if counts else 0
    rows = [[label, *(comparison_cell(c, usual) for c in row)] for label, row in cells.items()]
    caption = f"Seeds per cell: {usual}" + (" unless marked." if len(counts) > 1 else ".")
    return [caption, "", *markdown_table(["method", *tasks], rows)]


def comparison_cell(c: Comparison, usual_n: int) -> str:
    if c.low is None:
        return interval(c) if c.n else DASH
    text = f"{interval(c)} · p {fmt_p(c.p)} ({fmt_p(c.p_sign_flip)}) · MDE {fmt(c.mde)}" + (f" · n={c.n}" if c.n != usual_n else "")
    return text + (f" · **{c.call}**" if c.call in ("won", "lost") else "")


def interval(c: Comparison) -> str:
    """"+0.49 [-0.82, +1.82]", or "+1.26 (1 seed)": no interval is drawn from one seed."""
    if c.low is None:
        return f"{fmt(c.mean, True)} (1 seed)"
    return f"{fmt(c.mean, True)} [{fmt(c.low, True)}, {fmt(c.high, True)}]"


def fmt_p(p: float | None) -> str:
    return DASH if p is None else "<0.001" if p < 0.001 else f"{p:.3f}"


def verdict_table(runs: list[Run], tasks: list[str], others: list[str], focus: str) -> list[str]:
    """Per other row: the pooled comparison on the per-seed mean over the tasks both ran (seeds that ran them all),
    its call, and the tasks won / tied / lost by each task's own comparison."""
    rows = []
    for other in others:
        per_task = {t: d for t in tasks if (d := paired_differences(runs, focus, other, t))}
        if not per_task:
            continue
        means = seed_means(per_task)
        task_calls = Counter(compare(list(d.values())).call for d in per_task.values())
        rows.append([other, str(len(means)), str(len(per_task)), *pooled_cells(means), task_counts(task_calls, len(per_task))])
    difference = f"mean difference ({focus} - other) [95% t-interval]"
    header = ["against", "seeds", "tasks", difference, "p (t-test / sign-flip)", "MDE (80% power)", "verdict", "tasks won / tied / lost"]
    return markdown_table(header, rows)


def pooled_cells(seed_means: list[float]) -> list[str]:
    """Interval, p values, MDE and verdict of the per-seed means (dashes where no seed ran every shared task)."""
    if not seed_means:
        return [DASH] * 4
    c = compare(seed_means)
    return [interval(c), f"{fmt_p(c.p)} / {fmt_p(c.p_sign_flip)}", fmt(c.mde), POOLED_CALLS[c.call]]


def task_counts(calls: Counter[str], tasks: int) -> str:
    small = calls["n too small"]
    if small == tasks:
        return "n too small"
    return f"{calls['won']} / {calls['tied']} / {calls['lost']}" + (f" (n too small: {small})" if small else "")


def verdict_legend(focus: str) -> str:
    return (
        f"The seed is the unit: per seed, the mean over the tasks both ran of ({focus} - other), on the seeds that ran "
        "every one of them; 95% t-interval over those seeds, p of the t-test and of an exact sign-flip test, MDE at 80% "
        f"power. The verdict (better / worse) and each task's won / lost need {MIN_SEEDS_TO_CALL} seeds and an interval "
        "clear of 0."
    )


def spread_table(runs: list[Run], tasks: list[str], methods: list[str], baseline: str) -> list[str]:
    """Per method: the std over seeds against the baseline's on the same seeds, per task and on the per-seed mean
    over the tasks (the seeds that ran every one: the seed is the unit, as in the verdict)."""
    rows = []
    for method in (m for m in methods if m != baseline):
        per_task = [paired_scores(runs, method, baseline, t) for t in tasks]
        pooled = [seed_means({t: {s: pair[side] for s, pair in p.items()} for t, p in zip(tasks, per_task)}) for side in (0, 1)]
        cells = [std_ratio([a for a, _ in p.values()], [b for _, b in p.values()]) for p in per_task]
        rows.append([method, *map(ratio_cell, cells), ratio_cell(std_ratio(*pooled))])
    return markdown_table(["method", *tasks, "per-seed mean over the tasks"], rows)


def ratio_cell(r: SpreadRatio) -> str:
    """"0.52x [0.21, 1.30] (n=8)"; no interval below 3 seeds, a dash with no spread to divide by."""
    if r.ratio is None:
        return DASH
    interval_text = f" [{r.low:.2f}, {r.high:.2f}]" if r.low is not None else ""
    return f"{r.ratio:.2f}x{interval_text} (n={r.n})"


def spread_legend(baseline: str) -> str:
    return (
        f"Each cell: std over seeds of the method's scores / the same for {baseline}, on the seeds both ran, with a 95% "
        "Pitman-Morgan interval (the seeds pair the runs, so their spreads correlate); below 1: steadier than "
        f"{baseline}. No interval below 3 seeds; with 3-8 seeds expect it to span several-fold."
    )

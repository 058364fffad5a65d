"""The benchmark report, regenerated from results files alone: report.md with tables, and PNG plots.

Per (model, train size): the headline table (mean ± sample std over seeds of each task's main test metric;
MNLI: matched), stability (std, worst seed, degenerate and failed runs, and how often seeds disagree on the
test examples), a paired comparison with the baseline (mean difference over shared seeds, 95% bootstrap CI
over seeds, win rate with ties as half a win), the focus method (the main method by default) against every
other row task by task and its verdict over all paired (task, seed) runs, cost (median wall time and peak
memory, and their median paired ratio to the baseline; the CPU-time ratio too, from records with cpu_s), the
scalar WiSE-FT chose on dev and the learned alpha. Beside the scores, a chance reference (mixtune.bench.chance:
the constant prediction's test score, the one number read from the data the records name rather than from the
records), and the verdict again on the tasks where the baseline rose above it.
A method label with runs under several config hashes is shown as one row per hash ("lora@1a2b3c4d").
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from mixtune.bench.chance import (
    CHANCE_MARGIN,
    chance_levels,
    chance_note,
    chance_row,
    tasks_at_chance,
)
from mixtune.bench.runs import (
    BOOTSTRAP_RESAMPLES,
    GLUE_ORDER,
    Loaded,
    Run,
    load_runs,
    ordered,
)
from mixtune.bench.stability import disagreement_table, failed_counts, stability_table
from mixtune.bench.tables import (
    alpha_diagnostics_table,
    alpha_role_table,
    alpha_share_table,
    cost_table,
    head_to_head_table,
    markdown_table,
    mixing_table,
    paired_table,
    score_table,
    selection_table,
    settings_table,
)
from mixtune.bench.verdict import verdict_table


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
    levels = chance_levels(runs)
    for model, size in groups:
        group = [r for r in runs if r.model == model and r.size == size]
        tasks = ordered((r.task for r in group), GLUE_ORDER)
        methods = method_order(group, baseline)
        size_text = "all" if size is None else str(size)
        title = f"Model {model}, n = {size_text}"
        at_chance = tasks_at_chance(group, levels, baseline)
        table = [*score_table(group, tasks, methods), *([chance_row(levels, tasks)] if levels else [])]
        table += ["", *chance_note(levels, tasks, at_chance, baseline)]
        headline += [f"## {title}", "", *table]
        name = f"{slug(model)}_n{size_text}"
        lines += [f"## {title}", "", "### Test scores (main metric of each task)", "", *table]
        plots.seed_plot(group, tasks, methods, out / f"seeds_{name}.png", title)
        lines += [f"![every seed](seeds_{name}.png)", ""]
        lines += _stability_section(group, tasks, methods, failed_counts(loaded.failed, model, size, methods))
        lines += _paired_section(group, tasks, methods, baseline)
        lines += _head_to_head_section(group, tasks, methods, focus)
        lines += _verdict_section(group, tasks, methods, focus)
        lines += _learned_verdict_section(group, [t for t in tasks if t not in at_chance], at_chance, methods, focus, baseline)
        lines += _selection_section(group, tasks, methods, name, title, out)
        lines += _mixing_section(group, tasks, methods)
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


def _stability_section(runs: list[Run], tasks: list[str], methods: list[str], failed: Counter[tuple[str, str]]) -> list[str]:
    """Instability beyond the std: collapsed and failed runs, and seeds that score alike but predict differently."""
    text = (
        "σ is the std of the test score over seeds; worst, the lowest seed's score; degenerate, the finished runs with "
        "constant predictions (a correlation metric of exactly 0); failed, the seeds whose run failed and never finished "
        "(counted nowhere else)."
    )
    lines = ["### Stability", "", text, "", *stability_table(runs, tasks, methods, failed), ""]
    if not any(r.predictions is not None for r in runs):
        return lines + ["No run here stored its test predictions (records from before they were kept): no seed disagreement.", ""]
    text = (
        "Seed disagreement is the mean over pairs of seeds of the fraction of test examples whose predicted class differs "
        "(regression: 1 - Pearson r of their predictions), n the seeds with stored predictions (— with fewer than two)."
    )
    return lines + [text, "", *disagreement_table(runs, tasks, methods), ""]


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


def _verdict_section(runs: list[Run], tasks: list[str], methods: list[str], focus: str) -> list[str]:
    """Whether the focus method is better, with the seed noise taken into account (the head-to-head counts do not)."""
    if focus not in methods or len(methods) < 2:
        return []
    text = (
        f"{focus} against every other row over all the (task, seed) pairs both ran: the mean paired difference "
        f"[95% bootstrap CI over those pairs, {BOOTSTRAP_RESAMPLES} resamples], and the tasks won / tied / lost, a task "
        "being won (lost) when the 95% bootstrap interval of its mean paired difference lies above (below) 0, and tied "
        "otherwise or with a single pair."
    )
    return ["### Verdict", "", text, "", *verdict_table(runs, tasks, methods, focus), ""]


def _learned_verdict_section(
    runs: list[Run], learned: list[str], at_chance: list[str], methods: list[str], focus: str, baseline: str
) -> list[str]:
    """The verdict again without the tasks where the baseline sits at chance, whose differences are noise."""
    if not at_chance or not learned or focus not in methods or len(methods) < 2:
        return []
    text = (
        f"The same verdict on the tasks {baseline} learned ({', '.join(learned)}), leaving out those where its mean is "
        f"within {CHANCE_MARGIN:g} points of the constant prediction ({', '.join(at_chance)})."
    )
    return ["### Verdict on the tasks that learn", "", text, "", *verdict_table(runs, learned, methods, focus), ""]


def _selection_section(runs: list[Run], tasks: list[str], methods: list[str], name: str, title: str, out: Path) -> list[str]:
    """What best-dev checkpoint selection changed (rows run with train.report_last_step), and the dev curves."""
    from mixtune.bench import plots

    lines = []
    table = selection_table(runs, tasks, methods)
    if table:
        text = "Test score of the checkpoint chosen on dev against the last step's, from the same runs."
        lines += ["### Checkpoint selection", "", text, "", *table, ""]
    curved = [m for m in methods if any(r.dev_curve for r in runs if r.method == m)]
    curved_tasks = [t for t in tasks if any(r.dev_curve for r in runs if r.task == t)]
    if curved:
        file = f"dev_curves_{name}.png"
        plots.dev_curve_plot(runs, curved_tasks, curved, out / file, title)
        lines += [f"![dev curves](dev_curves_{name}.png)", ""]
    return lines


def _mixing_section(runs: list[Run], tasks: list[str], methods: list[str]) -> list[str]:
    """WiSE-FT's scalar, chosen on dev: 1 means it kept the finetuned weights and the row is its finetune's."""
    table = mixing_table(runs, tasks, methods)
    if not table:
        return []
    text = (
        "The scalar a each WiSE-FT run chose on its dev split (weights (1 - a) W0 + a W; 1 keeps the finetuned "
        "weights, ties go to the larger a), per seed in seed order."
    )
    return ["### WiSE-FT's mixing", "", text, "", *table, ""]


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
    lines += [
        "Pretrained share coef_W0 / (coef_W + coef_W0) per module role (0: all finetuned W; 1: all W0), and in "
        "brackets how far it moved during the search (mean |change| per weight entry, over splits).",
        "",
        *alpha_share_table(runs, methods),
        "",
    ]
    for method in methods:
        picked = [r for r in runs if r.method == method and r.alpha]
        flat = plots.flat_share(picked) if picked else None
        if flat is not None:
            lines += [f"{method}: alpha did not move (pretrained share {flat:.3f} in every module and layer): no heatmap.", ""]
        elif picked:
            file = f"alpha_{name}_{slug(method)}.png"
            caption = f"{title}: {method}\nmean pretrained share of the mix per layer (over seeds)"
            plots.alpha_heatmap(picked, tasks, out / file, caption)
            lines += [f"![alpha {method}]({file})", ""]
    diagnostics = alpha_diagnostics_table(runs, methods)
    if diagnostics:
        text = (
            "Whether alpha learned, from each run's search (log.alpha_diagnostics, means over tasks and seeds): "
            "a share that barely travels, or a hypergradient signal-to-noise ratio near pure noise's, means alpha "
            "stayed at its start plus noise."
        )
        lines += ["### Did alpha learn?", "", text, "", *diagnostics, ""]
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

"""The benchmark report, regenerated from results files alone: report.md with tables, and PNG plots.

Per (model, train size), the sections write_report lists: the scores (mean ± sample std over seeds of each task's
main test metric; MNLI: matched) beside a chance reference read from the data the records name rather than from the
records (mixtune.bench.chance), stability, the paired comparisons and the focus method's verdict with the seed as the
unit (mixtune.bench.verdict), cost, WiSE-FT's scalar and the learned alpha. With a grid config (--config), the
verdict again on its headline_tasks and against its rivals only, both named before the run. A method label with runs
under several config hashes is shown as one row per hash ("lora@1a2b3c4d").
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from mixtune.bench import plots
from mixtune.bench.chance import chance_levels, chance_note, chance_row
from mixtune.bench.grid import Protocol
from mixtune.bench.runs import GLUE_ORDER, Loaded, Run, load_runs, ordered
from mixtune.bench.stability import disagreement_table, failed_counts, stability_table
from mixtune.bench.tables import (
    alpha_diagnostics_table,
    alpha_role_table,
    alpha_share_table,
    cost_table,
    markdown_table,
    mixing_table,
    score_table,
    selection_table,
    settings_table,
)
from mixtune.bench.verdict import spread_legend, spread_table, task_legend, task_table, verdict_legend, verdict_table


def slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in Path(text).name)


PLOT_PATTERNS = ("seeds_*.png", "dev_curves_*.png", "alpha_*.png", "sizes_*.png")


def write_report(
    paths: list[Path], out: Path, baseline: str = "vanilla", focus: str = "mixup-blo", protocol: Protocol = Protocol(),
    split: str | None = None,
) -> str:
    """Write out/report.md and the plots; returns the headline table(s) as text. `split`: see load_runs."""
    loaded = load_runs(paths, split)
    runs = loaded.runs
    out.mkdir(parents=True, exist_ok=True)
    for stale in (path for pattern in PLOT_PATTERNS for path in out.glob(pattern)):
        stale.unlink()  # a report rewrites its folder's plots: one it no longer draws must not linger
    lines = ["# Benchmark report", "", *_overview(paths, loaded, baseline, split)]
    headline = []
    levels = chance_levels(runs)
    for model, size in sorted({(r.model, r.size) for r in runs}, key=lambda g: (g[0], -1 if g[1] is None else g[1])):
        group = [r for r in runs if r.model == model and r.size == size]
        tasks = ordered((r.task for r in group), GLUE_ORDER)
        methods = method_order(group, baseline)
        size_text = "all" if size is None else str(size)
        title = f"Model {model}, n = {size_text}"
        table = [*score_table(group, tasks, methods), *([chance_row(levels, tasks)] if levels else [])]
        table += ["", *chance_note(levels, tasks)]
        headline += [f"## {title}", "", *table]
        name = f"{slug(model)}_n{size_text}"
        lines += [f"## {title}", "", "### Test scores (main metric of each task)", "", *table]
        plots.seed_plot(group, tasks, methods, out / f"seeds_{name}.png", title)
        lines += [f"![every seed](seeds_{name}.png)", ""]
        lines += _stability_section(group, tasks, methods, failed_counts(loaded.failed, model, size, methods))
        lines += _paired_section(group, tasks, methods, baseline)
        lines += _focus_section(group, tasks, methods, focus, protocol)
        lines += _selection_section(group, tasks, methods, name, title, out)
        lines += _mixing_section(group, tasks, methods)
        lines += ["### Cost", "", *_cached_note(group), *cost_table(group, methods, baseline), ""]
        lines += _alpha_section(group, tasks, methods, name, title, out)
        lines += ["### Settings", "", *settings_table(group, methods), ""]
    lines += _size_section(runs, out, baseline)
    lines += _failed_section(loaded.failed)
    (out / "report.md").write_text("\n".join(lines) + "\n")
    return "\n".join(headline)


def method_order(runs: list[Run], baseline: str) -> list[str]:
    """The baseline first, then methods as they first appear in the results (the config's order)."""
    return ordered((r.method for r in runs), (baseline,))


def _overview(paths: list[Path], loaded: Loaded, baseline: str, split: str | None) -> list[str]:
    lines = [
        f"From {', '.join(f'`{p}`' for p in paths)}: {len(loaded.runs)} finished runs; "
        f"{len(loaded.failed)} cells failed with no finished run" + (" (listed at the end)." if loaded.failed else "."),
        (f"Scores are in percent on each run's {split!r} split (see its note below), not on the test set. "
         if split else "Scores are in percent on the task's test set (the official GLUE dev set; MNLI: matched). ")
        + f"Baseline: {baseline}.",
        "",
    ]
    if loaded.excluded:
        cells = ", ".join(ordered(f"{r['key']['method']} {r['key']['task']} s{r['key']['seed']}" for r in loaded.excluded))
        lines += [
            f"Left out of every table: {len(loaded.excluded)} mixup-family run(s) in bf16/fp16 recorded before record "
            f"version 2, whose alpha was quantised (a bug since fixed; rerun them): {cells}.",
            "",
        ]
    notes = sorted({(r.task, text) for r in loaded.runs for text in r.notes.values()})
    lines += [f"- {task}: {text}" for task, text in notes]
    return lines + ([""] if notes else [])


def _section(title: str, text: str, table: list[str]) -> list[str]:
    return [f"### {title}", "", text, "", *table, ""] if table else []


def _cached_note(runs: list[Run]) -> list[str]:
    if not (cached := [r for r in runs if r.search_cached]):
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
    lines = _section("Stability", text, stability_table(runs, tasks, methods, failed))
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
    table = task_table(runs, tasks, {m: (m, baseline) for m in methods if m != baseline})
    spread = _section(f"Spread against {baseline}", spread_legend(baseline), spread_table(runs, tasks, methods, baseline))
    return head + [*table, "", task_legend("method", baseline), "", *spread]


def _focus_section(runs: list[Run], tasks: list[str], methods: list[str], focus: str, protocol: Protocol) -> list[str]:
    """The focus method against each row task by task; then whether it is better, over all tasks and again over the
    headline tasks named before the run."""
    if focus not in methods or len(methods) < 2:
        return []
    table = task_table(runs, tasks, {m: (focus, m) for m in methods if m != focus})
    lines = [f"### {focus} against each method, task by task", "", *table, "", task_legend(focus, "method"), ""]
    others = [m for m in (protocol.rivals or methods) if m in methods and m != focus]
    against = f" against the rivals named in the grid config ({', '.join(others)})" if protocol.rivals else ""
    lines += ["### Verdict", "", *verdict_table(runs, tasks, others, focus), "", verdict_legend(focus) + against, ""]
    if headline := [t for t in protocol.headline_tasks if t in tasks]:
        text = f"The same verdict on the headline tasks named in the grid config (headline_tasks: {', '.join(headline)})."
        lines += ["### Verdict on the headline tasks", "", text, "", *verdict_table(runs, headline, others, focus), ""]
    return lines


def _selection_section(runs: list[Run], tasks: list[str], methods: list[str], name: str, title: str, out: Path) -> list[str]:
    """What best-dev checkpoint selection changed (rows run with train.report_last_step), and the dev curves."""
    text = "Test score of the checkpoint chosen on dev against the last step's, from the same runs."
    lines = _section("Checkpoint selection", text, selection_table(runs, tasks, methods))
    curved = [m for m in methods if any(r.dev_curve for r in runs if r.method == m)]
    curved_tasks = [t for t in tasks if any(r.dev_curve for r in runs if r.task == t)]
    if curved:
        plots.dev_curve_plot(runs, curved_tasks, curved, out / f"dev_curves_{name}.png", title)
        lines += [f"![dev curves](dev_curves_{name}.png)", ""]
    return lines


def _mixing_section(runs: list[Run], tasks: list[str], methods: list[str]) -> list[str]:
    """WiSE-FT's scalar, chosen on dev: 1 means it kept the finetuned weights and the row is its finetune's."""
    text = (
        "The scalar a each WiSE-FT run chose on its dev split (weights (1 - a) W0 + a W; 1 keeps the finetuned "
        "weights, ties go to the larger a), per seed in seed order."
    )
    return _section("WiSE-FT's mixing", text, mixing_table(runs, tasks, methods))


def _alpha_section(runs: list[Run], tasks: list[str], methods: list[str], name: str, title: str, out: Path) -> list[str]:
    if not (table := alpha_role_table(runs, methods)):
        return []
    roles = (
        "Mean coefficient on the finetuned weight W / on the pretrained W0 per module role (over layers, tasks, seeds). "
        "A W coefficient well below 1 keeps that module near its pretrained weights."
    )
    shares = (
        "Pretrained share coef_W0 / (coef_W + coef_W0) per module role (0: all finetuned W; 1: all W0), and in "
        "brackets how far it moved during the search (mean |change| per weight entry, over splits)."
    )
    lines = ["### Learned alpha", "", roles, "", *table, "", shares, "", *alpha_share_table(runs, methods), ""]
    for method in methods:
        picked = [r for r in runs if r.method == method and r.alpha]
        flat = plots.flat_share(picked) if picked else None
        if flat is not None:
            lines += [f"{method}: alpha hardly moved (pretrained share {flat:.3f}, every module and layer within "
                      f"{plots.FLAT_SHARE} of each other): no heatmap.", ""]
        elif picked:
            file = f"alpha_{name}_{slug(method)}.png"
            caption = f"{title}: {method}\nmean pretrained share of the mix per layer (over seeds)"
            plots.alpha_heatmap(picked, tasks, out / file, caption)
            lines += [f"![alpha {method}]({file})", ""]
    text = (
        "Whether alpha learned, from each run's search (log.alpha_diagnostics, means over tasks and seeds): "
        "a share that barely travels, or a hypergradient signal-to-noise ratio near pure noise's, means alpha "
        "stayed at its start plus noise."
    )
    return lines + _section("Did alpha learn?", text, alpha_diagnostics_table(runs, methods))


def _size_section(runs: list[Run], out: Path, baseline: str) -> list[str]:
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

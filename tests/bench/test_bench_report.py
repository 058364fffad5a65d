"""The report's numbers against the hand-made results file of conftest.report_results (worked out by hand)."""

from __future__ import annotations

import pytest

from mixtune.bench.report import write_report
from mixtune.bench.runs import load_runs, reported_split, searched_cpu_seconds
from mixtune.errors import MixtuneError

from .conftest import record_line, write_records

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def report(report_results, tmp_path):
    out = tmp_path / "report"
    headline = write_report([report_results], out)
    return headline, (out / "report.md").read_text(), out


def section(text: str, title: str) -> str:
    """The lines of one '### title' section of the n = 300 part."""
    part = text.split("## Model default, n = 300")[1].split("## Model default, n = 500")[0]
    return part.split(f"### {title}")[1].split("###")[0]


def row(text: str, method: str) -> list[str]:
    line = next(line for line in text.splitlines() if line.startswith(f"| {method} |"))
    return [cell.strip() for cell in line.strip("|").split("|")][1:]


def test_loading_keeps_the_last_ok_run_per_cell_and_unfixed_failures(report_results):
    loaded = load_runs([report_results])
    assert len(loaded.runs) == 6 + 6 + 2 + 2
    assert [(f["key"]["method"], f["key"]["task"]) for f in loaded.failed] == [("lora", "cola")]


def test_headline_table_means_stds_bold_best_and_seed_counts(report):
    headline, text, _ = report
    table = section(text, "Test scores (main metric of each task)")
    assert "n = 3 per cell, except where marked" in table
    assert table.index("| method | cola | rte | Average |") > 0  # GLUE order: cola before rte
    # cola: vanilla 10 20 30, mixup 0 25 35 (a tie at 20.00: both bold); rte: lora best at 61
    assert row(table, "vanilla") == ["**20.00 ± 10.00**", "52.00 ± 2.00", "36.00 ± 6.00"]
    assert row(table, "mixup-blo") == ["**20.00 ± 18.03**", "54.00 ± 2.65", "**37.00 ± 9.84**"]
    assert row(table, "lora") == ["—", "**61.00 ± 1.41** (n=2)", "—"]
    assert "| mixup-blo | **20.00 ± 18.03** |" in headline


def test_stability_worst_seed_and_degenerate_runs(report):
    table = section(report[1], "Stability")
    assert row(table, "vanilla") == [
        "σ 10.00 · worst 10.00 (s1) · degenerate 0/3 · failed 0", "σ 2.00 · worst 50.00 (s1) · degenerate 1/3 · failed 0"
    ]
    assert row(table, "mixup-blo") == [  # CoLA MCC 0; the rte seed 1 failure was fixed by a later run
        "σ 18.03 · worst 0.00 (s1) · degenerate 1/3 · failed 0", "σ 2.65 · worst 52.00 (s2) · degenerate 0/3 · failed 0"
    ]
    assert row(table, "lora") == ["failed 1", "σ 1.41 · worst 60.00 (s1) · degenerate 0/2 · failed 0"]
    assert "No run here stored its test predictions" in table  # records from before predictions were kept


def test_paired_differences_t_interval_p_values_and_mde(report):
    table = section(report[1], "Paired comparison with vanilla")
    # cola diffs -10, 5, 5: mean 0, sd sqrt(75), half-width t(.975, 2) 4.303 * sd / sqrt(3) = 21.51, MDE 3.264 sd;
    # rte 3, 0, 3: mean 2, sd sqrt(3), t = 2 (p 0.184), half-width 4.30; sign flips: |mean| >= 2 in 4 of 8 patterns
    assert "Seeds per cell: 3 unless marked." in table
    assert row(table, "mixup-blo") == [
        "+0.00 [-21.51, +21.51] · p 1.000 (1.000) · MDE 28.27", "+2.00 [-2.30, +6.30] · p 0.184 (0.500) · MDE 5.65"
    ]
    # lora rte: 10, 10, no spread: no t-test, and 2 seeds cannot show anything by sign flips (p 0.5)
    assert row(table, "lora") == ["—", "+10.00 [+10.00, +10.00] · p — (0.500) · MDE 0.00 · n=2"]
    assert "| vanilla |" not in table
    assert "95% t-interval over those seeds" in table  # the legend under the table


def test_focus_method_against_each_other_row_task_by_task(report):
    table = section(report[1], "mixup-blo against each method, task by task")
    assert row(table, "vanilla")[1] == "+2.00 [-2.30, +6.30] · p 0.184 (0.500) · MDE 5.65"
    # rte: 53 - 60, 52 - 62 = -7, -10 on the two seeds lora ran
    assert row(table, "lora") == ["—", "-8.50 [-27.56, +10.56] · p 0.111 (0.500) · MDE 24.50 · n=2"]
    assert "| mixup-blo |" not in table


def test_one_seed_gives_a_difference_and_no_interval(tmp_path):
    lines = [record_line("rte", "vanilla", 1, 50), record_line("rte", "mixup-blo", 1, 51.26)]
    path = tmp_path / "one.jsonl"
    write_records(path, lines)
    write_report([path], tmp_path / "out")
    text = (tmp_path / "out" / "report.md").read_text() + "## Model default, n = 500"
    assert row(section(text, "Paired comparison with vanilla"), "mixup-blo") == ["+1.26 (1 seed)"]
    assert row(section(text, "Verdict"), "vanilla") == ["1", "1", "+1.26 (1 seed)", "— / —", "—", "n too small", "n too small"]


def test_cost_is_median_and_median_paired_ratio(report):
    table = section(report[1], "Cost")
    assert row(table, "vanilla") == ["6", "10.0", "1.00x", "—", "1000", "1.00x"]  # no CPU times recorded
    assert row(table, "mixup-blo") == ["6", "20.0", "2.00x", "—", "1500", "1.50x"]  # ratios 3 2 4 2 2 2


def test_alpha_failures_and_settings_sections(report):
    text = report[1]
    alpha = section(text, "Learned alpha")
    assert row(alpha, "mixup-blo") == ["0.905 / 0.010", "0.500 / 0.200"]
    assert "| vanilla |" not in alpha
    assert "| cola | lora | 300 | 1 | RuntimeError: boom / bang |" in text
    assert row(section(text, "Settings"), "vanilla") == ["2e-05", "3", "h"]


def test_plots_are_written_and_linked(report):
    _, text, out = report
    for name in ("seeds_default_n300.png", "seeds_default_n500.png", "alpha_default_n300_mixup-blo.png", "sizes_default.png"):
        data = (out / name).read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 5000, name
        assert f"({name})" in text


def test_reported_split_is_test_or_mnli_matched():
    assert reported_split({"dev": {}, "matched": {}, "mismatched": {}}) == "matched"


def test_no_finished_runs_is_a_user_error(tmp_path):
    (tmp_path / "empty.jsonl").write_text("")
    with pytest.raises(MixtuneError, match="no finished runs"):
        write_report([tmp_path / "empty.jsonl"], tmp_path / "out")
    with pytest.raises(MixtuneError, match="does not exist"):
        write_report([tmp_path / "missing.jsonl"], tmp_path / "out")


def test_settings_say_where_tuned_values_came_from_and_cached_searches_cost_what_they_did(tmp_path):
    """vanilla ran with settings from a tuned file, vanilla-released from the config itself; mixup-blo seed 2
    loaded its search (200 s, 3000 MB when it ended) from the cache, so it counts 10 + 200 s and 3000 MB."""
    source = "benchmarks/tuned.yaml: Tuned settings chosen by `mixtune select` from results/tune.jsonl on 2025-01-02."
    cached = {"search_cached": True, "time_s": {"total": 10.0, "search": 200.0}, "log": {"search": {"peak_memory_mb": 3000.0}}}
    lines = [
        record_line("rte", "vanilla", 1, 50, settings_from=source),
        record_line("rte", "vanilla-released", 1, 50),
        record_line("rte", "joint", 1, 50, settings_from=f"{source} (the mixup-blo entry)"),
        record_line("rte", "mixup-blo", 1, 50, seconds=210.0, memory=3000.0, settings_from=source),
        record_line("rte", "mixup-blo", 2, 50, memory=1500.0, settings_from=source, **cached),
    ]
    path = tmp_path / "table.jsonl"
    write_records(path, lines)
    write_report([path], tmp_path / "out")
    text = (tmp_path / "out" / "report.md").read_text()
    settings = section(text + "## Model default, n = 500", "Settings")
    assert row(settings, "vanilla") == ["2e-05", "3", "h", "`benchmarks/tuned.yaml`"]
    assert row(settings, "vanilla-released") == ["2e-05", "3", "h", "the bench config"]
    assert row(settings, "joint")[-1] == "`benchmarks/tuned.yaml` (the mixup-blo entry)"
    assert settings.count("- `benchmarks/tuned.yaml`: ") == 1, "one note per file, however many entries"
    assert f"- `benchmarks/tuned.yaml`: {source.partition(': ')[2]}" in settings
    cost = section(text + "## Model default, n = 500", "Cost")
    assert "1 runs (mixup-blo) loaded their search from the search cache" in cost
    assert row(cost, "mixup-blo") == ["2", "210.0", "21.00x", "—", "3000", "3.00x"]  # no cpu_s in these records


def test_cost_in_cpu_time_pairs_only_runs_that_recorded_it(tmp_path):
    """Seed 1: vanilla 100 s of wall time on 50 s of CPU (a busy machine), mixup-blo 150 s on 150 s: 1.5x in
    wall time, 3x in CPU time. Seed 2's vanilla has no cpu_s, so its pair counts in wall time only. Seed 3's
    mixup-blo reused a cached search of 200 s: its CPU time counts 20 + 200 against vanilla's 50 (4.4x)."""
    lines = [
        record_line("rte", "vanilla", 1, 50, seconds=100.0, cpu_s=50.0),
        record_line("rte", "mixup-blo", 1, 50, seconds=150.0, cpu_s=150.0),
        record_line("rte", "vanilla", 2, 50, seconds=100.0),
        record_line("rte", "mixup-blo", 2, 50, seconds=150.0, cpu_s=150.0),
        record_line("rte", "vanilla", 3, 50, seconds=50.0, cpu_s=50.0),
        record_line("rte", "mixup-blo", 3, 50, seconds=20.0, cpu_s=20.0, search_cached=True,
                    time_s={"total": 20.0, "search": 200.0}),
    ]
    path = tmp_path / "table.jsonl"
    write_records(path, lines)
    write_report([path], tmp_path / "out")
    cost = section((tmp_path / "out" / "report.md").read_text() + "## Model default, n = 500", "Cost")
    # wall: 1.5, 1.5, 4.4 -> median 1.5; CPU: 3.0 and 4.4 -> median 3.7
    assert row(cost, "mixup-blo")[2:4] == ["1.50x", "3.70x"]


def test_a_reused_search_counts_at_its_stored_cpu_time_not_its_wall_time():
    """A search that took 200 s of wall time on a busy machine but 90 s of CPU: the reusing run costs 20 + 90."""
    cached = record_line("rte", "mixup-blo", 3, 50, seconds=20.0, cpu_s=20.0, search_cached=True,
                         time_s={"total": 20.0, "search": 200.0})
    assert searched_cpu_seconds(cached, 220.0) == 200.0  # an older entry: only its wall time is known
    assert searched_cpu_seconds({**cached, "cached_search_cpu_s": 90.0}, 220.0) == 90.0
    assert searched_cpu_seconds(record_line("rte", "mixup-blo", 1, 50, seconds=150.0, cpu_s=150.0), 150.0) == 0.0


def test_selection_section_compares_the_chosen_and_the_last_step(tmp_path):
    lines = []
    for seed, (chosen, last) in enumerate([(80.0, 70.0), (60.0, 66.0)], start=1):
        line = record_line("sst2", "vanilla", seed, chosen)
        line["metrics_last_step"] = {"test": {"accuracy": last}}
        line["log"] = {"finetune": {"dev_curve": [{"step": 10, "dev": 50.0}, {"step": 20 * seed, "dev": 90.0}]}}
        lines.append(line)
    path = tmp_path / "results.jsonl"
    write_records(path, lines)
    write_report([path], tmp_path / "report")
    text = (tmp_path / "report" / "report.md").read_text()
    table = text.split("### Checkpoint selection")[1].split("###")[0]
    assert row(table, "vanilla") == ["sst2", "2", "70.00", "68.00", "+2.00", "30"]
    assert (tmp_path / "report" / "dev_curves_default_n300.png").read_bytes().startswith(PNG_MAGIC)


def test_mixing_section_lists_wise_ft_scalars_and_counts_the_finetuned_ones(tmp_path):
    lines = []
    for task, seed, chosen in [("sst2", 2, 1.0), ("sst2", 1, 0.6), ("rte", 1, 1.0)]:
        line = record_line(task, "wise-ft", seed, 70.0)
        line["log"] = {"wise_ft": {"chosen": chosen, "dev_scores": {}}}
        lines.append(line)
    lines.append(record_line("sst2", "vanilla", 1, 70.0))
    path = tmp_path / "results.jsonl"
    write_records(path, lines)
    write_report([path], tmp_path / "report")
    table = (tmp_path / "report" / "report.md").read_text().split("### WiSE-FT's mixing")[1].split("###")[0]
    assert row(table, "wise-ft") == ["0.6, 1", "1", "2 of 3"]
    assert "| vanilla |" not in table


def test_no_mixing_section_without_wise_ft(report):
    assert "WiSE-FT's mixing" not in report[1]


def test_a_rewritten_report_leaves_no_plot_it_no_longer_draws(report_results, tmp_path):
    out = tmp_path / "report"
    out.mkdir()
    (out / "alpha_default_n300_gone.png").write_bytes(PNG_MAGIC)
    (out / "notes.png").write_bytes(PNG_MAGIC)  # not a name the report draws: left alone
    write_report([report_results], out)
    assert not (out / "alpha_default_n300_gone.png").exists()
    assert (out / "notes.png").exists()
    drawn = {p.name for p in out.glob("*.png")} - {"notes.png"}
    assert drawn and all(name in (out / "report.md").read_text() or name.startswith("sizes_") for name in drawn)

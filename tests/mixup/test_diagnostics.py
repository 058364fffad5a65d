"""Did alpha learn: share, travel and hypergradient signal-to-noise, per split, per run, per layer, in the report."""

import math

import pytest
import torch

from mixtune.mixup.diagnostics import alpha_summary
from mixtune.bench.runs import Run
from mixtune.bench.tables import alpha_diagnostics_table, alpha_share_table, share_of
from mixtune.config import MixupConfig
from mixtune.mixup import inject_mixup, mixup_layers
from mixtune.mixup.diagnostics import NOISE_MEDIAN, SearchDiagnostics, summarize_search
from tests.conftest import tiny_bert


def share_model(granularity="module", **mixup):
    model = tiny_bert()
    inject_mixup(model, MixupConfig(form="share", granularity=granularity, init_std=0.0, **mixup))
    return model


def test_signal_to_noise_is_the_median_of_abs_mean_over_std():
    model = share_model()  # one theta per module: 13 entries
    layers = list(mixup_layers(model))
    diagnostics = SearchDiagnostics(model)
    steps = [[1.0, 3.0], [2.0, 2.0], [0.0, -1.0], [4.0, 0.0]]  # per step: the values for layers 0 and 1; others 1, 1, 1, 2
    for k in range(4):
        values = [steps[k][0], steps[k][1]] + [1.0 if k < 3 else 2.0] * (len(layers) - 2)
        diagnostics.add([torch.full((1, 1), v) for v in values])
    result = diagnostics.result()
    ratios = []
    for column in ([1.0, 2.0, 0.0, 4.0], [3.0, 2.0, -1.0, 0.0], [1.0, 1.0, 1.0, 2.0]):
        values = torch.tensor(column, dtype=torch.float64)
        ratios.append(abs(values.mean().item()) / values.std().item())
    expected = sorted(ratios[:2] + [ratios[2]] * (len(layers) - 2))[len(layers) // 2]
    assert result["hypergradient_snr"] == pytest.approx(expected, abs=1e-4)
    assert result["snr_noise"] == pytest.approx(NOISE_MEDIAN / 2, abs=1e-4)
    assert result["layers"][layers[0][0]]["snr"] == pytest.approx(ratios[0], abs=1e-4)


def test_pure_noise_gives_the_noise_level():
    model = tiny_bert()
    inject_mixup(model, MixupConfig(form="share", granularity="rank", rank=None))  # one theta per entry
    diagnostics = SearchDiagnostics(model)
    generator = torch.Generator().manual_seed(0)
    shapes = [p.shape for _, layer in mixup_layers(model) for p in layer.alpha_parameters()]
    for _ in range(12):
        diagnostics.add([torch.randn(shape, generator=generator) for shape in shapes])
    result = diagnostics.result()
    assert result["snr_noise"] == pytest.approx(0.1947, abs=1e-3)  # the 0.195 for 12 batches
    assert abs(result["hypergradient_snr"] - result["snr_noise"]) < 0.02


def test_travel_is_the_mean_absolute_change_of_the_share():
    model = share_model(init_share=0.5)
    diagnostics = SearchDiagnostics(model)
    layers = list(mixup_layers(model))
    with torch.no_grad():
        layers[0][1].alpha_a.fill_(math.log(0.8 / 0.2))  # share 0.5 -> 0.8 on one module
    result = diagnostics.result()
    sizes = [layer.weight0.numel() for _, layer in layers]
    assert result["layers"][layers[0][0]]["travel"] == pytest.approx(0.3, abs=1e-6)
    assert result["layers"][layers[1][0]]["travel"] == 0.0
    assert result["share_travel"] == pytest.approx(0.3 * sizes[0] / sum(sizes), abs=1e-6)
    assert result["share_start"] == pytest.approx(0.5) and result["share"] > 0.5
    assert result["param_travel_rms"] == pytest.approx(math.log(4) / math.sqrt(len(layers)), abs=1e-5)


def test_summaries_average_splits_and_survive_old_cached_logs():
    split = lambda share, snr: {"alpha_lr_sum": 1.0, "diagnostics": {
        "share": share, "share_start": 0.5, "share_travel": abs(share - 0.5), "param_travel_rms": 0.1,
        "hypergradient_snr": snr, "snr_noise": 0.2, "alpha_steps": 9, "layers": {"m": {"share": share, "travel": 0.1, "snr": snr}},
    }}
    summary = summarize_search({"splits": [split(0.6, 0.5), split(0.4, 0.3)]})
    assert summary["share"] == pytest.approx(0.5) and summary["share_travel"] == pytest.approx(0.1)
    assert summary["hypergradient_snr"] == pytest.approx(0.4) and summary["alpha_lr_sum"] == 1.0
    assert summary["layers"]["m"] == {"share": pytest.approx(0.5), "travel": pytest.approx(0.1), "snr": pytest.approx(0.4)}
    assert summarize_search({"splits": [{"seconds": 1.0}]}) is None  # a search cached before the diagnostics


def test_alpha_summary_rows_carry_the_share_and_the_search_diagnostics():
    model = share_model(init_share=0.25)
    name = next(n for n, _ in mixup_layers(model))
    rows = alpha_summary(model, {"layers": {name: {"share": 0.3, "travel": 0.05, "snr": 0.7}}})
    assert all(row["share_mean"] == pytest.approx(0.25) for row in rows)
    assert rows[0]["share_travel"] == 0.05 and rows[0]["snr"] == 0.7 and "share_travel" not in rows[1]
    released = tiny_bert()
    inject_mixup(released, MixupConfig(init_std=0.0))
    assert all(row["share_mean"] == 0.0 for row in alpha_summary(released))  # every factor at 1: all W


def run(method, seed, alpha=None, diagnostics=None):
    return Run("m", 300, "rte", method, seed, "accuracy", 50.0, False, 1.0, 1.0, alpha=alpha, alpha_diagnostics=diagnostics)


def test_report_tables_show_share_travel_and_signal_to_noise():
    rows = [{"module": "l.0.q", "layer": 0, "role": "query", "task_mean": 0.5, "pretrained_mean": 0.5, "share_mean": 0.4, "share_travel": 0.1}]
    old = [{"module": "l.0.q", "layer": 0, "role": "query", "task_mean": 0.9, "pretrained_mean": 0.1}]
    assert share_of(old[0]) == pytest.approx(0.1)
    diagnostics = {"share": 0.4, "share_start": 0.5, "share_travel": 0.1, "param_travel_rms": 0.5, "hypergradient_snr": 0.6,
                   "snr_noise": 0.2, "alpha_steps": 9, "alpha_lr_sum": 1.0, "layers": {"bert.l.0.q": {"travel": 0.1}}}
    runs = [run("share", 1, rows, diagnostics), run("share", 2, rows, {**diagnostics, "hypergradient_snr": 0.8}),
            run("released", 1, old), run("vanilla", 1)]
    shares = alpha_share_table(runs, ["vanilla", "share", "released"])
    assert "| share | 0.400 (moved 0.100) |" in shares and "| released | 0.100 |" in shares and "vanilla" not in "".join(shares)
    table = alpha_diagnostics_table(runs, ["vanilla", "share", "released"])
    assert table[2] == "| share | 2 | 0.500 → 0.400 | 0.1000 | 0.100 (l.0.q) | 0.5000 | 0.700 / 0.200 | 9 | 1.000 |"
    assert len(table) == 3  # no row for runs without a search

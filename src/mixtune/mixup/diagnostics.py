"""Did alpha learn? What a search records about alpha, and the summary over K splits (issue #12).

Three measurements, per split, recorded in the search log and summarised in the run record
(log.alpha_diagnostics; alpha_summary gives the per-layer values a benchmark record keeps):

- the pretrained share per entry, coef_W0 / (coef_W + coef_W0) (MixupLinear.pretrained_share), at the start
  and the end of the search;
- the distance alpha travelled from its start: the mean over weight entries of |share_end - share_start|
  (per layer and over all layers), and the root mean square change of the alpha parameters themselves;
- the hypergradient's signal-to-noise ratio: per alpha parameter, |mean| / std of its hypergradient over the
  split's alpha steps; the median over parameters. Pure noise over T steps gives a median of about
  0.674 / sqrt(T) (the recorded `snr_noise`): a ratio near that means alpha followed noise.
"""

from __future__ import annotations

import math
import re
import statistics
from typing import Any

import torch
from torch import nn

from mixtune.mixup.inject import mixup_layers

NOISE_MEDIAN = 0.6745  # the median of |N(0, 1)|
LAYER_PATTERN = re.compile(r"\.layers?\.(\d+)\.(.+)$")
ROLE_PREFIXES = ("attention.self.", "attention.attn.")


class SearchDiagnostics:
    """Started before a split's search (alpha at its start), fed every hypergradient, read at the end."""

    def __init__(self, model: nn.Module) -> None:
        self.layers = list(mixup_layers(model))
        self.start = {name: [p.detach().clone() for p in layer.alpha_parameters()] for name, layer in self.layers}
        self.sums: dict[str, list[torch.Tensor]] = {
            name: [torch.zeros_like(p, dtype=torch.float64) for p in params] for name, params in self.start.items()
        }
        self.squares = {name: [s.clone() for s in sums] for name, sums in self.sums.items()}
        self.steps = 0

    @torch.no_grad()
    def add(self, hypergradient: list[torch.Tensor | None]) -> None:
        """One alpha step's hypergradient, in alpha_parameters(model) order (the layers' order)."""
        grads = iter(hypergradient)
        for name, _ in self.layers:
            for total, square in zip(self.sums[name], self.squares[name]):
                grad = next(grads)
                if grad is not None:
                    g = grad.detach().double().to(total.device)
                    total.add_(g)
                    square.add_(g * g)
        self.steps += 1

    @torch.no_grad()
    def result(self) -> dict[str, Any]:
        """Per layer and over all layers: start and end share, share travel, parameter travel, hypergradient SNR."""
        layers, ratios = {}, []
        share_sum = start_sum = travel_sum = entries = 0.0
        square_change = parameters = 0.0
        for name, layer in self.layers:
            end = layer.pretrained_share().double()
            start = layer.pretrained_share(*self.start[name]).double()
            travel = (end - start).abs()
            layer_ratios = self._ratios(name)
            ratios.append(layer_ratios)
            layers[name] = {
                "share": round(end.mean().item(), 6),
                "share_start": round(start.mean().item(), 6),
                "travel": round(travel.mean().item(), 6),
                "snr": _median(layer_ratios),
            }
            share_sum += end.sum().item()
            start_sum += start.sum().item()
            travel_sum += travel.sum().item()
            entries += end.numel()
            for param, first in zip(layer.alpha_parameters(), self.start[name]):
                square_change += (param.detach().double() - first.double()).pow(2).sum().item()
                parameters += param.numel()
        return {
            "alpha_steps": self.steps,
            "share": round(share_sum / max(entries, 1), 6),
            "share_start": round(start_sum / max(entries, 1), 6),
            "share_travel": round(travel_sum / max(entries, 1), 6),
            "param_travel_rms": round(math.sqrt(square_change / max(parameters, 1)), 6),
            "hypergradient_snr": _median(torch.cat(ratios)) if ratios else None,
            "snr_noise": round(NOISE_MEDIAN / math.sqrt(self.steps), 4) if self.steps else None,
            "layers": layers,
        }

    def _ratios(self, name: str) -> torch.Tensor:
        """|mean| / sample std of every alpha entry's hypergradient over the steps (entries with std 0 left out)."""
        if self.steps < 2:
            return torch.empty(0, dtype=torch.float64)
        out = []
        for total, square in zip(self.sums[name], self.squares[name]):
            mean = total / self.steps
            var = ((square - self.steps * mean * mean) / (self.steps - 1)).clamp_min(0.0)
            std = var.sqrt()
            keep = std > 0
            out.append((mean.abs()[keep] / std[keep]).flatten().cpu())
        return torch.cat(out) if out else torch.empty(0, dtype=torch.float64)


def _median(values: torch.Tensor) -> float | None:
    return round(values.median().item(), 4) if values.numel() else None


def summarize_search(search_log: dict[str, Any]) -> dict[str, Any] | None:
    """The splits' diagnostics, averaged over splits (per layer too), with the alpha lr sum; None without any
    (a search cached before the diagnostics existed)."""
    splits = [s for s in search_log.get("splits", []) if s.get("diagnostics")]
    if not splits:
        return None
    diagnostics = [s["diagnostics"] for s in splits]
    summary: dict[str, Any] = {"splits": len(splits)}
    for key in ("share", "share_start", "share_travel", "param_travel_rms", "hypergradient_snr", "snr_noise", "alpha_steps"):
        summary[key] = _mean([d.get(key) for d in diagnostics])
    summary["alpha_lr_sum"] = _mean([s.get("alpha_lr_sum") for s in splits])
    names = list(diagnostics[0]["layers"])
    summary["layers"] = {
        name: {k: _mean([d["layers"].get(name, {}).get(k) for d in diagnostics]) for k in ("share", "travel", "snr")}
        for name in names
    }
    return summary


def _mean(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return round(statistics.fmean(present), 6) if present else None


def alpha_summary(model: nn.Module, diagnostics: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Per mixup layer, its coefficients on the task weight W and the pretrained W0 and its pretrained share
    (MixupLinear.pretrained_share), all the report's heatmap is drawn from: a W coefficient near 1 (released init)
    keeps the finetuned weight, one near 0 stays pretrained. With the search's diagnostics (log.alpha_diagnostics,
    summarize_search), also how far the share travelled during the search (share_travel, mean over splits)
    and the median signal-to-noise ratio of its hypergradient (snr)."""
    layers = (diagnostics or {}).get("layers", {})
    rows = []
    with torch.no_grad():
        for name, layer in mixup_layers(model):
            on_task, on_pretrained = layer.coefficients()
            index, role = layer_position(name)
            values = {
                "task_mean": on_task.mean(), "pretrained_mean": on_pretrained.mean(), "task_min": on_task.min(),
                "task_max": on_task.max(), "share_mean": layer.pretrained_share().mean(),
            }
            row = {"module": name, "layer": index, "role": role, **{k: round(v.item(), 6) for k, v in values.items()}}
            if name in layers:
                row["share_travel"] = layers[name].get("travel")
                row["snr"] = layers[name].get("snr")
            rows.append(row)
    return rows


def layer_position(name: str) -> tuple[int | None, str]:
    """(layer index, module role) from a module name: 'bert.encoder.layer.3.attention.self.query' -> (3, 'query')."""
    match = LAYER_PATTERN.search(name)
    index, rest = (int(match.group(1)), match.group(2)) if match else (None, ".".join(name.split(".")[-2:]))
    for prefix in ROLE_PREFIXES:
        rest = rest.removeprefix(prefix)
    return index, rest.removesuffix(".dense")

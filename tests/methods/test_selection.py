"""Best-dev checkpoint selection and divergence checks in the shared training loop."""

from __future__ import annotations

import pytest
import torch

from mixtune.config import build_config
from mixtune.errors import TrainingDiverged
from mixtune.methods import make_method
from mixtune.train import FitContext, train_loop

from .conftest import random_features


class ScriptedDev:
    """Returns the next score of a script at each dev evaluation and remembers the weights it saw."""

    def __init__(self, scores: list[float]) -> None:
        self.scores, self.seen = list(scores), []

    def __call__(self, model: torch.nn.Module) -> float:
        self.seen.append(model.classifier.weight.detach().clone())
        return self.scores[len(self.seen) - 1]


def fit(tiny_model, tiny_tokenizer, scores: list[float], **train):
    config = build_config({"method": "vanilla", "train": {"batch_size": 8, "lr": 1e-3, "eval_every": 2, "select": "best-dev", **train}})
    dev = ScriptedDev(scores)
    ctx = FitContext(random_features(32), tiny_tokenizer, config, 0, progress=False, evaluate_dev=dev)
    result = train_loop(tiny_model, ctx.loader(), make_method(config), 1e-3, 3, ctx, desc="test")  # 12 steps
    return result, dev, ctx


def test_best_dev_restores_the_weights_of_the_best_evaluation(tiny_model, tiny_tokenizer):
    result, dev, _ = fit(tiny_model, tiny_tokenizer, [50, 60, 90, 70, 80, 85])
    assert [point["step"] for point in result["dev_curve"]] == [2, 4, 6, 8, 10, 12]
    assert result["selected_step"] == 6 and result["best_dev"] == 90
    assert torch.equal(tiny_model.classifier.weight, dev.seen[2])
    assert not torch.equal(tiny_model.classifier.weight, dev.seen[-1])


def test_ties_go_to_the_later_step(tiny_model, tiny_tokenizer):
    result, dev, _ = fit(tiny_model, tiny_tokenizer, [70, 90, 90, 90, 10, 10])
    assert result["selected_step"] == 8
    assert torch.equal(tiny_model.classifier.weight, dev.seen[3])


def test_select_last_keeps_the_final_weights_and_still_records_the_curve(tiny_model, tiny_tokenizer):
    result, dev, _ = fit(tiny_model, tiny_tokenizer, [50, 99, 10, 10, 10, 10], select="last")
    assert result["selected_step"] == 12 and len(result["dev_curve"]) == 6
    assert torch.equal(tiny_model.classifier.weight, dev.seen[-1])


def test_patience_stops_training_early(tiny_model, tiny_tokenizer):
    result, _, _ = fit(tiny_model, tiny_tokenizer, [50, 80, 70, 60, 90, 90], patience=2)
    assert result["steps"] == 8 and result["planned_steps"] == 12 and result["selected_step"] == 4


def test_report_last_step_keeps_the_last_weights_aside(tiny_model, tiny_tokenizer):
    _, dev, ctx = fit(tiny_model, tiny_tokenizer, [50, 99, 10, 10, 10, 10], report_last_step=True)
    assert torch.equal(ctx.last_step_state["classifier.weight"], dev.seen[-1])
    assert torch.equal(tiny_model.classifier.weight, dev.seen[1])


def test_a_huge_learning_rate_fails_as_divergence(tiny_model, tiny_tokenizer):
    config = build_config({"method": "vanilla", "train": {"batch_size": 8, "max_grad_norm": None}})
    ctx = FitContext(random_features(32), tiny_tokenizer, config, 0, progress=False)
    with pytest.raises(TrainingDiverged):
        train_loop(tiny_model, ctx.loader(), make_method(config), 1e30, 3, ctx, desc="test")

"""The divergence guard: a running loss above a ceiling no learning run reaches (3 ln C for classification,
10 x max(first loss, label variance) for regression), and non-finite weights at each dev evaluation."""

from __future__ import annotations

import math
import re

import pytest
import torch

from mixtune.config import build_config
from mixtune.errors import TrainingDiverged
from mixtune.methods import make_method
from mixtune.train import DIVERGENCE_WINDOW, DivergenceGuard, FitContext, train_loop

from .conftest import random_features


def feed(guard: DivergenceGuard, losses: list[float]) -> None:
    for loss in losses:
        guard.add(loss)


# --- the rules ------------------------------------------------------------------------------------------
def test_a_running_cross_entropy_above_three_ln_c_is_divergence():
    guard = DivergenceGuard(num_labels=2)
    feed(guard, [0.7, 0.6, 3.0, 0.5, 4.0])  # noisy, mean 1.76: below 3 ln 2 = 2.08
    with pytest.raises(TrainingDiverged, match=r"mean loss 2\.22 over steps 2-6, above 2\.08 = 3 x ln 2\): lower the learning rate"):
        guard.add(3.0)  # 100 x the first loss, 70, is far off


def test_the_ceiling_grows_with_the_number_of_classes():
    three = DivergenceGuard(num_labels=3)  # 3 ln 3 = 3.30
    feed(three, [1.1, 2.5, 3.0, 3.0, 3.0, 3.0])
    assert three.ceiling() == (pytest.approx(3 * math.log(3)), "3 x ln 3")


def test_nothing_is_judged_before_the_window_is_full():
    guard = DivergenceGuard(num_labels=2)
    feed(guard, [50.0] * (DIVERGENCE_WINDOW - 1))
    with pytest.raises(TrainingDiverged, match="mean loss 50"):
        guard.add(50.0)


def test_regression_is_judged_against_its_first_loss_or_the_label_variance():
    untrained = DivergenceGuard(num_labels=1, label_variance=2.3)  # first loss 9: a zero head on 0-5 scores
    feed(untrained, [9.0, 40.0, 60.0, 80.0, 89.0])  # mean 55.6 < 90
    with pytest.raises(TrainingDiverged, match=r"above 90 = 10 x the first loss"):
        feed(untrained, [300.0])
    fitted = DivergenceGuard(num_labels=1, label_variance=2.0)  # lp-ft: the head fits before finetuning
    feed(fitted, [0.01, 3.0, 0.5, 6.0, 1.0, 0.4])  # spikes far above the start, far below 10 x the variance
    with pytest.raises(TrainingDiverged, match=r"above 20 = 10 x the label variance"):
        feed(fitted, [50.0, 50.0])


def test_the_guard_reads_the_classes_from_the_model_and_the_variance_from_the_labels(tiny_model):
    assert DivergenceGuard.for_model(tiny_model, random_features(4)).ceiling()[1] == "3 x ln 2"
    tiny_model.config.num_labels = 1
    features = [{"labels": value} for value in (1.0, 3.0, 1.0, 3.0)]
    assert DivergenceGuard.for_model(tiny_model, features).label_variance == 1.0


# --- in the loop ----------------------------------------------------------------------------------------
def fit(tiny_model, tiny_tokenizer, lr: float, epochs: float = 10, evaluate_dev=None, **train):
    config = build_config({"method": "vanilla", "train": {"batch_size": 8, "max_grad_norm": None, **train}})
    ctx = FitContext(random_features(32), tiny_tokenizer, config, 0, progress=False, evaluate_dev=evaluate_dev)
    method = make_method(config)
    return method, ctx, lambda: train_loop(tiny_model, ctx.loader(), method, lr, epochs, ctx, desc="test")


def test_a_huge_learning_rate_with_finite_losses_is_caught_with_its_reason(tiny_model, tiny_tokenizer):
    """lr 10: the loss climbs to tens but stays finite (left alone, a window mean of 54 at worst and 4.2 at
    the end: 100 x the first loss, 70, is never reached), so only the ln C ceiling catches it, at the first window."""
    *_, train = fit(tiny_model, tiny_tokenizer, lr=10.0)
    with pytest.raises(TrainingDiverged, match=r"over steps 1-5, above 2\.08 = 3 x ln 2\): lower the learning rate") as caught:
        train()
    running = float(re.search(r"mean loss (\S+)", str(caught.value)).group(1))
    assert 3 * math.log(2) < running < 100 * 0.69


def test_a_normal_run_is_not_flagged(tiny_model, tiny_tokenizer):
    *_, train = fit(tiny_model, tiny_tokenizer, lr=1e-3, max_grad_norm=1.0)
    result = train()
    assert result["steps"] == 40 and result["final_loss"] < math.log(2) + 0.1


class CountingDev:
    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, model: torch.nn.Module) -> float:
        self.calls += 1
        return 50.0


def test_a_weight_that_is_not_finite_at_an_evaluation_fails_before_it_is_scored(tiny_model, tiny_tokenizer):
    dev = CountingDev()
    method, _, train = fit(tiny_model, tiny_tokenizer, lr=1e-3, evaluate_dev=dev, eval_every=2)

    def poison_at_step_3(model: torch.nn.Module, step: int) -> None:
        if step == 3:  # the 4th step: the 2nd evaluation follows, the next loss would not be computed first
            with torch.no_grad():
                model.classifier.weight[0, 0] = math.inf

    method.after_optimizer_step = poison_at_step_3
    with pytest.raises(TrainingDiverged, match=r"a weight is not finite after step 4\): lower the learning rate"):
        train()
    assert dev.calls == 1  # the evaluation of step 2 ran; the broken weights of step 4 were never scored


def test_a_weight_that_is_not_finite_after_the_last_step_fails_without_a_dev_set(tiny_model, tiny_tokenizer):
    method, _, train = fit(tiny_model, tiny_tokenizer, lr=1e-3, epochs=1)

    def poison_last(model: torch.nn.Module, step: int) -> None:
        if step == 3:
            with torch.no_grad():
                model.classifier.bias[1] = math.nan

    method.after_optimizer_step = poison_last
    with pytest.raises(TrainingDiverged, match="not finite after step 4"):
        train()

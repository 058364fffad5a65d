"""Fitting the classifier layer in closed form on the frozen model's features, with scikit-learn.

The features are exactly what the model's classifier layer reads (the pooled head's mean, or BERT's pooler
output), taken in eval mode. Logistic regression (classification) or ridge (regression) on standardised
features, the regularisation chosen on the run's dev split from a grid; the fitted coefficients, with the
standardisation folded in, become the classifier layer. Used by the linear-probe and lp-ft methods, and to
start the cosine-similarity head (mixtune.heads) at the affine map from cosine to label that fits the data.
Each feature's scale is floored at a tenth of the median scale: MiniLM has a feature that is constant to 1e-32,
which plain standardisation gives a weight of 1e30 that any later change to the encoder (LP-FT's finetune,
dropout) turns into noise.
"""

from __future__ import annotations

import time
import warnings
from typing import Any

import numpy as np
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression, Ridge
from torch import nn

from mixtune.errors import MixtuneError
from mixtune.heads import classifier_inputs, classifier_layer
from mixtune.train import FitContext

SCALE_FLOOR = 0.1
DEFAULT_GRID = [1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0, 1000.0]


def fit_linear(features: np.ndarray, labels: np.ndarray, strength: float, regression: bool, num_labels: int):
    """(weight, bias) of a linear model on raw features: fitted on standardised ones, folded back in."""
    mean, scale = feature_scales(features)
    scaled = (features - mean) / scale
    if regression:
        model = Ridge(alpha=1.0 / strength).fit(scaled, labels)
        coef, intercept, classes = model.coef_[None, :], np.atleast_1d(model.intercept_), np.array([0])
    else:
        if len(np.unique(labels)) < 2:
            raise MixtuneError("the training examples hold a single label: a classifier needs at least two; draw more examples")
        model = LogisticRegression(C=strength, max_iter=2000).fit(scaled, labels)
        coef, intercept, classes = model.coef_, model.intercept_, model.classes_
        if len(classes) == 2:  # one score for class 1 against class 0: logits [0, s]
            classes = classes[1:]
    weight = np.zeros((num_labels, features.shape[1]))
    bias = np.zeros(num_labels)
    weight[classes] = coef / scale
    bias[classes] = intercept - (coef * mean / scale).sum(axis=1)
    return weight, bias


def feature_scales(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature mean and standard deviation, the deviation floored at SCALE_FLOOR x the median one."""
    std = features.std(axis=0)
    return features.mean(axis=0), np.maximum(std, SCALE_FLOOR * max(float(np.median(std)), 1e-12))


@torch.no_grad()
def set_classifier(model: nn.Module, weight: np.ndarray, bias: np.ndarray) -> None:
    layer = classifier_layer(model)
    layer.weight.copy_(torch.as_tensor(weight, dtype=layer.weight.dtype))
    layer.bias.copy_(torch.as_tensor(bias, dtype=layer.bias.dtype))


def fit_probe_head(model: nn.Module, ctx: FitContext, grid: list[float]) -> dict[str, Any]:
    """Set the classifier layer to the best linear probe on the frozen features; returns its log."""
    started = time.perf_counter()
    regression = model.config.num_labels == 1
    features = classifier_inputs(model, ctx.loader(shuffle=False)).double().numpy()
    labels = np.array([f["labels"] for f in ctx.features])
    scores = {}
    with warnings.catch_warnings():  # a weakly regularised fit may stop at max_iter: its dev score tells
        warnings.filterwarnings("ignore", category=ConvergenceWarning)
        for strength in grid:
            set_classifier(model, *fit_linear(features, labels, strength, regression, model.config.num_labels))
            scores[strength] = ctx.evaluate_dev(model) if ctx.evaluate_dev else 0.0
        chosen = max(grid, key=lambda s: (scores[s], -s))  # ties: the stronger regularisation
        set_classifier(model, *fit_linear(features, labels, chosen, regression, model.config.num_labels))
    return {"chosen": chosen, "dev_scores": scores, "seconds": time.perf_counter() - started}


def probe_phase(model: nn.Module, ctx: FitContext, grid: list[float]) -> nn.Module:
    """fit_probe_head as a run phase: its log and wall time go into the run record as "probe"."""
    ctx.log["probe"] = fit_probe_head(model, ctx, grid)
    ctx.phase_times["probe"] = ctx.log["probe"]["seconds"]
    return model


COSINE_HEAD_STRENGTH = 1000.0  # one feature, 300 examples: nearly unregularised


def start_cosine_head(model: nn.Module, ctx: FitContext) -> None:
    """The cosine head's affine map (cosine similarity -> label, or -> logits) fitted to the training
    examples on the pretrained encoder, before any method trains: from the data-free start (score = cosine)
    the map's scale (about 5 on STS-B's 0-5 labels) is out of reach of a finetuning learning rate."""
    ctx.log["head_start"] = fit_probe_head(model, ctx, [COSINE_HEAD_STRENGTH])
    ctx.phase_times["head_start"] = ctx.log["head_start"]["seconds"]

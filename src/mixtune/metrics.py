"""Task metrics with scikit-learn and scipy (evaluate.load needs the hub), and model evaluation."""

from __future__ import annotations

import numpy as np
import torch
from scipy.stats import pearsonr, spearmanr
from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef
from torch import nn
from torch.utils.data import DataLoader

from mixtune.data.examples import TaskSpec
from mixtune.device import forward_context, model_device, to_device


def _safe_corr(fn, predictions: np.ndarray, labels: np.ndarray) -> float:
    if np.std(predictions) == 0 or np.std(labels) == 0:
        return 0.0  # a constant prediction carries no correlation (scipy would return nan)
    return float(fn(predictions, labels)[0])


METRICS = {
    "accuracy": lambda p, y: float(accuracy_score(y, p)),
    "f1": lambda p, y: float(f1_score(y, p, zero_division=0)),
    "macro_f1": lambda p, y: float(f1_score(y, p, average="macro", zero_division=0)),
    "mcc": lambda p, y: float(matthews_corrcoef(y, p)),
    "spearman": lambda p, y: _safe_corr(spearmanr, p, y),
    "pearson": lambda p, y: _safe_corr(pearsonr, p, y),
}


def compute_metrics(spec: TaskSpec, predictions: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Every metric of the task, in percent (as GLUE tables report them)."""
    return {name: 100.0 * METRICS[name](predictions, labels) for name in spec.metrics}


@torch.no_grad()
def predict_logits(model: nn.Module, loader: DataLoader) -> tuple[np.ndarray, np.ndarray]:
    """(logits, labels) over a loader, in eval mode; the model's training mode is restored.

    Batches go to the model's device and run under the run's autocast; logits come back to the CPU.
    """
    was_training = model.training
    model.eval()
    device = model_device(model)
    logits, labels = [], []
    for batch in loader:
        labels.append(batch.pop("labels").cpu().numpy())
        with forward_context(scaled=True):  # no backward follows: fp16 autocast is safe
            output = model(**to_device(batch, device))
        logits.append(output.logits.float().cpu().numpy())
    model.train(was_training)
    return np.concatenate(logits), np.concatenate(labels)


def to_predictions(spec: TaskSpec, logits: np.ndarray) -> np.ndarray:
    return logits[:, 0] if spec.kind == "regression" else logits.argmax(axis=-1)


def evaluate_with_predictions(model: nn.Module, loader: DataLoader, spec: TaskSpec) -> tuple[dict[str, float], np.ndarray]:
    """The scores and the predictions they came from (in the loader's order): one forward pass gives both."""
    logits, labels = predict_logits(model, loader)
    predictions = to_predictions(spec, logits)
    scores = compute_metrics(spec, predictions, labels)
    if spec.kind == "classification":
        scores["constant_predictions"] = float(len(np.unique(predictions)) == 1)
    return scores, predictions


def evaluate(model: nn.Module, loader: DataLoader, spec: TaskSpec) -> dict[str, float]:
    """The scores alone, for callers that need no predictions (dev selection)."""
    return evaluate_with_predictions(model, loader, spec)[0]


def compact_predictions(spec: TaskSpec, predictions: np.ndarray) -> list[int] | list[float]:
    """Predictions as a run record keeps them: class indices, or regression values at 4 decimals (enough to
    compare seeds, a few bytes each)."""
    if spec.kind == "regression":
        return [round(float(p), 4) for p in predictions]
    return [int(p) for p in predictions]

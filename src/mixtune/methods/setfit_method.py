"""SetFit: what a practitioner with few labels would try instead of finetuning a classifier.

SetFit's own trainer finetunes the sentence-transformer body contrastively (pairs of same/different
label examples, cosine-similarity loss), then fits a logistic-regression head on its embeddings.
It is not a loop of the shared kind, so fit() is overridden. Classification only.

Texts come back from the run's token ids (ctx holds encoded features): the non-special tokens of each
segment, decoded, with segments (sentence pairs) joined by the tokenizer's separator token. Evaluation
and `mixtune predict` call model(**batch).logits, so the trained model is wrapped in SetFitClassifier.
"""

from __future__ import annotations

import tempfile
import time
import warnings
from dataclasses import dataclass
from itertools import groupby
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn
from transformers import PreTrainedTokenizerBase, PrinterCallback, ProgressCallback
from transformers.modeling_outputs import SequenceClassifierOutput

from mixtune.device import model_device
from mixtune.errors import MixtuneError
from mixtune.methods.base import Method, register
from mixtune.models import resolve_model
from mixtune.train import FitContext

if TYPE_CHECKING:
    from setfit import SetFitModel


@dataclass
class SetFitHyperparameters:
    num_iterations: int = 5  # pair-drawing rounds: 2 * num_iterations * n pairs (one positive, one negative each)


def import_setfit() -> ModuleType:
    """setfit is an optional dependency and slow to import: only setfit runs load it."""
    try:
        import setfit
    except ImportError:
        raise MixtuneError("method setfit needs the setfit package: pip install 'mixtune[setfit]'") from None
    return setfit


def token_text(tokenizer: PreTrainedTokenizerBase, input_ids: list[int]) -> str:
    """The text an encoded example came from, segments joined by the separator token."""
    special = tokenizer.get_special_tokens_mask(input_ids, already_has_special_tokens=True)
    runs = groupby(zip(input_ids, special), key=lambda pair: pair[1])
    segments = [[token for token, _ in run] for is_special, run in runs if not is_special]
    return f" {tokenizer.sep_token} ".join(tokenizer.decode(segment) for segment in segments)


class SetFitClassifier(nn.Module):
    """A SetFit model behind the sequence-classification interface: logits = log of its probabilities."""

    def __init__(self, setfit_model: SetFitModel) -> None:
        super().__init__()
        self.setfit_model = setfit_model
        self.body = setfit_model.model_body  # a registered submodule, so train() and eval() reach it

    def forward(self, input_ids: torch.Tensor, **_: Any) -> SequenceClassifierOutput:
        texts = [token_text(self.body.tokenizer, ids) for ids in input_ids.tolist()]
        probabilities = self.setfit_model.predict_proba(texts, as_numpy=True, show_progress_bar=False)
        full = np.zeros((len(texts), len(self.setfit_model.labels)))
        full[:, self.setfit_model.model_head.classes_] = probabilities  # labels absent from training keep 0
        return SequenceClassifierOutput(logits=torch.from_numpy(np.log(np.maximum(full, 1e-12))).float())


@register
class SetFit(Method):
    """SetFit on the run's backbone (a local folder needs no hub access).

    Defaults chosen to keep CPU cost near a few vanilla runs: 5 iterations (10 pairs per example),
    1 epoch, the run's batch size (16), body lr 2e-5 (SetFit's own), max length from the run config.
    """

    name = "setfit"
    Hyperparameters = SetFitHyperparameters
    default_lr = 2e-5
    default_epochs = 1
    supports_regression = False
    full_finetuning = False

    def fit(self, model: nn.Module, ctx: FitContext) -> nn.Module:
        setfit = import_setfit()
        import datasets  # a dependency of setfit

        setfit.logging.set_verbosity_warning()
        labels = [model.config.id2label[i] for i in range(model.config.num_labels)]
        # on the run's device; SetFit's own trainer (transformers') keeps its own precision (fp32)
        setfit_model = setfit.SetFitModel.from_pretrained(
            resolve_model(self.config.model), labels=labels, device=str(model_device(model))
        )
        dataset = datasets.Dataset.from_dict({
            "text": [token_text(ctx.tokenizer, f["input_ids"]) for f in ctx.features],
            "label": [f["labels"] for f in ctx.features],
        })
        with tempfile.TemporaryDirectory() as scratch:
            args = setfit.TrainingArguments(
                output_dir=scratch,
                num_iterations=self.hp.num_iterations,
                num_epochs=(self.epochs, 1),
                batch_size=self.config.train.batch_size,
                body_learning_rate=self.lr,
                max_length=self.config.train.max_length,
                seed=ctx.seed,
                report_to="none",
                save_strategy="no",
                logging_strategy="steps" if ctx.progress else "no",
                show_progress_bar=ctx.progress,
            )
            if not ctx.progress:
                datasets.disable_progress_bars()  # the model card's dataset statistics
            trainer = setfit.Trainer(model=setfit_model, args=args, train_dataset=dataset)
            if not ctx.progress:
                trainer.st_trainer.remove_callback(ProgressCallback)
                trainer.st_trainer.remove_callback(PrinterCallback)
            started = time.perf_counter()
            with warnings.catch_warnings():  # the trainer asks for pinned memory even without an accelerator
                warnings.filterwarnings("ignore", message="'pin_memory' argument is set as true")
                trainer.train()
        state = trainer.st_trainer.state
        ctx.phase_times["finetune"] = time.perf_counter() - started
        ctx.log["finetune"] = {"steps": state.global_step, "train_loss": state.log_history[-1]["train_loss"]}
        return SetFitClassifier(setfit_model)

    def save(self, model: nn.Module, directory: Path, tokenizer: Any) -> nn.Module:
        """SetFit's own folder: the sentence-transformer (with its tokenizer) and the pickled head."""
        model.setfit_model.save_pretrained(directory)
        return model

    @classmethod
    def load_saved(cls, directory: Path) -> nn.Module:
        return SetFitClassifier(import_setfit().SetFitModel.from_pretrained(str(directory)))

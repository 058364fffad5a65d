"""Dev evaluation in the shared loop costs nothing where nothing uses it, and never changes what trains."""

from __future__ import annotations

import torch
from transformers import AutoModelForSequenceClassification

from mixtune.config import build_config
from mixtune.methods import make_method
from mixtune.train import FitContext, dev_evaluator, train_loop

from .conftest import random_features


class CountingDev:
    """A dev evaluator that counts its calls and, like a DataLoader pass, draws from the global generator."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, model: torch.nn.Module) -> float:
        self.calls += 1
        torch.rand(1)
        return float(self.calls)


def train(model_dir, tokenizer, **train_values):
    """Three epochs (12 steps) of vanilla on random features, the tiny BERT's dropout on; (result, dev, model)."""
    config = build_config({"method": "vanilla", "train": {"batch_size": 8, "lr": 1e-3, **train_values}})
    dev = CountingDev()
    model = AutoModelForSequenceClassification.from_pretrained(model_dir)
    ctx = FitContext(random_features(32), tokenizer, config, 0, progress=False, evaluate_dev=dev)
    torch.manual_seed(0)
    result = train_loop(model, ctx.loader(), make_method(config), 1e-3, 3, ctx, desc="test")
    return result, dev, model


def test_select_last_without_eval_every_evaluates_nothing(tiny_bert_dir, tiny_tokenizer):
    result, dev, _ = train(tiny_bert_dir, tiny_tokenizer, select="last")
    assert dev.calls == 0 and result == {**result, "select": "last"} and "dev_curve" not in result


def test_dev_is_evaluated_where_something_uses_it(tiny_bert_dir, tiny_tokenizer):
    config = build_config({"train": {"select": "last"}}).train
    dev = CountingDev()
    assert dev_evaluator(config, dev) is None
    for values in ({"select": "best-dev"}, {"select": "last", "eval_every": 5}, {"select": "last", "patience": 3}):
        assert dev_evaluator(build_config({"train": values}).train, dev) is dev
    result, dev, _ = train(tiny_bert_dir, tiny_tokenizer, select="best-dev")  # twice per epoch
    assert dev.calls == 6 and len(result["dev_curve"]) == 6


def test_how_often_dev_is_scored_does_not_change_the_trained_weights(tiny_bert_dir, tiny_tokenizer):
    _, dev, evaluated = train(tiny_bert_dir, tiny_tokenizer, select="last", eval_every=2)
    _, _, plain = train(tiny_bert_dir, tiny_tokenizer, select="last")
    assert dev.calls == 6
    for (name, got), (_, expected) in zip(evaluated.named_parameters(), plain.named_parameters()):
        assert torch.equal(got, expected), name


def test_a_file_of_exactly_n_labels_trains_on_all_of_them_when_nothing_reads_dev(tiny_model_dir, tmp_path):
    """Issue 32's "only the n labels": select last draws no dev split it would not use; best-dev asks for n/6 more."""
    import json

    import pytest

    from mixtune.errors import MixtuneError
    from mixtune.run import run

    from ..conftest import WORDS

    rows = [{"text": f"{WORDS[i % len(WORDS)]} {WORDS[(3 * i) % len(WORDS)]}", "label": "ab"[i % 2]} for i in range(24)]
    for name, part in (("train", rows[:18]), ("test", rows[18:])):
        (tmp_path / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in part))
    values = {
        "method": "vanilla", "model": str(tiny_model_dir), "output_dir": str(tmp_path / "run"),
        "data": {"train_file": str(tmp_path / "train.jsonl"), "test_file": str(tmp_path / "test.jsonl"),
                 "text_columns": ["text"], "train_size": 18},
        "train": {"epochs": 1, "batch_size": 6},
    }
    record = run(build_config(values), progress=False)
    assert sorted(record["indices"]["train"]) == list(range(18)) and record["indices"]["dev"] == []
    assert "dev" not in record["metrics"] and "test" in record["metrics"]
    values["train"]["select"] = "best-dev"
    with pytest.raises(MixtuneError, match="train size 18 plus dev 3 exceeds the 18 examples"):
        run(build_config({**values, "output_dir": str(tmp_path / "best-dev")}), progress=False)

"""SetFit: texts recovered from token ids, offline training and prediction, classification only."""

from pathlib import Path

import pytest
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from mixtune.cli import main
from mixtune.config import build_config
from mixtune.data.batching import make_loader
from mixtune.methods import make_method
from mixtune.methods.setfit_method import SetFit, token_text
from mixtune.models import default_model_path
from mixtune.train import FitContext

GLUE_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "glue"
POSITIVE = ["a wonderful, moving film", "great acting and a lovely story", "i loved every minute", "brilliant and funny"]
NEGATIVE = ["a dull, boring mess", "terrible acting and an awful plot", "i hated every minute", "tedious and stupid"]


@pytest.fixture(scope="module")
def minilm_tokenizer():
    return AutoTokenizer.from_pretrained(default_model_path())


def test_token_text_joins_pairs_with_the_separator_and_round_trips(minilm_tokenizer):
    first, second = "The cat sat on the mat, didn't it?", "A cat is sitting."
    ids = minilm_tokenizer(first, second)["input_ids"]
    text = token_text(minilm_tokenizer, ids)
    assert text.startswith("the cat sat on the mat") and text.endswith(" [SEP] a cat is sitting.")
    assert minilm_tokenizer(text)["input_ids"] == ids
    padded = ids + [minilm_tokenizer.pad_token_id] * 3
    assert token_text(minilm_tokenizer, padded) == text


@pytest.mark.integration
def test_setfit_trains_and_predicts_offline_with_the_local_minilm(minilm_tokenizer, no_network, tmp_path):
    texts, labels = POSITIVE + NEGATIVE, [1] * 4 + [0] * 4
    encoded = minilm_tokenizer(texts)
    features = [{k: v[i] for k, v in encoded.items()} | {"labels": labels[i]} for i in range(len(texts))]
    config = build_config({"method": "setfit", "method_args": {"num_iterations": 2}, "train": {"batch_size": 8}})
    ctx = FitContext(features, minilm_tokenizer, config, seed=1, progress=False)
    model = AutoModelForSequenceClassification.from_pretrained(
        default_model_path(), num_labels=2, id2label={0: "negative", 1: "positive"}
    )
    classifier = make_method(config).fit(model, ctx)
    batch = next(iter(make_loader(features, minilm_tokenizer, 8, shuffle=False)))
    batch.pop("labels")
    logits = classifier(**batch).logits
    assert logits.shape == (8, 2)
    assert (logits.argmax(-1) == torch.tensor(labels)).float().mean() >= 0.75
    make_method(config).save(classifier, tmp_path, minilm_tokenizer)
    torch.testing.assert_close(SetFit.load_saved(tmp_path)(**batch).logits, logits)
    assert no_network == []


def test_setfit_refuses_regression_tasks(tmp_path, capsys):
    if not GLUE_DIR.is_dir():
        pytest.skip(f"GLUE data not found at {GLUE_DIR}")
    args = ["--task", "stsb", "--data-dir", str(GLUE_DIR), "--quiet", "--output-dir", str(tmp_path / "o")]
    code = main(["train", "--method", "setfit", *args])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "method 'setfit' does not support regression tasks" in err and len(err.splitlines()) == 1

"""An exported model folder cannot load wrong: with plain transformers and no trust_remote_code it either loads
natively and right (the architecture's own head) or refuses, naming trust_remote_code=True; with it, it predicts
exactly what the model in memory predicted."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

from mixtune.data.examples import TaskSpec
from mixtune.models import load_model
from mixtune.modeling_mixtune import BACKBONE_TYPE_KEY, POOLED_MODEL_TYPE

PAIRS = TaskSpec("toy", "classification", ["a", "b"], ["no", "yes"], ["accuracy"])


def export(model_dir, tmp_path, pooling: str, pairs: str = "joint"):
    """(in-memory model in eval mode, exported folder, a pair batch) for a fresh head on the tiny BERT."""
    tokenizer, model, _ = load_model(str(model_dir), PAIRS, seed=3, pooling=pooling, pair_encoding=pairs)
    folder = tmp_path / "export"
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    batch = tokenizer(["the cat sat", "a dog is good"], ["very bad", "the movie"], padding=True, return_tensors="pt")
    return model.eval(), folder, batch


@torch.no_grad()
def logits(model, batch) -> torch.Tensor:
    return model(**batch).logits


@pytest.mark.parametrize("pooling,pairs", [("mean", "joint"), ("max", "joint"), ("mean", "separate"), ("mean", "cosine")])
def test_a_pooled_export_refuses_without_trust_remote_code_and_is_exact_with_it(tiny_model_dir, tmp_path, pooling, pairs):
    model, folder, batch = export(tiny_model_dir, tmp_path, pooling, pairs)
    config = json.loads((folder / "config.json").read_text())
    assert config["model_type"] == POOLED_MODEL_TYPE and config[BACKBONE_TYPE_KEY] == "bert"
    for trust in ({}, {"trust_remote_code": False}):  # unset: transformers' own refusal (no terminal to ask on)
        with pytest.raises(ValueError, match="trust_remote_code=True"):
            AutoModelForSequenceClassification.from_pretrained(folder, **trust)
        with pytest.raises(ValueError, match="trust_remote_code=True"):
            AutoConfig.from_pretrained(folder, **trust)
    reloaded = AutoModelForSequenceClassification.from_pretrained(folder, trust_remote_code=True).eval()
    torch.testing.assert_close(logits(reloaded, batch), logits(model, batch), rtol=0, atol=1e-6)
    tokenizer = AutoTokenizer.from_pretrained(folder)  # the tokenizer needs no trust
    again = tokenizer(["the cat sat", "a dog is good"], ["very bad", "the movie"], padding=True, return_tensors="pt")
    assert torch.equal(again["input_ids"], batch["input_ids"])


def test_the_architectures_own_head_loads_natively_and_exactly(tiny_model_dir, tmp_path):
    model, folder, batch = export(tiny_model_dir, tmp_path, "cls")
    reloaded = AutoModelForSequenceClassification.from_pretrained(folder).eval()  # no trust_remote_code: none needed
    assert type(reloaded).__name__ == "BertForSequenceClassification"
    assert not (folder / "modeling_mixtune.py").exists()
    torch.testing.assert_close(logits(reloaded, batch), logits(model, batch), rtol=0, atol=1e-6)


def test_a_reloaded_export_saves_again_as_an_export(tiny_model_dir, tmp_path):
    model, folder, batch = export(tiny_model_dir, tmp_path, "mean")
    again = tmp_path / "again"
    AutoModelForSequenceClassification.from_pretrained(folder, trust_remote_code=True).save_pretrained(again)
    config = json.loads((again / "config.json").read_text())
    assert config["model_type"] == POOLED_MODEL_TYPE and config[BACKBONE_TYPE_KEY] == "bert"
    with pytest.raises(ValueError, match="trust_remote_code=True"):
        AutoModelForSequenceClassification.from_pretrained(again, trust_remote_code=False)
    reloaded = AutoModelForSequenceClassification.from_pretrained(again, trust_remote_code=True).eval()
    torch.testing.assert_close(logits(reloaded, batch), logits(model, batch), rtol=0, atol=1e-6)


def test_an_export_from_before_the_pooled_model_type_still_loads(tiny_model_dir, tmp_path):
    """Folders exported earlier name the backbone's model_type and only the model class in auto_map."""
    model, folder, batch = export(tiny_model_dir, tmp_path, "mean")
    config = json.loads((folder / "config.json").read_text())
    config["model_type"] = config.pop(BACKBONE_TYPE_KEY)
    del config["auto_map"]["AutoConfig"]
    (folder / "config.json").write_text(json.dumps(config))
    reloaded = AutoModelForSequenceClassification.from_pretrained(folder, trust_remote_code=True).eval()
    torch.testing.assert_close(logits(reloaded, batch), logits(model, batch), rtol=0, atol=1e-6)

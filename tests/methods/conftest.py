"""Fixtures for the baseline methods: a tiny random BERT saved with a tiny tokenizer, random batches."""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from transformers import (
    AutoModelForSequenceClassification,
    AutoTokenizer,
    BertConfig,
    BertForSequenceClassification,
    BertTokenizer,
)

from mixtune.config import build_config
from mixtune.methods import Method, make_method
from mixtune.train import FitContext, train_loop

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [f"w{i}" for i in range(95)]
CLS, SEP = 2, 3


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory) -> Path:
    """A saved 2-layer, 16-wide BERT (vocabulary 100): peft adapters record this path as their base."""
    directory = tmp_path_factory.mktemp("methods-tiny-bert")
    (directory / "vocab.txt").write_text("\n".join(VOCAB) + "\n")
    BertTokenizer(str(directory / "vocab.txt")).save_pretrained(directory)
    torch.manual_seed(0)
    config = BertConfig(vocab_size=100, hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32)
    BertForSequenceClassification(config).save_pretrained(directory)
    return directory


@pytest.fixture
def tiny_model(tiny_bert_dir) -> BertForSequenceClassification:
    return AutoModelForSequenceClassification.from_pretrained(tiny_bert_dir)


@pytest.fixture(scope="session")
def tiny_tokenizer(tiny_bert_dir):
    return AutoTokenizer.from_pretrained(tiny_bert_dir)


def random_features(n: int, seed: int = 0) -> list[dict]:
    generator = torch.Generator().manual_seed(seed)
    features = []
    for i in range(n):
        length = int(torch.randint(4, 12, (1,), generator=generator))
        ids = [CLS, *torch.randint(5, 100, (length,), generator=generator).tolist(), SEP]
        features.append({"input_ids": ids, "token_type_ids": [0] * len(ids), "attention_mask": [1] * len(ids), "labels": i % 2})
    return features


@pytest.fixture
def make_run(tiny_tokenizer) -> Callable[..., tuple[Method, FitContext]]:
    """(method, ctx) for a method name on n random examples; train settings as keyword arguments."""

    def make(method: str, n: int = 32, seed: int = 0, method_args: dict | None = None, **train) -> tuple[Method, FitContext]:
        values = {"method": method, "seed": seed, "method_args": method_args or {}, "train": {"batch_size": 8, **train}}
        config = build_config(values)
        return make_method(config), FitContext(random_features(n, seed), tiny_tokenizer, config, seed, progress=False)

    return make


@pytest.fixture
def train() -> Callable[[Method, torch.nn.Module, FitContext], torch.nn.Module]:
    """prepare + the shared loop, as Method.fit does, returning the (possibly wrapped) model."""

    def run(method: Method, model: torch.nn.Module, ctx: FitContext) -> torch.nn.Module:
        model = method.prepare(model, ctx)
        train_loop(model, ctx.loader(), method, method.lr, method.epochs, ctx, desc="test")
        return model

    return run


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to resolve or connect fails loudly: proves a step needs no hub access."""
    attempts: list = []

    def refuse(*args, **kwargs):
        attempts.append(args)
        raise OSError("network access attempted in an offline test")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    return attempts

"""Shared fixtures: tiny randomly initialised BERTs built in the test, and the GLUE folder beside the repo."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import BertConfig, BertForSequenceClassification, BertTokenizer

REPO = Path(__file__).resolve().parents[1]
GLUE_DIR = REPO.parent / "shared" / "data" / "glue"
WORDS = "the a cat dog sat on mat is not good bad movie film very it was and".split()


def tiny_bert(num_labels: int = 2, seed: int = 0, dtype: torch.dtype = torch.float32) -> BertForSequenceClassification:
    """A 2-layer, 16-wide BERT with no dropout, so forward passes are deterministic."""
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=60, hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32,
        max_position_embeddings=64, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, num_labels=num_labels,
    )
    config._attn_implementation = "eager"  # forward-mode AD (torch.func.jvp) has no SDPA kernel on CPU
    return BertForSequenceClassification(config).to(dtype)


def tiny_batch(batch_size: int = 4, length: int = 7, num_labels: int = 2, seed: int = 0) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return {
        "input_ids": torch.randint(5, 60, (batch_size, length), generator=generator),
        "attention_mask": torch.ones(batch_size, length, dtype=torch.long),
        "labels": torch.randint(0, num_labels, (batch_size,), generator=generator),
    }


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A saved tiny BERT with a real (tiny) WordPiece tokenizer: the full run path in seconds."""
    directory = tmp_path_factory.mktemp("tiny-bert")
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]
    (directory / "vocab.txt").write_text("\n".join(vocab) + "\n")
    BertTokenizer(str(directory / "vocab.txt")).save_pretrained(directory)
    model = tiny_bert()
    model.config.vocab_size = 60
    model.save_pretrained(directory)
    return directory


@pytest.fixture(scope="session")
def glue_dir() -> Path:
    if not GLUE_DIR.is_dir():
        pytest.skip(f"GLUE data not found at {GLUE_DIR}")
    return GLUE_DIR


def pytest_collection_modifyitems(config, items) -> None:
    """Tests marked gpu need CUDA: without a GPU they are skipped, saying why (the CPU suite stays green)."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason=f"needs a CUDA GPU (torch {torch.__version__} sees none)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)

"""Fixtures shared by the search tests."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def dropout_model_dir(tiny_model_dir, tmp_path_factory) -> Path:
    """The tiny BERT with dropout, so a search's result depends on the RNG state it draws from."""
    directory = tmp_path_factory.mktemp("tiny-bert-dropout")
    shutil.copytree(tiny_model_dir, directory, dirs_exist_ok=True)
    config = json.loads((directory / "config.json").read_text())
    config.update(hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1)
    (directory / "config.json").write_text(json.dumps(config))
    return directory

"""Tokenisation and DataLoaders: dynamic padding, seeded shuffling."""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader
from transformers import DataCollatorWithPadding, PreTrainedTokenizerBase

from mixtune.data.examples import Examples


def encode(examples: Examples, tokenizer: PreTrainedTokenizerBase, max_length: int, regression: bool) -> list[dict]:
    """One feature dict per example (texts tokenised once, truncated to max_length)."""
    columns = list(zip(*examples.texts)) if examples.texts else [[]]
    encoded = tokenizer(*[list(c) for c in columns], truncation=True, max_length=max_length)
    label_type = float if regression else int
    return [
        {**{key: values[i] for key, values in encoded.items()}, "labels": label_type(examples.labels[i])}
        for i in range(len(examples))
    ]


def make_loader(
    features: list[dict], tokenizer: PreTrainedTokenizerBase, batch_size: int, shuffle: bool, seed: int = 0
) -> DataLoader:
    generator = torch.Generator().manual_seed(seed) if shuffle else None
    return DataLoader(
        features,
        batch_size=batch_size,
        shuffle=shuffle,
        generator=generator,
        collate_fn=DataCollatorWithPadding(tokenizer),
    )

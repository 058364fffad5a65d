"""Tokenisation and DataLoaders: dynamic padding, seeded shuffling."""

from __future__ import annotations

import sys

import torch
from torch.utils.data import DataLoader
from transformers import DataCollatorWithPadding, PreTrainedTokenizerBase

from mixtune.data.examples import Examples

SANE_TOKENIZER_LIMIT = 1_000_000  # tokenizers with no known limit report int(1e30)


def encode(examples: Examples, tokenizer: PreTrainedTokenizerBase, max_length: int, regression: bool) -> list[dict]:
    """One feature dict per example (texts tokenised once, truncated to max_length)."""
    columns = list(zip(*examples.texts)) if examples.texts else [[]]
    encoded = tokenizer(*[list(c) for c in columns], truncation=True, max_length=max_length)
    label_type = float if regression else int
    return [
        {**{key: values[i] for key, values in encoded.items()}, "labels": label_type(examples.labels[i])}
        for i in range(len(examples))
    ]


def clamp_max_length(max_length: int, tokenizer: PreTrainedTokenizerBase, model: torch.nn.Module, reserved: int = 0) -> int:
    """max_length, or the model's input limit when that is smaller (a notice on stderr says so).

    Past the limit the position embeddings run out and the first long text crashes the run mid-way.
    `reserved`: positions a method adds in front of the text (prompt and prefix tuning's virtual tokens).
    """
    limit = input_limit(tokenizer, model)
    if limit is not None:
        limit -= reserved
    if limit is None or max_length <= limit:
        return max_length
    print(f"mixtune: note: max_length {max_length} is more than the model takes: using {limit}", file=sys.stderr)
    return limit


def input_limit(tokenizer: PreTrainedTokenizerBase, model: torch.nn.Module) -> int | None:
    """The longest input in tokens: the tokenizer's model_max_length when it is set (not its huge
    placeholder), and the model's position embeddings less the offset of models that count from padding_idx
    (RoBERTa, MPNet: 514 embeddings, 512 positions); the smaller of the two, None when neither is known."""
    limits = []
    if 0 < getattr(tokenizer, "model_max_length", 0) < SANE_TOKENIZER_LIMIT:
        limits.append(int(tokenizer.model_max_length))
    positions = getattr(getattr(model, "config", None), "max_position_embeddings", None)
    if isinstance(positions, int) and positions > 0:
        limits.append(positions - position_offset(model))
    return min(limits) if limits else None


def position_offset(model: torch.nn.Module) -> int:
    """Positions taken by padding: padding_idx + 1 where the position embedding has a padding_idx, else 0."""
    for name, module in model.named_modules():
        if name.endswith("position_embeddings") and getattr(module, "padding_idx", None) is not None:
            return module.padding_idx + 1
    return 0


def length_order(features: list[dict]) -> list[int]:
    """Indices of the features from shortest to longest (stable): by_length's order, so results computed in it
    can be put back in example order."""
    return sorted(range(len(features)), key=lambda i: len(features[i]["input_ids"]))


def by_length(features: list[dict]) -> list[dict]:
    """Features in order of length: evaluation batches then pad little (metrics do not depend on order)."""
    return [features[i] for i in length_order(features)]


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

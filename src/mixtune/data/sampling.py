"""Low-resource subsampling (METHOD.md section 4) and the random splits of the search phase.

Both depend only on the seed and the pool size, never on the method, so runs are paired across methods.
"""

from __future__ import annotations

import numpy as np

from mixtune.errors import MixtuneError


def dev_size_for(train_size: int) -> int:
    return max(1, train_size // 6)


def low_resource_indices(pool_size: int, train_size: int | None, seed: int) -> tuple[list[int], list[int]]:
    """(train, dev) indices into the pool: n drawn uniformly with the seed, then n/6 more for dev.

    train_size None takes the whole pool but a dev split of one seventh (the same 6:1 ratio).
    """
    if train_size is None:
        train_size = pool_size - max(1, pool_size // 7)
    dev_size = dev_size_for(train_size)
    if train_size + dev_size > pool_size:
        raise MixtuneError(
            f"train size {train_size} plus dev {dev_size} exceeds the {pool_size} examples of the training pool: "
            f"use --train-size {max(1, pool_size * 6 // 7)} or less"
        )
    order = np.random.default_rng(seed).permutation(pool_size)
    return order[:train_size].tolist(), order[train_size : train_size + dev_size].tolist()


def random_split(size: int, ratio: float, seed: int) -> tuple[list[int], list[int]]:
    """A random (ratio, 1 - ratio) split of range(size): the search phase's D_tr / D_val."""
    n_first = int(round(ratio * size))
    if n_first < 1 or size - n_first < 1:
        need = int(np.ceil(max(1 / ratio, 1 / (1 - ratio))))
        raise MixtuneError(
            f"train size {size} is too small to split {ratio:.0%}/{1 - ratio:.0%} for the search phase: use at least {need} examples"
        )
    order = np.random.default_rng(seed).permutation(size)
    return sorted(order[:n_first].tolist()), sorted(order[n_first:].tolist())

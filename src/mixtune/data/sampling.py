"""Low-resource subsampling (docs/method.md section 4) and the random splits of the search phase.

Both depend only on the seed and the pool size, never on the method, so runs are paired across methods.
"""

from __future__ import annotations

import itertools

import numpy as np

from mixtune.errors import MixtuneError


def dev_size_for(train_size: int) -> int:
    return max(1, train_size // 6)


def low_resource_indices(
    pool_size: int, train_size: int | None, seed: int, dev_needed: bool = True
) -> tuple[list[int], list[int]]:
    """(train, dev) indices into the pool: n drawn uniformly with the seed, then n/6 more for dev.

    train_size None takes the whole pool but a dev split of one seventh (the same 6:1 ratio).
    dev_needed False (nothing in the run reads dev scores: issue 32's "only the n labels") asks for no extra
    labels: train_size None takes the whole pool, and a pool too small for the dev split gives a shorter or empty
    one. The train indices are the same either way, and so is dev wherever the pool holds it.
    """
    if pool_size < (2 if dev_needed else 1):
        raise MixtuneError(
            f"the training pool has {pool_size} example{'s' if pool_size != 1 else ''}: "
            + ("a run needs at least 2 (one to train on, one for dev)" if dev_needed else "a run needs at least 1")
        )
    order = np.random.default_rng(seed).permutation(pool_size)
    if train_size is None and not dev_needed:
        return order.tolist(), []
    if train_size is None:
        train_size = pool_size - max(1, pool_size // 7)
    dev_size = dev_size_for(train_size)
    if dev_needed and train_size + dev_size > pool_size:
        raise MixtuneError(
            f"train size {train_size} plus dev {dev_size} exceeds the {pool_size} examples of the training pool: use "
            f"--train-size {max(1, pool_size * 6 // 7)} or less, or no setting that reads dev (such as best-dev)"
        )
    if train_size > pool_size:
        raise MixtuneError(
            f"train size {train_size} exceeds the {pool_size} examples of the training pool: "
            f"use --train-size {pool_size} or less"
        )
    return order[:train_size].tolist(), order[train_size : train_size + dev_size].tolist()


def random_split(size: int, ratio: float, seed: int) -> tuple[list[int], list[int]]:
    """A random (ratio, 1 - ratio) split of range(size): the search phase's D_tr / D_val."""
    n_first = first_part(size, ratio)
    if n_first < 1 or size - n_first < 1:
        raise MixtuneError(
            f"train size {size} is too small to split {ratio:.0%}/{1 - ratio:.0%} for the search phase: "
            f"use at least {min_split_size(ratio)} examples"
        )
    order = np.random.default_rng(seed).permutation(size)
    return sorted(order[:n_first].tolist()), sorted(order[n_first:].tolist())


def first_part(size: int, ratio: float) -> int:
    """The size of D_tr: the one rounding rule that both the split and its minimum use."""
    return int(round(ratio * size))


def min_split_size(ratio: float) -> int:
    """The smallest set whose split leaves both parts non-empty, counted with the split's own rounding.

    A formula such as ceil(1 / (1 - ratio)) is off by floating point: 1 / (1 - 0.8) is 5.000000000000001.
    """
    return next(size for size in itertools.count(2) if 1 <= first_part(size, ratio) <= size - 1)

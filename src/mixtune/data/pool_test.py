"""An opt-in second scored split, "pool_test": a larger test set drawn from the training pool.

The official dev set of a task such as SST-2 (872 examples) is small enough that test-set sampling dominates
the variance of a paired method comparison. The training pool is far larger than any low-resource subset, so a
test set of thousands of examples can be taken from it. How it is drawn, and why the existing runs stay as they are:

- The seed's train and dev indices are drawn first, exactly as without this option (low_resource_indices), so
  they are bit-identical to runs made before it.
- A fixed permutation P of the pool is drawn with POOL_TEST_SEED, a stream of its own that no run seed touches.
  The pool_test of seed s is the first K entries of P that are not among s's train and dev indices, nor repeat
  the text of one of them: disjoint from the examples that seed trained and selected on, by construction.
- It depends only on the pool, K and the seed (never on the method), so every method of a seed scores the
  same examples and the comparison stays paired. Two seeds' sets overlap in most examples but not all: each
  seed's set skips that seed's own train and dev examples.

It is not GLUE dev and not the same distribution: SST-2's pool holds the phrases of its parse trees (9.4 words on
average against dev's 19.5 full-sentence words), and a pool_test phrase can be part of a training phrase (about 3%
of them at n=300, 8% at n=1000): only exact copies are excluded.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import replace

import numpy as np

from mixtune.config import DataConfig
from mixtune.data.examples import Examples, TaskData
from mixtune.data.sampling import low_resource_indices
from mixtune.errors import MixtuneError

POOL_TEST_SPLIT = "pool_test"
POOL_TEST_SEED = 0x706F6F6C  # "pool" in ASCII: fixed, and far from the small seeds runs use


def pool_test_indices(pool_size: int, excluded: Collection[int], size: int) -> list[int]:
    """The first `size` entries of the fixed permutation that are not `excluded`, sorted."""
    excluded = np.fromiter(set(excluded), dtype=np.int64)
    available = pool_size - len(excluded)
    if size > available:
        fix = f"use --pool-test-size {available} or less" if available > 0 else "use a smaller --train-size"
        raise MixtuneError(
            f"pool test size {size} exceeds the {available} of the {pool_size} training-pool examples outside this "
            f"seed's train and dev: {fix}"
        )
    order = np.random.default_rng(POOL_TEST_SEED).permutation(pool_size)
    free = order[~np.isin(order, excluded)]
    return np.sort(free[:size]).tolist()


def seen_in_training(examples: Examples, train_idx: Sequence[int], dev_idx: Sequence[int]) -> set[int]:
    """The train and dev indices, and every other pool index whose text is one of theirs (a pool can repeat a
    text: SST-2's has 371 repeats), so that no pool_test example is a copy of one the run trained or selected on."""
    seen = {examples.texts[i] for i in (*train_idx, *dev_idx)}
    return {*train_idx, *dev_idx, *(i for i, text in enumerate(examples.texts) if text in seen)}


def with_pool_test(
    task: TaskData, size: int | None, train_idx: Sequence[int], dev_idx: Sequence[int]
) -> tuple[TaskData, list[int] | None]:
    """The task with a "pool_test" split added after its official test split(s), and that split's pool indices.

    With size None (the default) the task comes back unchanged and the indices are None.
    """
    if size is None:
        return task, None
    indices = pool_test_indices(len(task.pool), seen_in_training(task.pool, train_idx, dev_idx), size)
    sources = {
        **task.sources,
        f"test_{POOL_TEST_SPLIT}": (
            f"{size} examples of the training pool (data_sources train), the first of a fixed permutation "
            f"(seed {POOL_TEST_SEED}) that are not in this seed's train or dev nor repeat one of their texts"
        ),
        f"{POOL_TEST_SPLIT}_note": (
            f"{POOL_TEST_SPLIT} is {size} examples drawn from the training pool with a fixed seed, disjoint from each "
            "run seed's own train and dev examples and their texts (one set for all methods of a seed): NOT GLUE dev"
        ),
    }
    tests = {**task.tests, POOL_TEST_SPLIT: task.pool.subset(indices)}
    return replace(task, tests=tests, sources=sources), indices


def pool_test_of_seed(task: TaskData, data: DataConfig, seed: int) -> tuple[TaskData, list[int] | None]:
    """with_pool_test for a seed's own train and dev draw: how the report recovers a run's pool_test set, of which
    its record keeps only a hash. dev_needed False reproduces every run's draw, whether or not it read dev: the
    same dev wherever the pool holds it, and the shorter one a run without a use for dev took from a short pool."""
    train_idx, dev_idx = low_resource_indices(len(task.pool), data.train_size, seed, dev_needed=False)
    return with_pool_test(task, data.pool_test_size, train_idx, dev_idx)

"""A user's own data: CSV/TSV/JSONL files with named text column(s) and a label column."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mixtune.config import DataConfig
from mixtune.data.examples import Examples, TaskData, TaskSpec
from mixtune.data.readers import read_table
from mixtune.errors import MixtuneError

USER_TEST_FRACTION = 0.2
USER_TEST_SEED = 0


def _check_columns(rows: list[dict[str, str]], columns: list[str], path: str) -> None:
    present = list(rows[0])
    for column in columns:
        if column not in present:
            raise MixtuneError(
                f"{path} has no column {column!r} (it has {', '.join(present)}): set --text-columns / --label-column"
            )


def _label_names(rows: list[dict[str, str]], column: str) -> list[str]:
    names = sorted({row[column].strip() for row in rows})
    if len(names) < 2:
        raise MixtuneError(f"the training file's {column!r} column holds fewer than two labels: a classifier needs two or more")
    return names


def _to_examples(rows: list[dict[str, str]], spec: TaskSpec, label_column: str, path: str) -> Examples:
    texts, labels = [], []
    for number, row in enumerate(rows, start=1):
        raw = row[label_column].strip()
        if spec.kind == "regression":
            try:
                labels.append(float(raw))
            except ValueError:
                raise MixtuneError(f"{path} row {number}: label {raw!r} is not a number; regression needs numeric labels") from None
        else:
            if raw not in spec.label_names:
                raise MixtuneError(
                    f"{path} row {number}: label {raw!r} is not among the training labels {spec.label_names}: fix the label"
                )
            labels.append(spec.label_names.index(raw))
        texts.append(tuple(row[c] for c in spec.text_columns))
    return Examples(texts, labels)


def load_user_files(config: DataConfig) -> TaskData:
    """Train (+ optional dev/test) files; without a test file a fixed 20% test split is held out."""
    if not config.text_columns:
        raise MixtuneError("own data needs --text-columns naming one or two text columns, e.g. --text-columns sentence")
    if len(config.text_columns) > 2:
        raise MixtuneError("--text-columns takes one or two columns (a text, or a text pair)")
    train_rows = read_table(config.train_file)
    needed = [*config.text_columns, config.label_column]
    _check_columns(train_rows, needed, config.train_file)
    regression = config.task_type == "regression"
    spec = TaskSpec(
        name=Path(config.train_file).stem,
        kind=config.task_type,
        text_columns=list(config.text_columns),
        label_names=None if regression else _label_names(train_rows, config.label_column),
        metrics=["spearman", "pearson"] if regression else ["accuracy", "macro_f1"],
    )
    pool = _to_examples(train_rows, spec, config.label_column, config.train_file)
    sources = {"train": str(config.train_file)}

    def load(path: str) -> Examples:
        rows = read_table(path)
        _check_columns(rows, needed, path)
        return _to_examples(rows, spec, config.label_column, path)

    dev = load(config.dev_file) if config.dev_file else None
    if config.dev_file:
        sources["dev"] = str(config.dev_file)
    if config.test_file:
        tests = {"test": load(config.test_file)}
        sources["test_test"] = str(config.test_file)
    else:
        order = np.random.default_rng(USER_TEST_SEED).permutation(len(pool))
        n_test = max(1, int(round(USER_TEST_FRACTION * len(pool))))
        if len(pool) - n_test < 2:
            raise MixtuneError(f"{config.train_file} is too small to hold out a test split: give --test-file")
        tests = {"test": pool.subset(np.sort(order[:n_test]))}
        pool = pool.subset(np.sort(order[n_test:]))
        sources["test_test"] = f"held out of the training file ({n_test} examples, seed {USER_TEST_SEED})"
    return TaskData(spec, pool, tests, dev=dev, sources=sources)

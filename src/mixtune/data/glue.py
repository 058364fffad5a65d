"""The GLUE task registry and its loader (a local folder in the GLUE TSV layout, or the hub).

Where a folder has only a partial training pool (QQP, MNLI and QNLI train in ../shared/data/glue), the pool
is used as the training source; where it lacks the official dev file (QQP, MNLI), a fixed labelled test split
is held out of the pool and the run record says so: such numbers are not GLUE dev results.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mixtune.data.examples import Examples, TaskData, TaskSpec
from mixtune.data.readers import read_tsv
from mixtune.errors import MixtuneError

DATA_DIR_ENV = "MIXTUNE_DATA_DIR"
HELD_OUT_SEED = 0  # fixed, so every run and every method sees the same held-out test split
HELD_OUT_MAX = 2000


@dataclass(frozen=True)
class GlueTask:
    spec: TaskSpec
    folder: str
    label_column: str
    train_files: tuple[str, ...]  # first existing one wins; official file first
    test_files: dict[str, str]  # test-set name -> official dev file
    header: tuple[str, ...] | None = None  # column names for files with no header row
    hub_config: str = ""


def _spec(name, kind, texts, labels, metrics) -> TaskSpec:
    return TaskSpec(name=name, kind=kind, text_columns=list(texts), label_names=labels, metrics=list(metrics))


NLI2 = ["entailment", "not_entailment"]
GLUE_TASKS: dict[str, GlueTask] = {
    "cola": GlueTask(
        _spec("cola", "classification", ["sentence"], ["0", "1"], ["mcc", "accuracy"]),
        "CoLA", "label", ("train.tsv",), {"test": "dev.tsv"},
        header=("source", "label", "original_label", "sentence"), hub_config="cola",
    ),
    "sst2": GlueTask(
        _spec("sst2", "classification", ["sentence"], ["0", "1"], ["accuracy"]),
        "SST-2", "label", ("train.tsv",), {"test": "dev.tsv"}, hub_config="sst2",
    ),
    "mrpc": GlueTask(
        _spec("mrpc", "classification", ["#1 String", "#2 String"], ["0", "1"], ["f1", "accuracy"]),
        "MRPC", "Quality", ("train.tsv",), {"test": "dev.tsv"}, hub_config="mrpc",
    ),
    "stsb": GlueTask(
        _spec("stsb", "regression", ["sentence1", "sentence2"], None, ["spearman", "pearson"]),
        "STS-B", "score", ("train.tsv",), {"test": "dev.tsv"}, hub_config="stsb",
    ),
    "qqp": GlueTask(
        _spec("qqp", "classification", ["question1", "question2"], ["0", "1"], ["accuracy", "f1"]),
        "QQP", "is_duplicate", ("train.tsv", "train.subset.tsv", "train.pool_ppft.tsv"), {"test": "dev.tsv"},
        hub_config="qqp",
    ),
    "mnli": GlueTask(
        _spec("mnli", "classification", ["sentence1", "sentence2"], ["entailment", "neutral", "contradiction"], ["accuracy"]),
        "MNLI", "gold_label", ("train.tsv", "train.pool_ppft.tsv"),
        {"matched": "dev_matched.tsv", "mismatched": "dev_mismatched.tsv"}, hub_config="mnli",
    ),
    "qnli": GlueTask(
        _spec("qnli", "classification", ["question", "sentence"], NLI2, ["accuracy"]),
        "QNLI", "label", ("train.tsv", "train.pool_ppft.tsv"), {"test": "dev.tsv"}, hub_config="qnli",
    ),
    "rte": GlueTask(
        _spec("rte", "classification", ["sentence1", "sentence2"], NLI2, ["accuracy"]),
        "RTE", "label", ("train.tsv",), {"test": "dev.tsv"}, hub_config="rte",
    ),
}
ALIASES = {"sst-2": "sst2", "sts-b": "stsb", "mnli-m": "mnli"}


def glue_task(name: str) -> GlueTask:
    key = ALIASES.get(name.lower(), name.lower())
    if key not in GLUE_TASKS:
        raise MixtuneError(
            f"unknown task '{name}': choose one of {', '.join(GLUE_TASKS)}, or pass --train-file for your own data"
        )
    return GLUE_TASKS[key]


def _rows_to_examples(rows: list[dict[str, str]], task: GlueTask, path: Path) -> Examples:
    if not rows:
        raise MixtuneError(f"{path} has no examples (a header row only): give the task's file with its examples")
    spec = task.spec
    texts, labels = [], []
    for number, row in enumerate(rows, start=1):
        missing = [c for c in [*spec.text_columns, task.label_column] if c not in row]
        if missing:
            raise MixtuneError(f"{path} has no column {missing[0]!r}: it is not in the GLUE {task.folder} layout")
        texts.append(tuple(row[c] for c in spec.text_columns))
        labels.append(_parse_label(row[task.label_column].strip(), spec, f"{path} row {number}"))
    return Examples(texts, labels)


def _parse_label(raw: str, spec: TaskSpec, where: str) -> int | float:
    if spec.kind == "regression":
        try:
            return float(raw)
        except ValueError:
            raise MixtuneError(f"{where}: label {raw!r} is not a number; regression labels must be numeric") from None
    if raw not in spec.label_names:
        raise MixtuneError(f"{where}: label {raw!r} is not one of {spec.label_names}; fix the label or the task")
    return spec.label_names.index(raw)


def held_out_split(size: int, seed: int = HELD_OUT_SEED) -> tuple[np.ndarray, np.ndarray]:
    """(kept pool indices, held-out test indices): a fixed test split for pools with no official dev file."""
    order = np.random.default_rng(seed).permutation(size)
    n_test = min(HELD_OUT_MAX, size // 5)
    return np.sort(order[n_test:]), np.sort(order[:n_test])


def resolve_data_dir(data_dir: str | None) -> Path | None:
    value = data_dir or os.environ.get(DATA_DIR_ENV)
    return Path(value) if value else None


def load_glue(name: str, data_dir: str | None) -> TaskData:
    """A GLUE task from `data_dir` (or $MIXTUNE_DATA_DIR); from the hub when neither is set."""
    task = glue_task(name)
    root = resolve_data_dir(data_dir)
    if root is None:
        return _load_glue_from_hub(task)
    folder = root / task.folder
    if not root.is_dir():
        raise MixtuneError(f"data directory {root} does not exist: pass --data-dir pointing at a GLUE folder")
    if not folder.is_dir():
        raise MixtuneError(f"data directory {root} has no {task.folder}/ folder: pass a folder in the GLUE layout")
    train_path = next((folder / f for f in task.train_files if (folder / f).is_file()), None)
    if train_path is None:
        raise MixtuneError(f"{folder} has none of {', '.join(task.train_files)}: add the task's training file")
    pool = _rows_to_examples(read_tsv(train_path, list(task.header) if task.header else None), task, train_path)
    sources = {"train": str(train_path)}
    if train_path.name != "train.tsv":
        sources["train_note"] = "partial training pool, not the official GLUE train.tsv"
    tests = {}
    for test_name, file in task.test_files.items():
        path = folder / file
        if path.is_file():
            tests[test_name] = _rows_to_examples(read_tsv(path, list(task.header) if task.header else None), task, path)
            sources[f"test_{test_name}"] = str(path)
    if not tests:
        keep, held = held_out_split(len(pool))
        tests = {"test": pool.subset(held)}
        pool = pool.subset(keep)
        sources["test_test"] = f"held out of {train_path.name} ({len(held)} examples, seed {HELD_OUT_SEED})"
        sources["test_note"] = "no official dev file: test is a held-out split of the training pool, NOT GLUE dev"
    return TaskData(task.spec, pool, tests, sources=sources)


def _load_glue_from_hub(task: GlueTask) -> TaskData:
    """Online users: GLUE from the Hugging Face hub through the datasets library."""
    try:
        from datasets import load_dataset

        dataset = load_dataset("nyu-mll/glue", task.hub_config)
    except Exception as exc:  # offline, or datasets missing: say how to use local files instead
        reason = str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
        raise MixtuneError(
            f"no data directory given and GLUE could not be fetched from the hub ({reason}): "
            f"pass --data-dir or set {DATA_DIR_ENV} to a folder in the GLUE layout"
        ) from None
    spec = task.spec
    hub_text = {"mrpc": ["sentence1", "sentence2"], "stsb": ["sentence1", "sentence2"], "mnli": ["premise", "hypothesis"]}
    columns = hub_text.get(spec.name, spec.text_columns)

    def convert(split) -> Examples:
        texts = [tuple(row[c] for c in columns) for row in split]
        labels = [float(v) for v in split["label"]] if spec.kind == "regression" else [int(v) for v in split["label"]]
        return Examples(texts, labels)

    tests = (
        {"matched": convert(dataset["validation_matched"]), "mismatched": convert(dataset["validation_mismatched"])}
        if spec.name == "mnli"
        else {"test": convert(dataset["validation"])}
    )
    return TaskData(spec, convert(dataset["train"]), tests, sources={"train": f"hub nyu-mll/glue {task.hub_config}"})

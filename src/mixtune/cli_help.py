"""`mixtune train --help` text for every config key: what it does, its allowed values, its default.

Defaults and allowed values are read from mixtune.config and mixtune.config_checks (RunConfig's defaults,
CHOICES, the mixup forms' FORM_DEFAULTS), the task names from the GLUE registry and the methods' names and defaults from
mixtune.method_names (kept equal to the registry by a test), so the help cannot drift from what a run does.
Light: no torch.
"""

from __future__ import annotations

import typing
from typing import Any

from mixtune.config import FORM_DEFAULTS, RunConfig
from mixtune.config_checks import CHOICES
from mixtune.data.glue import ALIASES, GLUE_TASKS
from mixtune.method_names import COMMON_EPOCHS, COMMON_LR, OWN_AVERAGES, OWN_EPOCHS, OWN_LRS

# What each key does (where none is a value of its own, what it means); key_help adds the key and its default.
KEY_HELP = {
    "data.task": "a GLUE task",
    "data.data_dir": "folder in the GLUE TSV layout (CoLA/, SST-2/, ...)",
    "data.train_file": "your own data instead of a GLUE task: a CSV, TSV or JSONL file",
    "data.dev_file": "with --train-file: the dev file best-dev selection scores",
    "data.test_file": "with --train-file: the test file",
    "data.text_columns": "with --train-file: one text column, or two for sentence pairs (comma-separated)",
    "data.label_column": "with --train-file: the label (or score) column",
    "data.task_type": "with --train-file: what the labels are",
    "data.train_size": "training examples drawn from the pool with the seed; n/6 more give dev where something reads dev",
    "data.pool_test_size": "also score this many pool examples outside the seed's train and dev (split pool_test)",
    "train.lr": "peak learning rate",
    "train.epochs": "training epochs",
    "train.batch_size": "training batch size",
    "train.max_length": "tokens per input (clamped to the model's limit)",
    "train.weight_decay": "AdamW weight decay",
    "train.warmup_ratio": "share of the steps spent warming the learning rate up",
    "train.scheduler": "learning-rate schedule after warmup",
    "train.max_grad_norm": "gradient clipping norm; none: no clipping",
    "train.eval_batch_size": "batch size of evaluation and prediction",
    "train.eval_every": "steps between dev evaluations",
    "train.select": "which weights the run keeps: best-dev (the best dev score) or last (the paper's protocol)",
    "train.patience": "stop after this many dev evaluations without improvement",
    "train.report_last_step": "also score the test sets with the last step's weights",
    "train.average": "average the weights over the last part of training (swa: uniform, ema: exponential); needs select "
    "last; auto: the method's under select last (" + ", ".join(f"{m} {a}" for m, a in OWN_AVERAGES.items())
    + "), none otherwise",
    "train.average_start": "the share of the steps after which weights enter the average",
    "train.ema_decay": "the EMA's decay per step",
    "train.layer_decay": "layer-wise lr decay: layer l trains at lr * decay^(L + 1 - l) (Zhang et al. 2021)",
    "train.reinit_layers": "re-initialise the top k layers and the pooler before training (Zhang et al. 2021)",
    "mixup.form": "the weight mixup: released (A@B)*W + ((1-A)@(1-B))*W0, convex a*W + (1-a)*W0, or share",
    "mixup.rank": "rank of alpha's factors with granularity rank; full: one alpha entry per weight",
    "mixup.init_mean": "mean alpha starts at (released and convex forms)",
    "mixup.init_std": "std of alpha's random start",
    "mixup.target_modules": "the linear modules mixed (comma-separated name suffixes, e.g. query,value)",
    "mixup.granularity": "alpha per entry (rank), per output row (row) or one per module (module)",
    "mixup.init_share": "share form: the pretrained share b = sigmoid(theta) starts here",
    "search.splits": "K: random train/validation splits, one bi-level search each, averaged",
    "search.split_ratio": "share of the training examples in each split's inner (training) part",
    "search.epochs": "epochs of each split's search",
    "search.hypergradient": "how the outer step differentiates through the inner one",
    "search.fd_xi": "step of the finite-difference hypergradient",
    "search.unroll_steps": "inner steps per outer (alpha) step",
    "search.average": "what is averaged over the K splits: all weights, alpha only, or a greedy soup (models kept only while the held-out loss does not rise)",
    "search.inner_lr": "inner (weights) learning rate",
    "search.inner_weight_decay": "inner AdamW weight decay",
    "search.inner_scheduler": "inner learning-rate schedule",
    "search.inner_max_grad_norm": "inner gradient clipping norm; none: no clipping",
    "search.alpha_lr": "outer (alpha) learning rate",
    "search.alpha_weight_decay": "outer (alpha) weight decay",
    "search.alpha_scheduler": "outer (alpha) learning-rate schedule",
    "search.warmup_ratio": "share of the search steps spent warming up",
    "search.alpha_lr_sum": "derive alpha_lr so the scheduled alpha rates of a split sum to this; none: off",
    "search.outer_full_split": "every alpha step on the whole validation part (true) or on one batch (false)",
    "search.outer_dropout": "dropout in the outer (validation) passes",
    "search.fd_precondition": "finite-difference direction preconditioned by AdamW's second moments",
    "search.workers": "the K searches in this many processes at once (one per GPU where there are several)",
}
# The default of a key whose default is None ("not set"), in words.
UNSET_DEFAULT = {
    "data.task": "none; --train-file gives your own data",
    "data.data_dir": "$MIXTUNE_DATA_DIR, else the Hugging Face hub",
    "data.train_file": "none",
    "data.dev_file": "a dev split of the training pool",
    "data.test_file": "a split held out of the training file",
    "data.text_columns": "none",
    "data.train_size": "the whole pool",
    "data.pool_test_size": "off",
    "train.lr": f"the method's: {COMMON_LR:g} for most; " + ", ".join(f"{m} {lr:g}" for m, lr in OWN_LRS.items()),
    "train.epochs": f"the method's: {COMMON_EPOCHS:g} for most; " + ", ".join(f"{m} {n:g}" for m, n in OWN_EPOCHS.items()),
    "train.eval_every": "twice per epoch",
    "train.patience": "never stop early",
    "train.layer_decay": "off",
    "mixup.form": "released",
    "mixup.target_modules": "the released targets for the architecture",
    "search.fd_xi": "the inner optimiser's current learning rate (DARTS)",
    "search.alpha_lr_sum": "off",
}

def task_names() -> list[str]:
    return [*GLUE_TASKS, *ALIASES]


def allowed_values(dotted: str, hint: Any) -> tuple[str, ...] | None:
    """The values a key accepts, where they are a short list."""
    if dotted == "data.task":
        return tuple(task_names())
    if dotted in CHOICES:
        return tuple(CHOICES[dotted])
    if bool in (hint, *typing.get_args(hint)):
        return ("true", "false")
    return None


def metavar(dotted: str, hint: Any) -> str:
    """{a,b} for a short list of values, else the value's kind: INT, NUMBER, A,B or TEXT."""
    values = allowed_values(dotted, hint)
    if values is not None:  # argparse prints it as is: the allowed values in the help, no choices= check
        return "{" + ",".join(values) + "}"
    kinds = set(typing.get_args(hint)) or {hint}
    if int in kinds:
        return "INT"
    if float in kinds:
        return "NUMBER"
    if typing.get_origin(hint) is list or any(typing.get_origin(k) is list for k in kinds):
        return "A,B"
    return dotted.split(".")[1].upper()


def default_text(dotted: str) -> str:
    """The default in words: RunConfig's value, the mixup form's where it depends on the form, or UNSET_DEFAULT."""
    form_values = {form: values[dotted] for form, values in FORM_DEFAULTS.items() if dotted in values}
    if form_values:
        per_form = ", ".join(f"{form} {show(value)}" for form, value in form_values.items())
        return f"the mixup form's: {per_form}"
    section, name = dotted.split(".")
    value = getattr(getattr(RunConfig(), section), name)
    return UNSET_DEFAULT[dotted] if value is None else show(value)


def show(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if value is None:
        return "none"
    if isinstance(value, list):
        return ",".join(map(str, value))
    if isinstance(value, float):
        return f"{value:g}"  # 2 epochs, not 2.0
    return str(value)


def key_help(dotted: str) -> str:
    """One flag's help: what it does, the config key it sets, its default (its values are in its metavar)."""
    return f"{KEY_HELP[dotted]} [{dotted}] (default: {default_text(dotted)})"

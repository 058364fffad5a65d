"""The `mixtune` command: train and predict here; bench, select and report from mixtune.bench."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from mixtune.bench.cli import add_bench_parsers
from mixtune.cli_help import key_help, metavar
from mixtune.config import (
    PAIR_ENCODINGS,
    RunConfig,
    build_config,
    flag_specs,
    load_yaml,
    set_dotted,
)
from mixtune.config_checks import POOLING_CHOICES, PRECISION_CHOICES
from mixtune.data.glue import glue_task
from mixtune.errors import MixtuneError
from mixtune.method_names import METHOD_NAMES, OWN_PAIR_ENCODINGS
from mixtune.paths import check_writable

TRAIN_ALIASES = {"train.lr": "--lr", "train.epochs": "--epochs", "train.batch_size": "--batch-size", "train.max_length": "--max-length"}
TOP_LEVEL = {
    "method": str, "model": str, "pooling": str, "pair_encoding": str, "seed": int, "output_dir": str, "device": str,
    "precision": str,
}
DEVICES = "{auto,cpu,cuda,cuda:N}"


def add_train_parser(subparsers) -> None:
    defaults = RunConfig()
    parser = subparsers.add_parser(
        "train",
        help="finetune a model on a task and export it",
        description="Finetune with mixup-blo (default) or another method. Precedence: defaults < --config YAML < flags. "
        "Each flag below names the config key it sets in [brackets].",
    )
    parser.add_argument(
        "--config", help="YAML file with any of the keys below (nested: train:, mixup:, search:, data:) (default: none)"
    )
    parser.add_argument("--method", metavar="NAME", help=f"one of {', '.join(METHOD_NAMES)} (default: {defaults.method})")
    parser.add_argument("--model", help="model folder or hub id (default: the packaged all-MiniLM-L6-v2)")
    parser.add_argument(
        "--pooling", metavar=choice_list(POOLING_CHOICES),
        help="head: auto (the backbone's own pooling), cls (the architecture's head), mean, max "
        f"(default: {defaults.pooling})",
    )
    parser.add_argument(
        "--pair-encoding", metavar=choice_list(PAIR_ENCODINGS),
        help="sentence pairs: auto (cosine for similarity scores on a sentence-embedding backbone, else joint), joint "
        "(cross-encoder), separate (bi-encoder), cosine (bi-encoder on cosine similarity) "
        f"(default: the method's: auto; {', '.join(f'{m} {e}' for m, e in OWN_PAIR_ENCODINGS.items())})",
    )
    parser.add_argument(
        "--seed", metavar="INT", help=f"seed of the subsample, the head init and training (default: {defaults.seed})"
    )
    parser.add_argument("--output-dir", help="run folder (default: runs/TASK-METHOD-nN-sSEED)")
    parser.add_argument("--device", metavar=DEVICES, help=f"auto: CUDA when present (default: {defaults.device})")
    parser.add_argument(
        "--precision", metavar=choice_list(PRECISION_CHOICES),
        help="fp32, bf16 (autocast), fp16 (autocast and a gradient scaler; CUDA only), auto (bf16 on a GPU that "
        f"has it, else fp32) (default: {defaults.precision})",
    )
    parser.add_argument(
        "--method-arg", action="append", default=[], metavar="KEY=VALUE",
        help="a method hyperparameter, e.g. p=0.3; repeat for more (default: the method's)",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace an existing run folder (default: refuse)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars (default: shown)")
    for flag, dotted, hint in flag_specs():
        names = [flag] + ([TRAIN_ALIASES[dotted]] if dotted in TRAIN_ALIASES else [])
        parser.add_argument(*names, dest=f"cfg:{dotted}", metavar=metavar(dotted, hint), help=key_help(dotted))
    parser.set_defaults(handler=cmd_train)


def choice_list(values: tuple[str, ...]) -> str:
    return "{" + ",".join(values) + "}"


def config_from_args(args: argparse.Namespace) -> Any:
    values: dict[str, Any] = load_yaml(args.config) if args.config else {}
    for key in TOP_LEVEL:
        if getattr(args, key) is not None:
            values[key] = getattr(args, key)
    for name, value in vars(args).items():
        if name.startswith("cfg:") and value is not None:
            set_dotted(values, name[4:], value)
    for item in args.method_arg:
        key, sep, value = item.partition("=")
        if not sep:
            raise MixtuneError(f"--method-arg {item!r} is not KEY=VALUE: write e.g. --method-arg p=0.3")
        values.setdefault("method_args", {})[key.strip()] = value.strip()
    return build_config(values)


def cmd_train(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    check_names(config)
    from mixtune.models import quiet_transformers
    from mixtune.run import run

    quiet_transformers()
    record = run(config, progress=not args.quiet, overwrite=args.overwrite)
    print(summary_line(record))
    return 0


def check_names(config: Any) -> None:
    """A misspelt method or GLUE task fails before torch loads (own data, --train-file, takes no task name)."""
    if config.method not in METHOD_NAMES:
        raise MixtuneError(f"unknown method '{config.method}': choose one of {', '.join(METHOD_NAMES)}")
    if config.data.task and not config.data.train_file:
        glue_task(config.data.task)


def summary_line(record: dict) -> str:
    parts = []
    for split, scores in record["metrics"].items():
        if split == "dev":
            continue
        shown = ", ".join(f"{k} {v:.2f}" for k, v in scores.items() if k != "constant_predictions")
        parts.append(f"{split}: {shown}")
    where = record.get("export", {}).get("directory", "")
    task = record["task"]["name"]
    return f"{task} {record['method']} seed {record['config']['seed']} | " + " | ".join(parts) + (f" | model: {where}" if where else "")


def add_predict_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "predict",
        help="predict labels for new texts with a trained run folder",
        description="Predict with a run of `mixtune train`. A pooled head's code (model/modeling_mixtune.py) runs only "
        "if mixtune exported it unchanged, as run.json records; --trust-remote-code runs a folder's code regardless.",
    )
    parser.add_argument(
        "--model", required=True, help="the output folder of `mixtune train`, or its model/ folder (required)"
    )
    parser.add_argument("--input", required=True, help="CSV, TSV or JSONL file with the task's text column(s) (required)")
    parser.add_argument("--output", help="JSONL file to write (default: standard output)")
    parser.add_argument(
        "--text-columns", metavar="A,B", help="comma-separated text columns, if they differ from training (default: the run's)"
    )
    parser.add_argument("--device", default="auto", metavar=DEVICES, help="auto: CUDA when present (default: auto)")
    parser.add_argument(
        "--trust-remote-code", action="store_true",
        help="run the model folder's code even if mixtune did not export it unchanged: only for a folder you trust "
        "(default: refuse)",
    )
    parser.set_defaults(handler=cmd_predict)


def cmd_predict(args: argparse.Namespace) -> int:
    if args.output:
        check_writable(Path(args.output), "output file")
    from mixtune.models import quiet_transformers
    from mixtune.predict import predict_file

    quiet_transformers()
    columns = [c.strip() for c in args.text_columns.split(",")] if args.text_columns else None
    predictions = predict_file(
        args.model, args.input, columns, device=args.device, trust_remote_code=args.trust_remote_code
    )
    lines = "".join(json.dumps(p) + "\n" for p in predictions)
    if args.output:
        Path(args.output).write_text(lines)
        print(f"wrote {len(predictions)} predictions to {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(lines)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mixtune", description=__doc__)
    subparsers = parser.add_subparsers(dest="command", required=True)
    add_train_parser(subparsers)
    add_predict_parser(subparsers)
    add_bench_parsers(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Arguments and config are checked first; each command imports torch and friends only when it needs them."""
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except MixtuneError as exc:
        print(f"mixtune: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("mixtune: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

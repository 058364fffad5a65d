"""The `mixtune` command: train and predict here; bench, select and report from mixtune.bench."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from mixtune.bench.cli import add_bench_parsers
from mixtune.config import build_config, flag_specs, load_yaml, set_dotted
from mixtune.data.glue import glue_task
from mixtune.errors import MixtuneError
from mixtune.paths import check_writable

TRAIN_ALIASES = {"train.lr": "--lr", "train.epochs": "--epochs", "train.batch_size": "--batch-size", "train.max_length": "--max-length"}
TOP_LEVEL = {
    "method": str, "model": str, "pooling": str, "pair_encoding": str, "seed": int, "output_dir": str, "device": str,
    "precision": str,
}


def add_train_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "train",
        help="finetune a model on a task and export it",
        description="Finetune with mixup-blo (default) or another method. Precedence: defaults < --config YAML < flags.",
    )
    parser.add_argument("--config", help="YAML file with any of the keys below (nested: train:, mixup:, search:, data:)")
    parser.add_argument("--method", help="mixup-blo (default), vanilla, joint, random-alpha, ...")
    parser.add_argument("--model", help="model folder or hub id (default: the packaged all-MiniLM-L6-v2)")
    parser.add_argument("--pooling", help="head: auto (default: the backbone's own pooling), cls (the architecture's head), mean, max")
    parser.add_argument("--pair-encoding", help="sentence pairs: auto (default: cosine for similarity scores on a sentence-embedding backbone, else joint), joint (cross-encoder), separate (bi-encoder), cosine (bi-encoder on cosine similarity)")
    parser.add_argument("--seed", help="seed of the subsample, the head init and training (default 1)")
    parser.add_argument("--output-dir", help="run folder (default runs/TASK-METHOD-nN-sSEED)")
    parser.add_argument("--device", help="auto (default: CUDA when present), cpu, cuda, cuda:N")
    parser.add_argument("--precision", help="fp32 (default), bf16 (autocast), fp16 (autocast and a gradient scaler; CUDA only)")
    parser.add_argument("--method-arg", action="append", default=[], metavar="KEY=VALUE", help="a method hyperparameter, e.g. p=0.3")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing run folder")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    for flag, dotted, _ in flag_specs():
        names = [flag] + ([TRAIN_ALIASES[dotted]] if dotted in TRAIN_ALIASES else [])
        parser.add_argument(*names, dest=f"cfg:{dotted}", metavar=dotted.split(".")[1].upper(), help=f"sets {dotted}")
    parser.set_defaults(handler=cmd_train)


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
    check_task(config)
    from mixtune.models import quiet_transformers
    from mixtune.run import run

    quiet_transformers()
    record = run(config, progress=not args.quiet, overwrite=args.overwrite)
    print(summary_line(record))
    return 0


def check_task(config: Any) -> None:
    """A misspelt GLUE task fails before torch loads (own data, --train-file, takes no task name)."""
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
    parser = subparsers.add_parser("predict", help="predict labels for new texts with a trained run folder")
    parser.add_argument("--model", required=True, help="the output folder of `mixtune train`")
    parser.add_argument("--input", required=True, help="CSV, TSV or JSONL file with the task's text column(s)")
    parser.add_argument("--output", help="JSONL file to write (default: standard output)")
    parser.add_argument("--text-columns", help="comma-separated text columns, if they differ from training")
    parser.add_argument("--device", default="auto", help="auto (default: CUDA when present), cpu, cuda, cuda:N")
    parser.set_defaults(handler=cmd_predict)


def cmd_predict(args: argparse.Namespace) -> int:
    if args.output:
        check_writable(Path(args.output), "output file")
    from mixtune.models import quiet_transformers
    from mixtune.predict import predict_file

    quiet_transformers()
    columns = [c.strip() for c in args.text_columns.split(",")] if args.text_columns else None
    predictions = predict_file(args.model, args.input, columns, device=args.device)
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

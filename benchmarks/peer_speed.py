"""mixtune's vanilla finetuning against transformers' Trainer: the same examples, steps, batch size, lr and threads.

    OMP_NUM_THREADS=1 python benchmarks/peer_speed.py [--task sst2] [--train-size 300] [--epochs 10]
        [--batch-size 16] [--lr 2e-5] [--threads 1] [--seed 1] [--select last] [--pooling cls]
        [--order hf-first] [--data-dir ../shared/data/glue]

Both runs happen one after the other in this process, on the same training subset (mixtune's low-resource draw for
--seed: --train-size examples) tokenised once by mixtune, for the same number of optimiser steps (epochs x
ceil(n / batch)), at the same batch size, lr and torch thread count (--threads, default: OMP_NUM_THREADS or 1):
  HF Trainer   transformers' Trainer on AutoModelForSequenceClassification (the architecture's plain head) with its
               own defaults otherwise (optimiser adamw_torch_fused, linear schedule without warmup, no weight decay,
               clipping at 1.0); no evaluation, no checkpoints, no logging integrations.
  mixtune      `mixtune train --method vanilla` (mixtune.run.run, nothing written) with --pooling (default cls: the
               same head) and --select (default last: no dev evaluation while training; best-dev shows its cost).
Each line: the training wall time (HF: trainer.train(); mixtune: the finetune phase's train_loop), the test score
on the task's test split (both scored by mixtune.metrics.evaluate in length-sorted batches) and the CPU seconds
of the whole side (model loading, training, scoring; robust to a busy machine, where wall times are not); the
last line is mixtune over HF for both (issue 31's target: 1.0 for training time).
Price: the defaults on one thread take about 4 minutes (each side about 70-115 s of training, plus model loading
and scoring the 872 SST-2 test examples); --epochs 1 about 45 s.
Measured on the development machine (2 shared cores, busy; one thread, SST-2 n = 300, 190 steps, select last):
HF 113.6 s, mixtune 105.6 s of training (0.93x), CPU of each whole side 107.0 s and 108.7 s (1.02x).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import torch
from torch.utils.data import DataLoader
from transformers import AutoModelForSequenceClassification, DataCollatorWithPadding, Trainer, TrainingArguments

from mixtune.config import build_config
from mixtune.data import load_task
from mixtune.data.batching import by_length, encode, make_loader
from mixtune.data.sampling import low_resource_indices
from mixtune.models import load_model, resolve_model
from mixtune.metrics import evaluate
from mixtune.methods import base
from mixtune.run import run


LABELS = {"hf": "HF Trainer", "mixtune": "mixtune vanilla"}


# training seconds, training CPU seconds, test score, whole-side CPU seconds, padded tokens trained on
Result = tuple[float, float, float, float, int]


class ReplayedOrder(torch.utils.data.Sampler[int]):
    """The example order of mixtune's training loader, pass after pass (--batch-order mixtune).

    Each pass draws from a DataLoader built as mixtune.data.batching.make_loader builds it (batch size, shuffle,
    a generator seeded with the run's seed), so the Trainer gets the batches mixtune trains on, padded alike.
    Not a RandomSampler: accelerate would swap that for its own seedable one.
    """

    def __init__(self, size: int, batch_size: int, seed: int) -> None:
        self.size = size
        self.loader = DataLoader(range(size), batch_size=batch_size, shuffle=True,
                                 generator=torch.Generator().manual_seed(seed), collate_fn=list)

    def __iter__(self):
        return (index for batch in self.loader for index in batch)

    def __len__(self) -> int:
        return self.size


class ReplayingTrainer(Trainer):
    """Trainer whose training batches follow mixtune's order (ReplayedOrder)."""

    def __init__(self, *trainer_args, order: ReplayedOrder, **kwargs) -> None:
        super().__init__(*trainer_args, **kwargs)
        self.order = order

    def _get_train_sampler(self, train_dataset=None) -> torch.utils.data.Sampler:
        return self.order


class PaddedTokens(DataCollatorWithPadding):
    """DataCollatorWithPadding that counts the padded tokens of its batches (the work a step does)."""

    def __init__(self, tokenizer) -> None:
        super().__init__(tokenizer)
        self.tokens = 0

    def __call__(self, features: list[dict]) -> dict:
        batch = super().__call__(features)
        self.tokens += batch["input_ids"].numel()
        return batch


def hf_trainer(args: argparse.Namespace, task, train_features: list[dict], tokenizer) -> Result:
    """Training wall and CPU seconds, test score, CPU seconds of load + train + score of transformers' Trainer with
    its defaults, on mixtune's features (in mixtune's batch order under --batch-order mixtune)."""
    cpu_started = time.process_time()
    model = AutoModelForSequenceClassification.from_pretrained(resolve_model(None), num_labels=task.spec.num_labels)
    with tempfile.TemporaryDirectory() as tmp:
        training = TrainingArguments(
            output_dir=tmp, per_device_train_batch_size=args.batch_size, learning_rate=args.lr,
            num_train_epochs=args.epochs, seed=args.seed, eval_strategy="no", save_strategy="no",
            report_to="none", disable_tqdm=True, logging_strategy="no",
        )
        collator = PaddedTokens(tokenizer)
        common = dict(model=model, args=training, train_dataset=train_features, data_collator=collator)
        if args.batch_order == "mixtune":
            trainer = ReplayingTrainer(**common, order=ReplayedOrder(len(train_features), args.batch_size, args.seed))
        else:
            trainer = Trainer(**common)
        started, cpu_train = time.perf_counter(), time.process_time()
        trainer.train()
        seconds, cpu_train = time.perf_counter() - started, time.process_time() - cpu_train
    score = test_score(trainer.model, task, tokenizer)
    return seconds, cpu_train, score, time.process_time() - cpu_started, collator.tokens


def test_score(model, task, tokenizer) -> float:
    """The main metric on the first test split, in length-sorted batches of 32 (as a mixtune run scores it)."""
    examples = next(iter(task.tests.values()))
    features = by_length(encode(examples, tokenizer, 128, task.spec.kind == "regression"))
    return evaluate(model, make_loader(features, tokenizer, 32, shuffle=False), task.spec)[task.spec.main_metric]


def mixtune_vanilla(args: argparse.Namespace) -> Result:
    """Training wall and CPU seconds, test score, CPU seconds of the whole run of `mixtune train --method vanilla`.

    The training CPU time is taken around the shared loop (mixtune.train.train_loop, wrapped here): the process's
    CPU seconds, which a busy machine inflates far less than wall seconds.
    """
    loop_cpu: list[float] = []
    tokens = [0]
    plain_loop = base.train_loop

    def timed_loop(*loop_args, **kwargs):
        collate = loop_args[1].collate_fn

        def counted(features: list[dict]) -> dict:
            batch = collate(features)
            tokens[0] += batch["input_ids"].numel()
            return batch

        loop_args[1].collate_fn = counted
        cpu = time.process_time()
        result = plain_loop(*loop_args, **kwargs)
        loop_cpu.append(time.process_time() - cpu)
        return result

    config = build_config({
        "method": "vanilla", "seed": args.seed, "pooling": args.pooling,
        "data": {"task": args.task, "data_dir": args.data_dir, "train_size": args.train_size},
        "train": {"epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr, "select": args.select},
    })
    cpu_started = time.process_time()
    base.train_loop = timed_loop
    try:
        record = run(config, progress=False, write=False)
    finally:
        base.train_loop = plain_loop
    score = record["metrics"][next(iter(record["predictions"]))][record["main_metric"]]
    return record["time_s"]["finetune"], sum(loop_cpu), score, time.process_time() - cpu_started, tokens[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="sst2")
    parser.add_argument("--data-dir", default="../shared/data/glue")
    parser.add_argument("--train-size", type=int, default=300)
    parser.add_argument("--epochs", type=float, default=10)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=2e-5)
    parser.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", "1")))
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--select", default="last", choices=["last", "best-dev"])
    parser.add_argument("--pooling", default="cls", help="mixtune's head (cls: the same plain head as the Trainer's)")
    parser.add_argument("--order", default="hf-first", choices=["hf-first", "mixtune-first"])
    parser.add_argument("--batch-order", default="mixtune", choices=["mixtune", "own"],
                        help="the Trainer's batches: mixtune's (the same padding: loop against loop) or its own sampler's")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    config = build_config({"data": {"task": args.task, "data_dir": args.data_dir, "train_size": args.train_size}})
    task = load_task(config.data)
    train_idx, _ = low_resource_indices(len(task.pool), args.train_size, args.seed)
    tokenizer, _, _ = load_model(None, task.spec, args.seed, pooling="cls")
    train_features = encode(task.pool.subset(train_idx), tokenizer, 128, task.spec.kind == "regression")
    steps = int(args.epochs * -(-len(train_features) // args.batch_size))
    print(f"{args.task} n={len(train_features)}, {steps} steps of batch {args.batch_size} at lr {args.lr}, "
          f"{torch.get_num_threads()} thread(s), torch {torch.__version__}")

    results = {}
    for side in (("hf", "mixtune") if args.order == "hf-first" else ("mixtune", "hf")):
        if side == "hf":
            results["hf"] = hf_trainer(args, task, train_features, tokenizer)
        else:
            results["mixtune"] = mixtune_vanilla(args)
        seconds, cpu_train, score, cpu, tokens = results[side]
        print(f"{LABELS[side]:<16} train {seconds:7.1f} s (CPU {cpu_train:.1f} s, {tokens} padded tokens)   test "
              f"{task.spec.main_metric} {score:.2f}   (CPU {cpu:.1f} s for load, train and scoring)", flush=True)
    mine, theirs = results["mixtune"], results["hf"]
    print(f"mixtune / HF: training time {mine[0] / theirs[0]:.2f}x, training CPU {mine[1] / theirs[1]:.2f}x, "
          f"whole-side CPU {mine[3] / theirs[3]:.2f}x, padded tokens {mine[4] / theirs[4]:.3f}x "
          f"(mixtune select {args.select}, pooling {args.pooling}, HF batch order {args.batch_order})")


if __name__ == "__main__":
    main()

"""mixtune's vanilla finetuning against transformers' Trainer: the same batches, steps, lr and threads.

    OMP_NUM_THREADS=1 python benchmarks/peer_speed.py [--task sst2] [--train-size 300] [--epochs 10]
        [--batch-size 16] [--lr 2e-5] [--threads 1] [--seed 1] [--select last] [--pooling cls]
        [--repeats 3] [--batch-order mixtune] [--data-dir ../shared/data/glue]

Both sides run in this process, on the same training subset (mixtune's low-resource draw for --seed: --train-size
examples) tokenised once by mixtune, for the same number of optimiser steps (epochs x ceil(n / batch)), at the same
batch size, lr and torch thread count (--threads, default: OMP_NUM_THREADS or 1):
  HF Trainer   transformers' Trainer on AutoModelForSequenceClassification (the architecture's plain head) with its
               own defaults otherwise (optimiser adamw_torch_fused, linear schedule without warmup, no weight decay,
               clipping at 1.0); no evaluation, no checkpoints, no logging integrations. Under --batch-order mixtune
               (the default) it trains on mixtune's batches in mixtune's order, so both loops pad the same tokens
               (a different shuffle alone moved the padded tokens by 2% on SST-2); --batch-order own keeps its sampler.
  mixtune      `mixtune train --method vanilla` (mixtune.run.run, nothing written) with --pooling (default cls: the
               same head) and --select (default last: no dev evaluation while training; best-dev shows its cost).
--repeats rounds of the pair, the first side alternating by round. Each line: the training wall time (HF:
trainer.train(); mixtune: the finetune phase's train_loop), its CPU seconds, the padded tokens trained on, the test
score (both scored by mixtune.metrics.evaluate in length-sorted batches) and the CPU seconds of the whole side. The
last lines: mixtune over HF, the geometric mean over rounds with its 95% t-interval (issue 31's target: at most 1.0x
training time). On a busy machine (another job on the other core) one side's time moved by 20% between two
identical runs: measure on a quiet machine, and read the interval.
Price: about 3.5 minutes a round on one thread (each side about 90-100 s of training, plus loading and scoring
the 872 SST-2 test examples); --epochs 1 about 45 s a round.
"""

from __future__ import annotations

import argparse
import math
import os
import tempfile
import time

import torch
from torch.utils.data import DataLoader
from transformers import (
    AutoModelForSequenceClassification, DataCollatorWithPadding, Trainer, TrainingArguments, set_seed,
)

from mixtune.bench.stats import compare
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
    set_seed(args.seed)  # the head's initial weights: the same in every round (Trainer seeds only after this)
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
    parser.add_argument("--repeats", type=int, default=3,
                        help="rounds of (mixtune, HF), alternating which goes first; the ratio's interval is over rounds")
    parser.add_argument("--batch-order", default="mixtune", choices=["mixtune", "own"],
                        help="the Trainer's batches: mixtune's (the same padding: loop against loop) or its own sampler's")
    args = parser.parse_args()
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    torch.set_num_threads(args.threads)

    config = build_config({"data": {"task": args.task, "data_dir": args.data_dir, "train_size": args.train_size}})
    task = load_task(config.data)
    train_idx, _ = low_resource_indices(len(task.pool), args.train_size, args.seed)
    tokenizer, _, _ = load_model(None, task.spec, args.seed, pooling="cls")
    train_features = encode(task.pool.subset(train_idx), tokenizer, 128, task.spec.kind == "regression")
    steps = int(args.epochs * -(-len(train_features) // args.batch_size))
    print(f"{args.task} n={len(train_features)}, {steps} steps of batch {args.batch_size} at lr {args.lr}, "
          f"{torch.get_num_threads()} thread(s), torch {torch.__version__}")

    rounds = [run_round(args, task, train_features, tokenizer, r) for r in range(args.repeats)]
    for name, field in (("training time", 0), ("training CPU", 1)):
        ratios = [mine[field] / theirs[field] for mine, theirs in rounds]
        print(f"mixtune / HF {name}: {summarise(ratios)}")
    mine, theirs = rounds[0]
    print(f"padded tokens {mine[4] / theirs[4]:.3f}x (mixtune select {args.select}, pooling {args.pooling}, "
          f"HF batch order {args.batch_order}); the goal is a training-time ratio of at most 1.0x")


def run_round(args: argparse.Namespace, task, train_features: list[dict], tokenizer, round_index: int
              ) -> tuple[Result, Result]:
    """One (mixtune, HF) pair of runs; the side that goes first alternates by round, so drift on a busy machine
    (another job starting or ending) falls on both sides alike."""
    results = {}
    sides = ("hf", "mixtune") if round_index % 2 == 0 else ("mixtune", "hf")
    for side in sides:
        results[side] = hf_trainer(args, task, train_features, tokenizer) if side == "hf" else mixtune_vanilla(args)
        seconds, cpu_train, score, cpu, tokens = results[side]
        print(f"round {round_index + 1} {LABELS[side]:<16} train {seconds:7.1f} s (CPU {cpu_train:.1f} s, {tokens} "
              f"padded tokens)   test {task.spec.main_metric} {score:.2f}   (CPU {cpu:.1f} s for load, train and "
              f"scoring)", flush=True)
    return results["mixtune"], results["hf"]


def summarise(ratios: list[float]) -> str:
    """The rounds' ratios, their geometric mean and its 95% t-interval over rounds (on log ratios: a ratio's
    noise is multiplicative); one round gives no interval."""
    comparison = compare([math.log(ratio) for ratio in ratios])
    each = ", ".join(f"{ratio:.3f}" for ratio in ratios)
    if comparison.low is None:
        return f"{math.exp(comparison.mean):.3f}x (1 round: no interval)"
    return (f"{math.exp(comparison.mean):.3f}x [{math.exp(comparison.low):.3f}, {math.exp(comparison.high):.3f}] "
            f"over {comparison.n} rounds ({each})")

if __name__ == "__main__":
    main()

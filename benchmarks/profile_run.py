"""Where a short run's time goes: one `mixtune train` run under cProfile, its costs grouped by phase.

    OMP_NUM_THREADS=1 python benchmarks/profile_run.py --method vanilla [--epochs 1] [--train-size 300]
    OMP_NUM_THREADS=1 python benchmarks/profile_run.py --method mixup-blo --search-splits 1 --search-epochs 1
    [--task sst2] [--data-dir ../shared/data/glue] [--set train.select=last ...] [--out profile.pstats]

Times are CPU seconds of this process (cProfile with time.process_time: on one thread they do not count the time
other processes take, so a busy machine profiles like a quiet one). Prints the run's wall and CPU time, then the
cumulative CPU time of the functions that make up a run (model loading,
tokenisation, the optimiser step, dev evaluation, the search and its validation passes, the test evaluation, the
export check) as a share of the whole, then the top 20 functions by their own time. Shares overlap where one
phase holds another (train_loop holds the optimiser step and the dev evaluations).
Costs about as much as the run itself (1 epoch of SST-2 n = 300 vanilla: about 15 s on one thread; mixup-blo
with one search split of one epoch: about 40 s), plus cProfile's overhead of a few percent.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import tempfile
import time
from pathlib import Path

import torch

from mixtune.config import build_config, set_dotted
from mixtune.run import run

# (label, function name as pstats shows it: file suffix, function): the phases of a run
PHASES = [
    ("load model", "mixtune/models.py", "load_model"),
    ("tokenise (encode)", "mixtune/data/batching.py", "encode"),
    ("method.fit", "mixtune/methods/base.py", "fit"),
    ("method.fit (mixup-blo)", "mixtune/methods/mixup_blo.py", "fit"),
    ("  search (bilevel_search)", "mixtune/mixup/bilevel.py", "bilevel_search"),
    ("    inner steps", "mixtune/mixup/bilevel.py", "_inner_step"),
    ("    alpha gradient (validation passes)", "mixtune/mixup/bilevel.py", "first_order_hypergradient"),
    ("  train_loop", "mixtune/train.py", "train_loop"),
    ("    optimiser steps (AdamW.step)", "torch/optim/adamw.py", "step"),
    ("    optimiser steps (Adam.step)", "torch/optim/adam.py", "step"),
    ("    dev evaluation (DevSelector)", "mixtune/train.py", "after_step"),
    ("    backward", "torch/_tensor.py", "backward"),
    ("test evaluation (score_split)", "mixtune/run.py", "score_split"),
    ("export + check (_export)", "mixtune/run.py", "_export"),
]


def phase_costs(stats: pstats.Stats) -> dict[str, float]:
    """Cumulative seconds of each phase's function (0 where it never ran)."""
    costs = {label: 0.0 for label, _, _ in PHASES}
    for (filename, _, function), (_, _, _, cumulative, _) in stats.stats.items():
        for label, suffix, name in PHASES:
            if function == name and filename.endswith(suffix):
                costs[label] = max(costs[label], cumulative)
    return costs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--method", default="vanilla")
    parser.add_argument("--task", default="sst2")
    parser.add_argument("--data-dir", default="../shared/data/glue")
    parser.add_argument("--train-size", type=int, default=300)
    parser.add_argument("--epochs", type=float, default=1)
    parser.add_argument("--search-splits", type=int, default=1)
    parser.add_argument("--search-epochs", type=float, default=1)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="any config key, dotted")
    parser.add_argument("--out", help="also save the raw profile here (pstats format)")
    args = parser.parse_args()

    values: dict = {
        "method": args.method,
        "data": {"task": args.task, "data_dir": args.data_dir, "train_size": args.train_size},
        "train": {"epochs": args.epochs},
        "search": {"splits": args.search_splits, "epochs": args.search_epochs},
    }
    for item in args.set:
        key, _, value = item.partition("=")
        set_dotted(values, key, value)
    with tempfile.TemporaryDirectory() as tmp:
        values["output_dir"] = str(Path(tmp) / "run")
        config = build_config(values)
        profiler = cProfile.Profile(time.process_time)
        started, cpu_started = time.perf_counter(), time.process_time()
        profiler.enable()
        record = run(config, progress=False)
        profiler.disable()
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    stats = pstats.Stats(profiler)
    if args.out:
        stats.dump_stats(args.out)
    print(f"{args.method} on {args.task} n={args.train_size}, {torch.get_num_threads()} thread(s): {wall:.1f} s wall, {cpu:.1f} s CPU "
          f"(optimizer {record.get('optimizer', 'not recorded')}, select {record['log'].get('finetune', {}).get('select')}, "
          f"dev evaluations {len(record['log'].get('finetune', {}).get('dev_curve', []))})")
    for label, seconds in phase_costs(stats).items():
        if seconds:
            print(f"  {label:<42} {seconds:7.2f} s  {100 * seconds / cpu:5.1f}%")
    print("top 20 by own CPU time:")
    stats.sort_stats("tottime").print_stats(20)


if __name__ == "__main__":
    main()

"""Rank the rivals of mixup-blo for a later run on dev scores, never on test: the mean over the next run's tasks
of each rival's mean dev score (its runs' main metric on their dev split) over the given seeds, best first.
Best run on the tuning sweep's records (tuning seeds, dev split), or a finished table's, where test is never read.

    python benchmarks/pick_rivals.py results/tune_table2.jsonl --seeds 11 --tasks cola mrpc stsb rte

A rival is any row except mixup-blo, its variants (mixup-blo-*) and the rows that are its controls or vanilla's
(vanilla, soup-start, wise-ft, and their variants such as vanilla-lr2e-5), that ran every task of the next run
(`--tasks`: setfit cannot run STS-B). The chosen rivals go into the next run's grid config (methods:, rivals:).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from mixtune.bench.cli import seed_list
from mixtune.bench.runs import Run, load_runs

NOT_RIVALS = ("vanilla", "soup-start", "wise-ft", "mixup-blo")


def is_rival(method: str) -> bool:
    """Not mixup-blo, a control, vanilla, nor a labelled variant of one of them (NAME-...)."""
    return not any(method == name or method.startswith(f"{name}-") for name in NOT_RIVALS)


def ranking(runs: list[Run], next_tasks: list[str]) -> list[tuple[str, float]]:
    """(rival, mean over next_tasks of its mean dev score over seeds), best first; rows without a dev score on
    every one of those tasks are left out."""
    ranked = []
    for method in dict.fromkeys(r.method for r in runs):
        dev = {t: [r.dev_score for r in runs if r.method == method and r.task == t and r.dev_score is not None] for t in next_tasks}
        if is_rival(method) and all(dev.values()):
            ranked.append((method, float(np.mean([np.mean(scores) for scores in dev.values()]))))
    return sorted(ranked, key=lambda item: -item[1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results", type=Path)
    parser.add_argument("--seeds", default="1-3", help="the seeds to rank on (default 1-3)")
    parser.add_argument("--tasks", nargs="+", required=True, help="the next run's tasks: a rival must have run them all")
    args = parser.parse_args(argv)
    runs = load_runs([args.results]).runs
    seeds = seed_list(args.seeds, {r.seed for r in runs})
    ranked = ranking([r for r in runs if r.seed in seeds], args.tasks)
    print(f"ranked on the mean dev score over {', '.join(args.tasks)}, seeds {args.seeds}:")
    for method, score in ranked:
        print(f"  {method:16s} {score:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

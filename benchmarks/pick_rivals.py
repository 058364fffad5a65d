"""Issue #15's rule for the rivals of runs 2 and 3, written down when run 1 had seed 1 of five tasks (of seeds 1-3
of six): rank the rivals of mixup-blo by their mean test score over run 1's seeds 1-3 on the tasks that learn
(where vanilla's mean is more than 5 points above the constant prediction, mixtune.bench.chance), best first.

    python benchmarks/pick_rivals.py results/table2_n300.jsonl --seeds 1-3 --tasks cola mrpc stsb rte

A rival is any row except mixup-blo, its variants (mixup-blo-*) and the rows that are its controls or vanilla's
(vanilla, soup-start, wise-ft, and their variants such as vanilla-lr2e-5), that ran every task of the next run
(`--tasks`: setfit cannot run STS-B).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from mixtune.bench.chance import chance_levels, tasks_at_chance
from mixtune.bench.cli import seed_list
from mixtune.bench.runs import GLUE_ORDER, Run, load_runs, ordered, scores_of

NOT_RIVALS = ("vanilla", "soup-start", "wise-ft", "mixup-blo")


def is_rival(method: str) -> bool:
    """Not mixup-blo, a control, vanilla, nor a labelled variant of one of them (NAME-...)."""
    return not any(method == name or method.startswith(f"{name}-") for name in NOT_RIVALS)


def ranking(runs: list[Run], next_tasks: list[str]) -> tuple[list[tuple[str, float]], list[str]]:
    """(rival, mean over the learning tasks of its mean over seeds), best first; and the tasks it was ranked on."""
    at_chance = tasks_at_chance(runs, chance_levels(runs), "vanilla")
    learned = ordered((r.task for r in runs if r.task not in at_chance), GLUE_ORDER)
    ranked = []
    for method in dict.fromkeys(r.method for r in runs):
        ran = {r.task for r in runs if r.method == method}
        if is_rival(method) and set(next_tasks) <= ran and set(learned) <= ran:
            ranked.append((method, float(np.mean([np.mean(scores_of(runs, method, t)) for t in learned]))))
    return sorted(ranked, key=lambda item: -item[1]), learned


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results", type=Path)
    parser.add_argument("--seeds", default="1-3", help="the seeds to rank on (default 1-3)")
    parser.add_argument("--tasks", nargs="+", required=True, help="the next run's tasks: a rival must have run them all")
    args = parser.parse_args(argv)
    runs = load_runs([args.results]).runs
    seeds = seed_list(args.seeds, {r.seed for r in runs})
    runs = [r for r in runs if r.seed in seeds]
    ranked, learned = ranking(runs, args.tasks)
    print(f"ranked on {', '.join(learned)} (the tasks where vanilla learned), seeds {args.seeds}:")
    for method, score in ranked:
        print(f"  {method:16s} {score:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Apply issue 32's pilot rule (fixed in benchmarks/pilot_promise.yaml before the run) to the pilot's records.

    python benchmarks/pilot_rank.py [results/pilot_promise.jsonl] [--split pool_test]
        [--candidates mixup-blo mixup-mask-swa mixup-mask]

The rule, as the config's header states it: scores are each task's main metric on the pool_test split. V* is the
vanilla rate with the best mean over every (task, seed) cell. For a row R and seed s, D(R, s) is the mean over the
tasks of R(t, s) - V*(t, s); rows rank by the mean of D over seeds (a tie within 0.1 goes to the lower spread).
Each row is checked against issue 32's goal: mean D >= +2.0; spread (the mean over tasks of the std over seeds)
<= 0.6x V*'s; mean whole-run CPU time <= 2x V*'s (a reused search counted at its original cost). The chosen
candidate is the best-ranked --candidates row that passes all three, else the best-ranked one, with what it
missed. Only the seeds on which every row finished every task are counted (the others are named as left out).
The interval and MDE beside mean D are printed for reading, not for the choice: with 3 seeds no call is made.
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from pathlib import Path

import numpy as np

from mixtune.bench.runs import Run, load_runs
from mixtune.bench.stats import compare

GOAL_GAIN = 2.0  # points above V*, mean over the tasks
GOAL_SPREAD_RATIO = 0.6  # of V*'s mean std over seeds
GOAL_COST_RATIO = 2.0  # of V*'s mean whole-run CPU time
TIE = 0.1  # mean D within this: the lower spread ranks first


def by_row(runs: list[Run]) -> dict[str, dict[tuple[str, int], Run]]:
    rows: dict[str, dict[tuple[str, int], Run]] = defaultdict(dict)
    for run in runs:
        rows[run.method][(run.task, run.seed)] = run
    return rows


def spread(cells: dict[tuple[str, int], Run]) -> float:
    """The mean over tasks of the std over seeds (nan below 2 seeds: no spread to compare)."""
    tasks = sorted({task for task, _ in cells})
    if len({seed for _, seed in cells}) < 2:
        return float("nan")
    return float(np.mean([np.std([r.score for (t, _), r in cells.items() if t == task], ddof=1) for task in tasks]))


def cpu_seconds(cells: dict[tuple[str, int], Run]) -> float:
    return float(np.mean([r.cpu_seconds if r.cpu_seconds is not None else r.seconds for r in cells.values()]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="?", type=Path, default=Path("results/pilot_promise.jsonl"))
    parser.add_argument("--split", default="pool_test")
    parser.add_argument("--candidates", nargs="+", default=["mixup-blo", "mixup-mask-swa", "mixup-mask"])
    args = parser.parse_args()

    rows = by_row(load_runs([args.results], args.split).runs)
    tasks = sorted({task for cells in rows.values() for task, _ in cells})
    seeds = sorted({seed for cells in rows.values() for _, seed in cells})
    complete = [s for s in seeds if all((t, s) in cells for cells in rows.values() for t in tasks)]
    print(f"tasks {', '.join(tasks)}; seeds every row finished on every task: {complete or 'none'}"
          + (f" (left out until finished: {sorted(set(seeds) - set(complete))})" if len(complete) < len(seeds) else ""))
    if not complete:
        return
    rows = {label: {key: run for key, run in cells.items() if key[1] in complete} for label, cells in rows.items()}
    vanilla = {label: cells for label, cells in rows.items() if label.startswith("vanilla")}
    best = max(vanilla, key=lambda label: np.mean([r.score for r in vanilla[label].values()]))
    reference = rows[best]
    print(f"V* = {best}: the best vanilla mean over {len(reference)} cells ("
          + ", ".join(f"{label} {np.mean([r.score for r in cells.values()]):.2f}" for label, cells in sorted(vanilla.items()))
          + ")")
    ref_spread, ref_cpu = spread(reference), cpu_seconds(reference)
    print(f"V*'s spread {ref_spread:.2f}, mean CPU {ref_cpu:.0f} s; split {args.split}\n")

    ranked = []
    for label, cells in rows.items():
        if label == best:
            continue
        per_seed = [float(np.mean([cells[(t, s)].score - reference[(t, s)].score for t in tasks])) for s in complete]
        ranked.append((label, compare(per_seed), spread(cells) / ref_spread, cpu_seconds(cells) / ref_cpu))
    ranked = rank(ranked)

    print("| row | mean D [95% t-interval] | MDE | spread / V* | CPU / V* | goal missed |")
    print("|---|---|---|---|---|---|")
    candidates = []
    for label, gain, spread_ratio, cost_ratio in ranked:
        missed = [name for name, ok in (("gain", gain.mean >= GOAL_GAIN), ("spread", spread_ratio <= GOAL_SPREAD_RATIO),
                                        ("cost", cost_ratio <= GOAL_COST_RATIO)) if not ok]
        interval = f"[{gain.low:+.2f}, {gain.high:+.2f}]" if gain.low is not None else "(1 seed)"
        mde = f"{gain.mde:.2f}" if gain.mde is not None else "—"
        print(f"| {label} | {gain.mean:+.2f} {interval} | {mde} | {spread_ratio:.2f}x | {cost_ratio:.2f}x | "
              f"{', '.join(missed) or 'none'} |".replace("nanx", "—"))
        if label in args.candidates:
            candidates.append((label, missed))
    passing = [candidate for candidate in candidates if not candidate[1]]
    if not candidates:
        print("\nno candidate is complete yet")
        return
    label, missed = (passing or candidates)[0]
    print(f"\nchosen for the confirmation: {label}"
          + (f" (it misses the goal on: {', '.join(missed)})" if missed else " (it passes all three)"))


def rank(rows: list[tuple]) -> list[tuple]:
    """Highest mean D first; of two neighbours within TIE, the lower spread ratio first."""
    rows = sorted(rows, key=lambda row: -row[1].mean)
    for i in range(len(rows) - 1):
        first, second = rows[i], rows[i + 1]
        if first[1].mean - second[1].mean <= TIE and second[2] < first[2]:
            rows[i], rows[i + 1] = second, first
    return rows

if __name__ == "__main__":
    main()

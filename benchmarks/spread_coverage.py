"""Coverage of the report's std-ratio interval (Pitman-Morgan, mixtune.bench.stats.std_ratio) against an F interval
that ignores the pairing, on paired normal scores with a true std ratio of 0.5.

    python benchmarks/spread_coverage.py [--draws 20000] [--seed 7]

Prints, per (seeds, correlation of the pair), how often each 95% interval holds the true ratio. About 10 s.
"""

from __future__ import annotations

import argparse

import numpy as np
from scipy import stats

from mixtune.bench.stats import std_ratio

SETTINGS = [(3, 0.0), (5, 0.5), (8, 0.5), (8, 0.9)]
TRUE_RATIO = 0.5


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, default=20000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    print("| seeds | correlation | Pitman-Morgan | F (pairing ignored) |\n|---|---|---|---|")
    for seeds, correlation in SETTINGS:
        rng = np.random.default_rng(args.seed)
        covariance = [[TRUE_RATIO**2, TRUE_RATIO * correlation], [TRUE_RATIO * correlation, 1.0]]
        paired = f_test = 0
        for _ in range(args.draws):
            a, b = rng.multivariate_normal([0.0, 0.0], covariance, size=seeds).T
            r = std_ratio(list(a), list(b))
            paired += r.low <= TRUE_RATIO <= r.high
            variance_ratio, df = np.var(a, ddof=1) / np.var(b, ddof=1), seeds - 1
            low, high = variance_ratio / stats.f.ppf(0.975, df, df), variance_ratio / stats.f.ppf(0.025, df, df)
            f_test += low <= TRUE_RATIO**2 <= high
        print(f"| {seeds} | {correlation} | {paired / args.draws:.2%} | {f_test / args.draws:.2%} |")


if __name__ == "__main__":
    main()

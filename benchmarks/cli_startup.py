"""How fast the `mixtune` command answers when it has no work to do, against importing the heavy libraries.

    python benchmarks/cli_startup.py [--repeats 3]

Each line is the median wall time of `--repeats` fresh subprocesses: `mixtune --help`, an argument error
(`mixtune train --task foo`, which must exit 2), and `python -c "import torch, transformers"` as the
reference. A CLI that checks its arguments before importing torch answers in a small fraction of the
reference (issue 13: help and argument errors in about a second, not tens of seconds).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

MIXTUNE = [str(Path(sys.executable).with_name("mixtune"))]
COMMANDS = {
    "mixtune --help": (MIXTUNE + ["--help"], 0),
    "mixtune train --task foo": (MIXTUNE + ["train", "--task", "foo"], 2),
    "import torch, transformers": ([sys.executable, "-c", "import torch, transformers"], 0),
}


def wall_time(command: list[str], expected_code: int) -> float:
    """Seconds one fresh process takes; a wrong exit code means the measurement is of the wrong thing."""
    started = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if result.returncode != expected_code:
        sys.exit(f"{' '.join(command)} exited {result.returncode}, expected {expected_code}: {result.stderr.strip()[-300:]}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="runs per command; the median is shown (default 3)")
    args = parser.parse_args()
    medians = {name: statistics.median(wall_time(*spec) for _ in range(args.repeats)) for name, spec in COMMANDS.items()}
    reference = medians["import torch, transformers"]
    for name, seconds in medians.items():
        print(f"{name:28} {seconds:6.2f} s  ({seconds / reference:.2f}x the torch+transformers import)")


if __name__ == "__main__":
    main()

"""CPU budget of a bench config before running it, from the run times in finished results files.

    python benchmarks/budget.py benchmarks/table2_n300.yaml --from results/pilot_head.jsonl results/pilot_mixup.jsonl
        [--workers 2] [--by method|task|seed]

Each cell still to run is priced phase by phase from the finished runs (one thread each; their CPU seconds where
the record has cpu_s, else their wall time) of the same method
(mixup-blo: the same form and granularity), task and model: the median seconds per example of its search
(time_s.search over size x search.epochs x search.splits) and of the rest (over size x train.epochs), times the cell's own
budgets. Cells that share a cached search pay for it once. A method never timed on that task is priced by its
median ratio to vanilla on the tasks where both ran; cells with no basis at all are counted apart.
Wall times of busy machines inflate the medians: without cpu_s, pass the quietest files. Runs side by side wait
for the cores too, so where the records have cpu_s the total is also given at their own wall time per CPU-second.
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

from mixtune.bench.grid import Cell, load_grid
from mixtune.bench.results import read_results
from mixtune.bench.runner import plan
from mixtune.bench.runs import run_cost
from mixtune.config import build_config, form_defaults, resolve_defaults
from mixtune.errors import MixtuneError

Kind = tuple[str, ...]  # (method,) or, for mixup-blo, (method, form, granularity): they differ in cost
Phase = str  # "search" (scales with size x search.epochs x search.splits) or "rest" (size x train.epochs)


def kind(method: str, mixup: dict[str, Any]) -> Kind:
    if method != "mixup-blo":
        return (method,)
    form = mixup.get("form") or "released"  # records older than the forms ran the released one
    return (method, form, mixup.get("granularity") or form_defaults(form, "mixup")["granularity"])


def budgets(config: dict[str, Any], size: int) -> dict[Phase, float]:
    """Examples seen per phase, the unit a phase's time is divided by."""
    search = size * float(config["search"]["epochs"]) * int(config["search"]["splits"])  # fewer splits search less
    return {"search": search, "rest": size * float(config["train"]["epochs"] or 1)}


def resolved(cell: Cell) -> dict[str, Any]:
    return resolve_defaults(build_config(copy.deepcopy(cell.values))).to_dict()


class Timings:
    """Seconds per example of each phase, by (kind, task, model), from the finished runs of results files."""

    def __init__(self, paths: list[Path]) -> None:
        self.per_example: dict[tuple[Kind, str, str | None], dict[Phase, list[float]]] = defaultdict(lambda: defaultdict(list))
        self.cpu_s = self.wall_s = 0.0  # over the runs that recorded both: how much waiting the prices leave out
        for path in paths:
            for record in read_results(path):
                size = record["key"].get("size")
                if record.get("status") != "ok" or not size or "time_s" not in record:
                    continue
                times, units = record["time_s"], budgets(record["config"], size)
                search = times.get("search", 0.0)
                alone, _ = run_cost(record)  # a search loaded from the cache counted at its original time
                phases = {"search": search, "rest": alone - search}
                # CPU seconds where the record has them (a busy machine inflates wall time, not CPU time)
                cpu_share = 1.0
                if record.get("cpu_s") and times["total"] > 0:
                    cpu_share = record["cpu_s"] / times["total"]
                    self.cpu_s, self.wall_s = self.cpu_s + record["cpu_s"], self.wall_s + times["total"]
                key = (kind(record["method"], record["config"]["mixup"]), record["key"]["task"], record["key"]["model"])
                for phase, seconds in phases.items():
                    self.per_example[key][phase].append(seconds * cpu_share / units[phase])

    def median(self, what: Kind, task: str, model: str | None) -> dict[Phase, float] | None:
        phases = self.per_example.get((what, task, model))
        return {phase: statistics.median(values) for phase, values in phases.items()} if phases else None

    def ratio_to_vanilla(self, what: Kind, model: str | None) -> dict[Phase, float] | None:
        """The kind's median time per example over vanilla's on the tasks both ran (phase by phase)."""
        ratios: dict[Phase, list[float]] = defaultdict(list)
        tasks = [task for other, task, other_model in self.per_example if other == what and other_model == model]
        for task in tasks:
            if vanilla := self.median(("vanilla",), task, model):
                for phase, seconds in self.median(what, task, model).items():
                    ratios[phase].append(seconds / vanilla["rest"])
        return {phase: statistics.median(values) for phase, values in ratios.items()} if ratios else None

    def price(self, cell: Cell, config: dict[str, Any], with_search: bool) -> float | None:
        if cell.size is None:  # the whole training split: its size is not in the cell
            return None
        what = kind(config["method"], config["mixup"])
        per_example = self.median(what, cell.task, cell.model)
        if per_example is None:
            ratios, vanilla = self.ratio_to_vanilla(what, cell.model), self.median(("vanilla",), cell.task, cell.model)
            if ratios is None or vanilla is None:
                return None
            per_example = {phase: ratio * vanilla["rest"] for phase, ratio in ratios.items()}
        units = budgets(config, cell.size)
        phases = ("search", "rest") if with_search else ("rest",)
        return sum(per_example.get(phase, 0.0) * units[phase] for phase in phases)


def search_key(cell: Cell, config: dict[str, Any]) -> str | None:
    """Cells that share one cached search (mixup-blo under a search_cache): same data, seed, mixup and search."""
    if config["method"] != "mixup-blo":
        return None
    return json.dumps([cell.task, cell.size, cell.seed, cell.model, config["mixup"], config["search"]], sort_keys=True, default=str)


def group_of(cell: Cell, by: str) -> str:
    return {"method": cell.method.split("[")[0], "task": cell.task, "seed": f"seed {cell.seed}"}[by]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("config")
    parser.add_argument("--from", dest="sources", nargs="+", required=True, help="finished results files to time from")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--by", choices=("method", "task", "seed"), default="method")
    args = parser.parse_args(argv)
    try:
        grid = load_grid(args.config)
        timings = Timings([Path(p) for p in args.sources])
    except MixtuneError as exc:
        print(f"budget: error: {exc}", file=sys.stderr)
        return 2
    todo = [cell for cell, action in plan(grid.cells, grid.results, retry_failed=False) if action == "run"]
    seconds: dict[str, float] = defaultdict(float)
    unpriced: dict[str, int] = defaultdict(int)
    searched: set[str] = set()
    for cell in todo:
        config = resolved(cell)
        shared = search_key(cell, config) if grid.search_cache else None
        price = timings.price(cell, config, with_search=shared not in searched)
        if shared is not None:
            searched.add(shared)
        if price is None:
            unpriced[group_of(cell, args.by)] += 1
        else:
            seconds[group_of(cell, args.by)] += price
    print(f"{args.config}: {len(todo)} of {len(grid.cells)} cells to run")
    for group in sorted(set(seconds) | set(unpriced)):
        note = f"   ({unpriced[group]} cells with no timing)" if group in unpriced else ""
        print(f"  {group:28s} {seconds.get(group, 0.0):9,.0f} CPU-s{note}")
    total = sum(seconds.values())
    print(f"  {'total':28s} {total:9,.0f} CPU-s = {total / 3600:.1f} CPU-h: {total / 3600 / args.workers:.1f} h on {args.workers} workers")
    if timings.cpu_s > 0:
        ratio = timings.wall_s / timings.cpu_s
        print(
            f"  the given runs took {timings.wall_s / 3600:.1f} h of wall time for {timings.cpu_s / 3600:.1f} CPU-h ({ratio:.2f}x):"
            f" at that rate, {total * ratio / 3600 / args.workers:.1f} h on {args.workers} workers"
        )
    if unpriced:
        print(f"  {sum(unpriced.values())} cells have no timing in the given files and are not counted")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The `mixtune bench`, `mixtune select` and `mixtune report` commands (added to the main parser by mixtune.cli)."""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

from mixtune.errors import MixtuneError
from mixtune.paths import check_writable


def add_bench_parsers(subparsers) -> None:
    bench = subparsers.add_parser(
        "bench",
        help="run a benchmark grid (models x tasks x sizes x methods x seeds), resuming where it stopped",
        description="Run every cell of a grid config not yet in its results file, one fresh process per run. "
        "Cells already ok are skipped; failed cells are skipped unless --retry-failed.",
    )
    bench.add_argument("config", help="grid YAML (see benchmarks/table_n300.yaml)")
    bench.add_argument(
        "--results", help="results JSONL file (default: the config's results: key, else results/<config stem>.jsonl)"
    )
    bench.add_argument(
        "--workers", type=int, metavar="N",
        help="runs in parallel, each in its own process (default: 1); with --backend ray, the most in flight "
        "(default: as many as the cluster's resources hold)",
    )
    bench.add_argument(
        "--backend", choices=("local", "ray"), default="local",
        help="local: processes on this machine; ray: each run a Ray task with the config's resources: request "
        "(default: local)",
    )
    bench.add_argument(
        "--address", help="with --backend ray: an existing Ray cluster (auto = the one this machine joined with "
        "`ray start`; or HOST:PORT) (default: a local Ray instance started for the sweep)",
    )
    bench.add_argument("--dry-run", action="store_true", help="list the cells and what would happen to each, run nothing (default: run)")
    bench.add_argument("--limit", type=int, metavar="K", help="start at most K runs in this sweep (default: no limit)")
    bench.add_argument(
        "--seeds", help="only the cells of these seeds for now, e.g. 1-3 or 1,4 (the others wait for a later sweep) "
        "(default: every seed of the grid)"
    )
    bench.add_argument("--retry-failed", action="store_true", help="run again the cells whose last attempt failed (default: skip them)")
    bench.add_argument("--in-process", action="store_true", help="run in this process, one at a time (for debugging) (default: a fresh process per run)")
    bench.add_argument("--quiet", action="store_true", help="no progress bar and no per-run lines (default: shown)")
    bench.set_defaults(handler=cmd_bench)

    report = subparsers.add_parser(
        "report",
        help="write report.md and plots from benchmark results files",
        description="Tables (mean ± std over seeds), stability, paired comparison with a baseline, cost, plots.",
    )
    report.add_argument("results", nargs="+", help="results JSONL file(s) written by mixtune bench")
    report.add_argument("--out", help="output folder (default: <results folder>/<results stem>-report)")
    report.add_argument("--baseline", default="vanilla", help="the method the others are compared with (default: vanilla)")
    report.add_argument(
        "--focus", default="mixup-blo", help="the method set against every other row, task by task (default: mixup-blo)"
    )
    report.add_argument(
        "--config", help="the grid config the results came from: its headline_tasks get a verdict of their own and "
        "its rivals are the rows the focus method is judged against (both named before the run) (default: none)",
    )
    report.add_argument(
        "--split", help="score every run on this split instead of its test set, e.g. pool_test (runs made with "
        "data.pool_test_size) (default: the test set)",
    )
    report.set_defaults(handler=cmd_report)

    select = subparsers.add_parser(
        "select",
        help="choose each method's settings from a tuning sweep's results, on dev or pool_test",
        description="Per row (or per method, --by method), the variant with the best mean dev (or pool_test) score "
        "over every (task, seed) cell; only variants with every cell ok. Prints the table; writes the choice as bench "
        "overrides (for a table config's overrides_file:).",
    )
    select.add_argument("results", help="results JSONL file of the tuning sweep (e.g. results/tune_n300.jsonl)")
    select.add_argument(
        "--split", default="dev",
        help="the split scored: dev, or pool_test (runs with data.pool_test_size, on tuning seeds); test is refused "
        "(default: dev)",
    )
    select.add_argument("--out", help="overrides YAML to write (default: print it)")
    select.add_argument(
        "--by", choices=("row", "method"), default="row",
        help="what competes: each row's sweep values (a tuning sweep for a table), or every variant of a "
        "method (choosing a method's default among its forms in a pilot) (default: row)",
    )
    select.set_defaults(handler=cmd_select)


def cmd_bench(args: argparse.Namespace) -> int:
    from mixtune.bench.grid import load_grid
    from mixtune.bench.runner import plan, run_sweep

    if args.address and args.backend != "ray":
        raise MixtuneError("--address names a Ray cluster: add --backend ray")
    grid = load_grid(args.config, args.results)
    for reason in grid.skipped:
        print(f"skipped {reason}", file=sys.stderr)
    if args.seeds:
        wanted = seed_list(args.seeds, {cell.seed for cell in grid.cells})
        later = sum(cell.seed not in wanted for cell in grid.cells)
        grid.cells = [cell for cell in grid.cells if cell.seed in wanted]
        print(f"--seeds {args.seeds}: {len(grid.cells)} cells now, {later} of other seeds left for a later sweep", file=sys.stderr)
    if args.dry_run:
        planned = plan(grid.cells, grid.results, args.retry_failed)
        for cell, action in planned:
            print(f"{action:7} {cell.describe()} [{cell.config_hash}]")
        counts = {a: sum(action == a for _, action in planned) for a in ("run", "done", "failed")}
        print(
            f"{len(planned)} cells: {counts['run']} to run, {counts['done']} done, {counts['failed']} failed; "
            f"results: {grid.results}" + (f"; search cache: {grid.search_cache}" if grid.search_cache else "")
        )
        return 0
    signal.signal(signal.SIGTERM, lambda signum, _: sys.exit(128 + signum))  # `kill` stops the runs in flight, as Ctrl-C does
    summary = run_sweep(
        grid.cells, grid.results, workers=args.workers, limit=args.limit, retry_failed=args.retry_failed,
        isolate=not args.in_process, progress=not args.quiet, search_cache=grid.search_cache, backend=args.backend,
        address=args.address, resources=grid.resources,
    )
    if summary.dropped_partial_line:
        print(f"dropped a partial last line of {grid.results} (a run killed while writing); its cell was redone", file=sys.stderr)
    print(
        f"{summary.ok} ok, {summary.failed} failed in this sweep; {summary.done_before} done before; "
        f"{summary.failed_before} failed before (--retry-failed redoes them); {summary.not_started} left by --limit"
    )
    print(f"results: {grid.results}  report: mixtune report {grid.results}")
    return 1 if summary.failed else 0


def seed_list(text: str, grid_seeds: set[int]) -> set[int]:
    """--seeds: comma-separated seeds and ranges (1-3), each one the grid has."""
    seeds: set[int] = set()
    for part in text.split(","):
        first, _, last = part.strip().partition("-")
        try:
            seeds.update(range(int(first), int(last or first) + 1))
        except ValueError:
            raise MixtuneError(f"--seeds {text}: write seeds and ranges such as 1-3 or 1,4") from None
    if missing := sorted(seeds - grid_seeds):
        raise MixtuneError(f"--seeds {text}: the grid has no seed {', '.join(map(str, missing))}: its seeds are {sorted(grid_seeds)}")
    return seeds


def cmd_select(args: argparse.Namespace) -> int:
    out = Path(args.out) if args.out else None
    if out is not None:
        check_writable(out, "overrides file")
    from mixtune.bench.select import run_select

    return run_select(Path(args.results), args.split, out, by=args.by)


def cmd_report(args: argparse.Namespace) -> int:
    paths = [Path(p) for p in args.results]
    out = Path(args.out) if args.out else paths[0].parent / f"{paths[0].stem}-report"
    check_writable(out, "report folder", folder=True)
    from mixtune.bench.grid import Protocol, load_protocol
    from mixtune.bench.report import write_report

    protocol = load_protocol(args.config) if args.config else Protocol()
    headline = write_report(paths, out, args.baseline, args.focus, protocol, args.split)
    print(headline)
    print(f"report: {out / 'report.md'}")
    return 0

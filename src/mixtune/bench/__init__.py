"""The low-resource benchmark (docs/method.md section 4): run a grid of runs into a results file, report on it.

grid: the YAML config and its cells; runner: the resumable sweep, one process per run; results: the
JSONL results file; report and plots: report.md and PNGs from results files alone; cli: the commands.
"""

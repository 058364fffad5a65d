"""The results file: one JSON line per finished run, appended atomically, read back tolerantly.

Each line is written with a single write() and fsync'd, so a sweep killed mid-write leaves at most one
partial last line. Readers ignore it; the next sweep cuts it off before appending, and redoes that cell.
A line looks like

    {"key": {model, task, size, method, seed, config_hash}, "status": "ok" | "failed", "finished_at": ...,
     ["settings_from": the overrides_file its settings came from,]
     ...the run record of mixtune.run.run (ok) | "method", "error", "traceback", "time_s" (failed)}

(key.method is the row label, e.g. vanilla[lr=2e-05,epochs=3]; "method" the method it ran.)

Kept small: log entries named *indices (the search's per-split val_indices) become their sha256; the
train/dev index lists get a sha256 beside them ("train_sha256") and are kept only up to MAX_STORED_INDICES
entries (the protocol's sizes, 300-1000, are all kept, so a cell's subset can be checked by eye).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from mixtune.bench.grid import Cell, cell_id
from mixtune.errors import MixtuneError
from mixtune.paths import check_writable

MAX_STORED_INDICES = 1000


class ResultsWriter(contextlib.AbstractContextManager):
    """Appends whole lines, holding an exclusive lock on the file so two sweeps never write it at once."""

    def __init__(self, path: Path) -> None:
        check_writable(path, "results file")  # before the first run, not after it
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self.fd)
            raise MixtuneError(f"another mixtune bench is writing {path}: wait for it, or pass --results OTHER.jsonl") from None
        self.dropped_partial = self._drop_partial_tail()

    def _drop_partial_tail(self) -> bool:
        """Cut a last line with no newline (a write interrupted by a kill), so appends start clean."""
        size = os.fstat(self.fd).st_size
        if size == 0 or os.pread(self.fd, 1, size - 1) == b"\n":
            return False
        content = os.pread(self.fd, size, 0)
        os.ftruncate(self.fd, content.rfind(b"\n") + 1)
        return True

    def append(self, line: dict[str, Any]) -> None:
        data = (json.dumps(line) + "\n").encode()
        written = os.write(self.fd, data)
        if written != len(data):
            raise OSError(f"short write to {self.path} ({written} of {len(data)} bytes): is the disk full?")
        os.fsync(self.fd)

    def close(self) -> None:
        os.close(self.fd)  # also releases the lock

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_results(path: Path) -> list[dict[str, Any]]:
    """Every complete line of a results file; a partial last line (no newline) is ignored."""
    if not path.is_file():
        return []
    lines = path.read_bytes().decode("utf-8", errors="replace").split("\n")
    lines.pop()  # "" after the final newline, or a partial line cut by a kill
    records = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            raise MixtuneError(f"{path} line {number} is not valid JSON: delete or fix that line") from None
    return records


def cell_status(records: list[dict[str, Any]]) -> dict[str, str]:
    """Cell id -> "ok" if any run of it finished, else the status of its last attempt."""
    return {cell_id(record["key"]): record["status"] for record in latest_records(records)}


def latest_records(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The last ok record of every cell, else its last failure (how the report and select read results)."""
    latest: dict[str, dict] = {}
    for record in records:
        key = cell_id(record["key"])
        if record["status"] == "ok" or latest.get(key, {}).get("status") != "ok":
            latest[key] = record
    return list(latest.values())


def record_method(record: dict[str, Any]) -> str:
    """The method a results line ran (its key holds the row label); older failure lines lack it."""
    return record.get("method") or record["key"]["method"].split("[")[0]


def row_labels(records: list[dict[str, Any]]) -> dict[tuple[str, str], str]:
    """(key method, config hash) -> row label: the method, with "@hash" only where it ran under several hashes."""
    hashes: dict[str, set[str]] = {}
    for record in records:
        hashes.setdefault(record["key"]["method"], set()).add(record["key"]["config_hash"])
    return {(m, h): m if len(seen) == 1 else f"{m}@{h}" for m, seen in hashes.items() for h in seen}


def result_line(cell: Cell, outcome: dict[str, Any]) -> dict[str, Any]:
    """The line for one finished run: its key and status first, then the (compacted) record."""
    body = {k: v for k, v in outcome.items() if k != "status"}
    body.setdefault("method", cell.values.get("method", cell.method))
    if "indices" in body:
        body["indices"] = compact_indices(body["indices"])
    if "log" in body:
        body["log"] = compact_log(body["log"])
    finished = datetime.now(timezone.utc).isoformat(timespec="seconds")
    line = {"key": cell.key, "status": outcome["status"], "finished_at": finished}
    if cell.settings_from is not None:
        line["settings_from"] = cell.settings_from
    return {**line, **body}


def indices_sha256(indices: Any) -> str:
    """sha256 of the value as compact JSON, e.g. "[4,17,2]": recomputable from any copy of the indices."""
    return hashlib.sha256(json.dumps(indices, separators=(",", ":")).encode()).hexdigest()


def compact_indices(indices: dict[str, Any]) -> dict[str, Any]:
    compact = {}
    for split, value in indices.items():
        if isinstance(value, list):
            compact[f"{split}_sha256"] = indices_sha256(value)
            if len(value) > MAX_STORED_INDICES:
                compact[f"{split}_n"] = len(value)
                continue
        compact[split] = value
    return compact


def compact_log(value: Any) -> Any:
    """The run log with every entry named *indices replaced by {"sha256": ...} of its content."""
    if isinstance(value, dict):
        return {k: {"sha256": indices_sha256(v)} if k.endswith("indices") else compact_log(v) for k, v in value.items()}
    if isinstance(value, list):
        return [compact_log(v) for v in value]
    return value

"""Safe readers for TSV (GLUE layout), CSV and JSONL files, returning rows as dicts of strings.

GLUE TSVs contain quote characters, so tab-separated files are split on tabs with no quoting at all
(csv.QUOTE_NONE semantics); "NA" stays the text "NA"; a UTF-8 byte-order mark (MRPC) is dropped.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from mixtune.errors import MixtuneError


def read_tsv(path: Path, columns: list[str] | None = None) -> list[dict[str, str]]:
    """Rows of a tab-separated file; `columns` names the fields of a file with no header row (CoLA)."""
    text = path.read_text(encoding="utf-8-sig")
    lines = [line.rstrip("\r") for line in text.split("\n")]
    if lines and lines[-1] == "":
        lines.pop()
    if not lines:
        raise MixtuneError(f"{path} is empty: give a file with a header row and at least one example")
    header = columns if columns is not None else lines[0].split("\t")
    body = lines if columns is not None else lines[1:]
    rows = []
    for number, line in enumerate(body, start=1 if columns is not None else 2):
        cells = line.split("\t")
        if len(cells) < len(header):
            raise MixtuneError(
                f"{path} line {number} has {len(cells)} tab-separated fields, the header has {len(header)}: fix or remove that line"
            )
        rows.append(dict(zip(header, cells)))
    return rows


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.DictReader(handle)
        rows = [{k: (v if v is not None else "") for k, v in row.items() if k is not None} for row in reader]
    return rows


def read_jsonl(path: Path) -> list[dict[str, str]]:
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise MixtuneError(f"{path} line {number} is not valid JSON ({exc.msg}): one JSON object per line") from None
        if not isinstance(record, dict):
            raise MixtuneError(f"{path} line {number} is not a JSON object: one object per line, e.g. {{\"text\": ..., \"label\": ...}}")
        rows.append({k: "" if v is None else str(v) if not isinstance(v, str) else v for k, v in record.items()})
    return rows


READERS = {".tsv": read_tsv, ".csv": read_csv, ".jsonl": read_jsonl, ".json": read_jsonl}


def read_table(path: str | Path) -> list[dict[str, str]]:
    """Rows of a user's CSV, TSV or JSONL file (chosen by extension), checked to be non-empty."""
    path = Path(path)
    if not path.is_file():
        raise MixtuneError(f"data file {path} does not exist: check the path")
    reader = READERS.get(path.suffix.lower())
    if reader is None:
        raise MixtuneError(f"data file {path} has an unknown extension: use .csv, .tsv or .jsonl")
    rows = reader(path)
    if not rows:
        raise MixtuneError(f"data file {path} has no examples: give at least one row after the header")
    return rows

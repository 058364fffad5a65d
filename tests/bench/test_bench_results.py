"""The results file: atomic appends, a partial last line ignored and cut, one writer at a time, small records."""

from __future__ import annotations

import hashlib
import json

import pytest

from mixtune.bench.results import (
    MAX_STORED_INDICES,
    ResultsWriter,
    cell_status,
    compact_indices,
    indices_sha256,
    read_results,
    result_line,
)
from mixtune.errors import MixtuneError


def test_appended_lines_read_back_and_a_partial_last_line_is_ignored(results_path):
    with ResultsWriter(results_path) as writer:
        writer.append({"a": 1})
        writer.append({"a": 2})
    assert read_results(results_path) == [{"a": 1}, {"a": 2}]
    with results_path.open("a") as handle:
        handle.write('{"a": 3, "b"')  # a kill in the middle of a write
    assert read_results(results_path) == [{"a": 1}, {"a": 2}]


def test_the_next_writer_cuts_the_partial_line_before_appending(results_path):
    results_path.parent.mkdir(parents=True)
    results_path.write_text('{"a": 1}\n{"a": 2, "tru')
    with ResultsWriter(results_path) as writer:
        assert writer.dropped_partial
        writer.append({"a": 3})
    assert results_path.read_text() == '{"a": 1}\n{"a": 3}\n'
    with ResultsWriter(results_path) as writer:
        assert not writer.dropped_partial


def test_a_broken_line_in_the_middle_is_an_error(results_path):
    results_path.parent.mkdir(parents=True)
    results_path.write_text('{"a": 1}\nnot json\n{"a": 2}\n')
    with pytest.raises(MixtuneError, match="line 2 is not valid JSON: delete or fix that line"):
        read_results(results_path)


def test_two_writers_cannot_share_a_file(results_path):
    with ResultsWriter(results_path), pytest.raises(MixtuneError, match="another mixtune bench is writing"):
        ResultsWriter(results_path)
    ResultsWriter(results_path).close()  # the lock went with the first writer


def test_status_ok_wins_over_failures_and_failures_keep_the_last_word():
    key = {"model": None, "task": "rte", "size": 24, "method": "vanilla", "seed": 1, "config_hash": "h"}
    other = {**key, "seed": 2}
    lines = [
        {"key": key, "status": "failed"},
        {"key": key, "status": "ok"},
        {"key": key, "status": "failed"},
        {"key": other, "status": "failed"},
    ]
    assert set(cell_status(lines).values()) == {"ok", "failed"}
    assert cell_status(lines)["None|rte|24|vanilla|1|h"] == "ok"


def test_records_keep_train_indices_with_a_hash_and_drop_log_indices(make_grid):
    cell = make_grid(seeds=[1])[0]
    log = {"search": {"val_indices": [[1], [2]], "splits": [{"s": 1}]}}
    record = {"indices": {"train": [3, 1, 2], "dev": "dev file"}, "log": log}
    line = result_line(cell, {"status": "ok", **record})
    assert list(line)[:3] == ["key", "status", "finished_at"]
    assert line["key"] == cell.key
    assert line["indices"] == {"train": [3, 1, 2], "train_sha256": indices_sha256([3, 1, 2]), "dev": "dev file"}
    assert line["log"]["search"] == {"val_indices": {"sha256": indices_sha256([[1], [2]])}, "splits": [{"s": 1}]}
    assert indices_sha256([3, 1, 2]) == hashlib.sha256(b"[3,1,2]").hexdigest()
    json.dumps(line)


def test_long_index_lists_keep_only_their_hash():
    big = list(range(MAX_STORED_INDICES + 1))
    assert compact_indices({"train": big}) == {"train_sha256": indices_sha256(big), "train_n": len(big)}

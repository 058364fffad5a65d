"""One run per output folder: an exclusive lock beside it, held from before any work to the end.

Two runs on one folder would share its `<out>.partial` and the second to finish would fail at the final
rename after a whole training. fcntl.flock, not a pid file: the kernel drops the lock when its process
dies, so the file a killed run leaves blocks nothing. Kept free of heavy imports.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from mixtune.errors import MixtuneError


def beside(output: Path, suffix: str) -> Path:
    """`<out><suffix>` next to the output folder (from the absolute path: `.` has no name of its own)."""
    absolute = Path(os.path.abspath(output))
    return absolute.with_name(absolute.name + suffix)


@contextlib.contextmanager
def output_lock(output: Path) -> Iterator[None]:
    """An exclusive flock on `<out>.lock` for the block; another holder is the one-line error at once.

    flock dies with its process, so the file a killed run leaves blocks nothing. The file goes on release,
    and so do the folders made to hold it if they are still empty (a run that failed leaves nothing).
    """
    path = beside(output, ".lock")
    made = [folder for folder in path.parents if not folder.exists()]  # deepest first
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        handle = take_lock(path, output)
        try:
            yield
        finally:
            path.unlink(missing_ok=True)  # before the lock goes: a waiting opener then sees a new file (take_lock)
            handle.close()
    finally:
        for folder in made:
            with contextlib.suppress(OSError):
                folder.rmdir()


def take_lock(path: Path, output: Path) -> IO[str]:
    """The open lock file, flocked and holding this process id; a lock held elsewhere is the one-line error.

    A file the previous holder removed as it finished (locked here just after) is not the lock any more:
    open the path again, so two runs never each hold a different file.
    """
    while True:
        handle = path.open("a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            raise MixtuneError(
                f"output folder {output} is in use by another mixtune run ({holder}, lock {path}): "
                "wait for it to finish, or pass another --output-dir"
            ) from None
        if is_same_file(handle, path):
            handle.truncate(0)
            handle.write(f"pid {os.getpid()}\n")
            handle.flush()
            return handle
        handle.close()


def is_same_file(handle: IO[str], path: Path) -> bool:
    try:
        return os.path.samestat(os.fstat(handle.fileno()), path.stat())
    except FileNotFoundError:
        return False

"""Which exported folders `mixtune predict` may run the code of.

Loading a model folder can run code that came with it: the Python files its auto_map names (the pooled head's
modeling_mixtune.py) and pickled objects (SetFit's head). At export, mixtune records the sha256 of each such
file in run.json; predict runs a folder's code only when every such file is recorded there unchanged, every
auto_map entry names a recorded file, and modeling_mixtune.py is byte for byte the one of this mixtune (so the
code that runs is code already running here). Anything else needs the user's --trust-remote-code.

Light (no torch): the check runs before any model is loaded.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from mixtune.errors import MixtuneError

CODE_SUFFIXES = (".py", ".pkl", ".pickle", ".joblib")  # files a load imports or unpickles
MODELING_FILE = "modeling_mixtune.py"
OWN_MODELING_FILE = Path(__file__).with_name(MODELING_FILE)
AUTO_MAP_FILES = ("config.json", "tokenizer_config.json")


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def code_hashes(folder: Path) -> dict[str, str]:
    """sha256 of every file in `folder` (and below) that loading it may execute, by path relative to the folder."""
    return {
        path.relative_to(folder).as_posix(): sha256(path)
        for path in sorted(folder.rglob("*"))
        if path.is_file() and path.suffix in CODE_SUFFIXES
    }


def auto_map_modules(folder: Path) -> set[str]:
    """The modules (file stems, or 'repo--module' for code on the hub) that the folder's auto_map entries name."""
    modules = set()
    for name in AUTO_MAP_FILES:
        path = folder / name
        if not path.is_file():
            continue
        try:
            entries = json.loads(path.read_text()).get("auto_map") or {}
        except (json.JSONDecodeError, AttributeError):
            raise MixtuneError(f"{path} is not a JSON mapping: the model folder is damaged; train the run again") from None
        for refs in entries.values():
            for ref in refs if isinstance(refs, list) else [refs]:
                if ref:
                    modules.add(ref.rsplit(".", 1)[0])
    return modules


def untrusted_code(folder: Path, recorded: dict[str, str]) -> str | None:
    """Why the code in `folder` is not mixtune's own unchanged export (`recorded`: run.json's hashes), or None."""
    found = code_hashes(folder)
    for name, digest in found.items():
        if name not in recorded:
            return f"{folder / name} is not among the code files run.json recorded at export"
        if recorded[name] != digest:
            return f"{folder / name} changed after the export"
    for module in sorted(auto_map_modules(folder)):
        if f"{module}.py" not in found:
            return f"{folder}'s auto_map names code ({module}) that is not a file mixtune exported"
    if MODELING_FILE in found and found[MODELING_FILE] != sha256(OWN_MODELING_FILE):
        return f"{folder / MODELING_FILE} is not this mixtune's pooled head (it was exported by another version)"
    return None


def check_trusted(folder: Path, recorded: dict[str, str]) -> None:
    """The one-line refusal when predict would run code that mixtune did not export."""
    reason = untrusted_code(folder, recorded)
    if reason is not None:
        raise MixtuneError(
            f"{reason}: predict runs only code mixtune exported unchanged; pass --trust-remote-code to run it anyway "
            "(only for a folder you trust)"
        )

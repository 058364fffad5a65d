"""Help that answers: every flag of train, predict, bench, select and report shows its default, train lists every
method and task; the method names the CLI knows without torch match the registry; an unknown method is refused
in one line before torch is imported; a benchmark model folder that a script assembles is named with the script."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

from mixtune.cli import build_parser
from mixtune.data.glue import GLUE_TASKS
from mixtune.errors import MixtuneError
from mixtune.method_names import (
    COMMON_EPOCHS,
    COMMON_LR,
    METHOD_NAMES,
    OWN_EPOCHS,
    OWN_LRS,
    OWN_PAIR_ENCODINGS,
)
from mixtune.models import resolve_model


def subcommand(name: str) -> argparse.ArgumentParser:
    commands = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return commands.choices[name]


@pytest.mark.parametrize("command", ["train", "predict", "bench", "select", "report"])
def test_every_flag_shows_its_default(command):
    parser = subcommand(command)
    flags = [a for a in parser._actions if a.option_strings and not isinstance(a, argparse._HelpAction)]
    assert flags
    for action in flags:
        if action.required:
            assert "(required)" in action.help, action.option_strings
        else:
            assert "(default: " in action.help, action.option_strings


def test_train_help_lists_every_method_and_task_with_the_defaults(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines, and breaks names at hyphens
    unwrapped = text.replace("- ", "-")
    assert all(name in unwrapped for name in METHOD_NAMES)
    assert all(name in text for name in GLUE_TASKS)
    assert "--method NAME one of mixup-blo," in unwrapped and "(default: mixup-blo)" in text
    assert "--train-scheduler {linear,cosine,constant}" in text and "[train.scheduler] (default: linear)" in text
    assert "[search.epochs] (default: the mixup form's: released 2, convex 2, share 2)" in text
    assert "--search-fd-precondition {true,false}" in text


def test_the_light_method_list_is_the_registry():
    from mixtune.methods import METHODS, Method

    assert sorted(METHOD_NAMES) == sorted(METHODS) and len(set(METHOD_NAMES)) == len(METHOD_NAMES)
    assert OWN_PAIR_ENCODINGS == {name: cls.pair_encoding for name, cls in METHODS.items() if cls.pair_encoding != "auto"}
    assert (COMMON_LR, COMMON_EPOCHS) == (Method.default_lr, Method.default_epochs)
    assert OWN_LRS == {name: cls.default_lr for name, cls in METHODS.items() if cls.default_lr != COMMON_LR}
    assert OWN_EPOCHS == {name: cls.default_epochs for name, cls in METHODS.items() if cls.default_epochs != COMMON_EPOCHS}


def test_an_unknown_method_is_refused_in_one_line_before_torch_loads():
    script = (
        "import sys\nfrom mixtune.cli import main\ncode = main(sys.argv[1:])\n"
        "print('torch' in sys.modules, 'transformers' in sys.modules)\nsys.exit(code)\n"
    )
    result = subprocess.run([sys.executable, "-c", script, "train", "--method", "foo"], capture_output=True, text=True)
    assert result.returncode == 2 and result.stdout.split() == ["False", "False"]
    assert result.stderr.startswith("mixtune: error: unknown method 'foo': choose one of mixup-blo, vanilla")
    assert result.stderr.count("\n") == 1


@pytest.mark.parametrize("name", ["models/all-mpnet-base-v2", "./models/all-mpnet-base-v2"])
def test_the_missing_mpnet_folder_names_the_script_that_assembles_it(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(MixtuneError, match=r"does not exist: assemble it with `bash benchmarks/get_mpnet.sh` from the"):
        resolve_model(name)
    with pytest.raises(MixtuneError, match=r"`bash benchmarks/get_mpnet.sh /elsewhere/models/all-mpnet-base-v2`"):
        resolve_model("/elsewhere/models/all-mpnet-base-v2")

"""The README's code blocks marked `<!-- runnable -->` run as written: every `mixtune` command parses with the real
CLI parser and builds a valid config, every file it names exists or is made by an earlier README command, the
own-data file has enough rows, predict reads a run an earlier command made, and the Python block runs (on a tiny
model)."""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path

import pytest
import yaml

from mixtune.cli import build_parser, config_from_args
from mixtune.methods import METHODS
from mixtune.methods.base import make_method
from mixtune.run import default_output_dir

from .conftest import GLUE_DIR, REPO

README = REPO / "README.md"
RUNNABLE = re.compile(r"<!-- runnable -->\n```(\w+)\n(.*?)```", re.DOTALL)
SEPARATORS = {"&&", "||", ";", "|"}


def runnable_blocks(language: str) -> list[str]:
    return [code for lang, code in RUNNABLE.findall(README.read_text()) if lang == language]


def commands(block: str) -> list[tuple[list[str], str | None]]:
    """Each simple command of a shell block as (argv, the file its stdout is redirected to, or None)."""
    found = []
    for line in block.replace("\\\n", " ").splitlines():
        lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        lexer.commenters = "#"
        argv: list[str] = []
        for token in [*lexer, ";"]:
            if token in SEPARATORS:
                if argv:
                    found.append(_redirected(argv))
                argv = []
            else:
                argv.append(token)
    return found


def _redirected(argv: list[str]) -> tuple[list[str], str | None]:
    if ">" in argv:
        at = argv.index(">")
        return argv[:at], argv[at + 1]
    return argv, None


def shell_commands() -> list[tuple[list[str], str | None]]:
    return [command for block in runnable_blocks("bash") for command in commands(block)]


def mixtune_commands() -> list[list[str]]:
    return [argv[1:] for argv, _ in shell_commands() if argv[0] == "mixtune"]


def exists(path: str) -> bool:
    """Relative to the repository root, where the README's commands run; the GLUE folder only where it is."""
    if path.startswith("../shared/") and not GLUE_DIR.is_dir():
        pytest.skip("GLUE data not found beside the repository")
    return (REPO / path).exists()


def test_the_readme_is_short_and_has_every_kind_of_runnable_block():
    assert len(README.read_text().splitlines()) < 250
    subcommands = {argv[0] for argv in mixtune_commands()}
    assert {"train", "predict", "bench", "report"} <= subcommands
    assert len(runnable_blocks("python")) == 1


def test_every_mixtune_command_parses_and_builds_a_valid_config():
    parser = build_parser()
    for argv in mixtune_commands():
        try:
            args = parser.parse_args(argv)
        except SystemExit as exc:  # argparse's way of saying no
            pytest.fail(f"README: `mixtune {shlex.join(argv)}` does not parse ({exc})")
        if argv[0] == "train":
            make_method(config_from_args(args))  # raises MixtuneError on a bad key, value, method or method argument


def test_every_named_file_exists_or_is_made_by_an_earlier_readme_command():
    parser = build_parser()
    made: set[str] = set()
    runs: set[str] = set()
    for argv, output in shell_commands():
        if argv[0] == "mixtune":
            args = parser.parse_args(argv[1:])
            if argv[1] == "train":
                config = config_from_args(args)
                named = [config.data.train_file, config.data.data_dir, args.config]
                runs.add(str(default_output_dir(config)))
            elif argv[1] == "predict":
                assert args.model.rstrip("/").removesuffix("/model") in runs, f"predict reads {args.model}: no README run makes it"
                named = [args.input]
            elif argv[1] == "bench":
                named = [args.config]
                made.add(yaml.safe_load((REPO / args.config).read_text())["results"])
            elif argv[1] == "report":
                named = list(args.results)
        elif argv[0] == "bash":
            named = [argv[1]]
        elif argv[:3] == ["python3", "-m", "venv"]:
            named = []
            made.add(f"{argv[3]}/bin/activate")
        elif argv[0] == "pip":
            named = [argv[argv.index("-c") + 1]] if "-c" in argv else []
        else:
            named = [a for a in argv[1:] if "/" in a and not a.startswith(("-", "'", '"'))]
        for path in filter(None, named):
            assert path in made or exists(path), f"README: `{shlex.join(argv)}` names {path}, which does not exist"
        if output:
            made.add(output)


def test_the_own_data_example_has_rows_enough_for_its_train_size(tmp_path, glue_dir):
    """Runs the README's file-making commands beside a GLUE link, then loads and samples the file as a run would."""
    from mixtune.data.files import load_user_files
    from mixtune.data.sampling import low_resource_indices

    (tmp_path / "shared" / "data").mkdir(parents=True)
    (tmp_path / "shared" / "data" / "glue").symlink_to(glue_dir)
    checkout = tmp_path / "repo"
    checkout.mkdir()
    for argv, output in shell_commands():
        if output and argv[0] in {"head", "printf"}:
            subprocess.run(f"{shlex.join(argv)} > {shlex.quote(output)}", shell=True, cwd=checkout, check=True)
    own = [argv for argv in mixtune_commands() if argv[0] == "train" and "--train-file" in argv]
    assert own, "the README has an own-data example"
    config = config_from_args(build_parser().parse_args(own[0]))
    config.data.train_file = str(checkout / config.data.train_file)
    data = load_user_files(config.data)
    train, dev = low_resource_indices(len(data.pool), config.data.train_size, config.seed)  # raises if too few rows
    assert len(train) == config.data.train_size and dev


def test_predict_input_has_the_text_column_the_trained_task_reads(tmp_path):
    from mixtune.data.glue import glue_task
    from mixtune.data.readers import read_table

    for argv, output in shell_commands():
        if output and argv[0] == "printf":
            subprocess.run(f"{shlex.join(argv)} > {shlex.quote(output)}", shell=True, cwd=tmp_path, check=True)
    parser = build_parser()
    predict = parser.parse_args(next(argv for argv in mixtune_commands() if argv[0] == "predict"))
    trained = [config_from_args(parser.parse_args(argv)) for argv in mixtune_commands() if argv[0] == "train"]
    task = next(c.data.task for c in trained if str(default_output_dir(c)) == predict.model.rstrip("/").removesuffix("/model"))
    rows = read_table(tmp_path / predict.input)
    assert rows and all(set(glue_task(task).spec.text_columns) <= set(row) for row in rows)


def test_the_python_api_block_runs_on_a_tiny_model(tiny_model_dir, tmp_path, monkeypatch):
    import mixtune.models
    from mixtune.mixup.layer import MixupLinear

    monkeypatch.setattr(mixtune.models, "default_model_path", lambda: str(tiny_model_dir))
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(runnable_blocks("python")[0], "README.md", "exec"), namespace)
    assert not any(isinstance(m, MixupLinear) for m in namespace["plain"].modules())
    assert (tmp_path / "my-model" / "config.json").is_file()


def test_the_methods_table_lists_every_method_once():
    section = README.read_text().split("## Methods", 1)[1].split("\n## ", 1)[0]
    named = [name for cell in re.findall(r"^\| ((?:`[^`]+`(?:, )?)+)", section, flags=re.MULTILINE) for name in re.findall(r"`([^`]+)`", cell)]
    assert sorted(n for n in named if n != "--method") == sorted(METHODS)


def test_every_linked_doc_and_named_repository_path_exists():
    text = README.read_text()
    links = re.findall(r"\]\(([^)#]+)\)", text)
    paths = re.findall(r"`((?:benchmarks|results|docs)/[^`\s]*)`", text)
    missing = [p for p in [*links, *paths] if not (REPO / p).exists() and p not in {"results/smoke-report/"}]
    assert links and paths and missing == []

"""Bad input fails at once with one line (output locations, hub ids with no network, tiny or empty data,
a folder that is not a run), a huge max_length is clamped to the model's limit, and the CLI checks its
arguments before it imports torch."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import mixtune.paths
from mixtune import models
from mixtune.cli import main
from mixtune.config import build_config
from mixtune.data.glue import load_glue
from mixtune.data.sampling import min_split_size, random_split
from mixtune.errors import MixtuneError
from mixtune.paths import check_writable
from mixtune.run import run

from .conftest import WORDS

HEAVY = ("torch", "transformers", "peft", "setfit", "sklearn", "matplotlib")


def cli(args: list[str], capsys) -> tuple[int, str]:
    code = main(args)
    return code, capsys.readouterr().err


def one_line_error(err: str, *parts: str) -> bool:
    return err.startswith("mixtune: error: ") and err.count("\n") == 1 and all(p in err for p in parts)


@pytest.fixture
def blocker(tmp_path: Path) -> Path:
    """A regular file where a folder is needed."""
    path = tmp_path / "blocker"
    path.write_text("not a folder\n")
    return path


# --- output locations ---------------------------------------------------------------------------------
def test_train_output_under_a_regular_file_fails_before_any_work(blocker, tmp_path, capsys):
    code, err = cli(["train", "--task", "rte", "--data-dir", str(tmp_path / "no-data"), "--output-dir", str(blocker / "run")], capsys)
    assert code == 2 and one_line_error(err, f"output folder {blocker / 'run'} cannot be created: {blocker} is a file")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blocker"]


def test_predict_output_under_a_regular_file_fails_before_loading(blocker, capsys):
    code, err = cli(["predict", "--model", "no-run", "--input", "no-input.csv", "--output", str(blocker / "p.jsonl")], capsys)
    assert code == 2 and one_line_error(err, f"output file {blocker / 'p.jsonl'} cannot be created: {blocker} is a file")


def test_an_unwritable_folder_and_a_folder_where_a_file_goes(tmp_path, monkeypatch):
    with pytest.raises(MixtuneError, match="is a folder, not a file"):
        check_writable(tmp_path, "output file")
    monkeypatch.setattr(mixtune.paths.os, "access", lambda path, mode: False)  # as a non-root user on a 0o555 folder
    with pytest.raises(MixtuneError, match=f"cannot be written: {tmp_path} is not writable"):
        check_writable(tmp_path / "run", "output folder", folder=True)


@pytest.mark.parametrize("overwrite", [[], ["--overwrite"]])
def test_a_folder_that_is_not_a_run_is_refused_saying_what_it_holds(tmp_path, capsys, overwrite):
    out = tmp_path / "out"
    (out / "data").mkdir(parents=True)
    (out / "notes.txt").write_text("mine\n")
    code, err = cli(["train", "--task", "rte", "--output-dir", str(out), *overwrite], capsys)
    assert code == 2 and one_line_error(err, "holds 2 files (data/, notes.txt) and no run.json: it is not a mixtune run")
    assert (out / "notes.txt").read_text() == "mine\n"


# --- long inputs ----------------------------------------------------------------------------------------
def test_virtual_tokens_keep_their_positions_free_of_text(tiny_model_dir, capsys):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from mixtune.data.batching import clamp_max_length
    from mixtune.methods import make_method

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForSequenceClassification.from_pretrained(tiny_model_dir)
    method = make_method(build_config({"method": "prompt-tuning", "method_args": {"num_virtual_tokens": 10}}))
    assert clamp_max_length(100000, tokenizer, model, method.reserved_positions) == 64 - 10
    assert "using 54" in capsys.readouterr().err


def test_a_huge_max_length_is_clamped_with_a_notice_and_long_texts_run(tiny_model_dir, tmp_path, capsys):
    """The tiny BERT has 64 positions; a 200-token text with max_length 100000 must neither crash train nor predict."""
    long_text = " ".join(WORDS[i % len(WORDS)] for i in range(200))
    rows = [{"text": f"{WORDS[i % len(WORDS)]} {long_text}", "label": "ab"[i % 2]} for i in range(20)]
    data = tmp_path / "long.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    config = build_config({
        "method": "vanilla", "model": str(tiny_model_dir), "output_dir": str(tmp_path / "run"),
        "data": {"train_file": str(data), "text_columns": ["text"], "train_size": 8},
        "train": {"epochs": 1, "max_length": 100000, "batch_size": 4},
    })
    record = run(config, progress=False)
    err = capsys.readouterr().err
    assert "mixtune: note: max_length 100000 is more than the model takes: using 64" in err
    assert record["config"]["train"]["max_length"] == 64

    record_path = tmp_path / "run" / "run.json"
    old = json.loads(record_path.read_text())
    old["config"]["train"]["max_length"] = 100000  # a run recorded before the clamp
    record_path.write_text(json.dumps(old))
    inputs = tmp_path / "new.jsonl"
    inputs.write_text(json.dumps({"text": long_text}) + "\n")
    code = main(["predict", "--model", str(tmp_path / "run"), "--input", str(inputs), "--output", str(tmp_path / "p.jsonl")])
    assert code == 0 and "using 64" in capsys.readouterr().err
    assert json.loads((tmp_path / "p.jsonl").read_text())["label"] in ("a", "b")


# --- hub ids with no network ------------------------------------------------------------------------------
def test_an_uncached_hub_id_fails_at_once_when_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(models, "hub_reachable", lambda: pytest.fail("offline: the hub must not be tried"))
    with pytest.raises(MixtuneError, match="'someone/no-such-model' is neither a local folder nor in the Hugging Face cache, and HF_HUB_OFFLINE is set"):
        models.resolve_model("someone/no-such-model")


def test_an_unreachable_hub_is_tried_once_then_the_cache_answers(monkeypatch, tmp_path):
    class Down:
        def head(self, url: str, timeout: float) -> None:
            raise ConnectionError("Name or service not known")

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr(models.huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(models.huggingface_hub, "get_session", lambda: Down())
    monkeypatch.setattr(models.huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(MixtuneError, match="cannot be reached: pass a model folder, or go online"):
        models.resolve_model("someone/no-such-model")
    snapshot = tmp_path / "models--someone--cached" / "snapshots" / "abc123"
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text("{}")
    (tmp_path / "models--someone--cached" / "refs").mkdir()
    (tmp_path / "models--someone--cached" / "refs" / "main").write_text("abc123")
    assert models.resolve_model("someone/cached") == str(snapshot)


def test_offline_hub_id_through_the_cli_is_one_line(glue_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    code, err = cli(["train", "--task", "rte", "--data-dir", str(glue_dir), "--model", "someone/no-such-model",
                     "--output-dir", str(tmp_path / "out"), "--quiet"], capsys)
    assert code == 2 and one_line_error(err, "HF_HUB_OFFLINE is set") and not (tmp_path / "out").exists()


# --- tiny and empty data --------------------------------------------------------------------------------
def test_the_search_split_names_its_true_minimum():
    assert [min_split_size(r) for r in (0.8, 0.5, 0.2, 0.9)] == [3, 2, 3, 5]
    assert [len(part) for part in random_split(3, 0.8, seed=1)] == [2, 1]
    with pytest.raises(MixtuneError, match="use at least 3 examples"):
        random_split(2, 0.8, seed=1)


def test_train_size_1_with_mixup_blo_names_the_true_minimum(glue_dir, tiny_model_dir, tmp_path, capsys):
    code, err = cli(["train", "--task", "rte", "--data-dir", str(glue_dir), "--model", str(tiny_model_dir),
                     "--train-size", "1", "--max-length", "32", "--output-dir", str(tmp_path / "out"), "--quiet"], capsys)
    assert code == 2 and one_line_error(err, "too small to split 80%/20%", "use at least 3 examples")


def test_a_header_only_training_file_says_it_has_no_examples(tmp_path):
    (tmp_path / "RTE").mkdir()
    (tmp_path / "RTE" / "train.tsv").write_text("index\tsentence1\tsentence2\tlabel\n")
    with pytest.raises(MixtuneError, match=r"train.tsv has no examples \(a header row only\)"):
        load_glue("rte", str(tmp_path))


# --- a CLI that answers before it imports torch ------------------------------------------------------------
@pytest.mark.parametrize(
    "args, code",
    [(["--help"], 0), (["train", "--help"], 0), (["train", "--task", "foo"], 2), (["train", "--lr", "fast"], 2),
     (["train", "--train-nope", "1"], 2)],
)
def test_help_and_argument_errors_import_no_heavy_library(args, code):
    script = (
        "import sys\nfrom mixtune.cli import main\ntry:\n    code = main(sys.argv[1:])\nexcept SystemExit as exc:\n"
        "    code = exc.code\nprint([m for m in %r if m in sys.modules])\nsys.exit(code)\n" % (HEAVY,)
    )
    result = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True)
    assert result.returncode == code, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]"


# --- divergence -------------------------------------------------------------------------------------------
def test_a_huge_learning_rate_ends_in_the_one_line_error(tiny_model_dir, glue_dir, tmp_path, capsys):
    args = ["train", "--method", "vanilla", "--model", str(tiny_model_dir), "--task", "rte", "--data-dir", str(glue_dir),
            "--train-size", "16", "--epochs", "3", "--max-length", "32", "--lr", "1e30", "--train-max-grad-norm", "none",
            "--quiet", "--output-dir", str(tmp_path / "run")]
    code, err = cli(args, capsys)
    assert code == 2 and one_line_error(err, "lower the learning rate")
    assert not (tmp_path / "run").exists()

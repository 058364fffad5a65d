"""The classification head: which pooling fits the backbone, and building the model with that head.

`pooling: auto` follows the backbone's own training: a sentence-transformers folder declares its pooling
(modules.json names a Pooling module whose config says mean, cls or max). Mean and max get the pooled head
of mixtune.modeling_mixtune; cls, and any model that declares nothing, keep the architecture's own head
(for BERT: the CLS token through the pooler dense layer).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn
from transformers import AutoModel, AutoModelForSequenceClassification, PretrainedConfig

from mixtune.data.examples import TaskSpec
from mixtune.device import model_device, to_device
from mixtune.errors import MixtuneError
from mixtune.modeling_mixtune import PooledModelForSequenceClassification

POOLED_HEADS = ("mean", "max")
# Modules that belong to the task head, not to the pretrained encoder, by architecture.
HEAD_MODULES = ("classifier", "pre_classifier", "score")
ST_POOLING_MODES = {"pooling_mode_mean_tokens": "mean", "pooling_mode_max_tokens": "max", "pooling_mode_cls_token": "cls"}


def declared_pooling(source: str) -> str | None:
    """The pooling a sentence-transformers model folder or hub id declares, or None."""
    modules = _read_json(source, "modules.json")
    if not isinstance(modules, list):
        return None
    for module in modules:
        if str(module.get("type", "")).endswith("models.Pooling"):
            config = _read_json(source, f"{module.get('path', '')}/config.json".lstrip("/"))
            for key, mode in ST_POOLING_MODES.items():
                if isinstance(config, dict) and config.get(key):
                    return mode
    return None


def _read_json(source: str, filename: str) -> object:
    """A JSON file of a local folder, or of a hub repository when it can be fetched; None if absent."""
    path = Path(source) / filename
    if Path(source).is_dir():
        return json.loads(path.read_text()) if path.is_file() else None
    try:
        from huggingface_hub import hf_hub_download

        return json.loads(Path(hf_hub_download(source, filename)).read_text())
    except Exception:  # offline, no such file, not a repository: nothing declared
        return None


def resolve_pooling(source: str, pooling: str) -> str:
    """auto -> the backbone's declared pooling (cls when it declares none); otherwise as asked."""
    if pooling != "auto":
        return pooling
    return declared_pooling(source) or "cls"


def resolve_pair_encoding(asked: str, source: str, pooling: str, spec: TaskSpec) -> str:
    """auto -> cosine for a similarity score (a regression pair task) on a backbone that declares its
    sentence-embedding pooling, the way such backbones were trained (all-MiniLM-L6-v2 on STS-B: 87.8
    Spearman against 76.9 for the cross-encoder, seed 1); joint otherwise. Single sentences: joint."""
    if len(spec.text_columns) != 2:
        return "joint"
    if asked != "auto":
        return asked
    similarity = spec.kind == "regression" and pooling in POOLED_HEADS
    return "cosine" if similarity and declared_pooling(source) is not None else "joint"


def build_classifier(
    source: str, pooling: str, config: PretrainedConfig, pair_encoding: str = "joint", sep_token_id: int | None = None
) -> nn.Module:
    """The pretrained encoder of `source` with a fresh head of the resolved pooling kind.

    sep_token_id: the tokenizer's separator, where the separate and cosine encodings split a joint pair."""
    if pooling not in POOLED_HEADS:
        if pair_encoding != "joint":
            raise MixtuneError(f"pair_encoding {pair_encoding} needs a pooled head and this model has none: pass --pooling mean, or --pair-encoding joint")
        return AutoModelForSequenceClassification.from_pretrained(source, config=config)
    if pair_encoding != "joint":
        if sep_token_id is None:
            raise MixtuneError(f"pair_encoding {pair_encoding} splits a pair at the tokenizer's separator and this tokenizer has none: pass --pair-encoding joint")
        config.mixtune_sep_token_id = sep_token_id
    config.mixtune_pooling = pooling
    config.mixtune_pair_encoding = pair_encoding
    backbone = AutoModel.from_pretrained(source, config=config)
    model = PooledModelForSequenceClassification(config, backbone=backbone)
    return model


def pair_encoding_of(model: nn.Module) -> str:
    """How the model encodes sentence pairs (joint for every architecture's own head)."""
    return getattr(getattr(model, "config", None), "mixtune_pair_encoding", "joint")


def is_head_parameter(name: str) -> bool:
    """Whether a parameter belongs to the task head (new, not pretrained)."""
    return any(part in HEAD_MODULES for part in name.split("."))


def load_exported(directory: str | Path) -> nn.Module:
    """An exported folder, loaded as a plain transformers user would (pooled heads through auto_map)."""
    return AutoModelForSequenceClassification.from_pretrained(str(directory), trust_remote_code=True)


def classifier_layer(model: nn.Module) -> nn.Linear:
    """The linear layer that produces the logits (BERT, the pooled head, DistilBERT; RoBERTa's out_proj)."""
    head = getattr(model, "classifier", None) or getattr(model, "score", None)
    if isinstance(head, nn.Linear):
        return head
    if isinstance(getattr(head, "out_proj", None), nn.Linear):
        return head.out_proj
    raise ValueError("no linear classifier layer (classifier, score or classifier.out_proj) in this model")


@torch.no_grad()
def classifier_inputs(model: nn.Module, batches) -> torch.Tensor:
    """What the classifier layer sees for each example (eval mode): the pooled features the head reads,
    in fp32 on the CPU (batches go to the model's device)."""
    captured: list[torch.Tensor] = []
    hook = classifier_layer(model).register_forward_pre_hook(lambda _, args: captured.append(args[0].detach()))
    was_training = model.training
    model.eval()
    device = model_device(model)
    try:
        for batch in batches:
            model(**to_device({k: v for k, v in batch.items() if k != "labels"}, device))
    finally:
        hook.remove()
        model.train(was_training)
    return torch.cat(captured).cpu()

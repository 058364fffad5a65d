"""A sequence classifier that pools the encoder's token states the way the backbone was trained to.

Sentence-embedding checkpoints (all-MiniLM-L6-v2, all-mpnet-base-v2) were trained with mean pooling; their
BERT pooler was never trained. This head reads the encoder's last hidden states, pools them over the real
tokens (mean or max), applies dropout and one linear layer (one output for regression).

This file is self-contained (torch and transformers only) because every exported model folder carries a
copy of it: `AutoModelForSequenceClassification.from_pretrained(folder, trust_remote_code=True)` loads it
through the `auto_map` entry of the folder's config.json, the hub's convention for custom heads. The folder's
config.json has a model_type of its own (PooledConfig), so that loading it without trust_remote_code=True
fails, naming that argument, instead of building the backbone architecture's own head with fresh weights.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn
from transformers import AutoConfig, AutoModel, PretrainedConfig, PreTrainedModel
from transformers.modeling_outputs import SequenceClassifierOutput

POOLED_MODEL_TYPE = "mixtune_pooled"
BACKBONE_TYPE_KEY = "mixtune_backbone_type"  # the backbone's own model_type (bert, mpnet, ...), in an export


def pack(ids: torch.Tensor, keep: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The kept positions of each row moved to the front, as (ids, attention mask) padded with id 0."""
    order = torch.argsort((~keep).to(torch.int8), dim=1, stable=True)
    lengths = keep.sum(dim=1, keepdim=True)
    width = int(lengths.max())
    mask = (torch.arange(width, device=ids.device) < lengths).long()
    return ids.gather(1, order)[:, :width] * mask, mask


def split_pair(input_ids: torch.Tensor, attention_mask: torch.Tensor, sep_token_id: int):
    """Both sentences of a joint pair batch as one batch of 2 x batch single sentences.

    Found by the separator, not token_type_ids (RoBERTa and MPNet tokenizers give none): sentence a is
    everything up to the first separator ('[CLS] a [SEP]'); sentence b is what follows the separators after
    it (one for BERT, '</s></s>' for RoBERTa and MPNet), with the row's first token ([CLS], <s>) put in
    front, so each reads exactly as the sentence encoded alone. Rows: all the a's, then all the b's.
    """
    real = attention_mask.bool()
    is_sep = real & (input_ids == sep_token_id)
    positions = torch.arange(input_ids.shape[1], device=input_ids.device)
    first_sep = torch.where(is_sep, positions, input_ids.shape[1]).min(dim=1, keepdim=True).values
    after = real & (positions > first_sep)
    leading_seps = after & is_sep & ((after & ~is_sep).cumsum(dim=1) == 0)
    first = real & (positions <= first_sep)
    second = torch.cat([real[:, :1], after & ~leading_seps], dim=1)
    ids_a, mask_a = pack(input_ids, first)
    ids_b, mask_b = pack(torch.cat([input_ids[:, :1], input_ids], dim=1), second)
    width = max(ids_a.shape[1], ids_b.shape[1])
    pad = lambda t: nn.functional.pad(t, (0, width - t.shape[1]))  # noqa: E731
    return torch.cat([pad(ids_a), pad(ids_b)]), torch.cat([pad(mask_a), pad(mask_b)])


def pool_tokens(hidden: torch.Tensor, mask: torch.Tensor, mode: str) -> torch.Tensor:
    """Mean or max of `hidden` (batch, length, width) over the positions where `mask` is 1."""
    mask = mask[:, -hidden.shape[1]:].unsqueeze(-1).to(hidden.dtype)  # prefix tuning: mask longer than hidden
    if mode == "max":
        return hidden.masked_fill(mask == 0, torch.finfo(hidden.dtype).min).max(dim=1).values
    return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)


class PooledConfig(PretrainedConfig):
    """An exported pooled model's config: the backbone's keys as its own config has them (flat: hidden_size,
    num_hidden_layers, ...), the mixtune_* head keys, and mixtune_backbone_type.

    The model_type is not the backbone's: a transformers that knows "bert" would otherwise build a
    BertForSequenceClassification from the folder, load the backbone.* weights nowhere, draw a fresh
    pooler and classifier, and predict noise without an error.
    """

    model_type = POOLED_MODEL_TYPE

    def backbone_config(self) -> PretrainedConfig:
        """The backbone's own config (a BertConfig for a BERT backbone), which AutoModel builds the encoder from."""
        skipped = ("model_type", "auto_map", "architectures", "transformers_version", BACKBONE_TYPE_KEY)
        values = {key: value for key, value in self.to_dict().items() if key not in skipped}
        return AutoConfig.for_model(getattr(self, BACKBONE_TYPE_KEY), **values)


def backbone_config_of(config: PretrainedConfig) -> PretrainedConfig:
    """A PooledConfig's backbone config; any other config is the backbone's already (in memory during a run,
    and in folders exported before PooledConfig, whose model_type is the backbone's)."""
    return config.backbone_config() if isinstance(config, PooledConfig) else config


def declare_pooled_model_type(config_file: Path) -> None:
    """Rewrite a saved config.json as a PooledConfig: model_type mixtune_pooled (the backbone's kept under
    mixtune_backbone_type) and an auto_map entry that loads PooledConfig from this file."""
    values = json.loads(config_file.read_text())
    if values.get("model_type") != POOLED_MODEL_TYPE:
        values[BACKBONE_TYPE_KEY] = values.get("model_type")
        values["model_type"] = POOLED_MODEL_TYPE
    module = __name__.rsplit(".", 1)[-1]  # modeling_mixtune, however this file was imported
    values.setdefault("auto_map", {})["AutoConfig"] = f"{module}.{PooledConfig.__name__}"
    config_file.write_text(json.dumps(values, indent=2, sort_keys=True) + "\n")


class PooledModelForSequenceClassification(PreTrainedModel):
    """Any AutoModel encoder, pooled over its tokens (config.mixtune_pooling: mean | max), then a linear head.

    config.mixtune_pair_encoding "separate" encodes the two sentences of a pair apart (a bi-encoder, as
    sentence-transformers models were trained) and classifies [u, v, |u - v|, u * v] (Reimers and Gurevych
    2019); "cosine" encodes them apart and maps their cosine similarity through the linear layer (one input:
    the sentence-transformers recipe for similarity tasks); "joint" (the default) encodes the pair together,
    as a cross-encoder; the two apart encodings split the joint input at config.mixtune_sep_token_id (any
    tokenizer's pair layout). config.mixtune_skip_leading_tokens leading positions are left out of the pool:
    prompt tuning prepends its virtual tokens to the input.
    """

    base_model_prefix = "backbone"
    config_class = PooledConfig  # what AutoConfig gives for an export; a run builds the model on the backbone's config

    def __init__(self, config, backbone: nn.Module | None = None) -> None:
        super().__init__(config)
        self.num_labels = config.num_labels  # peft's sequence-classification wrapper reads it
        self.backbone = backbone if backbone is not None else AutoModel.from_config(backbone_config_of(config))
        if getattr(self.backbone, "pooler", None) is not None:
            self.backbone.pooler = None  # an unused pooler would be a dead target for every method
        dropout = getattr(config, "classifier_dropout", None)
        if dropout is None:
            dropout = getattr(config, "hidden_dropout_prob", 0.1)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(self._feature_width(config), config.num_labels)
        self.post_init()

    def _init_weights(self, module: nn.Module) -> None:
        if module is getattr(self, "classifier", None):
            if self.pair_encoding == "cosine":  # the similarity itself; mixtune refits this map on the data
                module.weight.data.fill_(1.0)
            else:
                module.weight.data.normal_(0.0, getattr(self.config, "initializer_range", 0.02))
            module.bias.data.zero_()

    def save_pretrained(self, save_directory, *args, **kwargs) -> None:
        """As every model saves, plus: this file beside the weights, and config.json as a PooledConfig (so
        transformers without trust_remote_code refuses the folder rather than loading a wrong model)."""
        if self._auto_class is None:
            self.register_for_auto_class("AutoModelForSequenceClassification")
        super().save_pretrained(save_directory, *args, **kwargs)
        config_file = Path(save_directory) / "config.json"
        if config_file.is_file():  # not written by the processes that are not the main one
            declare_pooled_model_type(config_file)

    @staticmethod
    def _feature_width(config) -> int:
        encoding = getattr(config, "mixtune_pair_encoding", "joint")
        return {"separate": 4 * config.hidden_size, "cosine": 1}.get(encoding, config.hidden_size)

    @property
    def pair_encoding(self) -> str:
        return getattr(self.config, "mixtune_pair_encoding", "joint")

    def get_input_embeddings(self) -> nn.Module:
        return self.backbone.get_input_embeddings()

    def forward(self, input_ids=None, attention_mask=None, labels=None, inputs_embeds=None, past_key_values=None, **kwargs):
        """past_key_values: prefix tuning's per-layer prefix (peft passes it only to a forward that names it)."""
        if past_key_values is not None:
            kwargs["past_key_values"] = past_key_values
        kwargs.pop("return_dict", None)
        kwargs.pop("output_hidden_states", None)
        if attention_mask is None:
            shape = (input_ids if input_ids is not None else inputs_embeds).shape[:2]
            attention_mask = torch.ones(shape, dtype=torch.long, device=self.device)
        if self.pair_encoding in ("separate", "cosine"):
            kwargs.pop("token_type_ids", None)  # each sentence is encoded alone, as segment 0
            u, v = self._pair_embeddings(input_ids, attention_mask, kwargs)
            if self.pair_encoding == "cosine":  # no dropout on the one similarity feature
                logits = self.classifier(nn.functional.cosine_similarity(u, v, dim=-1).unsqueeze(-1))
                return SequenceClassifierOutput(loss=self._loss(logits, labels), logits=logits)
            features = torch.cat([u, v, (u - v).abs(), u * v], dim=-1)
        else:
            features = self._pooled(input_ids, attention_mask, inputs_embeds, kwargs)
        logits = self.classifier(self.dropout(features))
        return SequenceClassifierOutput(loss=self._loss(logits, labels), logits=logits)

    def _pooled(self, input_ids, attention_mask, inputs_embeds, kwargs) -> torch.Tensor:
        outputs = self.backbone(input_ids=input_ids, attention_mask=attention_mask, inputs_embeds=inputs_embeds, **kwargs)
        hidden = outputs.last_hidden_state
        skip = getattr(self.config, "mixtune_skip_leading_tokens", 0)
        if skip:
            hidden, attention_mask = hidden[:, skip:], attention_mask[:, -hidden.shape[1] + skip:]
        return pool_tokens(hidden, attention_mask, getattr(self.config, "mixtune_pooling", "mean"))

    def _pair_embeddings(self, input_ids, attention_mask, kwargs) -> tuple[torch.Tensor, torch.Tensor]:
        """The two sentences' pooled embeddings (u, v), each sentence encoded alone."""
        sep_token_id = getattr(self.config, "mixtune_sep_token_id", None)
        if input_ids is None or sep_token_id is None:
            raise ValueError(f"{self.pair_encoding} pair encoding needs input_ids and config.mixtune_sep_token_id (the tokenizer's separator)")
        kwargs.pop("position_ids", None)
        ids, mask = split_pair(input_ids, attention_mask, sep_token_id)
        u, v = self._pooled(ids, mask, None, kwargs).chunk(2)
        return u, v

    def _loss(self, logits: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor | None:
        if labels is None:
            return None
        if self.config.num_labels == 1:
            return nn.functional.mse_loss(logits.squeeze(-1), labels.to(logits.dtype))
        return nn.functional.cross_entropy(logits, labels)

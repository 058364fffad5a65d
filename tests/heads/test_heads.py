"""The pooling head: auto detection, masked pooling, sentence-pair splitting, export reload with identical logits."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers, processors
from transformers import AutoTokenizer, PreTrainedTokenizerFast, RobertaConfig, RobertaModel

from mixtune.data.examples import TaskSpec
from mixtune.errors import MixtuneError
from mixtune.heads import (
    declared_pooling,
    is_head_parameter,
    load_exported,
    resolve_pooling,
)
from mixtune.modeling_mixtune import (
    PooledModelForSequenceClassification,
    pool_tokens,
    split_pair,
)
from mixtune.models import load_model
from tests.conftest import WORDS

SPEC = TaskSpec("toy", "classification", ["a", "b"], ["no", "yes"], ["accuracy"])


def declare_pooling(directory: Path, **modes: bool) -> None:
    """A sentence-transformers modules.json and Pooling config in a model folder."""
    (directory / "modules.json").write_text(json.dumps([
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
    ]))
    (directory / "1_Pooling").mkdir(exist_ok=True)
    (directory / "1_Pooling" / "config.json").write_text(json.dumps({f"pooling_mode_{k}": v for k, v in modes.items()}))


@pytest.fixture
def st_model_dir(tiny_model_dir, tmp_path) -> Path:
    """The tiny BERT folder, declared as a mean-pooling sentence-transformers model."""
    directory = tmp_path / "st-model"
    directory.mkdir()
    for path in tiny_model_dir.iterdir():
        (directory / path.name).write_bytes(path.read_bytes())
    declare_pooling(directory, mean_tokens=True, cls_token=False, max_tokens=False)
    return directory


@pytest.fixture
def roberta_st_dir(tmp_path) -> Path:
    """A tiny RoBERTa-style sentence-embedding folder: pairs as '<s> a </s></s> b </s>', no token_type_ids
    (the layout of all-mpnet-base-v2 and roberta-large), mean pooling declared."""
    directory = tmp_path / "roberta-st"
    vocab = {token: i for i, token in enumerate(["<s>", "<pad>", "</s>", "<unk>", *WORDS])}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    backend.post_processor = processors.RobertaProcessing(("</s>", 2), ("<s>", 0))
    PreTrainedTokenizerFast(
        tokenizer_object=backend, bos_token="<s>", eos_token="</s>", sep_token="</s>", cls_token="<s>",
        pad_token="<pad>", unk_token="<unk>", model_input_names=["input_ids", "attention_mask"],
    ).save_pretrained(directory)
    torch.manual_seed(0)
    config = RobertaConfig(
        vocab_size=len(vocab), hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32,
        max_position_embeddings=66, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, type_vocab_size=1,
    )
    RobertaModel(config).save_pretrained(directory)
    declare_pooling(directory, mean_tokens=True, cls_token=False, max_tokens=False)
    return directory


def test_auto_reads_the_declared_pooling(st_model_dir, tiny_model_dir, tmp_path):
    assert declared_pooling(str(st_model_dir)) == "mean"
    assert resolve_pooling(str(st_model_dir), "auto") == "mean"
    assert resolve_pooling(str(tiny_model_dir), "auto") == "cls"  # nothing declared: the architecture's head
    assert resolve_pooling(str(st_model_dir), "cls") == "cls"  # an explicit choice wins
    declare_pooling(st_model_dir, mean_tokens=False, max_tokens=True)
    assert declared_pooling(str(st_model_dir)) == "max"


def test_the_packaged_model_declares_mean_pooling():
    from mixtune.models import default_model_path

    assert declared_pooling(default_model_path()) == "mean"


def test_mean_and_max_pooling_ignore_padding():
    hidden = torch.tensor([[[1.0, 2.0], [3.0, 6.0], [100.0, -100.0]]])
    mask = torch.tensor([[1, 1, 0]])
    assert torch.allclose(pool_tokens(hidden, mask, "mean"), torch.tensor([[2.0, 4.0]]))
    assert torch.allclose(pool_tokens(hidden, mask, "max"), torch.tensor([[3.0, 6.0]]))


def test_padding_does_not_change_the_pooled_model_logits(st_model_dir):
    _, model, head = load_model(str(st_model_dir), SPEC, seed=0)
    assert head == "mean" and isinstance(model, PooledModelForSequenceClassification)
    model.eval()
    ids = torch.tensor([[2, 10, 11, 12, 3]])
    alone = model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits
    padded_ids = torch.cat([ids, torch.zeros(1, 4, dtype=torch.long)], dim=1)
    padded_mask = torch.cat([torch.ones_like(ids), torch.zeros(1, 4, dtype=torch.long)], dim=1)
    padded = model(input_ids=padded_ids, attention_mask=padded_mask).logits
    assert torch.allclose(alone, padded, atol=1e-5)


def test_the_pooled_head_drops_the_unused_pooler(st_model_dir):
    _, model, _ = load_model(str(st_model_dir), SPEC, seed=0)
    assert not any("pooler" in name for name, _ in model.named_parameters())
    assert [name for name, _ in model.named_parameters() if is_head_parameter(name)] == ["classifier.weight", "classifier.bias"]


@pytest.mark.parametrize("folder", ["tiny_model_dir", "roberta_st_dir"])  # '[SEP]' between; '</s></s>' between
def test_split_pair_gives_each_sentence_as_encoded_alone(folder, request):
    tokenizer = AutoTokenizer.from_pretrained(request.getfixturevalue(folder))
    a, b = ["the cat sat on the mat", "a dog"], ["very good", "it was not a good movie and"]
    joint = tokenizer(a, b, padding=True, return_tensors="pt")
    ids, mask = split_pair(joint["input_ids"], joint["attention_mask"], tokenizer.sep_token_id)
    for row, text in enumerate(a + b):
        expected = tokenizer(text)["input_ids"]
        assert ids[row, : len(expected)].tolist() == expected
        assert mask[row].sum() == len(expected)


def test_separate_pair_features_are_the_bi_encoder_features(st_model_dir):
    tokenizer, model, _ = load_model(str(st_model_dir), SPEC, seed=0, pair_encoding="separate")
    model.eval()
    assert model.classifier.in_features == 4 * model.config.hidden_size
    batch = tokenizer(["the cat sat"], ["a good dog"], return_tensors="pt")
    captured = []
    model.classifier.register_forward_pre_hook(lambda _, args: captured.append(args[0]))
    model(**batch)
    encode = lambda text: model._pooled(**{k: v for k, v in tokenizer(text, return_tensors="pt").items() if k != "token_type_ids"}, inputs_embeds=None, kwargs={})  # noqa: E731
    u, v = encode("the cat sat"), encode("a good dog")
    assert torch.allclose(captured[0], torch.cat([u, v, (u - v).abs(), u * v], dim=-1), atol=1e-5)


@pytest.mark.parametrize("folder", ["st_model_dir", "roberta_st_dir"])
def test_the_cosine_head_scores_the_cosine_of_the_two_sentence_embeddings(folder, request):
    regression = TaskSpec("toy", "regression", ["a", "b"], None, ["spearman"])
    tokenizer, model, _ = load_model(str(request.getfixturevalue(folder)), regression, seed=0, pair_encoding="cosine")
    model.eval()
    assert model.classifier.in_features == 1 and model.classifier.weight.item() == 1.0  # data-free start: the cosine
    with torch.no_grad():
        model.classifier.weight.fill_(4.0)
        model.classifier.bias.fill_(0.5)
    batch = tokenizer(["the cat sat", "a dog"], ["a good dog", "a dog"], padding=True, return_tensors="pt")
    scores = model(**batch).logits.squeeze(-1)
    encode = lambda text: model._pooled(**{k: v for k, v in tokenizer(text, return_tensors="pt").items() if k != "token_type_ids"}, inputs_embeds=None, kwargs={})  # noqa: E731
    cosine = torch.nn.functional.cosine_similarity(encode("the cat sat"), encode("a good dog")).item()
    assert scores[0].item() == pytest.approx(4.0 * cosine + 0.5, abs=1e-5)
    assert scores[1].item() == pytest.approx(4.5, abs=1e-5)  # a sentence paired with itself: cosine 1


def test_the_cosine_head_starts_at_the_least_squares_map_from_cosine_to_label(st_model_dir, tmp_path):
    from mixtune.config import build_config
    from mixtune.heads import classifier_inputs
    from mixtune.probe import start_cosine_head
    from mixtune.train import FitContext

    regression = TaskSpec("toy", "regression", ["a", "b"], None, ["spearman"])
    tokenizer, model, _ = load_model(str(st_model_dir), regression, seed=0, pair_encoding="cosine")
    words = ["cat", "dog", "sat", "good", "bad", "the", "a", "movie"]
    rows = [(f"{words[i % 8]} {words[(i * 3) % 8]}", f"{words[(i * 5) % 8]} {words[(i + 1) % 8]}") for i in range(24)]
    features = [dict(tokenizer(a, b), labels=float(i % 6)) for i, (a, b) in enumerate(rows)]
    ctx = FitContext(features, tokenizer, build_config({"method": "vanilla"}), 0, progress=False)
    start_cosine_head(model, ctx)
    cosine = classifier_inputs(model, ctx.loader(shuffle=False)).double().squeeze(-1)
    labels = torch.tensor([f["labels"] for f in features], dtype=torch.float64)
    slope = ((cosine - cosine.mean()) * (labels - labels.mean())).sum() / ((cosine - cosine.mean()) ** 2).sum()
    assert model.classifier.weight.item() == pytest.approx(slope.item(), rel=1e-2)
    assert model.classifier.bias.item() == pytest.approx((labels.mean() - slope * cosine.mean()).item(), rel=1e-2, abs=1e-3)
    assert "head_start" in ctx.log


def test_auto_pair_encoding_scores_similarity_with_cosine_on_sentence_embedding_backbones(st_model_dir, tiny_model_dir):
    regression = TaskSpec("toy", "regression", ["a", "b"], None, ["spearman"])
    single = TaskSpec("toy", "regression", ["a"], None, ["spearman"])
    encoding = lambda source, spec, **kw: load_model(str(source), spec, seed=0, pair_encoding="auto", **kw)[1].config.mixtune_pair_encoding  # noqa: E731
    assert encoding(st_model_dir, regression) == "cosine"
    assert encoding(st_model_dir, SPEC) == "joint"  # classification pairs: a cross-encoder
    assert encoding(st_model_dir, single) == "joint"
    assert encoding(tiny_model_dir, regression, pooling="mean") == "joint"  # declares no sentence embedding


@pytest.mark.parametrize("pairs", ["separate", "cosine"])
def test_bi_encoders_need_a_pooled_head(tiny_model_dir, pairs):
    with pytest.raises(MixtuneError, match="pooled head"):
        load_model(str(tiny_model_dir), SPEC, seed=0, pooling="cls", pair_encoding=pairs)


def test_bi_encoders_need_a_separator_to_split_the_pair(st_model_dir):
    from transformers import AutoConfig

    from mixtune.heads import build_classifier

    with pytest.raises(MixtuneError, match="separator"):
        build_classifier(str(st_model_dir), "mean", AutoConfig.from_pretrained(st_model_dir), "cosine", sep_token_id=None)


@pytest.mark.parametrize(
    "pooling,pairs", [("mean", "joint"), ("mean", "separate"), ("mean", "cosine"), ("max", "joint"), ("cls", "joint")]
)
def test_export_reloads_with_plain_transformers_and_identical_logits(st_model_dir, tmp_path, pooling, pairs):
    tokenizer, model, _ = load_model(str(st_model_dir), SPEC, seed=3, pooling=pooling, pair_encoding=pairs)
    model.eval()
    model.save_pretrained(tmp_path / "export")
    tokenizer.save_pretrained(tmp_path / "export")
    reloaded = load_exported(tmp_path / "export").eval()
    batch = tokenizer(["the cat sat", "a dog is good"], ["very bad", "the movie"], padding=True, return_tensors="pt")
    assert torch.allclose(model(**batch).logits, reloaded(**batch).logits, atol=1e-6)
    config = json.loads((tmp_path / "export" / "config.json").read_text())
    if pooling == "cls":
        assert "auto_map" not in config and not (tmp_path / "export" / "modeling_mixtune.py").exists()
    else:
        assert config["auto_map"]["AutoModelForSequenceClassification"].startswith("modeling_mixtune.")
        assert config["mixtune_pooling"] == pooling and config["mixtune_pair_encoding"] == pairs


@pytest.mark.parametrize("folder", ["st_model_dir", "roberta_st_dir"])  # BERT's and RoBERTa's pair layouts
def test_a_similarity_task_gets_the_cosine_head_by_default_and_classification_pairs_stay_joint(folder, request, glue_dir):
    from mixtune.config import build_config
    from mixtune.run import run

    def head(task: str, method: str) -> dict:
        config = build_config({
            "method": method, "model": str(request.getfixturevalue(folder)), "data": {"task": task, "data_dir": str(glue_dir), "train_size": 12},
            "train": {"epochs": 1, "max_length": 24, "batch_size": 6},
        })
        return run(config, progress=False, write=False)["head"]

    assert head("stsb", "vanilla") == {"pooling": "mean", "pair_encoding": "cosine"}
    assert head("rte", "vanilla") == {"pooling": "mean", "pair_encoding": "joint"}
    assert head("stsb", "linear-probe")["pair_encoding"] == "separate"

"""Layer-wise lr decay and top-layer re-initialisation (Zhang et al. 2021) on a tiny BERT."""

import pytest
import torch
from torch import nn
from transformers import AutoConfig, AutoModelForSequenceClassification

import mixtune.run as run_module
from mixtune.config import build_config, flag_specs
from mixtune.errors import MixtuneError
from mixtune.heads import build_classifier
from mixtune.layers import (
    layer_depth,
    layerwise_groups,
    num_hidden_layers,
    reinit_top_layers,
)
from mixtune.methods import make_method
from mixtune.optim import make_optimizer, make_schedule
from mixtune.run import run
from tests.conftest import tiny_bert

DECAY, LR = 0.5, 1e-3


@pytest.mark.parametrize(
    ("name", "depth"),
    [
        ("bert.embeddings.word_embeddings.weight", 0),
        ("bert.embeddings.LayerNorm.weight", 0),
        ("bert.encoder.layer.0.attention.self.query.weight", 1),
        ("bert.encoder.layer.1.output.LayerNorm.bias", 2),
        ("bert.encoder.layer.1.intermediate.dense.base_layer.weight", 2),  # wrapped (mixout, mixup)
        ("bert.pooler.dense.weight", 3),
        ("classifier.weight", 3),
        ("distilbert.transformer.layer.1.ffn.lin1.weight", 2),
        ("model.layers.0.mlp.weight", 1),
    ],
)
def test_layer_depth(name, depth):
    assert layer_depth(name, num_layers=2) == depth


def test_num_hidden_layers_counts_the_encoder_layers():
    assert num_hidden_layers(tiny_bert()) == 2
    with pytest.raises(MixtuneError, match="layer.N"):
        num_hidden_layers(nn.Sequential(nn.Linear(2, 2)))


def group_of(groups: list[dict]) -> dict[int, dict]:
    by_param = {}
    for group in groups:
        for param in group["params"]:
            assert id(param) not in by_param  # each parameter in exactly one group
            by_param[id(param)] = group
    return by_param


def test_group_lrs_follow_the_decay_formula_and_keep_the_no_decay_rule():
    model = tiny_bert()
    by_param = group_of(layerwise_groups(model.named_parameters(), 0.01, LR, DECAY, 2))
    assert len(by_param) == len(list(model.parameters()))
    expected = {
        "bert.embeddings.word_embeddings.weight": LR * DECAY**3,
        "bert.encoder.layer.0.attention.self.query.weight": LR * DECAY**2,
        "bert.encoder.layer.1.output.dense.weight": LR * DECAY,
        "bert.pooler.dense.weight": LR,
        "classifier.weight": LR,
    }
    for name, param in model.named_parameters():
        group = by_param[id(param)]
        assert group["lr"] == pytest.approx(LR * DECAY ** (3 - layer_depth(name, 2)))
        assert group["weight_decay"] == (0.0 if "bias" in name or "LayerNorm" in name else 0.01)
        if name in expected:
            assert group["lr"] == pytest.approx(expected[name])


def test_the_schedule_keeps_the_layer_ratios():
    groups = layerwise_groups(tiny_bert().named_parameters(), 0.01, LR, DECAY, 2)
    initial = [g["lr"] for g in groups]
    optimizer = make_optimizer(groups, LR)
    schedule = make_schedule(optimizer, "linear", 10, 0.1)
    for _ in range(4):
        optimizer.step()
        schedule.step()
    lrs = schedule.get_last_lr()
    factor = lrs[0] / initial[0]
    assert 0 < factor < 1
    assert lrs == pytest.approx([lr * factor for lr in initial])


def test_methods_use_layer_groups_only_when_asked():
    model = tiny_bert()
    plain = make_method(build_config({"method": "vanilla"})).parameter_groups(model, 0.01, LR)
    assert all("lr" not in g for g in plain)
    decayed = make_method(build_config({"method": "vanilla", "train": {"layer_decay": DECAY}}))
    lrs = sorted({g["lr"] for g in decayed.parameter_groups(model, 0.01, LR)})
    assert lrs == pytest.approx([LR * DECAY**d for d in (3, 2, 1, 0)])


def test_joint_decays_the_task_weights_but_not_alpha():
    method = make_method(build_config({"method": "joint", "train": {"layer_decay": DECAY}}))
    model = method.inject(tiny_bert(), seed=0)
    *task, alpha = method.parameter_groups(model, 0.01, LR)
    assert alpha["lr"] == 2e-3  # search.alpha_lr: unset, the released form's
    assert min(g["lr"] for g in task) == pytest.approx(LR * DECAY**3)


@pytest.fixture
def loaded(tiny_model_dir):
    """Two copies of the saved tiny BERT, loaded as a run loads it (tensors flagged as loaded)."""

    def load() -> nn.Module:
        model = AutoModelForSequenceClassification.from_pretrained(tiny_model_dir)
        torch.manual_seed(123)
        with torch.no_grad():
            for param in model.parameters():  # off every init value, so a reset LayerNorm shows too
                param.add_(0.1 * torch.randn_like(param))
        return model

    return load


def in_top_layer_or_pooler(name: str) -> bool:
    return name.startswith(("bert.encoder.layer.1.", "bert.pooler."))


def test_reinit_changes_exactly_the_top_layers_and_the_pooler(loaded):
    model, reference = loaded(), loaded()
    rng = torch.get_rng_state()
    reinit_top_layers(model, 1, seed=5)
    assert torch.equal(torch.get_rng_state(), rng)  # the run's own random stream is untouched
    before = dict(reference.named_parameters())
    for name, param in model.named_parameters():
        if in_top_layer_or_pooler(name):
            assert not torch.equal(param, before[name]), name
        else:
            assert torch.equal(param, before[name]), name
    layer = model.bert.encoder.layer[1]
    assert torch.equal(layer.output.LayerNorm.weight, torch.ones(16))
    assert torch.equal(layer.output.dense.bias, torch.zeros(16))
    std = float(layer.intermediate.dense.weight.detach().std())
    assert std == pytest.approx(model.config.initializer_range, rel=0.3)


def test_reinit_reaches_the_encoder_under_a_pooled_head(tiny_model_dir):
    model = build_classifier(str(tiny_model_dir), "mean", AutoConfig.from_pretrained(tiny_model_dir))
    reference = {n: p.detach().clone() for n, p in model.named_parameters()}
    reinit_top_layers(model, 1, seed=5)
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, reference[n])}
    assert changed and all(n.startswith("backbone.encoder.layer.1.") for n in changed)
    assert "backbone.encoder.layer.1.attention.self.query.weight" in changed


def test_reinit_is_reproducible_for_a_seed(loaded):
    first, second, other = loaded(), loaded(), loaded()
    reinit_top_layers(first, 2, seed=5)
    reinit_top_layers(second, 2, seed=5)
    reinit_top_layers(other, 2, seed=6)
    for (name, a), b, c in zip(first.named_parameters(), second.parameters(), other.parameters()):
        assert torch.equal(a, b), name
        if a.dim() == 2 and "encoder.layer" in name:
            assert not torch.equal(a, c), name


def test_reinit_of_more_layers_than_the_model_has_is_a_clear_error(loaded):
    with pytest.raises(MixtuneError, match="reinit_layers is 3 but the model has 2 layers"):
        reinit_top_layers(loaded(), 3, seed=0)


@pytest.mark.parametrize(
    ("method", "train"),
    [("lora", {"layer_decay": 0.9}), ("prompt-tuning", {"reinit_layers": 1}), ("setfit", {"reinit_layers": 1})],
)
def test_methods_that_do_not_finetune_everything_refuse_them(method, train):
    with pytest.raises(MixtuneError, match=f"full-finetuning methods; method {method} .*: remove them"):
        make_method(build_config({"method": method, "train": train}))


@pytest.mark.parametrize(
    ("train", "key"),
    [({"layer_decay": 0}, "layer_decay"), ({"layer_decay": 1.5}, "layer_decay"), ({"reinit_layers": -1}, "reinit_layers")],
)
def test_config_ranges(train, key):
    with pytest.raises(MixtuneError, match=f"train.{key}"):
        build_config({"train": train})


def test_flags_exist():
    flags = {flag for flag, _, _ in flag_specs()}
    assert {"--train-layer-decay", "--train-reinit-layers"} <= flags


def test_a_run_reinitialises_with_its_seed(tiny_model_dir, glue_dir, monkeypatch):
    calls = []
    original = run_module.reinit_top_layers

    def spy(model, k, seed):
        calls.append((k, seed))
        original(model, k, seed)

    monkeypatch.setattr(run_module, "reinit_top_layers", spy)
    config = build_config({
        "method": "vanilla", "model": str(tiny_model_dir), "seed": 7,
        "data": {"task": "rte", "data_dir": str(glue_dir), "train_size": 16},
        "train": {"epochs": 1, "max_length": 32, "batch_size": 8, "reinit_layers": 1, "layer_decay": 0.8},
    })
    record = run(config, progress=False, write=False)
    assert calls == [(1, 7)]
    assert record["config"]["train"]["reinit_layers"] == 1

"""The controls of issue #12: soup-start (mixup-blo's warm start without the mixup) and vanilla-long (its step budget)."""

from __future__ import annotations

import torch

import mixtune.methods.base as base
import mixtune.methods.soup_start as soup
from mixtune.data.sampling import random_split
from mixtune.errors import MixtuneError
from mixtune.methods.vanilla_long import mixup_blo_steps


def set_search(method, **values):
    for key, value in values.items():
        setattr(method.config.search, key, value)


def finetune_start(monkeypatch) -> dict:
    """Spy on the shared loop that Method.finetune runs: the trainable state when the finetune phase starts."""
    seen = {}
    original = base.train_loop

    def spy(model, *args, **kwargs):
        seen.update({n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad})
        return original(model, *args, **kwargs)

    monkeypatch.setattr(base, "train_loop", spy)
    return seen


def test_soup_start_finetunes_from_the_mean_of_its_members(tiny_model, make_run, monkeypatch):
    method, ctx = make_run("soup-start", n=40, seed=2, epochs=1, lr=1e-3)
    set_search(method, splits=3, epochs=1, inner_lr=1e-3)
    pretrained = {n: p.detach().clone() for n, p in tiny_model.named_parameters()}
    members = []
    original = soup.inner_steps_only

    def member(model, *args, **kwargs):
        log = original(model, *args, **kwargs)
        members.append({n: p.detach().clone() for n, p in model.named_parameters()})
        return log

    monkeypatch.setattr(soup, "inner_steps_only", member)
    start = finetune_start(monkeypatch)
    method.fit(tiny_model, ctx)
    assert len(members) == 3
    for name, value in start.items():
        assert torch.allclose(value, sum(m[name] for m in members) / 3, atol=1e-7), name
    name = "bert.encoder.layer.0.attention.self.query.weight"
    assert not torch.equal(members[0][name], members[1][name]) and not torch.equal(start[name], pretrained[name])
    search = ctx.log["search"]
    assert search["val_indices"] == [random_split(40, 0.8, 2 * 1000 + k)[1] for k in range(3)]  # mixup-blo's splits
    assert [s["inner_steps"] for s in search["splits"]] == [4, 4, 4] and ctx.log["finetune"]["steps"] == 5


def test_soup_start_makes_exactly_mixup_blos_inner_steps(tiny_bert_dir, make_run, monkeypatch):
    """With alpha fixed at 1 (released form: W~ = W) and no dropout in the outer pass, mixup-blo's search is soup-start's:
    the same splits, the same batches, the same AdamW steps, the same average."""
    from transformers import AutoModelForSequenceClassification

    states = {}
    for name in ("mixup-blo", "soup-start"):
        method, ctx = make_run(name, n=32, seed=1, epochs=1)
        set_search(method, splits=2, epochs=1, alpha_lr=0.0, outer_dropout=False)
        method.config.mixup.init_std = 0.0
        states[name] = finetune_start(monkeypatch)
        method.fit(AutoModelForSequenceClassification.from_pretrained(tiny_bert_dir), ctx)
    mixed = {n.replace(".base_layer", ""): v for n, v in states["mixup-blo"].items()}
    assert set(mixed) == set(states["soup-start"])
    assert all(torch.equal(mixed[n], v) for n, v in states["soup-start"].items())
    pretrained = dict(AutoModelForSequenceClassification.from_pretrained(tiny_bert_dir).named_parameters())
    assert not torch.equal(mixed["bert.encoder.layer.0.output.dense.weight"], pretrained["bert.encoder.layer.0.output.dense.weight"])


def test_soup_start_refuses_to_average_nothing(tiny_model, make_run):
    method, ctx = make_run("soup-start", n=24)
    set_search(method, average="alpha")
    try:
        method.fit(tiny_model, ctx)
    except MixtuneError as error:
        assert "search.average" in str(error)
    else:
        raise AssertionError("soup-start ran with search.average alpha")


def test_vanilla_long_makes_as_many_steps_as_mixup_blo(tiny_model, tiny_bert_dir, make_run, monkeypatch):
    from transformers import AutoModelForSequenceClassification

    blo_method, blo_ctx = make_run("mixup-blo", n=37, epochs=1.5)
    set_search(blo_method, splits=2, epochs=1.5, unroll_steps=2)
    blo_method.fit(AutoModelForSequenceClassification.from_pretrained(tiny_bert_dir), blo_ctx)
    made = sum(s["inner_steps"] for s in blo_ctx.log["search"]["splits"]) + blo_ctx.log["finetune"]["steps"]
    alpha_steps = sum(s["alpha_steps"] for s in blo_ctx.log["search"]["splits"])

    method, ctx = make_run("vanilla-long", n=37, epochs=1.5)
    set_search(method, splits=2, epochs=1.5, unroll_steps=2)
    steps = []
    monkeypatch.setattr(method, "after_optimizer_step", lambda model, step: steps.append(step))
    method.fit(tiny_model, ctx)
    # D_tr = 30 of 37 examples, 4 batches of 8: 6 steps per split at 1.5 epochs; finetune 5 batches x 1.5 = 8
    assert ctx.log["vanilla_long"] == {"steps": 20, "search_steps": 12, "finetune_steps": 8, "alpha_steps": 6}
    assert made == 20 and alpha_steps == 6 and len(steps) == 20 and ctx.log["finetune"]["planned_steps"] == 20
    assert mixup_blo_steps(method.config, 37, 1.5)["steps"] == 20

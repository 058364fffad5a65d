"""DPS dense: stage II moves only the top (1 - p) entries of each matrix; stages alternate on schedule."""

import pytest
import torch
from torch import nn

from mixtune.config import build_config
from mixtune.errors import MixtuneError
from mixtune.methods import make_method
from mixtune.methods.dps import linear_weights, top_entries


def record_steps(method, model_holder):
    """Wrap the hooks: per step, the stage and each matrix's values before and after the update."""
    steps = []
    before_hook, after_hook = method.before_optimizer_step, method.after_optimizer_step

    def before(model, step):
        model_holder.append(model)
        steps.append({"stage": method.stage(step), "before": {n: w.detach().clone() for n, w in linear_weights(model)}})
        before_hook(model, step)

    def after(model, step):
        after_hook(model, step)
        steps[-1]["after"] = {n: w.detach().clone() for n, w in linear_weights(model)}
        steps[-1]["masks"] = dict(method.masks)

    method.before_optimizer_step, method.after_optimizer_step = before, after
    return steps


def test_stage_two_moves_only_the_top_entries_of_each_matrix(make_run, tiny_model, train):
    # weight decay and a large lr: AdamW's momentum and decay would move excluded entries if not restored
    method, ctx = make_run(
        "dps", lr=1e-2, epochs=5, weight_decay=0.01, scheduler="constant", warmup_ratio=0.0, method_args={"update_ratio": 0.1}
    )
    bias_before = tiny_model.bert.pooler.dense.bias.detach().clone()
    steps = record_steps(method, [])
    train(method, tiny_model, ctx)
    assert [s["stage"] for s in steps] == [1, 1, 2, 2] * 5  # u = round(0.1 * 20) = 2
    names = [n for n, _ in linear_weights(tiny_model)]
    assert "classifier.weight" in names and "bert.pooler.dense.weight" in names and len(names) == 2 * 6 + 2
    for s in steps:
        for name in names:
            moved = s["after"][name] != s["before"][name]
            if s["stage"] == 1:
                assert moved.float().mean() > 0.9, name  # full update
            else:
                mask = s["masks"][name]
                assert int(mask.sum()) == round(0.7 * mask.numel())
                assert not moved[~mask].any(), name  # excluded entries bit-identical
                assert moved[mask].float().mean() > 0.9, name
    assert not torch.equal(tiny_model.bert.pooler.dense.bias, bias_before)  # other parameters update normally


def test_stage_two_mask_is_the_top_of_the_stage_one_score(make_run, tiny_model, train):
    method, ctx = make_run("dps", epochs=1, method_args={"update_ratio": 0.5})  # 4 steps: I I II II
    scores = {}
    hook = method.before_optimizer_step

    def before(model, step):
        if step == 2:
            scores.update({n: s.clone() for n, s in method.scores.items()})
        hook(model, step)

    method.before_optimizer_step = before
    train(method, tiny_model, ctx)
    for name, score in scores.items():
        assert torch.equal(method.masks[name], top_entries(score, 0.7))
        assert score[method.masks[name]].min() >= score[~method.masks[name]].max()


@pytest.mark.parametrize(("total", "length"), [(57, 3), (10, 1), (1, 1), (1000, 50)])
def test_stage_length_is_at_least_one_step(make_run, tiny_model, total, length):
    method, ctx = make_run("dps")
    method.on_train_start(tiny_model, ctx.loader(), total)
    assert method.stage_length == length


def test_300_examples_batch_16_three_epochs_trains(make_run, tiny_model, train):
    """57 steps, u = round(0.05 * 57) = 3 (the released code's stage length rounds to 0 at n = 300)."""
    method, ctx = make_run("dps", n=300, batch_size=16, epochs=3)
    steps = record_steps(method, [])
    train(method, tiny_model, ctx)
    assert len(steps) == 57 and method.stage_length == 3
    assert [s["stage"] for s in steps[:12]] == [1, 1, 1, 2, 2, 2] * 2


def test_dropout_is_off(make_run, tiny_model):
    method, ctx = make_run("dps")
    model = method.prepare(tiny_model, ctx)
    assert all(m.p == 0.0 for m in model.modules() if isinstance(m, nn.Dropout))
    assert model.config.hidden_dropout_prob == 0.0 and model.config.attention_probs_dropout_prob == 0.0


@pytest.mark.parametrize("args", [{"p": "1.0"}, {"p": "-0.1"}, {"update_ratio": "0"}])
def test_bad_hyperparameters_are_clear_errors(args):
    with pytest.raises(MixtuneError, match="dps"):
        make_method(build_config({"method": "dps", "method_args": args}))

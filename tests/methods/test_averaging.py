"""train.average (mixtune.averaging): SWA is the mean of the snapshots it averaged, EMA follows its update rule, and
the averaged weights are what the loop leaves in the model."""

from __future__ import annotations

import pytest
import torch

from mixtune.averaging import WeightAverager, first_averaged_step
from mixtune.config import build_config
from mixtune.errors import MixtuneError
from mixtune.train import train_loop


def trainable(model) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}


def run_recording(method, model, ctx) -> tuple[list[dict], dict]:
    """Train, recording the trainable weights after every optimiser step (what the averager sees)."""
    snapshots = []
    original = method.after_optimizer_step

    def record(model, step):
        original(model, step)
        snapshots.append(trainable(model))

    method.after_optimizer_step = record
    model = method.prepare(model, ctx)
    result = train_loop(model, ctx.loader(), method, method.lr, method.epochs, ctx, desc="test")
    return snapshots, result


def test_swa_leaves_the_mean_of_the_snapshots_from_its_start_step(make_run, tiny_model):
    method, ctx = make_run("vanilla", n=32, epochs=2, lr=1e-3, select="last", average="swa", average_start=0.5)
    snapshots, result = run_recording(method, tiny_model, ctx)
    total = len(snapshots)
    start = first_averaged_step(0.5, total)
    assert total == 8 and start == 4
    assert result["averaged_steps"] == total - start and result["average_from_step"] == start + 1
    final = trainable(tiny_model)
    for name, value in final.items():
        expected = sum(s[name] for s in snapshots[start:]) / (total - start)
        torch.testing.assert_close(value, expected, rtol=1e-5, atol=1e-6)
    name = "bert.encoder.layer.0.attention.self.query.weight"
    assert not torch.allclose(final[name], snapshots[-1][name])  # not the last step's weights


def test_ema_follows_its_update_rule_from_the_first_averaged_step(make_run, tiny_model):
    decay = 0.7
    method, ctx = make_run("vanilla", n=32, epochs=2, lr=1e-3, select="last", average="ema", average_start=0.25, ema_decay=decay)
    snapshots, result = run_recording(method, tiny_model, ctx)
    start = first_averaged_step(0.25, len(snapshots))
    expected = dict(snapshots[start])
    for snapshot in snapshots[start + 1 :]:
        expected = {n: decay * expected[n] + (1 - decay) * snapshot[n] for n in expected}
    for name, value in trainable(tiny_model).items():
        torch.testing.assert_close(value, expected[name], rtol=1e-5, atol=1e-6)
    assert result["average"] == "ema" and result["averaged_steps"] == len(snapshots) - start


def test_no_average_keeps_the_last_step(make_run, tiny_model):
    method, ctx = make_run("vanilla", n=32, epochs=1, lr=1e-3, select="last")
    snapshots, result = run_recording(method, tiny_model, ctx)
    assert "average" not in result
    assert all(torch.equal(v, snapshots[-1][n]) for n, v in trainable(tiny_model).items())


def test_frozen_parameters_are_left_alone():
    model = torch.nn.Sequential(torch.nn.Linear(3, 3), torch.nn.Linear(3, 1))
    model[0].weight.requires_grad_(False)
    averager = WeightAverager("swa", 0.0, 0.9, total_steps=2)
    frozen = model[0].weight.detach().clone()
    for step, shift in enumerate((1.0, 3.0)):
        with torch.no_grad():
            model[1].weight.add_(shift)
        averager.after_step(model, step)
    last = model[1].weight.detach().clone()
    averager.apply(model)
    torch.testing.assert_close(model[1].weight, last - 1.5)  # the mean of (w0 + 1, w0 + 4) is last - 1.5
    assert torch.equal(model[0].weight, frozen)


def test_the_last_step_is_always_averaged():
    assert first_averaged_step(0.99, 10) == 9 and first_averaged_step(0.0, 10) == 0


@pytest.mark.parametrize(
    ("train", "message"),
    [
        ({"average": "swa", "select": "best-dev"}, "set train.select to last"),
        ({"average": "polyak", "select": "last"}, "choose one of auto, none, swa, ema"),
        ({"average": "swa", "select": "last", "average_start": 1.0}, "train.average_start"),
        ({"average": "ema", "select": "last", "ema_decay": 1.0}, "train.ema_decay"),
    ],
)
def test_bad_average_settings_are_one_line_errors(train, message):
    with pytest.raises(MixtuneError, match=message) as error:
        build_config({"train": train})
    assert "\n" not in str(error.value)

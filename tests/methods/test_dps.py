"""DPS dense: stage II moves only the top (1 - p) entries of each matrix; stages alternate on schedule."""

import pytest
import torch
from torch import nn

import mixtune.train

from mixtune.config import build_config
from mixtune.device import GradStep
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


# --- fp16: a step the gradient scaler skips ---------------------------------------------------------------
class ScaledOnCPU(GradStep):
    """The loop's fp16 gradient step with a real torch.amp.GradScaler, on the CPU (fp16 autocast is CUDA-only)."""

    def __init__(self, optimizer: torch.optim.Optimizer, runtime=None) -> None:
        super().__init__(optimizer, runtime)
        self.scaler = torch.amp.GradScaler("cpu")


def overflow_at(monkeypatch, model: nn.Module, steps: set[int]) -> None:
    """The loop scales its loss as under fp16, and the gradients of `steps` overflow: the scaler skips them."""
    monkeypatch.setattr(mixtune.train, "GradStep", ScaledOnCPU)
    backward_count = [0]

    def overflow(grad: torch.Tensor) -> torch.Tensor:
        backward_count[0] += 1
        return torch.full_like(grad, torch.inf) if backward_count[0] - 1 in steps else grad

    model.classifier.weight.register_hook(overflow)


def weights_at_each_step(model: nn.Module) -> list[dict[str, torch.Tensor]]:
    """Every weight at the start of each step (the forward pass); append the final weights after training."""
    starts: list[dict[str, torch.Tensor]] = []
    model.register_forward_pre_hook(lambda *_: starts.append({n: p.detach().clone() for n, p in model.named_parameters()}))
    return starts


def scores_when_stage_two_runs(method) -> dict[int, dict[str, torch.Tensor]]:
    """The stage-I scores as each stage-II step that runs sees them (a skipped step's hooks are left out)."""
    seen: dict[int, dict[str, torch.Tensor]] = {}
    hook = method.before_optimizer_step

    def before(model: nn.Module, step: int) -> None:
        if method.stage(step) == 2:
            seen[step] = {n: s.clone() for n, s in method.scores.items()}
        hook(model, step)

    method.before_optimizer_step = before
    return seen


@pytest.mark.parametrize("skipped", [2, 6])
def test_an_overflowing_first_stage_two_step_chooses_the_mask_on_the_next_step(make_run, tiny_model, train, monkeypatch, skipped):
    """8 steps, I I II II I I II II. Skipping step 2 once failed step 3 with a KeyError (no mask yet); skipping
    step 6 let step 7 reuse the first stage II's mask. The mask must be the top of the score the next step sees."""
    method, ctx = make_run("dps", lr=1e-2, epochs=2, scheduler="constant", warmup_ratio=0.0, method_args={"update_ratio": 0.25})
    overflow_at(monkeypatch, tiny_model, {skipped})
    starts = weights_at_each_step(tiny_model)
    scores = scores_when_stage_two_runs(method)
    train(method, tiny_model, ctx)
    starts.append({n: p.detach().clone() for n, p in tiny_model.named_parameters()})

    assert method.stage_length == 2 and len(starts) == 9
    assert all(torch.equal(starts[skipped][n], starts[skipped + 1][n]) for n in starts[skipped])  # the scaler skipped it
    assert skipped not in scores and set(scores) == {2, 3, 6, 7} - {skipped}
    first_run = skipped + 1
    chosen = {n: top_entries(score, 0.7) for n, score in scores[first_run].items()}
    assert all(score.any() for score in scores[first_run].values())  # the stage I score, not a reset one
    if 2 in scores:  # the first stage II ran: its mask differs, so reusing it would show below
        assert any(not torch.equal(top_entries(scores[2][n], 0.7), mask) for n, mask in chosen.items())
    for name, mask in chosen.items():
        moved = starts[first_run + 1][name] != starts[first_run][name]
        assert not moved[~mask].any(), name  # excluded entries bit-identical
        assert moved[mask].float().mean() > 0.9, name

"""Mixout: eval uses the current weights; in training the mixed weight equals them in expectation.

The default mask is per input neuron (constant down each column), with dropout off and every Linear
wrapped; mask=entry keeps the earlier per-entry variant on the mixup targets with dropout untouched.
"""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mixtune.config import build_config
from mixtune.errors import MixtuneError
from mixtune.methods import make_method
from mixtune.methods.mixout import MixoutLinear
from mixtune.mixup.inject import target_module_names


def moved_layer(p: float = 0.1, mask: str = "neuron") -> MixoutLinear:
    torch.manual_seed(0)
    layer = MixoutLinear(nn.Linear(8, 6), p, mask)
    with torch.no_grad():
        layer.base_layer.weight.add_(torch.randn(6, 8))  # W far from W0
    return layer


def test_eval_mode_uses_the_current_weights():
    layer = moved_layer().eval()
    x = torch.randn(5, 8)
    assert torch.equal(layer(x), F.linear(x, layer.base_layer.weight, layer.base_layer.bias))


@pytest.mark.parametrize("mask", ["neuron", "entry"])
def test_train_mode_mixed_weight_equals_the_current_weights_in_expectation(mask):
    layer = moved_layer(mask=mask).train()
    weight, weight0 = layer.base_layer.weight.detach(), layer.weight0
    draws = torch.stack([layer.mixed_weight().detach() for _ in range(4000)])
    torch.testing.assert_close(draws.mean(0), weight, atol=0.05, rtol=0)
    # each draw: an entry is either its pretrained value or (W - p W0) / (1 - p), with frequency p for the former
    pretrained = torch.isclose(draws, weight0.expand_as(draws))
    assert float(pretrained.float().mean()) == pytest.approx(0.1, abs=0.01)
    torch.testing.assert_close(draws[~pretrained], ((weight - 0.1 * weight0) / 0.9).expand_as(draws)[~pretrained])


def pretrained_entries(layer: MixoutLinear, draws: int) -> torch.Tensor:
    """(draws, out, in): True where a draw put the pretrained value (W is far from W0 everywhere)."""
    mixed = torch.stack([layer.mixed_weight().detach() for _ in range(draws)])
    return torch.isclose(mixed, layer.weight0.expand_as(mixed))


def test_neuron_mask_is_constant_down_each_column():
    pretrained = pretrained_entries(moved_layer(p=0.5, mask="neuron").train(), 200)
    assert torch.equal(pretrained, pretrained[:, :1, :].expand_as(pretrained))  # every row: the same input neurons
    assert pretrained.any() and not pretrained.all()


def test_entry_mask_varies_within_a_column():
    pretrained = pretrained_entries(moved_layer(p=0.5, mask="entry").train(), 200)
    assert not torch.equal(pretrained, pretrained[:, :1, :].expand_as(pretrained))


def linear_names(model: nn.Module) -> list[str]:
    return [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]


def dropout_probabilities(model: nn.Module) -> list[float]:
    config = [v for k, v in vars(model.config).items() if "dropout" in k and isinstance(v, float)]
    return [m.p for m in model.modules() if isinstance(m, nn.Dropout)] + config


def test_neuron_mode_wraps_every_linear_with_dropout_off(make_run, tiny_model):
    linears = linear_names(tiny_model)
    initial_classifier = tiny_model.classifier.weight.detach().clone()
    method, ctx = make_run("mixout")
    model = method.prepare(tiny_model, ctx)
    wrapped = [n for n, m in model.named_modules() if isinstance(m, MixoutLinear)]
    assert wrapped == linears and "classifier" in wrapped
    assert torch.equal(model.classifier.weight0, initial_classifier)  # the head's "pretrained" value: its init
    probabilities = dropout_probabilities(model)
    assert probabilities and all(p == 0.0 for p in probabilities)


def test_entry_mode_wraps_the_mixup_targets_with_dropout_untouched(make_run, tiny_model):
    targets = target_module_names(tiny_model)
    before = dropout_probabilities(tiny_model)
    method, ctx = make_run("mixout", method_args={"mask": "entry"})
    model = method.prepare(tiny_model, ctx)
    wrapped = [n for n, m in model.named_modules() if isinstance(m, MixoutLinear)]
    assert wrapped == targets and "classifier" not in wrapped
    assert dropout_probabilities(model) == before and any(p > 0 for p in before)


@pytest.mark.parametrize("mask", ["neuron", "entry"])
def test_exports_a_plain_checkpoint(make_run, tiny_model, train, tiny_tokenizer, tmp_path, mask):
    method, ctx = make_run("mixout", method_args={"mask": mask}, lr=1e-3, epochs=1)
    model = train(method, tiny_model, ctx)
    assert any(isinstance(m, MixoutLinear) for m in model.modules())
    batch = next(iter(ctx.loader(shuffle=False)))
    batch.pop("labels")
    model.eval()
    with torch.no_grad():
        expected = model(**batch).logits
    method.save(model, tmp_path, tiny_tokenizer)
    reloaded = type(method).load_saved(tmp_path)
    assert not any(isinstance(m, MixoutLinear) for m in reloaded.modules())
    with torch.no_grad():
        torch.testing.assert_close(reloaded(**batch).logits, expected)


def test_p_of_one_is_a_clear_error():
    with pytest.raises(MixtuneError, match="mixout p"):
        make_method(build_config({"method": "mixout", "method_args": {"p": "1"}}))


def test_unknown_mask_is_a_clear_error():
    with pytest.raises(MixtuneError, match="mixout mask"):
        make_method(build_config({"method": "mixout", "method_args": {"mask": "row"}}))


def test_the_record_names_the_mask():
    method = make_method(build_config({"method": "mixout"}))
    assert method.hyperparameters()["mask"] == "neuron" and method.hyperparameters()["target_modules"] is None

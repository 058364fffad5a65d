"""Mixout: eval uses the current weights; in training the mixed weight equals them in expectation."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mixtune.config import build_config
from mixtune.errors import MixtuneError
from mixtune.methods import make_method
from mixtune.methods.mixout import MixoutLinear
from mixtune.mixup.inject import target_module_names


def moved_layer(p: float = 0.1) -> MixoutLinear:
    torch.manual_seed(0)
    layer = MixoutLinear(nn.Linear(8, 6), p)
    with torch.no_grad():
        layer.base_layer.weight.add_(torch.randn(6, 8))  # W far from W0
    return layer


def test_eval_mode_uses_the_current_weights():
    layer = moved_layer().eval()
    x = torch.randn(5, 8)
    assert torch.equal(layer(x), F.linear(x, layer.base_layer.weight, layer.base_layer.bias))


def test_train_mode_mixed_weight_equals_the_current_weights_in_expectation():
    layer = moved_layer().train()
    weight, weight0 = layer.base_layer.weight.detach(), layer.weight0
    draws = torch.stack([layer.mixed_weight().detach() for _ in range(4000)])
    torch.testing.assert_close(draws.mean(0), weight, atol=0.05, rtol=0)
    # each draw: an entry is either its pretrained value or (W - p W0) / (1 - p), with frequency p for the former
    pretrained = torch.isclose(draws, weight0.expand_as(draws))
    assert float(pretrained.float().mean()) == pytest.approx(0.1, abs=0.01)
    torch.testing.assert_close(draws[~pretrained], ((weight - 0.1 * weight0) / 0.9).expand_as(draws)[~pretrained])


def test_wraps_the_mixup_targets_and_exports_a_plain_checkpoint(make_run, tiny_model, train, tiny_tokenizer, tmp_path):
    targets = target_module_names(tiny_model)
    method, ctx = make_run("mixout", lr=1e-3, epochs=1)
    model = train(method, tiny_model, ctx)
    wrapped = [n for n, m in model.named_modules() if isinstance(m, MixoutLinear)]
    assert wrapped == targets and "classifier" not in wrapped
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

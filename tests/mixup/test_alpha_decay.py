"""search.alpha_weight_decay pulls alpha toward 0: allowed only where alpha = 0 is the pretrained weight."""

from __future__ import annotations

import pytest
import torch

from mixtune.config import MixupConfig, SearchConfig, build_config
from mixtune.errors import MixtuneError
from mixtune.methods import make_method
from mixtune.methods.mixup_common import zero_alpha_is_pretrained
from mixtune.mixup import bilevel_search, inject_mixup, mixup_layers, task_parameters
from mixtune.mixup.bilevel import inner_step
from mixtune.mixup.layer import MixupLinear
from tests.conftest import tiny_batch, tiny_bert

LAYOUTS = [
    ("rank", 1), ("rank", 2), ("rank", None), ("row", 1), ("module", 1),
]


@pytest.mark.parametrize("form", ["released", "convex", "share"])
@pytest.mark.parametrize(("granularity", "rank"), LAYOUTS)
def test_the_check_says_exactly_where_zero_alpha_is_the_pretrained_weight(form, granularity, rank):
    torch.manual_seed(0)
    base = torch.nn.Linear(5, 4)
    config = MixupConfig(form=form, granularity=granularity, rank=rank)
    layer = MixupLinear.from_config(base, config)
    with torch.no_grad():
        base.weight.add_(torch.randn_like(base.weight))  # W off W0
        for param in layer.alpha_parameters():
            param.zero_()
    reaches_pretrained = torch.allclose(layer.mixed_weight(), layer.weight0)
    assert zero_alpha_is_pretrained(config) == reaches_pretrained


def search_share(alpha_weight_decay: float) -> float:
    """The mean pretrained share after a released rank-1 search from alpha = 1 (share 0) with this decay."""
    torch.manual_seed(0)
    model = tiny_bert()
    inject_mixup(model, MixupConfig(form="released"))
    weights = [p for _, p in task_parameters(model)]
    inner_step(model, tiny_batch(seed=1), weights, torch.optim.AdamW(weights, lr=1e-2), None)
    config = SearchConfig(epochs=1, alpha_lr=1e-2, alpha_weight_decay=alpha_weight_decay, warmup_ratio=0.0,
                          alpha_scheduler="constant")
    loader = [tiny_batch(seed=s) for s in range(4)]
    bilevel_search(model, loader, loader, config, progress=False)
    shares = [layer.pretrained_share().detach().mean() for _, layer in mixup_layers(model)]
    return float(torch.stack(shares).mean())


def test_alpha_weight_decay_moves_the_mix_toward_the_pretrained_weights():
    assert search_share(20.0) > search_share(0.0) + 0.05


@pytest.mark.parametrize("mixup", [{"form": "share"}, {"form": "released", "rank": 2}])
def test_decay_where_zero_alpha_is_not_pretrained_is_a_one_line_error(mixup):
    config = build_config({"method": "mixup-blo", "mixup": mixup, "search": {"alpha_weight_decay": 0.1}})
    with pytest.raises(MixtuneError, match="search.alpha_weight_decay pulls alpha toward 0") as error:
        make_method(config).inject(tiny_bert(), seed=1)
    assert "\n" not in str(error.value)

"""CHILD-TUNING (Xu et al. 2021): each step updates only a "child network" of the parameters.

child-tuning-d: the child is chosen once, before training, by Fisher information and kept fixed;
it covers the transformer layer stack only (embeddings, pooler and classifier update normally).
child-tuning-f: a fresh random child every step, the kept gradients rescaled by 1/p so the expected
gradient is the full one; it covers every gradient, as the published optimiser does.

p is the fraction of entries KEPT (updated) in both, 0.3 by default (docs/method.md section 6).
The masks act on gradients before the shared loop clips them (the published code clips first,
inside its Trainer, then masks in the optimiser): clipping here sees the child's gradient norm.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.data import DataLoader

from mixtune.config import RunConfig
from mixtune.errors import MixtuneError
from mixtune.methods.base import Method, register
from mixtune.train import FitContext, batch_loss

# The transformer layer stack: BERT/RoBERTa encoder.layer.N, DistilBERT transformer.layer.N, others layers.N.
LAYER_STACK = re.compile(r"(^|\.)layers?\.\d+\.")
FISHER_CLIP_NORM = 1.0  # the published code clips each tensor's gradient to max_grad_norm (1.0) before squaring


@dataclass
class ChildTuningHyperparameters:
    p: float = 0.3  # fraction of entries kept (updated)

    def __post_init__(self) -> None:
        if not 0.0 < self.p <= 1.0:
            raise MixtuneError(
                f"child-tuning p is the fraction of entries kept, in (0, 1], got {self.p}: pass e.g. --method-arg p=0.3"
            )


def layer_parameters(model: nn.Module) -> list[tuple[str, nn.Parameter]]:
    """Trainable parameters of the transformer layer stack."""
    params = [(n, p) for n, p in model.named_parameters() if p.requires_grad and LAYER_STACK.search(n)]
    if not params:
        raise MixtuneError(
            "child-tuning-d found no layer stack (no parameter named like 'encoder.layer.N.'): use another method for this model"
        )
    return params


def fisher_information(model: nn.Module, loader: DataLoader, params: list[tuple[str, nn.Parameter]]) -> dict[str, torch.Tensor]:
    """Mean over the loader's batches of each entry's squared gradient, in train mode as published."""
    fisher = {name: torch.zeros_like(param) for name, param in params}
    model.train()
    for batch in loader:
        model.zero_grad(set_to_none=True)
        batch_loss(model, batch).backward()
        for name, param in params:
            if param.grad is not None:
                torch.nn.utils.clip_grad_norm_(param, FISHER_CLIP_NORM)
                fisher[name] += param.grad.detach() ** 2 / len(loader)
    model.zero_grad(set_to_none=True)
    return fisher


def global_top_masks(scores: dict[str, torch.Tensor], keep: float) -> dict[str, torch.Tensor]:
    """True for entries at or above one threshold over all tensors, chosen so `keep` of all entries pass."""
    flat = torch.cat([s.flatten() for s in scores.values()])
    kept = max(1, round(keep * flat.numel()))
    threshold = flat.kthvalue(flat.numel() - kept + 1).values
    return {name: s >= threshold for name, s in scores.items()}


@register
class ChildTuningD(Method):
    """CHILD-TUNING_D: a fixed Fisher mask on the layer stack's gradients, no rescaling.

    Entries outside the mask get zero gradient at every step, so Adam's moments and update stay exactly
    zero for them. AdamW's decoupled weight decay still shrinks them by (1 - lr * wd) per step, as in the
    published ChildTuningAdamW (which masks the gradient only); with weight decay 0 they never change.
    Defaults: the paper's lr 4e-5; the shared 10 epochs with best-dev selection.
    """

    name = "child-tuning-d"
    Hyperparameters = ChildTuningHyperparameters
    default_lr = 4e-5

    def __init__(self, config: RunConfig) -> None:
        super().__init__(config)
        self.masks: dict[str, torch.Tensor] = {}
        self.fisher_seconds = 0.0

    def fit(self, model: nn.Module, ctx: FitContext) -> nn.Module:
        """The shared loop; the Fisher pass (a third of an epoch's cost) is recorded as its own phase."""
        model = super().fit(model, ctx)
        ctx.phase_times["fisher"] = self.fisher_seconds
        return model

    def on_train_start(self, model: nn.Module, loader: DataLoader, total_steps: int) -> None:
        started = time.perf_counter()
        self.masks = global_top_masks(fisher_information(model, loader, layer_parameters(model)), self.hp.p)
        self.fisher_seconds = time.perf_counter() - started

    def before_optimizer_step(self, model: nn.Module, step: int) -> None:
        for name, param in model.named_parameters():
            if name in self.masks and param.grad is not None:
                param.grad.mul_(self.masks[name])


SPARSE_ROWS_MIN = 1024  # a 2-D gradient with at least this many rows is checked for untouched rows (embeddings)


class RandomChildMask:
    """CHILD-TUNING_F's mask: every gradient entry kept with probability p and rescaled by 1/p, drawn anew each call.

    The draws come from a generator seeded with `seed`, on the gradients' device (created at the first call), so
    runs repeat exactly on one device and the global RNG (dropout) is untouched. Shared by child-tuning-f and the
    finetune phase of mixup-blo and soup-start (method arg finetune_mask_p).

    Cost (issue 31): a mask over all of MiniLM's 22.4M gradient entries took about 390 ms a step on one CPU thread
    with Bernoulli draws, more than the forward and backward pass of a short batch. Two things make it about a
    quarter of that, with the same distribution: a uniform draw compared with p (torch.rand is about twice as fast as
    bernoulli_ on the CPU), and, on the CPU, only the rows of an embedding gradient that the batch touched (a batch
    of 16 touches a few hundred of the 30,522 word-embedding rows; an untouched row's gradient is zero, masked or
    not). Masks drawn before this change (records before 2026-12-03 15:10 UTC) repeat in distribution, not draw for
    draw.
    """

    def __init__(self, p: float, seed: int) -> None:
        self.p, self.seed = p, seed
        self.generator: torch.Generator | None = None

    def mask_generator(self, device: torch.device) -> torch.Generator:
        if self.generator is None or self.generator.device != device:
            self.generator = torch.Generator(device=device).manual_seed(self.seed)
        return self.generator

    def apply(self, params: Iterable[nn.Parameter]) -> None:
        for param in params:
            if param.grad is None:
                continue
            rows = touched_rows(param.grad)
            if rows is None:
                self.mask_(param.grad)
            else:
                touched = param.grad.index_select(0, rows)
                param.grad.index_copy_(0, rows, self.mask_(touched))

    def mask_(self, grad: torch.Tensor) -> torch.Tensor:
        """grad times Bernoulli(p) / p, in place."""
        keep = torch.rand(grad.shape, generator=self.mask_generator(grad.device), device=grad.device, dtype=grad.dtype)
        return grad.mul_(keep.lt_(self.p)).div_(self.p)


def touched_rows(grad: torch.Tensor) -> torch.Tensor | None:
    """The indices of a large 2-D CPU gradient's non-zero rows when they are under half of its rows, else None.

    CPU only: there the random draws are what costs; a GPU draws them cheaply, and finding the rows (nonzero)
    would stop it to wait for the result at every large tensor.
    """
    if grad.device.type != "cpu" or grad.dim() != 2 or grad.shape[0] < SPARSE_ROWS_MIN:
        return None
    rows = grad.ne(0).any(dim=1).nonzero().squeeze(1)
    return rows if 2 * len(rows) < grad.shape[0] else None


@register
class ChildTuningF(Method):
    """CHILD-TUNING_F: every gradient times Bernoulli(p) / p, drawn anew each step (task-free; RandomChildMask).

    Default lr 4e-5, as for D: the paper tunes both variants over the same learning-rate grid.
    """

    name = "child-tuning-f"
    Hyperparameters = ChildTuningHyperparameters
    default_lr = 4e-5

    def __init__(self, config: RunConfig) -> None:
        super().__init__(config)
        self.mask = RandomChildMask(self.hp.p, config.seed)

    def before_optimizer_step(self, model: nn.Module, step: int) -> None:
        self.mask.apply(model.parameters())

"""MixupLinear: an nn.Linear whose weight is a learned mix of a task weight and the pretrained weight.

    released form:  W~ = (A @ B) * W + ((1 - A) @ (1 - B)) * W0      (A, B clamped to [0, 1])
    convex form:    W~ = a * W + (1 - a) * W0,  a = clamp(A @ B, 0, 1)

W is the wrapped layer's own weight (trainable), W0 a frozen buffer, A (out x r) and B (r x in) the
low-rank attention parameters. With rank=None, alpha is one full matrix a (out x in) and both forms
reduce to the convex one. The bias is the wrapped layer's ordinary trainable bias.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

ALPHA_PARAM_NAMES = ("alpha_a", "alpha_b")


class MixupLinear(nn.Module):
    def __init__(
        self,
        base_layer: nn.Linear,
        rank: int | None = 1,
        form: str = "released",
        init_mean: float = 1.0,
        init_std: float = 0.005,
    ) -> None:
        super().__init__()
        if form not in ("released", "convex"):
            raise ValueError(f"unknown mixup form {form!r}")
        self.base_layer = base_layer
        self.rank = rank
        self.form = form
        weight = base_layer.weight
        out_features, in_features = weight.shape
        self.register_buffer("weight0", weight.detach().clone())
        a_shape = (out_features, in_features) if rank is None else (out_features, rank)
        self.alpha_a = nn.Parameter(torch.empty(a_shape, dtype=weight.dtype, device=weight.device))
        self.alpha_b = (
            None if rank is None else nn.Parameter(torch.empty(rank, in_features, dtype=weight.dtype, device=weight.device))
        )
        self.reset_alpha(init_mean, init_std)

    @torch.no_grad()
    def reset_alpha(self, mean: float, std: float, generator: torch.Generator | None = None) -> None:
        """Draw every alpha entry from N(mean, std), then project into [0, 1] (released init)."""
        for param in self.alpha_parameters():
            param.copy_(torch.randn(param.shape, generator=generator, dtype=param.dtype) * std + mean)
        self.clamp_alpha()

    def alpha_parameters(self) -> list[nn.Parameter]:
        return [p for p in (self.alpha_a, self.alpha_b) if p is not None]

    @torch.no_grad()
    def clamp_alpha(self) -> None:
        """Projected gradient: keep every alpha factor in [0, 1]."""
        for param in self.alpha_parameters():
            param.clamp_(0.0, 1.0)

    def coefficients(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The (out x in) coefficient matrices multiplying W and W0."""
        if self.alpha_b is None:
            alpha = self.alpha_a.clamp(0.0, 1.0)
            return alpha, 1.0 - alpha
        if self.form == "convex":
            alpha = (self.alpha_a @ self.alpha_b).clamp(0.0, 1.0)
            return alpha, 1.0 - alpha
        return self.alpha_a @ self.alpha_b, (1.0 - self.alpha_a) @ (1.0 - self.alpha_b)

    def mixing_terms(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(coefficient on W, the whole pretrained term coef * W0), so that W~ = coef_W * W + term.

        While alpha is frozen (the finetune phase) both are constants: computed once and cached until
        alpha or W0 change (tracked by version counters), so a finetune step costs one multiply-add more
        than a vanilla one.
        """
        params = self.alpha_parameters()
        if any(p.requires_grad or not isinstance(p, nn.Parameter) for p in params):  # training alpha, or torch.func
            coef_task, coef_pre = self.coefficients()
            return coef_task, coef_pre * self.weight0
        key = tuple((t.data_ptr(), t._version) for t in (*params, self.weight0))
        if getattr(self, "_cache_key", None) != key:
            with torch.no_grad():
                coef_task, coef_pre = self.coefficients()
                self._cached = (coef_task, coef_pre * self.weight0)
            self._cache_key = key
        return self._cached

    def mixed_weight(self) -> torch.Tensor:
        coef_task, pretrained_term = self.mixing_terms()
        return torch.addcmul(pretrained_term, coef_task, self.base_layer.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.mixed_weight(), self.base_layer.bias)

    @torch.no_grad()
    def merged_linear(self) -> nn.Linear:
        """A plain nn.Linear holding W~: the same outputs with no mixup cost at inference."""
        base = self.base_layer
        merged = nn.Linear(base.in_features, base.out_features, bias=base.bias is not None)
        merged.to(device=base.weight.device, dtype=base.weight.dtype)
        merged.weight.copy_(self.mixed_weight())
        if base.bias is not None:
            merged.bias.copy_(base.bias)
        return merged

    def extra_repr(self) -> str:
        return f"rank={self.rank}, form={self.form}"

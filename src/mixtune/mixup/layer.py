"""MixupLinear: an nn.Linear whose weight is a learned mix of a task weight and the pretrained weight.

    released form:  W~ = (A @ B) * W + ((1 - A) @ (1 - B)) * W0      (A, B clamped to [0, 1])
    convex form:    W~ = a * W + (1 - a) * W0,  a = clamp(A @ B, 0, 1)
    share form:     W~ = (1 - b) * W + b * W0,  b = sigmoid(theta)     (the pretrained share; no clamp)

W is the wrapped layer's own weight (trainable), W0 a frozen buffer. Granularity says what alpha holds:
"rank": A (out x r) and B (r x in), alpha = A @ B (theta = A @ B for the share form); with rank=None one full
matrix (out x in). "row": one value per output row (out x 1); "module": one scalar (1 x 1), broadcast over W.
With a single factor (full rank, row, module) the released and convex forms coincide.

The share form has no saddle at its start: b = sigmoid(theta) with theta at logit(init_share) in the
interior, so db/dtheta = b (1 - b) > 0, whereas the released form's W0 coefficient (1 - a)(1 - c) starts at 0
with zero gradient. (The loss gradient on b is (W0 - W) * dL/dW~: it needs W to have moved off W0.)
The parameters keep the names alpha_a / alpha_b in every form (theta's factors for the share form).
The bias is the wrapped layer's ordinary trainable bias.

Precision: the coefficients and W~ are formed in fp32 (float64 for float64 weights) whatever the autocast
state; only the forward's x @ W~ runs under autocast, as any nn.Linear's does. A learned |1 - coef| is
below 6e-3, under bf16's spacing near 1 (2^-8): a bf16 `A @ B` rounds the mixup away (issue 30).
"""

from __future__ import annotations

import contextlib
import math

import torch
import torch.nn.functional as F
from torch import nn

from mixtune.config import MixupConfig

ALPHA_PARAM_NAMES = ("alpha_a", "alpha_b")
FORMS = ("released", "convex", "share")
GRANULARITIES = ("rank", "row", "module")


def mixing_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype the mixup is formed in: fp32, or the weights' own when wider (float64)."""
    return torch.promote_types(dtype, torch.float32)


def autocast_disabled(device: torch.device) -> contextlib.AbstractContextManager:
    """No autocast on `device` for the block (a device autocast does not know, such as meta, has none to turn off)."""
    if torch.amp.is_autocast_available(device.type):
        return torch.autocast(device.type, enabled=False)
    return contextlib.nullcontext()


class MixupLinear(nn.Module):
    def __init__(
        self,
        base_layer: nn.Linear,
        rank: int | None = 1,
        form: str = "released",
        init_mean: float = 1.0,
        init_std: float = 0.005,
        granularity: str = "rank",
        init_share: float = 0.5,
    ) -> None:
        super().__init__()
        if form not in FORMS:
            raise ValueError(f"unknown mixup form {form!r}: choose one of {', '.join(FORMS)}")
        if granularity not in GRANULARITIES:
            raise ValueError(f"unknown mixup granularity {granularity!r}: choose one of {', '.join(GRANULARITIES)}")
        self.base_layer = base_layer
        self.granularity = granularity
        self.rank = rank if granularity == "rank" else None
        self.form = form
        weight = base_layer.weight
        out_features, in_features = weight.shape
        self.register_buffer("weight0", weight.detach().clone())
        a_shape = {"row": (out_features, 1), "module": (1, 1)}.get(
            granularity, (out_features, in_features) if self.rank is None else (out_features, self.rank)
        )
        self.alpha_a = nn.Parameter(torch.empty(a_shape, dtype=weight.dtype, device=weight.device))
        self.alpha_b = (
            None
            if self.rank is None
            else nn.Parameter(torch.empty(self.rank, in_features, dtype=weight.dtype, device=weight.device))
        )
        self.reset_alpha(init_share if form == "share" else init_mean, init_std)

    @classmethod
    def from_config(cls, base_layer: nn.Linear, config: MixupConfig) -> MixupLinear:
        """The layer a MixupConfig describes (peft-style: the config dataclass, then the wrapped nn.Linear); its
        unset form and granularity are the defaults' (MixupConfig.resolved)."""
        config = config.resolved()
        return cls(
            base_layer, config.rank, config.form, config.init_mean, config.init_std, config.granularity, config.init_share
        )

    @torch.no_grad()
    def reset_alpha(self, mean: float, std: float, generator: torch.Generator | None = None) -> None:
        """Draw every alpha entry from N(mean, std), then project into [0, 1] (released init).

        Share form: `mean` is the starting pretrained share b0 in (0, 1); theta's entries (rank r: A's entries)
        are drawn from N(logit(b0), std) and B's from N(1 / r, std), so theta = A @ B starts near logit(b0).
        """
        if self.form != "share":
            for param in self.alpha_parameters():
                param.copy_(torch.randn(param.shape, generator=generator, dtype=param.dtype) * std + mean)
            self.clamp_alpha()
            return
        if not 0.0 < mean < 1.0:
            raise ValueError(f"the share form starts at a pretrained share strictly between 0 and 1, got {mean}")
        centres = [math.log(mean / (1.0 - mean))] + ([] if self.alpha_b is None else [1.0 / self.rank])
        for param, centre in zip(self.alpha_parameters(), centres):
            param.copy_(torch.randn(param.shape, generator=generator, dtype=param.dtype) * std + centre)

    def alpha_parameters(self) -> list[nn.Parameter]:
        return [p for p in (self.alpha_a, self.alpha_b) if p is not None]

    @torch.no_grad()
    def clamp_alpha(self) -> None:
        """Projected gradient: keep every alpha factor in [0, 1] (the share form needs no projection)."""
        if self.form == "share":
            return
        for param in self.alpha_parameters():
            param.clamp_(0.0, 1.0)

    def coefficients(
        self, alpha_a: torch.Tensor | None = None, alpha_b: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The (out x in) coefficient matrices multiplying W and W0 (of other alpha values when given).

        In fp32 (mixing_dtype) with autocast off, so a bf16 run keeps the learned |1 - coef| (module docstring).
        """
        a = self.alpha_a if alpha_a is None else alpha_a
        b = self.alpha_b if alpha_b is None else alpha_b
        dtype = mixing_dtype(a.dtype)
        with autocast_disabled(a.device):
            return self._coefficients(a.to(dtype), None if b is None else b.to(dtype))

    def _coefficients(self, a: torch.Tensor, b: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        shape = self.weight0.shape
        if self.form == "share":
            share = torch.sigmoid(a if b is None else a @ b).expand(shape)
            return 1.0 - share, share
        if b is None:
            alpha = a.clamp(0.0, 1.0).expand(shape)
            return alpha, 1.0 - alpha
        if self.form == "convex":
            alpha = (a @ b).clamp(0.0, 1.0)
            return alpha, 1.0 - alpha
        return a @ b, (1.0 - a) @ (1.0 - b)

    def pretrained_share(self, alpha_a: torch.Tensor | None = None, alpha_b: torch.Tensor | None = None) -> torch.Tensor:
        """Per entry, the pretrained weight's share of the mix: coef_W0 / (coef_W + coef_W0).

        The W0 coefficient itself for the convex and share forms; for the released form, whose coefficients need
        not sum to one, their ratio (0 where both are 0).
        """
        on_task, on_pretrained = self.coefficients(alpha_a, alpha_b)
        if self.form != "released" or (self.alpha_b is None):
            return on_pretrained
        total = on_task + on_pretrained
        return torch.where(total > 0, on_pretrained / total.clamp_min(torch.finfo(total.dtype).tiny), torch.zeros_like(total))

    def mixing_terms(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(coefficient on W, the whole pretrained term coef * W0), so that W~ = coef_W * W + term; fp32.

        While alpha is frozen (the finetune phase) both are constants: computed once and cached until
        alpha or W0 change (tracked by version counters) or move to another dtype or device, so a finetune
        step costs one multiply-add more than a vanilla one. Formed in fp32 whatever the autocast state, the
        cache serves autocast and fp32 passes alike.
        """
        params = self.alpha_parameters()
        if any(p.requires_grad or not isinstance(p, nn.Parameter) for p in params):  # training alpha, or torch.func
            return self._fresh_terms()
        key = tuple((t.data_ptr(), t._version, t.dtype, t.device) for t in (*params, self.weight0))
        if getattr(self, "_cache_key", None) != key:
            with torch.no_grad():
                self._cached = self._fresh_terms()
            self._cache_key = key
        return self._cached

    def _fresh_terms(self) -> tuple[torch.Tensor, torch.Tensor]:
        coef_task, coef_pre = self.coefficients()
        with autocast_disabled(coef_pre.device):
            return coef_task, coef_pre * self.weight0.to(coef_pre.dtype)

    def _mix(self, coef_task: torch.Tensor, pretrained_term: torch.Tensor) -> torch.Tensor:
        """W~ = coef_W * W + pretrained term, in the terms' dtype (fp32) with autocast off."""
        with autocast_disabled(pretrained_term.device):
            return torch.addcmul(pretrained_term, coef_task, self.base_layer.weight.to(pretrained_term.dtype))

    def mixed_weight(self) -> torch.Tensor:
        """W~ in fp32 (float64 for float64 weights), from the cached terms while alpha is frozen."""
        return self._mix(*self.mixing_terms())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # W~ in the layer's own dtype (a no-op for fp32 weights); under autocast F.linear casts it as nn.Linear's
        return F.linear(x, self.mixed_weight().to(self.base_layer.weight.dtype), self.base_layer.bias)

    @torch.no_grad()
    def merged_linear(self) -> nn.Linear:
        """A plain nn.Linear holding W~: the same outputs with no mixup cost at inference.

        W~ is merged afresh in fp32 (never the forward's cache), then stored in the layer's dtype.
        """
        base = self.base_layer
        merged = nn.Linear(base.in_features, base.out_features, bias=base.bias is not None)
        merged.to(device=base.weight.device, dtype=base.weight.dtype)
        merged.weight.copy_(self._mix(*self._fresh_terms()))
        if base.bias is not None:
            merged.bias.copy_(base.bias)
        return merged

    def extra_repr(self) -> str:
        return f"rank={self.rank}, form={self.form}, granularity={self.granularity}"

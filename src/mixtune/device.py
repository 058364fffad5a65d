"""Where a run computes and in what precision: every device and mixed-precision concern lives here.

    device:    auto (CUDA when torch sees a GPU, else the CPU) | cpu | cuda (the current GPU) | cuda:N
    precision: fp32 | bf16 (autocast to bfloat16, on the CPU or a GPU) | fp16 (autocast to float16 with a
               gradient scaler; CUDA only) | auto (bf16 where the hardware runs it fast and the run is safe in it,
               else fp32: auto_precision; the record's "device" entry says what it chose and why)

Methods never handle devices. run.run resolves the run's Runtime, moves the model to its device and
activates it for the run; the shared loop (mixtune.train) then
- moves each batch to the model's device and runs the forward pass under autocast (batch_loss),
- scales the loss for fp16 and unscales the gradients before the method's gradient hook, clipping and the
  optimiser step, which the scaler skips when the fp16 gradients overflowed (GradStep).
Evaluation and prediction run under the same autocast; the export check in fp32 (full_precision).
The bi-level search and CHILD-TUNING_D's Fisher pass take raw gradients (autograd.grad, per-tensor
clipping), which a loss scaler does not cover: under fp16 they run in fp32, under bf16 in bf16 (except what
bf16 would round away, in fp32 under any autocast: mixup's coefficients and W~, and its finite-difference passes).

Plain torch.amp, not accelerate: the loop needs its own hooks between backward and the optimiser step
(masks, DPS's stages, divergence checks), the search differentiates with autograd.grad, and methods
replace modules of the model mid-run (mixup, mixout, peft, merging); Accelerator's prepared optimiser,
wrapped model and process-wide state fit none of that, and a run uses one device.
"""

from __future__ import annotations

import contextlib
import resource
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from mixtune.config_checks import check_device_setting, check_precision_setting
from mixtune.errors import MixtuneError

if TYPE_CHECKING:
    from mixtune.config import RunConfig

AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
# Whether bf16 autocast on CPUs with AMX-BF16 has matched fp32's scores (SST-2, STS-B, QNLI on tuning seeds 11-13):
# not measured yet, so auto keeps every CPU in fp32. Without AMX, bf16 matmuls run on AVX512-BF16 alone:
# benchmarks/bf16_step.py measures a MiniLM training step there.
CPU_BF16_PARITY_MEASURED = False


# --- choosing ---------------------------------------------------------------------------------------
def resolve_device(spec: str = "auto") -> torch.device:
    """The torch device a device setting names; a GPU that is not there is the one-line error."""
    check_device_setting(spec)
    if spec == "cpu" or (spec == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        build = "a CPU-only build" if torch.version.cuda is None else f"built for CUDA {torch.version.cuda}"
        raise MixtuneError(f"device {spec} asked for, but torch {torch.__version__} ({build}) sees no CUDA GPU here: pass --device cpu or auto")
    count = torch.cuda.device_count()
    index = torch.cuda.current_device() if spec in ("auto", "cuda") else int(spec.partition(":")[2])
    if index >= count:
        raise MixtuneError(f"device {spec} asked for, but this machine has {count} CUDA GPU(s), cuda:0 to cuda:{count - 1}: pick one of those")
    return torch.device("cuda", index)


def cpu_has_amx_bf16() -> bool:
    """Whether this CPU has AMX-BF16 tiles (Linux /proc/cpuinfo flags; False where they cannot be read)."""
    try:
        return "amx_bf16" in Path("/proc/cpuinfo").read_text().split()
    except OSError:
        return False


def bf16_risk(config: RunConfig) -> str | None:
    """Why bf16 autocast would be unsafe for this run's recipe, or None.

    The finite-difference hypergradient perturbs the weights by 0.01 / ||d|| in all (about 1e-6 per entry on
    MiniLM): autocast rounds the weights to bfloat16 (8 bits of mantissa) in every matmul, which erases the
    perturbation, so g+ - g- would be rounding noise divided by a tiny 2 eps. Conservative: judged from the config
    alone, so a method without the search that carries the setting is kept in fp32 too.
    """
    if config.search.hypergradient == "finite-difference":
        return "search.hypergradient finite-difference: its weight perturbation is below bfloat16's resolution"
    return None


def auto_precision(
    device_type: str, cuda_bf16: bool, cpu_amx_bf16: bool, risk: str | None, cpu_parity: bool = CPU_BF16_PARITY_MEASURED
) -> tuple[str, str]:
    """(precision, why) for precision auto: bf16 only where the hardware runs it fast and the recipe is safe in it.

        CUDA with bfloat16 support            -> bf16 (fp32 when `risk` names why the recipe is unsafe in it)
        CUDA without it                       -> fp32 (fp16 needs a loss scaler, which raw-gradient passes lack)
        CPU with AMX-BF16, parity measured    -> bf16 (fp32 when `risk`)
        CPU with AMX-BF16, parity unmeasured  -> fp32 (today: CPU_BF16_PARITY_MEASURED is False)
        CPU without AMX-BF16                  -> fp32
    """
    if device_type == "cuda":
        if not cuda_bf16:
            return "fp32", "this GPU has no bfloat16 support (fp16 is never chosen automatically)"
        hardware = "a CUDA GPU with bfloat16 support"
    else:
        if not cpu_amx_bf16:
            return "fp32", "this CPU has no AMX-BF16 (bfloat16 matmuls would not be clearly faster)"
        if not cpu_parity:
            return "fp32", "AMX-BF16 is here, but bf16's score parity with fp32 on the CPU is not measured yet"
        hardware = "a CPU with AMX-BF16 (score parity measured)"
    if risk is not None:
        return "fp32", risk
    return "bf16", hardware


def check_precision(precision: str, device: torch.device) -> None:
    check_precision_setting(precision)
    if precision == "fp16" and device.type != "cuda":
        raise MixtuneError(f"precision fp16 needs a CUDA GPU (this run's device is {device}): use bf16 or fp32 on the CPU")
    if precision == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise MixtuneError(f"precision bf16: {torch.cuda.get_device_name(device)} has no bfloat16 support: use fp16 or fp32")


@dataclass(frozen=True)
class Runtime:
    """A run's device and precision."""

    device: torch.device
    precision: str = "fp32"
    pinned: bool = False  # the setting named one GPU (cuda:N): parallel search workers stay on it
    precision_reason: str | None = None  # set when precision auto chose: why (auto_precision)

    @classmethod
    def resolve(cls, device: str = "auto", precision: str = "fp32", risk: str | None = None) -> Runtime:
        """From the config's settings, checked: an absent GPU or an unsupported precision is the one-line error.

        Precision auto becomes fp32 or bf16 here (auto_precision); `risk`: why bf16 would be unsafe (bf16_risk).
        """
        resolved = resolve_device(device)
        reason = None
        if precision == "auto":
            cuda_bf16 = resolved.type == "cuda" and torch.cuda.is_bf16_supported()
            amx = resolved.type == "cpu" and cpu_has_amx_bf16()
            precision, reason = auto_precision(resolved.type, cuda_bf16, amx, risk)
        check_precision(precision, resolved)
        return cls(resolved, precision, pinned=device.startswith("cuda:"), precision_reason=reason)

    def autocast(self, scaled: bool = True) -> contextlib.AbstractContextManager:
        """Autocast for a forward pass. fp16 only where `scaled` (a scaled backward follows, or none at all)."""
        if self.precision == "fp32" or (self.precision == "fp16" and not scaled):
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=AUTOCAST_DTYPES[self.precision])

    def place(self, model: nn.Module) -> nn.Module:
        """The model on this device (a no-op for what is already there: modules a method added are moved)."""
        return model.to(self.device)

    def describe(self) -> dict[str, Any]:
        """The run record's "device" entry."""
        described = {"device": str(self.device), "precision": self.precision}
        if self.precision_reason is not None:
            described.update(precision_setting="auto", precision_reason=self.precision_reason)
        if self.device.type == "cuda":
            described["gpu"] = torch.cuda.get_device_name(self.device)
        return described


_ACTIVE: Runtime | None = None


@contextlib.contextmanager
def activated(runtime: Runtime) -> Iterator[Runtime]:
    """Make `runtime` the one the shared loop, evaluation and the search use, for the block."""
    global _ACTIVE
    previous, _ACTIVE = _ACTIVE, runtime
    if runtime.device.type == "cuda":
        torch.cuda.set_device(runtime.device)  # the GPU that default allocations and the current RNG mean
    try:
        yield runtime
    finally:
        _ACTIVE = previous


def active() -> Runtime | None:
    """The activated runtime, or None (plain fp32 wherever the model is: the Python API on one's own model)."""
    return _ACTIVE


@contextlib.contextmanager
def full_precision() -> Iterator[None]:
    """fp32 for the block, on the same device (the export check compares the export, not the precision)."""
    runtime = active()
    if runtime is None or runtime.precision == "fp32":
        yield
        return
    with activated(Runtime(runtime.device, "fp32", runtime.pinned)):
        yield


# --- using ------------------------------------------------------------------------------------------
def model_device(model: nn.Module) -> torch.device:
    """Where the model's weights are (the CPU for a model with none)."""
    for tensor in model.parameters():
        return tensor.device
    for tensor in model.buffers():
        return tensor.device
    return torch.device("cpu")


def to_device(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    """The batch's tensors on `device` (the same tensors when they are there already)."""
    return {k: v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


def forward_context(scaled: bool = True) -> contextlib.AbstractContextManager:
    """The active runtime's autocast (see Runtime.autocast); nothing without one."""
    runtime = active()
    return contextlib.nullcontext() if runtime is None else runtime.autocast(scaled)


class GradStep:
    """Backward, unscale, step for one optimiser: through a GradScaler under fp16, plainly otherwise.

    Under fp16 `unscale()` returns False when a gradient overflowed: the loop then leaves the method's
    hooks out, and `step()` skips the optimiser step and lowers the scale (torch.amp's dynamic scaling).
    """

    def __init__(self, optimizer: torch.optim.Optimizer, runtime: Runtime | None = None) -> None:
        self.optimizer = optimizer
        fp16 = runtime is not None and runtime.precision == "fp16"
        self.scaler = torch.amp.GradScaler(runtime.device.type) if fp16 else None

    def backward(self, loss: torch.Tensor) -> None:
        (loss if self.scaler is None else self.scaler.scale(loss)).backward()

    def unscale(self) -> bool:
        """Gradients back at their true scale; whether they are all finite (always True without fp16)."""
        if self.scaler is None:
            return True
        self.scaler.unscale_(self.optimizer)
        grads = [p.grad for group in self.optimizer.param_groups for p in group["params"] if p.grad is not None]
        return not grads or bool(torch.isfinite(torch.stack(torch._foreach_norm(grads))).all())

    def step(self) -> None:
        if self.scaler is None:
            self.optimizer.step()
            return
        self.scaler.step(self.optimizer)
        self.scaler.update()


# --- random state -------------------------------------------------------------------------------------
def rng_state(device: torch.device | None = None) -> dict[str, torch.Tensor]:
    """The CPU generator's state and, when `device` is a GPU, that GPU's (dropout on CUDA draws from it)."""
    state = {"cpu": torch.get_rng_state()}
    if device is not None and device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: dict[str, torch.Tensor], device: torch.device | None = None) -> None:
    """Restore what rng_state saved; the CUDA part onto `device` (a CPU device or None leaves CUDA alone)."""
    torch.set_rng_state(state["cpu"])
    if state.get("cuda") is not None and device is not None and device.type == "cuda":
        torch.cuda.set_rng_state(state["cuda"], device)


def worker_devices(runtime: Runtime, workers: int) -> list[torch.device]:
    """The device of each of `workers` processes: the visible GPUs in turn when the run's setting left the
    GPU to mixtune (auto or cuda, not cuda:N) and there are several, else the run's device for all (CPU
    processes share the cores)."""
    device = runtime.device
    if device.type == "cuda" and not runtime.pinned and torch.cuda.device_count() > 1:
        count = torch.cuda.device_count()
        return [torch.device("cuda", (device.index + i) % count) for i in range(workers)]
    return [device] * workers


# --- memory ---------------------------------------------------------------------------------------------
def peak_memory_mb() -> float:
    """Peak resident memory of this process (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

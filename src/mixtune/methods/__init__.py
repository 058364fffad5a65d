"""Every method, registered by name: `mixtune train --method NAME`."""

from mixtune.methods import (  # noqa: F401  (registration)
    bitfit,
    child_tuning,
    dps,
    joint,
    linear_probe,
    lp_ft,
    mixout,
    mixup_blo,
    peft_methods,
    random_alpha,
    setfit_method,
    soup_start,
    vanilla,
    vanilla_long,
    wise_ft,
)
from mixtune.methods.base import METHODS, Method, make_method, method_class, register

__all__ = ["METHODS", "Method", "make_method", "method_class", "register"]

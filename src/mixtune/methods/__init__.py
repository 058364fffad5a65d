"""Every method, registered by name: `mixtune train --method NAME`."""

from mixtune.methods import (  # noqa: F401  (registration)
    child_tuning,
    dps,
    joint,
    mixout,
    mixup_blo,
    peft_methods,
    random_alpha,
    setfit_method,
    vanilla,
)
from mixtune.methods.base import METHODS, Method, make_method, method_class, register

__all__ = ["METHODS", "Method", "make_method", "method_class", "register"]

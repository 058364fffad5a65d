"""Every method, registered by name: `mixtune train --method NAME`."""

from mixtune.methods import joint, mixup_blo, random_alpha, vanilla  # noqa: F401  (registration)
from mixtune.methods.base import METHODS, Method, make_method, method_class, register

__all__ = ["METHODS", "Method", "make_method", "method_class", "register"]

"""Vanilla finetuning: every parameter, AdamW lr 2e-5, wd 0.01 (docs/method.md section 6), 10 epochs, best dev step."""

from mixtune.methods.base import Method, register


@register
class Vanilla(Method):
    name = "vanilla"
